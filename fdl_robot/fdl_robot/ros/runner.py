"""Run a whole fdl_robot graph in one process: ``fdl-robot run``.

``ros2 launch`` cannot be installed from PyPI, so this runner does what the launch file
does, in one executor ("manual composition", the only composition rclpy has): it builds
the same nodes (:mod:`fdl_robot.ros.graph`), hands each the same ``--params-file`` and
the same per-node overrides, and spins them together.

    fdl-robot run --graph sim --config config/fdl_robot.yaml
    fdl-robot run --graph robot --camera-source realsense --namespace arm1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

from fdl_robot.ros import graph as graphs


def ros_args(config: str | Path, overrides: dict[str, str]) -> list[str]:
    """The node-local command line a launch file would give: params file, then -p k:=v."""
    args = ["--ros-args", "--params-file", str(config)]
    for key, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else value
        args += ["-p", f"{key}:={text}"]
    return args


def build_nodes(graph: str, config: str | Path | None = None, namespace: str = "",
                camera_source: str = "", model_path: str = "", context=None,
                only: list[str] | None = None, extra_overrides: dict[str, dict] | None = None) -> list:
    """Instantiate the nodes of ``graph`` (or the subset ``only``) in this process.

    ``extra_overrides`` ({node name: {parameter: value}}) go after the launch overrides,
    like ``-p`` arguments on a ``ros2 run`` command line.
    """
    config = Path(config) if config else graphs.default_config()
    if not config.is_file():
        raise FileNotFoundError(f"parameters file not found: {config}")
    nodes = []
    try:
        for name in graphs.graph_nodes(graph):
            if only is not None and name not in only:
                continue
            cls = graphs.node_class(name)
            overrides = graphs.node_overrides(name, graph, camera_source, model_path)
            overrides.update((extra_overrides or {}).get(name, {}))
            args = ros_args(config, overrides)
            nodes.append(cls(context=context, cli_args=args, namespace=namespace or None))
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def make_executor(num_threads: int = 1, context=None):
    """A SingleThreadedExecutor for 1 thread (the default everywhere, see spin_nodes), else a
    MultiThreadedExecutor with ``num_threads``."""
    if num_threads <= 1:
        return SingleThreadedExecutor(context=context)
    return MultiThreadedExecutor(num_threads=num_threads, context=context)


def spin_nodes(nodes, context=None, num_threads: int = 1) -> None:
    """Spin nodes together until Ctrl-C or shutdown, then destroy them cleanly.

    One thread by default: rclpy's MultiThreadedExecutor costs about twice the CPU per
    callback and, with the detector in the graph, cut its throughput to ~10 frames/s on two
    cores (``benchmarks/bench_executors.py``, ``bench_latency.py --executor``); the nodes'
    callbacks are short and the GIL serialises them anyway. sim_node steps in its own thread.
    """
    executor = make_executor(num_threads, context)
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        if rclpy.ok(context=context):
            rclpy.shutdown(context=context)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fdl-robot", description="fdl_robot command line")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a node graph in one process (like ros2 launch)")
    run.add_argument("--graph", default="robot", choices=sorted(graphs.GRAPHS))
    run.add_argument("--config", default=None, help="parameters YAML (default: config/fdl_robot.yaml)")
    run.add_argument("--namespace", default="")
    run.add_argument("--camera-source", default="", help="override camera_node source")
    run.add_argument("--model-path", default="", help="override detector_node model_path")
    args, ros_cli = parser.parse_known_args(argv)
    rclpy.init(args=ros_cli or None)
    nodes = build_nodes(args.graph, args.config, args.namespace, args.camera_source, args.model_path)
    spin_nodes(nodes)


if __name__ == "__main__":
    main()

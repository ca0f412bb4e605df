"""Spin fdl_robot nodes like the runner, with a chosen executor (bench_latency --executor).

    python benchmarks/_graph_process.py --executor single --config cfg.yaml --namespace /ns \
        [--only detector_node]

``runner.build_nodes`` builds the nodes (same YAML, same overrides as ``fdl-robot run``);
only the executor differs: ``multi`` is what ``runner.spin_nodes`` uses
(MultiThreadedExecutor, 4 threads), ``single`` a SingleThreadedExecutor.
"""
from __future__ import annotations

import argparse

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor

from fdl_robot.ros.runner import build_nodes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executor", choices=["single", "multi"], default="single")
    ap.add_argument("--graph", default="perception")
    ap.add_argument("--config", required=True)
    ap.add_argument("--namespace", default="")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    rclpy.init()
    nodes = build_nodes(args.graph, args.config, args.namespace, only=args.only)
    executor = SingleThreadedExecutor() if args.executor == "single" else MultiThreadedExecutor(4)
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
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()

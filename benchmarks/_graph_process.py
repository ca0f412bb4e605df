"""Spin fdl_robot nodes like the runner, with a chosen executor (bench_latency --executor).

    python benchmarks/_graph_process.py --executor single --config cfg.yaml --namespace /ns \
        [--only detector_node]

``runner.build_nodes`` builds the nodes (same YAML, same overrides as ``fdl-robot run``);
only the executor may differ: ``single`` is what ``runner.spin_nodes`` uses by default
(a SingleThreadedExecutor), ``multi`` a MultiThreadedExecutor with 4 threads.

``--sensor-depth N`` (an experiment, not a configuration the nodes offer) replaces the
history depth of ``fdl_robot.ros.base.SENSOR_QOS`` (best effort, keep last 5) before the
node modules are imported, e.g. 1 = a detector that always takes the newest frame.
"""
from __future__ import annotations

import argparse

import rclpy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executor", choices=["single", "multi"], default="single")
    ap.add_argument("--graph", default="perception")
    ap.add_argument("--config", required=True)
    ap.add_argument("--namespace", default="")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--sensor-depth", type=int, default=0)
    args = ap.parse_args()
    if args.sensor_depth > 0:
        from rclpy.qos import QoSProfile, qos_profile_sensor_data

        import fdl_robot.ros.base as base

        base.SENSOR_QOS = QoSProfile(history=qos_profile_sensor_data.history, depth=args.sensor_depth,
                                     reliability=qos_profile_sensor_data.reliability,
                                     durability=qos_profile_sensor_data.durability)
    from fdl_robot.ros.graph import LaunchArguments
    from fdl_robot.ros.runner import build_nodes, spin_nodes

    rclpy.init()
    nodes = build_nodes(args.graph, LaunchArguments(config=str(args.config or ""), namespace=args.namespace),
                        only=args.only)
    spin_nodes(nodes, num_threads=1 if args.executor == "single" else 4)


if __name__ == "__main__":
    main()

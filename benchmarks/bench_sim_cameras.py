"""The cost of the cameras: sim_node's real-time factor with one and two cameras, each depth model.

    python benchmarks/bench_sim_cameras.py --seconds 40 --json benchmarks/results/issue15/sim_cameras.json

sim_node runs as fast as it can (``real_time_factor`` 0, simulated-time stamps) with its
default scene camera (640x480 at 15 Hz, shadows, 512 px shadow map) and, in the second pair
of runs, the wrist camera at the same size and rate; the figure is the node's own measured
real-time factor (simulated / wall seconds over its last 5 s of simulated time). Above 1
the node can run at real time with that much headroom; below 1 it cannot.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def measure(params: dict, seconds: float) -> dict:
    import rclpy

    from fdl_robot.ros.sim_node import SimNode

    context = rclpy.Context()
    rclpy.init(context=context)
    args = ["--ros-args"] + [a for k, v in params.items() for a in ("-p", f"{k}:={str(v).lower()}")]
    node = SimNode(preload_torchvision=False, context=context, cli_args=args, namespace="/bench_sim_cameras")
    try:
        time.sleep(seconds)
        rtf, frames = node.real_time_factor, node.counters["ok frames"]
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    return {**params, "real_time_factor": round(rtf, 3), "frames": frames, "wall_s": seconds}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=40.0, help="wall time per configuration")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rows = []
    for wrist in (False, True):
        for depth_model in ("ideal", "realsense"):
            params = {"real_time_factor": 0.0, "publish_clock": True, "width": args.width, "height": args.height,
                      "wrist_camera": wrist, "wrist_width": args.width, "wrist_height": args.height,
                      "depth_model": depth_model}
            rows.append(measure(params, args.seconds))
            print(f"{'scene + wrist' if wrist else 'scene only':14s} {depth_model:9s} "
                  f"real-time factor {rows[-1]['real_time_factor']:.2f} ({rows[-1]['frames']} frames)", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

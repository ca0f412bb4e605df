"""Closed-loop pick-and-place from pixels, through the whole ROS graph, in the simulator.

    fdl-robot-closed-loop --episodes 50                      # evaluation (seeds 5000..5049)
    fdl-robot-closed-loop --episodes 3 --video outputs/demo.mp4 --strip outputs/demo_strip.png

One process runs the ``sim`` graph exactly as ``fdl-robot run --graph sim`` builds it
(:mod:`fdl_robot.ros.graph`, the same YAML and overrides), plus an ``episode_monitor``
node that only listens::

    sim_node ──camera, depth, camera_info──► detector_node ──► localizer_node ──► tracker_node
       ▲  └──joint_states──────────────────────────────────────────────────────┐      │ tracks
       └──────────── JointTrajectory ◄── policy_node (ACT, safety layer) ◄─────┴──────┘

Nothing but topics connects perception and control to the simulator: the policy sees
the tracked ``red_cube`` and ``bin`` in ``base_link`` and the joint states, never the
ground truth. Between episodes the monitor calls ``sim_node/reset`` (next seed),
``tracker_node/reset`` and ``policy_node/reset``.

An episode succeeds when ``sim/success`` (the red cube rests in the bin, gripper off it)
stays true for ``--hold-s`` of simulated time, and fails at ``--max-sim-s``. Every node
except sim_node runs on the simulator's ``/clock``, so a machine slower than real time
slows the whole loop down consistently instead of breaking it; the real-time factor
achieved is printed.

With ``--video``/``--strip`` the monitor draws every camera frame with the detections
made on it (matched by stamp) and the policy's target, and writes an MP4 and an image
strip of the first episode.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from fdl_robot.ros.base import RELIABLE_QOS, SENSOR_QOS  # noqa: E402
from fdl_robot.ros.conversions import detections_from_msg, image_to_rgb, stamp_to_ns  # noqa: E402

__all__ = ["EpisodeResult", "EpisodeMonitor", "run_closed_loop", "main"]


@dataclass
class EpisodeResult:
    episode: int
    seed: int
    success: bool
    duration_s: float          # sim time from reset to the start of the successful hold (or timeout)
    wall_s: float
    commands: int              # JointTrajectory messages published by policy_node
    detections: int            # Detection2DArray messages (= processed camera frames)


class EpisodeMonitor(Node):
    """Listens to success, camera, detections and commands; draws frames when asked."""

    def __init__(self, **kwargs):
        super().__init__("episode_monitor", **kwargs)
        from fdl_robot_interfaces.msg import Detection2DArray
        from trajectory_msgs.msg import JointTrajectory

        self.lock = threading.Lock()
        self.record = False
        self.frames: list[tuple[int, np.ndarray]] = []      # (stamp ns, annotated RGB)
        self._images: dict[int, np.ndarray] = {}
        self.begin(0)
        self.create_subscription(Bool, "sim/success", self.on_success, RELIABLE_QOS)
        self.create_subscription(JointTrajectory, "joint_trajectory_controller/joint_trajectory",
                                 self.on_command, RELIABLE_QOS)
        self.create_subscription(Detection2DArray, "detections", self.on_detections, RELIABLE_QOS)
        self.create_subscription(Image, "camera/color/image_raw", self.on_image, SENSOR_QOS)

    def begin(self, start_ns: int) -> None:
        with self.lock:
            self.start_ns = start_ns
            self.success_since_ns: int | None = None
            self.last_ns = start_ns
            self.commands = 0
            self.detections = 0

    def on_success(self, msg: Bool) -> None:
        # stamp-less Bool: it is published with each camera frame, at sim_node's now
        with self.lock:
            now = self.sim_now_ns()
            if now <= self.start_ns:
                return
            self.last_ns = now
            if msg.data and self.success_since_ns is None:
                self.success_since_ns = now
            elif not msg.data:
                self.success_since_ns = None

    def on_command(self, _msg) -> None:
        with self.lock:
            self.commands += 1

    def on_image(self, msg: Image) -> None:
        if self.record and stamp_to_ns(msg.header.stamp) > self.start_ns:
            with self.lock:
                self._images[stamp_to_ns(msg.header.stamp)] = image_to_rgb(msg)
                while len(self._images) > 30:
                    self._images.pop(next(iter(self._images)))

    def on_detections(self, msg) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        with self.lock:
            if stamp > self.start_ns:
                self.detections += 1
            rgb = self._images.pop(stamp, None) if self.record else None
        if rgb is not None:
            from fdl_robot.perception.annotate import draw_detections

            self.frames.append((stamp, draw_detections(rgb, detections_from_msg(msg))))

    sim_now_ns = staticmethod(lambda: 0)     # replaced by run_closed_loop with sim_node's clock


def _call(node: Node, client, timeout_s: float = 30.0) -> None:
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise RuntimeError(f"service {client.srv_name} not available")
    future = client.call_async(Trigger.Request())
    t0 = time.monotonic()
    while not future.done():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{client.srv_name} did not answer in {timeout_s} s")
        time.sleep(0.01)
    if not future.result().success:
        raise RuntimeError(f"{client.srv_name}: {future.result().message}")


def _caption(frames: list[tuple[int, np.ndarray]], start_ns: int, text: str) -> list[np.ndarray]:
    import cv2

    out = []
    for stamp, rgb in frames:
        img = np.ascontiguousarray(rgb.copy())
        cv2.putText(img, f"{text}  t={(stamp - start_ns) * 1e-9:4.1f}s", (6, 16), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (255, 255, 255), 1, cv2.LINE_AA)
        out.append(img)
    return out


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def write_strip(frames: list[np.ndarray], path: Path, n: int = 8, cols: int = 4) -> None:
    import cv2

    picks = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, min(n, len(frames)))]
    tiles = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in picks]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[j:j + cols]) for j in range(0, len(tiles), cols)]))


#: sim_node settings of the closed loop, unless overridden: 320x240 (the detector runs at 320 px
#: either way) and a real-time factor of 0.3, because two CPU cores cannot render, detect,
#: track and run ACT at 50 Hz in real time; every node runs on the sim's /clock, so a slower
#: sim loses no control tick (at 1.0 about half the ticks are skipped).
SIM_DEFAULTS = {"width": 320, "height": 240, "real_time_factor": 0.3}


def run_closed_loop(episodes: int, seed0: int, overrides: dict[str, dict], max_sim_s: float = 20.0,
                    hold_s: float = 0.5, record_episodes: int = 0, config: str | None = None,
                    progress=print, num_threads: int = 1
                    ) -> tuple[list[EpisodeResult], list[list[np.ndarray]], float]:
    """Run the sim graph for ``episodes`` episodes; results, annotated frames, real-time factor."""
    from fdl_robot.ros.runner import build_nodes, make_executor

    overrides = {k: dict(v) for k, v in overrides.items()}
    sim_overrides = overrides.setdefault("sim_node", {})
    for key, value in SIM_DEFAULTS.items():
        sim_overrides.setdefault(key, value)
    sim_overrides["seed"] = seed0
    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = build_nodes("sim", config, context=context, extra_overrides=overrides)
    by_name = {n.get_name(): n for n in nodes}
    sim = by_name["sim_node"]
    monitor = EpisodeMonitor(context=context)
    monitor.sim_now_ns = lambda: sim.now_ns
    # one thread by default (see ros.runner.spin_nodes): rclpy's multi-threaded executor costs
    # twice the CPU per callback, and its threads contend for the GIL with sim_node's stepping
    # thread, which then falls further behind its real-time factor
    executor = make_executor(num_threads, context)
    for node in nodes + [monitor]:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    resets = [monitor.create_client(Trigger, f"/{name}/reset") for name in ("sim_node", "tracker_node", "policy_node")]
    results: list[EpisodeResult] = []
    videos: list[list[np.ndarray]] = []
    sim_total_ns, wall_total = 0, 0.0
    try:
        for i in range(episodes):
            t_wall = time.monotonic()
            if i > 0:
                for client in resets:
                    _call(monitor, client)
            else:
                for client in resets[1:]:
                    _call(monitor, client)
            start_ns, seed = sim.now_ns, sim.seed
            monitor.record = i < record_episodes
            monitor.frames = []
            monitor.begin(start_ns)
            limit_ns = start_ns + round(max_sim_s * 1e9)
            hold_ns = round(hold_s * 1e9)
            while True:
                time.sleep(0.02)
                with monitor.lock:
                    since, last = monitor.success_since_ns, monitor.last_ns
                if since is not None and last - since >= hold_ns:
                    ok, end_ns = True, since
                    break
                if sim.now_ns >= limit_ns:
                    ok, end_ns = False, sim.now_ns
                    break
            wall = time.monotonic() - t_wall
            sim_total_ns += sim.now_ns - start_ns
            wall_total += wall
            results.append(EpisodeResult(i, seed, ok, round((end_ns - start_ns) * 1e-9, 2), round(wall, 1),
                                         monitor.commands, monitor.detections))
            if monitor.record:
                videos.append(_caption(monitor.frames, start_ns, f"seed {seed}"))
            k = sum(r.success for r in results)
            progress(f"episode {i + 1}/{episodes} seed {seed}: {'success' if ok else 'FAILED '} "
                     f"after {results[-1].duration_s:.1f} s sim ({wall:.0f} s wall, {monitor.detections} "
                     f"frames detected, {monitor.commands} commands)  {k}/{len(results)}")
    finally:
        monitor.record = False
        executor.shutdown()
        for node in nodes + [monitor]:
            node.destroy_node()
        rclpy.shutdown(context=context)
        spinner.join(timeout=5)
    rtf = (sim_total_ns * 1e-9) / wall_total if wall_total > 0 else float("nan")
    return results, videos, rtf


def main(argv: Sequence[str] | None = None) -> int:
    from fdl_robot.sim.cli import wilson_interval

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed0", type=int, default=5000, help="seeds seed0 .. seed0 + N - 1 (never trained on)")
    p.add_argument("--config", default=None, help="parameters YAML (default: config/fdl_robot.yaml)")
    p.add_argument("--policy", default="", help="policy_node policy, 'act' or 'scripted' ('' = the YAML's)")
    p.add_argument("--policy-model", default="", help="policy_node model_path ('' = the shipped ACT weights)")
    p.add_argument("--execution", default="", help="policy_node chunk_execution ('' = the YAML's)")
    p.add_argument("--backend", default="", help="detector_node backend ('' = the YAML's)")
    p.add_argument("--width", type=int, default=SIM_DEFAULTS["width"],
                   help="sim camera width (the detector runs at 320 px either way)")
    p.add_argument("--height", type=int, default=SIM_DEFAULTS["height"])
    p.add_argument("--real-time-factor", type=float, default=SIM_DEFAULTS["real_time_factor"],
                   help="sim_node real_time_factor (why 0.3: see SIM_DEFAULTS in closed_loop.py)")
    p.add_argument("--threads", type=int, default=1,
                   help="executor threads (1 = SingleThreadedExecutor; >1 = MultiThreadedExecutor)")
    p.add_argument("--max-sim-s", type=float, default=20.0, help="episode time limit, simulated seconds")
    p.add_argument("--video", type=Path, default=None, help="MP4 of the annotated camera view")
    p.add_argument("--strip", type=Path, default=None, help="image strip of the first episode")
    p.add_argument("--record-episodes", type=int, default=None,
                   help="episodes in the video (default: all when --video is given)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)

    overrides: dict[str, dict] = {"policy_node": {}, "sim_node": {}, "detector_node": {}}
    if args.policy:
        overrides["policy_node"]["policy"] = args.policy
    if args.policy_model:
        overrides["policy_node"]["model_path"] = args.policy_model
    if args.execution:
        overrides["policy_node"]["chunk_execution"] = args.execution
    if args.backend:
        overrides["detector_node"]["backend"] = args.backend
    overrides["sim_node"].update(width=args.width, height=args.height, real_time_factor=args.real_time_factor)
    record = args.record_episodes if args.record_episodes is not None else (
        args.episodes if args.video else (1 if args.strip else 0))
    print(f"closed loop through the ROS graph: {args.episodes} episodes, seeds {args.seed0}.."
          f"{args.seed0 + args.episodes - 1}, policy {args.policy or 'from the YAML'}", flush=True)
    t0 = time.monotonic()
    results, videos, rtf = run_closed_loop(args.episodes, args.seed0, overrides, args.max_sim_s,
                                           record_episodes=record, config=args.config,
                                           progress=lambda s: print(s, flush=True), num_threads=args.threads)
    wall = time.monotonic() - t0
    if videos and args.video:
        frames = [f for v in videos for f in v]
        if frames:
            write_video(frames, args.video, fps=15.0 * min(1.0, max(rtf, 0.1)) if rtf == rtf else 15.0)
            print(f"video: {args.video} ({len(frames)} frames)")
    if videos and args.strip and videos[0]:
        write_strip(videos[0], args.strip)
        print(f"image strip: {args.strip}")
    n, k = len(results), sum(r.success for r in results)
    lo, hi = wilson_interval(k, n)
    durations = [r.duration_s for r in results if r.success]
    summary = {"episodes": n, "successes": k, "success_rate": k / max(n, 1), "wilson95": [lo, hi],
               "mean_duration_s": float(np.mean(durations)) if durations else None,
               "real_time_factor": rtf, "wall_s": wall, "overrides": overrides,
               "failed_seeds": [r.seed for r in results if not r.success],
               "results": [asdict(r) for r in results]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    print(f"success rate {100 * k / max(n, 1):.1f} % (95 % Wilson CI {100 * lo:.1f}-{100 * hi:.1f} %), "
          f"mean duration of successes {summary['mean_duration_s'] or float('nan'):.2f} s sim, "
          f"real-time factor {rtf:.2f}, {wall:.0f} s wall; failed seeds {summary['failed_seeds']}")
    print(f"success {k}/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

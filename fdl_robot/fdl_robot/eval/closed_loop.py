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
stays true for ``hold_s`` of simulated time, and fails at ``--max-sim-s``. Every node
except sim_node runs on the simulator's ``/clock``, so a machine slower than real time
slows the whole loop down consistently instead of breaking it; the real-time factor
achieved is printed.

With ``--video``/``--strip`` the monitor draws every camera frame with the detections
made on it (matched by stamp), and the evaluator writes an MP4 and an image strip of the
first episode.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from fdl_robot.eval.base import EvalConfig, add_arguments, from_arguments
from fdl_robot.eval.media import caption, evenly_spaced, write_strip, write_video
from fdl_robot.eval.stats import SuccessSummary
from fdl_robot.ros.base import RELIABLE_QOS, SENSOR_QOS
from fdl_robot.ros.conversions import detections_from_msg, image_to_rgb, stamp_to_ns
from fdl_robot.ros.parameters import defaults

__all__ = ["CLOSED_LOOP_EVAL", "ClosedLoopEvaluator", "ClosedLoopReport", "EpisodeMonitor", "EpisodeResult",
           "NodePolicy", "run_closed_loop", "main"]

#: 50 episodes and a 20 s limit instead of the defaults: the settings the published
#: closed-loop figures were measured with (each episode takes about a minute of wall time).
CLOSED_LOOP_EVAL = EvalConfig(episodes=50, max_sim_s=20.0)
#: sim_node settings of the closed loop, unless overridden: 320x240 (the detector runs at 320 px
#: either way) and a real-time factor of 0.3, because two CPU cores cannot render, detect,
#: track and run ACT at 50 Hz in real time; every node runs on the sim's /clock, so a slower
#: sim loses no control tick (at 1.0 about half the ticks are skipped).
SIM_DEFAULTS = {"width": 320, "height": 240, "real_time_factor": 0.3}
#: Simulated time ``sim/success`` must stay true for an episode to succeed.
HOLD_S = 0.5
#: Frames of the strip of the first episode.
STRIP_FRAMES = 8


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
    """Listens to success, camera, detections and commands; draws frames when asked.

    ``sim_now_ns()`` gives sim_node's current simulated time: ``sim/success`` is a stamp-less
    Bool published with each camera frame, at that time.
    """

    def __init__(self, sim_now_ns: Callable[[], int], **kwargs):
        super().__init__("episode_monitor", **kwargs)
        from fdl_robot_interfaces.msg import Detection2DArray
        from trajectory_msgs.msg import JointTrajectory

        self.sim_now_ns = sim_now_ns
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


def _call(client, timeout_s: float = 30.0) -> None:
    """Call a Trigger service (spun by another thread); raise unless it answers success."""
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
    return [caption(rgb, f"{text}  t={(stamp - start_ns) * 1e-9:4.1f}s", origin_px=(6, 16), scale=0.45)
            for stamp, rgb in frames]


def _wait_for_outcome(monitor: EpisodeMonitor, sim, limit_ns: int, hold_ns: int) -> tuple[bool, int]:
    """(success, end ns): success held for ``hold_ns`` (end = its start), or the time limit."""
    while True:
        time.sleep(0.02)
        with monitor.lock:
            since, last = monitor.success_since_ns, monitor.last_ns
        if since is not None and last - since >= hold_ns:
            return True, since
        if sim.now_ns >= limit_ns:
            return False, sim.now_ns


def _with_sim_defaults(overrides: dict[str, dict], seed0: int) -> dict[str, dict]:
    overrides = {k: dict(v) for k, v in overrides.items()}
    sim_overrides = overrides.setdefault("sim_node", {})
    for key, value in SIM_DEFAULTS.items():
        sim_overrides.setdefault(key, value)
    sim_overrides["seed"] = seed0
    return overrides


def run_closed_loop(episodes: int, seed0: int, overrides: dict[str, dict],
                    max_sim_s: float = CLOSED_LOOP_EVAL.max_sim_s, hold_s: float = HOLD_S,
                    record_episodes: int = 0, config: str | None = None, progress=print, num_threads: int = 1
                    ) -> tuple[list[EpisodeResult], list[list[np.ndarray]], float]:
    """Run the sim graph for ``episodes`` episodes; results, annotated frames, real-time factor.

    ``overrides`` ({node name: {parameter: value}}) go on top of ``config`` (the YAML) and
    :data:`SIM_DEFAULTS`; the first ``record_episodes`` episodes are drawn.
    """
    from fdl_robot.ros.runner import build_nodes, make_executor

    context = rclpy.Context()
    rclpy.init(context=context)
    nodes = build_nodes("sim", config, context=context, extra_overrides=_with_sim_defaults(overrides, seed0))
    sim = {n.get_name(): n for n in nodes}["sim_node"]
    monitor = EpisodeMonitor(lambda: sim.now_ns, context=context)
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
            for client in resets if i > 0 else resets[1:]:      # sim_node starts at seed0 by itself
                _call(client)
            start_ns, seed = sim.now_ns, sim.seed
            monitor.record = i < record_episodes
            monitor.frames = []
            monitor.begin(start_ns)
            ok, end_ns = _wait_for_outcome(monitor, sim, start_ns + round(max_sim_s * 1e9), round(hold_s * 1e9))
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


@dataclass(frozen=True)
class NodePolicy:
    """The policy policy_node runs, as its parameters ('' = the YAML's)."""

    policy: str = ""                  # 'act' or 'scripted'
    model_path: str = ""              # '' in the YAML = the shipped ACT weights
    chunk_execution: str = ""         # 'ensemble' or 'chunk'

    def overrides(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class ClosedLoopReport:
    summary: SuccessSummary
    results: list[EpisodeResult]
    real_time_factor: float
    wall_s: float
    overrides: dict                   # {node: {parameter: value}} on top of the YAML

    def as_dict(self) -> dict:
        """The JSON of ``--json``: summary, real-time factor, overrides, every episode."""
        summary = self.summary.as_dict("mean_duration_s")
        failed = summary.pop("failed_seeds")
        return {**summary, "real_time_factor": self.real_time_factor, "wall_s": self.wall_s,
                "overrides": self.overrides, "failed_seeds": failed, "results": [asdict(r) for r in self.results]}

    def lines(self) -> list[str]:
        s = self.summary
        mean = s.mean_duration_s if s.mean_duration_s is not None else float("nan")
        return [f"success rate {s.percent_with_ci()}, mean duration of successes {mean:.2f} s sim, "
                f"real-time factor {self.real_time_factor:.2f}, {self.wall_s:.0f} s wall; "
                f"failed seeds {list(s.failed_seeds)}",
                f"success {s.successes}/{s.episodes}"]


class ClosedLoopEvaluator:
    """Runs policy_node's policy in the sim graph over ``config``'s seeds (module docstring).

    ``sim`` / ``detector``: sim_node / detector_node parameter overrides; ``video`` (every
    recorded episode) and ``strip`` (the first) are written after the run.
    """

    def __init__(self, config: EvalConfig = CLOSED_LOOP_EVAL, sim: dict | None = None, detector: dict | None = None,
                 record_episodes: int = 0, graph_config: str | None = None, num_threads: int = 1,
                 video: Path | None = None, strip: Path | None = None, progress=print):
        self.config, self.sim, self.detector = config, dict(sim or {}), dict(detector or {})
        self.record_episodes, self.graph_config, self.num_threads = record_episodes, graph_config, num_threads
        self.video, self.strip, self.progress = video, strip, progress

    def run(self, policy: NodePolicy) -> ClosedLoopReport:
        overrides = {"policy_node": policy.overrides(), "sim_node": self.sim, "detector_node": self.detector}
        t0 = time.monotonic()
        results, videos, rtf = run_closed_loop(self.config.episodes, self.config.seed0, overrides,
                                               self.config.max_sim_s, record_episodes=self.record_episodes,
                                               config=self.graph_config, progress=self.progress,
                                               num_threads=self.num_threads)
        wall = time.monotonic() - t0
        self._write_media(videos, rtf)
        summary = SuccessSummary.of([r.seed for r in results], [r.success for r in results],
                                    [r.duration_s for r in results])
        return ClosedLoopReport(summary, results, rtf, wall, overrides)

    def _write_media(self, videos: list[list[np.ndarray]], rtf: float) -> None:
        frames = [f for v in videos for f in v]
        if frames and self.video:
            # played at the camera rate slowed by the real-time factor: sim time at wall speed
            camera_hz = defaults("sim_node")["camera_rate_hz"]
            write_video(frames, self.video, fps=camera_hz * min(1.0, max(rtf, 0.1)) if rtf == rtf else camera_hz)
            self.progress(f"video: {self.video} ({len(frames)} frames)")
        if videos and videos[0] and self.strip:
            write_strip(evenly_spaced(videos[0], min(STRIP_FRAMES, len(videos[0]))), self.strip)
            self.progress(f"image strip: {self.strip}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p, CLOSED_LOOP_EVAL, "seconds", seed0_help="seeds seed0 .. seed0 + N - 1 (never trained on)")
    p.add_argument("--config", default=None, help="parameters YAML (default: config/fdl_robot.yaml)")
    p.add_argument("--policy", default="", help="policy_node policy, 'act' or 'scripted' ('' = the YAML's)")
    p.add_argument("--policy-model", default="", help="policy_node model_path ('' = the shipped ACT weights)")
    p.add_argument("--execution", default="", help="policy_node chunk_execution ('' = the YAML's)")
    p.add_argument("--backend", default="", help="detector_node backend ('' = the YAML's)")
    p.add_argument("--width", type=int, default=SIM_DEFAULTS["width"],
                   help="sim camera width (the detector runs at 320 px either way)")
    p.add_argument("--height", type=int, default=SIM_DEFAULTS["height"])
    p.add_argument("--real-time-factor", type=float, default=SIM_DEFAULTS["real_time_factor"],
                   help="sim_node real_time_factor (why 0.3: see SIM_DEFAULTS in eval/closed_loop.py)")
    p.add_argument("--threads", type=int, default=1,
                   help="executor threads (1 = SingleThreadedExecutor; >1 = MultiThreadedExecutor)")
    p.add_argument("--video", type=Path, default=None, help="MP4 of the annotated camera view")
    p.add_argument("--strip", type=Path, default=None, help="image strip of the first episode")
    p.add_argument("--record-episodes", type=int, default=None,
                   help="episodes in the video (default: all when --video is given)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = from_arguments(args, CLOSED_LOOP_EVAL)
    record = args.record_episodes if args.record_episodes is not None else (
        config.episodes if args.video else (1 if args.strip else 0))
    evaluator = ClosedLoopEvaluator(
        config, sim={"width": args.width, "height": args.height, "real_time_factor": args.real_time_factor},
        detector={"backend": args.backend} if args.backend else {}, record_episodes=record,
        graph_config=args.config, num_threads=args.threads, video=args.video, strip=args.strip,
        progress=lambda s: print(s, flush=True))
    print(f"closed loop through the ROS graph: {config.episodes} episodes, seeds {config.seed0}.."
          f"{config.seed0 + config.episodes - 1}, policy {args.policy or 'from the YAML'}", flush=True)
    report = evaluator.run(NodePolicy(args.policy, args.policy_model, args.execution))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_dict(), indent=2))
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

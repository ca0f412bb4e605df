"""Record demonstrations through the ROS graph, one bag per episode: ``fdl-robot-record-demos``.

    fdl-robot-record-demos --episodes 20 --out outputs/demo_bags                 # teleoperated
    fdl-robot-record-demos --episodes 20 --out outputs/demo_bags --operator expert --perturbation mixed
    fdl-robot-bags-to-dataset outputs/demo_bags/episode_* --out outputs/demos_lerobot --format lerobot

The graph: ``sim_node`` (the MuJoCo cell as robot and RGB-D camera), ``detector_node``,
``localizer_node`` and ``tracker_node`` with the parameters of ``config/fdl_robot.yaml`` (the
closed loop's detector settings, :data:`~fdl_robot.eval.closed_loop.DETECTOR_DEFAULTS`), and in
place of the policy an operator:

* ``teleop`` (default): the scripted expert as a person at a gamepad, ``cmd_vel`` + ``joy`` ->
  ``teleop_node`` -> the arm's and gripper's controllers (:mod:`fdl_robot.eval.ros_teleop_expert`,
  the set-up of the 10/10 teleoperation result);
* ``expert``: the scripted expert sending joint commands itself (:mod:`fdl_robot.eval.ros_expert`).

Either expert plans from ``sim/ground_truth`` (it stands in for a person who sees the scene);
the bag records what the robot's stack saw (``/tracks``), which is what the datasets use. Every
node runs in this process, one executor (as the 10/10 measurement), on the simulator's clock
(``use_sim_time``), by default at half real time (``--real-time-factor``, see
:class:`DemoRecordConfig`).

Each episode: a new :class:`~fdl_robot.bags.recorder.BagRecorder` ``OUT/episode_<i>`` on the
topics of :func:`~fdl_robot.datasets.demo_bags.demo_topics`, the simulator reset (next seed),
tracker and teleop_node reset, a start marker, the episode until the expert is done and the scene
settled (success = ``sim/success``) or ``--max-sim-s``, an end marker, the bag closed. Markers:
:mod:`fdl_robot.datasets.demo_bags`. Failed episodes are recorded too (their end marker says so;
the converter skips them). ``OUT/demos.json`` lists every episode (seed, success, durations,
MB), rewritten after each. The recorder writes its messages to the file every 0.5 s, so SIGINT
or SIGTERM end the open bag cleanly (its end marker says ``interrupted``) and a SIGKILL loses at
most that much (``fdl-robot-bag reindex`` repairs the bag).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.eval.base import EvalConfig, add_arguments, from_arguments
from fdl_robot.outputs import DIRECTORY, check_args, exit_on_error, write_json

__all__ = ["OPERATORS", "DEMO_EVAL", "DemoEpisode", "DemoRecordConfig", "DemoRecorder", "main"]

OPERATORS = ("teleop", "expert")
#: Seeds and limit of ``fdl-robot-record-demos``: the teleoperation evaluation's (10 episodes from
#: seed 1000, 25 s: the expert at teleoperation speeds needs up to ~15 s).
DEMO_EVAL = EvalConfig(episodes=10, seed0=1000, max_sim_s=25.0)
#: Wall seconds to spin after opening an episode's bag, before the reset: its subscriptions match.
MATCH_S = 0.3
#: Wall seconds the graph may take to publish its first tracks (the detector loads its model).
STARTUP_TIMEOUT_S = 180.0
#: Wall seconds without a new simulated step after which the simulator is taken for dead.
STALL_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DemoRecordConfig:
    """How demonstrations are recorded (module docstring); every command-line default is here."""

    operator: str = "teleop"
    perturbation: str = "none"
    images: bool = True                 # colour and depth images in the bags
    #: sim_node's pacing. 0.5, not 1: every node of this graph shares one executor thread, and on
    #: two busy cores it fell behind at real time (measured: half the joint states dropped, 2 of 4
    #: teleoperated episodes failed; at 0.5, 3 of 3 and none dropped). The data are on the
    #: simulator's clock either way.
    real_time_factor: float = 0.5
    width: int = 320                    # camera, px (the closed loop's)
    height: int = 240
    camera_rate_hz: float = 15.0
    depth_model: str = "realsense"
    sim: dict = field(default_factory=dict)        # further sim_node overrides
    detector: dict = field(default_factory=dict)   # detector_node overrides on top of DETECTOR_DEFAULTS

    def __post_init__(self):
        if self.operator not in OPERATORS:
            raise ValueError(f"operator must be one of {OPERATORS}, got '{self.operator}'")

    def overrides(self, seed0: int) -> dict[str, dict]:
        """{node: {parameter: value}} on top of the YAML. sim_node starts a seed early: every
        episode, the first too, begins with a reset into a new bag."""
        from fdl_robot.eval.closed_loop import DETECTOR_DEFAULTS

        return {"sim_node": {"seed": seed0 - 1, "width": self.width, "height": self.height,
                             "camera_rate_hz": self.camera_rate_hz, "real_time_factor": self.real_time_factor,
                             "depth_model": self.depth_model, "perturbation": self.perturbation, **self.sim},
                "detector_node": {**DETECTOR_DEFAULTS, **self.detector}}


@dataclass
class DemoEpisode:
    """One recorded episode, as ``demos.json`` lists it."""

    episode: int
    bag: str
    seed: int
    success: bool
    reason: str                 # 'success', 'failed', 'timeout' or 'interrupted'
    sim_s: float                # simulated time from the reset to the end marker
    wall_s: float
    megabytes: float            # the bag's size on disk
    messages: dict[str, int]    # per topic


class DemoRecorder:
    """Runs the graph of the module docstring and records ``config.episodes`` bags into ``out``."""

    def __init__(self, out: str | Path, episodes: EvalConfig = DEMO_EVAL, config: DemoRecordConfig = DemoRecordConfig(),
                 progress: bool = True, log=print):
        self.out, self.episodes, self.config, self.progress, self.log = Path(out), episodes, config, progress, log

    def _nodes(self, context) -> tuple[list, Any, Any]:
        """(graph nodes, the operator's driver, sim_node)."""
        from fdl_robot.eval.ros_expert import ExpertDriver
        from fdl_robot.eval.ros_teleop_expert import TeleopExpertDriver, make_expert
        from fdl_robot.ros import graph as graphs
        from fdl_robot.ros.runner import build_nodes
        from fdl_robot.sim.expert import ScriptedExpert

        args = graphs.LaunchArguments(use_sim_time=True)
        overrides = self.config.overrides(self.episodes.seed0)
        nodes = build_nodes("sim", args, context=context, extra_overrides=overrides,
                            only=["sim_node", "detector_node", "localizer_node", "tracker_node"])
        teleop = self.config.operator == "teleop"
        try:
            if teleop:
                nodes += build_nodes("sim_teleop", args, context=context, only=["teleop_node"])
            driver = (TeleopExpertDriver(make_expert(), context=context) if teleop
                      else ExpertDriver(ScriptedExpert(), context=context))
        except BaseException:
            for node in nodes:
                node.destroy_node()
            raise
        return nodes, driver, next(n for n in nodes if n.get_name() == "sim_node")

    def run(self) -> list[DemoEpisode]:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter
        from tqdm import tqdm

        from fdl_robot.datasets.demo_bags import demo_topics

        self.out.mkdir(parents=True, exist_ok=True)
        if any(self.out.glob("episode_*")):
            raise FileExistsError(f"{self.out} already holds episode bags: choose a new --out")
        topics = [t for ts in demo_topics(images=self.config.images,
                                          teleop=self.config.operator == "teleop").values() for t in ts]
        context = rclpy.Context()
        rclpy.init(context=context)
        nodes, driver, recorder_node, executor, recorder = [], None, None, None, None
        results: list[DemoEpisode] = []
        try:
            nodes, driver, sim = self._nodes(context)
            recorder_node = Node("demo_recorder", context=context,
                                 parameter_overrides=[Parameter("use_sim_time", value=True)])
            executor = SingleThreadedExecutor(context=context)
            for node in (*nodes, driver, recorder_node):
                executor.add_node(node)
            self._wait_for_tracks(recorder_node, executor)
            resets = [recorder_node.create_client(_trigger(), f"/{n.get_name()}/reset") for n in nodes
                      if n.get_name() in ("sim_node", "tracker_node", "teleop_node")]
            bar = tqdm(total=self.episodes.episodes, desc="recording demos", unit="ep", disable=not self.progress)
            for i in range(self.episodes.episodes):
                recorder = self._open(recorder_node, i, topics, executor)
                result = self._episode(i, recorder, executor, resets, sim, driver)
                recorder = None
                results.append(result)
                self._write_info(results)
                bar.update(1)
                bar.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}",
                                mb=f"{result.megabytes:.1f}")
            bar.close()
        finally:
            if recorder is not None:                   # stopped during an episode: end its bag cleanly
                recorder.write("/episode", _marker({"event": "end", "success": False, "reason": "interrupted"}))
                recorder.close()
            if executor is not None:
                executor.shutdown()
            for node in reversed([*nodes, *(x for x in (driver, recorder_node) if x is not None)]):
                node.destroy_node()
            rclpy.shutdown(context=context)
        return results

    def _wait_for_tracks(self, node, executor) -> None:
        from fdl_robot_interfaces.msg import TrackArray

        from fdl_robot.datasets.demo_bags import demo_topics

        heard = []
        sub = node.create_subscription(TrackArray, demo_topics()["tracks"][0], heard.append, 10)
        t0 = time.monotonic()
        while not heard:
            executor.spin_once(timeout_sec=0.1)
            if time.monotonic() - t0 > STARTUP_TIMEOUT_S:
                raise TimeoutError(f"no tracks in {STARTUP_TIMEOUT_S:.0f} s: is the detector up?")
        node.destroy_subscription(sub)
        self.log(f"graph up in {time.monotonic() - t0:.1f} s")

    def _open(self, node, i: int, topics: list[str], executor):
        from fdl_robot.bags.recorder import BagRecorder

        recorder = BagRecorder(node, self.out / f"episode_{i:04d}", topics,
                               custom_data={"fdl_robot_demo": f"episode {i}", "operator": self.config.operator})
        t0 = time.monotonic()
        while time.monotonic() - t0 < MATCH_S:
            executor.spin_once(timeout_sec=0.02)
        return recorder

    def _episode(self, i: int, recorder, executor, resets, sim, driver) -> DemoEpisode:
        from fdl_robot.datasets.demo_bags import EPISODE_TOPIC

        t_wall = time.monotonic()
        try:
            for client in resets:
                _call(client, executor)
            seed, start_ns = sim.seed, sim.now_ns
            driver.begin(start_ns, record=False)
            recorder.write(EPISODE_TOPIC, _marker({
                "event": "start", "episode": i, "seed": seed, "operator": self.config.operator,
                "perturbation": self.config.perturbation, "real_time_factor": self.config.real_time_factor,
                "camera": f"{self.config.width}x{self.config.height} at {self.config.camera_rate_hz:g} Hz"}))
            limit_ns = start_ns + round(self.episodes.max_sim_s * 1e9)
            last_ns, last_wall = sim.now_ns, time.monotonic()
            while driver.success is None and sim.now_ns < limit_ns:
                executor.spin_once(timeout_sec=0.05)
                if sim.now_ns != last_ns:
                    last_ns, last_wall = sim.now_ns, time.monotonic()
                elif time.monotonic() - last_wall > STALL_TIMEOUT_S:
                    raise RuntimeError(f"no simulated step for {STALL_TIMEOUT_S:.0f} s: sim_node stopped")
            success = bool(driver.success)
            reason = "success" if success else ("failed" if driver.success is not None else "timeout")
            sim_s = (sim.now_ns - start_ns) * 1e-9
            recorder.write(EPISODE_TOPIC, _marker({"event": "end", "success": success, "reason": reason,
                                                   "duration_s": round(sim_s, 3)}))
        except BaseException:
            recorder.write(EPISODE_TOPIC, _marker({"event": "end", "success": False, "reason": "interrupted"}))
            recorder.close()
            raise
        recorder.close()
        size = sum(p.stat().st_size for p in recorder.path.iterdir()) / 1e6
        return DemoEpisode(i, recorder.path.name, seed, success, reason, round(sim_s, 2),
                           round(time.monotonic() - t_wall, 1), round(size, 2), dict(sorted(recorder.counts.items())))

    def _write_info(self, results: list[DemoEpisode]) -> None:
        wall = [r.wall_s for r in results]
        write_json(self.out / "demos.json", {
            "config": asdict(self.config), "seed0": self.episodes.seed0, "max_sim_s": self.episodes.max_sim_s,
            "episodes": len(results), "successes": sum(r.success for r in results),
            "mean_wall_s": round(sum(wall) / len(wall), 1), "mean_megabytes": round(
                sum(r.megabytes for r in results) / len(results), 2),
            "results": [asdict(r) for r in results]}, "demos info", indent=1)


def _trigger():
    from std_srvs.srv import Trigger

    return Trigger


def _marker(payload: dict):
    from std_msgs.msg import String

    return String(data=json.dumps(payload))


def _call(client, executor, timeout_s: float = 30.0) -> str:
    """Call a Trigger service, spinning ``executor`` until it answers."""
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise RuntimeError(f"service {client.srv_name} not available")
    future = client.call_async(_trigger().Request())
    executor.spin_until_future_complete(future, timeout_sec=timeout_s)
    if not future.done() or not future.result().success:
        raise RuntimeError(f"{client.srv_name} failed: {future.result() if future.done() else 'no answer'}")
    return future.result().message


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _parser() -> argparse.ArgumentParser:
    from fdl_robot.sim.depth_model import DEPTH_MODELS
    from fdl_robot.sim.perturbations import PERTURBATIONS

    d = DemoRecordConfig()
    p = argparse.ArgumentParser(prog="fdl-robot-record-demos", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    add_arguments(p, DEMO_EVAL, "seconds", seed0_help="seeds seed0 .. seed0 + N - 1",
                  episodes_help="episodes to record (one bag each, failures included)")
    p.add_argument("--out", type=Path, required=True, help="directory of the bags (episode_<i>) and demos.json")
    p.add_argument("--operator", choices=OPERATORS, default=d.operator,
                   help="teleop: the expert through cmd_vel + joy and teleop_node; expert: its joint commands")
    p.add_argument("--perturbation", choices=PERTURBATIONS, default=d.perturbation,
                   help="sim_node perturbation of every episode (sim.perturbations)")
    p.add_argument("--no-images", dest="images", action="store_false",
                   help="leave the colour and depth images out of the bags (camera_info stays)")
    p.add_argument("--real-time-factor", type=float, default=d.real_time_factor,
                   help="sim_node real_time_factor (1 = real time, if the machine keeps up; 0 = as fast as possible: "
                        "the operator then lags)")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--camera-rate-hz", type=float, default=d.camera_rate_hz)
    p.add_argument("--depth-model", choices=DEPTH_MODELS, default=d.depth_model)
    p.add_argument("--backend", default="", help="detector_node backend (default: the closed loop's)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    check_args(parser, args, {"--out": DIRECTORY})
    signal.signal(signal.SIGTERM, _interrupt)          # end the open bag cleanly, as on Ctrl-C
    config = DemoRecordConfig(args.operator, args.perturbation, args.images, args.real_time_factor, args.width,
                              args.height, args.camera_rate_hz, args.depth_model,
                              detector={"backend": args.backend} if args.backend else {})
    episodes = from_arguments(args, DEMO_EVAL)
    try:
        results = DemoRecorder(args.out, episodes, config, progress=args.progress).run()
    except FileExistsError as exc:
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        bags = sorted(p.name for p in args.out.glob("episode_*"))
        print(f"stopped: {len(bags)} bags in {args.out}, the last ({bags[-1] if bags else '-'}) ended as "
              "'interrupted'", file=sys.stderr)
        return 130
    n = sum(r.success for r in results)
    wall = sum(r.wall_s for r in results) / max(len(results), 1)
    mb = sum(r.megabytes for r in results) / max(len(results), 1)
    print(f"recorded {len(results)} bags in {args.out} ({n} succeeded; {wall:.1f} s wall and {mb:.1f} MB per "
          f"episode); convert: fdl-robot-bags-to-dataset {args.out}/episode_* --out DIR --format hdf5|lerobot")
    return 0


if __name__ == "__main__":
    sys.exit(main())

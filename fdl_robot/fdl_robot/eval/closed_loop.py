"""Closed-loop pick-and-place from pixels, through the whole ROS graph, in the simulator.

    fdl-robot-closed-loop --episodes 50                      # evaluation (seeds 5000..5049)
    fdl-robot-closed-loop --episodes 3 --video outputs/demo.mp4 --strip outputs/demo_strip.png
    fdl-robot-closed-loop --runner one-process               # every node in this process

The ``sim`` graph runs as deployed: by default a process per node, started by the
launcher of ``fdl-robot launch`` (:mod:`fdl_robot.ros.launcher`; the same description,
YAML and overrides as ``ros2 launch fdl_robot sim.launch.py``), at real time on the wall
clock. An ``episode_monitor`` node in this process only listens and calls resets::

    sim_node ──camera, depth, camera_info──► detector_node ──► localizer_node ──► tracker_node
       ▲  └──joint_states──────────────────────────────────────────────────────┐      │ tracks
       └──────────── JointTrajectory ◄── policy_node (ACT, safety layer) ◄─────┴──────┘

Nothing but topics connects perception and control to the simulator: the policy sees
the tracked ``red_cube`` and ``bin`` in ``base_link`` and the joint states, never the
ground truth. Before each episode the monitor calls ``sim_node/reset`` (next seed),
``tracker_node/reset`` and ``policy_node/reset``.

An episode succeeds when ``sim/success`` (the red cube rests in the bin, gripper off it)
stays true for ``hold_s`` of simulated time, and fails at ``--max-sim-s``. Simulated time
is counted in control steps (one ``joint_states`` message each). With a
``--real-time-factor`` other than 1 every node runs on the simulator's ``/clock``
(``use_sim_time``), so a slower simulation slows the whole loop down consistently.

Measured where the commands arrive, as the arm receives them (:mod:`fdl_robot.eval.timing`):
the achieved real-time factor, the intervals between commands, missed control ticks, the
latency from image stamp to command, and the CPU of every process; printed in the summary
and written to ``--json``.

With ``--video``/``--strip`` the monitor draws every camera frame with the detections
made on it (matched by stamp), and the evaluator writes an H.264 MP4 at the camera's
frame rate (it plays in real time, in a browser) and an image strip of the first episode.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Sequence

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.robot import CONTROL_DT_S
from fdl_robot.eval.base import EvalConfig, add_arguments, from_arguments
from fdl_robot.ros.interfaces import PROFILES
from fdl_robot.eval.media import caption, evenly_spaced, write_strip, write_video
from fdl_robot.eval.stats import SuccessSummary
from fdl_robot.eval.timing import LoopTiming, timing_summary
from fdl_robot.outputs import DIRECTORY, IMAGE, JSON, VIDEO, check_args, exit_on_error, write_json
from fdl_robot.ros import graph as graphs
from fdl_robot.ros.base import RELIABLE_QOS, SENSOR_QOS
from fdl_robot.ros.cameras import RIGS
from fdl_robot.ros.conversions import detections_from_msg, image_to_rgb, stamp_to_ns
from fdl_robot.ros.launcher import parse_prefixes
from fdl_robot.ros.parameters import defaults
from fdl_robot.sim.depth_model import DEPTH_MODELS
from fdl_robot.sim.perturbations import PERTURBATIONS

__all__ = ["CLOSED_LOOP_EVAL", "RUNNERS", "ClosedLoopEvaluator", "ClosedLoopReport", "EpisodeMonitor",
           "EpisodeResult", "GraphOptions", "NodePolicy", "run_closed_loop", "main"]

#: 50 episodes and a 20 s limit instead of the defaults: the settings the published
#: closed-loop figures were measured with.
CLOSED_LOOP_EVAL = EvalConfig(episodes=50, max_sim_s=20.0)
#: sim_node settings of the closed loop, unless overridden: 320x240 (the detector runs at
#: 320 px either way).
SIM_DEFAULTS = {"width": 320, "height": 240}
#: detector_node settings of the closed loop, unless overridden: the fastest CPU runtime of the
#: shipped YOLO (OpenVINO bf16 on one thread; boxes within 1 px of f32 at p95, see
#: test_detector_backends.py): on two cores the loop at real time is short of CPU, and detection
#: is its second largest consumer after rendering.
DETECTOR_DEFAULTS = {"backend": "openvino", "precision": "bf16", "threads": 1}
#: How the graph's nodes run: a process per node (as deployed) or all in this process.
RUNNERS = ("processes", "one-process")
#: SCHED_FIFO priorities of ``--realtime``: the controller above the robot (sim_node, whose
#: priority the monitor shares), the robot above perception, and everything above the rest of
#: the machine. On two cores the default scheduler lets a 50 Hz tick wait for the detector's
#: and the renderer's time slices; ros2_control runs its control loop under SCHED_FIFO for the
#: same reason.
REALTIME_PRIORITIES = {"policy_node": 30, "sim_node": 20, "detector_node": 10, "localizer_node": 10,
                       "tracker_node": 10}
#: Simulated time ``sim/success`` must stay true for an episode to succeed.
HOLD_S = 0.5
#: Frames of the strip of the first episode.
STRIP_FRAMES = 8
#: Wall seconds the graph may take to come up (the detector and ACT load their weights).
STARTUP_TIMEOUT_S = 180.0
#: Wall seconds without a joint state after which the simulator is taken for dead.
STALL_TIMEOUT_S = 20.0


@dataclass
class EpisodeResult:
    episode: int
    seed: int
    success: bool
    duration_s: float          # sim time from reset to the start of the successful hold (or timeout)
    wall_s: float
    commands: int              # JointTrajectory messages received from policy_node
    detections: int            # Detection2DArray messages (= processed camera frames)
    #: sim/perturbation's last message of the episode: kind, params, fired_s, grasps (None: none heard)
    perturbation: dict | None = None

    @property
    def recover_s(self) -> float | None:
        """From the perturbation to the start of the successful hold (s); None without both."""
        fired = (self.perturbation or {}).get("fired_s")
        return None if fired is None or not self.success else self.duration_s - fired

    @property
    def regrasps(self) -> int:
        """Grasps of the cube after the first."""
        return max(int((self.perturbation or {}).get("grasps", 0)) - 1, 0)


class EpisodeMonitor(Node):
    """Listens to joint states, success, commands, camera info and detections; draws frames.

    Simulated time is counted in joint states (one per control step). Command receipt times
    and image-to-command latencies go into ``timing`` (:class:`~fdl_robot.eval.timing.LoopTiming`).
    ``wall_stamps``: sim_node stamps with the wall clock (else with simulated time, and the
    capture time of a frame is the receipt time of the joint state with its stamp).
    """

    def __init__(self, wall_stamps: bool, record_images: bool = False, interface=None, **kwargs):
        """``interface``: the robot profile's RobotInterface (default: the simulated cell's):
        where the arm's commands and joint states are."""
        super().__init__("episode_monitor", **kwargs)
        from fdl_robot_interfaces.msg import Detection2DArray
        from std_msgs.msg import Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory

        from fdl_robot.ros.interfaces import RobotInterface

        interface = interface or RobotInterface()
        self._step_joint = interface.arm_joint_names[0]      # one arm JointState per control step
        self.wall_stamps = wall_stamps
        self.lock = threading.Lock()
        self.record = False
        self.frames: list[tuple[int, np.ndarray]] = []      # (stamp ns, annotated RGB)
        self.detections_total = 0
        self.last_joint_state_wall = time.monotonic()
        self._images: dict[int, np.ndarray] = {}
        self._capture_wall_ns: dict[int, int] = {}          # stamp -> wall ns of its capture
        self._frame_stamps: dict[int, bool] = {}            # recent image stamps -> answered yet
        self.begin()
        self.create_subscription(JointState, interface.joint_states_topic, self.on_joint_state, RELIABLE_QOS)
        self.create_subscription(Bool, "sim/success", self.on_success, RELIABLE_QOS)
        self.perturbations: dict[int, dict] = {}             # seed -> sim/perturbation's last message
        self.create_subscription(String, "sim/perturbation", self.on_perturbation, RELIABLE_QOS)
        command_type = JointTrajectory if interface.arm_command_interface == "trajectory" else Float64MultiArray
        self.create_subscription(command_type, interface.arm_command_topic, self.on_command, RELIABLE_QOS)
        self.create_subscription(CameraInfo, "camera/color/camera_info", self.on_camera_info, RELIABLE_QOS)
        self.create_subscription(Detection2DArray, "detections", self.on_detections, RELIABLE_QOS)
        if record_images:
            self.create_subscription(Image, "camera/color/image_raw", self.on_image, SENSOR_QOS)

    def begin(self) -> None:
        with self.lock:
            self.steps = 0
            self.success_since: int | None = None
            self.commands = 0
            self.detections = 0
            self.timing = LoopTiming()
            self.t0 = time.monotonic()
            self._frame_stamps.clear()

    def on_joint_state(self, msg: JointState) -> None:
        if self._step_joint not in msg.name:                   # the gripper driver's message
            return
        with self.lock:
            self.steps += 1
            self.last_joint_state_wall = time.monotonic()
            if not self.wall_stamps:
                self._capture_wall_ns[stamp_to_ns(msg.header.stamp)] = time.time_ns()
                while len(self._capture_wall_ns) > 500:
                    self._capture_wall_ns.pop(next(iter(self._capture_wall_ns)))

    def on_success(self, msg: Bool) -> None:
        with self.lock:
            if msg.data and self.success_since is None:
                self.success_since = self.steps
            elif not msg.data:
                self.success_since = None

    def on_perturbation(self, msg: String) -> None:
        outcome = json.loads(msg.data)
        with self.lock:
            self.perturbations[int(outcome["seed"])] = outcome

    def on_camera_info(self, msg: CameraInfo) -> None:
        with self.lock:
            self._frame_stamps[stamp_to_ns(msg.header.stamp)] = False
            while len(self._frame_stamps) > 50:
                self._frame_stamps.pop(next(iter(self._frame_stamps)))

    def on_command(self, msg) -> None:
        rx_wall, rx_mono = time.time_ns(), time.monotonic_ns()
        stamp = stamp_to_ns(msg.header.stamp)
        with self.lock:
            self.commands += 1
            self.timing.command_rx_ns.append(rx_mono)
            if is_hold(msg):
                self.timing.hold_rx_ns.append(rx_mono)
            if self._frame_stamps.get(stamp) is False:          # first command from this image
                self._frame_stamps[stamp] = True
                capture = stamp if self.wall_stamps else self._capture_wall_ns.get(stamp)
                if capture is not None:
                    self.timing.latency_ns.append(rx_wall - capture)

    def on_image(self, msg: Image) -> None:
        if self.record:
            with self.lock:
                self._images[stamp_to_ns(msg.header.stamp)] = image_to_rgb(msg)
                while len(self._images) > 30:
                    self._images.pop(next(iter(self._images)))

    def on_detections(self, msg) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        with self.lock:
            self.detections_total += 1
            self.detections += 1
            rgb = self._images.pop(stamp, None) if self.record else None
        if rgb is not None:
            from fdl_robot.perception.annotate import draw_detections

            self.frames.append((stamp, draw_detections(rgb, detections_from_msg(msg))))

    def finish(self) -> LoopTiming:
        with self.lock:
            self.timing.sim_steps, self.timing.wall_s = self.steps, time.monotonic() - self.t0
            return self.timing


def is_hold(msg) -> bool:
    """policy_node's hold: one point with all velocities zero (see policy_node's watchdog);
    position commands (forward_command_controller) carry no hold mark."""
    if not hasattr(msg, "points"):
        return False
    return len(msg.points) == 1 and len(msg.points[0].velocities) > 0 and not any(msg.points[0].velocities)


def _call(client, timeout_s: float = 30.0) -> str:
    """Call a Trigger service (spun by another thread); its message, unless it fails."""
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
    return future.result().message


def _caption(frames: list[tuple[int, np.ndarray]], start_ns: int, text: str) -> list[np.ndarray]:
    return [caption(rgb, f"{text}  t={(stamp - start_ns) * 1e-9:4.1f}s", origin_px=(6, 16), scale=0.45)
            for stamp, rgb in frames]


# --- the graph: a process per node, or one process ---------------------------------------------

@dataclass(frozen=True)
class GraphOptions:
    """How the sim graph runs: ``runner`` (:data:`RUNNERS`), clock, launcher options."""

    runner: str = "processes"
    real_time_factor: float = 1.0
    config: str | None = None                       # parameters YAML ('' / None = the package's)
    num_threads: int = 1                            # executor threads of the one-process runner
    respawn: bool = False
    respawn_delay: float = graphs.DEFAULT_ARGUMENTS.respawn_delay
    log_dir: Path | None = None                     # per-node logs (processes; default ~/.ros/log/...)
    prefix: dict = field(default_factory=dict)      # {node: [argv prefix]} (processes)
    priority: dict = field(default_factory=dict)    # {node: SCHED_FIFO priority} (processes)
    monitor_priority: int = 0                       # SCHED_FIFO priority of the monitor's thread
    env: dict = field(default_factory=dict)         # {node: {VAR: value}} (processes)
    #: robot profile (ros.interfaces): the UR-like one by default, so the loop proves the
    #: wiring of a real cell (arm JTC without the gripper, gripper action, merged joint states)
    profile: str = "ur5e"
    camera: str = "scene"                           # camera rig (ros.cameras): scene | wrist | both

    def __post_init__(self):
        if self.runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}, got '{self.runner}'")
        if not self.real_time_factor >= 0:
            raise ValueError(f"real_time_factor must be >= 0, got {self.real_time_factor}")

    @classmethod
    def with_realtime(cls, realtime: str = "auto", **kwargs) -> GraphOptions:
        """Options with :data:`REALTIME_PRIORITIES` for ``realtime`` 'on', or 'auto' where
        permitted (processes runner only), else none."""
        runner = kwargs.get("runner", cls.runner)
        on = runner == "processes" and (realtime == "on" or (realtime == "auto" and can_use_sched_fifo()))
        return cls(**kwargs, priority=REALTIME_PRIORITIES if on else {},
                   monitor_priority=REALTIME_PRIORITIES["sim_node"] if on else 0)

    @property
    def use_sim_time(self) -> bool:
        """Anything but real time needs the simulator's clock (see sim_node's publish_clock)."""
        return self.real_time_factor != 1.0

    def launch_arguments(self) -> graphs.LaunchArguments:
        return graphs.LaunchArguments(config=self.config or "", use_sim_time=self.use_sim_time,
                                      respawn=self.respawn, respawn_delay=self.respawn_delay,
                                      profile=self.profile, camera=self.camera)

    def nodes(self) -> list[str]:
        """The node keys of the sim graph with this camera rig."""
        return graphs.graph_nodes("sim", self.camera)

    @property
    def interface(self):
        """The profile's :class:`~fdl_robot.ros.interfaces.RobotInterface`."""
        from fdl_robot.ros.interfaces import PROFILES

        return PROFILES[self.profile].interface


class _InProcessGraph:
    """Every node in this process, one executor (what ``fdl-robot run`` does)."""

    def __init__(self, options: GraphOptions, overrides: dict[str, dict], context):
        from fdl_robot.ros.runner import build_nodes

        self.nodes = build_nodes("sim", options.launch_arguments(), context=context, extra_overrides=overrides)
        self.num_threads = options.num_threads

    def spin_with(self, monitor: Node) -> list[Node]:
        return self.nodes + [monitor]

    def processes(self) -> dict:
        import psutil

        return {"all nodes + monitor (one process)": psutil.Process()}

    def poll(self) -> None:
        pass

    def pids(self) -> dict:
        return {}

    def stop(self) -> None:
        for node in self.nodes:
            node.destroy_node()


class _ProcessGraph:
    """A process per node, started and watched by :class:`~fdl_robot.ros.launcher.Launcher`."""

    def __init__(self, options: GraphOptions, overrides: dict[str, dict], progress):
        from fdl_robot.ros.launcher import Launcher, graph_processes

        keys = options.nodes()
        specs = graph_processes("sim", options.launch_arguments(), extra_overrides=overrides,
                                prefix=graphs.per_key(options.prefix, keys), env=graphs.per_key(options.env, keys),
                                priority=graphs.per_key(options.priority, keys))
        self.launcher = Launcher(specs, options.log_dir, progress=progress).start()
        self.num_threads = 1

    def spin_with(self, monitor: Node) -> list[Node]:
        return [monitor]

    def processes(self) -> dict:
        import psutil

        out = {}
        for name, pid in self.launcher.pids().items():
            try:
                out[name] = psutil.Process(pid) if pid else None
            except psutil.NoSuchProcess:
                out[name] = None
        out["episode_monitor"] = psutil.Process()
        return out

    def poll(self) -> None:
        self.launcher.poll()

    def pids(self) -> dict:
        return self.launcher.pids()

    def stop(self) -> None:
        self.launcher.stop()


class _CpuMeter:
    """CPU time of each process between :meth:`start` and :meth:`stop`, as % of one core."""

    def __init__(self, graph):
        self.graph = graph

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = {n: self._cpu(p) for n, p in self.graph.processes().items()}

    @staticmethod
    def _cpu(process) -> float | None:
        try:
            t = process.cpu_times()
            return t.user + t.system
        except Exception:  # noqa: BLE001 - a process that died has no CPU time left to read
            return None

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        out = {}
        for name, process in self.graph.processes().items():
            now, before = (self._cpu(process) if process else None), self.cpu0.get(name)
            if now is not None and before is not None and wall > 0:
                out[name] = round(100.0 * (now - before) / wall, 1)
        return out


def _with_sim_defaults(overrides: dict[str, dict], seed0: int) -> dict[str, dict]:
    """sim_node starts one seed early: every episode, the first too, begins with a reset."""
    overrides = {k: dict(v) for k, v in overrides.items()}
    sim_overrides = overrides.setdefault("sim_node", {})
    for key, value in SIM_DEFAULTS.items():
        sim_overrides.setdefault(key, value)
    sim_overrides["seed"] = seed0 - 1
    return overrides


@dataclass
class ClosedLoopRun:
    """What :func:`run_closed_loop` measured."""

    results: list[EpisodeResult]
    videos: list[list[np.ndarray]]
    timing: dict                     # eval.timing.timing_summary over the episodes
    cpu_percent: dict                # {process: % of one core}, over all episodes
    episode_timing: list[LoopTiming] = field(default_factory=list)   # what the monitor saw, per episode

    @property
    def real_time_factor(self) -> float:
        return self.timing["real_time_factor"]


def _wait_until_up(monitor: EpisodeMonitor, graph, clients, progress) -> None:
    t0 = time.monotonic()
    for client in clients:
        while not client.wait_for_service(timeout_sec=0.5):
            graph.poll()
            if time.monotonic() - t0 > STARTUP_TIMEOUT_S:
                raise TimeoutError(f"{client.srv_name} did not come up in {STARTUP_TIMEOUT_S:.0f} s")
    while monitor.detections_total == 0:
        graph.poll()
        if time.monotonic() - t0 > STARTUP_TIMEOUT_S:
            raise TimeoutError(f"no detections in {STARTUP_TIMEOUT_S:.0f} s: is detector_node up?")
        time.sleep(0.1)
    progress(f"graph up in {time.monotonic() - t0:.1f} s")


def _wait_for_outcome(monitor: EpisodeMonitor, graph, limit_steps: int, hold_steps: int) -> tuple[bool, int]:
    """(success, end step): success held for ``hold_steps`` (end = its start), or the step limit."""
    while True:
        time.sleep(0.02)
        graph.poll()
        with monitor.lock:
            since, steps, last = monitor.success_since, monitor.steps, monitor.last_joint_state_wall
        if since is not None and steps - since >= hold_steps:
            return True, since
        if steps >= limit_steps:
            return False, steps
        if time.monotonic() - last > STALL_TIMEOUT_S:
            raise RuntimeError(f"no joint_states for {STALL_TIMEOUT_S:.0f} s: sim_node stopped")


def run_closed_loop(episodes: int, seed0: int, overrides: dict[str, dict],
                    max_sim_s: float = CLOSED_LOOP_EVAL.max_sim_s, hold_s: float = HOLD_S,
                    record_episodes: int = 0, options: GraphOptions = GraphOptions(), progress=print,
                    on_episode_start: Callable[[int, dict], None] | None = None) -> ClosedLoopRun:
    """Run the sim graph for ``episodes`` episodes (module docstring).

    ``overrides`` ({node name: {parameter: value}}) go on top of the YAML and
    :data:`SIM_DEFAULTS`; the first ``record_episodes`` episodes are drawn.
    ``on_episode_start(i, pids)`` is called as episode i starts, with the node processes'
    pids (processes runner; fault injection, ``benchmarks/crash_recovery.py``).
    """
    from fdl_robot.ros.runner import make_executor

    overrides = _with_sim_defaults(overrides, seed0)
    overrides["sim_node"].setdefault("real_time_factor", options.real_time_factor)
    overrides = graphs.per_key(overrides, options.nodes())     # detector_node: every camera's
    scheduler = os.sched_getscheduler(0), os.sched_getparam(0)
    if options.monitor_priority > 0:
        # the monitor receives commands as the robot does, at its priority: set before rclpy.init
        # so that the DDS threads that deliver them inherit it (SCHED_RESET_ON_FORK would reset
        # those threads too, and left the monitor starved below every real-time node: joint
        # states received in bursts, most of them lost). The node processes the launcher starts
        # get their own priorities (REALTIME_PRIORITIES) or the default scheduler, never this
        # one (launcher.set_priority); restored when the run ends, so that a caller (a test
        # session) does not go on under SCHED_FIFO.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(options.monitor_priority))
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    graph, executor, spinner = None, None, None
    monitor = EpisodeMonitor(wall_stamps=not options.use_sim_time, record_images=record_episodes > 0,
                             interface=options.interface,
                             context=context)
    try:
        graph = (_ProcessGraph(options, overrides, progress) if options.runner == "processes"
                 else _InProcessGraph(options, overrides, context))
        executor = make_executor(graph.num_threads, context)
        for node in graph.spin_with(monitor):
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="closed_loop.executor", daemon=True)
        spinner.start()
        resets = [monitor.create_client(Trigger, f"/{name}/reset")
                  for name in ("sim_node", "tracker_node", "policy_node")]
        _wait_until_up(monitor, graph, resets, progress)
        return _episodes(monitor, graph, resets, episodes, max_sim_s, hold_s, record_episodes, progress,
                         on_episode_start)
    finally:
        monitor.record = False
        if executor is not None:
            executor.shutdown()
        if spinner is not None:
            spinner.join(timeout=5)
        if graph is not None:
            graph.stop()
        monitor.destroy_node()
        rclpy.shutdown(context=context)
        if options.monitor_priority > 0:
            os.sched_setscheduler(0, *scheduler)


def _episodes(monitor, graph, resets, episodes, max_sim_s, hold_s, record_episodes, progress,
              on_episode_start=None) -> ClosedLoopRun:
    results: list[EpisodeResult] = []
    videos: list[list[np.ndarray]] = []
    timings: list[LoopTiming] = []
    cpu = _CpuMeter(graph)
    limit_steps, hold_steps = round(max_sim_s / CONTROL_DT_S), round(hold_s / CONTROL_DT_S)
    for i in range(episodes):
        t_wall = time.monotonic()
        seed = int(_call(resets[0]).rsplit("seed", 1)[1])         # "episode N, seed S"
        for client in resets[1:]:
            _call(client)
        if i == 0:
            cpu.start()
        monitor.record = i < record_episodes
        monitor.frames = []
        start_ns = time.time_ns()
        monitor.begin()
        if on_episode_start is not None:
            on_episode_start(i, graph.pids())
        ok, end_step = _wait_for_outcome(monitor, graph, limit_steps, hold_steps)
        timings.append(monitor.finish())
        wall = time.monotonic() - t_wall
        with monitor.lock:
            perturbation = monitor.perturbations.pop(seed, None)
        results.append(EpisodeResult(i, seed, ok, round(end_step * CONTROL_DT_S, 2), round(wall, 1),
                                     monitor.commands, monitor.detections, perturbation))
        if monitor.record:
            frames = monitor.frames
            videos.append(_caption(frames, frames[0][0] if frames else start_ns, f"seed {seed}"))
        k = sum(r.success for r in results)
        progress(f"episode {i + 1}/{episodes} seed {seed}: {'success' if ok else 'FAILED '} "
                 f"after {results[-1].duration_s:.1f} s sim ({wall:.0f} s wall, {monitor.detections} "
                 f"frames detected, {monitor.commands} commands)  {k}/{len(results)}")
    return ClosedLoopRun(results, videos, timing_summary(timings), cpu.stop() if episodes else {}, timings)


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
    timing: dict                      # eval.timing.timing_summary
    cpu_percent: dict                 # {process: % of one core}
    wall_s: float
    runner: str
    overrides: dict                   # {node: {parameter: value}} on top of the YAML
    priority: dict = field(default_factory=dict)   # {node: SCHED_FIFO priority}
    #: captioned camera frames of each recorded episode (for the video and strip; not in as_dict)
    videos: list[list[np.ndarray]] = field(default_factory=list, repr=False, compare=False)

    @property
    def real_time_factor(self) -> float:
        return self.timing["real_time_factor"]

    def as_dict(self) -> dict:
        """The JSON of ``--json``: summary, timing, CPU, overrides, every episode."""
        summary = self.summary.as_dict("mean_duration_s")
        failed = summary.pop("failed_seeds")
        return {**summary, "real_time_factor": self.real_time_factor, "runner": self.runner,
                "sched_fifo": self.priority, "perturbation": self.perturbation_summary(),
                "wall_s": round(self.wall_s, 1), "timing": self.timing, "cpu_percent": self.cpu_percent,
                "overrides": self.overrides, "failed_seeds": failed, "results": [asdict(r) for r in self.results]}

    def perturbation_summary(self) -> dict:
        """The episodes' perturbation: the configured kind, how often it fired, mean re-grasps, median
        time to recover (s), and [successes, episodes] per kind drawn (``mixed`` draws one per seed)."""
        heard = [r.perturbation for r in self.results if r.perturbation]
        recover = [r.recover_s for r in self.results if r.recover_s is not None]
        by_kind: dict[str, list[int]] = {}
        for r in self.results:
            counts = by_kind.setdefault((r.perturbation or {}).get("kind", "?"), [0, 0])
            counts[0] += r.success
            counts[1] += 1
        return {"kind": self.overrides.get("sim_node", {}).get("perturbation", "none"),
                "by_kind": by_kind,
                "fired": sum(p.get("fired_s") is not None for p in heard),
                "mean_regrasps": float(np.mean([r.regrasps for r in self.results])) if self.results else 0.0,
                "median_recover_s": float(np.median(recover)) if recover else None}

    def lines(self) -> list[str]:
        s, t = self.summary, self.timing
        mean = s.mean_duration_s if s.mean_duration_s is not None else float("nan")
        iv, lat = t["command_interval_ms"], t["latency_ms"]
        lo, hi = t["on_time_window_ms"]
        timing = (f"timing ({self.runner}): commands within {lo:g}-{hi:g} ms {100 * t['commands_on_time']:.1f} % "
                  f"(interval p1/p50/p99 {iv.get('p1', float('nan')):.1f}/{iv.get('p50', float('nan')):.1f}/"
                  f"{iv.get('p99', float('nan')):.1f} ms), missed ticks {t['missed_ticks']}/{t['control_ticks']}, "
                  f"latency image stamp -> command p50 {lat.get('p50', float('nan')):.1f} ms, "
                  f"p99 {lat.get('p99', float('nan')):.1f} ms")
        cpu = "CPU % of one core: " + ", ".join(f"{k} {v:.0f}" for k, v in self.cpu_percent.items())
        p = self.perturbation_summary()
        perturbation = ([f"perturbation {p['kind']}: fired in {p['fired']}/{s.episodes} episodes, re-grasps per "
                         f"episode {p['mean_regrasps']:.2f}, time to recover median "
                         f"{p['median_recover_s'] if p['median_recover_s'] is not None else float('nan'):.2f} s; "
                         "success by kind " + ", ".join(f"{k} {n}/{m}" for k, (n, m) in sorted(p["by_kind"].items()))]
                        if p["kind"] != "none" else [])
        return [timing, cpu, *perturbation,
                f"success rate {s.percent_with_ci()}, mean duration of successes {mean:.2f} s sim, "
                f"real-time factor {self.real_time_factor:.2f}, {self.wall_s:.0f} s wall; "
                f"failed seeds {list(s.failed_seeds)}",
                f"success {s.successes}/{s.episodes}"]


class ClosedLoopEvaluator:
    """Runs policy_node's policy in the sim graph over ``config``'s seeds (module docstring).

    ``sim`` / ``detector``: sim_node / detector_node parameter overrides; ``graph``: how the
    nodes run (:class:`GraphOptions`); ``video`` (every recorded episode) and ``strip`` (the
    first) are written by :meth:`write_media` from the report, once its results are safe.
    """

    def __init__(self, config: EvalConfig = CLOSED_LOOP_EVAL, sim: dict | None = None, detector: dict | None = None,
                 record_episodes: int = 0, graph: GraphOptions = GraphOptions(),
                 video: Path | None = None, strip: Path | None = None, progress=print):
        self.config, self.sim, self.detector = config, dict(sim or {}), dict(detector or {})
        self.record_episodes, self.graph = record_episodes, graph
        self.video, self.strip, self.progress = video, strip, progress

    def run(self, policy: NodePolicy) -> ClosedLoopReport:
        overrides = {"policy_node": policy.overrides(), "sim_node": self.sim, "detector_node": self.detector}
        t0 = time.monotonic()
        run = run_closed_loop(self.config.episodes, self.config.seed0, overrides, self.config.max_sim_s,
                              record_episodes=self.record_episodes, options=self.graph, progress=self.progress)
        wall = time.monotonic() - t0
        results = run.results
        summary = SuccessSummary.of([r.seed for r in results], [r.success for r in results],
                                    [r.duration_s for r in results])
        return ClosedLoopReport(summary, results, run.timing, run.cpu_percent, wall, self.graph.runner, overrides,
                                dict(self.graph.priority), run.videos)

    def write_media(self, report: ClosedLoopReport) -> None:
        """Write the video and the strip of ``report``'s recorded episodes (OutputError if one fails)."""
        videos = report.videos
        frames = [f for v in videos for f in v]
        if frames and self.video:
            # the camera's frame rate: the video plays in simulated time, which is real time at 1.0
            camera_hz = self.sim.get("camera_rate_hz", defaults("sim_node")["camera_rate_hz"])
            write_video(frames, self.video, fps=camera_hz)
            self.progress(f"video: {self.video} ({len(frames)} frames, H.264 at {camera_hz:g} fps)")
        if videos and videos[0] and self.strip:
            write_strip(evenly_spaced(videos[0], min(STRIP_FRAMES, len(videos[0]))), self.strip)
            self.progress(f"image strip: {self.strip}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    add_arguments(p, CLOSED_LOOP_EVAL, "seconds", seed0_help="seeds seed0 .. seed0 + N - 1 (never trained on)")
    p.add_argument("--config", default=None, help="parameters YAML (default: config/fdl_robot.yaml)")
    p.add_argument("--policy", default="", help="policy_node policy, 'act' or 'scripted' ('' = the YAML's)")
    p.add_argument("--policy-model", default="", help="policy_node model_path ('' = the shipped ACT weights)")
    p.add_argument("--execution", default="", help="policy_node chunk_execution ('' = the YAML's)")
    p.add_argument("--backend", default="", help=f"detector_node backend (default {DETECTOR_DEFAULTS})")
    p.add_argument("--width", type=int, default=SIM_DEFAULTS["width"],
                   help="sim camera width (the detector runs at 320 px either way)")
    p.add_argument("--height", type=int, default=SIM_DEFAULTS["height"])
    p.add_argument("--camera", default=GraphOptions.camera, choices=list(RIGS),
                   help="camera rig (ros.cameras): the fixed scene camera, the wrist camera (a D405 on the "
                        "gripper, T_base_cam from the joint states at each image stamp) or both into one tracker")
    p.add_argument("--depth-model", choices=DEPTH_MODELS, default="realsense",
                   help="sim_node depth_model: a stereo camera's depth (sim.depth_model) or the exact render")
    p.add_argument("--perturbation", choices=PERTURBATIONS, default="none",
                   help="sim_node perturbation of every episode (sim.perturbations): the cube shifted during "
                        "the reach, knocked out of the gripper, the bin moved, a conveyor")
    p.add_argument("--runner", default=GraphOptions.runner, choices=RUNNERS,
                   help="a process per node (as ros2 launch runs it) or every node in this process")
    p.add_argument("--real-time-factor", type=float, default=GraphOptions.real_time_factor,
                   help="sim_node real_time_factor; anything but 1 runs every node on the sim's /clock")
    p.add_argument("--threads", type=int, default=1,
                   help="executor threads of the one-process runner (1 = SingleThreadedExecutor)")
    p.add_argument("--realtime", default="auto", choices=["auto", "on", "off"],
                   help="SCHED_FIFO priorities for the nodes (REALTIME_PRIORITIES; processes runner); "
                        "auto = where permitted (root or CAP_SYS_NICE)")
    p.add_argument("--profile", default=GraphOptions.profile, choices=sorted(PROFILES),
                   help="robot profile that sim_node plays and policy_node commands (ros.interfaces)")
    p.add_argument("--respawn", action="store_true", help="restart a node that dies (processes)")
    p.add_argument("--log-dir", type=Path, default=None, help="per-node log files (processes)")
    p.add_argument("--prefix", action="append", default=[], metavar="NODE=CMD",
                   help="command prefix of a node's process, e.g. policy_node='ip netns exec ws'")
    p.add_argument("--video", type=Path, default=None, help="MP4 (H.264) of the annotated camera view")
    p.add_argument("--strip", type=Path, default=None, help="image strip of the first episode")
    p.add_argument("--record-episodes", type=int, default=None,
                   help="episodes in the video (default: all when --video is given)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p


def can_use_sched_fifo() -> bool:
    """Whether this process may run threads under SCHED_FIFO (root or CAP_SYS_NICE)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (PermissionError, OSError, AttributeError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    check_args(parser, args, {"--json": JSON, "--video": VIDEO, "--strip": IMAGE, "--log-dir": DIRECTORY})
    signal.signal(signal.SIGTERM, _interrupt)     # stop the graph cleanly on SIGTERM as on Ctrl-C
    config = from_arguments(args, CLOSED_LOOP_EVAL)
    record = args.record_episodes if args.record_episodes is not None else (
        config.episodes if args.video else (1 if args.strip else 0))
    try:
        prefix = parse_prefixes(args.prefix)
    except argparse.ArgumentTypeError as exc:
        raise SystemExit(str(exc)) from exc
    graph = GraphOptions.with_realtime(args.realtime, runner=args.runner, real_time_factor=args.real_time_factor,
                                       profile=args.profile, camera=args.camera,
                                       config=args.config, num_threads=args.threads, respawn=args.respawn,
                                       log_dir=args.log_dir, prefix=prefix)
    realtime = bool(graph.priority)
    evaluator = ClosedLoopEvaluator(
        config, sim={"width": args.width, "height": args.height, "depth_model": args.depth_model,
                     "perturbation": args.perturbation,
                     "wrist_width": args.width, "wrist_height": args.height},
        detector={**DETECTOR_DEFAULTS, **({"backend": args.backend} if args.backend else {})}, record_episodes=record,
        graph=graph, video=args.video, strip=args.strip, progress=lambda s: print(s, flush=True))
    print(f"closed loop through the ROS graph ({args.runner}, real-time factor {args.real_time_factor:g}"
          f"{', use_sim_time' if graph.use_sim_time else ', wall clock'}"
          f"{', SCHED_FIFO ' + str(REALTIME_PRIORITIES) if realtime else ''}): {config.episodes} episodes, seeds "
          f"{config.seed0}..{config.seed0 + config.episodes - 1}, policy {args.policy or 'from the YAML'}", flush=True)
    report = evaluator.run(NodePolicy(args.policy, args.policy_model, args.execution))
    print("\n".join(report.lines()), flush=True)
    if args.json:
        write_json(args.json, report.as_dict(), "--json")
        print(f"results: {args.json}")
    evaluator.write_media(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

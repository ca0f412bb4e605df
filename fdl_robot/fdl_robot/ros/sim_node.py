"""sim_node: the MuJoCo pick-and-place cell as a ROS robot + RGB-D camera.

    ros2 run fdl_robot sim_node --ros-args --params-file config/fdl_robot.yaml
    fdl-robot run --graph sim            # with detector, localizer, tracker and policy

It stands in for both the realsense-ros camera and a ros2_control arm driven by a
JointTrajectoryController, so the rest of the graph runs unchanged on it.

Simulation loop
---------------
The :class:`~fdl_robot.sim.env.PickPlaceEnv` lives in ONE thread owned by the node (the
env is not thread-safe and its EGL context belongs to its renderer): every 20 ms of
simulated time (control at 50 Hz, physics at 500 Hz) the thread

1. sets the actuator targets from the latest valid command (below), or keeps the last ones;
2. advances the physics by 10 x 2 ms;
3. publishes ``/clock`` (``rosgraph_msgs/Clock``) and ``joint_states``;
4. every 1 / ``camera_rate_hz`` of simulated time (at the next control step) renders and
   publishes the colour image, aligned depth and CameraInfo, the ground truth and the
   success flag, all with that step's stamp;
5. sleeps until wall time catches up with simulated time / ``real_time_factor`` (0 = no
   sleep). When rendering is too slow for the factor, the loop re-anchors instead of
   bursting to catch up: the simulation then runs slower than asked, never faster.
   :attr:`SimNode.real_time_factor` is the measured factor (logged at shutdown).

Callbacks (commands, services) never touch the env; they hand work to the thread with
:meth:`SimNode.run_in_sim`.

Clock and stamps
----------------
Simulated time never goes backwards: an episode's time is ``t_episode_start + env.time_s``
where ``t_episode_start`` is the time the previous episode ended (the first episode
starts at 0). What the stamps are depends on ``publish_clock``:

* ``false`` (default; the graph's ``use_sim_time:=false``): stamps are the wall clock
  (system time) at each control step, as a camera driver and a ros2_control arm driver
  stamp theirs, and the other nodes run on the system clock, like a real robot. Only
  ``real_time_factor`` 1 is allowed: slower pacing would make the robot slower than its
  commands' time line.
* ``true`` (``use_sim_time:=true``): stamps are simulated time, published on
  ``clock_topic``; run the other nodes with ``use_sim_time:=true`` so their clocks,
  watchdogs and latencies use it. Any ``real_time_factor`` then works, on any machine.

Command due times are read on the same clock as the stamps.

Outputs (topics are parameters)
-------------------------------
* ``camera/color/image_raw``: ``sensor_msgs/Image`` rgb8, sensor QoS;
* ``camera/aligned_depth_to_color/image_raw``: 16UC1, millimetres along the optical axis
  (z-depth), 0 = no return, pixel-aligned with the colour image, sensor QoS;
* ``camera/color/camera_info``: plumb_bob, zero distortion, reliable. Colour, depth and
  info of a frame share one header: the same stamp and ``frame_id``
  (``camera_color_optical_frame``). The camera's pose is not published (no /tf here):
  the localizer's ``camera_xyz``/``camera_quat_xyzw`` defaults are the cell's calibrated
  (nominal) pose; each episode jitters the true pose by a few mm / < 1 deg.
* ``joint_states``: ``sensor_msgs/JointState``, names = the 6 UR arm joints +
  ``gripper_joint``; position rad and, for the gripper, the normalised closure
  (0 = open .. 1 = closed, the scale of the commands); velocity rad/s and 1/s; no
  effort. Reliable, every control step.
* ``sim/ground_truth``: ``visualization_msgs/MarkerArray`` in ``base_frame``, one CUBE
  marker per object (``ns`` = object name: ``red_cube``, the episode's
  ``distractor_k``, ``bin``; ``id`` 0), ``pose`` = the true pose of the object's body
  (cube centre; bin: centre of its floor), with the camera frame's stamp; markers
  expire after 1 s so parked distractors vanish in RViz. For evaluation only.
* ``sim/success``: ``std_msgs/Bool``, the episode's success (the red cube rests in the
  bin, see ``PickPlaceEnv.success``), with each camera frame.

Commands
--------
``trajectory_topic`` (``trajectory_msgs/JointTrajectory``, reliable), as a
JointTrajectoryController takes them: ``joint_names`` must contain the 6 arm joints and
``gripper_joint`` (any order; other names are ignored), every point a finite position
per name (velocities, accelerations and efforts are ignored: the joints are position
servos), ``time_from_start`` not decreasing. Point j is due at ``header.stamp +
time_from_start_j`` (a zero stamp means "now", the time of receipt). At each control
step the target is the first point due at or after the current time, else the last
point, so the arm holds the end of a finished trajectory; a new message replaces the
previous one. Arm targets are clipped to the joint limits and the gripper to [0, 1].
A bad message is rejected (counted, warned about) and the arm keeps its previous
target; before the first command the arm holds its start posture.

Services
--------
``~/reset`` (``std_srvs/Trigger``): start the next episode (seed + 1) with the arm at
its start posture and no command; the response arrives once it is done.
"""
from __future__ import annotations

import collections
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import rclpy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from fdl_robot.ros.base import RELIABLE_QOS, FdlNode
from fdl_robot.ros.conversions import (InvalidInput, camera_to_camera_info, depth_to_image,
                                       ns_to_stamp, rgb_to_image, stamp_to_ns)
from fdl_robot.ros.parameters import ARM_JOINTS, GRIPPER_JOINT

__all__ = ["JOINT_NAMES", "JointCommand", "SimNode", "command_target", "parse_trajectory", "main"]

JOINT_NAMES = ARM_JOINTS + [GRIPPER_JOINT]   # order of joint_states and of env actions
MAX_LAG_S = 0.25                             # wall-clock lag after which pacing re-anchors
GROUND_TRUTH_LIFETIME_S = 1.0
_MARKER_SIZE_M = {"bin": (0.18, 0.18, 0.005)}            # bin: its floor; cubes: 4 cm
_MARKER_RGBA = {"red_cube": (1.0, 0.0, 0.0, 1.0), "bin": (0.1, 0.3, 1.0, 0.6)}
_GREY = (0.6, 0.6, 0.6, 1.0)                             # distractors


# --- commands (pure functions) ------------------------------------------------------------

@dataclass(frozen=True)
class JointCommand:
    """A validated trajectory: due times (ns, sim clock) and positions in JOINT_NAMES order."""

    due_ns: np.ndarray      # (m,) int64, not decreasing
    positions: np.ndarray   # (m, 7) float64, finite


def parse_trajectory(msg: JointTrajectory, receipt_ns: int) -> JointCommand:
    """JointTrajectory -> JointCommand, or InvalidInput saying what is wrong with it."""
    names = list(msg.joint_names)
    if len(set(names)) != len(names):
        raise InvalidInput(f"duplicate joint names {names}")
    missing = [n for n in JOINT_NAMES if n not in names]
    if missing:
        raise InvalidInput(f"joint_names lack {missing}")
    if not msg.points:
        raise InvalidInput("trajectory has no points")
    columns = [names.index(n) for n in JOINT_NAMES]
    rows = []
    for j, point in enumerate(msg.points):
        if len(point.positions) != len(names):
            raise InvalidInput(f"point {j} has {len(point.positions)} positions for "
                               f"{len(names)} joint names")
        rows.append([point.positions[c] for c in columns])
    positions = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise InvalidInput("non-finite position (NaN or inf)")
    start_ns = stamp_to_ns(msg.header.stamp) or receipt_ns
    offsets = np.array([stamp_to_ns(p.time_from_start) for p in msg.points], dtype=np.int64)
    if np.any(np.diff(offsets) < 0):
        raise InvalidInput("time_from_start decreases")
    return JointCommand(due_ns=start_ns + offsets, positions=positions)


def command_target(command: JointCommand, now_ns: int) -> np.ndarray:
    """Positions (7,) of the first point due at or after ``now_ns``, else of the last point."""
    j = int(np.searchsorted(command.due_ns, now_ns, side="left"))
    return command.positions[min(j, len(command.positions) - 1)]


# --- the node ---------------------------------------------------------------------------------

class SimNode(FdlNode):
    """ROS wrapper of :class:`~fdl_robot.sim.env.PickPlaceEnv` (see the module docstring)."""

    def __init__(self, preload_torchvision: bool = True, **kwargs):
        """``preload_torchvision``: see ``PickPlaceConfig``; False only in a process of its own
        (``main``), where no detector will load torchvision after the GL context."""
        super().__init__("sim_node", **kwargs)
        self._preload_torchvision = preload_torchvision
        p = self.params
        try:
            if not p["camera_rate_hz"] > 0:
                raise ValueError(f"camera_rate_hz must be positive, got {p['camera_rate_hz']}")
            if p["width"] <= 0 or p["height"] <= 0:
                raise ValueError(f"image size must be positive, got {p['width']}x{p['height']}")
            if not p["publish_clock"] and p["real_time_factor"] != 1.0:
                raise ValueError(f"real_time_factor {p['real_time_factor']:g} needs publish_clock:=true (and "
                                 "use_sim_time:=true on the other nodes): wall-clock stamps hold only at real time")
        except BaseException:
            super().destroy_node()
            raise
        self.episode = 0
        self.seed = int(p["seed"])
        self._frame_period_ns = round(1e9 / p["camera_rate_hz"])
        self._command: JointCommand | None = None      # written by callbacks, read by the loop
        self._now_ns = 0                               # stamp of the last step (any thread)
        self._sim_clock = bool(p["publish_clock"])     # stamps: simulated time, else the wall clock
        self._sim_now_ns = 0                           # simulated time of the last step
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._rtf_window: collections.deque = collections.deque(maxlen=250)  # (wall s, sim ns)
        self.resyncs = 0          # times the loop fell MAX_LAG_S behind and re-anchored

        self.color_pub = self.create_publisher(Image, p["color_topic"], self.image_qos())
        self.depth_pub = self.create_publisher(Image, p["depth_topic"], self.image_qos())
        self.info_pub = self.create_publisher(CameraInfo, p["camera_info_topic"], RELIABLE_QOS)
        self.joint_pub = self.create_publisher(JointState, p["joint_states_topic"], RELIABLE_QOS)
        self.truth_pub = self.create_publisher(MarkerArray, p["ground_truth_topic"], RELIABLE_QOS)
        self.success_pub = self.create_publisher(Bool, p["success_topic"], RELIABLE_QOS)
        self.clock_pub = (self.create_publisher(Clock, p["clock_topic"], RELIABLE_QOS)
                          if p["publish_clock"] else None)
        self.create_subscription(JointTrajectory, p["trajectory_topic"], self.on_trajectory,
                                 RELIABLE_QOS)
        self.create_service(Trigger, "~/reset", self.on_reset)

        self._thread = threading.Thread(target=self._run, name="sim_node.env", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            super().destroy_node()
            raise RuntimeError(f"sim_node: the simulator failed to start: "
                               f"{self._startup_error}") from self._startup_error
        self.get_logger().info(
            f"MuJoCo cell, seed {self.seed}, camera {p['width']}x{p['height']} at "
            f"{p['camera_rate_hz']:g} Hz, real-time factor {p['real_time_factor']:g}")

    # --- callbacks (executor threads: never touch the env) ------------------------------

    @property
    def now_ns(self) -> int:
        """Stamp of the last control step's messages, ns: simulated time with publish_clock,
        else the wall clock (system time) at that step."""
        return self._now_ns

    def on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            command = parse_trajectory(msg, self._now_ns)
        except InvalidInput as exc:
            self.reject("bad trajectory", str(exc))
            return
        self._command = command
        self.counters["ok trajectories"] += 1

    def on_reset(self, _request, response):
        try:
            seed = self.run_in_sim(lambda env: self._reset_episode(env, self.seed + 1))
        except Exception as exc:  # noqa: BLE001 - report any failure to the caller
            response.success, response.message = False, f"reset failed: {exc}"
            return response
        response.success, response.message = True, f"episode {self.episode}, seed {seed}"
        return response

    def run_in_sim(self, fn: Callable[[Any], Any], timeout_s: float = 30.0) -> Any:
        """Run ``fn(env)`` in the simulation thread between two control steps; its result.

        For services, tests and demos that need the env (ground truth, extra renders).
        Raises what ``fn`` raised, or TimeoutError.
        """
        if threading.current_thread() is self._thread:
            return fn(self._env)
        if not self._thread.is_alive():
            raise RuntimeError("the simulation thread is not running")
        future: Future = Future()
        self._work.put((fn, future))
        return future.result(timeout=timeout_s)

    @property
    def real_time_factor(self) -> float:
        """Measured simulated / wall-clock seconds over the last 5 s of simulated time."""
        window = list(self._rtf_window)
        if len(window) < 2 or window[-1][0] <= window[0][0]:
            return float("nan")
        return (window[-1][1] - window[0][1]) * 1e-9 / (window[-1][0] - window[0][0])

    # --- the simulation thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

            p = self.params
            self._env = PickPlaceEnv(PickPlaceConfig(image_width=p["width"],
                                                     image_height=p["height"],
                                                     shadows=p["shadows"],
                                                     shadow_map_px=p["shadow_map_px"],
                                                     preload_torchvision=self._preload_torchvision))
            self._reset_episode(self._env, self.seed, first=True)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the constructor
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop(self._env)
        finally:
            self._env.close()
            self._fail_pending_work()

    def _loop(self, env) -> None:
        rtf = float(self.params["real_time_factor"])
        anchor: tuple[float, int] | None = None       # (wall s, sim ns) of the pacing origin
        while not self._stop.is_set():
            self._do_work(env)
            try:
                self._control_step(env)
            except Exception as exc:  # noqa: BLE001 - the node must not die; say why
                if not rclpy.ok(context=self.context):
                    return
                self.reject("simulation step failed", f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.1)
                continue
            wall = time.monotonic()
            self._rtf_window.append((wall, self._sim_now_ns))
            if rtf <= 0:
                continue
            if anchor is None:
                anchor = (wall, self._sim_now_ns)
            sleep_s = anchor[0] + (self._sim_now_ns - anchor[1]) * 1e-9 / rtf - wall
            if sleep_s > 0:
                self._stop.wait(sleep_s)
            elif -sleep_s > MAX_LAG_S:                 # too slow: run late, do not burst
                anchor = None
                self.resyncs += 1

    def _do_work(self, env) -> None:
        while True:
            try:
                fn, future = self._work.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(env))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _fail_pending_work(self) -> None:
        while True:
            try:
                _, future = self._work.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError("sim_node stopped"))

    def _reset_episode(self, env, seed: int, first: bool = False) -> int:
        env.reset(seed=seed)
        if not first:
            self.episode += 1
        self.seed = seed
        self._command = None
        self._episode_start_ns = self._sim_now_ns     # simulated time continues across episodes
        self._next_frame_ns = self._sim_now_ns
        self.get_logger().info(f"episode {self.episode}: seed {seed}, objects "
                               f"{', '.join(env.object_names)}")
        return seed

    def _sim_ns(self, env) -> int:
        """Simulated time, ns: the episode's start plus the env's time (continues across episodes)."""
        return self._episode_start_ns + round(env.time_s * 1e9)

    def _stamp_ns(self, sim_ns: int) -> int:
        """The stamp of a step at simulated time ``sim_ns``: itself, or the wall clock now."""
        return sim_ns if self._sim_clock else self.get_clock().now().nanoseconds

    def _control_step(self, env) -> None:
        command = self._command
        if command is not None:
            env.apply_action(command_target(command, self._stamp_ns(self._sim_ns(env))))
        env.physics_step(env.physics_substeps)
        self._sim_now_ns = sim_ns = self._sim_ns(env)
        self._now_ns = now_ns = self._stamp_ns(sim_ns)
        stamp = ns_to_stamp(now_ns)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))
        self.joint_pub.publish(self._joint_state(env, stamp))
        if sim_ns >= self._next_frame_ns:
            self._next_frame_ns += self._frame_period_ns * max(
                1, -(-(sim_ns - self._next_frame_ns) // self._frame_period_ns))
            self._publish_frame(env, stamp)

    def _joint_state(self, env, stamp) -> JointState:
        obs = env.observation()
        msg = JointState(name=list(JOINT_NAMES),
                         position=[*obs["qpos"].tolist(), obs["gripper"]],
                         velocity=[*obs["qvel"].tolist(), obs["gripper_vel"]])
        msg.header.stamp = stamp
        return msg

    def _publish_frame(self, env, stamp) -> None:
        from fdl_robot.sim.camera import depth_m_to_mm_uint16

        frame_id = self.params["frame_id"]
        rgb, depth_m = env.render_rgbd()
        self.color_pub.publish(rgb_to_image(rgb, stamp, frame_id))
        self.depth_pub.publish(depth_to_image(depth_m_to_mm_uint16(depth_m), stamp, frame_id))
        self.info_pub.publish(camera_to_camera_info(env.camera, stamp, frame_id))
        self.truth_pub.publish(self._ground_truth(env, stamp))
        self.success_pub.publish(Bool(data=bool(env.success())))
        self.counters["ok frames"] += 1

    def _ground_truth(self, env, stamp) -> MarkerArray:
        markers = []
        for name in env.object_names:
            pose = env.object_pose(name)
            m = Marker(ns=name, id=0, type=Marker.CUBE, action=Marker.ADD)
            m.header.stamp, m.header.frame_id = stamp, self.params["base_frame"]
            m.pose.position.x, m.pose.position.y, m.pose.position.z = pose.position_m.tolist()
            (m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
             m.pose.orientation.w) = pose.quat_xyzw.tolist()
            m.scale.x, m.scale.y, m.scale.z = _MARKER_SIZE_M.get(name, (0.04, 0.04, 0.04))
            m.color.r, m.color.g, m.color.b, m.color.a = _MARKER_RGBA.get(name, _GREY)
            m.lifetime.sec = int(GROUND_TRUTH_LIFETIME_S)
            markers.append(m)
        return MarkerArray(markers=markers)

    # --- shutdown ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the simulation thread (idempotent); the env is closed in that thread."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10.0)

    def destroy_node(self):
        self.stop()
        rtf = self.real_time_factor
        if rtf == rtf:   # not NaN
            self.get_logger().info(f"measured real-time factor {rtf:.2f} "
                                   f"(asked {self.params['real_time_factor']:g}; "
                                   f"{self.resyncs} re-anchors after falling behind)")
        return super().destroy_node()


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(lambda: SimNode(preload_torchvision=False))(args)


if __name__ == "__main__":
    main()

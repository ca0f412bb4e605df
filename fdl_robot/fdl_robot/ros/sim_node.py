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
* ``camera/color/image_raw``: ``sensor_msgs/Image`` rgb8, ``image_qos_*`` (reliable, keep last 5);
* ``camera/aligned_depth_to_color/image_raw``: 16UC1, millimetres along the optical axis
  (z-depth), 0 = no return, pixel-aligned with the colour image, the same QoS;
* ``camera/color/camera_info``: plumb_bob, zero distortion, reliable. Colour, depth and
  info of a frame share one header: the same stamp and ``frame_id``
  (``camera_color_optical_frame``). The camera's pose is not published (no /tf here):
  the localizer's ``camera_xyz``/``camera_quat_xyzw`` defaults are the cell's calibrated
  (nominal) pose; each episode jitters the true pose by a few mm / < 1 deg.
* ``joint_states_topic``: ``sensor_msgs/JointState`` of the six arm joints, as
  joint_state_broadcaster publishes them: in its order (alphabetical, as on Jazzy; not the
  chain order: consumers must map by name), position rad, velocity rad/s, no effort,
  reliable, every control step;
* ``gripper_joint_states_topic``: a separate JointState of ``gripper_joint`` in native
  units, as the gripper's driver publishes it (by default on the same topic: two
  publishers' messages, merged by name downstream).
* ``sim/ground_truth``: ``visualization_msgs/MarkerArray`` in ``base_frame``, one CUBE
  marker per object (``ns`` = object name: ``red_cube``, the episode's
  ``distractor_k``, ``bin``; ``id`` 0), ``pose`` = the true pose of the object's body
  (cube centre; bin: centre of its floor), with the camera frame's stamp; markers
  expire after 1 s so parked distractors vanish in RViz. For evaluation only.
* ``sim/success``: ``std_msgs/Bool``, the episode's success (the red cube rests in the
  bin, see ``PickPlaceEnv.success``), with each camera frame.
* with ``wrist_camera``: the wrist camera (a RealSense D405 on tool0) on its own
  realsense-style topics, ``wrist_camera/camera/color/image_raw``,
  ``.../aligned_depth_to_color/image_raw`` (16UC1 in the D405's 0.1 mm units: a localizer
  for it needs ``depth_scale_m`` 0.0001) and ``.../color/camera_info``, frame
  ``wrist_camera_color_optical_frame``, rendered at the same control step as the scene
  camera and stamped alike. Its mount on tool0 is ``PickPlaceEnv.T_flange_cam_nominal``
  (each episode jitters the true one by a few mm / < 1 deg).

``depth_model`` (``ideal`` | ``realsense``) sets both cameras' depth: ``sim.depth_model``,
seeded per frame by (seed, camera, physics step). ``perturbation`` (``none`` | ``shift`` |
``drop`` | ``bin`` | ``conveyor``) changes the scene during each episode, drawn per seed
(``sim.perturbations``); each reset logs what was drawn, and the episode's end its outcome.

Commands (``ros.interfaces``; the controllers' contracts: ``sim.controllers``)
--------
sim_node plays the controllers a real cell runs, strictly, as its ``RobotInterface``
parameters say (a robot profile sets them, e.g. ``config/profiles/ur5e.yaml``):

* the arm: a JointTrajectoryController on ``arm_trajectory_topic`` (exactly the six
  ``arm_joint_names``; a message naming another joint, e.g. the gripper's, is rejected
  whole, as JTC does), or a forward_command_controller on ``arm_position_topic``;
* the gripper, on its own interface: a JTC for ``gripper_joint`` on
  ``gripper_trajectory_topic``, a forward_command_controller on ``gripper_position_topic``,
  or a ``control_msgs/GripperCommand`` action server on ``gripper_action`` (a new goal
  preempts the running one, which is aborted; a goal succeeds when the gripper is within
  ``GRIPPER_GOAL_TOLERANCE`` of it or has stalled, as GripperActionController's do).
  Positions are the gripper's native units, mapped to the cell's closure by
  ``gripper_open_position`` / ``gripper_closed_position``.

Trajectories are sampled at every physics step (500 Hz, a UR's controller rate): linear
between points, from the measured state at the first update after the message, holding
the last point; a new message replaces the running trajectory. A rejected command is
counted and warned about with the controller's reason; the running command continues.
Before the first command the arm holds its start posture.

Services
--------
``~/reset`` (``std_srvs/Trigger``): start the next episode (seed + 1) with the arm at
its start posture and no command; the response arrives once it is done.
"""
from __future__ import annotations

import collections
import json
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import numpy as np
import rclpy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from fdl_robot.ros import parameters
from fdl_robot.ros.base import RELIABLE_QOS, FdlNode
from fdl_robot.ros.conversions import camera_to_camera_info, depth_to_image, ns_to_stamp, rgb_to_image, stamp_to_ns
from fdl_robot.ros.interfaces import RobotInterface
from fdl_robot.sim.controllers import CommandRejected, ForwardController, TrajectoryController, TrajectoryPoint
from fdl_robot.sim.depth_model import check_depth_model
from fdl_robot.sim.perturbations import check_perturbation

__all__ = ["SimNode", "trajectory_points", "GRIPPER_GOAL_TOLERANCE", "main"]

MAX_LAG_S = 0.25                             # wall-clock lag after which pacing re-anchors
#: A gripper goal is reached within this closure of its position (GripperActionController's
#: goal_tolerance is 0.01 in the joint's units; ours is in closure).
GRIPPER_GOAL_TOLERANCE = 0.02
#: The gripper has stalled (on an object) when its closure moved less than this per second
#: for GRIPPER_STALL_S (GripperActionController: stall_velocity_threshold, stall_timeout).
GRIPPER_STALL_VELOCITY = 0.05
GRIPPER_STALL_S = 0.3
GROUND_TRUTH_LIFETIME_S = 1.0
_MARKER_SIZE_M = {"bin": (0.18, 0.18, 0.005)}            # bin: its floor; cubes: 4 cm
_MARKER_RGBA = {"red_cube": (1.0, 0.0, 0.0, 1.0), "bin": (0.1, 0.3, 1.0, 0.6)}
_GREY = (0.6, 0.6, 0.6, 1.0)                             # distractors


# --- commands (message -> plain values) ----------------------------------------------------

def trajectory_points(msg: JointTrajectory) -> list[TrajectoryPoint]:
    """A JointTrajectory's points as ``sim.controllers`` takes them."""
    return [TrajectoryPoint(tuple(p.positions), stamp_to_ns(p.time_from_start), tuple(p.velocities),
                            tuple(p.accelerations), tuple(p.effort)) for p in msg.points]


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
            if min(p["width"], p["height"], p["wrist_width"], p["wrist_height"]) <= 0:
                raise ValueError(f"image sizes must be positive, got {p['width']}x{p['height']} and "
                                 f"wrist {p['wrist_width']}x{p['wrist_height']}")
            check_depth_model(p["depth_model"])
            check_perturbation(p["perturbation"])
            if not p["publish_clock"] and p["real_time_factor"] != 1.0:
                raise ValueError(f"real_time_factor {p['real_time_factor']:g} needs publish_clock:=true (and "
                                 "use_sim_time:=true on the other nodes): wall-clock stamps hold only at real time")
            self.interface = parameters.build_config("sim_node", RobotInterface, p)
        except BaseException:
            super().destroy_node()
            raise
        self.episode = 0
        self.seed = int(p["seed"])
        self._frame_period_ns = round(1e9 / p["camera_rate_hz"])
        itf = self.interface
        self.scale = itf.gripper_scale()
        self.arm = (TrajectoryController(itf.arm_joint_names) if itf.arm_command_interface == "trajectory"
                    else ForwardController(itf.arm_joint_names))
        self.gripper = (TrajectoryController([itf.gripper_joint]) if itf.gripper_command_interface == "trajectory"
                        else ForwardController([itf.gripper_joint]))
        # commands accepted by callbacks, handed to the controllers by the simulation thread
        self._inbox_lock = threading.Lock()
        self._inbox: dict[str, Any] = {}
        self._goal: dict | None = None                 # the active gripper goal (action interface)
        self._gripper_state = (0.0, 0.0)               # closure, closure/s at the last step
        self._now_ns = 0                               # stamp of the last step (any thread)
        self._sim_clock = bool(p["publish_clock"])     # stamps: simulated time, else the wall clock
        self._sim_now_ns = 0                           # simulated time of the last step
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._rtf_window: collections.deque = collections.deque(maxlen=250)  # (wall s, sim ns)
        self.resyncs = 0          # times the loop fell MAX_LAG_S behind and re-anchored

        from fdl_robot.sim.scene import SCENE_CAMERA, WRIST_CAMERA

        #: (camera, width, height, frame_id, colour, depth and info publishers) per published camera
        self._cameras = [(SCENE_CAMERA, p["width"], p["height"], p["frame_id"],
                          self.create_publisher(Image, p["color_topic"], self.image_qos()),
                          self.create_publisher(Image, p["depth_topic"], self.image_qos()),
                          self.create_publisher(CameraInfo, p["camera_info_topic"], RELIABLE_QOS))]
        if p["wrist_camera"]:
            self._cameras.append((WRIST_CAMERA, p["wrist_width"], p["wrist_height"], p["wrist_frame_id"],
                                  self.create_publisher(Image, p["wrist_color_topic"], self.image_qos()),
                                  self.create_publisher(Image, p["wrist_depth_topic"], self.image_qos()),
                                  self.create_publisher(CameraInfo, p["wrist_camera_info_topic"], RELIABLE_QOS)))
        self.joint_pub = self.create_publisher(JointState, itf.joint_states_topic, RELIABLE_QOS)
        self.gripper_state_pub = (self.joint_pub if itf.gripper_joint_states_topic == itf.joint_states_topic
                                  else self.create_publisher(JointState, itf.gripper_joint_states_topic,
                                                             RELIABLE_QOS))
        self.truth_pub = self.create_publisher(MarkerArray, p["ground_truth_topic"], RELIABLE_QOS)
        self.success_pub = self.create_publisher(Bool, p["success_topic"], RELIABLE_QOS)
        self.perturbation_pub = self.create_publisher(String, p["perturbation_topic"], RELIABLE_QOS)
        self._perturbation_sent: dict | None = None
        self.clock_pub = (self.create_publisher(Clock, p["clock_topic"], RELIABLE_QOS)
                          if p["publish_clock"] else None)
        self._arm_joint_order = sorted(itf.arm_joint_names)   # joint_state_broadcaster's (Jazzy)
        if itf.arm_command_interface == "trajectory":
            self.create_subscription(JointTrajectory, itf.arm_trajectory_topic,
                                     lambda m: self.on_trajectory("arm", self.arm, m), RELIABLE_QOS)
        else:
            self.create_subscription(Float64MultiArray, itf.arm_position_topic,
                                     lambda m: self.on_position("arm", self.arm, m), RELIABLE_QOS)
        if itf.gripper_command_interface == "trajectory":
            self.create_subscription(JointTrajectory, itf.gripper_trajectory_topic,
                                     lambda m: self.on_trajectory("gripper", self.gripper, m), RELIABLE_QOS)
        elif itf.gripper_command_interface == "position":
            self.create_subscription(Float64MultiArray, itf.gripper_position_topic,
                                     lambda m: self.on_position("gripper", self.gripper, m), RELIABLE_QOS)
        else:
            self._create_gripper_action_server(itf.gripper_action)
        self.create_service(Trigger, "~/reset", self.on_reset)

        self._thread = threading.Thread(target=self._run, name="sim_node.env", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            super().destroy_node()
            raise RuntimeError(f"sim_node: the simulator failed to start: "
                               f"{self._startup_error}") from self._startup_error
        wrist = f" + wrist camera {p['wrist_width']}x{p['wrist_height']}" if p["wrist_camera"] else ""
        self.get_logger().info(
            f"MuJoCo cell, seed {self.seed}, camera {p['width']}x{p['height']}{wrist} at "
            f"{p['camera_rate_hz']:g} Hz, {p['depth_model']} depth, real-time factor {p['real_time_factor']:g}")

    # --- callbacks (executor threads: never touch the env) ------------------------------

    @property
    def now_ns(self) -> int:
        """Stamp of the last control step's messages, ns: simulated time with publish_clock,
        else the wall clock (system time) at that step."""
        return self._now_ns

    def on_trajectory(self, device: str, controller: TrajectoryController, msg: JointTrajectory) -> None:
        try:
            command = controller.validate(list(msg.joint_names), trajectory_points(msg),
                                          stamp_to_ns(msg.header.stamp), self._now_ns)
        except CommandRejected as exc:
            self.reject(f"{device} trajectory rejected", str(exc))
            return
        self._deliver(device, command)
        self.counters[f"ok {device} trajectories"] += 1

    def on_position(self, device: str, controller: ForwardController, msg: Float64MultiArray) -> None:
        try:
            values = controller.validate(msg.data)
        except CommandRejected as exc:
            self.reject(f"{device} command rejected", str(exc))
            return
        self._deliver(device, values)
        self.counters[f"ok {device} commands"] += 1

    def _deliver(self, device: str, command: Any) -> None:
        with self._inbox_lock:
            self._inbox[device] = command

    # --- the gripper's GripperCommand action --------------------------------------------

    def _create_gripper_action_server(self, name: str) -> None:
        from control_msgs.action import GripperCommand
        from rclpy.action import ActionServer, GoalResponse

        self._gripper_action_type = GripperCommand
        self.gripper_server = ActionServer(self, GripperCommand, name, self._execute_gripper_goal,
                                           goal_callback=lambda _goal: GoalResponse.ACCEPT)

    async def _execute_gripper_goal(self, goal_handle):
        """Take the goal's position as the gripper's target; finish when the simulation thread
        says it is reached, stalled or preempted by a newer goal."""
        from rclpy.task import Future as RosFuture

        x = float(goal_handle.request.command.position)
        result = self._gripper_action_type.Result()
        if not np.isfinite(x):
            self.reject("gripper goal rejected", f"non-finite position {x}")
            goal_handle.abort()
            return result
        done = RosFuture(executor=self.executor)
        goal = {"closure": float(np.clip(self.scale.to_closure(x), 0.0, 1.0)), "done": done}
        self._deliver("gripper", np.array([x]))
        with self._inbox_lock:
            previous, self._goal = self._goal, goal
        if previous is not None and not previous["done"].done():
            previous["done"].set_result("preempted")
        self.counters["ok gripper goals"] += 1
        outcome = await done
        state = self._gripper_state
        result.position, result.effort = float(self.scale.to_native(state[0], clip=False)), 0.0
        result.reached_goal, result.stalled = outcome == "reached", outcome == "stalled"
        if outcome == "preempted":
            goal_handle.abort()
        else:
            goal_handle.succeed()
        return result

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
                                                     depth_model=p["depth_model"],
                                                     perturbation=p["perturbation"],
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
        self.arm.reset()
        self.gripper.reset()
        with self._inbox_lock:
            self._inbox.clear()
        self._episode_start_ns = self._sim_now_ns     # simulated time continues across episodes
        self._next_frame_ns = self._sim_now_ns
        drawn = env.perturbation
        self.get_logger().info(f"episode {self.episode}: seed {seed}, objects {', '.join(env.object_names)}"
                               + (f"; perturbation {drawn.kind} {drawn.params}" if drawn.kind != "none" else ""))
        return seed

    def _sim_ns(self, env) -> int:
        """Simulated time, ns: the episode's start plus the env's time (continues across episodes)."""
        return self._episode_start_ns + round(env.time_s * 1e9)

    def _stamp_ns(self, sim_ns: int) -> int:
        """The stamp of a step at simulated time ``sim_ns``: itself, or the wall clock now."""
        return sim_ns if self._sim_clock else self.get_clock().now().nanoseconds

    def _control_step(self, env) -> None:
        """One 20 ms control step: the controllers sampled at each 2 ms physics step."""
        with self._inbox_lock:
            inbox, self._inbox = self._inbox, {}
        if "arm" in inbox:
            self.arm.take(inbox["arm"])
        if "gripper" in inbox:
            self.gripper.take(inbox["gripper"])
        obs = env.observation()
        q_arm = obs["qpos"]
        x_gripper = self.scale.to_native([obs["gripper"]], clip=False)
        t0_ns = self._stamp_ns(self._sim_ns(env))
        step_ns = round(env.physics_dt_s * 1e9)
        for k in range(env.physics_substeps):
            t_ns = t0_ns + k * step_ns
            arm = self.arm.update(t_ns, q_arm)
            gripper = self.gripper.update(t_ns, x_gripper)
            if arm is not None or gripper is not None:
                target = env.action_targets()
                if arm is not None:
                    target[:6] = arm
                if gripper is not None:
                    target[6] = self.scale.to_closure(gripper[0])
                env.apply_action(target)
            env.physics_step(1)
        self._sim_now_ns = sim_ns = self._sim_ns(env)
        self._now_ns = now_ns = self._stamp_ns(sim_ns)
        stamp = ns_to_stamp(now_ns)
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))
        obs = env.observation()
        arm_state, gripper_state = self._joint_states(obs, stamp)
        self.joint_pub.publish(arm_state)
        self.gripper_state_pub.publish(gripper_state)
        self._gripper_state = (float(obs["gripper"]), float(obs["gripper_vel"]))
        self._update_gripper_goal(self._gripper_state)
        if sim_ns >= self._next_frame_ns:
            self._next_frame_ns += self._frame_period_ns * max(
                1, -(-(sim_ns - self._next_frame_ns) // self._frame_period_ns))
            self._publish_frame(env, stamp)

    def _joint_states(self, obs: dict, stamp) -> tuple[JointState, JointState]:
        """The arm's JointState (joint_state_broadcaster's order) and the gripper's (native),
        from the env's observation ``obs``."""
        q = dict(zip(self.interface.arm_joint_names, obs["qpos"].tolist(), strict=True))
        v = dict(zip(self.interface.arm_joint_names, obs["qvel"].tolist(), strict=True))
        arm = JointState(name=self._arm_joint_order, position=[q[n] for n in self._arm_joint_order],
                         velocity=[v[n] for n in self._arm_joint_order])
        arm.header.stamp = stamp
        gripper = JointState(name=[self.interface.gripper_joint],
                             position=[float(self.scale.to_native(obs["gripper"], clip=False))],
                             velocity=[obs["gripper_vel"] * self.scale.span])
        gripper.header.stamp = stamp
        return arm, gripper

    def _update_gripper_goal(self, state: tuple[float, float]) -> None:
        """Finish the active gripper goal when reached or stalled (simulation thread)."""
        goal = self._goal
        if goal is None or goal["done"].done():
            return
        closure, velocity = state
        if abs(closure - goal["closure"]) <= GRIPPER_GOAL_TOLERANCE:
            goal["done"].set_result("reached")
            return
        still = abs(velocity) < GRIPPER_STALL_VELOCITY
        goal["still_s"] = goal.get("still_s", 0.0) + 0.02 if still else 0.0
        if goal["still_s"] >= GRIPPER_STALL_S:
            goal["done"].set_result("stalled")

    def _publish_frame(self, env, stamp) -> None:
        from fdl_robot.sim.camera import depth_m_to_units

        for camera, width, height, frame_id, color_pub, depth_pub, info_pub in self._cameras:
            rgb, depth_m = env.render_rgbd(camera, width, height)
            units = depth_m_to_units(depth_m, env.depth_sensor(camera).depth_unit_m)
            color_pub.publish(rgb_to_image(rgb, stamp, frame_id))
            depth_pub.publish(depth_to_image(units, stamp, frame_id))
            info_pub.publish(camera_to_camera_info(env.camera_intrinsics(camera, width, height), stamp, frame_id))
        self.truth_pub.publish(self._ground_truth(env, stamp))
        self.success_pub.publish(Bool(data=bool(env.success())))
        outcome = {"episode": self.episode, "seed": self.seed, **env.perturbation.outcome()}
        if outcome != self._perturbation_sent:
            self.perturbation_pub.publish(String(data=json.dumps(outcome)))
            self._perturbation_sent = outcome
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

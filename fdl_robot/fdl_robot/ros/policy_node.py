"""policy_node: joint states + tracks -> JointTrajectory commands through the safety layer.

    ros2 run fdl_robot policy_node --ros-args --params-file config/fdl_robot.yaml

Every 1 / control_rate_hz seconds the node builds a
:class:`~fdl_robot.policy.interface.PolicyObservation` from the latest joint state and
the target track, runs :class:`~fdl_robot.policy.runner.PolicyRunner` (policy, chunked
or temporally ensembled execution; joint position limits, a rate limit between consecutive
commands and a bound on the distance from the measured joints) and publishes a
``trajectory_msgs/JointTrajectory`` for ros2_control's JointTrajectoryController.

Inputs
------
``joint_states`` (sensor_msgs/JointState): mapped by name onto ``joint_names`` (6 arm
joints + gripper, extra joints ignored). A message missing a joint, with a non-finite
position, or with lengths that disagree is rejected and makes the state *invalid* until
a good one arrives; a stamp older than the previous one is rejected and ignored. Joints
from several publishers must be merged upstream (every message must carry all joints).

``tracks`` (fdl_robot_interfaces/TrackArray, base_link): the target is the CONFIRMED (or
LOST for at most ``target_max_lost_s``) track of ``target_class`` with the most hits. An
empty array or no track of the class means *no target* (the scripted policy goes home);
a class never seen among the tracks is warned about once. The bin is where the most-hit
CONFIRMED track of ``bin_class`` is (the last one seen, if it is lost), else the configured
``bin_position``; ``~/reset`` forgets it.

Output
------
One JointTrajectory per control step: point 0 is this step's safety-filtered command,
points 1.. the remaining (also limited) points of the chunk, one per dt. Timing follows
the JointTrajectory contract, point j is due at ``header.stamp + time_from_start_j``:

* with a target, ``header.stamp`` is the *source image stamp* of the tracks used, so
  end-to-end latency (now - header.stamp) is measurable downstream, and
  ``time_from_start_j = L + (j + 1) dt`` with L = max(0, t_now - header.stamp);
* without a target, ``header.stamp = t_now`` and ``time_from_start_j = (j + 1) dt``.

Either way point j is due at t_now + (j + 1) dt, so a JointTrajectoryController (which
drops points in the past) executes point 0 next, not some point L / dt later. Camera,
tracker and policy must share a clock (``use_sim_time`` for the simulator and bags).

Watchdog
--------
When the joint states are older than ``input_timeout_s`` (node clock, arrival time) or
invalid, or the tracks are (if ``require_tracks``), the node publishes ONE hold: a single
point at the last valid joint position with zero velocity, due in dt. It then publishes
nothing until every input is fresh again, and restarts the policy from a fresh chunk.
Nothing computed from invalid data is ever published.

Services: ``~/set_target_class`` (fdl_robot_interfaces/SetTargetClass; also the
``target_class`` parameter at run time), ``~/reset`` (std_srvs/Trigger: new episode).
"""
from __future__ import annotations

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from fdl_robot_interfaces.msg import TrackArray
from fdl_robot_interfaces.srv import SetTargetClass
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from fdl_robot.core.safety import Watchdog
from fdl_robot.policy.interface import PolicyObservation
from fdl_robot.policy.runner import PolicyRunner, limits_from_params, make_policy, select_target
from fdl_robot.ros import parameters
from fdl_robot.ros.base import RELIABLE_QOS, SENSOR_QOS, FdlNode
from fdl_robot.ros.conversions import InvalidInput, ns_to_stamp, stamp_to_ns

# Parameters that can change while the node runs; the others need a restart.
_RUNTIME_PARAMETERS = {"target_class"}


def joint_positions(msg: JointState, joint_names: list[str]) -> np.ndarray:
    """JointState -> positions in ``joint_names`` order (extra joints ignored)."""
    if len(msg.position) != len(msg.name):
        raise InvalidInput(f"{len(msg.name)} names but {len(msg.position)} positions")
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [n for n in joint_names if n not in index]
    if missing:
        raise InvalidInput(f"missing joints {missing}")
    q = np.array([msg.position[index[n]] for n in joint_names], dtype=np.float64)
    if not np.all(np.isfinite(q)):
        bad = [n for n, v in zip(joint_names, q) if not np.isfinite(v)]
        raise InvalidInput(f"non-finite position for {bad}")
    return q


def _duration(t_s: float) -> Duration:
    sec, nanosec = divmod(round(t_s * 1e9), 1_000_000_000)
    return Duration(sec=int(sec), nanosec=int(nanosec))


class PolicyNode(FdlNode):
    def __init__(self, **kwargs):
        super().__init__("policy_node", **kwargs)
        p = self.params
        self.joint_names = list(p["joint_names"])
        if len(self.joint_names) != 7:
            raise ValueError("joint_names must list 6 arm joints and the gripper, "
                             f"got {self.joint_names}")
        try:
            limits = limits_from_params(p)
        except ValueError as exc:
            raise ValueError(f"policy_node joint limits: {exc}") from exc
        if limits.n != len(self.joint_names):
            raise ValueError(f"joint limits have {limits.n} entries for "
                             f"{len(self.joint_names)} joints")
        if not p["control_rate_hz"] > 0:
            raise ValueError(f"control_rate_hz must be positive, got {p['control_rate_hz']}")
        self.dt_s = 1.0 / p["control_rate_hz"]
        policy = make_policy(p["policy"], dt_s=self.dt_s, model_path=p["model_path"],
                             threads=p["policy_threads"])
        if abs(policy.dt_s - self.dt_s) > 1e-9:
            raise ValueError(f"policy '{p['policy']}' runs at {1 / policy.dt_s:g} Hz but "
                             f"control_rate_hz is {p['control_rate_hz']:g}")
        self.runner = PolicyRunner(policy, limits, p["chunk_execution"], p["ensemble_m"])
        self.watchdog = Watchdog(p["input_timeout_s"])
        self.bin_default_m = np.asarray(p["bin_position"], dtype=np.float64)
        self.bin_p_base_m = self.bin_default_m.copy()
        self.target_class: str = p["target_class"]

        self.q: np.ndarray | None = None          # last valid joint state (7,)
        self.q_stamp_ns: int | None = None        # its header stamp
        self.q_arrival_s: float | None = None     # its arrival, node clock
        self.q_valid = False                      # false after a rejected message
        self.tracks_arrival_s: float | None = None
        self.target = None                        # chosen Track message or None
        self.target_stamp = None                  # source image stamp of its TrackArray
        self.seen_classes: set[str] = set()
        self._warned_classes: set[str] = set()
        self.holding = False
        self.last_output = None                   # RunnerOutput of the last published step

        self.pub = self.create_publisher(JointTrajectory, p["trajectory_topic"], RELIABLE_QOS)
        # Best effort subscription: matches reliable and best-effort JointState publishers.
        self.create_subscription(JointState, p["joint_states_topic"], self.on_joint_state,
                                 SENSOR_QOS)
        self.create_subscription(TrackArray, p["tracks_topic"], self.on_tracks, RELIABLE_QOS)
        self.create_service(SetTargetClass, "~/set_target_class", self.on_set_target_class)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.timer = self.create_timer(self.dt_s, self.on_timer)

    # --- inputs -----------------------------------------------------------------------

    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_joint_state(self, msg: JointState) -> None:
        stamp_ns = stamp_to_ns(msg.header.stamp)
        if self.q_stamp_ns is not None and stamp_ns < self.q_stamp_ns:
            self.reject("joint_states out of order",
                        f"stamp {stamp_ns} ns < previous {self.q_stamp_ns} ns")
            return
        try:
            q = joint_positions(msg, self.joint_names)
        except InvalidInput as exc:
            self.q_valid = False
            self.reject("bad joint_states", str(exc))
            return
        self.q, self.q_stamp_ns, self.q_arrival_s, self.q_valid = q, stamp_ns, self.now_s(), True
        self.counters["ok joint_states"] += 1

    def on_tracks(self, msg: TrackArray) -> None:
        positions = np.array([[t.position.x, t.position.y, t.position.z] for t in msg.tracks],
                             dtype=np.float64).reshape(-1, 3)
        if not np.all(np.isfinite(positions)):
            self.reject("bad tracks", "non-finite track position")
            return
        if msg.header.frame_id not in ("", "base_link"):
            self.reject("bad tracks", f"frame '{msg.header.frame_id}', expected base_link")
            return
        self.tracks_arrival_s = self.now_s()
        self.seen_classes.update(t.class_name for t in msg.tracks)
        self.target = select_target(msg.tracks, self.target_class, self.params["target_max_lost_s"])
        self.target_stamp = msg.header.stamp
        if bin_class := self.params["bin_class"]:
            bin_track = select_target(msg.tracks, bin_class, max_lost_s=0.0)
            if bin_track is not None:
                self.bin_p_base_m = np.array([bin_track.position.x, bin_track.position.y,
                                              bin_track.position.z])
        if (self.target is None and msg.tracks and self.target_class not in self.seen_classes
                and self.target_class not in self._warned_classes):
            self._warned_classes.add(self.target_class)
            self.counters["unknown target class"] += 1
            self.get_logger().warning(
                f"target class '{self.target_class}' is not among the tracked classes "
                f"{sorted(self.seen_classes)}: no target (set it with ~/set_target_class)")
        self.counters["ok tracks"] += 1

    # --- control step -----------------------------------------------------------------

    def on_timer(self) -> None:
        if self.q is None:                      # nothing to hold yet: publish nothing
            self.reject("waiting for joint_states",
                        f"no valid JointState on '{self.params['joint_states_topic']}' yet")
            return
        now_s = self.now_s()
        last = {"joint_states": self.q_arrival_s}
        if self.params["require_tracks"]:
            last["tracks"] = self.tracks_arrival_s
        status = self.watchdog.update(now_s, last, valid={"joint_states": self.q_valid})
        if not status.ok:
            if status.entered:
                self.runner.reset()
                self.holding = True
                self.pub.publish(self.hold_msg(self.q))
                self.counters["holds"] += 1
                self.get_logger().warning(f"watchdog: {', '.join(status.stale)} stale or invalid; "
                                          "holding at the last joint position")
            return
        if status.recovered:
            self.holding = False
            self.get_logger().info("watchdog: inputs fresh again, resuming")
        tracks_fresh = (self.tracks_arrival_s is not None
                        and now_s - self.tracks_arrival_s <= self.params["input_timeout_s"])
        target = self.target if tracks_fresh else None
        obs = PolicyObservation(
            qpos_rad=self.q[:6], gripper=self.q[6], bin_p_base_m=self.bin_p_base_m, stamp_s=now_s,
            target_p_base_m=None if target is None else
            (target.position.x, target.position.y, target.position.z))
        out = self.runner.step(obs, now_s)
        self.last_output = out
        self.pub.publish(self.trajectory_msg(out.trajectory, now_s,
                                             None if target is None else self.target_stamp))
        self.counters["ok commands"] += 1

    def trajectory_msg(self, points: np.ndarray, now_s: float,
                       source_stamp=None) -> JointTrajectory:
        """Points (m, 7) -> JointTrajectory, point j due at now + (j + 1) dt (module doc)."""
        msg = JointTrajectory(joint_names=self.joint_names)
        now_ns = round(now_s * 1e9)
        if source_stamp is None:
            msg.header.stamp, latency_s = ns_to_stamp(now_ns), 0.0
        else:
            msg.header.stamp = source_stamp
            latency_s = max(0.0, (now_ns - stamp_to_ns(source_stamp)) * 1e-9)
        msg.points = [
            JointTrajectoryPoint(positions=row.tolist(),
                                 time_from_start=_duration(latency_s + (j + 1) * self.dt_s))
            for j, row in enumerate(points)]
        return msg

    def hold_msg(self, q: np.ndarray) -> JointTrajectory:
        """One point at ``q`` with zero velocity, due one period from now."""
        msg = JointTrajectory(joint_names=self.joint_names)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.points = [JointTrajectoryPoint(positions=q.tolist(), velocities=[0.0] * len(q),
                                           time_from_start=_duration(self.dt_s))]
        return msg

    # --- services and run-time parameters -----------------------------------------------

    def on_set_target_class(self, request, response):
        name = request.class_name.strip()
        if not name:
            response.success, response.message = False, "class_name is empty"
            return response
        result = self.set_parameters([Parameter("target_class", Parameter.Type.STRING, name)])[0]
        response.success = result.successful
        response.message = result.reason if not result.successful else (
            f"target class '{name}'" + ("" if name in self.seen_classes else
                                        " (not among the tracked classes seen so far)"))
        return response

    def on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        ours = {p.name for p in parameters.NODE_PARAMETERS["policy_node"]}
        for param in params:
            if param.name in ours and param.name not in _RUNTIME_PARAMETERS:
                return SetParametersResult(
                    successful=False,
                    reason=f"'{param.name}' takes effect at start-up only; restart the node")
        for param in params:
            if param.name == "target_class":
                if not param.value:
                    return SetParametersResult(successful=False, reason="target_class is empty")
                self.apply_target_class(param.value)
        return SetParametersResult(successful=True)

    def apply_target_class(self, name: str) -> None:
        if name == self.target_class:
            return
        self.target_class = name
        self.params["target_class"] = name
        self.target = None                      # until the next TrackArray selects one
        self.runner.reset()                     # chunks aimed at the old target are void
        self.get_logger().info(f"target class set to '{name}'")

    def on_reset(self, _request, response):
        self.runner.reset()
        self.bin_p_base_m = self.bin_default_m.copy()
        self.watchdog.reset()
        self.q_stamp_ns = None      # accept a new time base (a restarted sim or bag)
        self.holding = False
        response.success, response.message = True, "policy reset"
        return response


def main(args=None) -> None:
    from fdl_robot.ros.runner import spin_nodes

    rclpy.init(args=args)
    spin_nodes([PolicyNode()])


if __name__ == "__main__":
    main()

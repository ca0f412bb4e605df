"""policy_node: joint states + tracks -> arm and gripper commands through the safety layer.

    ros2 run fdl_robot policy_node --ros-args --params-file config/fdl_robot.yaml

Once per control period dt = 1 / control_rate_hz (see *Command timing*) the node asks
:class:`~fdl_robot.policy.inputs.PolicyInputs` what the step may do (wait, hold, or act on
a :class:`~fdl_robot.policy.interface.PolicyObservation` of the latest joint state, target
and bin), runs :class:`~fdl_robot.policy.runner.PolicyRunner` (policy, chunked or
temporally ensembled execution, the safety layer) and sends the arm's and the gripper's
parts of the command to their own controllers (``ros.interfaces``: a JointTrajectory to
the arm's JointTrajectoryController by default, or position commands; the gripper by
JointTrajectory, position command or GripperCommand action). A robot profile
(``profile:=ur5e``) sets that wiring for a real cell.

Command timing (``command_timing``)
-----------------------------------
* ``on_tracks`` (default): :class:`~fdl_robot.policy.pacing.CommandPacer` decides when. A
  step runs as soon as fresh tracks arrive, in their callback, whenever that keeps the
  interval since the last command within dt +- ``command_interval_tolerance_s``, else as
  soon as it does; without fresh tracks on a grid every dt, phased so that the next
  frame's tracks usually find the window open. One rclpy timer, re-armed for each due
  time (its period changed, then reset).
* ``fixed``: a free-running timer every dt; tracks wait for its next tick.

``on_tracks`` needs a clock that runs continuously: with ``use_sim_time`` the clock moves
in the simulator's 20 ms steps, a due time between steps would only come at the next one,
so the node then keeps ``fixed`` (and says so at start-up).

Inputs (their validation, freshness and the target and bin choice: ``policy.inputs``)
------
``joint_states_topic`` and ``gripper_joint_states_topic`` (sensor_msgs/JointState):
merged by name onto ``arm_joint_names`` + ``gripper_joint`` from any number of publishers
(the arm from joint_state_broadcaster, the gripper from its driver), freshness per joint,
the gripper's native position mapped to its closure (``policy.joint_states``). Nothing
moves before every joint has been received; the node says once which are missing.

``tracks`` (fdl_robot_interfaces/TrackArray, ``base_frame``): the target is a track of
``target_class``, the bin one of ``bin_class`` (else ``bin_position``); a class never
seen among the tracks is warned about once.

Output (the arm's; the gripper's follows ``gripper_command_interface``)
------
One JointTrajectory per control step: point 0 is this step's safety-filtered command,
points 1.. the next (also limited) points of the chunk, one per dt, up to ``trajectory_points``
in all (the arm holds the last point if commands stop: that bounds the motion after the last one). Timing follows
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
When a joint's state is older than ``input_timeout_s`` (node clock, arrival time) or
invalid, or the tracks are (if ``require_tracks``), the node publishes ONE hold: the arm at
its last valid position with zero velocity, due in dt, the gripper at its last command. It
then publishes nothing until every input is fresh again, and restarts the policy from a
fresh chunk. Nothing computed from invalid data is ever published. Joint-state stamps
that jump back by more than a second (a bag played again, a restarted robot) start a new
time base: the policy restarts instead of rejecting every message from then on. With
``use_sim_time`` a clock that jumps back (a bag looping) makes the last arrivals lie in the
future: the watchdog then sees them as stale and holds once, until the next messages.

Services: ``~/set_target_class`` (fdl_robot_interfaces/SetTargetClass; also the
``target_class`` parameter at run time), ``~/reset`` (std_srvs/Trigger: new episode).
"""
from __future__ import annotations

import math

import numpy as np
from fdl_robot_interfaces.msg import TrackArray
from fdl_robot_interfaces.srv import SetTargetClass
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from fdl_robot.policy.inputs import InputError, PolicyInputs, PolicyInputsConfig, StepKind, TrackedObject
from fdl_robot.policy.joint_states import JointStateMerger
from fdl_robot.policy.pacing import CommandPacer, PacingConfig
from fdl_robot.policy.runner import PolicyConfig, PolicyRunner, limits_from_params, make_policy
from fdl_robot.ros import parameters
from fdl_robot.ros.base import NEW_TIME_BASE, RELIABLE_QOS, SENSOR_QOS, FdlNode
from fdl_robot.ros.commands import CommandPublisher
from fdl_robot.ros.conversions import ns_to_stamp, stamp_to_ns
from fdl_robot.ros.interfaces import RobotInterface

# Parameters that can change while the node runs; the others need a restart.
_RUNTIME_PARAMETERS = frozenset({"target_class"})
# A due time this close counts as now (float seconds of a wall clock resolve ~0.2 us).
_DUE_SLACK_S = 1e-6
# An idle graph says once that it waits for joint states, then at most this often.
_WAIT_LOG_PERIOD_S = 60.0


def tracked_objects(msg: TrackArray) -> list[TrackedObject]:
    """TrackArray -> the tracks as ``policy.inputs`` takes them."""
    return [TrackedObject(t.id, t.state, t.class_name, t.hits, t.time_since_update_s,
                          (t.position.x, t.position.y, t.position.z), (t.velocity.x, t.velocity.y, t.velocity.z),
                          _state_covariance(t))
            for t in msg.tracks]


def _state_covariance(t) -> np.ndarray | None:
    """The (6, 6) covariance of [p; v] of a Track, None if the message has none (all zero)."""
    P_pv = np.reshape(t.position_velocity_covariance, (3, 3))
    P = np.block([[np.reshape(t.position_covariance, (3, 3)), P_pv],
                  [P_pv.T, np.reshape(t.velocity_covariance, (3, 3))]])
    return P if np.any(P[3:, 3:]) else None


class PolicyNode(FdlNode):
    def __init__(self, **kwargs):
        super().__init__("policy_node", **kwargs)
        p = self.params
        try:
            config = parameters.build_config("policy_node", PolicyConfig, p)
            limits = limits_from_params(p)
            self.interface = parameters.build_config("policy_node", RobotInterface, p)
            joints = JointStateMerger(self.interface.arm_joint_names, self.interface.gripper_joint,
                                      self.interface.gripper_scale())
            self.inputs = PolicyInputs(parameters.build_config("policy_node", PolicyInputsConfig, p), joints)
            pacing = parameters.build_config("policy_node", PacingConfig, p)
            pacer = CommandPacer(config.dt_s, pacing, start_s=self.now_s())
        except ValueError as exc:
            raise ValueError(f"policy_node: {exc}") from exc
        self.dt_s = config.dt_s
        policy = make_policy(config.policy, dt_s=self.dt_s, model_path=config.model_path,
                             threads=config.policy_threads)
        self.runner = PolicyRunner(policy, limits, config.chunk_execution, config.ensemble_m,
                                   config.trajectory_points)
        self.holding = False
        self._waiting_logged_s: float | None = None

        self.commands = CommandPublisher(self, self.interface, on_error=self.reject)
        # Best effort subscriptions: match reliable and best-effort JointState publishers.
        for topic in self.interface.joint_states_topics:
            self.create_subscription(JointState, topic, self.on_joint_state, SENSOR_QOS)
        self.create_subscription(TrackArray, p["tracks_topic"], self.on_tracks, RELIABLE_QOS)
        self.create_service(SetTargetClass, "~/set_target_class", self.on_set_target_class)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        on_tracks = pacing.timing == "on_tracks"
        if on_tracks and self.get_parameter("use_sim_time").value:
            self.get_logger().info("command_timing 'on_tracks' needs a continuous clock; with "
                                   "use_sim_time it moves in steps: commanding on a fixed timer")
            on_tracks = False
        self.command_timing = "on_tracks" if on_tracks else "fixed"
        self.pacer: CommandPacer | None = pacer if on_tracks else None
        self.timer = self.create_timer(self.dt_s, self.on_pacer_timer if on_tracks else self.on_timer)

    @property
    def q(self) -> np.ndarray | None:
        """The last valid joint state (7,), in ``joint_names`` order."""
        return self.inputs.q

    @property
    def target(self):
        """The chosen target track, or None."""
        return self.inputs.target

    # --- inputs -----------------------------------------------------------------------

    def on_joint_state(self, msg: JointState) -> None:
        try:
            new_time_base = self.inputs.add_joint_state(msg.name, msg.position,
                                                        stamp_to_ns(msg.header.stamp), self.now_s())
        except InputError as exc:
            self.reject(exc.reason, str(exc))
            return
        if new_time_base:                       # a bag played again, a restarted robot
            self.runner.reset()
            self.commands.reset()
            self.counters[NEW_TIME_BASE] += 1
            self.get_logger().info("joint-state stamps jumped back: a new time base, policy restarted")
        self.counters["ok joint_states"] += 1

    def on_tracks(self, msg: TrackArray) -> None:
        now_s = self.now_s()
        try:
            unknown = self.inputs.add_tracks(tracked_objects(msg), msg.header.frame_id,
                                             msg.header.stamp, now_s, stamp_to_ns(msg.header.stamp) * 1e-9)
        except InputError as exc:
            self.reject(exc.reason, str(exc))
            return
        if unknown:
            self.counters["unknown target class"] += 1
            self.get_logger().warning(
                f"target class '{self.inputs.target_class}' is not among the tracked classes "
                f"{sorted(self.inputs.seen_classes)}: no target (set it with ~/set_target_class)")
        self.counters["ok tracks"] += 1
        if self.pacer is not None:
            self.pacer.tracks_arrived(now_s)
            self.pace(now_s)

    # --- when: command timing -------------------------------------------------------------

    def on_timer(self) -> None:
        """``fixed``: every dt."""
        self.control_step(self.now_s())

    def on_pacer_timer(self) -> None:
        """``on_tracks``: the timer fired at the pacer's due time."""
        self.pace(self.now_s())

    def pace(self, now_s: float) -> None:
        """Run the control step if the pacer says it is due, then arm the timer for the next one."""
        pacer = self.pacer
        if pacer.due_s <= now_s + _DUE_SLACK_S:
            pacer.decided(now_s, self.control_step(now_s))
            now_s = self.now_s()                # the step took time; the timer counts from now
        self.timer.timer_period_ns = max(1, math.ceil((pacer.due_s - now_s) * 1e9))
        self.timer.reset()

    # --- control step -----------------------------------------------------------------

    def control_step(self, now_s: float) -> bool:
        """One control step at ``now_s``; True if it published (a command or a hold)."""
        step = self.inputs.step(now_s)
        if step.kind is StepKind.WAIT:          # nothing to hold yet: publish nothing
            self.log_waiting(step.stale)
            return False
        if step.kind is StepKind.HOLD:
            self.runner.reset()
            self.holding = True
            self.commands.hold(step.q_hold, self.get_clock().now().to_msg(), self.dt_s)
            self.counters["holds"] += 1
            self.get_logger().warning(f"watchdog: {self.describe(step.stale)} stale or invalid; "
                                      "holding at the last joint position")
            return True
        if step.kind is StepKind.STALE:
            return False
        if step.recovered:
            self.holding = False
            self.get_logger().info("watchdog: inputs fresh again, resuming")
        out = self.runner.step(step.observation, now_s)
        self.commands.publish(out.trajectory, *self.due_times(len(out.trajectory), now_s, step.source_stamp))
        self.counters["ok commands"] += 1
        return True

    def due_times(self, m: int, now_s: float, source_stamp=None) -> tuple:
        """(header stamp, time_from_start of m points): point j due at now + (j + 1) dt
        (module doc); the stamp is the source image's when there is a target."""
        now_ns = round(now_s * 1e9)
        if source_stamp is None:
            stamp, latency_s = ns_to_stamp(now_ns), 0.0
        else:
            stamp, latency_s = source_stamp, max(0.0, (now_ns - stamp_to_ns(source_stamp)) * 1e-9)
        return stamp, [latency_s + (j + 1) * self.dt_s for j in range(m)]

    def describe(self, inputs: tuple[str, ...]) -> str:
        """Input names for a log line, the six arm joints said as one."""
        arm = self.interface.arm_joint_names
        if set(arm) <= set(inputs):
            inputs = ("the arm's joint states", *(n for n in inputs if n not in arm))
        return ", ".join(inputs)

    def log_waiting(self, missing: tuple[str, ...]) -> None:
        """Say once which joints were never received, then at most every _WAIT_LOG_PERIOD_S."""
        self.counters["waiting for joint_states"] += 1
        now = self.now_s()
        if self._waiting_logged_s is not None and 0 <= now - self._waiting_logged_s < _WAIT_LOG_PERIOD_S:
            return
        self._waiting_logged_s = now
        topics = " and ".join(f"'{t}'" for t in self.interface.joint_states_topics)
        self.get_logger().info(f"waiting for {self.describe(missing)} on {topics}; nothing is "
                               "commanded until every joint has been received")

    # --- services and run-time parameters -----------------------------------------------

    def on_set_target_class(self, request, response):
        name = request.class_name.strip()
        if not name:
            response.success, response.message = False, "class_name is empty"
            return response
        result = self.set_parameters([Parameter("target_class", Parameter.Type.STRING, name)])[0]
        response.success = result.successful
        response.message = result.reason if not result.successful else (
            f"target class '{name}'" + ("" if name in self.inputs.seen_classes else
                                        " (not among the tracked classes seen so far)"))
        return response

    def on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        refused = self.refuse_startup_only(params, _RUNTIME_PARAMETERS)
        if refused is not None:
            return refused
        for param in params:
            if param.name == "target_class":
                if not param.value:
                    return SetParametersResult(successful=False, reason="target_class is empty")
                self.apply_target_class(param.value)
        return SetParametersResult(successful=True)

    def apply_target_class(self, name: str) -> None:
        if not self.inputs.set_target_class(name):
            return
        self.params["target_class"] = name
        self.runner.reset()                     # chunks aimed at the old target are void
        self.get_logger().info(f"target class set to '{name}'")

    def on_reset(self, _request, response):
        self.runner.reset()
        self.inputs.reset()
        self.commands.reset()
        self.holding = False
        response.success, response.message = True, "policy reset"
        return response


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(PolicyNode)(args)


if __name__ == "__main__":
    main()

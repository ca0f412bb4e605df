"""Joint targets -> the arm's and the gripper's command interfaces (``ros.interfaces``).

The stack plans in one joint vector q = [6 arm joints (rad), gripper closure]. A
:class:`CommandPublisher` sends the arm's columns and the gripper's column to their own
controllers, as the node's :class:`~fdl_robot.ros.interfaces.RobotInterface` says; the
gripper's closure is converted to its native position on the way out.

Timing: :meth:`CommandPublisher.publish` takes the points' due times as a header stamp and
a ``time_from_start`` per point (the JointTrajectory contract); a forward_command_controller
has no time line and gets point 0 only, now. A gripper action goal is sent only when the
commanded closure has moved by more than ``gripper_goal_deadband`` since the last goal.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from fdl_robot.ros.base import RELIABLE_QOS
from fdl_robot.ros.conversions import s_to_duration
from fdl_robot.ros.interfaces import RobotInterface

__all__ = ["CommandPublisher"]


def _trajectory(names: Sequence[str], columns: np.ndarray, stamp, times_s: Sequence[float],
                zero_velocity: bool = False) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = stamp
    n = columns.shape[1]
    msg.points = [JointTrajectoryPoint(positions=row.tolist(), time_from_start=s_to_duration(t),
                                       velocities=[0.0] * n if zero_velocity else [])
                  for row, t in zip(columns, times_s, strict=True)]
    return msg


class CommandPublisher:
    """Publishers (and the gripper action client) of one node for ``interface``."""

    def __init__(self, node, interface: RobotInterface, on_error=None):
        """``on_error(reason, detail)``: how a failure to send is reported (a node's reject)."""
        self.node, self.interface = node, interface
        self.scale = interface.gripper_scale()
        self.n_arm = len(interface.arm_joint_names)
        self.on_error = on_error or (lambda reason, detail: None)
        self.last_gripper_closure: float | None = None    # the last closure commanded
        self._goal_closure: float | None = None           # the last closure sent as a goal
        arm_type = JointTrajectory if interface.arm_command_interface == "trajectory" else Float64MultiArray
        self.arm_pub = node.create_publisher(arm_type, interface.arm_command_topic, RELIABLE_QOS)
        self.gripper_pub = self.gripper_client = None
        if interface.gripper_command_interface == "trajectory":
            self.gripper_pub = node.create_publisher(JointTrajectory, interface.gripper_trajectory_topic,
                                                     RELIABLE_QOS)
        elif interface.gripper_command_interface == "position":
            self.gripper_pub = node.create_publisher(Float64MultiArray, interface.gripper_position_topic,
                                                     RELIABLE_QOS)
        else:
            from control_msgs.action import GripperCommand
            from rclpy.action import ActionClient

            self._goal_type = GripperCommand.Goal
            self.gripper_client = ActionClient(node, GripperCommand, interface.gripper_action)

    def reset(self) -> None:
        """New episode: the next gripper command is sent whatever the last one was."""
        self.last_gripper_closure = self._goal_closure = None

    def publish(self, points: np.ndarray, stamp, times_s: Sequence[float]) -> None:
        """Points (m, 7) = arm rad + closure; point j due at ``stamp`` + ``times_s[j]``."""
        points = np.asarray(points, dtype=np.float64)
        self._send_arm(points[:, :self.n_arm], stamp, times_s)
        self._send_gripper(points[:, self.n_arm], stamp, times_s)

    def hold(self, q: np.ndarray, stamp, dt_s: float) -> None:
        """Hold: the arm at ``q``'s arm joints with zero velocity, due in ``dt_s``; the
        gripper keeps its last command (its measured closure if none was sent), so a
        held object is not let go."""
        q = np.asarray(q, dtype=np.float64)
        self._send_arm(q[None, :self.n_arm], stamp, [dt_s], zero_velocity=True)
        closure = self.last_gripper_closure if self.last_gripper_closure is not None else q[self.n_arm]
        self._send_gripper(np.array([closure]), stamp, [dt_s], zero_velocity=True)

    # --- the two devices ----------------------------------------------------------------

    def _send_arm(self, arm: np.ndarray, stamp, times_s, zero_velocity: bool = False) -> None:
        if self.interface.arm_command_interface == "trajectory":
            self.arm_pub.publish(_trajectory(self.interface.arm_joint_names, arm, stamp, times_s,
                                             zero_velocity))
        else:
            self.arm_pub.publish(Float64MultiArray(data=arm[0].tolist()))

    def _send_gripper(self, closure: np.ndarray, stamp, times_s, zero_velocity: bool = False) -> None:
        self.last_gripper_closure = float(closure[0])
        native = self.scale.to_native(closure)
        kind = self.interface.gripper_command_interface
        if kind == "trajectory":
            self.gripper_pub.publish(_trajectory([self.interface.gripper_joint], native[:, None], stamp,
                                                 times_s, zero_velocity))
        elif kind == "position":
            self.gripper_pub.publish(Float64MultiArray(data=[float(native[0])]))
        else:
            self._send_goal(float(closure[0]), float(native[0]))

    def _send_goal(self, closure: float, native: float) -> None:
        if (self._goal_closure is not None
                and abs(closure - self._goal_closure) <= self.interface.gripper_goal_deadband):
            return
        if not self.gripper_client.server_is_ready():
            self.on_error("gripper action server not ready",
                          f"no GripperCommand server on '{self.interface.gripper_action}'")
            return
        goal = self._goal_type()
        goal.command.position, goal.command.max_effort = native, self.interface.gripper_max_effort
        self.gripper_client.send_goal_async(goal)
        self._goal_closure = closure

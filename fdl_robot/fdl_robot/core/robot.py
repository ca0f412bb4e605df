"""The robot the stack drives, stated once: joint names, their order, the control period.

Every joint vector in fdl_robot (commands, joint states, policy features, demonstrations)
lists the six arm joints in chain order (the UR / ros2_control names) and then the
gripper, whose position is its closure fraction (0 = open .. 1 = closed)::

    q = [q_shoulder_pan, q_shoulder_lift, q_elbow, q_wrist_1, q_wrist_2, q_wrist_3, g]

The kinematic model of the arm is its URDF (``fdl_robot.description.UR5E_URDF``, read by
:func:`fdl_robot.core.robot_model.ur5e_gripper`), the home posture and the IK are
:mod:`fdl_robot.core.kinematics`'; the URDF and the simulator's MJCF use these names (tests check).
"""
from __future__ import annotations

__all__ = ["BASE_FRAME", "ARM_JOINT_NAMES", "GRIPPER_JOINT_NAME", "JOINT_NAMES", "N_ARM_JOINTS",
           "GRIPPER_RANGE", "CONTROL_DT_S", "CONTROL_RATE_HZ"]

#: The robot's base frame (REP-105): objects, tracks and targets are expressed in it.
BASE_FRAME = "base_link"
#: The six arm joints in chain order (UR naming).
ARM_JOINT_NAMES: tuple[str, ...] = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                                    "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")
#: The gripper's joint in joint states and commands; its position is the closure fraction.
GRIPPER_JOINT_NAME = "gripper_joint"
#: Joint order of every joint vector: arm joints, then the gripper.
JOINT_NAMES: tuple[str, ...] = ARM_JOINT_NAMES + (GRIPPER_JOINT_NAME,)
N_ARM_JOINTS = len(ARM_JOINT_NAMES)
#: Gripper closure range: 0 = open, 1 = closed (pads touching).
GRIPPER_RANGE: tuple[float, float] = (0.0, 1.0)

#: Control period of the arm, seconds: the policy's step, the simulator's control step,
#: and the spacing of JointTrajectory points (50 Hz, as ACT's original robot).
CONTROL_DT_S = 0.02
CONTROL_RATE_HZ = 1.0 / CONTROL_DT_S

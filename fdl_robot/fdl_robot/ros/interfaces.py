"""How commands reach the arm and the gripper, and where their states come from: robot profiles.

On real robots the arm and the gripper are separate devices behind separate controllers.
A ros2_control JointTrajectoryController (JTC) rejects a whole message that names a joint
it does not control, so the arm's commands carry the arm's joints only, and the gripper
gets its own interface. :class:`RobotInterface` states that wiring once; ``policy_node`` and
``teleop_node`` (which command) and ``sim_node`` (which plays the robot) declare the same
parameters from it, and a robot profile (:data:`PROFILES`, ``config/profiles/<name>.yaml``)
sets them for a real cell.

Arm (``arm_command_interface``)
-------------------------------
* ``trajectory``: ``trajectory_msgs/JointTrajectory`` with ``arm_joint_names`` to a JTC
  (``arm_trajectory_topic``), one per control step, this step's command followed by the
  next points of the chunk. Use it when the controller is a JTC (every ros2_control arm,
  ur_robot_driver's ``scaled_joint_trajectory_controller``, which also slows down with the
  teach pendant's speed slider). Each message replaces the running trajectory.
* ``position``: ``std_msgs/Float64MultiArray`` of the arm's positions, in
  ``arm_joint_names`` order, to a ``forward_command_controller`` (``arm_position_topic``,
  e.g. ``forward_position_controller/commands``) at the control rate. Use it when the
  controller should not interpolate or re-plan: a JTC that replaces its trajectory 50
  times a second can stutter (reported for ros2_kortex at 60 Hz). There is no time line:
  the robot jumps to each command, so the safety layer's rate limit is all that smooths it,
  and when commands stop the arm stays at the last one.

Gripper (``gripper_command_interface``), in native units (see ``core.gripper``)
-------------------------------------------------------------------------------
* ``trajectory``: a JointTrajectory with ``gripper_joint`` only, to a gripper JTC
  (``gripper_trajectory_topic``), with the same due times as the arm's points;
* ``position``: ``Float64MultiArray`` ``[x]`` to a forward_command_controller
  (``gripper_position_topic``), every control step;
* ``action``: ``control_msgs/action/GripperCommand`` (``gripper_action``), which
  ros2_control's GripperActionController and most gripper drivers serve; a goal
  (``position`` x, ``max_effort`` = ``gripper_max_effort``) is sent when the commanded
  closure moves by more than ``gripper_goal_deadband`` from the last goal (the server
  preempts the running goal), never 50 goals a second.

Joint states
------------
The arm's joints on ``joint_states_topic`` (joint_state_broadcaster), the gripper's on
``gripper_joint_states_topic`` (its driver; often the same ``joint_states``, from another
publisher). The policy merges them by name (``policy.joint_states``).

Profiles
--------
``python -m fdl_robot.ros.interfaces --yaml NAME`` prints ``config/profiles/NAME.yaml``
(a test keeps the files and :data:`PROFILES` in agreement); ``--markdown`` the README's
table. Pass one with ``profile:=NAME`` (launch files) or ``--profile NAME`` (fdl-robot).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.gripper import GripperScale
from fdl_robot.core.robot import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, N_ARM_JOINTS

__all__ = ["ARM_INTERFACES", "GRIPPER_INTERFACES", "RobotInterface", "RobotProfile", "PROFILES",
           "DEFAULT_PROFILE", "profile_path", "to_yaml", "to_markdown"]

ARM_INTERFACES = ("trajectory", "position")
GRIPPER_INTERFACES = ("trajectory", "position", "action")
#: Nodes that declare the interface parameters: the commanding sides and the robot side.
INTERFACE_NODES = ("policy_node", "teleop_node", "sim_node")


@dataclass(frozen=True)
class RobotInterface:
    """The wiring of arm and gripper (module docstring); defaults are the simulated cell's."""

    arm_joint_names: tuple[str, ...] = ARM_JOINT_NAMES
    gripper_joint: str = GRIPPER_JOINT_NAME
    gripper_open_position: float = 0.0
    gripper_closed_position: float = 1.0
    arm_command_interface: str = "trajectory"
    arm_trajectory_topic: str = "joint_trajectory_controller/joint_trajectory"
    arm_position_topic: str = "forward_position_controller/commands"
    gripper_command_interface: str = "trajectory"
    gripper_trajectory_topic: str = "gripper_controller/joint_trajectory"
    gripper_position_topic: str = "gripper_controller/commands"
    gripper_action: str = "gripper_controller/gripper_cmd"
    gripper_max_effort: float = 0.0
    gripper_goal_deadband: float = 0.02
    joint_states_topic: str = "joint_states"
    gripper_joint_states_topic: str = "joint_states"

    def __post_init__(self):
        names = (*self.arm_joint_names, self.gripper_joint)
        if len(self.arm_joint_names) != N_ARM_JOINTS or len(set(names)) != len(names) or not all(names):
            raise ValueError(f"arm_joint_names must list {N_ARM_JOINTS} distinct arm joints and gripper_joint "
                             f"another one, got {list(self.arm_joint_names)} and '{self.gripper_joint}'")
        if self.arm_command_interface not in ARM_INTERFACES:
            raise ValueError(f"arm_command_interface must be one of {list(ARM_INTERFACES)}, "
                             f"got '{self.arm_command_interface}'")
        if self.gripper_command_interface not in GRIPPER_INTERFACES:
            raise ValueError(f"gripper_command_interface must be one of {list(GRIPPER_INTERFACES)}, "
                             f"got '{self.gripper_command_interface}'")
        if not (0 <= self.gripper_goal_deadband < 1 and np.isfinite(self.gripper_max_effort)
                and self.gripper_max_effort >= 0):
            raise ValueError(f"gripper_goal_deadband must be in [0, 1) and gripper_max_effort >= 0, got "
                             f"{self.gripper_goal_deadband} and {self.gripper_max_effort}")
        self.gripper_scale()           # validates the open and closed positions

    def gripper_scale(self) -> GripperScale:
        return GripperScale(self.gripper_open_position, self.gripper_closed_position)

    @property
    def joint_states_topics(self) -> tuple[str, ...]:
        """The distinct topics joint states come from."""
        return tuple(dict.fromkeys((self.joint_states_topic, self.gripper_joint_states_topic)))

    @property
    def arm_command_topic(self) -> str:
        """Where the arm's commands go (the topic a monitor of the commands listens to)."""
        return self.arm_trajectory_topic if self.arm_command_interface == "trajectory" else self.arm_position_topic


@dataclass(frozen=True)
class RobotProfile:
    """A named :class:`RobotInterface` with how to start the robot side and our graph."""

    name: str
    summary: str
    robot_launch: str          # how the robot's own drivers are started ('' = nothing to start)
    launch: str                # our graph's launch line with this profile
    interface: RobotInterface


#: Robotiq 2F-85 on ros2_control (PickNik's ros2_robotiq_gripper): knuckle joint, 0 rad open ..
#: 0.7929 rad closed (its ros2_control xacro's gripper_closed_position; URDF limit 0.8), driven
#: by robotiq_gripper_controller, a GripperActionController; its joint_state_broadcaster
#: publishes /joint_states too.
_ROBOTIQ = dict(gripper_joint="robotiq_85_left_knuckle_joint", gripper_open_position=0.0,
                gripper_closed_position=0.7929, gripper_command_interface="action",
                gripper_action="robotiq_gripper_controller/gripper_cmd")

PROFILES: dict[str, RobotProfile] = {p.name: p for p in (
    RobotProfile(
        "sim", "The simulated cell (sim_node): arm and gripper JTCs, closure as the gripper's position.",
        "", "ros2 launch fdl_robot sim.launch.py", RobotInterface()),
    RobotProfile(
        "ur5e", "UR5e on ur_robot_driver (scaled_joint_trajectory_controller, /joint_states without the "
        "gripper) with a Robotiq 2F-85 on its own driver (GripperCommand action, knuckle angle in rad).",
        "ros2 launch ur_robot_driver ur_control.launch.py ur_type:=ur5e robot_ip:=<ip> & "
        "ros2 launch robotiq_driver robotiq_control.launch.py",
        "ros2 launch fdl_robot fdl_robot.launch.py profile:=ur5e",
        RobotInterface(arm_trajectory_topic="scaled_joint_trajectory_controller/joint_trajectory", **_ROBOTIQ)),
    RobotProfile(
        "ros2_control", "A generic ros2_control arm: joint_trajectory_controller for the arm, a "
        "forward_command_controller for a gripper whose joint is in metres of finger travel (0 .. 0.04).",
        "ros2 launch <your_robot>_bringup <your_robot>.launch.py",
        "ros2 launch fdl_robot fdl_robot.launch.py profile:=ros2_control",
        RobotInterface(gripper_joint="gripper_finger_joint", gripper_open_position=0.0,
                       gripper_closed_position=0.04, gripper_command_interface="position")),
)}
DEFAULT_PROFILE = "sim"


def profile_path(name: str) -> Path:
    """config/profiles/<name>.yaml beside the package's config/fdl_robot.yaml."""
    from fdl_robot.ros.graph import default_config

    if name not in PROFILES:
        raise ValueError(f"unknown robot profile '{name}'; choose one of {sorted(PROFILES)}")
    return default_config().parent / "profiles" / f"{name}.yaml"


def _yaml_value(value) -> str:
    from fdl_robot.ros.parameters import _yaml_value as yaml_value

    return yaml_value(list(value) if isinstance(value, tuple) else value)


def to_yaml(name: str) -> str:
    """The parameters file of profile ``name``: every interface field, for every node that
    declares them (pass it after config/fdl_robot.yaml)."""
    profile = PROFILES[name]
    lines = [f"# Robot profile '{name}': {profile.summary}",
             f"# Generated by `python -m fdl_robot.ros.interfaces --yaml {name}` (a test checks it).",
             f"# Robot side: {profile.robot_launch or 'nothing to start (sim_node plays the robot)'}",
             f"# Our graph:  {profile.launch}"]
    for node in INTERFACE_NODES:
        lines += ["", f"/**/{node}:", "  ros__parameters:"]
        lines += [f"    {f.name}: {_yaml_value(getattr(profile.interface, f.name))}"
                  for f in fields(RobotInterface)]
    return "\n".join(lines) + "\n"


def to_markdown() -> str:
    lines = ["| profile | robot | robot side | our graph |", "|---|---|---|---|"]
    for p in PROFILES.values():
        lines.append(f"| `{p.name}` | {p.summary} | {f'`{p.robot_launch}`' if p.robot_launch else '-'} | "
                     f"`{p.launch}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print a robot profile's parameters file or the README table.",
                                     formatter_class=HelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--yaml", choices=sorted(PROFILES), help="print config/profiles/<NAME>.yaml")
    group.add_argument("--markdown", action="store_true", help="print the README's profile table")
    args = parser.parse_args(argv)
    print(to_yaml(args.yaml) if args.yaml else to_markdown(), end="")


if __name__ == "__main__":
    main()

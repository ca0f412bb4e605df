"""The MJCF scene of the pick-and-place cell and the names that index into it.

The scene lives in ``assets/pick_place_cell.xml`` (primitive geoms only, no
meshes, no downloads); its header comment documents the frames, the UR5e
Denavit-Hartenberg chain, the gripper and the contact bits.  This module only
loads it and names its parts, so that every other module refers to joints and
bodies through these constants instead of string literals.  The robot's facts are
not restated here: the arm's joint names come from :mod:`fdl_robot.core.robot`, its
kinematics from its URDF (``ROBOT_URDF_PATH``, through
:func:`fdl_robot.core.robot_model.ur5e_gripper`) and its home posture from
:mod:`fdl_robot.core.kinematics`; the MJCF spells the same names, ranges and link poses
(tests check them against the URDF).

Frames: the MuJoCo world frame *is* ``base_link`` (origin at the robot base on
the table top, REP-103 axes x forward, y left, z up), so world coordinates are
base_link coordinates.
"""

from __future__ import annotations

from pathlib import Path

import mujoco

from fdl_robot.core import kinematics
from fdl_robot.core.robot import ARM_JOINT_NAMES
from fdl_robot.description import UR5E_URDF

__all__ = [
    "SCENE_XML_PATH",
    "ROBOT_URDF_PATH",
    "ARM_JOINT_NAMES",
    "ARM_ACTUATOR_NAMES",
    "FINGER_JOINT_NAMES",
    "GRIPPER_ACTUATOR_NAME",
    "GRIPPER_MAX_CLOSURE_M",
    "GRIPPER_OPEN_WIDTH_M",
    "TARGET_NAME",
    "DISTRACTOR_NAMES",
    "BIN_NAME",
    "MARKER_NAME",
    "BIN_INNER_HALF_M",
    "BIN_WALL_TOP_M",
    "CUBE_HALF_M",
    "TCP_SITE",
    "SCENE_CAMERA",
    "WRIST_CAMERA",
    "CAMERAS",
    "BASE_BODY",
    "ROBOT_ROOT_BODY",
    "HOME_QPOS_RAD",
    "load_model",
]

SCENE_XML_PATH: Path = Path(__file__).resolve().parent / "assets" / "pick_place_cell.xml"
#: The cell's robot as a URDF: its link frames are the MJCF bodies of the same names (and
#: ``tcp`` the MJCF site), so the URDF's FK is the simulator's ground truth.
ROBOT_URDF_PATH: Path = UR5E_URDF

# ARM_JOINT_NAMES (the six arm joints in chain order) is core.robot's, re-exported.
#: Position actuators of the arm joints, in ARM_JOINT_NAMES order.
ARM_ACTUATOR_NAMES: tuple[str, ...] = (
    "shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3",
)
#: The two finger slide joints; each one's position is its closure in metres.
FINGER_JOINT_NAMES: tuple[str, ...] = ("left_finger_joint", "right_finger_joint")
#: Position actuator on the mean finger closure (a fixed tendon), metres.
GRIPPER_ACTUATOR_NAME = "gripper"
#: Finger closure at "fully closed" (the pads touch), metres per finger.
GRIPPER_MAX_CLOSURE_M = 0.0425
#: Distance between the finger pads when fully open, metres.
GRIPPER_OPEN_WIDTH_M = 0.085

TARGET_NAME = "red_cube"
DISTRACTOR_NAMES: tuple[str, ...] = ("distractor_0", "distractor_1", "distractor_2")
BIN_NAME = "bin"
#: Mocap body of the hidden calibration / debug marker sphere.
MARKER_NAME = "marker"
#: Half of the bin's inner side length (inner 0.18 x 0.18 m), metres.
BIN_INNER_HALF_M = 0.09
#: Height of the bin rim above the table top, metres.
BIN_WALL_TOP_M = 0.08
#: Half of the cube's side length (4 cm cubes), metres.
CUBE_HALF_M = 0.02

#: Tool centre point: between the finger pads, 15 mm above the finger tips.
TCP_SITE = "tcp"
SCENE_CAMERA = "scene_cam"
WRIST_CAMERA = "wrist_cam"
#: Short names of the cameras (command-line choices such as ``--camera wrist``) -> MJCF names.
CAMERAS: dict[str, str] = {"scene": SCENE_CAMERA, "wrist": WRIST_CAMERA}
BASE_BODY = "base_link"
#: Root body of the robot: the robot (segmentation label 1) is this body's subtree.
ROBOT_ROOT_BODY = "base_link"

#: Home posture, core.kinematics' (elbow up, tool pointing straight down).
HOME_QPOS_RAD = kinematics.HOME_QPOS_RAD


def load_model(xml_path: str | Path = SCENE_XML_PATH) -> mujoco.MjModel:
    """Compile the scene; a fresh ``MjModel`` per call (environments own theirs)."""
    return mujoco.MjModel.from_xml_path(str(xml_path))


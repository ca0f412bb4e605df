"""Robot descriptions (URDF) shipped with fdl_robot as package data.

``UR5E_URDF`` is the simulated UR5e + parallel gripper of ``sim/assets/pick_place_cell.xml``
(frames, joints and limits in the file's header comment); load it with
``fdl_robot.core.robot_model.RobotModel.from_urdf(UR5E_URDF)`` or publish its text as
``robot_description``.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["DESCRIPTION_DIR", "UR5E_URDF"]

DESCRIPTION_DIR: Path = Path(__file__).resolve().parent
#: The simulated UR5e + gripper: base_link ... tool0, tcp (0.135 m along tool0's z), fingers.
UR5E_URDF: Path = DESCRIPTION_DIR / "ur5e_gripper.urdf"

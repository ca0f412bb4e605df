"""The core is a plain library: importing it pulls in neither ROS nor torch (nor does the
teleoperation library, which a recorder or a test drives without a ROS graph).

Checked in a fresh interpreter, so modules imported by other tests cannot hide a leak.
"""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import fdl_robot.core
import fdl_robot.teleop

CORE_MODULES = sorted(f"fdl_robot.core.{m.name}" for m in pkgutil.iter_modules(fdl_robot.core.__path__))
TELEOP_MODULES = sorted(f"fdl_robot.teleop.{m.name}" for m in pkgutil.iter_modules(fdl_robot.teleop.__path__))
FORBIDDEN = ("rclpy", "rosidl", "sensor_msgs", "geometry_msgs", "std_msgs", "torch", "fdl_robot_interfaces")


def test_core_has_the_modules_of_the_design():
    for name in ("geometry", "camera", "boxes", "decoding", "metrics", "assignment", "tracking",
                 "ensembling"):
        assert f"fdl_robot.core.{name}" in CORE_MODULES


@pytest.mark.parametrize("library,modules", [("fdl_robot.core", CORE_MODULES), ("fdl_robot.teleop", TELEOP_MODULES)])
def test_importing_core_imports_no_ros_and_no_torch(library, modules):
    assert modules
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{library} imported {out.stdout.strip()}"

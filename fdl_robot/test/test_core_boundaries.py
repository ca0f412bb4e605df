"""The core is a plain library: importing it pulls in neither ROS nor torch.

Checked in a fresh interpreter, so modules imported by other tests cannot hide a leak.
"""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import fdl_robot.core

CORE_MODULES = sorted(f"fdl_robot.core.{m.name}" for m in pkgutil.iter_modules(fdl_robot.core.__path__))
FORBIDDEN = ("rclpy", "rosidl", "sensor_msgs", "geometry_msgs", "std_msgs", "torch", "fdl_robot_interfaces")


def test_core_has_the_modules_of_the_design():
    for name in ("geometry", "camera", "boxes", "decoding", "metrics", "assignment", "tracking",
                 "ensembling"):
        assert f"fdl_robot.core.{name}" in CORE_MODULES


def test_importing_core_imports_no_ros_and_no_torch():
    code = (
        "import sys, importlib\n"
        f"for m in {CORE_MODULES!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"fdl_robot.core imported {out.stdout.strip()}"

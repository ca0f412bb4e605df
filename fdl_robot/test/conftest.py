"""Session set-up of the test suite.

Importing :mod:`fdl_robot.sim` sets ``MUJOCO_GL`` (headless EGL) unless it is set; doing it
here, before any test module is collected, covers the tests that import mujoco directly.
"""
import fdl_robot.sim  # noqa: F401

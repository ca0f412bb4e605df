"""fdl_robot.ros (see the package docstring of fdl_robot)."""

"""fdl_robot.sim (see the package docstring of fdl_robot)."""

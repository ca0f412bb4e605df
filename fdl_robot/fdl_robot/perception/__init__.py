"""fdl_robot.perception (see the package docstring of fdl_robot)."""

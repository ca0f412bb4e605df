"""fdl_robot.policy (see the package docstring of fdl_robot)."""

"""fdl_robot.ros (see the package docstring of fdl_robot).

Importing it selects the project's Fast DDS profile (16 MB shared-memory segments for raw
images) unless the user set an rmw or a profile: see :mod:`fdl_robot.ros.dds`.
"""
from fdl_robot.ros.dds import use_project_profile

use_project_profile()

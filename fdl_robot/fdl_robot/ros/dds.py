"""The DDS settings every fdl_robot process uses: Fast DDS with 16 MB shared-memory segments.

Fast DDS's default 512 KB shared-memory segment cannot hold a raw camera image at 640x480
(rgb8 921,600 bytes), so best-effort images are lost between processes, and with several
readers of a 320x240 image a publisher blocks waiting for space (see ``fastdds_profile.xml``
for the measurements). :func:`use_project_profile` points Fast DDS at our profile unless the
user chose an rmw or a profile already; it must run before ``rclpy.init`` creates the first
participant, so ``fdl_robot.ros`` calls it on import.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

PROFILE_PATH = Path(__file__).resolve().parent / "fastdds_profile.xml"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


def use_project_profile(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set ``FASTDDS_DEFAULT_PROFILES_FILE`` to our profile; return the profile now in effect.

    Leaves the environment alone (and returns the user's profile, or None) when another rmw
    is selected or either profile variable is set already; set one to the empty string to
    keep Fast DDS's defaults.
    """
    for name in PROFILE_VARIABLES:
        if name in environ:
            return environ[name] or None
    if environ.get("RMW_IMPLEMENTATION", "") not in FAST_DDS_RMWS:
        return None
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE_PATH)
    return str(PROFILE_PATH)

"""The project's Fast DDS profile: selected on import of fdl_robot.ros, user choices respected."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from fdl_robot.ros.dds import PROFILE_PATH, use_project_profile

NS = {"d": "http://www.eprosima.com"}


def test_profile_has_16_mb_shared_memory_segments_and_is_the_default_participant():
    root = ET.parse(PROFILE_PATH).getroot()
    segment = root.find(".//d:transport_descriptor[d:type='SHM']/d:segment_size", NS)
    assert int(segment.text) >= 4 * 640 * 480 * 3             # several 640x480 rgb8 images
    participant = root.find(".//d:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.findall(".//d:userTransports/d:transport_id", NS)]
    assert set(used) == {t.text for t in root.findall(".//d:transport_descriptor/d:transport_id", NS)}


def test_use_project_profile_respects_the_users_rmw_and_profile():
    env: dict[str, str] = {}
    assert use_project_profile(env) == str(PROFILE_PATH) == env["FASTDDS_DEFAULT_PROFILES_FILE"]
    env = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}
    assert use_project_profile(env) == "/mine.xml" and "FASTDDS_DEFAULT_PROFILES_FILE" not in env
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": ""}                # explicit opt-out
    assert use_project_profile(env) is None and env == {"FASTDDS_DEFAULT_PROFILES_FILE": ""}
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_project_profile(env) is None and len(env) == 1


def test_importing_fdl_robot_ros_selects_the_profile_before_any_node_starts():
    env = {k: v for k, v in os.environ.items() if k not in ("FASTDDS_DEFAULT_PROFILES_FILE",
                                                               "FASTRTPS_DEFAULT_PROFILES_FILE",
                                                               "RMW_IMPLEMENTATION")}
    code = "import os, fdl_robot.ros.sync; print(os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(PROFILE_PATH)

"""The node graphs of fdl_robot, described once for the launch files and the runner.

``launch/*.launch.py`` (a real ROS 2 install) and ``fdl-robot run`` (one process, here)
both build their node lists from :func:`graph_nodes`, so they start the same nodes with
the same parameters file and the same overrides.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path


@dataclass(frozen=True)
class NodeSpec:
    executable: str          # console script, `ros2 run fdl_robot <executable>`
    node_class: str          # "module:Class" for in-process composition


NODES = {
    "camera_node": NodeSpec("camera_node", "fdl_robot.ros.camera_node:CameraNode"),
    "sim_node": NodeSpec("sim_node", "fdl_robot.ros.sim_node:SimNode"),
    "detector_node": NodeSpec("detector_node", "fdl_robot.ros.detector_node:DetectorNode"),
    "localizer_node": NodeSpec("localizer_node", "fdl_robot.ros.localizer_node:LocalizerNode"),
    "tracker_node": NodeSpec("tracker_node", "fdl_robot.ros.tracker_node:TrackerNode"),
    "policy_node": NodeSpec("policy_node", "fdl_robot.ros.policy_node:PolicyNode"),
}

PERCEPTION_AND_POLICY = ["detector_node", "localizer_node", "tracker_node", "policy_node"]
GRAPHS = {
    "robot": ["camera_node"] + PERCEPTION_AND_POLICY,   # a real camera and arm
    "sim": ["sim_node"] + PERCEPTION_AND_POLICY,        # the MuJoCo cell instead of both
    "perception": PERCEPTION_AND_POLICY,                # inputs from elsewhere (a bag, a test)
}


def default_config() -> Path:
    """config/fdl_robot.yaml of the source tree or of the installed share directory."""
    here = Path(__file__).resolve().parents[2] / "config" / "fdl_robot.yaml"
    if here.is_file():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("fdl_robot")) / "config" / "fdl_robot.yaml"
    except Exception as exc:  # noqa: BLE001 - report the real cause below
        raise FileNotFoundError(f"config/fdl_robot.yaml not found ({exc})") from exc


def node_overrides(name: str, graph: str, camera_source: str = "", model_path: str = "") -> dict:
    """Per-node parameter overrides from the launch arguments ('' = keep the YAML's).

    In the ``sim`` graph every node but sim_node runs on the simulator's /clock
    (``use_sim_time``), so stamps, watchdogs and trajectory timing share one clock.
    """
    overrides: dict = {}
    if name == "camera_node" and camera_source:
        overrides["source"] = camera_source
    if name == "detector_node" and model_path:
        overrides["model_path"] = model_path
    if graph == "sim" and name != "sim_node":
        overrides["use_sim_time"] = True
    return overrides


def graph_nodes(graph: str) -> list[str]:
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph '{graph}'; choose one of {sorted(GRAPHS)}")
    return list(GRAPHS[graph])


def node_class(name: str):
    module, cls = NODES[name].node_class.split(":")
    return getattr(import_module(module), cls)

"""Camera rigs: which cameras feed the tracker, and what each camera's chain is told.

Every camera of a rig has its own chain, ``detector_node -> localizer_node``
(:data:`CAMERA_CHAIN`), and every chain publishes 3D objects in ``base_link`` into the one
``tracker_node``, which fuses them (each Object3DArray says what its camera could see).

* ``scene``: the fixed camera (``camera/color/...``, ``camera/aligned_depth_to_color/...``),
  its chain in the graph's own namespace with the defaults of ``config/fdl_robot.yaml``.
* ``wrist``: the camera on the gripper's flange (a RealSense D405 in the simulator). Its chain
  runs in namespace :data:`WRIST_NAMESPACE`, so its relative topics resolve to
  ``/wrist_camera/camera/color/image_raw`` and so on: what ``realsense2_camera`` publishes with
  ``camera_namespace:=wrist_camera camera_name:=camera``. Its localizer looks T_base_cam up at
  each image's stamp from the arm's joint states (``transform_source: arm``).
* ``both``: the two together.

A rig other than ``scene`` has a parameters file, ``config/cameras/<rig>.yaml``, which the
launchers pass after the config and the robot profile (``graph.LaunchArguments.param_files``);
``python -m fdl_robot.ros.cameras --yaml NAME`` prints it (a test keeps file and
:data:`RIGS` in agreement). Choose a rig with ``camera:=NAME`` (launch files) or
``--camera NAME`` (fdl-robot, fdl-robot-closed-loop).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fdl_robot.cli_format import HelpFormatter

CAMERA_CHAIN = ("detector_node", "localizer_node")
"""The nodes every camera of a rig gets once."""

WRIST_NAMESPACE = "wrist_camera"
"""Namespace of the wrist camera's topics and of its chain."""


@dataclass(frozen=True)
class CameraRig:
    name: str
    summary: str
    namespaces: tuple[str, ...]          # one chain per camera; "" = the scene camera's, in the graph's namespace
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)   # node key -> parameters

    def __post_init__(self):
        if not self.namespaces or len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError(f"camera rig '{self.name}': needs distinct camera namespaces, got {self.namespaces}")


#: Topics a camera's chain shares with the rest of the graph, {parameter: topic in the graph's
#: namespace}: the arm's joint states, which the localizer buffers to look T_base_cam up at
#: each image stamp, and the tracker's input. A chain's other topics are relative and resolve
#: in the camera's namespace; these must resolve in the graph's, one level up, which ROS names
#: cannot say relatively. The rig's file has them absolute (``/joint_states``: no launch
#: namespace) and :func:`graph_topic_overrides` prefixes a launch namespace.
GRAPH_TOPICS = {"joint_states_topic": "joint_states", "objects_topic": "objects"}

#: The wrist chain's parameters.
_WRIST_CHAIN = {
    f"{WRIST_NAMESPACE}/localizer_node": {
        "transform_source": "arm",           # T_base_cam(t) = FK(q(t)) T_flange_cam, at the image stamp
        **{param: f"/{topic}" for param, topic in GRAPH_TOPICS.items()},
        "depth_scale_m": 0.0001,             # D405 depth units: 0.1 mm
    },
    f"{WRIST_NAMESPACE}/detector_node": {
        "shipped_model": "detector_wrist",   # fine-tuned on wrist-camera frames (models/detector_wrist)
    },
}
_SIM_WRIST = {"sim_node": {"wrist_camera": True}}

RIGS = {r.name: r for r in (
    CameraRig("scene", "the fixed scene camera", ("",)),
    CameraRig("wrist", "the camera on the gripper alone", (WRIST_NAMESPACE,), {**_SIM_WRIST, **_WRIST_CHAIN}),
    CameraRig("both", "the scene camera and the camera on the gripper", ("", WRIST_NAMESPACE),
              {**_SIM_WRIST, **_WRIST_CHAIN}),
)}
DEFAULT_RIG = "scene"


def rig(name: str) -> CameraRig:
    if name not in RIGS:
        raise ValueError(f"unknown camera rig '{name}'; choose one of {', '.join(RIGS)}")
    return RIGS[name]


def graph_topic_overrides(name: str, key: str, namespace: str) -> dict[str, str]:
    """The :data:`GRAPH_TOPICS` parameters that rig ``name`` sets for node ``key``, resolved under
    the launch ``namespace``: ``{"joint_states_topic": "/robot1/joint_states", ...}`` ({} without a
    namespace, where the rig file's absolute topics are right)."""
    namespace = namespace.strip("/")
    if not namespace:
        return {}
    params = rig(name).parameters.get(key, {})
    return {param: f"/{namespace}/{topic}" for param, topic in GRAPH_TOPICS.items() if param in params}


def rig_path(name: str) -> Path | None:
    """config/cameras/<name>.yaml beside config/fdl_robot.yaml; None for a rig without parameters."""
    from fdl_robot.ros.graph import default_config

    return default_config().parent / "cameras" / f"{name}.yaml" if rig(name).parameters else None


def to_yaml(name: str) -> str:
    """The parameters file of rig ``name``, one section per node key (``/**/`` in front: any
    launch namespace)."""
    from fdl_robot.ros.parameters import _yaml_value

    r = rig(name)
    lines = [f"# Camera rig '{name}': {r.summary}.",
             f"# Generated by `python -m fdl_robot.ros.cameras --yaml {name}` (a test checks it).",
             f"# ros2 launch fdl_robot sim.launch.py camera:={name}   |   fdl-robot-closed-loop --camera {name}"]
    for key, params in r.parameters.items():
        lines += ["", f"/**/{key}:", "  ros__parameters:"]
        lines += [f"    {k}: {_yaml_value(list(v) if isinstance(v, tuple) else v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print a camera rig's parameters file.", formatter_class=HelpFormatter)
    parser.add_argument("--yaml", required=True, choices=[n for n, r in RIGS.items() if r.parameters],
                        help="print config/cameras/<NAME>.yaml")
    print(to_yaml(parser.parse_args(argv).yaml), end="")


if __name__ == "__main__":
    main()

"""The node graphs of fdl_robot, described once for the launch files and the launchers.

``launch/*.launch.py`` (a real ROS 2 install), ``fdl-robot launch`` (a process per node,
here) and ``fdl-robot run`` (one process) all build their node lists from
:func:`graph_nodes` and their arguments from :class:`LaunchArguments`, so they start the
same nodes with the same parameters file and the same overrides.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path


@dataclass(frozen=True)
class NodeSpec:
    executable: str          # console script, `ros2 run fdl_robot <executable>`
    node_class: str          # "module:Class" for in-process composition

    @property
    def module(self) -> str:
        """The node's module: ``python -m <module>`` runs it on its own (its ``main``)."""
        return self.node_class.split(":")[0]


NODES = {
    "camera_node": NodeSpec("camera_node", "fdl_robot.ros.camera_node:CameraNode"),
    "sim_node": NodeSpec("sim_node", "fdl_robot.ros.sim_node:SimNode"),
    "detector_node": NodeSpec("detector_node", "fdl_robot.ros.detector_node:DetectorNode"),
    "localizer_node": NodeSpec("localizer_node", "fdl_robot.ros.localizer_node:LocalizerNode"),
    "tracker_node": NodeSpec("tracker_node", "fdl_robot.ros.tracker_node:TrackerNode"),
    "policy_node": NodeSpec("policy_node", "fdl_robot.ros.policy_node:PolicyNode"),
    "state_publisher_node": NodeSpec("state_publisher_node", "fdl_robot.ros.state_publisher_node:StatePublisherNode"),
}

PERCEPTION_AND_POLICY = ["detector_node", "localizer_node", "tracker_node", "policy_node"]
GRAPHS = {
    # a real camera and arm; state_publisher_node: /tf, /tf_static, robot_description for RViz/Foxglove
    "robot": ["camera_node", "state_publisher_node"] + PERCEPTION_AND_POLICY,
    "sim": ["sim_node", "state_publisher_node"] + PERCEPTION_AND_POLICY,        # the MuJoCo cell instead
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


@dataclass(frozen=True)
class LaunchArguments:
    """The arguments of every way to start a graph, with their defaults, declared once.

    ``launch/*.launch.py`` declares them as launch arguments (``name:=value``),
    ``fdl-robot run`` and ``fdl-robot launch`` as options (``--name value``).
    """

    config: str = ""            # parameters YAML ('' = the package's config/fdl_robot.yaml)
    namespace: str = ""         # namespace of every node
    camera_source: str = ""     # override camera_node source ('' = the YAML's)
    model_path: str = ""        # override detector_node model_path ('' = the YAML's)
    use_sim_time: bool = False  # every node on /clock: a bag's (played with --clock) or sim_node's
    respawn: bool = False       # restart a node that exits (launch_ros Node(respawn=...))
    respawn_delay: float = 2.0  # seconds between a node's exit and its restart
    profile: str = "sim"        # robot profile: config/profiles/<profile>.yaml (ros.interfaces)

    def config_path(self) -> Path:
        return Path(self.config) if self.config else default_config()

    def param_files(self) -> list[Path]:
        """The parameters files every node gets, in order (a later one wins): the config,
        then the robot profile's (``ros.interfaces``)."""
        from fdl_robot.ros.interfaces import profile_path

        return [self.config_path(), profile_path(self.profile)]


DEFAULT_ARGUMENTS = LaunchArguments()

#: One line per launch argument, for ``DeclareLaunchArgument`` and ``--help``.
ARGUMENT_HELP = {
    "config": "parameters YAML (default: the package's config/fdl_robot.yaml)",
    "namespace": "namespace of every node",
    "camera_source": "override camera_node source: realsense | video (or a registered one)",
    "model_path": "override detector_node model_path",
    "use_sim_time": "run every node on /clock: the time of a bag played with `fdl-robot-bag play BAG --clock` "
                    "(or `ros2 bag play BAG --clock`), or in the sim graph sim_node's simulated time (needed "
                    "for a real_time_factor other than 1). A jump back of that time (a bag played again, "
                    "--loop) is a new time base for every node",
    "respawn": "restart a node that exits, after respawn_delay (process-per-node launchers only)",
    "respawn_delay": "seconds between a node's exit and its restart",
    "profile": "robot profile (config/profiles/<profile>.yaml): how arm and gripper are commanded and "
               "where their joint states come from: sim | ur5e | ros2_control",
}


def parse_bool(text: str) -> bool:
    """A launch argument's boolean text ('true'/'false', '1'/'0', 'yes'/'no', any case)."""
    value = str(text).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected true or false, got '{text}'")
    return value in ("true", "1", "yes")


def node_overrides(name: str, graph: str, args: LaunchArguments = DEFAULT_ARGUMENTS) -> dict:
    """Per-node parameter overrides from the launch arguments ('' = keep the YAML's).

    Clock: with ``use_sim_time`` every node runs on ``/clock``; in the ``sim`` graph sim_node
    then stamps with simulated time and publishes it (``publish_clock``); fed from a bag, the
    player publishes the bag's time (``fdl-robot-bag play BAG --clock``, ``ros2 bag play --clock``).
    Without it, sim_node stamps with the wall clock, as a camera driver and an arm driver do,
    and the graph runs on the system clock like a real robot (sim_node's ``real_time_factor``
    must then be 1).
    """
    overrides: dict = {}
    if name == "camera_node" and args.camera_source:
        overrides["source"] = args.camera_source
    if name == "detector_node" and args.model_path:
        overrides["model_path"] = args.model_path
    if name == "sim_node":
        overrides["publish_clock"] = args.use_sim_time
    else:
        overrides["use_sim_time"] = args.use_sim_time
    return overrides


def graph_nodes(graph: str) -> list[str]:
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph '{graph}'; choose one of {sorted(GRAPHS)}")
    return list(GRAPHS[graph])


def node_class(name: str):
    module, cls = NODES[name].node_class.split(":")
    return getattr(import_module(module), cls)

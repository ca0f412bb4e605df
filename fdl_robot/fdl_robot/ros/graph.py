"""The node graphs of fdl_robot, described once for the launch files and the launchers.

``launch/*.launch.py`` (a real ROS 2 install), ``fdl-robot launch`` (a process per node,
here) and ``fdl-robot run`` (one process) all build their node lists from
:func:`graph_nodes` and their arguments from :class:`LaunchArguments`, so they start the
same nodes with the same parameters file and the same overrides.

Nodes are named by *keys*: ``detector_node``, or ``wrist_camera/detector_node`` for the
same executable in a namespace of its own (:func:`split_key`; the launch namespace, if any,
goes in front). The camera rig (``camera`` argument, :mod:`fdl_robot.ros.cameras`) decides
how many detector -> localizer chains a graph runs: one per camera, all publishing into the
one tracker.
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
    "teleop_node": NodeSpec("teleop_node", "fdl_robot.ros.teleop_node:TeleopNode"),
    "state_publisher_node": NodeSpec("state_publisher_node", "fdl_robot.ros.state_publisher_node:StatePublisherNode"),
}

PERCEPTION_AND_POLICY = ["detector_node", "localizer_node", "tracker_node", "policy_node"]
GRAPHS = {
    # a real camera and arm; state_publisher_node: /tf, /tf_static, robot_description for RViz/Foxglove
    "robot": ["camera_node", "state_publisher_node"] + PERCEPTION_AND_POLICY,
    "sim": ["sim_node", "state_publisher_node"] + PERCEPTION_AND_POLICY,        # the MuJoCo cell instead
    "perception": PERCEPTION_AND_POLICY,                # inputs from elsewhere (a bag, a test)
    # an operator instead of the policy (ros.teleop_node): a gamepad (joy_node) or a cmd_vel publisher
    # drives the arm. No perception: a recording of a teleoperated episode keeps the raw camera topics,
    # and the perception graph can be run on it afterwards.
    "teleop": ["state_publisher_node", "teleop_node"],                 # a real arm (its drivers run apart)
    "sim_teleop": ["sim_node", "state_publisher_node", "teleop_node"],  # the MuJoCo cell
}


def split_key(key: str) -> tuple[str, str]:
    """A node key -> (its own namespace, node name): ``"wrist_camera/detector_node"`` ->
    ``("wrist_camera", "detector_node")``, ``"tracker_node"`` -> ``("", "tracker_node")``."""
    namespace, _, name = key.rpartition("/")
    if name not in NODES:
        raise ValueError(f"unknown node '{name}' in '{key}'; nodes: {', '.join(NODES)}")
    return namespace, name


def node_spec(key: str) -> NodeSpec:
    return NODES[split_key(key)[1]]


def node_namespace(key: str, namespace: str = "") -> str:
    """The namespace a node key runs in under the launch ``namespace`` ('' = the root)."""
    return "/".join(part.strip("/") for part in (namespace, split_key(key)[0]) if part.strip("/"))


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
    camera: str = "scene"       # camera rig: scene | wrist | both (ros.cameras)

    def config_path(self) -> Path:
        return Path(self.config) if self.config else default_config()

    def param_files(self) -> list[Path]:
        """The parameters files every node gets, in order (a later one wins): the config,
        the robot profile's (``ros.interfaces``), then the camera rig's when it has one
        (``ros.cameras``; the scene camera alone needs none)."""
        from fdl_robot.ros.cameras import rig_path
        from fdl_robot.ros.interfaces import profile_path

        rig = rig_path(self.camera)
        return [self.config_path(), profile_path(self.profile), *([rig] if rig else [])]


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
    "camera": "camera rig: scene (the fixed camera), wrist (the camera on the gripper) or both, each with "
              "its own detector_node and localizer_node (the wrist camera's in namespace wrist_camera) "
              "publishing into the one tracker_node",
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

    Namespace: the topics a camera's chain shares with the graph (``cameras.GRAPH_TOPICS``)
    resolve under the launch ``namespace``.
    """
    from fdl_robot.ros.cameras import graph_topic_overrides

    overrides: dict = graph_topic_overrides(args.camera, name, args.namespace)
    name = split_key(name)[1]
    if name == "camera_node" and args.camera_source:
        overrides["source"] = args.camera_source
    if name == "detector_node" and args.model_path:
        overrides["model_path"] = args.model_path
    if name == "sim_node":
        overrides["publish_clock"] = args.use_sim_time
    else:
        overrides["use_sim_time"] = args.use_sim_time
    return overrides


def graph_nodes(graph: str, camera: str = "scene") -> list[str]:
    """The node keys of ``graph`` with the camera rig ``camera``: each node of a camera's
    chain (``cameras.CAMERA_CHAIN``) once per camera of the rig, in the camera's namespace."""
    from fdl_robot.ros.cameras import CAMERA_CHAIN, rig

    if graph not in GRAPHS:
        raise ValueError(f"unknown graph '{graph}'; choose one of {sorted(GRAPHS)}")
    namespaces = rig(camera).namespaces
    return [f"{ns}/{name}" if ns else name for name in GRAPHS[graph]
            for ns in (namespaces if name in CAMERA_CHAIN else ("",))]


def per_key(table: dict, keys: list[str]) -> dict:
    """{node name or key: value} -> {key: value} for ``keys``: an entry for a node name applies
    to every key of that node (both cameras' ``detector_node``), one for a key to it alone
    (and wins). Entries that match no key are dropped."""
    out = {key: table[split_key(key)[1]] for key in keys if split_key(key)[1] in table}
    out.update({key: table[key] for key in keys if key in table})
    return out


def node_class(name: str):
    module, cls = node_spec(name).node_class.split(":")
    return getattr(import_module(module), cls)

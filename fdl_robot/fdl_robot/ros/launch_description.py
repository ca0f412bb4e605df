"""The launch description of a graph, shared by every ``launch/*.launch.py``.

Needs ROS 2's ``launch``/``launch_ros`` (a real install; they are not on PyPI). The
node list and per-node overrides come from :mod:`fdl_robot.ros.graph`, exactly as for
``fdl-robot run``, so the launch files and the in-process runner cannot drift apart.

Launch arguments: ``config`` (parameters YAML; default the package's
config/fdl_robot.yaml), ``namespace``, ``camera_source`` (override camera_node
``source``), ``model_path`` (override detector_node ``model_path``).
"""
from __future__ import annotations

from fdl_robot.ros import graph as graphs

LAUNCH_ARGUMENTS = {
    "config": "parameters YAML (default: the package's config/fdl_robot.yaml)",
    "namespace": "namespace of every node",
    "camera_source": "override camera_node source: realsense | video (or a registered one)",
    "model_path": "override detector_node model_path",
}


def generate(graph: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def nodes(context, *args, **kwargs):
        value = {k: LaunchConfiguration(k).perform(context) for k in LAUNCH_ARGUMENTS}
        config = value["config"] or str(graphs.default_config())
        return [
            Node(package="fdl_robot", executable=graphs.NODES[name].executable, name=name,
                 namespace=value["namespace"], output="screen",
                 parameters=[config, graphs.node_overrides(name, graph, value["camera_source"],
                                                           value["model_path"])])
            for name in graphs.graph_nodes(graph)
        ]

    return LaunchDescription(
        [DeclareLaunchArgument(k, default_value="", description=d) for k, d in LAUNCH_ARGUMENTS.items()]
        + [OpaqueFunction(function=nodes)])

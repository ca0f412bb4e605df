"""The launch description of a graph, shared by every ``launch/*.launch.py``.

Needs ROS 2's ``launch``/``launch_ros`` (a real install; they are not on PyPI). The
node list, the launch arguments and the per-node overrides come from
:mod:`fdl_robot.ros.graph`, exactly as for ``fdl-robot launch`` and ``fdl-robot run``,
so the launch files and the launchers here cannot drift apart.

Launch arguments (:class:`~fdl_robot.ros.graph.LaunchArguments`): ``config``,
``namespace``, ``camera_source``, ``model_path``, ``use_sim_time``, ``respawn``,
``respawn_delay``, ``profile``, ``camera``. A node that exits without ``respawn`` shuts the whole launch down, as
``fdl-robot launch`` does.
"""
from __future__ import annotations

from dataclasses import fields

from fdl_robot.ros import graph as graphs


def _as_text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def arguments_from_context(context) -> graphs.LaunchArguments:
    """The launch arguments as performed in ``context``, typed like their defaults."""
    from launch.substitutions import LaunchConfiguration

    values = {}
    for f in fields(graphs.LaunchArguments):
        text = LaunchConfiguration(f.name).perform(context)
        default = f.default
        if isinstance(default, bool):
            values[f.name] = graphs.parse_bool(text)
        elif isinstance(default, float):
            values[f.name] = float(text)
        else:
            values[f.name] = text
    return graphs.LaunchArguments(**values)


def generate(graph: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch_ros.actions import Node

    def nodes(context, *args, **kwargs):
        value = arguments_from_context(context)
        files = [str(f) for f in value.param_files()]
        return [
            Node(package="fdl_robot", executable=graphs.node_spec(key).executable, name=graphs.split_key(key)[1],
                 namespace=graphs.node_namespace(key, value.namespace), output="screen",
                 respawn=value.respawn, respawn_delay=value.respawn_delay,
                 on_exit=None if value.respawn else Shutdown(reason=f"{key} exited"),
                 parameters=[*files, graphs.node_overrides(key, graph, value)])
            for key in graphs.graph_nodes(graph, value.camera)
        ]

    return LaunchDescription(
        [DeclareLaunchArgument(f.name, default_value=_as_text(f.default), description=graphs.ARGUMENT_HELP[f.name])
         for f in fields(graphs.LaunchArguments)]
        + [OpaqueFunction(function=nodes)])

"""One description of the graph: YAML, launch files, runner and README agree.

``launch``/``launch_ros`` are not installable here, so the launch files are executed
against minimal stand-ins of those modules that record what they are asked to start;
the recorded nodes and parameters must equal what ``fdl-robot run`` builds.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from fdl_robot.ros import graph as graphs
from fdl_robot.ros import interfaces, parameters
from fdl_robot.ros.parameter_check import check_params_file
from fdl_robot.ros.interfaces import PROFILES, profile_path

PKG = Path(__file__).resolve().parents[1]
README = PKG.parent / "README.md"


def test_yaml_is_exactly_the_declared_defaults():
    text = (PKG / "config" / "fdl_robot.yaml").read_text()
    assert text == parameters.to_yaml(), "regenerate: python -m fdl_robot.ros.parameters --yaml"
    loaded = yaml.safe_load(text)
    for node, params in parameters.NODE_PARAMETERS.items():
        assert loaded[f"/**/{node}"]["ros__parameters"] == {p.name: p.default for p in params}


def test_every_parameter_has_a_description_and_a_unique_name():
    for node, params in parameters.NODE_PARAMETERS.items():
        names = [p.name for p in params]
        assert len(names) == len(set(names)), node
        assert all(len(p.description) > 10 for p in params), node


def test_readme_parameter_table_is_current():
    assert parameters.to_markdown() in README.read_text(), \
        "regenerate the README table: python -m fdl_robot.ros.parameters --markdown"


class _Recorder:
    """Stand-ins for launch / launch_ros that record the described nodes."""

    def __init__(self, arguments: dict[str, str]):
        self.arguments, self.nodes, self.defaults = arguments, [], {}
        recorder = self

        class LaunchConfiguration:
            def __init__(self, name):
                self.name = name

            def perform(self, _context):
                return recorder.arguments.get(self.name, recorder.defaults.get(self.name, ""))

        class Node:
            def __init__(self, **kwargs):
                recorder.nodes.append(kwargs)

        def DeclareLaunchArgument(name, default_value="", description=""):  # noqa: N802
            recorder.defaults[name] = default_value
            return ("arg", name, default_value)

        def Shutdown(reason=""):  # noqa: N802
            return ("shutdown", reason)

        def OpaqueFunction(function):  # noqa: N802
            return ("opaque", function)

        self.modules = {
            "launch": types.SimpleNamespace(LaunchDescription=list),
            "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=DeclareLaunchArgument,
                                                    OpaqueFunction=OpaqueFunction, Shutdown=Shutdown),
            "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
            "launch_ros.actions": types.SimpleNamespace(Node=Node),
        }
        self.modules["launch_ros"] = types.SimpleNamespace(actions=self.modules["launch_ros.actions"])

    def run(self, launch_file: Path) -> list[dict]:
        saved = {k: sys.modules.get(k) for k in self.modules}
        sys.modules.update(self.modules)
        try:
            spec = importlib.util.spec_from_file_location(launch_file.stem.replace(".", "_"), launch_file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            description = module.generate_launch_description()
            declared = {a[1] for a in description if a[0] == "arg"}
            assert declared == {f.name for f in dataclasses.fields(graphs.LaunchArguments)}
            for action in description:
                if action[0] == "opaque":
                    action[1](context=None)
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        return self.nodes


@pytest.mark.parametrize("respawn", [False, True])
@pytest.mark.parametrize("launch_file,graph", [("fdl_robot.launch.py", "robot"), ("sim.launch.py", "sim"),
                                               ("perception.launch.py", "perception"),
                                               ("teleop.launch.py", "teleop"),
                                               ("sim_teleop.launch.py", "sim_teleop")])
def test_launch_files_and_launchers_start_the_same_nodes_with_the_same_parameters(launch_file, graph, respawn,
                                                                                  tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text(parameters.to_yaml())
    args = {"config": str(config), "namespace": "arm1", "camera_source": "video",
            "model_path": "/models/x.pt", "use_sim_time": "true", "respawn": str(respawn).lower(),
            "respawn_delay": "0.5"}
    launched = _Recorder(args).run(PKG / "launch" / launch_file)
    typed = graphs.LaunchArguments(config=str(config), namespace="arm1", camera_source="video",
                                   model_path="/models/x.pt", use_sim_time=True, respawn=respawn, respawn_delay=0.5)

    assert [n["name"] for n in launched] == graphs.graph_nodes(graph)
    for n in launched:
        assert n["package"] == "fdl_robot" and n["namespace"] == "arm1"
        assert n["executable"] == graphs.NODES[n["name"]].executable
        assert n["parameters"][:2] == [str(config), str(profile_path("sim"))]   # config, then the profile
        assert n["parameters"][2] == graphs.node_overrides(n["name"], graph, typed)
        assert n["respawn"] is respawn and n["respawn_delay"] == 0.5
        assert (n["on_exit"] is None) == respawn          # without respawn a dead node ends the launch

    from fdl_robot.ros.launcher import graph_processes, ros_args
    processes = graph_processes(graph, typed)             # fdl-robot launch: a process per node
    assert [p.name for p in processes] == graphs.graph_nodes(graph)
    for n, proc in zip(launched, processes, strict=True):
        overrides = n["parameters"][2]
        assert list(proc.argv[1:3]) == ["-m", graphs.NODES[n["name"]].module]
        assert list(proc.argv[3:]) == ros_args(typed.param_files(), overrides, "arm1")
        assert proc.respawn is respawn and proc.respawn_delay_s == 0.5
        cli = ros_args(typed.param_files(), overrides)     # fdl-robot run: the same files and overrides
        assert cli[:5] == ["--ros-args", "--params-file", str(config), "--params-file", str(profile_path("sim"))]
        as_text = {k: str(v).lower() if isinstance(v, bool) else v for k, v in overrides.items()}
        assert dict(a.split(":=") for a in cli[6::2]) == as_text
        clock = "publish_clock" if n["name"] == "sim_node" else "use_sim_time"
        assert overrides[clock] is True


def test_robot_profiles_files_are_current_and_the_sim_profile_is_the_declared_default():
    for name in PROFILES:
        assert profile_path(name).read_text() == interfaces.to_yaml(name), (
            f"config/profiles/{name}.yaml is stale: python -m fdl_robot.ros.interfaces --yaml {name}")
    declared = {p.name: p.default for p in parameters.ROBOT_INTERFACE}
    assert declared == {f.name: parameters._ros_value(getattr(PROFILES["sim"].interface, f.name))
                        for f in dataclasses.fields(interfaces.RobotInterface)}
    for node in interfaces.INTERFACE_NODES:       # both sides of the wiring declare all of it
        assert set(declared) <= set(parameters.defaults(node))
    assert interfaces.to_markdown() in README.read_text(), "README profile table is stale"


def test_the_clock_follows_use_sim_time_in_the_sim_graph():
    for use_sim_time in (False, True):
        args = graphs.LaunchArguments(use_sim_time=use_sim_time)
        assert graphs.node_overrides("sim_node", "sim", args) == {"publish_clock": use_sim_time}
        for name in graphs.PERCEPTION_AND_POLICY:
            assert graphs.node_overrides(name, "sim", args)["use_sim_time"] is use_sim_time


def test_every_graph_node_has_a_console_script():
    setup_py = (PKG / "setup.py").read_text()
    for name in {n for g in graphs.GRAPHS.values() for n in g}:
        assert f'"{graphs.NODES[name].executable} = fdl_robot.ros.{name}:main"' in setup_py


def test_camera_rigs_files_are_current_and_give_each_camera_its_chain():
    from fdl_robot.ros import cameras

    for name, rig in cameras.RIGS.items():
        path = cameras.rig_path(name)
        if rig.parameters:
            assert path.read_text() == cameras.to_yaml(name), (
                f"config/cameras/{name}.yaml is stale: python -m fdl_robot.ros.cameras --yaml {name}")
            check_params_file(path)                       # every key is a declared parameter
        else:
            assert path is None
    assert graphs.graph_nodes("sim", "scene") == graphs.graph_nodes("sim")
    both = graphs.graph_nodes("sim", "both")
    assert [k for k in both if graphs.split_key(k)[1] in cameras.CAMERA_CHAIN] == [
        "detector_node", "wrist_camera/detector_node", "localizer_node", "wrist_camera/localizer_node"]
    wrist = graphs.graph_nodes("sim", "wrist")
    assert "detector_node" not in wrist and "wrist_camera/localizer_node" in wrist
    assert graphs.node_namespace("wrist_camera/detector_node", "arm1") == "arm1/wrist_camera"
    assert graphs.node_namespace("tracker_node", "") == ""
    with pytest.raises(ValueError, match="unknown camera rig 'hand'"):
        graphs.graph_nodes("sim", "hand")
    # a node name's entry applies to each camera's node, a key's to its node alone
    table = graphs.per_key({"detector_node": {"backend": "onnx"}, "wrist_camera/detector_node": {"threads": 1}},
                           both)
    assert table == {"detector_node": {"backend": "onnx"}, "wrist_camera/detector_node": {"threads": 1}}
    assert graphs.per_key({"detector_node": 1}, both) == {"detector_node": 1, "wrist_camera/detector_node": 1}


def test_the_wrist_chain_launches_in_its_namespace_with_the_rig_file(tmp_path):
    from fdl_robot.ros import cameras
    from fdl_robot.ros.launcher import graph_processes, ros_args

    args = graphs.LaunchArguments(camera="both", namespace="arm1")
    assert args.param_files()[-1] == cameras.rig_path("both")
    procs = {p.name: p for p in graph_processes("sim", args)}
    wrist = procs["wrist_camera/localizer_node"]
    assert list(wrist.argv[1:3]) == ["-m", "fdl_robot.ros.localizer_node"]
    assert list(wrist.argv[3:]) == ros_args(args.param_files(), graphs.node_overrides("wrist_camera/localizer_node",
                                                                                     "sim", args), "arm1/wrist_camera")
    assert "__ns:=/arm1" in procs["localizer_node"].argv[-1]
    # the topics the wrist chain shares with the graph follow the launch namespace, one level up
    # from the chain's own (/arm1/wrist_camera); the other chain topics stay relative to it
    overrides = graphs.node_overrides("wrist_camera/localizer_node", "sim", args)
    assert overrides["joint_states_topic"] == "/arm1/joint_states" and overrides["objects_topic"] == "/arm1/objects"
    assert "joint_states_topic" not in graphs.node_overrides("localizer_node", "sim", args)
    plain = graphs.node_overrides("wrist_camera/localizer_node", "sim", graphs.LaunchArguments(camera="both"))
    assert "objects_topic" not in plain                   # no namespace: the rig file's /objects holds
    assert 'objects_topic: "/objects"' in cameras.rig_path("both").read_text()

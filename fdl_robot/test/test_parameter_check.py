"""Parameters as ROS users expect: -p over the YAML, typos refused with the closest name,
an int taken for a double, a wrong type in one line (fdl_robot.ros.parameter_check)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_harness import failure_line, run_python

from fdl_robot.ros import parameters
from fdl_robot.ros.parameter_check import (ParameterError, check_params_file, check_sources,
                                           parameter_arguments, resolve_overrides, typed_value)

PKG = Path(__file__).resolve().parents[1]
SHIPPED = PKG / "config" / "fdl_robot.yaml"


def write(tmp_path: Path, text: str, name: str = "my.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def section(name: str, body: str) -> str:
    return f"{name}:\n  ros__parameters:\n" + "".join(f"    {line}\n" for line in body.splitlines())


def param(node: str, name: str) -> parameters.Param:
    return next(p for p in parameters.NODE_PARAMETERS[node] if p.name == name)


# --- command lines --------------------------------------------------------------------------

def test_parameter_items_of_every_ros_section_in_order():
    argv = ["prog", "-p", "not_ros", "--ros-args", "--params-file", "a.yaml", "-p", "x:=1", "--log-level",
            "debug", "-r", "__node:=left", "--", "--params-file", "ignored", "--ros-args", "--param", "y:=2"]
    assert parameter_arguments(argv) == [("file", "a.yaml"), ("param", "x:=1"), ("remap", "__node:=left"),
                                         ("param", "y:=2")]
    assert parameter_arguments(None) == [] and parameter_arguments(["prog", "x"]) == []


# --- YAML files -------------------------------------------------------------------------------

def test_the_shipped_yaml_and_rosish_sections_pass(tmp_path):
    check_params_file(SHIPPED)
    path = write(tmp_path, section("/**", "use_sim_time: true\nscore_threshold: 0.5")
                 + section("/arm1/tracker_node", "max_age_s: 2.0")
                 + section("tracker_node", "n_init: 2")
                 + section("/arm1/*", "gating: euclidean")
                 + "arm2:\n  localizer_node:\n    ros__parameters:\n      depth_window: 0.3\n")
    check_params_file(path)


@pytest.mark.parametrize("text,expected", [
    (section("/**/detector_node", "scor_threshold: 0.5"),
     "/**/detector_node: detector_node has no parameter 'scor_threshold' (did you mean 'score_threshold'?)"),
    (section("/**/detectr_node", "score_threshold: 0.5"),
     "section '/**/detectr_node' matches no fdl_robot node (did you mean '/**/detector_node'?)"),
    (section("/**", "max_age: 1.0"), "any fdl_robot node has no parameter 'max_age' (did you mean 'max_age_s'?)"),
    (section("/**/tracker_node", "max_age_s: 1.0\nscore_threshold: 0.3"),
     "tracker_node has no parameter 'score_threshold'"),          # another node's parameter
    (section("/**/localizer_node", "camera_xyz: [1, 0.05, 0.6]"),
     "camera_xyz: the array [1, 0.05, 0.6] mixes double and integer values, which ROS 2 cannot read: "
     "write every number with a decimal point (1.0)"),
    (section("/**/tracker_node", "max_age_s:"), "/**/tracker_node: max_age_s: no value"),
    ("/**/tracker_node:\n  max_age_s: 1.0\n", "'/**/tracker_node/max_age_s' has a value before ros__parameters"),
    ("/**/tracker_node:\n  ros__parameters:\n    max_age_s: [1.0\n", "not valid YAML at line"),
])
def test_a_bad_file_is_refused_naming_file_section_key_and_the_closest_name(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        check_params_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ParameterError, match="parameters file not found: .*nope.yaml"):
        check_sources([("file", str(tmp_path / "nope.yaml"))], ["tracker_node"])


def test_a_renamed_node_may_have_its_own_section(tmp_path):
    path = write(tmp_path, section("/**/left_tracker", "max_age_s: 2.0"))
    with pytest.raises(ParameterError, match="matches no fdl_robot node"):
        check_sources([("file", str(path))], ["tracker_node"])
    check_sources([("remap", "__node:=left_tracker"), ("file", str(path))], ["tracker_node"])
    check_sources([("remap", "tracker_node:__node:=left_tracker"), ("file", str(path))], ["detector_node"])
    bad = write(tmp_path, section("/**/left_tracker", "max_age: 2.0"), "bad.yaml")
    with pytest.raises(ParameterError, match="tracker_node has no parameter 'max_age'"):
        check_sources([("remap", "__node:=left_tracker"), ("file", str(bad))], ["tracker_node"])


# --- -p ----------------------------------------------------------------------------------------

def test_p_must_name_a_parameter_of_the_nodes_it_reaches():
    check_sources([("param", "max_age_s:=2.0"), ("param", "use_sim_time:=true")], ["tracker_node"])
    check_sources([("param", "score_threshold:=0.3")], ["tracker_node", "detector_node"])
    check_sources([("param", "detector_node:score_threshold:=0.3")], ["tracker_node"])   # rcl filters it
    for item, expected in [
        ("score_threshold:=0.3", "-p score_threshold:=0.3: no parameter 'score_threshold' in tracker_node"),
        ("max_age:=2.0", "(did you mean 'max_age_s'?)"),
        ("trackr_node:max_age_s:=2.0", "no node 'trackr_node'"),
        ("tracker_node:max_age:=2.0", "tracker_node has no parameter 'max_age' (did you mean 'max_age_s'?)"),
        ("no_value", "-p takes [node:]name:=value, got 'no_value'"),
        ("camera_xyz:=[1, 0.5]", "mixes double and integer values"),
    ]:
        with pytest.raises(ParameterError, match=None) as err:
            check_sources([("param", item)], ["tracker_node"])
        assert expected in str(err.value), (item, str(err.value))


def test_p_of_a_graph_reaches_every_node_that_declares_it():
    graph = ["detector_node", "localizer_node", "tracker_node", "policy_node"]
    assert resolve_overrides(["frame_id:=cam"], ["camera_node", "sim_node"]) == \
        {"camera_node": {"frame_id": "cam"}, "sim_node": {"frame_id": "cam"}}
    assert resolve_overrides(["tracks_topic:=t", "tracker_node:max_age_s:=2"], graph) == \
        {"tracker_node": {"tracks_topic": "t", "max_age_s": 2}, "policy_node": {"tracks_topic": "t"}}
    with pytest.raises(ParameterError, match="no node 'sim_node'"):
        resolve_overrides(["sim_node:seed:=3"], graph)
    with pytest.raises(ParameterError, match="no parameter 'seed' in detector_node, localizer_node"):
        resolve_overrides(["seed:=3"], graph)


# --- types ---------------------------------------------------------------------------------------

def test_an_int_is_taken_where_a_double_is_declared():
    value = typed_value("detector_node", param("detector_node", "score_threshold"), 1)
    assert value == 1.0 and isinstance(value, float)
    xyz = typed_value("localizer_node", param("localizer_node", "camera_xyz"), [1, 0, 1])
    assert xyz == [1.0, 0.0, 1.0] and all(isinstance(v, float) for v in xyz)
    assert typed_value("tracker_node", param("tracker_node", "n_init"), 4) == 4


@pytest.mark.parametrize("node,name,value,expected", [
    ("detector_node", "score_threshold", "high",
     "detector_node: parameter 'score_threshold' is a double, got a string 'high'"),
    ("tracker_node", "n_init", 2.5, "tracker_node: parameter 'n_init' is an integer, got a double 2.5"),
    ("tracker_node", "n_init", True, "tracker_node: parameter 'n_init' is an integer, got a bool True"),
    ("camera_node", "video_uri", 0, "camera_node: parameter 'video_uri' is a string, got an integer 0; "
                                    "quote it to pass a string: \"0\""),
    ("localizer_node", "camera_xyz", None, "localizer_node: parameter 'camera_xyz' is a double array, "
                                           "got an empty array or no value"),
    ("policy_node", "arm_joint_names", [1, 2], "policy_node: parameter 'arm_joint_names' is a string array, "
                                           "got an integer array [1, 2]"),
])
def test_a_wrong_type_is_one_line_naming_node_parameter_expected_and_given(node, name, value, expected):
    with pytest.raises(ParameterError) as err:
        typed_value(node, param(node, name), value)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


# --- on real nodes ------------------------------------------------------------------------------

rclpy = pytest.importorskip("rclpy")


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def _tracker(context, *cli, namespace=None):
    from fdl_robot.ros.tracker_node import TrackerNode

    return TrackerNode(context=context, cli_args=["--ros-args", *map(str, cli)], namespace=namespace)


def test_on_a_node_later_sources_win_as_in_ros_and_ints_become_doubles(context, tmp_path):
    path = write(tmp_path, section("/**/tracker_node", "max_age_s: 1\nn_init: 2"))
    node = _tracker(context, "--params-file", path, "-p", "max_age_s:=3")
    assert node.params["max_age_s"] == 3.0 and isinstance(node.params["max_age_s"], float)
    assert node.get_parameter("max_age_s").type_ == rclpy.Parameter.Type.DOUBLE
    assert node.params["n_init"] == 2
    node.destroy_node()
    node = _tracker(context, "-p", "max_age_s:=3.0", "--params-file", path)     # the file comes later
    assert node.params["max_age_s"] == 1.0
    node.destroy_node()


def test_wildcards_and_namespaces_apply_as_ros_matches_them(context, tmp_path):
    path = write(tmp_path, section("/**", "use_sim_time: true")
                 + section("/**/tracker_node", "n_init: 4\ngating: euclidean")
                 + section("/arm1/*", "max_distance_m: 0.7")
                 + section("/arm2/tracker_node", "max_age_s: 9.0")       # another robot's: not applied
                 + "arm1:\n  tracker_node:\n    ros__parameters:\n      max_age_s: 2.5\n")
    node = _tracker(context, "--params-file", path, namespace="arm1")
    p = node.params
    assert (p["n_init"], p["gating"], p["max_distance_m"], p["max_age_s"]) == (4, "euclidean", 0.7, 2.5)
    assert node.get_parameter("use_sim_time").value is True
    node.destroy_node()


def test_a_node_refuses_a_typo_and_a_wrong_type_before_it_runs(context, tmp_path):
    typo = write(tmp_path, section("/**/tracker_node", "max_age: 2.0"))
    with pytest.raises(ParameterError, match=f"{typo}: /\\*\\*/tracker_node: .*'max_age' .*'max_age_s'"):
        _tracker(context, "--params-file", typo)
    with pytest.raises(ParameterError, match="tracker_node: parameter 'gating' is a string, got an integer 3"):
        _tracker(context, "-p", "gating:=3")


def test_build_nodes_puts_the_command_line_after_the_graph_yaml(context, tmp_path):
    from fdl_robot.ros.graph import LaunchArguments
    from fdl_robot.ros.runner import build_nodes

    config = write(tmp_path, parameters.to_yaml().replace("max_age_s: 1.0", "max_age_s: 5.0"), "graph.yaml")
    extra = write(tmp_path, section("/**/localizer_node", "depth_window: 0.25"), "extra.yaml")
    args = LaunchArguments(config=str(config))
    ros_cli = ["--ros-args", "-p", "max_age_s:=2", "--params-file", str(extra), "-p", "objects_topic:=o"]
    nodes = build_nodes("perception", args, context=context, only=["localizer_node", "tracker_node"],
                        ros_arguments=ros_cli)
    try:
        localizer, tracker = nodes
        assert tracker.params["max_age_s"] == 2.0                       # -p over the YAML's 5.0
        assert localizer.params["depth_window"] == 0.25
        assert localizer.params["objects_topic"] == tracker.params["objects_topic"] == "o"
    finally:
        for node in nodes:
            node.destroy_node()
    with pytest.raises(ParameterError, match="no parameter 'max_age'"):
        build_nodes("perception", args, context=context, only=["tracker_node"],
                    ros_arguments=["--ros-args", "-p", "max_age:=2.0"])


# --- the command lines, end to end ------------------------------------------------------------

def test_a_node_alone_exits_non_zero_with_one_line_for_a_typo_and_a_traceback_only_in_debug(tmp_path):
    typo = write(tmp_path, section("/**/tracker_node", "max_age: 2.0"))
    proc = run_python("-m", "fdl_robot.ros.tracker_node", "--ros-args", "--params-file", str(typo))
    assert failure_line(proc) == (f"tracker_node: {typo}: /**/tracker_node: tracker_node has no parameter "
                               "'max_age' (did you mean 'max_age_s'?)")
    debug = run_python("-m", "fdl_robot.ros.tracker_node", "--ros-args", "--params-file", str(typo),
                 env={"FDL_ROBOT_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_fdl_robot_run_exits_non_zero_with_one_line_before_any_node_starts(tmp_path):
    config = write(tmp_path, parameters.to_yaml().replace("score_threshold:", "scor_threshold:"))
    proc = run_python("-m", "fdl_robot.ros.runner", "run", "--graph", "perception", "--config", str(config))
    assert failure_line(proc) == (f"fdl-robot run: {config}: /**/detector_node: detector_node has no parameter "
                               "'scor_threshold' (did you mean 'score_threshold'?)")
    proc = run_python("-m", "fdl_robot.ros.runner", "run", "--graph", "perception",
                "--ros-args", "-p", "max_age:=2.0")
    assert failure_line(proc).startswith("fdl-robot run: -p max_age:=2.0: no parameter 'max_age' in detector_node")
    config = write(tmp_path, parameters.to_yaml().replace("score_threshold: 0.25", 'score_threshold: "x"'))
    proc = run_python("-m", "fdl_robot.ros.runner", "run", "--graph", "perception", "--config", str(config))
    assert failure_line(proc) == "detector_node: parameter 'score_threshold' is a double, got a string 'x'"


def test_fdl_robot_launch_refuses_a_typo_before_anything_starts(tmp_path):
    config = write(tmp_path, section("/**/trackr_node", "max_age_s: 2.0"))
    proc = run_python("-m", "fdl_robot.ros.launcher", "--graph", "perception", "--config", str(config),
                "--log-dir", str(tmp_path / "logs"))
    assert proc.returncode == 2 and "started" not in proc.stdout
    assert f"fdl-robot launch: {config}: section '/**/trackr_node' matches no fdl_robot node" in proc.stderr


def test_fdl_robot_launch_gives_p_to_the_nodes_that_declare_it():
    from fdl_robot.ros.graph import LaunchArguments
    from fdl_robot.ros.launcher import graph_processes

    overrides = resolve_overrides(["max_age_s:=2.5"], ["detector_node", "tracker_node"])
    specs = {s.name: s for s in graph_processes("perception", LaunchArguments(), extra_overrides=overrides)}
    assert specs["tracker_node"].argv[-2:] == ("-p", "max_age_s:=2.5")
    assert not any("max_age_s" in a for a in specs["detector_node"].argv)


@pytest.mark.slow
def test_fdl_robot_run_p_overrides_the_yaml_in_the_running_graph(tmp_path):
    """The ROS way end to end: ``fdl-robot run ... --ros-args -p`` wins over the YAML, read
    back from the running node through its parameter service."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.executors import SingleThreadedExecutor

    config = write(tmp_path, parameters.to_yaml().replace("max_age_s: 1.0", "max_age_s: 5.0"))
    ns = f"p{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "fdl_robot.ros.runner", "run", "--graph", "perception",
                             "--config", str(config), "--namespace", ns, "-p", "detector_node:backend:=color",
                             "-p", "policy_node:policy:=scripted", "--ros-args", "-p", "max_age_s:=2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    try:
        probe = rclpy.create_node("probe", context=ctx)
        client = probe.create_client(GetParameters, f"/{ns}/tracker_node/get_parameters")
        assert client.wait_for_service(timeout_sec=60), "tracker_node did not come up"
        future = client.call_async(GetParameters.Request(names=["max_age_s", "n_init"]))
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(probe)
        executor.spin_until_future_complete(future, timeout_sec=10)
        executor.shutdown()
        values = future.result().values
        assert (values[0].double_value, values[1].integer_value) == (2.0, 3)
        probe.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr

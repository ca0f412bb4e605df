"""Start-up failures in one line (``<node>: <reason>``), and every command's --help shows its defaults."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
from cli_harness import failure_line, run_python

from fdl_robot.cli_format import default_text
from fdl_robot.ros.parameters import NODE_PARAMETERS

PKG = Path(__file__).resolve().parents[1]


# --- the one line -----------------------------------------------------------------------------

def test_startup_line_names_the_node_once_and_keeps_the_first_line():
    from fdl_robot.ros.runner import starting, startup_line

    assert startup_line(ValueError("bad value\nmore detail"), "tracker_node") == "tracker_node: bad value"
    assert startup_line(ValueError("tracker_node: bad value"), "tracker_node") == "tracker_node: bad value"
    assert startup_line(KeyError("x"), "fdl-robot run") == "fdl-robot run: KeyError: 'x'"
    with pytest.raises(ZeroDivisionError) as err, starting("policy_node"):
        1 / 0  # noqa: B018
    assert startup_line(err.value, "fdl-robot run") == "policy_node: ZeroDivisionError: division by zero"


def test_the_launcher_reports_the_nodes_own_line(tmp_path):
    from fdl_robot.ros.launcher import _last_line

    log = tmp_path / "detector_node.log"
    log.write_text("[INFO] starting\ndetector_node: cannot load the 'onnx' detector weights /x.onnx: DecodeError\n"
                   "[WARN] [rcl]: error shutting down the context\n")
    assert _last_line(log, "detector_node").startswith("detector_node: cannot load")
    assert _last_line(log).startswith("[WARN] [rcl]: error")


def test_camera_node_without_a_realsense_device_says_so_in_one_line():
    rs = pytest.importorskip("pyrealsense2")
    if len(rs.context().query_devices()):
        pytest.skip("a RealSense device is attached")
    line = failure_line(run_python("-m", "fdl_robot.ros.camera_node"))
    assert line.startswith("camera_node: no RealSense device found"), line


# --- weights --------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,suffix", [("onnx", ".onnx"), ("ultralytics", ".pt")])
def test_corrupt_detector_weights_name_the_backend_and_the_path(tmp_path, backend, suffix):
    pytest.importorskip("onnx" if backend == "onnx" else "ultralytics")
    from fdl_robot.perception.detector import make_detector

    bad = tmp_path / f"best{suffix}"
    bad.write_bytes(b"not a model\n" * 10)
    with pytest.raises(ValueError) as err:
        make_detector(backend, bad)
    message = str(err.value)
    assert message.startswith(f"cannot load the '{backend}' detector weights {bad}: ") and "\n" not in message
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "none")):
        make_detector(backend, tmp_path / f"none{suffix}")


def test_missing_or_corrupt_act_weights_name_the_path(tmp_path):
    pytest.importorskip("torch")
    from fdl_robot.policy.runner import make_policy

    bad = tmp_path / "act.pt"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match=f"cannot load the ACT checkpoint {bad}: "):
        make_policy("act", dt_s=0.02, model_path=str(bad))
    with pytest.raises(FileNotFoundError, match=f"ACT checkpoint not found: {tmp_path / 'none.pt'}"):
        make_policy("act", dt_s=0.02, model_path=str(tmp_path / "none.pt"))


@pytest.mark.slow
def test_detector_node_with_corrupt_weights_fails_in_one_line(tmp_path):
    pytest.importorskip("ultralytics")
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"garbage\n")
    line = failure_line(run_python("-m", "fdl_robot.ros.detector_node", "--ros-args", "-p", f"model_path:={bad}"))
    assert line.startswith(f"detector_node: cannot load the 'ultralytics' detector weights {bad}: "), line


# --- the localizer without depth -----------------------------------------------------------------

def test_localizer_says_once_that_depth_is_missing():
    pytest.importorskip("rclpy")
    from fdl_robot_interfaces.msg import Detection2DArray
    from ros_harness import RosHarness
    from sensor_msgs.msg import Image

    from fdl_robot.ros.conversions import depth_to_image, ns_to_stamp
    from fdl_robot.ros.localizer_node import LocalizerNode

    class Log:
        def __init__(self):
            self.errors: list[str] = []

        def error(self, text):
            self.errors.append(text)

        def warning(self, text):  # the throttled rejects
            pass

        info = warning

    with RosHarness() as ros:
        node = ros.add(LocalizerNode, {"sync_queue_size": 3})
        log = Log()
        node.get_logger = lambda: log
        det = ros.publisher(Detection2DArray, "detections")
        depth = ros.publisher(Image, "camera/aligned_depth_to_color/image_raw")
        ros.wait_for_subscribers(det)
        for i in range(10):                                  # a colour-only source: detections only
            msg = Detection2DArray(image_width=64, image_height=48)
            msg.header.stamp = ns_to_stamp((i + 1) * 100_000_000)
            det.publish(msg)
        assert ros.spin_until(lambda: node.counters["detections without depth"] == 7)
        assert len(log.errors) == 1 and node.counters["unmatched detections"] == 0
        assert f"no depth image on {ros.namespace}/camera/aligned_depth_to_color/image_raw" in log.errors[0]
        ros.wait_for_subscribers(depth)
        depth.publish(depth_to_image(np.zeros((48, 64), np.uint16), ns_to_stamp(5), "cam"))
        assert ros.spin_until(lambda: node.depth_received)
        for i in range(4):                                   # depth came once: now ordinary drops
            msg = Detection2DArray(image_width=64, image_height=48)
            msg.header.stamp = ns_to_stamp((20 + i) * 100_000_000)
            det.publish(msg)
        assert ros.spin_until(lambda: node.counters["unmatched detections"] >= 1)
        assert len(log.errors) == 1


# --- --help of every command ---------------------------------------------------------------------

def _entry_points() -> list[tuple[str, str, str]]:
    text = (PKG / "setup.py").read_text()
    return re.findall(r'"([\w-]+) = ([\w.]+):(\w+)"', text)


#: Commands run as ``python -m <module>`` (not console scripts), whose --help must show defaults too.
MODULE_COMMANDS = [(m.rsplit(".", 1)[-1], m, "main") for m in (
    "fdl_robot.ros.parameters", "fdl_robot.ros.interfaces", "fdl_robot.policy.act.record",
    "fdl_robot.eval.replay", "fdl_robot.eval.ros_expert", "fdl_robot.eval.ros_teleop_expert",
    "fdl_robot.eval.sim_expert")]
#: The nodes (every one has a console script): their --help lists the ROS parameters of the one table.
NODE_SCRIPTS = set(NODE_PARAMETERS)


def _help(func, argv, monkeypatch, capsys) -> tuple[list[argparse.ArgumentParser], str]:
    shown: list[argparse.ArgumentParser] = []
    print_help = argparse.ArgumentParser.print_help

    def spy(self, file=None):
        shown.append(self)
        print_help(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", spy)
    with pytest.raises(SystemExit) as exit_:
        func(argv)
    assert exit_.value.code in (0, None), argv
    return shown, capsys.readouterr().out


def _flat(text: str) -> str:
    return " ".join(text.split())


def _assert_defaults_shown(parser: argparse.ArgumentParser, out: str, where: str) -> list[str]:
    """Every option with a default shows it; returns the parser's subcommands."""
    subcommands = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands += list(action.choices)
        elif action.help is not argparse.SUPPRESS and default_text(action):
            shown = action.help if action.help and "default" in action.help.lower() else default_text(action)
            assert _flat(shown % {"default": action.default} if "%(" in shown else shown) in _flat(out), \
                (where, action.dest)
    return subcommands


@pytest.mark.parametrize("script,module,func", _entry_points() + MODULE_COMMANDS,
                         ids=[e[0] for e in _entry_points() + MODULE_COMMANDS])
def test_every_console_command_help_shows_its_defaults(script, module, func, monkeypatch, capsys):
    import importlib

    main = getattr(importlib.import_module(module), func)
    if script in NODE_SCRIPTS:
        pytest.importorskip("rclpy")
        from fdl_robot.ros import parameters

        _, out = _help(main, [script, "--help"], monkeypatch, capsys)
        for p in parameters.NODE_PARAMETERS[script]:
            assert f"  {p.name} (" in out and f"default: {parameters._yaml_value(p.default)})" in out, p.name
        return
    shown, out = _help(main, ["--help"], monkeypatch, capsys)
    assert shown, script
    for sub in _assert_defaults_shown(shown[-1], out, script):
        sub_shown, sub_out = _help(main, [sub, "--help"], monkeypatch, capsys)
        assert sub_shown, (script, sub)
        _assert_defaults_shown(sub_shown[-1], sub_out, f"{script} {sub}")

"""Demonstration bags -> datasets (issue 18 items 2, 3, 6): synthetic bags written with our bag
writer, whose every value is known, then the real graph end to end.

The synthetic episode mimics a recording on the simulator's clock: at each control step k
(t_k = T0 + k * 20 ms) the arm's and the gripper's joint states arrive, then the operator's
commands for that step (same clock value); /tracks every third step; sim/ground_truth with
other positions than the tracks (the datasets must never use it).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from fdl_robot.core.robot import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME  # noqa: E402

T0_NS = 5_000_000_000
DT_NS = 20_000_000
STEPS = 40


def _q(k: int) -> np.ndarray:
    return np.array([0.1, -1.2, 1.0, -1.5, -1.57, 0.0]) + 0.01 * k


def _gripper_cmd(k: int) -> float:
    return 1.0 if k >= STEPS // 2 else 0.0


def _target(k: int) -> tuple[float, float, float]:
    return (0.5, 0.001 * k, 0.02)


BIN = (0.48, 0.39, -0.01)


def _tracks(k: int, stamp_ns: int):
    from fdl_robot_interfaces.msg import Track, TrackArray

    from fdl_robot.ros.conversions import ns_to_stamp

    msg = TrackArray()
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), "base_link"
    for i, (name, p, hits) in enumerate((("red_cube", _target(k), 10 + k), ("bin", BIN, 10 + k),
                                         ("cube", (0.4, -0.06, 0.02), 5))):
        t = Track(id=i + 1, state=Track.CONFIRMED, class_name=name, hits=hits)
        t.position.x, t.position.y, t.position.z = p
        t.position_covariance = list(np.eye(3).ravel() * 1e-6)
        t.velocity_covariance = list(np.eye(3).ravel() * 1e-2)
        msg.tracks.append(t)
    return msg


def _ground_truth(stamp_ns: int):
    from visualization_msgs.msg import Marker, MarkerArray

    from fdl_robot.ros.conversions import ns_to_stamp

    out = MarkerArray()
    for name, p in (("red_cube", (0.9, 0.9, 0.9)), ("bin", (0.7, 0.7, 0.7))):
        m = Marker(ns=name)
        m.header.stamp = ns_to_stamp(stamp_ns)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = p
        out.markers.append(m)
    return out


def _image(k: int) -> np.ndarray:
    """Frame k of the synthetic colour camera: 64 x 48, a flat grey level 4 k."""
    return np.full((48, 64, 3), 4 * k, dtype=np.uint8)


def write_demo_bag(path, success: bool = True, drop: tuple[str, ...] = (), end_marker: bool = True) -> None:
    """A synthetic demonstration bag (module docstring); ``drop``: topics left out."""
    from fdl_robot.ros.conversions import rgb_to_image
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, Header, String
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from fdl_robot.bags.cdr import msgtype_of, serialize
    from fdl_robot.bags.recorder import open_writer
    from fdl_robot.bags.typestore import typestore
    from fdl_robot.ros.conversions import ns_to_stamp, s_to_duration

    store = typestore()
    writer = open_writer(path)
    connections = {}

    def write(topic, msg, t_ns):
        if topic in drop:
            return
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msgtype_of(msg), typestore=store)
        writer.write(connections[topic], t_ns, serialize(msg, store))

    write("/episode", String(data=json.dumps({"event": "start", "episode": 0, "seed": 7})), T0_NS - DT_NS)
    order = sorted(range(6), key=lambda i: ARM_JOINT_NAMES[i])          # joint_state_broadcaster's order
    for k in range(STEPS):
        t = T0_NS + k * DT_NS
        header = Header(stamp=ns_to_stamp(t))
        write("/joint_states", JointState(header=header, name=[ARM_JOINT_NAMES[i] for i in order],
                                          position=[float(_q(k)[i]) for i in order]), t)
        write("/joint_states", JointState(header=header, name=[GRIPPER_JOINT_NAME], position=[0.001 * k]), t)
        arm = JointTrajectory(joint_names=list(ARM_JOINT_NAMES), points=[
            JointTrajectoryPoint(positions=(_q(k) + 0.1).tolist(), time_from_start=s_to_duration(0.02)),
            JointTrajectoryPoint(positions=(_q(k) + 9.0).tolist(), time_from_start=s_to_duration(0.04))])
        write("/joint_trajectory_controller/joint_trajectory", arm, t)
        write("/gripper_controller/joint_trajectory", JointTrajectory(
            joint_names=[GRIPPER_JOINT_NAME], points=[JointTrajectoryPoint(positions=[_gripper_cmd(k)])]), t)
        if k % 3 == 0:
            write("/tracks", _tracks(k, t - 3 * DT_NS), t)
            write("/sim/ground_truth", _ground_truth(t), t)
            write("/sim/success", Bool(data=success and k > STEPS - 5), t)
        if k % 2 == 1:                                                  # images at 25 Hz, from step 1
            write("/camera/color/image_raw", rgb_to_image(_image(k), ns_to_stamp(t), "camera_color_optical_frame"), t)
    if end_marker:
        write("/episode", String(data=json.dumps({"event": "end", "success": success,
                                                  "reason": "success" if success else "timeout"})),
              T0_NS + (STEPS - 1) * DT_NS + DT_NS // 2)
    writer.close()


def test_a_bag_becomes_rows_on_the_control_rate_sample_and_hold(tmp_path):
    from fdl_robot.datasets.bags_to_dataset import read_episode

    write_demo_bag(tmp_path / "ep")
    ep = read_episode(tmp_path / "ep")
    assert len(ep) == STEPS and ep.success and ep.seed == 7 and ep.reason == "success"
    np.testing.assert_allclose(np.diff(ep.t_s), 0.02, atol=1e-9)
    assert ep.t_s[0] == pytest.approx(T0_NS * 1e-9)
    assert ep.state.shape == (STEPS, 7) and ep.environment_state.shape == (STEPS, 6) and ep.action.shape == (STEPS, 7)
    k = np.arange(STEPS)
    # state: the joint state received at the tick, arm by name into ARM_JOINT_NAMES order, closure last
    np.testing.assert_allclose(ep.state[:, :6], np.stack([_q(i) for i in k]), atol=1e-12)
    np.testing.assert_allclose(ep.state[:, 6], 0.001 * k, atol=1e-12)
    # environment_state: the latest /tracks (every third step) held, never the ground truth
    held = 3 * (k // 3)
    np.testing.assert_allclose(ep.environment_state[:, :3], np.stack([_target(i) for i in held]), atol=1e-12)
    np.testing.assert_allclose(ep.environment_state[:, 3:], np.tile(BIN, (STEPS, 1)), atol=1e-12)
    assert ep.target_seen.all()
    # action: point 0 of the command received in the same step (not the later points), gripper closure
    np.testing.assert_allclose(ep.action[:, :6], np.stack([_q(i) + 0.1 for i in k]), atol=1e-12)
    np.testing.assert_allclose(ep.action[:, 6], [_gripper_cmd(i) for i in k])


def test_hdf5_is_the_act_layout_the_trainer_reads(tmp_path):
    from fdl_robot.datasets.bags_to_dataset import convert, read_episode
    from fdl_robot.policy.act.processor import DemoArrays, load_episodes

    for i in range(2):
        write_demo_bag(tmp_path / f"bag{i}")
    write_demo_bag(tmp_path / "failed", success=False)
    report = convert([tmp_path / "bag0", tmp_path / "failed", tmp_path / "bag1"], tmp_path / "h5", progress=False)
    assert len(report.converted) == 2 and report.skipped == {str(tmp_path / "failed"): "timeout"}
    episodes = load_episodes(str(tmp_path / "h5"))
    ep = read_episode(tmp_path / "bag0")
    assert [e.length for e in episodes] == [STEPS, STEPS]
    np.testing.assert_array_equal(episodes[0].qpos, ep.state)
    np.testing.assert_array_equal(episodes[0].action, ep.action)
    np.testing.assert_array_equal(episodes[0].target, ep.environment_state[:, :3])     # /tracks, not truth
    np.testing.assert_array_equal(episodes[0].bin_noisy, ep.environment_state[:, 3:])
    assert len(DemoArrays.from_episodes(episodes)) == 2 * STEPS
    info = json.loads((tmp_path / "h5" / "dataset_info.json").read_text())
    assert info["n_saved"] == 2 and info["fps"] == 50 and list(info["skipped"]) == [str(tmp_path / "failed")]
    kept = convert([tmp_path / "failed"], tmp_path / "h5_all", keep_failures=True, progress=False)
    assert len(kept.converted) == 1 and not kept.skipped


@pytest.mark.parametrize("topic, what", [("/tracks", "tracks"), ("/joint_states", "joint states")])
def test_a_bag_without_a_needed_topic_is_a_one_line_error(tmp_path, capsys, topic, what):
    from fdl_robot.datasets import bags_to_dataset

    write_demo_bag(tmp_path / "bag", drop=(topic,))
    with pytest.raises(SystemExit) as exc:
        bags_to_dataset.main([str(tmp_path / "bag"), "--out", str(tmp_path / "out"), "--no-progress"])
    message = str(exc.value)
    assert message == f"error: {tmp_path / 'bag'}: no {topic} in the bag ({what} are needed)"
    assert "\n" not in message


def test_failed_and_unfinished_episodes_are_skipped_and_counted(tmp_path, capsys):
    from fdl_robot.datasets import bags_to_dataset

    write_demo_bag(tmp_path / "ok")
    write_demo_bag(tmp_path / "failed", success=False)
    write_demo_bag(tmp_path / "stopped", end_marker=False)           # a recording stopped mid-episode
    assert bags_to_dataset.main([str(tmp_path / n) for n in ("ok", "failed", "stopped")]
                                + ["--out", str(tmp_path / "out"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"1 episodes ({STEPS} frames at 50 Hz)") and "2 skipped (not succeeded" in out
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["skipped"] == {str(tmp_path / "failed"): "timeout", str(tmp_path / "stopped"): "no end marker"}
    with pytest.raises(SystemExit, match="no episode to write: 1 of 1 bags did not succeed"):
        bags_to_dataset.main([str(tmp_path / "failed"), "--out", str(tmp_path / "none"), "--no-progress"])


def _lerobot_summary(root) -> dict:
    from fdl_robot.datasets.bags_to_dataset import run_in_lerobot_venv

    result = run_in_lerobot_venv(["summary", str(root)], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_lerobot_dataset_round_trip_in_the_lerobot_venv(tmp_path):
    """Written through LeRobot's API in .venv-lerobot (scripts/setup_lerobot.sh; test.sh builds it)
    and loaded back there with LeRobotDataset; this process never imports lerobot."""
    from fdl_robot.datasets.bags_to_dataset import convert, read_episode

    for i in range(2):
        write_demo_bag(tmp_path / f"bag{i}")
    write_demo_bag(tmp_path / "failed", success=False)
    report = convert([tmp_path / "bag0", tmp_path / "bag1", tmp_path / "failed"], tmp_path / "lr", fmt="lerobot",
                     progress=False)
    assert report.written["episodes"] == 2 and report.written["frames"] == 2 * STEPS
    s = _lerobot_summary(tmp_path / "lr")
    assert (s["episodes"], s["frames"], s["fps"], s["codebase_version"]) == (2, 2 * STEPS, 50, "v3.0")
    assert s["shapes"]["observation.state"] == [7] and s["shapes"]["action"] == [7]
    assert s["shapes"]["observation.environment_state"] == [6]
    assert s["names"]["observation.environment_state"] == ["target_x", "target_y", "target_z", "bin_x", "bin_y",
                                                           "bin_z"]
    ep = read_episode(tmp_path / "bag1")
    np.testing.assert_allclose(s["first"]["observation.state"], ep.state[0], atol=1e-6)
    np.testing.assert_allclose(s["last"]["action"], ep.action[-1], atol=1e-6)
    np.testing.assert_allclose(s["last"]["observation.environment_state"], ep.environment_state[-1], atol=1e-6)
    assert (s["last_episode_index"], s["last_frame_index"]) == (1, STEPS - 1)
    assert "lerobot" not in sys.modules


def test_images_are_held_at_the_ticks_and_become_a_lerobot_video(tmp_path):
    from fdl_robot.datasets.bags_to_dataset import convert, read_episode
    from fdl_robot.sim.dataset import load_episode

    write_demo_bag(tmp_path / "bag")
    ep = read_episode(tmp_path / "bag", images=True)
    frames = ep.images["/camera/color/image_raw"]
    assert frames.shape == (STEPS, 48, 64, 3)
    # the latest frame at or before each tick (frames at odd steps; before the first: the first)
    expected = [_image(max(k if k % 2 else k - 1, 1))[0, 0, 0] for k in range(STEPS)]
    np.testing.assert_array_equal(frames[:, 0, 0, 0], expected)
    convert([tmp_path / "bag"], tmp_path / "h5", images=True, progress=False)
    np.testing.assert_array_equal(load_episode(tmp_path / "h5" / "episode_0.hdf5")["observations"]["images"]["color"],
                                  frames)
    convert([tmp_path / "bag"], tmp_path / "lr", fmt="lerobot", images=True, progress=False)
    s = _lerobot_summary(tmp_path / "lr")
    assert s["shapes"]["observation.images.color"] == [48, 64, 3] and s["frames"] == STEPS
    assert s["image_shapes"]["observation.images.color"] == [3, 48, 64]
    assert s["first_image_mean"]["observation.images.color"] == pytest.approx(4 / 255, abs=3 / 255)   # lossy video


@pytest.mark.slow
def test_demonstrations_recorded_through_the_graph_become_datasets(tmp_path):
    """The real graph (sim_node, detector, localizer, tracker, teleop_node, the expert as operator):
    two short episodes, one bag each, converted to both formats."""
    from fdl_robot.bags import demos
    from fdl_robot.bags.reader import read_messages
    from fdl_robot.datasets.bags_to_dataset import convert, read_episode
    from fdl_robot.eval.base import EvalConfig

    t0 = time.monotonic()
    results = demos.DemoRecorder(tmp_path / "bags", EvalConfig(episodes=2, seed0=1000, max_sim_s=3.0),
                                 demos.DemoRecordConfig(real_time_factor=1.0), progress=False).run()
    assert [r.seed for r in results] == [1000, 1001] and [r.reason for r in results] == ["timeout", "timeout"]
    bags = sorted((tmp_path / "bags").glob("episode_*"))
    assert [b.name for b in bags] == ["episode_0000", "episode_0001"]
    info = json.loads((tmp_path / "bags" / "demos.json").read_text())
    assert info["episodes"] == 2 and info["results"][0]["megabytes"] > 0.5
    for r in results:
        assert r.messages["/episode"] == 2 and r.messages["/tracks"] > 10 and r.messages["/camera/color/image_raw"] > 10
    ep = read_episode(bags[0])
    assert not ep.success and ep.seed == 1000 and 50 < len(ep) <= 3.0 * 50 + 1
    # environment_state comes from /tracks: every row is a red_cube track position of the bag ...
    tracked = {round(t.position.x, 9) for _, _, m in read_messages(bags[0], ["/tracks"])
               for t in m.tracks if t.class_name == "red_cube"}
    assert {round(x, 9) for x in ep.environment_state[:, 0]} <= tracked
    # ... and not the ground truth (perception is off by a few millimetres at least somewhere)
    truth = [mk.pose.position for _, _, m in read_messages(bags[0], ["/sim/ground_truth"])
             for mk in m.markers if mk.ns == "red_cube"]
    assert np.abs(ep.environment_state[:, 0] - truth[-1].x).max() > 1e-4
    commands = {round(m.points[0].positions[0], 9) for _, _, m in
                read_messages(bags[0], ["/joint_trajectory_controller/joint_trajectory"])}
    assert {round(x, 9) for x in ep.action[:, 0]} <= commands
    with pytest.raises(Exception, match="no episode to write: 2 of 2"):
        convert(bags, tmp_path / "h5", progress=False)
    h5 = convert(bags, tmp_path / "h5", keep_failures=True, progress=False)
    assert len(h5.converted) == 2 and (tmp_path / "h5" / "episode_1.hdf5").exists()
    convert(bags, tmp_path / "lr", fmt="lerobot", keep_failures=True, progress=False)
    s = _lerobot_summary(tmp_path / "lr")
    assert (s["episodes"], s["frames"], s["fps"]) == (2, sum(len(e) for e in h5.converted), 50)
    print(f"graph test: {time.monotonic() - t0:.1f} s")


@pytest.mark.slow
def test_a_recording_stopped_by_sigterm_leaves_a_closed_bag(tmp_path):
    """SIGTERM during an episode: the open bag gets its end marker ('interrupted') and is closed."""
    import signal

    from fdl_robot.bags.reader import read_messages
    from fdl_robot.datasets.bags_to_dataset import read_episode

    proc = subprocess.Popen([sys.executable, "-m", "fdl_robot.bags.demos", "--episodes", "2", "--no-progress",
                             "--no-images", "--out", str(tmp_path / "bags")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bag = tmp_path / "bags" / "episode_0000"
    try:
        t0 = time.monotonic()
        while not (bag / "episode_0000.mcap").exists() and time.monotonic() - t0 < 120 and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(6.0)                                 # into the episode
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert (f"stopped: 1 bags in {tmp_path / 'bags'}, the last (episode_0000) ended as 'interrupted'"
            in err.splitlines()), err[-2000:]
    markers = [json.loads(m.data) for _, _, m in read_messages(bag, ["/episode"])]    # metadata.yaml written
    assert [m["event"] for m in markers] == ["start", "end"] and markers[1]["reason"] == "interrupted"
    ep = read_episode(bag)
    assert not ep.success and ep.reason == "interrupted" and len(ep) > 20


def test_the_commands_run_as_modules():
    for module in ("fdl_robot.bags.demos", "fdl_robot.datasets.bags_to_dataset"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "usage:" in out.stdout, out.stderr

"""sim_node with real rclpy pub/sub: camera topics, joint states, clock, commands, reset.

The MuJoCo cell runs in the node's own thread at small image sizes (160x120) so the
tests stay fast; the env itself is reached only through ``SimNode.run_in_sim``.
"""
from __future__ import annotations

import json
import math
from itertools import pairwise

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
from builtin_interfaces.msg import Duration  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import Bool, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from fdl_robot.ros.base import SENSOR_QOS  # noqa: E402
from fdl_robot.ros.conversions import (image_to_depth_m, image_to_rgb, ns_to_stamp,  # noqa: E402
                                       stamp_to_ns)
from fdl_robot.ros.interfaces import PROFILES  # noqa: E402
from fdl_robot.ros.parameters import ARM_JOINTS, GRIPPER_JOINT  # noqa: E402
from fdl_robot.ros.sim_node import SimNode  # noqa: E402

pytestmark = pytest.mark.ros

# simulated-time stamps (publish_clock), so the tests can run the sim at any real-time factor
SMALL = {"width": 160, "height": 120, "shadows": False, "publish_clock": True}


JOINT_NAMES = ARM_JOINTS + [GRIPPER_JOINT]
ARM_TOPIC = "joint_trajectory_controller/joint_trajectory"
GRIPPER_TOPIC = "gripper_controller/joint_trajectory"


def trajectory(positions, times_s, stamp_ns: int = 0, names=ARM_JOINTS) -> JointTrajectory:
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = ns_to_stamp(stamp_ns)
    for q, t in zip(positions, times_s, strict=True):
        sec, nanosec = divmod(round(t * 1e9), 1_000_000_000)
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in q],
                                               time_from_start=Duration(sec=sec, nanosec=nanosec)))
    return msg


# --- the node -------------------------------------------------------------------------------

def _matching_frame(colors, depths, infos):
    """Stamp (ns) present in all three inboxes and the three messages, or None."""
    by_stamp = [{stamp_to_ns(m.header.stamp): m for m in box} for box in (colors, depths, infos)]
    common = sorted(set(by_stamp[0]) & set(by_stamp[1]) & set(by_stamp[2]))
    return (common[-1], *(b[common[-1]] for b in by_stamp)) if common else None


def test_camera_topics_share_stamps_and_depth_is_millimetres():
    with RosHarness() as ros:
        node = ros.add(SimNode, {**SMALL, "real_time_factor": 2.0})
        colors = ros.collect(Image, "camera/color/image_raw", qos=SENSOR_QOS)
        depths = ros.collect(Image, "camera/aligned_depth_to_color/image_raw", qos=SENSOR_QOS)
        infos = ros.collect(CameraInfo, "camera/color/camera_info")
        truth = ros.collect(MarkerArray, "sim/ground_truth")
        success = ros.collect(Bool, "sim/success")
        assert ros.spin_until(lambda: _matching_frame(colors, depths, infos) and truth and success,
                              timeout_s=15)
        stamp_ns, color, depth, info = _matching_frame(colors, depths, infos)
        assert stamp_ns > 0 and stamp_ns % 20_000_000 == 0        # a control-step time
        for m in (color, depth, info):
            assert m.header.frame_id == "camera_color_optical_frame"
        assert (color.encoding, color.width, color.height) == ("rgb8", 160, 120)
        assert (depth.encoding, depth.width, depth.height) == ("16UC1", 160, 120)
        assert (info.width, info.height, info.distortion_model) == (160, 120, "plumb_bob")
        assert image_to_rgb(color).std() > 5                        # a scene, not a blank
        camera, T_base_cam, depth_env, seg = node.run_in_sim(
            lambda env: (env.camera, env.T_base_cam, env.render_depth(), env.render_segmentation()))
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), camera.K)
        assert (camera.cx, camera.cy) == (79.5, 59.5)

        # depth units: a table pixel near the centre, in mm, equals the env's render and the
        # z-depth of the ray through it to the table plane z = 0 (the camera is fixed)
        raw = np.frombuffer(bytes(depth.data), dtype="<u2").reshape(120, 160)
        v, u = 60, 80
        assert seg[v, u] == 0, "the centre pixel should see the table"
        assert abs(int(raw[v, u]) - 1000 * float(depth_env[v, u])) <= 0.51
        ray = camera.unproject(np.array([u, v], float), 1.0)       # optical frame, z = 1
        d_plane_m = -T_base_cam.translation[2] / (T_base_cam.rotation @ ray)[2]
        assert abs(int(raw[v, u]) - 1000 * d_plane_m) <= 0.51
        assert 0.6 < d_plane_m < 1.2
        depth_m = image_to_depth_m(depth)
        assert np.nanmin(depth_m) > 0.1 and np.isfinite(depth_m).mean() > 0.95

        names = [m.ns for m in truth[-1].markers]
        assert names[0] == "red_cube" and names[-1] == "bin" and len(names) >= 3
        cube = truth[-1].markers[0]
        assert cube.header.frame_id == "base_link"
        assert cube.pose.position.z == pytest.approx(0.02, abs=2e-3)         # resting on the table
        assert success[-1].data is False


def test_joint_states_and_clock_advance_together():
    with RosHarness() as ros:
        ros.add(SimNode, {**SMALL, "camera_rate_hz": 5.0})
        all_states = ros.collect(JointState, "joint_states")
        clocks = ros.collect(Clock, "/clock")
        assert ros.spin_until(lambda: len(all_states) >= 50 and len(clocks) >= 25, timeout_s=10)
        # as joint_state_broadcaster (the arm, alphabetical, not chain order) and the gripper's
        # driver (its own message) publish them
        states = [m for m in all_states if GRIPPER_JOINT not in m.name]
        grippers = [m for m in all_states if list(m.name) == [GRIPPER_JOINT]]
        assert len(states) + len(grippers) == len(all_states) and abs(len(states) - len(grippers)) <= 1
        msg = states[-1]
        assert list(msg.name) == sorted(ARM_JOINTS) != ARM_JOINTS
        assert len(msg.position) == len(msg.velocity) == 6 and len(msg.effort) == 0
        q = dict(zip(msg.name, msg.position, strict=True))
        home = np.array([np.pi, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
        assert np.all(np.abs(np.array([q[n] for n in ARM_JOINTS]) - home) < 0.06)   # start posture
        assert 0.0 <= grippers[-1].position[0] < 0.05                              # gripper open
        stamps = [stamp_to_ns(m.header.stamp) for m in states]
        assert all(b > a for a, b in pairwise(stamps))
        assert all(s % 20_000_000 == 0 for s in stamps)              # 50 Hz control steps
        ticks = [stamp_to_ns(c.clock) for c in clocks]
        assert all(b > a for a, b in pairwise(ticks))
        assert set(stamps) & set(ticks)                             # one clock for both
        # about real time by default: 25 steps = 0.5 s of sim time took >= 0.4 s of wall time
        assert ticks[-1] - ticks[0] >= 0.4e9


def arm_q(states) -> np.ndarray:
    """The arm's positions (6,) in chain order from the last arm JointState."""
    msg = next(m for m in reversed(states) if ARM_JOINTS[0] in m.name)
    q = dict(zip(msg.name, msg.position, strict=True))
    return np.array([q[n] for n in ARM_JOINTS])


def gripper_x(states, name=GRIPPER_JOINT) -> float:
    return next(m for m in reversed(states) if list(m.name) == [name]).position[0]


def test_trajectory_moves_the_arm_and_bad_commands_are_rejected():
    with RosHarness() as ros:
        node = ros.add(SimNode, {**SMALL, "camera_rate_hz": 5.0, "real_time_factor": 2.0})
        states = ros.collect(JointState, "joint_states")
        pub = ros.publisher(JointTrajectory, ARM_TOPIC)
        gripper = ros.publisher(JointTrajectory, GRIPPER_TOPIC)
        ros.wait_for_subscribers(pub)
        ros.wait_for_subscribers(gripper)
        assert ros.spin_until(lambda: len(states) >= 10)
        q0 = arm_q(states)
        target = q0.copy()
        target[0] += 0.15                                          # shoulder pan
        target[5] -= 0.2                                           # wrist 3
        # a ramp over 0.4 s, zero stamp = "start now", joints in another order than the chain
        order = ARM_JOINTS[::-1]
        ramp = [q0 + (target - q0) * s for s in (0.25, 0.5, 0.75, 1.0)]
        pub.publish(trajectory([q[::-1] for q in ramp], [0.1, 0.2, 0.3, 0.4], names=order))
        assert ros.spin_until(lambda: np.all(np.abs(arm_q(states) - target) < 0.01), timeout_s=10)
        assert node.counters["ok arm trajectories"] == 1

        # what a JointTrajectoryController rejects is rejected whole; the arm holds its target
        nan_target = target.copy()
        nan_target[1] = math.nan
        bad = [trajectory([nan_target], [0.1]),
               trajectory([], []),
               trajectory([[*target, 0.0]], [0.1], names=JOINT_NAMES),           # the gripper too
               trajectory([target[:5]], [0.1], names=ARM_JOINTS[:5]),            # a joint missing
               trajectory([target, target], [0.2, 0.2]),                         # not increasing
               trajectory([target], [0.1], stamp_ns=1)]                          # ends in the past
        for msg in bad:
            pub.publish(msg)
        assert ros.spin_until(lambda: node.counters["arm trajectory rejected"] == len(bad), timeout_s=5)
        n = len(states)
        ros.spin_until(lambda: len(states) >= n + 30, timeout_s=5)  # 0.3 s of sim time
        later = np.array([arm_q(states[:k]) for k in range(n + 2, len(states), 2)])
        assert np.all(np.isfinite(later)) and len(later) >= 10
        assert np.all(np.abs(later - target) < 0.01)

        # the gripper closes on its own controller (closure is the sim cell's native unit)
        gripper.publish(trajectory([[1.0]], [0.05], names=[GRIPPER_JOINT]))
        assert ros.spin_until(lambda: gripper_x(states) > 0.9, timeout_s=10)
        assert node.counters["ok gripper trajectories"] == 1


def test_the_ur5e_profile_serves_a_gripper_action_in_native_units():
    from control_msgs.action import GripperCommand
    from rclpy.action import ActionClient

    ur = PROFILES["ur5e"].interface
    params = {**SMALL, "camera_rate_hz": 5.0, "real_time_factor": 2.0,
              **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(ur).items()}}
    with RosHarness() as ros:
        node = ros.add(SimNode, params)
        states = ros.collect(JointState, "joint_states")
        client = ActionClient(ros.probe, GripperCommand, f"{ros.namespace}/{ur.gripper_action}")
        assert client.wait_for_server(timeout_sec=5)
        assert ros.spin_until(lambda: len(states) >= 10)
        assert gripper_x(states, ur.gripper_joint) < 0.05
        goal = GripperCommand.Goal()
        goal.command.position = 0.5 * ur.gripper_closed_position          # half closed, radians
        sent = client.send_goal_async(goal)
        assert ros.spin_until(sent.done, timeout_s=5) and sent.result().accepted
        result = sent.result().get_result_async()
        assert ros.spin_until(result.done, timeout_s=10)
        assert result.result().result.reached_goal
        assert gripper_x(states, ur.gripper_joint) == pytest.approx(goal.command.position, abs=0.03)
        assert node.counters["ok gripper goals"] == 1


def test_reset_starts_the_next_seed_and_the_clock_keeps_going():
    with RosHarness() as ros:
        node = ros.add(SimNode, {**SMALL, "seed": 7, "camera_rate_hz": 10.0,
                                 "real_time_factor": 0.0})
        truth = ros.collect(MarkerArray, "sim/ground_truth")
        clocks = ros.collect(Clock, "/clock")
        client = ros.probe.create_client(Trigger, f"{ros.namespace}/sim_node/reset")
        assert client.wait_for_service(timeout_sec=5)
        assert ros.spin_until(lambda: truth, timeout_s=10)
        cube0 = truth[-1].markers[0].pose.position
        future = client.call_async(Trigger.Request())
        assert ros.spin_until(future.done, timeout_s=10)
        assert future.result().success and future.result().message == "episode 1, seed 8"
        assert (node.episode, node.seed) == (1, 8)
        n = len(truth)
        assert ros.spin_until(lambda: len(truth) > n + 1, timeout_s=10)
        cube1 = truth[-1].markers[0].pose.position
        assert (cube0.x, cube0.y) != pytest.approx((cube1.x, cube1.y))   # another episode
        ticks = [stamp_to_ns(c.clock) for c in clocks]
        assert all(b > a for a, b in pairwise(ticks))             # never backwards
        assert node.real_time_factor > 1.0                              # as fast as possible


def test_bad_parameters_fail_at_start_up():
    with RosHarness() as ros:
        with pytest.raises(ValueError, match="camera_rate_hz"):
            ros.add(SimNode, {**SMALL, "camera_rate_hz": 0.0})
        with pytest.raises(ValueError, match="none, shift, drop, bin, conveyor, mixed"):
            ros.add(SimNode, {**SMALL, "perturbation": "conveyer"})


def test_perturbation_is_published_and_moves_the_scene():
    """A conveyor episode: sim/perturbation says what was drawn; the ground truth shows the cube move."""
    with RosHarness() as ros:
        node = ros.add(SimNode, {**SMALL, "seed": 7, "camera_rate_hz": 10.0, "real_time_factor": 0.0,
                                 "perturbation": "conveyor"})
        outcomes = ros.collect(String, "sim/perturbation")
        truth = ros.collect(MarkerArray, "sim/ground_truth")
        assert ros.spin_until(lambda: outcomes and len(truth) > 12, timeout_s=20)
        first = json.loads(outcomes[0].data)
        assert (first["kind"], first["seed"], first["fired_s"]) == ("conveyor", 7, 0.0)
        speed = first["params"]["speed_m_s"]
        cube = [(stamp_to_ns(m.markers[0].header.stamp), m.markers[0].pose.position) for m in (truth[2], truth[12])]
        (t0, p0), (t1, p1) = cube
        moved = math.hypot(p1.x - p0.x, p1.y - p0.y)
        assert moved / ((t1 - t0) * 1e-9) == pytest.approx(speed, rel=0.05)
        assert node.run_in_sim(lambda env: env.perturbation.kind) == "conveyor"


@pytest.mark.slow
def test_expert_picks_and_places_through_ros_topics(tmp_path, capsys):
    """The acceptance demo on one seed: expert -> JointTrajectory topic -> sim_node."""
    from fdl_robot.eval import ros_expert

    strip = tmp_path / "strip.png"
    code = ros_expert.main(["--episodes", "1", "--seed0", "3", "--width", "160",
                            "--height", "120", "--no-shadows", "--real-time-factor", "2",
                            "--strip", str(strip)])
    assert "1/1 = 100.0 %" in capsys.readouterr().out
    assert code == 0 and strip.stat().st_size > 1000


def test_wrist_camera_topics_stamps_and_depth_units():
    """The wrist camera (a D405) on its own realsense-style topics: the scene frame's stamp, its own
    frame, 16UC1 in 0.1 mm units, and with the realsense model the left-border band of invalid pixels."""
    with RosHarness() as ros:
        node = ros.add(SimNode, {**SMALL, "real_time_factor": 2.0, "wrist_camera": True, "wrist_width": 160,
                                 "wrist_height": 120, "depth_model": "realsense"})
        prefix = "wrist_camera/camera/"
        colors = ros.collect(Image, prefix + "color/image_raw", qos=SENSOR_QOS)
        depths = ros.collect(Image, prefix + "aligned_depth_to_color/image_raw", qos=SENSOR_QOS)
        infos = ros.collect(CameraInfo, prefix + "color/camera_info")
        scene_infos = ros.collect(CameraInfo, "camera/color/camera_info")
        assert ros.spin_until(lambda: _matching_frame(colors, depths, infos) and scene_infos, timeout_s=15)
        stamp_ns, color, depth, info = _matching_frame(colors, depths, infos)
        assert stamp_ns in {stamp_to_ns(m.header.stamp) for m in scene_infos} or \
            ros.spin_until(lambda: stamp_ns in {stamp_to_ns(m.header.stamp) for m in scene_infos}, timeout_s=5)
        for m in (color, depth, info):
            assert m.header.frame_id == "wrist_camera_color_optical_frame"
        assert (depth.encoding, depth.width, depth.height) == ("16UC1", 160, 120)
        camera, T_base_cam = node.run_in_sim(lambda env: (env.camera_intrinsics("wrist_cam", 160, 120),
                                                          env.camera_extrinsics("wrist_cam")))
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), camera.K)
        assert camera.fy == pytest.approx(60 / math.tan(math.radians(29)))         # vertical FOV 58 deg
        raw = np.frombuffer(bytes(depth.data), dtype="<u2").reshape(120, 160)
        # 0.1 mm units: the centre pixel sees the table at the z-depth of its ray (the arm holds
        # its start posture; the D405's noise at ~0.4 m is ~1 mm RMS)
        ray = camera.unproject(np.array([80.0, 60.0]), 1.0)
        d_plane_m = -T_base_cam.translation[2] / (T_base_cam.rotation @ ray)[2]
        assert 0.2 < d_plane_m < 0.8
        assert abs(int(raw[60, 80]) * 1e-4 - d_plane_m) < 0.005
        # the right imager does not see the leftmost columns (disparity f B / z ~ 4-5 px here)
        assert np.all(raw[:, :3] == 0) and (raw[:, 10:] > 0).mean() > 0.6     # (the fingers: too near)

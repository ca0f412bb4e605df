"""localizer_node's transform sources with real rclpy pub/sub: a camera on a moving arm.

The arm turns (shoulder pan and wrist 3 at constant speed) while joint states stream in; a
synthetic RGB-D frame is rendered from the camera's pose at its stamp, between two joint
states. The objects must come out where the cubes are, i.e. lifted with the transform at the
image stamp, not the latest one (which this motion puts centimetres off). A stamp past the
joint buffer is rejected and counted, and nothing is published for it.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from test_perception_nodes import CAMERA, FRAME, detections_msg  # noqa: E402

from fdl_robot.core.geometry import Transform  # noqa: E402
from fdl_robot.core.kinematics import HOME_QPOS_RAD  # noqa: E402
from fdl_robot.core.robot import ARM_JOINT_NAMES  # noqa: E402
from fdl_robot.core.robot_model import ur5e_gripper  # noqa: E402
from fdl_robot.perception.extrinsics import import_tf2_ros  # noqa: E402
from fdl_robot.perception.synthetic import Cube, render_cubes  # noqa: E402
from fdl_robot.ros.conversions import camera_to_camera_info, depth_to_image, ns_to_stamp  # noqa: E402
from fdl_robot.ros.localizer_node import LocalizerNode  # noqa: E402

pytestmark = pytest.mark.ros

MS = 1_000_000
T0_NS = 20_000_000_000
Q0 = np.asarray(HOME_QPOS_RAD[:6], float)
SPEED_RAD_S = np.array([0.8, 0.0, 0.0, 0.0, 0.0, 1.5])      # pan and wrist 3
# The camera 4 cm along tool0's x, its optical frame turned 90 deg about tool0's z.
T_MOUNT_CAM = Transform.from_rpy(0.0, 0.0, np.pi / 2, t=(0.04, 0.0, 0.0))
MOUNT = {"transform_source": "arm", "camera_mount_frame": "tool0",
         "camera_mount_xyz": T_MOUNT_CAM.translation.tolist(),
         "camera_mount_quat_xyzw": T_MOUNT_CAM.as_quaternion().tolist()}
JOINT_ORDER = sorted(ARM_JOINT_NAMES)          # joint_state_broadcaster's order, not the chain's


def q_at(t_ns: int) -> np.ndarray:
    return Q0 + SPEED_RAD_S * (t_ns - T0_NS) * 1e-9


def T_base_cam_at(t_ns: int) -> Transform:
    return Transform.from_matrix(ur5e_gripper().frame_pose(q_at(t_ns), "tool0")) @ T_MOUNT_CAM


def joint_state(t_ns: int) -> JointState:
    q = dict(zip(ARM_JOINT_NAMES, q_at(t_ns), strict=True))
    msg = JointState(name=JOINT_ORDER, position=[float(q[n]) for n in JOINT_ORDER])
    msg.header.stamp = ns_to_stamp(t_ns)
    return msg


def frame_at(t_ns: int):
    """Depth, camera_info and boxes of two cubes 0.35 m in front of the camera at t_ns, and the
    cubes' true centres in base_link."""
    T = T_base_cam_at(t_ns)
    cubes = [Cube("red_cube", tuple(T.apply([-0.04, 0.01, 0.35]))),
             Cube("blue_cube", tuple(T.apply([0.05, -0.02, 0.4])))]
    _, depth_mm, boxes = render_cubes(CAMERA, T, cubes, table_depth_m=0.6)
    stamp = ns_to_stamp(t_ns)
    return (depth_to_image(depth_mm, stamp, FRAME), camera_to_camera_info(CAMERA, stamp, FRAME), boxes,
            np.array([c.p_base for c in cubes]))


def _arm_localizer(ros, **params):
    node = ros.add(LocalizerNode, {**MOUNT, **params})
    pubs = {"info": ros.publisher(CameraInfo, "camera/color/camera_info"),
            "depth": ros.publisher(Image, "camera/aligned_depth_to_color/image_raw"),
            "det": ros.publisher(Detection2DArray, "detections"),
            "joints": ros.publisher(JointState, "joint_states")}
    for p in pubs.values():
        ros.wait_for_subscribers(p)
    return node, pubs, ros.collect(Object3DArray, "objects")


def _stream_joint_states(ros, node, pubs, stamps_ns) -> None:
    history = node.extrinsics.joints.histories["shoulder_pan_joint"]
    for t in stamps_ns:
        pubs["joints"].publish(joint_state(t))
        assert ros.spin_until(lambda t=t: history.newest_ns == t)


def _positions(msg) -> dict[str, np.ndarray]:
    return {o.class_name: np.array([o.position.x, o.position.y, o.position.z]) for o in msg.objects}


def test_objects_from_a_moving_wrist_camera_are_lifted_at_the_image_stamp():
    with RosHarness() as ros:
        node, pubs, out = _arm_localizer(ros)
        _stream_joint_states(ros, node, pubs, [T0_NS + k * 10 * MS for k in range(31)])   # 100 Hz, 0.3 s
        t_image = T0_NS + 155 * MS                    # between two joint states
        depth, info, boxes, truth = frame_at(t_image)
        pubs["info"].publish(info)
        ros.spin_for(0.1)
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(t_image, boxes))
        assert ros.spin_until(lambda: out), dict(node.counters)
        got = _positions(out[0])
        assert out[0].header.stamp == ns_to_stamp(t_image) and out[0].header.frame_id == "base_link"
        np.testing.assert_allclose(got["red_cube"], truth[0], atol=0.003)
        np.testing.assert_allclose(got["blue_cube"], truth[1], atol=0.003)
        # what a latest-transform lookup gives: the same camera points mapped at the newest state
        T_err = T_base_cam_at(T0_NS + 300 * MS) @ T_base_cam_at(t_image).inverse()
        assert np.linalg.norm(T_err.apply(truth[0]) - truth[0]) > 0.05
        assert node.counters["ok frames"] == 1 and node.counters["transform unavailable"] == 0


def test_a_stamp_past_the_joint_buffer_is_rejected_and_counted_never_lifted_with_the_latest():
    with RosHarness() as ros:
        node, pubs, out = _arm_localizer(ros, transform_tolerance_s=0.005)
        _stream_joint_states(ros, node, pubs, [T0_NS + k * 10 * MS for k in range(11)])    # to +100 ms
        depth, info, boxes, _ = frame_at(T0_NS + 106 * MS)       # 6 ms past the newest: > tolerance
        pubs["info"].publish(info)
        ros.spin_for(0.1)
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(T0_NS + 106 * MS, boxes))
        assert ros.spin_until(lambda: node.counters["transform unavailable"] == 1), dict(node.counters)
        ros.spin_for(0.1)
        assert out == []
        # 4 ms past it: within the tolerance, lifted with the newest state (2.5 mm of motion here)
        t_ok = T0_NS + 104 * MS
        depth, _, boxes, truth = frame_at(t_ok)
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(t_ok, boxes))
        assert ros.spin_until(lambda: out), dict(node.counters)
        np.testing.assert_allclose(_positions(out[0])["red_cube"], truth[0], atol=0.006)
        # the joint states jump back (a bag played again): old frames have no transform any more
        _stream_joint_states(ros, node, pubs, [T0_NS - 5000 * MS])
        assert len(node.extrinsics.joints.histories["wrist_3_joint"]) == 1
        assert node.extrinsics.joints.new_time_bases == 6
        depth, _, boxes, _ = frame_at(T0_NS + 120 * MS)
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(T0_NS + 120 * MS, boxes))
        assert ros.spin_until(lambda: node.counters["transform unavailable"] == 2), dict(node.counters)
        assert len(out) == 1


def test_bad_joint_states_are_counted_and_a_bad_transform_source_refused():
    with RosHarness() as ros:
        node, pubs, _ = _arm_localizer(ros)
        bad = JointState(name=JOINT_ORDER, position=[0.0] * 5)
        pubs["joints"].publish(bad)
        assert ros.spin_until(lambda: node.counters["bad joint_states"] == 1)
        with pytest.raises(ValueError, match="transform_source must be 'fixed', 'arm' or 'tf', got 'latest'"):
            ros.add(LocalizerNode, {"transform_source": "latest"})


def test_transform_source_tf_says_where_to_get_tf2_ros():
    try:
        import_tf2_ros()
        pytest.skip("tf2_ros is installed here")
    except ImportError:
        pass
    with RosHarness() as ros:
        with pytest.raises(ImportError, match="transform_source 'tf' needs tf2_ros, which is not on PyPI"):
            ros.add(LocalizerNode, {"transform_source": "tf"})

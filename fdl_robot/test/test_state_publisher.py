"""state_publisher_node: /tf, /tf_static and robot_description as robot_state_publisher publishes them.

The frames and stamps of the messages, and their values against the URDF model's FK: the
/tf and /tf_static edges composed from base_link to tool0 must equal frame_pose(q, "tool0").
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs", reason="scripts/setup.sh builds compat/tf2_msgs")
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from fdl_robot.core.geometry import Transform  # noqa: E402
from fdl_robot.core.robot import ARM_JOINT_NAMES  # noqa: E402
from fdl_robot.core.robot_model import ur5e_gripper  # noqa: E402
from fdl_robot.description import UR5E_URDF  # noqa: E402
from fdl_robot.ros import parameters  # noqa: E402
from fdl_robot.ros.conversions import ns_to_stamp, transform_from_msg  # noqa: E402
from fdl_robot.ros.state_publisher_node import LATCHED_QOS, StatePublisherNode  # noqa: E402

pytestmark = pytest.mark.ros


def _edges(messages) -> dict[tuple[str, str], tuple]:
    """{(parent, child): (stamp, Transform)} of the last of each edge in TFMessages."""
    return {(t.header.frame_id, t.child_frame_id): (t.header.stamp, transform_from_msg(t))
            for m in messages for t in m.transforms}


def _chain(edges, parent: str, child: str) -> Transform:
    """T_parent_child composed along the tree's edges (child up to parent)."""
    by_child = {c: (p, T) for (p, c), (_, T) in edges.items()}
    T = Transform.identity()
    while child != parent:
        child, T_up = by_child[child][0], by_child[child][1]
        T = T_up @ T
    return T


def test_static_frames_and_robot_description_reach_a_late_subscriber():
    with RosHarness() as ros:
        ros.add(StatePublisherNode)
        ros.spin_for(0.2)
        static = ros.collect(TFMessage, "/tf_static", qos=LATCHED_QOS)     # subscribes after publishing
        description = ros.collect(String, "robot_description", qos=LATCHED_QOS)
        assert ros.spin_until(lambda: static and description)
        assert description[0].data == UR5E_URDF.read_text()
        edges = _edges(static)
        model = ur5e_gripper()
        expected = {(p, c): T for p, c, T in model.fixed_link_transforms()}
        defaults = parameters.defaults("state_publisher_node")
        expected[("base_link", "camera_color_optical_frame")] = Transform.from_quaternion(
            defaults["camera_quat_xyzw"], defaults["camera_xyz"]).as_matrix()
        expected[("tool0", "wrist_camera_color_optical_frame")] = Transform.from_quaternion(
            defaults["camera_mount_quat_xyzw"], defaults["camera_mount_xyz"]).as_matrix()
        assert set(edges) == set(expected)
        for key, T in expected.items():
            np.testing.assert_allclose(edges[key][1].as_matrix(), T, atol=1e-9, err_msg=str(key))


def test_joint_states_become_tf_at_their_stamps_equal_to_fk():
    with RosHarness() as ros:
        node = ros.add(StatePublisherNode, {"static_camera_frame": "", "arm_camera_frame": ""})
        static = ros.collect(TFMessage, "/tf_static", qos=LATCHED_QOS)
        tf = ros.collect(TFMessage, "/tf")
        joints = ros.publisher(JointState, "joint_states")
        ros.wait_for_subscribers(joints)
        assert ros.spin_until(lambda: static)
        rng = np.random.default_rng(5)
        q = rng.uniform(-2.5, 2.5, 6)
        names = sorted(ARM_JOINT_NAMES)             # joint_state_broadcaster's order
        arm = JointState(name=names, position=[float(q[ARM_JOINT_NAMES.index(n)]) for n in names])
        arm.header.stamp = ns_to_stamp(12_345_678_901)
        joints.publish(arm)
        assert ros.spin_until(lambda: tf)
        moved = _edges(tf[:1])
        assert {c for _, c in moved} == {"shoulder_link", "upper_arm_link", "forearm_link", "wrist_1_link",
                                         "wrist_2_link", "wrist_3_link"}
        assert all(stamp == arm.header.stamp for stamp, _ in moved.values())
        edges = {**_edges(static), **moved}
        np.testing.assert_allclose(_chain(edges, "base_link", "tool0").as_matrix(),
                                   ur5e_gripper().frame_pose(q, "tool0"), atol=1e-9)

        # the gripper's own message (closure 0.5 in the sim profile): the two fingers, 21.25 mm each
        grip = JointState(name=["gripper_joint"], position=[0.5])
        grip.header.stamp = ns_to_stamp(12_400_000_000)
        joints.publish(grip)
        assert ros.spin_until(lambda: len(tf) == 2)
        fingers = _edges(tf[1:])
        assert set(fingers) == {("gripper_base_link", "left_finger"), ("gripper_base_link", "right_finger")}
        left = fingers[("gripper_base_link", "left_finger")][1].translation
        right = fingers[("gripper_base_link", "right_finger")][1].translation
        np.testing.assert_allclose(left, [0.0, 0.0485 - 0.02125, 0.066], atol=1e-12)
        np.testing.assert_allclose(right, [0.0, -0.0485 + 0.02125, 0.066], atol=1e-12)
        assert fingers[("gripper_base_link", "left_finger")][0] == grip.header.stamp

        # a malformed message: counted, nothing published
        joints.publish(JointState(name=names, position=[0.0] * 5))
        bad = JointState(name=names, position=[float("nan")] + [0.0] * 5)
        joints.publish(bad)
        assert ros.spin_until(lambda: node.counters["bad joint_states"] == 2)
        ros.spin_for(0.1)
        assert len(tf) == 2 and node.counters["ok joint_states"] == 2


def test_a_gripper_urdf_joint_that_is_not_in_the_urdf_is_refused():
    with RosHarness() as ros:
        with pytest.raises(ValueError, match="gripper_urdf_joint 'finger' is not a moving joint of the URDF"):
            ros.add(StatePublisherNode, {"gripper_urdf_joint": "finger"})

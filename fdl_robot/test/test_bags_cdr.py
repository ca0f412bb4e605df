"""CDR bytes in our bags are what a subscriber receives, so rosbags' AnyReader reads every message.

The shipped regression bag was written from rclpy's ``serialize_message``, whose length for a
JointState without efforts is rmw_fastrtps' size *estimate*, 4 bytes past the CDR data;
rosbags rejected all 376 /joint_states ("CDR message size mismatch"). See
:mod:`fdl_robot.bags.cdr` for the byte layout and the rules.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from fdl_robot.bags.cdr import cdr_length, serialize  # noqa: E402
from fdl_robot.bags.reader import read_messages  # noqa: E402
from fdl_robot.bags.typestore import typestore  # noqa: E402

pytestmark = pytest.mark.ros

SHIPPED = Path(__file__).parent / "data" / "sim_episode"


def joint_state(n_joints: int, velocities: bool = True) -> JointState:
    """Positions (and velocities), no efforts: how sim_node and most arm drivers publish."""
    return JointState(name=[f"joint_{i}" for i in range(n_joints)],
                      position=[0.1 * i for i in range(n_joints)],
                      velocity=[0.01 * i for i in range(n_joints)] if velocities else [])


def test_anyreader_reads_every_message_of_the_shipped_bag():
    meta = yaml.safe_load((SHIPPED / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    expected = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    counts, joints = Counter(), []
    with AnyReader([SHIPPED]) as reader:
        for conn, _t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)          # raised on every /joint_states
            counts[conn.topic] += 1
            if conn.topic == "/joint_states":
                joints.append(msg.position)
    assert dict(counts) == expected and expected["/joint_states"] == 376
    # rosbags decodes what rclpy decodes
    ours = [m.position for t, _, m in read_messages(SHIPPED, ["/joint_states"])]
    np.testing.assert_array_equal(np.array(joints), np.array(ours))


def test_serialize_gives_the_bytes_a_subscriber_receives():
    """The wire carries the exact CDR length; rclpy's serialize_message can return more."""
    sent = [joint_state(2), joint_state(7), joint_state(3, velocities=False)]
    with RosHarness() as ros:
        wire = []
        ros.probe.create_subscription(JointState, "wire_js", wire.append, 10, raw=True)
        pub = ros.publisher(JointState, "wire_js")
        ros.wait_for_subscribers(pub)
        for msg in sent:
            pub.publish(msg)
        assert ros.spin_until(lambda: len(wire) == len(sent), 5)
    store = typestore()
    for msg, received in zip(sent, wire, strict=True):
        exact, rclpy_bytes = serialize(msg), serialize_message(msg)
        assert len(exact) == len(received) == cdr_length(rclpy_bytes, "sensor_msgs/msg/JointState")
        assert rclpy_bytes[:len(exact)] == exact                 # rclpy's bytes, cut at the end
        # the surplus that rosbags rejects: the rmw's estimate counts the 8-byte alignment of
        # each empty float64 sequence at the end (effort; velocity too in the last message)
        assert len(rclpy_bytes) - len(exact) in (4, 8)
        decoded = store.deserialize_cdr(exact, "sensor_msgs/msg/JointState")
        assert list(decoded.name) == list(msg.name)
        np.testing.assert_array_equal(decoded.position, msg.position)
        assert deserialize_message(exact, JointState) == msg
        with pytest.raises(Exception, match="size mismatch"):
            store.deserialize_cdr(rclpy_bytes, "sensor_msgs/msg/JointState")


def test_cdr_length_refuses_what_is_no_cdr_message():
    with pytest.raises(ValueError, match="not a CDR message"):
        cdr_length(b"\x07\x07\x00\x00" + bytes(8), "sensor_msgs/msg/JointState")
    with pytest.raises(ValueError, match="no CDR sensor_msgs/msg/JointState"):
        cdr_length(serialize(joint_state(7))[:40], "sensor_msgs/msg/JointState")

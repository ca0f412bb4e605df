"""ROS 2 works in the venv: in-process pub/sub and our own interfaces round-trip.

Two rclpy nodes in one executor exchange a std_msgs/String, and an
fdl_robot_interfaces/TrackArray survives a publisher -> subscriber round trip field by
field (CDR serialisation through rmw_fastrtps).
"""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy comes with scripts/setup.sh")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402


@pytest.fixture()
def ros_context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def _exchange(context, msg_type, topic, message, timeout_s=10.0):
    """Publish `message` from one node, receive it in another; return what arrived."""
    talker = rclpy.create_node("smoke_talker", context=context)
    listener = rclpy.create_node("smoke_listener", context=context)
    received = []
    listener.create_subscription(msg_type, topic, received.append, 10)
    publisher = talker.create_publisher(msg_type, topic, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        deadline = time.monotonic() + timeout_s
        while not received and time.monotonic() < deadline:
            publisher.publish(message)
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    assert received, f"nothing arrived on {topic} within {timeout_s} s"
    return received[0]


@pytest.mark.ros
def test_two_nodes_exchange_a_string(ros_context):
    from std_msgs.msg import String

    got = _exchange(ros_context, String, "smoke/chatter", String(data="hello fdl_robot"))
    assert got.data == "hello fdl_robot"


@pytest.mark.ros
def test_fdl_interfaces_round_trip(ros_context):
    from fdl_robot_interfaces.msg import Track, TrackArray

    sent = TrackArray()
    sent.header.frame_id = "base_link"
    sent.header.stamp.sec, sent.header.stamp.nanosec = 1234, 567_000_000
    track = Track(id=7, state=Track.CONFIRMED, class_id=0, class_name="red_cube", score=0.75,  # float32-exact
                  hits=12, age_s=1.5, time_since_update_s=0.0)
    track.position.x, track.position.y, track.position.z = 0.45, -0.1, 0.02
    track.velocity.x = 0.05
    track.position_covariance = [1e-4, 0, 0, 0, 1e-4, 0, 0, 0, 2e-4]
    sent.tracks = [track]

    got = _exchange(ros_context, TrackArray, "smoke/tracks", sent)
    assert got.header.frame_id == "base_link"
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (1234, 567_000_000)
    (g,) = got.tracks
    assert (g.id, g.state, g.class_name, g.hits) == (7, Track.CONFIRMED, "red_cube", 12)
    assert (g.position.x, g.position.y, g.position.z) == (0.45, -0.1, 0.02)
    assert g.velocity.x == 0.05
    assert list(g.position_covariance) == [1e-4, 0, 0, 0, 1e-4, 0, 0, 0, 2e-4]
    assert g == sent.tracks[0]

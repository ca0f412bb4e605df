"""Recording and replaying rosbag2 bags with rclpy + rosbags (fdl_robot.bags).

The bags must be what ``ros2 bag`` reads on a real install: a metadata.yaml with the
standard fields, CDR messages, ``ros2msg`` schemas of every type (ours included) in the
mcap, the publishers' offered QoS. The independent ``mcap`` reader (Foxglove's) and its
ROS 2 decoder, which knows nothing but the schemas in the file, check the files.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from fdl_robot_interfaces.msg import Object3D, Object3DArray, TrackArray  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from fdl_robot.bags import cli  # noqa: E402
from fdl_robot.bags.cdr import serialize  # noqa: E402
from fdl_robot.bags.player import BagPlayer  # noqa: E402
from fdl_robot.bags.recorder import BagRecorder, open_writer  # noqa: E402
from fdl_robot.bags.reader import read_messages, summarize  # noqa: E402
from fdl_robot.bags.typestore import typestore  # noqa: E402
from fdl_robot.ros.base import SENSOR_QOS  # noqa: E402
from fdl_robot.ros.conversions import ns_to_stamp, stamp_to_ns  # noqa: E402
from fdl_robot.ros.tracker_node import TrackerNode  # noqa: E402

pytestmark = pytest.mark.ros

OUR_TYPES = [f"fdl_robot_interfaces/msg/{n}" for n in
             ("CameraView", "Detection2D", "Detection2DArray", "Object3D", "Object3DArray", "Track",
              "TrackArray")]


def objects_msg(k: int, stamp_ns: int) -> Object3DArray:
    """Two cubes moving at 3 cm/s along x in base_link (frame k at 15 Hz)."""
    msg = Object3DArray()
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), "base_link"
    for i, (name, y) in enumerate((("red_cube", 0.0), ("cube", 0.2))):
        o = Object3D(class_id=i, class_name=name, score=0.9)
        o.position.x, o.position.y, o.position.z = 0.4 + 0.002 * k, y, 0.02
        o.position_covariance = (1e-4 * np.eye(3)).reshape(-1)
        msg.objects.append(o)
    return msg


def canonical(msg):
    """The message as a subscriber receives it (float32 fields rounded by CDR)."""
    return deserialize_message(serialize_message(msg), type(msg))


def test_typestore_hashes_match_the_installed_type_descriptions():
    """RIHS01 of every type we record = the hash rosidl generated on this install."""
    store = typestore()
    share = Path(__import__("sys").prefix) / "share"
    types = OUR_TYPES + ["sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo",
                         "sensor_msgs/msg/JointState", "visualization_msgs/msg/MarkerArray",
                         "rosgraph_msgs/msg/Clock"]
    checked = 0
    for t in types:
        pkg, _, name = t.split("/")
        path = share / pkg / "msg" / f"{name}.json"
        if not path.is_file():
            continue
        expected = json.loads(path.read_text())["type_hashes"][0]["hash_string"]
        assert store.hash_rihs01(t) == expected, t
        checked += 1
    assert checked >= len(OUR_TYPES)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A bag recorded from a running tracker_node: its input objects, output tracks, images."""
    path = tmp_path_factory.mktemp("rec") / "tracker_run"
    with RosHarness() as ros:
        ros.add(TrackerNode, {"n_init": 1})
        objects_pub = ros.publisher(Object3DArray, "objects")
        image_pub = ros.publisher(Image, "camera/color/image_raw", SENSOR_QOS)
        live = {"tracks": ros.collect(TrackArray, "tracks"),
                "image": ros.collect(Image, "camera/color/image_raw", SENSOR_QOS)}
        recorder = BagRecorder(ros.probe, path, ["objects", "tracks", "camera/color/image_raw"])
        assert ros.spin_until(lambda: len(recorder.recording) == 3, 5), recorder.recording
        ros.wait_for_subscribers(objects_pub, 2)               # tracker + recorder
        ros.wait_for_subscribers(image_pub, 2)
        sent = []
        for k in range(8):
            stamp_ns = 5_000_000_000 + k * 66_666_667
            msg = objects_msg(k, stamp_ns)
            image = Image(height=3, width=4, encoding="rgb8", step=12,
                          data=np.random.default_rng(k).integers(0, 256, 36, dtype=np.uint8).tobytes())
            image.header.stamp = msg.header.stamp
            objects_pub.publish(msg)
            image_pub.publish(image)
            sent.append((msg, image))
            assert ros.spin_until(lambda: len(live["tracks"]) == k + 1 and len(live["image"]) == k + 1, 5)
        assert ros.spin_until(lambda: sum(recorder.counts.values()) == 24, 5), recorder.counts
        recorder.close()
        namespace = ros.namespace
    return path, namespace, sent, live["tracks"]


def test_round_trip_records_a_running_node_and_plays_it_back(recorded):
    path, ns, sent, live_tracks = recorded
    got = {}
    for topic, _t, msg in read_messages(path):
        got.setdefault(topic, []).append(msg)
    assert set(got) == {f"{ns}/objects", f"{ns}/tracks", f"{ns}/camera/color/image_raw"}
    # What the recorder wrote is what was published / what the node sent. (Compared as
    # messages: rclpy's CDR buffers carry uninitialised padding, so equal messages need
    # not serialize to equal bytes.)
    assert got[f"{ns}/objects"] == [canonical(m) for m, _ in sent]        # float32 fields rounded
    assert got[f"{ns}/camera/color/image_raw"] == [canonical(i) for _, i in sent]
    assert got[f"{ns}/tracks"] == live_tracks
    assert len(got[f"{ns}/tracks"][-1].tracks) == 2

    # Played back (under /replay), subscribers receive the same messages again.
    with RosHarness() as ros:
        node = rclpy.create_node("player", context=ros.context)
        ros.nodes.append(node)
        player = BagPlayer(node, path, namespace="/replay")
        inbox = {t: ros.collect(type(got[t][0]), f"/replay{t}",
                                SENSOR_QOS if "image" in t else 10) for t in got}
        player.wait_for_subscribers(list(got), lambda: ros.spin_for(0.01))
        while player.publish_next() is not None:
            ros.spin_for(0.005)
        assert ros.spin_until(lambda: all(len(inbox[t]) == len(got[t]) for t in got), 5), \
            {t: len(v) for t, v in inbox.items()}
        for t in got:
            assert inbox[t] == got[t], t
        player.close()


def test_metadata_yaml_has_the_standard_rosbag2_fields(recorded):
    path, ns, _, _ = recorded
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8 and info["storage_identifier"] == "mcap"
    assert info["relative_file_paths"] == [f"{path.name}.mcap"] and (path / f"{path.name}.mcap").is_file()
    assert info["message_count"] == 24
    assert info["duration"]["nanoseconds"] > 0 and info["starting_time"]["nanoseconds_since_epoch"] > 0
    assert info["compression_format"] == "" and info["compression_mode"] == ""
    assert info["files"][0]["path"] == f"{path.name}.mcap" and info["files"][0]["message_count"] == 24
    assert isinstance(info["custom_data"], dict) and isinstance(info["ros_distro"], str)
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert {n: t["message_count"] for n, t in topics.items()} == {
        f"{ns}/objects": 8, f"{ns}/tracks": 8, f"{ns}/camera/color/image_raw": 8}
    store = typestore()
    for name, t in topics.items():
        meta = t["topic_metadata"]
        assert meta["serialization_format"] == "cdr"
        assert meta["type_description_hash"] == store.hash_rihs01(meta["type"])
        # Version 8: the offered profiles are a YAML string (rmw enum values); one publisher each.
        (offer,) = yaml.safe_load(meta["offered_qos_profiles"])
        assert offer["reliability"] == (2 if "image" in name else 1)      # best effort / reliable
        assert offer["durability"] == 2                                    # volatile
        assert set(offer) >= {"history", "depth", "deadline", "lifespan", "liveliness",
                              "liveliness_lease_duration", "avoid_ros_namespace_conventions"}


def test_mcap_embeds_schemas_that_decode_our_messages(recorded):
    """Foxglove's mcap reader + ROS 2 decoder, which only know the schemas in the file."""
    mcap_reader = pytest.importorskip("mcap.reader")
    decoder = pytest.importorskip("mcap_ros2.decoder")
    path, ns, sent, _ = recorded
    with open(path / f"{path.name}.mcap", "rb") as f:
        reader = mcap_reader.make_reader(f, decoder_factories=[decoder.DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert {"fdl_robot_interfaces/msg/Object3DArray", "fdl_robot_interfaces/msg/TrackArray",
                "sensor_msgs/msg/Image"} <= set(schemas)
        for s in schemas.values():
            assert s.encoding == "ros2msg"
        text = schemas["fdl_robot_interfaces/msg/TrackArray"].data.decode()
        assert "MSG: fdl_robot_interfaces/Track" in text and "float64[9] position_covariance" in text
        channels = {c.topic: c for c in summary.channels.values()}
        assert all(c.message_encoding == "cdr" for c in channels.values())
        assert "offered_qos_profiles" in channels[f"{ns}/objects"].metadata
        decoded = [m for _s, c, _m, m in reader.iter_decoded_messages(topics=[f"{ns}/objects"])]
    assert len(decoded) == len(sent)
    for d, (msg, _) in zip(decoded, sent, strict=True):
        assert stamp_to_ns(msg.header.stamp) == d.header.stamp.sec * 10**9 + d.header.stamp.nanosec
        assert [o.class_name for o in d.objects] == ["red_cube", "cube"]
        np.testing.assert_allclose([d.objects[0].position.x], [msg.objects[0].position.x])
        np.testing.assert_allclose(d.objects[1].position_covariance, msg.objects[1].position_covariance)


def test_info_command_summarises_the_bag(recorded, capsys):
    path, ns, _, _ = recorded
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Messages:          24" in out and "Storage id:        mcap" in out
    assert f"Topic: {ns}/tracks | Type: fdl_robot_interfaces/msg/TrackArray | Count: 8" in out


def write_timing_bag(path: Path, n: int = 13, period_ns: int = 50_000_000, t0_ns: int = 1_000_000_000):
    """Headers on /timing every 50 ms (0.6 s of recording), written directly."""
    store = typestore()
    writer = open_writer(path)
    conn = writer.add_connection("/timing", "std_msgs/msg/Header", typestore=store)
    for k in range(n):
        header = Header(frame_id=str(k), stamp=ns_to_stamp(t0_ns + k * period_ns))
        writer.write(conn, t0_ns + k * period_ns, serialize(header, store))
    writer.close()
    return (n - 1) * period_ns * 1e-9


def play_and_time(path, rate: float, clock: bool = False):
    with RosHarness() as ros:
        node = rclpy.create_node("player", context=ros.context)
        ros.nodes.append(node)
        player = BagPlayer(node, path, namespace=ros.namespace, publish_clock=clock,
                           clock_topic=f"{ros.namespace}/clock", clock_period_s=0.02)
        arrivals, clocks = [], []
        ros.probe.create_subscription(Header, "timing", lambda m: arrivals.append((time.monotonic(), m)), 50)
        ros.probe.create_subscription(Clock, "clock", clocks.append, 50)
        player.wait_for_subscribers(["/timing"], lambda: ros.spin_for(0.01))
        ros.spin_for(0.2)
        result = {}
        thread = threading.Thread(target=lambda: result.update(stats=player.play(rate=rate)))
        thread.start()
        while thread.is_alive():
            ros.executor.spin_once(timeout_sec=0.002)
        ros.spin_until(lambda: len(arrivals) == 13, 2)
        ros.spin_for(0.1)                                  # the last /clock, on its own topic
        player.close()
    return result["stats"], arrivals, clocks


def test_player_keeps_the_recorded_timing_and_can_go_as_fast_as_possible(tmp_path):
    span = write_timing_bag(tmp_path / "timing")
    stats, arrivals, _ = play_and_time(tmp_path / "timing", rate=1.0)
    assert [m.frame_id for _, m in arrivals] == [str(k) for k in range(13)]
    wall = arrivals[-1][0] - arrivals[0][0]
    assert stats.bag_span_s == pytest.approx(span)
    assert wall == pytest.approx(span, abs=0.1) and stats.max_lateness_s < 0.1
    gaps = np.diff([t for t, _ in arrivals])
    assert np.median(gaps) == pytest.approx(0.05, abs=0.015)

    stats2, arrivals2, _ = play_and_time(tmp_path / "timing", rate=2.0)
    assert (arrivals2[-1][0] - arrivals2[0][0]) == pytest.approx(span / 2, abs=0.1)

    stats_fast, arrivals_fast, _ = play_and_time(tmp_path / "timing", rate=0.0)
    assert len(arrivals_fast) == 13 and stats_fast.wall_s < span / 4


def test_player_publishes_the_bag_time_on_clock(tmp_path):
    span = write_timing_bag(tmp_path / "clock")
    _, arrivals, clocks = play_and_time(tmp_path / "clock", rate=1.0, clock=True)
    t = np.array([c.clock.sec * 10**9 + c.clock.nanosec for c in clocks])
    assert len(t) >= 13                                   # every message and in between
    assert np.all(np.diff(t) >= 0)                        # never backwards
    assert t[0] >= 1_000_000_000 and t[-1] == 1_000_000_000 + round(span * 1e9)
    assert len(np.unique(t)) > 13                         # ticks between the messages too


def test_sqlite3_storage_and_summary(tmp_path):
    writer = open_writer(tmp_path / "db", storage="sqlite3")
    conn = writer.add_connection("/x", "std_msgs/msg/Header", typestore=typestore())
    writer.write(conn, 42, serialize(Header(frame_id="a")))
    writer.close()
    assert (tmp_path / "db" / "db.db3").is_file()
    s = summarize(tmp_path / "db")
    assert s.storage == "sqlite3" and s.message_count == 1
    [(topic, t, msg)] = list(read_messages(tmp_path / "db"))
    assert (topic, t, msg.frame_id) == ("/x", 42, "a")


def test_command_line_records_what_it_plays(tmp_path):
    """fdl-robot-bag record and play as separate processes, as a user runs them."""
    import os
    import subprocess

    exe = Path(__import__("sys").executable).parent / "fdl-robot-bag"
    if not exe.exists():
        pytest.skip("fdl-robot-bag is not installed (pip install -e fdl_robot)")
    write_timing_bag(tmp_path / "source")
    topic = f"/cli_{os.getpid()}/timing"
    recorder = subprocess.Popen([str(exe), "record", "-o", str(tmp_path / "copy"), topic,
                                 "--duration", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        play = subprocess.run([str(exe), "play", str(tmp_path / "source"), "--fast", "--delay", "0.3",
                               "--remap", f"/timing:={topic}", "--wait-for-subscribers", "5"],
                              capture_output=True, text=True, timeout=30)
        assert play.returncode == 0, play.stderr
        assert "published 13 messages" in play.stdout
        time.sleep(0.3)
        recorder.send_signal(__import__("signal").SIGINT)          # Ctrl-C ends a recording
        out, _ = recorder.communicate(timeout=30)
    finally:
        recorder.kill()
    assert recorder.returncode == 0, out
    copied = [m.frame_id for _t, _s, m in read_messages(tmp_path / "copy")]
    assert copied == [str(k) for k in range(13)]
    assert cli.main(["info", str(tmp_path / "copy")]) == 0

"""camera_node with real rclpy publishers and subscribers.

A synthetic RealSense recording (pyrealsense2 software device + recorder) played by the
``realsense`` source must come out as rgb8, 16UC1 millimetres and CameraInfo on the
topics the parameters name, all three with one stamp and frame_id; a video file as
colour and CameraInfo only. The end of a non-looping file and failing reads must not
stop the node from behaving.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy comes with scripts/setup.sh")
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from fdl_robot.core.camera import PinholeCamera  # noqa: E402
from fdl_robot.perception.sources import Frame, SourceError  # noqa: E402
from fdl_robot.ros.base import SENSOR_QOS  # noqa: E402
from fdl_robot.ros.camera_node import CameraNode  # noqa: E402
from fdl_robot.ros.conversions import image_to_depth_m, image_to_rgb, stamp_to_ns  # noqa: E402

pytestmark = pytest.mark.ros

W, H, FPS = 64, 48, 30
CAMERA = PinholeCamera(60.5, 61.25, 31.75, 23.5, W, H)
TOPICS = {"color_topic": "cam/rgb", "depth_topic": "cam/depth", "camera_info_topic": "cam/info",
          "frame_id": "test_optical_frame"}


def recorded_frame(i: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., i % 3] = 50 + 50 * i                    # frame i: one channel at a known level
    depth = np.full((H, W), 750, np.uint16)          # a plane at 750 mm
    depth[0, 0] = 100 + i
    return rgb, depth


@pytest.fixture(scope="module")
def bag_file(tmp_path_factory):
    pytest.importorskip("pyrealsense2", reason="pyrealsense2 comes with scripts/setup.sh")
    from fdl_robot.perception.realsense_bag import write_synthetic_bag

    path = tmp_path_factory.mktemp("bag") / "camera_node.db3"
    return write_synthetic_bag(path, [recorded_frame(i) for i in range(3)], CAMERA, fps=FPS)


def by_stamp(messages) -> dict[int, object]:
    return {stamp_to_ns(m.header.stamp): m for m in messages}


def test_bag_frames_published_with_one_stamp_on_the_parameter_topics(bag_file):
    with RosHarness() as ros:
        node = ros.add(CameraNode, {"source": "realsense", "realsense_bag": bag_file, "loop": True,
                                    "fps": float(FPS), **TOPICS})
        colour = ros.collect(Image, "cam/rgb", SENSOR_QOS)
        depth = ros.collect(Image, "cam/depth", SENSOR_QOS)
        info = ros.collect(CameraInfo, "cam/info", 10)
        common = lambda: set(by_stamp(colour)) & set(by_stamp(depth)) & set(by_stamp(info))  # noqa: E731
        assert ros.spin_until(lambda: len(common()) >= 4, timeout_s=8), \
            (len(colour), len(depth), len(info), dict(node.counters))
        stamps = sorted(common())
        colours, depths, infos = by_stamp(colour), by_stamp(depth), by_stamp(info)
        for stamp in stamps:
            c, d, k = colours[stamp], depths[stamp], infos[stamp]
            assert c.encoding == "rgb8" and d.encoding == "16UC1"
            assert c.header.frame_id == d.header.frame_id == k.header.frame_id == "test_optical_frame"
            assert (c.width, c.height, d.width, d.height, k.width, k.height) == (W, H) * 3
            i = int(np.frombuffer(bytes(d.data), "<u2")[0]) - 100        # which recorded frame
            assert 0 <= i < 3
            np.testing.assert_array_equal(image_to_rgb(c), recorded_frame(i)[0])   # same frame
            depth_m = image_to_depth_m(d)
            assert depth_m[H // 2, W // 2] == pytest.approx(0.750)
            np.testing.assert_allclose(k.k, CAMERA.K.reshape(-1))
            assert k.distortion_model == "plumb_bob"
        # Stamps: from the ROS clock (now-based for a file) and increasing.
        assert stamps == sorted(set(stamps))
        now_ns = node.get_clock().now().nanoseconds
        assert 0 < now_ns - stamps[-1] < 5e9
        assert not node.counters["read error"] and not node.finished
        # Nothing on the default realsense-ros names: the parameters chose the topics.
        assert not node.count_subscribers("camera/color/image_raw")
        assert node.color_pub.topic_name.endswith("/cam/rgb")


def test_end_of_a_file_without_loop_stops_publishing(bag_file):
    with RosHarness() as ros:
        node = ros.add(CameraNode, {"source": "realsense", "realsense_bag": bag_file, "loop": False,
                                    "fps": 60.0, **TOPICS})
        assert ros.spin_until(lambda: node.finished, timeout_s=8), dict(node.counters)
        ros.spin_for(0.1)                                  # still alive, silent
        assert node.counters["ok frames"] == 3
        assert not node.counters["read error"]


def test_video_source_publishes_colour_and_guessed_camera_info(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = str(tmp_path / "red.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for _ in range(3):
        writer.write(np.full((H, W, 3), (0, 0, 255), np.uint8))    # BGR red
    writer.release()
    with RosHarness() as ros:
        ros.add(CameraNode, {"source": "video", "video_uri": path, "fps": float(FPS), **TOPICS})
        colour = ros.collect(Image, "cam/rgb", SENSOR_QOS)
        depth = ros.collect(Image, "cam/depth", SENSOR_QOS)
        info = ros.collect(CameraInfo, "cam/info", 10)
        assert ros.spin_until(lambda: set(by_stamp(colour)) & set(by_stamp(info)), timeout_s=8)
        ros.spin_for(0.1)
        assert not depth                                        # colour only
        rgb = image_to_rgb(colour[-1])
        np.testing.assert_allclose(rgb.reshape(-1, 3).mean(axis=0), (255, 0, 0), atol=8)
        k = info[-1].k
        assert k[0] == k[4] == pytest.approx(W, rel=1e-4) and (k[2], k[5]) == (31.5, 23.5)


class FlakySource:
    """A live source whose every other read fails; frames are 0.2 s old when read."""

    live = True

    def __init__(self):
        self.reads = 0
        self.closed = False

    def read(self, timeout_s=None):
        self.reads += 1
        if self.reads % 2 == 0:
            raise RuntimeError("USB hiccup")
        return Frame(np.zeros((H, W, 3), np.uint8), np.full((H, W), 500, np.uint16), CAMERA,
                     stamp_s=time.time() - 0.2, index=self.reads)

    def close(self):
        self.closed = True


def test_read_errors_are_counted_and_live_frames_stamped_at_capture():
    source = FlakySource()
    with RosHarness() as ros:
        node = ros.add(CameraNode, {"fps": 50.0, **TOPICS}, source=source)
        colour = ros.collect(Image, "cam/rgb", SENSOR_QOS)
        assert ros.spin_until(lambda: len(colour) >= 3 and node.counters["read error"] >= 3,
                              timeout_s=8), dict(node.counters)
        received_ns = node.get_clock().now().nanoseconds
        age_s = (received_ns - stamp_to_ns(colour[-1].header.stamp)) * 1e-9
        assert 0.2 <= age_s < 1.0                               # stamped at capture, not at publish
    assert source.closed                                        # destroy_node closed it


class MisalignedSource(FlakySource):
    """Depth at half the colour size: a source that forgot to align."""

    def read(self, timeout_s=None):
        return Frame(np.zeros((H, W, 3), np.uint8), np.zeros((H // 2, W // 2), np.uint16), CAMERA,
                     stamp_s=time.time())


def test_misaligned_frames_are_rejected_not_published():
    with RosHarness() as ros:
        node = ros.add(CameraNode, {"fps": 50.0, **TOPICS}, source=MisalignedSource())
        colour = ros.collect(Image, "cam/rgb", SENSOR_QOS)
        assert ros.spin_until(lambda: node.counters["bad frame"] >= 3, timeout_s=5)
        assert not colour and not node.counters["ok frames"]


def test_unavailable_source_fails_clearly():
    with RosHarness() as ros:
        with pytest.raises(SourceError, match="sim_node"):
            ros.add(CameraNode, {"source": "sim"})

"""The RealSense path without hardware, through camera_node's published topics.

A RealSense recording is made with pyrealsense2's software device and recorder
(:func:`fdl_robot.perception.realsense_bag.write_synthetic_bag`) the way a D405 would
record it -- depth in 0.1 mm units at half the colour resolution with its own
intrinsics (so librealsense must align it), colour with Brown-Conrady distortion -- and
played by camera_node (source ``realsense``). What comes out must be what realsense-ros
publishes: rgb8; 16UC1 in millimetres registered to colour; CameraInfo with the colour
camera's K, plumb_bob D, R = I, P = [K | 0]. Then the depth units are followed to the
end: detector_node (colour blobs) and localizer_node lift a red square on a plane at
750 mm to 0.750 m.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("pyrealsense2", reason="pyrealsense2 comes with scripts/setup.sh")
from fdl_robot_interfaces.msg import Object3DArray  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from fdl_robot.core.camera import PinholeCamera  # noqa: E402
from fdl_robot.ros.base import SENSOR_QOS  # noqa: E402
from fdl_robot.ros.camera_node import CameraNode  # noqa: E402
from fdl_robot.ros.conversions import image_to_depth_m, image_to_rgb, stamp_to_ns  # noqa: E402
from fdl_robot.ros.detector_node import DetectorNode  # noqa: E402
from fdl_robot.ros.localizer_node import LocalizerNode  # noqa: E402

pytestmark = pytest.mark.ros

W, H, FPS = 96, 72, 30
COLOR = PinholeCamera(90.5, 91.25, 47.75, 35.5, W, H, (0.05, -0.02, 0.001, -0.002, 0.004))
DEPTH = PinholeCamera(45.0, 45.0, 23.5, 17.5, W // 2, H // 2)     # D405-like: its own optics
UNITS_M = 1e-4                                                      # 0.1 mm per unit
PLANE_MM = 750
SQUARE = (40, 30, 52, 42)                                          # red square x0, y0, x1, y1 (edges)


def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.full((H, W, 3), 90, np.uint8)                          # grey table
    x0, y0, x1, y1 = SQUARE
    rgb[y0:y1, x0:x1] = (220, 20, 20)                               # a red cube seen from above
    rgb[0, 0] = (i, i, i)                                           # frame number
    depth = np.full((H // 2, W // 2), PLANE_MM * 10, np.uint16)     # 750 mm in 0.1 mm units
    return rgb, depth


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from fdl_robot.perception.realsense_bag import write_synthetic_bag

    path = tmp_path_factory.mktemp("rs") / "d405_like.db3"
    return write_synthetic_bag(path, [frame(i) for i in range(3)], COLOR, fps=FPS,
                               depth_units_m=UNITS_M, depth_intrinsics=DEPTH)


def by_stamp(messages) -> dict[int, object]:
    return {stamp_to_ns(m.header.stamp): m for m in messages}


def test_camera_node_publishes_realsense_ros_topics_from_a_recording(recording):
    with RosHarness() as ros:
        node = ros.add(CameraNode, {"source": "realsense", "realsense_bag": recording, "fps": float(FPS)})
        colour = ros.collect(Image, "camera/color/image_raw", SENSOR_QOS)
        depth = ros.collect(Image, "camera/aligned_depth_to_color/image_raw", SENSOR_QOS)
        info = ros.collect(CameraInfo, "camera/color/camera_info", 10)
        common = lambda: set(by_stamp(colour)) & set(by_stamp(depth)) & set(by_stamp(info))  # noqa: E731
        assert ros.spin_until(lambda: len(common()) >= 3, timeout_s=10), dict(node.counters)
        c_by, d_by, k_by = by_stamp(colour), by_stamp(depth), by_stamp(info)
        for stamp in sorted(common()):
            c, d, k = c_by[stamp], d_by[stamp], k_by[stamp]
            # encodings and layout (realsense-ros)
            assert (c.encoding, c.step, c.is_bigendian) == ("rgb8", 3 * W, 0)
            assert (d.encoding, d.step, d.is_bigendian) == ("16UC1", 2 * W, 0)
            assert (c.width, c.height) == (d.width, d.height) == (k.width, k.height) == (W, H)
            assert c.header.frame_id == d.header.frame_id == k.header.frame_id == "camera_color_optical_frame"
            i = int(image_to_rgb(c)[0, 0, 0])
            np.testing.assert_array_equal(image_to_rgb(c)[1:], frame(i)[0][1:])   # colour untouched
            # depth: 0.1 mm units -> millimetres, registered to the colour image
            raw = np.frombuffer(bytes(d.data), "<u2").reshape(H, W)
            valid = raw[raw > 0]
            assert valid.size > 0.9 * W * H and set(np.unique(valid)) == {PLANE_MM}
            assert np.nanmedian(image_to_depth_m(d)) == pytest.approx(0.750)
            # calibration: the colour camera's intrinsics and distortion
            np.testing.assert_allclose(np.reshape(k.k, (3, 3)), COLOR.K, rtol=1e-6)
            assert k.distortion_model == "plumb_bob"
            np.testing.assert_allclose(k.d, COLOR.dist, rtol=1e-6, atol=1e-9)     # float32 in the file
            np.testing.assert_allclose(np.reshape(k.r, (3, 3)), np.eye(3))
            np.testing.assert_allclose(np.reshape(k.p, (3, 4)), np.hstack([COLOR.K, np.zeros((3, 1))]),
                                       rtol=1e-6)
        assert not node.counters["read error"] and not node.counters["bad frame"]


def test_recorded_depth_units_reach_the_lifted_objects(recording):
    """camera_node -> detector_node (colour) -> localizer_node: the square lies at 0.750 m."""
    identity = {"camera_xyz": [0.0, 0.0, 0.0], "camera_quat_xyzw": [0.0, 0.0, 0.0, 1.0],
                "target_frame": "camera_color_optical_frame", "center_offset_m": 0.0}
    with RosHarness() as ros:
        ros.add(CameraNode, {"source": "realsense", "realsense_bag": recording, "fps": float(FPS)})
        ros.add(DetectorNode, {"backend": "color"})
        ros.add(LocalizerNode, identity)
        objects = ros.collect(Object3DArray, "objects")
        assert ros.spin_until(lambda: any(m.objects for m in objects), timeout_s=10), len(objects)
        (obj,) = next(m for m in objects if m.objects).objects
    assert obj.class_name == "red_cube"
    assert obj.depth_m == pytest.approx(0.750, abs=1e-6)            # mm from 0.1 mm, then metres
    # The square's centre back-projected at 0.75 m with the published (distorted) camera.
    x0, y0, x1, y1 = SQUARE
    expected = COLOR.unproject(np.array([[(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5]]), np.array([0.75]))[0]
    np.testing.assert_allclose([obj.position.x, obj.position.y, obj.position.z], expected, atol=1e-3)

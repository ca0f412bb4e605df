"""detector_node, localizer_node and tracker_node with real rclpy pub/sub.

A synthetic RGB-D frame with cubes at known base_link positions goes in; the known
boxes, 3D points and tracks must come out with the source image stamp. Bad input
(wrong encoding, size mismatch, missing camera_info, invalid depth, NaN, stamps out of
order, empty lists) must be counted, warned about, and never published as output.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("rclpy")
from fdl_robot_interfaces.msg import (Detection2D, Detection2DArray, Object3D,  # noqa: E402
                                      Object3DArray, Track, TrackArray)
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from fdl_robot.core.camera import PinholeCamera  # noqa: E402
from fdl_robot.core.geometry import Transform  # noqa: E402
from fdl_robot.perception.synthetic import Cube, render_cubes  # noqa: E402
from fdl_robot.ros.conversions import (camera_to_camera_info, camera_view_from_msg,  # noqa: E402
                                       camera_view_to_msg, depth_to_image,
                                       ns_to_stamp, rgb_to_image)
from fdl_robot.ros.detector_node import DetectorNode  # noqa: E402
from fdl_robot.ros.localizer_node import LocalizerNode  # noqa: E402
from fdl_robot.ros.tracker_node import TrackerNode  # noqa: E402

pytestmark = pytest.mark.ros

CAMERA = PinholeCamera(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480)
# Camera 0.6 m above the table looking down, optical x along base -y: a plausible mount.
T_BASE_CAM = Transform.from_rpy(np.pi, 0.0, -np.pi / 2, t=(0.5, 0.0, 0.6))
EXTRINSICS = {"camera_xyz": T_BASE_CAM.translation.tolist(),
              "camera_quat_xyzw": T_BASE_CAM.as_quaternion().tolist()}
FRAME = "camera_color_optical_frame"
RED = Cube("red_cube", (0.45, 0.05, 0.02))
BLUE = Cube("blue_cube", (0.55, -0.08, 0.02))


def frame_messages(stamp_ns: int, cubes=(RED, BLUE)):
    rgb, depth_mm, boxes = render_cubes(CAMERA, T_BASE_CAM, list(cubes), table_depth_m=0.6)
    stamp = ns_to_stamp(stamp_ns)
    return (rgb_to_image(rgb, stamp, FRAME), depth_to_image(depth_mm, stamp, FRAME),
            camera_to_camera_info(CAMERA, stamp, FRAME), boxes)


def detections_msg(stamp_ns: int, boxes, names=("red_cube", "blue_cube")) -> Detection2DArray:
    msg = Detection2DArray(image_width=640, image_height=480)
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), FRAME
    for i, (b, name) in enumerate(zip(boxes, names, strict=False)):   # names: the first len(boxes)
        msg.detections.append(Detection2D(class_id=i, class_name=name, score=0.9, x_min=float(b[0]),
                                          y_min=float(b[1]), x_max=float(b[2]), y_max=float(b[3])))
    return msg


# --- detector_node ------------------------------------------------------------------------

def test_detector_node_finds_the_cubes_and_keeps_the_stamp():
    with RosHarness() as ros:
        node = ros.add(DetectorNode, {"backend": "color", "publish_debug_image": True})
        images = ros.publisher(Image, "camera/color/image_raw")
        out = ros.collect(Detection2DArray, "detections")
        debug = ros.collect(Image, "detections/image", qos=node.debug_pub.qos_profile)
        image, _, _, boxes = frame_messages(1_000_000_123)
        ros.wait_for_subscribers(images)
        images.publish(image)
        assert ros.spin_until(lambda: out and debug)
        msg = out[0]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1, 123)
        assert msg.header.frame_id == FRAME and (msg.image_width, msg.image_height) == (640, 480)
        got = {d.class_name: [d.x_min, d.y_min, d.x_max, d.y_max] for d in msg.detections}
        assert set(got) == {"red_cube", "blue_cube"}
        np.testing.assert_allclose(got["red_cube"], boxes[0], atol=1.0)
        np.testing.assert_allclose(got["blue_cube"], boxes[1], atol=1.0)

        bad = Image(height=480, width=640, encoding="mono8", step=640, data=bytes(640 * 480))
        images.publish(bad)
        ros.spin_until(lambda: node.counters["bad image"] > 0)
        assert node.counters["bad image"] == 1 and len(out) == 1


# --- localizer_node -------------------------------------------------------------------------

def _localizer(ros, **params):
    node = ros.add(LocalizerNode, {**EXTRINSICS, **params})
    pubs = {"info": ros.publisher(CameraInfo, "camera/color/camera_info"),
            "depth": ros.publisher(Image, "camera/aligned_depth_to_color/image_raw"),
            "det": ros.publisher(Detection2DArray, "detections")}
    for p in pubs.values():
        ros.wait_for_subscribers(p)
    return node, pubs, ros.collect(Object3DArray, "objects")


def test_localizer_lifts_boxes_to_the_known_points_in_base_link():
    with RosHarness() as ros:
        node, pubs, out = _localizer(ros)
        stamp = 5_000_000_000
        _, depth, info, boxes = frame_messages(stamp)
        pubs["info"].publish(info)
        ros.spin_for(0.1)
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(stamp, boxes))
        assert ros.spin_until(lambda: out)
        msg = out[0]
        assert msg.header.frame_id == "base_link"
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 0)
        got = {o.class_name: np.array([o.position.x, o.position.y, o.position.z]) for o in msg.objects}
        # near-face depth + half the cube along the ray: within 3 mm of the true centres
        np.testing.assert_allclose(got["red_cube"], RED.p_base, atol=0.003)
        np.testing.assert_allclose(got["blue_cube"], BLUE.p_base, atol=0.003)
        cov = np.array(msg.objects[0].position_covariance).reshape(3, 3)
        assert np.all(np.linalg.eigvalsh(cov) > 0) and np.allclose(cov, cov.T)
        assert msg.objects[0].depth_m == pytest.approx(0.6 - 0.02 - 0.02, abs=0.002)
        assert node.counters["ok frames"] == 1


def test_localizer_publishes_the_view_of_its_camera():
    """Object3DArray.view: the camera_info, the T_base_cam of the frame and the depth range."""
    with RosHarness() as ros:
        _node, pubs, out = _localizer(ros, min_depth_m=0.2, max_depth_m=1.5)
        stamp = 5_000_000_000
        _, depth, info, boxes = frame_messages(stamp)
        pubs["info"].publish(info)
        ros.spin_for(0.1)
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(stamp, boxes))
        assert ros.spin_until(lambda: out)
        v = out[0].view
        assert (v.frame_id, v.width, v.height) == (FRAME, 640, 480)
        assert (v.min_depth_m, v.max_depth_m) == (0.2, 1.5)
        np.testing.assert_array_equal(v.k, CAMERA.K.reshape(-1))
        view = camera_view_from_msg(v)
        np.testing.assert_allclose(view.T_base_cam.as_matrix(), T_BASE_CAM.as_matrix(), atol=1e-12)
        assert view.sees(np.array([RED.p_base, BLUE.p_base, [1.5, 0.0, 0.02]])).tolist() == [True, True, False]


def test_localizer_rejects_bad_input_without_publishing():
    with RosHarness() as ros:
        node, pubs, out = _localizer(ros)
        _, depth, info, boxes = frame_messages(1_000_000_000)

        # 1. no camera_info yet
        pubs["depth"].publish(depth)
        pubs["det"].publish(detections_msg(1_000_000_000, boxes))
        assert ros.spin_until(lambda: node.counters["missing camera_info"] == 1)
        # 2. an uncalibrated camera_info (all-zero K) is refused
        zero = CameraInfo(width=640, height=480)
        pubs["info"].publish(zero)
        assert ros.spin_until(lambda: node.counters["bad camera_info"] == 1)
        pubs["info"].publish(info)
        ros.spin_for(0.1)
        # 3. wrong depth encoding
        stamp = 2_000_000_000
        wrong = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=bytes(640 * 480 * 3))
        wrong.header.stamp = ns_to_stamp(stamp)
        pubs["depth"].publish(wrong)
        pubs["det"].publish(detections_msg(stamp, boxes))
        assert ros.spin_until(lambda: node.counters["bad input"] == 1)
        # 4. depth of another size than camera_info
        stamp = 3_000_000_000
        small = depth_to_image(np.full((240, 320), 600, np.uint16), ns_to_stamp(stamp), FRAME)
        pubs["depth"].publish(small)
        pubs["det"].publish(detections_msg(stamp, boxes))
        assert ros.spin_until(lambda: node.counters["bad input"] == 2)
        # 5. NaN in a box
        stamp = 4_000_000_000
        _, depth4, _, _ = frame_messages(stamp)
        nan_boxes = boxes.copy()
        nan_boxes[0, 0] = np.nan
        pubs["depth"].publish(depth4)
        pubs["det"].publish(detections_msg(stamp, nan_boxes))
        assert ros.spin_until(lambda: node.counters["bad input"] == 3)
        assert out == []

        # 6. all depth invalid: no object, the frame still counted (empty output, no 0 m point)
        stamp = 6_000_000_000
        holes = depth_to_image(np.zeros((480, 640), np.uint16), ns_to_stamp(stamp), FRAME)
        pubs["depth"].publish(holes)
        pubs["det"].publish(detections_msg(stamp, boxes))
        assert ros.spin_until(lambda: out)
        assert out[-1].objects == [] and node.counters["no valid depth"] == 1
        # 7. a stamp older than the last one processed
        stamp_old = 5_500_000_000
        _, depth_old, _, _ = frame_messages(stamp_old)
        pubs["depth"].publish(depth_old)
        pubs["det"].publish(detections_msg(stamp_old, boxes))
        assert ros.spin_until(lambda: node.counters["out-of-order stamp"] == 1)
        # 8. an empty detection list is a valid frame with no objects
        stamp = 7_000_000_000
        _, depth7, _, _ = frame_messages(stamp)
        pubs["depth"].publish(depth7)
        pubs["det"].publish(detections_msg(stamp, []))
        assert ros.spin_until(lambda: len(out) == 2)
        assert out[-1].objects == [] and out[-1].header.stamp.sec == 7


def test_localizer_takes_a_jump_back_as_a_new_time_base():
    """A bag played again: the old time line's unmatched depth is dropped, the new line lifted."""
    with RosHarness() as ros:
        node, pubs, out = _localizer(ros)
        _, _, info, boxes = frame_messages(7_900_000_000)
        pubs["info"].publish(info)
        ros.spin_for(0.1)
        for stamp in (7_900_000_000, 8_000_000_000):       # the end of a first play ...
            pubs["depth"].publish(frame_messages(stamp)[1])
        pubs["det"].publish(detections_msg(7_900_000_000, boxes))   # ... the detector skipped 8.0 s
        assert ros.spin_until(lambda: len(out) == 1 and node.sync.pending() == [0, 1])
        stamp = 100_000_000                                   # the second play starts at 0.1 s
        pubs["depth"].publish(frame_messages(stamp)[1])
        pubs["det"].publish(detections_msg(stamp, boxes))
        assert ros.spin_until(lambda: len(out) == 2)
        assert out[-1].header.stamp == ns_to_stamp(stamp) and len(out[-1].objects) == 2
        assert node.counters["new time base"] == 1 and node.counters["stale after time jump"] == 1
        assert node.sync.pending() == [0, 0]
        assert not any(k.startswith(("out-of-order", "unmatched")) for k in node.counters), node.counters


# --- tracker_node -----------------------------------------------------------------------------

def objects_msg(stamp_ns: int, points, names=("red_cube",), frame="base_link") -> Object3DArray:
    msg = Object3DArray()
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), frame
    for p, name in zip(points, names, strict=False):   # names: the first len(points)
        o = Object3D(class_id=0, class_name=name, score=0.8)
        o.position.x, o.position.y, o.position.z = (float(v) for v in p)
        msg.objects.append(o)
    return msg


def test_tracker_node_confirms_a_track_and_rejects_bad_stamps():
    with RosHarness() as ros:
        node = ros.add(TrackerNode)
        pub = ros.publisher(Object3DArray, "objects")
        out = ros.collect(TrackArray, "tracks")
        ros.wait_for_subscribers(pub)
        p = np.array([0.45, 0.05, 0.02])
        for k in range(4):                         # 15 Hz, moving 1.5 cm/s along x
            pub.publish(objects_msg(10_000_000_000 + k * 66_666_667, [p + [0.001 * k, 0, 0]]))
            assert ros.spin_until(lambda: len(out) == k + 1)
        assert out[1].tracks == []                 # tentative tracks are not published
        (track,) = out[-1].tracks
        assert track.id == 1 and track.class_name == "red_cube" and track.hits == 4
        assert track.state == track.CONFIRMED
        assert abs(track.position.x - 0.453) < 0.005
        assert (out[-1].header.stamp.sec, out[-1].header.stamp.nanosec) == (10, 200_000_001)

        pub.publish(objects_msg(9_700_000_000, [p]))              # 0.5 s back: a late message
        assert ros.spin_until(lambda: node.counters["out-of-order stamp"] == 1)
        pub.publish(objects_msg(11_000_000_000, [p], frame="map"))  # frame switch
        assert ros.spin_until(lambda: node.counters["frame changed"] == 1)
        pub.publish(objects_msg(11_000_000_000, [[np.nan, 0, 0]]))  # NaN object: dropped
        assert ros.spin_until(lambda: len(out) == 5)   # the frame counts, the NaN row does not
        assert node.counters["non-finite object"] == 1 and out[-1].tracks[0].state == out[-1].tracks[0].LOST

        pub.publish(objects_msg(2_000_000_000, [p]))   # 9 s back: a new time base (a bag played again)
        assert ros.spin_until(lambda: len(out) == 6)
        assert node.counters["new time base"] == 1 and node.counters["out-of-order stamp"] == 1
        assert out[-1].tracks == [] and [(t.id, t.hits) for t in node.tracker.tracks()] == [(1, 1)]

        client = ros.probe.create_client(Trigger, f"{ros.namespace}/tracker_node/reset")
        assert client.wait_for_service(timeout_sec=5)
        future = client.call_async(Trigger.Request())
        assert ros.spin_until(future.done) and future.result().success
        assert len(node.tracker) == 0


# Two localizers (cameras A and B looking down at disjoint parts of the table, 0.6 m above it)
# into one tracker: at 0.6 m CAMERA sees base x within +-0.24 m and y within +-0.32 m.
VIEWS = {name: camera_view_to_msg(CAMERA, Transform.from_rpy(np.pi, 0.0, -np.pi / 2, t=(x, 0.0, 0.62)),
                                  f"{name}_optical_frame", 0.1, 4.0)
         for name, x in (("A", 0.45), ("B", 1.2))}
SEEN_BY = {"A": [RED.p_base, BLUE.p_base], "B": [[1.15, 0.05, 0.02], [1.25, -0.1, 0.02]]}


def _two_localizers(use_camera_view: bool, b_offset_ns: int, frames: int = 12):
    """Cameras A and B at 15 Hz (B ``b_offset_ns`` after A) publish their objects with their views
    into one tracker_node; returns the tracker's TrackArrays."""
    with RosHarness() as ros:
        ros.add(TrackerNode, {"use_camera_view": use_camera_view})
        pubs = {name: ros.publisher(Object3DArray, "objects") for name in VIEWS}   # two publishers
        out = ros.collect(TrackArray, "tracks")
        for pub in pubs.values():
            ros.wait_for_subscribers(pub)
        for k in range(frames):
            for name, dt in (("A", 0), ("B", b_offset_ns)):
                msg = objects_msg(20_000_000_000 + k * 66_666_667 + dt, SEEN_BY[name],
                                  names=("red_cube", "blue_cube"))
                msg.view = VIEWS[name]
                n = len(out)
                pubs[name].publish(msg)
                assert ros.spin_until(lambda n=n: len(out) == n + 1)
        return out


@pytest.mark.parametrize("b_offset_ns", [0, 33_333_333], ids=["equal stamps", "interleaved"])
def test_tracker_node_keeps_the_tracks_of_two_cameras_confirmed(b_offset_ns):
    assert camera_view_from_msg(VIEWS["A"]).sees(np.array(SEEN_BY["A"] + SEEN_BY["B"])).tolist() == \
        [True, True, False, False]
    assert camera_view_from_msg(VIEWS["B"]).sees(np.array(SEEN_BY["A"] + SEEN_BY["B"])).tolist() == \
        [False, False, True, True]
    out = _two_localizers(True, b_offset_ns)
    for msg in out[5:]:                       # from B's third frame on: both sets, confirmed, same ids
        assert [(t.id, t.state) for t in msg.tracks] == [(i, Track.CONFIRMED) for i in (1, 2, 3, 4)]
    final = {t.id: [t.position.x, t.position.y] for t in out[-1].tracks}
    np.testing.assert_allclose([final[1], final[3]], [RED.p_base[:2], SEEN_BY["B"][0][:2]], atol=1e-6)
    # use_camera_view false (as before views): each camera's update deletes the other's tentative tracks
    assert all(msg.tracks == [] for msg in _two_localizers(False, b_offset_ns, frames=6))


def test_tracker_node_rejects_a_bad_view_without_crashing():
    with RosHarness() as ros:
        node = ros.add(TrackerNode, {"n_init": 1})
        pub = ros.publisher(Object3DArray, "objects")
        out = ros.collect(TrackArray, "tracks")
        ros.wait_for_subscribers(pub)
        msg = objects_msg(1_000_000_000, [RED.p_base])
        msg.view = copy.deepcopy(VIEWS["A"])
        msg.view.camera_pose.orientation.w = 3.0          # not a rotation
        pub.publish(msg)
        assert ros.spin_until(lambda: node.counters["bad view"] == 1)
        msg.view = VIEWS["A"]
        pub.publish(msg)
        assert ros.spin_until(lambda: out) and len(out[0].tracks) == 1 and len(out) == 1

"""Property tests (hypothesis) of the message conversions: numpy <-> ROS messages.

Round trips for images (rgb8/bgr8, 16UC1/32FC1, padded rows, either byte order),
CameraInfo, detections, tracks and objects -- through the conversion functions, through
rclpy's CDR and through the rosbags typestore that writes our bags -- including empty
arrays, odd sizes and extreme values. Anything a conversion cannot represent must raise
InvalidInput, never return garbage.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from builtin_interfaces.msg import Time  # noqa: E402
from fdl_robot_interfaces.msg import Object3D, Object3DArray  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from fdl_robot.bags.typestore import typestore  # noqa: E402
from fdl_robot.core.camera import PinholeCamera  # noqa: E402
from fdl_robot.core.geometry import Transform  # noqa: E402
from fdl_robot.core.tracking import Track as CoreTrack  # noqa: E402
from fdl_robot.core.tracking import TrackState  # noqa: E402
from fdl_robot.perception.detector import Detections  # noqa: E402
from fdl_robot.ros.conversions import (InvalidInput, camera_info_to_camera,  # noqa: E402
                                       camera_to_camera_info, camera_view_from_msg, camera_view_to_msg,
                                       depth_to_image, detections_from_msg,
                                       detections_to_msg, image_to_depth_m, image_to_rgb,
                                       ns_to_stamp, rgb_to_image, s_to_stamp, stamp_to_ns,
                                       stamp_to_s)
from fdl_robot.ros.tracker_node import TrackerNode  # noqa: E402

pytestmark = pytest.mark.ros
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STAMP = Time(sec=12, nanosec=345)
F32_MAX = float(np.finfo(np.float32).max)

sizes = st.integers(1, 13)                                     # odd and tiny sizes included
finite32 = st.floats(-F32_MAX, F32_MAX, width=32, allow_nan=False)
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def cdr(msg):
    """The message as a subscriber receives it."""
    return deserialize_message(serialize_message(msg), type(msg))


def via_bag_typestore(msg, msgtype: str):
    """Decode rclpy's CDR with the typestore our bags carry (a second implementation)."""
    return typestore().deserialize_cdr(serialize_message(msg), msgtype)


# --- time -------------------------------------------------------------------------------

@FAST
@given(st.integers(-(2**31) * 10**9, (2**31 - 1) * 10**9 + 999_999_999))
def test_stamp_ns_round_trip_is_exact(t_ns):
    stamp = ns_to_stamp(t_ns)
    assert 0 <= stamp.nanosec < 10**9
    assert stamp_to_ns(stamp) == t_ns
    assert stamp_to_ns(cdr(stamp)) == t_ns


@FAST
@given(st.integers(0, (2**31 - 1) * 10**9))
def test_stamp_seconds_round_trip_within_float_precision(t_ns):
    assert abs(stamp_to_ns(s_to_stamp(stamp_to_s(ns_to_stamp(t_ns)))) - t_ns) <= 1000


# --- images -----------------------------------------------------------------------------

@FAST
@given(hnp.arrays(np.uint8, st.tuples(sizes, sizes, st.just(3))))
def test_rgb_round_trip(rgb):
    msg = rgb_to_image(rgb, STAMP, "cam")
    assert (msg.encoding, msg.step, len(msg.data)) == ("rgb8", 3 * rgb.shape[1], rgb.size)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    np.testing.assert_array_equal(image_to_rgb(cdr(msg)), rgb)


@FAST
@given(hnp.arrays(np.uint8, st.tuples(sizes, sizes, st.just(3))), st.integers(0, 7), st.integers(0, 255))
def test_bgr8_with_row_padding_reads_as_rgb(rgb, pad, fill):
    h, w, _ = rgb.shape
    rows = np.full((h, 3 * w + pad), fill, np.uint8)
    rows[:, :3 * w] = rgb[..., ::-1].reshape(h, 3 * w)
    msg = Image(height=h, width=w, encoding="bgr8", step=3 * w + pad, data=rows.tobytes())
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@FAST
@given(hnp.arrays(np.dtype("<u2"), st.tuples(sizes, sizes)) | hnp.arrays(np.dtype(">u2"), st.tuples(sizes, sizes)))
def test_depth_mm_round_trip_any_byte_order(mm):
    msg = depth_to_image(mm, STAMP, "cam")
    assert (msg.encoding, msg.is_bigendian, msg.step) == ("16UC1", 0, 2 * mm.shape[1])
    depth = image_to_depth_m(cdr(msg))
    assert depth.dtype == np.float32 and depth.shape == mm.shape
    expected = mm.astype(np.float32) * np.float32(0.001)
    np.testing.assert_array_equal(np.isnan(depth), mm == 0)          # 0 = invalid
    np.testing.assert_array_equal(depth[mm > 0], expected[mm > 0])


@FAST
@given(hnp.arrays(np.dtype("<f4"), st.tuples(sizes, sizes), elements=st.floats(width=32))
       | hnp.arrays(np.dtype(">f4"), st.tuples(sizes, sizes), elements=st.floats(width=32)))
def test_depth_metres_round_trip_marks_invalid_as_nan(m):
    depth = image_to_depth_m(cdr(depth_to_image(m, STAMP, "cam")))
    valid = np.isfinite(m) & (m > 0)
    np.testing.assert_array_equal(np.isnan(depth), ~valid)
    np.testing.assert_array_equal(depth[valid], m[valid].astype(np.float32))


@FAST
@given(hnp.arrays(np.uint16, st.tuples(sizes, sizes)), st.sampled_from(["16UC1", "mono16"]),
       st.floats(1e-5, 1.0))
def test_big_endian_16bit_depth_messages_decode(mm, encoding, scale):
    h, w = mm.shape
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=1, step=2 * w,
                data=mm.astype(">u2").tobytes())
    depth = image_to_depth_m(msg, depth_scale_m=scale)
    np.testing.assert_allclose(depth[mm > 0], mm[mm > 0].astype(np.float32) * np.float32(scale), rtol=1e-6)


@FAST
@given(st.integers(0, 4), st.integers(0, 4), st.sampled_from(["rgb8", "bgr8", "16UC1", "32FC1"]),
       st.integers(-3, 3))
def test_malformed_images_raise_invalid_input(h, w, encoding, extra):
    bpp = {"rgb8": 3, "bgr8": 3, "16UC1": 2, "32FC1": 4}[encoding]
    assume(h == 0 or w == 0 or extra != 0)
    msg = Image(height=h, width=w, encoding=encoding, step=w * bpp, data=bytes(max(0, h * w * bpp + extra)))
    convert = image_to_rgb if bpp == 3 else image_to_depth_m
    with pytest.raises(InvalidInput):
        convert(msg)


@FAST
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16, np.uint16, np.bool_]),
                  st.tuples(sizes, sizes, st.just(3))))
def test_rgb_to_image_rejects_what_is_not_uint8(rgb):
    with pytest.raises(InvalidInput):
        rgb_to_image(rgb, STAMP, "cam")


@FAST
@given(hnp.arrays(st.sampled_from([np.float64, np.int32, np.uint8, np.int16]), st.tuples(sizes, sizes)))
def test_depth_to_image_rejects_other_dtypes(depth):
    with pytest.raises(InvalidInput):
        depth_to_image(depth, STAMP, "cam")


def test_empty_images_are_invalid_both_ways():
    msg = rgb_to_image(np.zeros((0, 4, 3), np.uint8), STAMP, "cam")
    with pytest.raises(InvalidInput, match="empty"):
        image_to_rgb(msg)
    with pytest.raises(InvalidInput, match="empty"):
        image_to_depth_m(depth_to_image(np.zeros((3, 0), np.uint16), STAMP, "cam"))


# --- camera_info ----------------------------------------------------------------------------

focal = st.floats(1e-3, 1e5)
centre = st.floats(-1e4, 1e4)
coeff = st.floats(-10.0, 10.0)


@st.composite
def cameras(draw):
    dist = draw(st.one_of(st.none(), st.lists(coeff, min_size=4, max_size=5),
                          st.lists(coeff, min_size=8, max_size=8)))
    if dist is not None and not any(dist):
        dist = None
    return PinholeCamera(draw(focal), draw(focal), draw(centre), draw(centre), draw(st.integers(1, 8192)),
                         draw(st.integers(1, 8192)), dist)


@FAST
@given(cameras())
def test_camera_info_round_trip(camera):
    msg = camera_to_camera_info(camera, STAMP, "cam")
    np.testing.assert_array_equal(np.reshape(msg.k, (3, 3)), camera.K)
    np.testing.assert_array_equal(np.reshape(msg.p, (3, 4)), np.hstack([camera.K, np.zeros((3, 1))]))
    np.testing.assert_array_equal(np.reshape(msg.r, (3, 3)), np.eye(3))
    assert msg.distortion_model == ("rational_polynomial" if camera.dist is not None
                                    and len(camera.dist) == 8 else "plumb_bob")
    for m in (msg, cdr(msg)):
        back = camera_info_to_camera(m)
        assert (back.fx, back.fy, back.cx, back.cy, back.width, back.height) == \
            (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
        if camera.dist is None:
            assert back.dist is None
        else:
            np.testing.assert_array_equal(back.dist, camera.dist)


@FAST
@given(cameras(), st.sampled_from(["k", "d"]), st.sampled_from([math.nan, math.inf, -math.inf]),
       st.integers(0, 8))
def test_camera_info_with_non_finite_calibration_is_invalid(camera, field, bad, index):
    msg = camera_to_camera_info(camera, STAMP, "cam")
    values = list(getattr(msg, field))
    if field == "k":
        index = [0, 2, 4, 5][index % 4]
    else:
        values = values if camera.dist is not None else [0.0] * 5
        index %= len(values)
    values[index] = bad
    setattr(msg, field, values)
    with pytest.raises(InvalidInput):
        camera_info_to_camera(msg)


def test_uncalibrated_camera_info_is_invalid():
    with pytest.raises(InvalidInput, match="calibrat"):
        camera_info_to_camera(CameraInfo(width=640, height=480))


# --- detections -------------------------------------------------------------------------------

@st.composite
def detections(draw):
    n = draw(st.integers(0, 8))
    corners = draw(hnp.arrays(np.float32, (n, 2, 2), elements=finite32))
    lo, hi = corners.min(axis=1), corners.max(axis=1)            # x_min <= x_max, y_min <= y_max
    boxes = np.concatenate([lo, hi], axis=1).astype(float)
    scores = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 1.0)))
    ids = draw(hnp.arrays(np.int64, n, elements=st.integers(-(2**31), 2**31 - 1)))
    return Detections(boxes, scores, ids, tuple(draw(st.lists(names, min_size=n, max_size=n))))


@FAST
@given(detections(), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_detections_round_trip(det, width, height):
    header = cdr(Image()).header
    msg = detections_to_msg(det, header, width, height)
    for m, scores in ((msg, det.scores), (cdr(msg), det.scores.astype(np.float32))):
        back = detections_from_msg(m)
        assert back.boxes_xyxy.shape == (len(det), 4) and back.scores.shape == (len(det),)
        np.testing.assert_array_equal(back.boxes_xyxy, det.boxes_xyxy)          # float32-exact inputs
        np.testing.assert_array_equal(back.scores, scores)                      # float32 on the wire
        np.testing.assert_array_equal(back.class_ids, det.class_ids)
        assert back.class_names == det.class_names
        assert (m.image_width, m.image_height) == (width, height)
    decoded = via_bag_typestore(msg, "fdl_robot_interfaces/msg/Detection2DArray")
    assert [d.class_name for d in decoded.detections] == list(det.class_names)
    np.testing.assert_array_equal(
        np.reshape([[d.x_min, d.y_min, d.x_max, d.y_max] for d in decoded.detections], (-1, 4)),
        det.boxes_xyxy)


@FAST
@given(detections(), st.integers(0, 7), st.integers(0, 3),
       st.sampled_from([math.nan, math.inf, -math.inf, "swap"]))
def test_bad_detections_are_invalid(det, row, col, bad):
    assume(len(det) > 0)
    msg = detections_to_msg(det, Image().header, 10, 10)
    d = msg.detections[row % len(det)]
    if bad == "swap":
        assume(d.x_min < d.x_max)
        d.x_min, d.x_max = d.x_max, d.x_min
    else:
        setattr(d, ["x_min", "y_min", "x_max", "score"][col], bad)
    with pytest.raises(InvalidInput):
        detections_from_msg(msg)


# --- tracks and objects -------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6)


@st.composite
def core_tracks(draw):
    n = draw(st.integers(0, 6))
    ids = draw(st.lists(st.integers(1, 2**32 - 1), min_size=n, max_size=n, unique=True))
    tracks = []
    for i in ids:
        mean = draw(hnp.arrays(np.float64, 6, elements=finite))
        a = draw(hnp.arrays(np.float64, (6, 6), elements=st.floats(-10, 10)))
        label = draw(st.one_of(st.none(), st.tuples(st.integers(-(2**31), 2**31 - 1), names)))
        tracks.append(CoreTrack(id=i, state=draw(st.sampled_from(list(TrackState))),
                                state_mean=mean, state_covariance=a @ a.T, hits=draw(st.integers(0, 2**32 - 1)),
                                age_s=draw(finite), time_since_update_s=draw(finite), label=label,
                                score=draw(st.one_of(st.none(), st.floats(0.0, 1.0)))))
    return tracks


@FAST
@given(core_tracks())
def test_tracks_to_msg_round_trip(tracks):
    header = Image().header
    header.stamp, header.frame_id = STAMP, "base_link"
    msg = TrackerNode.to_msg(tracks, header)
    states = {TrackState.TENTATIVE: 0, TrackState.CONFIRMED: 1, TrackState.LOST: 2}
    decoded = via_bag_typestore(msg, "fdl_robot_interfaces/msg/TrackArray")
    for m in (msg, cdr(msg)):
        assert len(m.tracks) == len(tracks) and m.header.frame_id == "base_link"
        for t, r in zip(tracks, m.tracks, strict=True):
            assert (r.id, r.state, r.hits) == (t.id, states[t.state], t.hits)
            assert (r.class_id, r.class_name) == (t.label if t.label is not None else (-1, ""))
            assert r.score == np.float32(t.score or 0.0)
            np.testing.assert_array_equal([r.position.x, r.position.y, r.position.z], t.position)
            np.testing.assert_array_equal([r.velocity.x, r.velocity.y, r.velocity.z], t.velocity)
            np.testing.assert_array_equal(np.reshape(r.position_covariance, (3, 3)), t.covariance)
            np.testing.assert_array_equal(np.reshape(r.velocity_covariance, (3, 3)), t.state_covariance[3:, 3:])
            np.testing.assert_array_equal(np.reshape(r.position_velocity_covariance, (3, 3)),
                                          t.state_covariance[:3, 3:])
            assert (r.age_s, r.time_since_update_s) == (t.age_s, t.time_since_update_s)
    for t, r in zip(tracks, decoded.tracks, strict=True):
        assert r.id == t.id and r.state == states[t.state]
        np.testing.assert_array_equal(r.position_covariance, t.covariance.reshape(-1))
        np.testing.assert_array_equal(r.velocity_covariance, t.state_covariance[3:, 3:].reshape(-1))


@FAST
@given(st.integers(0, 6).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, (n, 3), elements=st.floats(allow_nan=False)),
    hnp.arrays(np.float64, (n, 3, 3), elements=st.floats(allow_nan=False)),
    hnp.arrays(np.float32, n, elements=finite32),
    st.lists(names, min_size=n, max_size=n))))
def test_objects_survive_cdr_and_the_bag_typestore(data):
    """Object3DArray built from numpy as localizer_node does, parsed back as tracker_node does."""
    positions, covariances, depths, class_names = data
    n = len(positions)
    msg = Object3DArray()
    msg.header.stamp, msg.header.frame_id = STAMP, "base_link"
    for p, c, z, name in zip(positions, covariances, depths, class_names, strict=True):
        o = Object3D(class_name=name, depth_m=float(z))
        o.position.x, o.position.y, o.position.z = (float(v) for v in p)
        o.position_covariance = c.reshape(-1)
        msg.objects.append(o)
    for m in (cdr(msg), via_bag_typestore(msg, "fdl_robot_interfaces/msg/Object3DArray")):
        back_p = np.array([[o.position.x, o.position.y, o.position.z] for o in m.objects], float).reshape(n, 3)
        back_c = np.array([o.position_covariance for o in m.objects], float).reshape(n, 3, 3)
        np.testing.assert_array_equal(back_p, positions)          # float64: bit-exact, inf included
        np.testing.assert_array_equal(back_c, covariances)
        np.testing.assert_array_equal([o.depth_m for o in m.objects], depths)
        assert [o.class_name for o in m.objects] == class_names


# --- camera views (Object3DArray.view) ---------------------------------------------------

@FAST
@given(st.integers(1, 4096), st.integers(1, 4096), st.floats(1.0, 5000.0), st.floats(1.0, 5000.0),
       st.floats(-5000.0, 5000.0), st.floats(-5000.0, 5000.0),
       hnp.arrays(np.float64, 4, elements=st.floats(-1.0, 1.0)), hnp.arrays(np.float64, 3, elements=st.floats(-10, 10)),
       st.floats(0.0, 10.0), st.floats(0.001, 10.0), names)
def test_camera_view_round_trip(width, height, fx, fy, cx, cy, q, t, near, span, frame):
    """camera_view_to_msg -> CDR / bag typestore -> camera_view_from_msg gives the same view."""
    assume(np.linalg.norm(q) > 0.1)
    camera = PinholeCamera(fx, fy, cx, cy, width, height)
    T = Transform.from_quaternion(q, t)
    msg = Object3DArray()
    msg.view = camera_view_to_msg(camera, T, frame, near, near + span)
    decoded = via_bag_typestore(msg, "fdl_robot_interfaces/msg/Object3DArray").view
    assert (decoded.width, decoded.height, decoded.frame_id) == (width, height, frame)
    np.testing.assert_array_equal(decoded.k, camera.K.reshape(-1))
    view = camera_view_from_msg(cdr(msg).view)
    assert view.camera == camera and view.frame_id == frame
    assert (view.min_depth_m, view.max_depth_m) == (near, near + span)
    np.testing.assert_allclose(view.T_base_cam.as_matrix(), T.as_matrix(), atol=1e-12)


def test_camera_view_of_width_0_is_unknown_and_bad_views_are_rejected():
    assert camera_view_from_msg(Object3DArray().view) is None           # the default: unknown
    good = camera_view_to_msg(PinholeCamera(500, 500, 320, 240, 640, 480), Transform.identity(), "cam", 0.1, 2.0)
    assert camera_view_from_msg(good).sees(np.array([[0.0, 0.0, 1.0]])).tolist() == [True]

    def bad(**fields):
        msg = cdr(Object3DArray(view=good)).view
        for name, value in fields.items():
            if name in ("x", "w"):
                setattr(msg.camera_pose.orientation if name == "w" else msg.camera_pose.position, name, value)
            else:
                setattr(msg, name, value)
        return msg

    for msg, match in ((bad(height=0), "height"), (bad(k=np.zeros(9)), "not calibrated"),
                       (bad(x=math.nan), "NaN"), (bad(w=0.5), "not normalised"),
                       (bad(min_depth_m=2.0), "depth range"), (bad(max_depth_m=math.inf), "depth range")):
        with pytest.raises(InvalidInput, match=match):
            camera_view_from_msg(msg)


def test_byte_order_of_this_machine_is_what_the_tests_assume():
    assert sys.byteorder == "little"            # the '>u2'/'>f4' cases are the swapped ones

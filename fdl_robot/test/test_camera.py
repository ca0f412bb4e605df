"""Tests of fdl_robot.core.camera (pinhole model, distortion, depth inside boxes)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdl_robot.core.camera import PinholeCamera, box_depth, boxes_depth, lift_boxes

SETTINGS = settings(max_examples=100, deadline=None)

# The seed's camera (§29.2.2): RealSense-like 640x480, fx = fy = 600, principal point (320, 240).
SEED_CAM = PinholeCamera(600.0, 600.0, 320.0, 240.0, 640, 480)


# ------------------------------------------------------------------ seed example
def test_seed_29_2_2_unproject():
    p = SEED_CAM.unproject([250.0, 200.0], 0.5)
    np.testing.assert_allclose(p, [-35 / 600, -20 / 600, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p, [-0.058333, -0.033333, 0.5], atol=1e-6)
    np.testing.assert_allclose(SEED_CAM.project(p), [250.0, 200.0], atol=1e-12)


def test_seed_29_2_2_lift_box():
    """Box [200, 150, 300, 250] on a 500 mm realsense depth image -> the seed's point.

    The seed treats the box centre (250, 200) as the pixel coordinate; boxes are in edge
    coordinates, so the pixel-centre coordinate is (249.5, 199.5): half a pixel, 0.4 mm here.
    """
    depth_mm = np.full((480, 640), 500, dtype=np.uint16)
    p_cam, depth_m = lift_boxes(SEED_CAM, depth_mm, [[200, 150, 300, 250]])
    np.testing.assert_allclose(depth_m, [0.5])
    np.testing.assert_allclose(p_cam, [[(249.5 - 320) * 0.5 / 600, (199.5 - 240) * 0.5 / 600, 0.5]], atol=1e-15)
    np.testing.assert_allclose(p_cam, [[-35 / 600, -20 / 600, 0.5]], atol=0.5 * 0.5 / 600 + 1e-12)


# ---------------------------------------------------------------- construction
def test_K_and_camera_info():
    k = [600.0, 0.0, 320.0, 0.0, 610.0, 240.0, 0.0, 0.0, 1.0]
    cam = PinholeCamera.from_camera_info(k, 640, 480, d=[0.0] * 5)
    np.testing.assert_array_equal(cam.K, np.reshape(k, (3, 3)))
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (600, 610, 320, 240, 640, 480)
    assert cam.dist is None and not cam.is_distorted  # all-zero distortion == none
    cam2 = PinholeCamera.from_camera_info(np.reshape(k, (3, 3)), 640, 480, d=[0.1, 0, 0, 0, 0])
    assert cam2.dist == (0.1, 0.0, 0.0, 0.0, 0.0) and cam2.is_distorted
    assert PinholeCamera.from_camera_info(k, 640, 480, d=[0.1] * 8, distortion_model="rational_polynomial").dist
    cam.K[0, 0] = 1.0  # K is a fresh array; the camera is immutable
    assert cam.fx == 600.0
    with pytest.raises(AttributeError):
        cam.fx = 1.0


@pytest.mark.parametrize("k, d, model", [
    ([0.0] * 9, None, "plumb_bob"),  # uncalibrated camera publishes an all-zero K
    ([-600, 0, 320, 0, 600, 240, 0, 0, 1], None, "plumb_bob"),
    ([600, 1.5, 320, 0, 600, 240, 0, 0, 1], None, "plumb_bob"),  # skew
    ([600, 0, 320, 0, 600, 240, 0, 0, 2], None, "plumb_bob"),
    ([600, 0, 320, 0, 600, 240, 0, 0], None, "plumb_bob"),
    ([600, 0, np.nan, 0, 600, 240, 0, 0, 1], None, "plumb_bob"),
    ([600, 0, 320, 0, 600, 240, 0, 0, 1], [0.1, 0.0, 0.0, 0.0], "equidistant"),
    ([600, 0, 320, 0, 600, 240, 0, 0, 1], [0.1, 0.0, 0.0], "plumb_bob"),
])
def test_camera_info_rejects(k, d, model):
    with pytest.raises(ValueError):
        PinholeCamera.from_camera_info(k, 640, 480, d=d, distortion_model=model)


def test_constructor_rejects():
    for args in ((0, 600, 320, 240), (600, np.inf, 320, 240)):
        with pytest.raises(ValueError):
            PinholeCamera(*args)
    with pytest.raises(ValueError):
        PinholeCamera(600, 600, 320, 240, width=0, height=480)
    with pytest.raises(ValueError):
        PinholeCamera(600, 600, 320, 240, dist=(0.1, 0.2, 0.3))


# ---------------------------------------------------------- project / unproject
def test_project_known_and_behind_camera():
    p = np.array([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, -1.0], [np.nan, 0, 1]])
    uv = SEED_CAM.project(p)
    np.testing.assert_allclose(uv[:2], [[350.0, 180.0], [320.0, 240.0]])
    assert np.all(np.isnan(uv[2:]))
    assert SEED_CAM.project(np.zeros((0, 3))).shape == (0, 2)
    with pytest.raises(ValueError):
        SEED_CAM.project(np.zeros((2, 2)))


def test_unproject_invalid_depth_is_nan():
    uv = np.array([[10.0, 20.0]] * 5)
    p = SEED_CAM.unproject(uv, [1.0, 0.0, -1.0, np.nan, np.inf])
    assert np.all(np.isfinite(p[0])) and np.all(np.isnan(p[1:]))
    with pytest.raises(ValueError):
        SEED_CAM.unproject(uv, [1.0, 2.0])
    np.testing.assert_allclose(SEED_CAM.unproject(uv[:2], 2.0)[:, 2], [2.0, 2.0])


def test_in_image():
    uv = np.array([[0, 0], [639.9, 479.9], [640, 10], [-0.1, 10], [10, 480], [np.nan, 3]])
    assert SEED_CAM.in_image(uv).tolist() == [True, True, False, False, False, False]
    with pytest.raises(ValueError):
        PinholeCamera(600, 600, 320, 240).in_image(uv)


cameras = st.builds(PinholeCamera, st.floats(200, 1500), st.floats(200, 1500),
                    st.floats(100, 500), st.floats(100, 400))
points_in_front = st.tuples(st.floats(-2, 2), st.floats(-2, 2), st.floats(0.05, 10)).map(np.array)


@SETTINGS
@given(cameras, st.lists(points_in_front, min_size=1, max_size=8))
def test_unproject_project_round_trip(cam, pts):
    p = np.array(pts)
    uv = cam.project(p)
    np.testing.assert_allclose(cam.unproject(uv, p[:, 2]), p, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(cameras, st.floats(-1000, 2000), st.floats(-1000, 2000), st.floats(0.01, 20))
def test_project_unproject_round_trip(cam, u, v, d):
    uv = np.array([u, v])
    p = cam.unproject(uv, d)
    assert p[2] == d
    np.testing.assert_allclose(cam.project(p), uv, rtol=0, atol=1e-9)


# ------------------------------------------------------------------- distortion
def plumb_bob(x, y, k1, k2, p1, p2, k3):
    """The plumb_bob (Brown-Conrady) model on normalised coordinates, written out."""
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


moderate_dist = st.tuples(st.floats(-0.2, 0.2), st.floats(-0.1, 0.1), st.floats(-2e-3, 2e-3),
                          st.floats(-2e-3, 2e-3), st.floats(-0.02, 0.02))


def test_distortion_matches_plumb_bob_equations():
    pytest.importorskip("cv2")
    dist = (0.1, -0.05, 0.001, -0.002, 0.01)
    cam = PinholeCamera(600, 610, 320, 240, 640, 480, dist=dist)
    p = np.array([[0.1, 0.2, 1.0], [-0.3, 0.1, 0.8], [0.0, 0.0, 2.0]])
    xd, yd = plumb_bob(p[:, 0] / p[:, 2], p[:, 1] / p[:, 2], *dist)
    np.testing.assert_allclose(cam.project(p), np.c_[600 * xd + 320, 610 * yd + 240], atol=1e-9)
    assert np.all(np.isnan(cam.project([[0.1, 0.1, -1.0]])))
    # without distortion the principal ray is unchanged; with it as well
    np.testing.assert_allclose(cam.unproject([320.0, 240.0], 2.0), [0, 0, 2.0], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(moderate_dist, st.lists(st.tuples(st.floats(0, 639), st.floats(0, 479), st.floats(0.1, 5)),
                               min_size=1, max_size=6))
def test_distortion_round_trip(dist, samples):
    pytest.importorskip("cv2")
    cam = PinholeCamera(600, 600, 320, 240, 640, 480, dist=dist)
    s = np.array(samples)
    uv, d = s[:, :2], s[:, 2]
    p = cam.unproject(uv, d)
    np.testing.assert_allclose(p[:, 2], d)
    np.testing.assert_allclose(cam.project(p), uv, rtol=0, atol=1e-6)  # pixels
    # and the other way round, in metres scaled to pixels at that depth
    np.testing.assert_allclose(cam.unproject(cam.project(p), d) * 600 / d[:, None], p * 600 / d[:, None],
                               rtol=0, atol=1e-6)


# ------------------------------------------------------------------- box depth
def scene(obj_m: float = 0.8, bg_m: float = 3.0) -> np.ndarray:
    """A 100x120 float32 depth image: background bg_m, object at rows 20-59, cols 30-79."""
    depth = np.full((100, 120), bg_m, dtype=np.float32)
    depth[20:60, 30:80] = obj_m
    return depth


def test_box_depth_units_uint16_mm_vs_float32_m():
    rng = np.random.default_rng(0)
    depth_mm = rng.integers(300, 4000, size=(100, 120)).astype(np.uint16)
    depth_m = depth_mm.astype(np.float32) / 1000
    box = [13.2, 7.9, 77.4, 61.0]
    a = box_depth(depth_mm, box)
    b = box_depth(depth_m, box)
    c = box_depth(depth_mm.astype(np.float64), box, depth_scale=0.001)
    assert isinstance(a, float) and a == pytest.approx(b, abs=1e-6) and a == pytest.approx(c, abs=1e-12)
    assert 0.3 <= a <= 4.0


def test_box_depth_window_ignores_background_at_edges():
    depth = scene()
    # a loose box: its border is background, its central half is on the object
    assert box_depth(depth, [20, 10, 90, 70], window=0.5) == pytest.approx(0.8)
    # window=1 on a box whose left 40 % is background: the median still says 0.8 m
    box = [10, 20, 60, 60]  # cols 10-59; cols 10-29 (40 %) are background
    assert box_depth(depth, box, window=1.0) == pytest.approx(0.8)


def test_box_depth_invalid_pixels_ignored():
    depth = scene()
    depth[20:60, 30:55] = np.nan  # holes ...
    depth[20:40, 55:80] = 0.0
    depth[40:50, 55:80] = np.inf
    depth[50:55, 55:80] = -1.0
    # ... leave rows 55-59, cols 55-79 valid (1.25 m) inside the box
    depth[55:60, 55:80] = 1.25
    assert box_depth(depth, [30, 20, 80, 60], window=1.0) == pytest.approx(1.25)


def test_box_depth_none_cases():
    depth_mm = np.zeros((100, 120), dtype=np.uint16)
    assert box_depth(depth_mm, [10, 10, 50, 50]) is None  # all 0 = no data
    nan = np.full((100, 120), np.nan, dtype=np.float32)
    assert box_depth(nan, [10, 10, 50, 50]) is None
    depth = scene()
    assert box_depth(depth, [200, 10, 250, 50]) is None  # outside the image
    assert box_depth(depth, [-50, -50, -10, -10]) is None
    assert box_depth(depth, [10, 10, 10, 50]) is None  # zero width
    assert box_depth(depth, [50, 10, 10, 50]) is None  # inverted
    # partly outside: clipped, still measured
    assert box_depth(depth, [-20, -20, 20, 20], window=1.0) == pytest.approx(3.0)
    # a box smaller than a pixel still reads the pixel it lies in
    assert box_depth(depth, [40.2, 30.2, 40.4, 30.4]) == pytest.approx(0.8)


def test_box_depth_validation():
    depth = scene()
    with pytest.raises(ValueError):
        box_depth(depth, [0, 0, 10, 10], window=0.0)
    with pytest.raises(ValueError):
        box_depth(depth, [0, 0, 10, 10], window=1.5)
    with pytest.raises(ValueError):
        box_depth(depth[..., None], [0, 0, 10, 10])
    with pytest.raises(ValueError):
        box_depth(depth.astype(np.int32), [0, 0, 10, 10])  # unknown units
    with pytest.raises(ValueError):
        box_depth(depth, [0, 0, 10])
    with pytest.raises(ValueError):
        box_depth(depth, [0, 0, 10, 10], depth_scale=0.0)
    assert box_depth((depth * 1000).astype(np.int32), [30, 20, 80, 60], depth_scale=0.001) == pytest.approx(0.8)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 0.4), st.integers(0, 2**31 - 1))
def test_box_depth_robust_to_edge_outliers(outlier_fraction, seed):
    """Up to 40 % of the box's columns (at either edge) far behind: median unchanged."""
    rng = np.random.default_rng(seed)
    depth = np.full((60, 100), 0.9, dtype=np.float32)
    n_out = int(outlier_fraction * 50)
    cols = np.arange(20, 20 + n_out) if rng.random() < 0.5 else np.arange(70 - n_out, 70)
    depth[:, cols] = rng.uniform(1.5, 5.0, size=(60, n_out))
    depth[rng.random(depth.shape) < 0.1] = 0.0  # and 10 % holes
    assert box_depth(depth, [20, 10, 70, 50], window=1.0) == pytest.approx(0.9)


def test_boxes_depth_and_lift_boxes():
    depth = scene()
    boxes = np.array([[30, 20, 80, 60], [200, 0, 210, 10], [0, 0, 10, 10]], dtype=float)
    d = boxes_depth(depth, boxes)
    np.testing.assert_allclose(d, [0.8, np.nan, 3.0])
    assert boxes_depth(depth, np.zeros((0, 4))).shape == (0,)
    cam = PinholeCamera(100.0, 100.0, 60.0, 50.0, 120, 100)
    p_cam, depth_m = lift_boxes(cam, depth, boxes)
    np.testing.assert_allclose(depth_m, d)
    # edge -> centre pixel coordinates: the box centre (55, 40) is pixel (54.5, 39.5)
    np.testing.assert_allclose(p_cam[0], [(54.5 - 60) * 0.8 / 100, (39.5 - 50) * 0.8 / 100, 0.8])
    assert np.all(np.isnan(p_cam[1]))
    with pytest.raises(ValueError):
        lift_boxes(SEED_CAM, depth, boxes)  # 100x120 depth for a 640x480 camera

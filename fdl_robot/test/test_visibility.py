"""Tests of fdl_robot.core.visibility: which points a pinhole camera could see."""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.visibility import CameraView, in_view

CAM = PinholeCamera(fx=500.0, fy=400.0, cx=319.5, cy=239.5, width=640, height=480)
# 0.6 m above the table looking straight down, optical x along base -y (test_perception_nodes' mount)
T_BASE_CAM = Transform.from_rpy(np.pi, 0.0, -np.pi / 2, t=(0.5, 0.0, 0.6))
IDENTITY = Transform.identity()          # camera frame = base frame


def test_by_hand_at_the_identity_pose():
    """Camera frame = base frame: u = fx x/z + cx, v = fy y/z + cy; edges at -0.5 and W - 0.5."""
    z = 1.0
    x_left, x_right = (-0.5 - CAM.cx) * z / CAM.fx, (639.5 - CAM.cx) * z / CAM.fx   # u = -0.5, 639.5
    y_top, y_bottom = (-0.5 - CAM.cy) * z / CAM.fy, (479.5 - CAM.cy) * z / CAM.fy   # v = -0.5, 479.5
    eps = 1e-6
    p = np.array([
        [0.0, 0.0, z],                       # principal point
        [x_left + eps, 0.0, z], [x_left - eps, 0.0, z],
        [x_right - eps, 0.0, z], [x_right + eps, 0.0, z],
        [0.0, y_top + eps, z], [0.0, y_top - eps, z],
        [0.0, y_bottom - eps, z], [0.0, y_bottom + eps, z],
        [0.0, 0.0, -z],                      # behind the camera
    ])
    got = in_view(p, CAM, IDENTITY, 0.1, 4.0)
    assert got.tolist() == [True, True, False, True, False, True, False, True, False, False]


def test_depth_range_is_inclusive_and_on_the_optical_axis():
    p = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 0.0999], [0.0, 0.0, 4.0], [0.0, 0.0, 4.0001],
                  [0.3, 0.2, 0.5]])          # off-axis: z (not the range ||p||) is tested
    assert in_view(p, CAM, IDENTITY, 0.1, 4.0).tolist() == [True, False, True, False, True]
    assert in_view([[0.3, 0.2, 0.5]], CAM, IDENTITY, 0.1, 0.55).tolist() == [True]   # ||p|| = 0.62 > 0.55


def test_margin_shrinks_or_grows_the_image():
    u = np.array([-30.0, -10.5, -0.5, 9.5, 10.5, 629.5, 639.5, 649.5, 669.5])
    p = np.column_stack([(u - CAM.cx) / CAM.fx, np.zeros_like(u), np.ones_like(u)])
    assert in_view(p, CAM, IDENTITY, 0.1, 4.0, margin_px=10).tolist() == \
        [False, False, False, True, True, True, False, False, False]
    assert in_view(p, CAM, IDENTITY, 0.1, 4.0, margin_px=-10).tolist() == \
        [False, True, True, True, True, True, True, True, False]


def test_object_radius_adds_its_image_radius_at_the_points_depth():
    """m_u = m + fx r / z, m_v = m + fy r / z: 10 and 8 px for r = 2 cm at 1 m, twice that at 0.5 m."""
    def at(u, v, z):
        return [(u - CAM.cx) * z / CAM.fx, (v - CAM.cy) * z / CAM.fy, z]

    p = np.array([at(9.5, 240, 1.0), at(9.4, 240, 1.0), at(19.5, 240, 0.5), at(19.4, 240, 0.5),
                  at(320, 7.5, 1.0), at(320, 7.4, 1.0), at(629.5, 240, 1.0), at(629.6, 240, 1.0),
                  at(14.5, 240, 1.0), at(14.4, 240, 1.0)])
    got = in_view(p[:8], CAM, IDENTITY, 0.1, 4.0, radius_m=0.02)
    assert got.tolist() == [True, False, True, False, True, False, True, False]
    assert in_view(p[8:], CAM, IDENTITY, 0.1, 4.0, margin_px=5, radius_m=0.02).tolist() == [True, False]


def test_agrees_with_the_projection_of_the_camera_model():
    """Random points around the mount: in view iff depth in range and project() lands inside."""
    rng = np.random.default_rng(0)
    p_base = rng.uniform([-0.5, -1.0, -0.5], [1.5, 1.0, 1.2], size=(5000, 3))
    p_cam = T_BASE_CAM.inverse().apply(p_base)
    uv = CAM.project(p_cam)
    inside = ((uv[:, 0] >= -0.5) & (uv[:, 0] <= 639.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= 479.5))
    expected = inside & (p_cam[:, 2] >= 0.2) & (p_cam[:, 2] <= 0.9)
    got = in_view(p_base, CAM, T_BASE_CAM, 0.2, 0.9)
    assert 200 < expected.sum() < 4800               # both outcomes are exercised
    np.testing.assert_array_equal(got, expected)
    # the table under the camera (z_base = 0, 0.6 m away) is seen around (0.5, 0)
    assert in_view([[0.5, 0.0, 0.0], [0.5, 0.0, 0.7], [2.0, 0.0, 0.0]], CAM, T_BASE_CAM, 0.1, 4.0).tolist() \
        == [True, False, False]


def test_non_finite_points_are_not_in_view_and_empty_input_works():
    p = np.array([[np.nan, 0.0, 0.0], [0.5, np.inf, 0.0], [0.5, 0.0, 0.0]])
    with np.errstate(all="raise"):                     # and no floating-point warning on the way
        assert in_view(p, CAM, T_BASE_CAM, 0.1, 4.0).tolist() == [False, False, True]
    assert in_view(np.zeros((0, 3)), CAM, T_BASE_CAM, 0.1, 4.0).shape == (0,)


def test_camera_view_bundles_the_arguments():
    view = CameraView(CAM, T_BASE_CAM, 0.1, 4.0, frame_id="cam")
    p = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, 0.7]])
    np.testing.assert_array_equal(view.sees(p), in_view(p, CAM, T_BASE_CAM, 0.1, 4.0))
    edge = T_BASE_CAM.apply(CAM.unproject([[5.0, 240.0]], 0.6))   # 5.5 px inside the left edge
    assert view.sees(edge).tolist() == [True] and view.sees(edge, margin_px=10).tolist() == [False]


@pytest.mark.parametrize("call, match", [
    (lambda: in_view([[0, 0, 1]], PinholeCamera(500, 500, 320, 240), Transform.identity(), 0.1, 4),
     "width and height"),
    (lambda: in_view([[0, 0, 1]], CAM, Transform.identity(), 0.5, 0.5), "depth range"),
    (lambda: in_view([[0, 0, 1]], CAM, Transform.identity(), -0.1, 1.0), "depth range"),
    (lambda: in_view([[0, 0, 1]], CAM, Transform.identity(), 0.1, np.inf), "depth range"),
    (lambda: in_view([[0, 0, 1]], CAM, Transform.identity(), 0.1, 1.0, margin_px=np.nan), "margin_px"),
    (lambda: in_view([0, 0, 1], CAM, Transform.identity(), 0.1, 1.0), "shape"),
    (lambda: in_view([[0, 0, 1]], CAM, Transform.identity(), 0.1, 1.0, radius_m=-0.01), "radius_m"),
    (lambda: CameraView(CAM, Transform.identity(), 2.0, 1.0), "depth range"),
    (lambda: CameraView(PinholeCamera(500, 500, 320, 240), Transform.identity(), 0.1, 1.0), "width and height"),
])
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()

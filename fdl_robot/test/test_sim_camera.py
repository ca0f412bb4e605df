"""The simulated RGB-D camera agrees with core.camera and ROS conventions.

* a marker sphere at a known base_link point renders where
  ``camera.project(T_base_cam.inverse().apply(p))`` says (within 1 px);
* depth is z-depth in metres (table pixels lift back onto the plane z = 0);
* the uint16 millimetre conversion follows realsense-ros (0 = invalid).
"""


import numpy as np
import pytest

from fdl_robot.sim.camera import (
    depth_m_to_mm_uint16,
    depth_mm_uint16_to_m,
    intrinsics_from_fovy,
)
from fdl_robot.sim.env import SEGMENTATION_BACKGROUND, PickPlaceConfig, PickPlaceEnv

W, H = 320, 240


@pytest.fixture(scope="module")
def env():
    e = PickPlaceEnv(PickPlaceConfig(image_width=W, image_height=H))
    yield e
    e.close()


def test_intrinsics_convention():
    cam = intrinsics_from_fovy(55.0, 640, 480)
    assert cam.cx == pytest.approx(319.5) and cam.cy == pytest.approx(239.5)
    assert cam.fy == pytest.approx(240.0 / np.tan(np.deg2rad(27.5)))
    assert cam.fx == cam.fy


MARKER_POINTS_BASE = np.array([
    [0.45, -0.05, 0.10],
    [0.60, -0.25, 0.05],
    [0.35, 0.20, 0.15],
    [0.70, 0.10, 0.02],
    [0.30, -0.30, 0.25],
])


@pytest.mark.parametrize("seed", [0, 7])
def test_marker_projects_to_its_rendered_pixel(env, seed):
    env.reset(seed)
    marker = env.segmentation_labels["marker"]
    errors_true, errors_nominal, residuals = [], [], []
    for p_base in MARKER_POINTS_BASE:
        env.show_marker(p_base, radius_m=0.01)
        seg = env.render_segmentation()
        v, u = np.nonzero(seg == marker)
        assert u.size > 10, f"marker at {p_base} not visible"
        centroid = np.array([u.mean(), v.mean()])
        p_cam = env.T_base_cam.inverse().apply(p_base)
        residuals.append(centroid - env.camera.project(p_cam))
        errors_true.append(np.linalg.norm(residuals[-1]))
        p_cam_nominal = env.T_base_cam_nominal.inverse().apply(p_base)
        errors_nominal.append(np.linalg.norm(env.camera.project(p_cam_nominal) - centroid))
    env.show_marker(None)
    assert max(errors_true) < 1.0, errors_true
    # no systematic offset: the principal point is ((W-1)/2, (H-1)/2), not (W/2, H/2)
    assert np.all(np.abs(np.mean(residuals, axis=0)) < 0.25), residuals
    # the jittered true pose explains the image better than the nominal calibration
    assert np.mean(errors_true) < np.mean(errors_nominal)


def test_marker_depth_is_z_depth_in_metres(env):
    env.reset(3)
    p_base = np.array([0.5, 0.0, 0.12])
    r = 0.015
    env.show_marker(p_base, radius_m=r)
    uv = env.camera.project(env.T_base_cam.inverse().apply(p_base))
    depth = env.render_depth()
    env.show_marker(None)
    u, v = np.rint(uv).astype(int)
    z_centre = env.T_base_cam.inverse().apply(p_base)[2]
    # the sphere's surface point on the ray through its centre lies r in front of it
    # along the ray; its z-depth is z_centre - r cos(angle of the ray) ~ z_centre - r
    assert depth[v, u] == pytest.approx(z_centre - r, abs=0.003)


def test_table_pixels_lift_onto_the_table_plane(env):
    """Unproject every table pixel with core.camera + T_base_cam: z_base = 0 within 1 mm.

    Had the renderer returned range along the ray instead of z-depth, corner pixels
    would be off by ~30 %; a wrong principal point or extrinsic would tilt the plane.
    """
    env.reset(5)
    depth = env.render_depth()
    seg = env.render_segmentation()
    v, u = np.nonzero((seg == SEGMENTATION_BACKGROUND) & np.isfinite(depth))
    uv = np.stack([u, v], axis=1).astype(float)
    p_base = env.T_base_cam.apply(env.camera.unproject(uv, depth[v, u]))
    on_table = (np.abs(p_base[:, 2]) < 0.05) & (p_base[:, 0] > -0.2) & (p_base[:, 0] < 1.0)
    assert on_table.sum() > 0.3 * W * H
    assert np.max(np.abs(p_base[on_table, 2])) < 0.001
    # and points off the edge of the table are far below it (the floor at z = -0.75)
    assert np.any(p_base[:, 2] < -0.7)


def test_depth_invalid_and_uint16_conversion():
    depth_m = np.array([[np.nan, 0.5, 0.0], [1.2344, np.inf, 70.0]], dtype=np.float32)
    mm = depth_m_to_mm_uint16(depth_m)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[0, 500, 0], [1234, 0, 0]])
    back = depth_mm_uint16_to_m(mm)
    assert np.isnan(back[0, 0]) and back[0, 1] == pytest.approx(0.5)


def test_rendered_depth_has_no_far_plane_values(env):
    env.reset(0)
    rgb, depth = env.render_rgbd()
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert depth.shape == (H, W) and depth.dtype == np.float32
    finite = depth[np.isfinite(depth)]
    assert finite.min() > env.depth_near_m and finite.max() < 0.999 * env.depth_far_m


def test_wrist_camera_extrinsics_follow_the_arm(env):
    obs = env.reset(1)
    T = env.camera_extrinsics("wrist_cam")
    # the wrist camera sits near the TCP and looks roughly down (optical z ~ -z_base)
    assert np.linalg.norm(T.translation - obs["tcp"].position_m) < 0.2
    assert T.rotation[:, 2] @ np.array([0.0, 0.0, -1.0]) > 0.8

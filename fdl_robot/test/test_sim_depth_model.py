"""The RealSense-like depth model (sim.depth_model) and the wrist camera (a D405 on tool0).

* noise: the spread of the measured depth of a plane is Intel's z^2 s / (f B) (plus the
  depth unit's quantisation), for both sensors and several distances; white noise is white;
* object edges and the stereo shadow: invalid where and as wide as the geometry says;
  minimum range; quantisation to the depth unit; the same frame seed gives the same image;
* the env: "ideal" is the render untouched, "realsense" stays near it; the wrist camera's
  mount is T_flange_cam (jittered per episode from its own seed stream), its rendered pixels
  match camera_intrinsics / camera_extrinsics.
"""
from __future__ import annotations

from dataclasses import replace

import mujoco
import numpy as np
import pytest

from fdl_robot.core.geometry import Transform
from fdl_robot.sim.camera import clean_depth_m, depth_m_to_units
from fdl_robot.sim.depth_model import (D405, D435, apply_depth_model, check_depth_model, depth_sigma_m,
                                       frame_rng, occlusion_mask)
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

H, W = 240, 320
F_PX = 200.0


def plane(z_m: float) -> np.ndarray:
    return np.full((H, W), z_m, np.float32)


def box_on_plane(z_back: float, z_box: float, rows=(80, 160), cols=(140, 220)) -> np.ndarray:
    z = plane(z_back)
    z[rows[0]:rows[1], cols[0]:cols[1]] = z_box
    return z


@pytest.mark.parametrize(("sensor", "z_m"), [(D435, 0.6), (D435, 1.0), (D435, 2.0), (D405, 0.1), (D405, 0.3),
                                             (D405, 0.6)], ids=lambda x: getattr(x, "name", x))
def test_noise_follows_intels_rms_formula(sensor, z_m):
    """(Where the noise is wider than the depth unit: below, rounding is not an independent error.)"""
    out = apply_depth_model(plane(z_m), F_PX, sensor, frame_rng(1, 0, 7))
    body = out[:, 40:]                                    # (the D405's left-border band, f B / z)
    assert np.isfinite(body).mean() > 0.999
    err = body[np.isfinite(body)].astype(np.float64) - z_m
    expected = np.hypot(depth_sigma_m(z_m, sensor), sensor.depth_unit_m / np.sqrt(12))
    assert np.std(err) == pytest.approx(expected, rel=0.06)
    assert abs(np.mean(err)) < 0.05 * expected + sensor.depth_unit_m / 10
    # the figures: D435 at 1 m 3.7 mm RMS, D405 at 0.3 m 0.92 mm
    assert depth_sigma_m(1.0, D435) == pytest.approx(1.0 * 0.08 / (433 * 0.05))
    assert depth_sigma_m(0.3, D405) == pytest.approx(0.09 * 0.08 / (433 * 0.018))


def test_white_noise_is_white_and_correlated_noise_is_not():
    z = plane(0.8)
    white = apply_depth_model(z, F_PX, replace(D435, noise_correlation_px=0.0, depth_unit_m=1e-6),
                              frame_rng(0, 0, 0)).astype(np.float64) - 0.8
    blurred = apply_depth_model(z, F_PX, replace(D435, depth_unit_m=1e-6), frame_rng(0, 0, 0)).astype(np.float64) - 0.8

    def lag1(e):
        return np.corrcoef(e[:, :-1].ravel(), e[:, 1:].ravel())[0, 1]

    assert abs(lag1(white)) < 0.02
    assert lag1(blurred) > 0.5                             # a Gaussian field of sigma 1 px: ~0.78
    assert np.std(white) == pytest.approx(np.std(blurred), rel=0.1)      # the same marginal spread


def test_object_edges_and_the_stereo_shadow_are_invalid():
    z_back, z_box = 0.8, 0.5
    sensor = replace(D435, edge_ragged_px=0)
    out = apply_depth_model(box_on_plane(z_back, z_box), F_PX, sensor, frame_rng(0, 0, 0))
    invalid = ~np.isfinite(out)
    r0, r1, c0, c1 = 80, 160, 140, 220
    band = sensor.edge_window_px + sensor.edge_band_px      # the jump is seen this many pixels away
    # top, bottom and right edges: invalid over the band on both sides, valid beyond
    for rows in (slice(r0 - band, r0 + band), slice(r1 - band, r1 + band)):
        assert invalid[rows, c0 + 5:c1 - 5].all()
    assert invalid[r0 + 5:r1 - 5, c1 - band:c1 + band].all()
    assert not invalid[r0 + 5:r1 - 5, c1 + band + 1:c1 + band + 20].any()
    assert not invalid[r0 + band + 1:r1 - band - 1, c0 + band + 1:c1 - band - 1].any()   # the box's face
    # left of the box: the background the right imager cannot see, f B (1/z_box - 1/z_back) wide
    shadow = F_PX * sensor.baseline_m * (1 / z_box - 1 / z_back)                      # 7.5 px
    row = invalid[120]
    assert row[int(np.ceil(c0 - shadow)) + 1:c0].all()
    assert not row[int(c0 - shadow) - band - 2:int(c0 - shadow) - band].any()
    # only the occlusion part, without the edge band: on the left only, about as wide
    occ = occlusion_mask(F_PX * sensor.baseline_m / box_on_plane(z_back, z_box), left_border=False)
    assert abs(occ[120].sum() - shadow) <= 1.0 and occ[120, c1:].sum() == 0


def test_frayed_edges_depend_on_the_frame():
    z = box_on_plane(0.8, 0.5)
    a = np.isfinite(apply_depth_model(z, F_PX, D435, frame_rng(0, 0, 1)))
    b = np.isfinite(apply_depth_model(z, F_PX, D435, frame_rng(0, 0, 2)))
    assert 0 < (a != b).sum() < 0.05 * a.size


def test_left_border_band_of_the_d405():
    z_m = 0.2
    out = apply_depth_model(plane(z_m), F_PX, D405, frame_rng(0, 1, 0))
    width = F_PX * D405.baseline_m / z_m                   # 18 px
    assert not np.isfinite(out[:, :int(width) - 1]).any()
    assert np.isfinite(out[:, int(width) + 2:]).mean() > 0.999
    assert np.isfinite(apply_depth_model(plane(z_m), F_PX, D435, frame_rng(0, 0, 0))[:, :5]).all()


def test_minimum_range_and_no_return():
    z = plane(0.06)
    z[:, W // 2:] = 0.09
    z[:10] = np.nan
    out = apply_depth_model(z, F_PX, D405, frame_rng(0, 1, 0))
    assert not np.isfinite(out[20:, 40:W // 2 - 10]).any()         # 6 cm: closer than the D405's 7 cm
    assert np.isfinite(out[20:, W // 2 + 10:]).mean() > 0.99       # 9 cm: measured
    assert not np.isfinite(out[:10]).any()                          # nothing hit stays invalid


@pytest.mark.parametrize("sensor", [D435, D405], ids=lambda s: s.name)
def test_quantised_to_the_depth_unit(sensor):
    out = apply_depth_model(box_on_plane(0.4, 0.3), F_PX, sensor, frame_rng(3, 0, 0))
    valid = out[np.isfinite(out)].astype(np.float64)
    steps = valid / sensor.depth_unit_m
    assert np.abs(steps - np.rint(steps)).max() < 0.01
    units = depth_m_to_units(out, sensor.depth_unit_m)
    assert units.dtype == np.uint16 and np.all((units == 0) == ~np.isfinite(out))
    np.testing.assert_allclose(units[np.isfinite(out)] * sensor.depth_unit_m, valid, atol=sensor.depth_unit_m / 100)
    assert len(np.unique(valid)) > 6                        # noise spreads the planes over several units


def test_the_same_frame_gives_the_same_image():
    z = box_on_plane(0.8, 0.5)
    a = apply_depth_model(z, F_PX, D435, frame_rng(5, 0, 100))
    b = apply_depth_model(z, F_PX, D435, frame_rng(5, 0, 100))
    np.testing.assert_array_equal(a, b)                     # NaNs in the same places too
    for other in (frame_rng(5, 0, 101), frame_rng(6, 0, 100), frame_rng(5, 1, 100)):
        assert not np.array_equal(a, apply_depth_model(z, F_PX, D435, other), equal_nan=True)


def test_depth_model_names():
    assert check_depth_model("realsense") == "realsense"
    with pytest.raises(ValueError, match="ideal, realsense"):
        PickPlaceConfig(depth_model="kinect")


# --- in the env ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def envs():
    ideal = PickPlaceEnv(PickPlaceConfig(image_width=W, image_height=H, preload_torchvision=False))
    real = PickPlaceEnv(PickPlaceConfig(image_width=W, image_height=H, preload_torchvision=False,
                                        depth_model="realsense"))
    yield ideal, real
    ideal.close()
    real.close()


def test_ideal_is_the_render_and_realsense_stays_near_it(envs):
    ideal, real = envs
    for env in envs:
        env.reset(11)
    for camera in ("scene_cam", "wrist_cam"):
        r = mujoco.Renderer(ideal.model, height=H, width=W)
        r.update_scene(ideal.data, camera=camera, scene_option=ideal._scene_option)
        r.enable_depth_rendering()
        raw = clean_depth_m(r.render(), ideal.depth_far_m)
        r.close()
        d_ideal = ideal.render_depth(camera)
        np.testing.assert_array_equal(d_ideal, raw)          # "ideal": today's depth, untouched
        d_real = real.render_depth(camera)
        both = np.isfinite(d_real) & np.isfinite(d_ideal)
        assert not np.any(np.isfinite(d_real) & ~np.isfinite(d_ideal))   # holes are only added
        assert 0.6 < both.mean() <= np.isfinite(d_ideal).mean()
        err = np.abs(d_real[both] - d_ideal[both])
        sigma = depth_sigma_m(d_ideal[both], real.depth_sensor(camera)) + real.depth_sensor(camera).depth_unit_m
        assert np.mean(err < 5 * sigma) > 0.999
        np.testing.assert_array_equal(d_real, real.render_depth(camera))   # same instant, same frame
    real.step(real.action_targets())
    assert not np.array_equal(d_real, real.render_depth("wrist_cam"), equal_nan=True)


def test_wrist_mount_jitter_and_extrinsics(envs):
    env = envs[0]
    nominal = Transform.from_matrix(env.T_flange_cam_nominal.as_matrix())
    np.testing.assert_allclose(nominal.translation, [0.06, 0.0, 0.07])
    # optical z (the view) points along the tool (+z of tool0), tilted 20 deg towards its axis (-x)
    np.testing.assert_allclose(nominal.rotation[:, 2], [-np.sin(np.deg2rad(20)), 0, np.cos(np.deg2rad(20))],
                               atol=1e-5)
    seen = []
    for seed in (0, 1, 2):
        env.reset(seed)
        T_error = env.T_flange_cam_nominal.inverse() @ env.T_flange_cam
        dp = env.T_flange_cam.translation - env.T_flange_cam_nominal.translation          # tool0 axes
        assert 0 < np.abs(dp).max() <= 2.5 * 0.002 + 1e-12
        angle = np.rad2deg(np.arccos(np.clip((np.trace(T_error.rotation) - 1) / 2, -1, 1)))
        assert angle <= 0.8 + 1e-9
        seen.append(T_error.translation)
        tool0 = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_BODY, "tool0")
        T_base_tool0 = Transform(env.data.xmat[tool0].reshape(3, 3), env.data.xpos[tool0])
        np.testing.assert_allclose((T_base_tool0 @ env.T_flange_cam).as_matrix(),
                                   env.camera_extrinsics("wrist_cam").as_matrix(), atol=1e-12)
        np.testing.assert_allclose((T_base_tool0 @ env.T_flange_cam_nominal).as_matrix(),
                                   env.camera_extrinsics_nominal("wrist_cam").as_matrix(), atol=1e-12)
    assert not np.allclose(seen[0], seen[1])
    env.reset(2)
    np.testing.assert_allclose(env.T_flange_cam.as_matrix(), (env.T_flange_cam_nominal @ T_error).as_matrix(),
                               atol=1e-12)                  # the same seed, the same mount
    # its own seed stream: without the wrist jitter, every other draw of the episode is the same
    still = PickPlaceEnv(PickPlaceConfig(image_width=W, image_height=H, preload_torchvision=False,
                                         wrist_camera_jitter_position_std_m=0.0,
                                         wrist_camera_jitter_rotation_max_deg=0.0))
    try:
        obs_still, obs = still.reset(4), env.reset(4)
        np.testing.assert_array_equal(obs_still["qpos"], obs["qpos"])
        np.testing.assert_array_equal(still.T_base_cam.as_matrix(), env.T_base_cam.as_matrix())
        np.testing.assert_array_equal(still.object_pose("red_cube").position_m, env.object_pose("red_cube").position_m)
        np.testing.assert_allclose(still.T_flange_cam.as_matrix(), env.T_flange_cam_nominal.as_matrix(), atol=1e-12)
    finally:
        still.close()


def test_wrist_marker_projects_to_its_rendered_pixel(envs):
    env = envs[0]
    env.reset(9)
    T_base_cam = env.camera_extrinsics("wrist_cam")
    camera = env.camera_intrinsics("wrist_cam")
    marker = env.segmentation_labels["marker"]
    errors = []
    for uv_target, z in (((160, 120), 0.25), ((60, 180), 0.3), ((270, 190), 0.2), ((160, 50), 0.35)):
        p_base = T_base_cam.apply(camera.unproject(np.array(uv_target, float), z))
        env.show_marker(p_base, radius_m=0.008)
        v, u = np.nonzero(env.render_segmentation("wrist_cam") == marker)
        assert u.size > 10
        errors.append(np.linalg.norm([u.mean() - uv_target[0], v.mean() - uv_target[1]]))
    env.show_marker(None)
    assert max(errors) < 1.0, errors
    assert camera.fy == pytest.approx((H / 2) / np.tan(np.deg2rad(29)))

"""Demonstration recording: ACT HDF5 layout, contents, perception noise model."""

import json

import h5py
import numpy as np
import pytest

from fdl_robot.eval.stats import wilson_interval
from fdl_robot.sim import scene
from fdl_robot.sim.dataset import PerceptionNoise, PerceptionNoiseModel, load_episode, record_demos
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

STEPS = 400


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    saved = record_demos(1, out, seed0=3, episode_steps=STEPS,
                         env_config=PickPlaceConfig(image_width=96, image_height=72),
                         camera_names=("scene_cam",), record_depth=True, progress=False)
    return out, saved


def test_act_layout_and_attributes(dataset):
    out, saved = dataset
    assert [s["file"] for s in saved] == ["episode_0.hdf5"]
    with h5py.File(out / "episode_0.hdf5", "r") as f:
        assert f.attrs["sim"] and f.attrs["success"] and f.attrs["seed"] == 3
        assert f.attrs["dt"] == pytest.approx(0.02)
        assert f["/observations/qpos"].shape == (STEPS, 7)
        assert f["/observations/qvel"].shape == (STEPS, 7)
        assert f["/action"].shape == (STEPS, 7)
        assert f["/observations/images/scene_cam"].shape == (STEPS, 72, 96, 3)
        assert f["/observations/images/scene_cam"].dtype == np.uint8
        assert f["/observations/depth/scene_cam"].dtype == np.uint16
        assert f["/cameras/scene_cam/K"].shape == (3, 3)
        assert json.loads(f.attrs["joint_names"])[:6] == list(scene.ARM_JOINT_NAMES)
        for name in json.loads(f.attrs["object_names"]):
            assert f[f"/observations/objects/{name}"].shape == (STEPS, 3)
            assert f[f"/observations/objects_quat/{name}"].shape == (STEPS, 4)
            assert f[f"/observations/objects_noisy/{name}"].shape == (STEPS, 3)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["n_saved"] == 1


def test_recorded_episode_is_consistent(dataset):
    out, _ = dataset
    ep = load_episode(out / "episode_0.hdf5")
    obs = ep["observations"]
    np.testing.assert_allclose(np.diff(obs["time_s"]), 0.02)
    # the gripper command is binary and closes once; qpos[6] follows it
    g_cmd = ep["action"][:, 6]
    assert set(np.unique(g_cmd)) == {0.0, 1.0}
    closed = obs["qpos"][:, 6][g_cmd == 1.0]
    assert np.median(closed) > 0.4  # stopped by the 4 cm cube (0.53)
    # the cube ends in the bin
    cube_end = obs["objects"]["red_cube"][-1]
    bin_end = obs["objects"]["bin"][-1]
    assert np.linalg.norm(cube_end[:2] - bin_end[:2]) < 0.09
    # perceived positions: close to the truth while the cube rests on the table
    err = obs["objects_noisy"]["red_cube"][:50] - obs["objects"]["red_cube"][:50]
    err = err[np.all(np.isfinite(err), axis=1)]
    assert len(err) > 30 and np.max(np.linalg.norm(err, axis=1)) < 0.03
    assert np.max(np.linalg.norm(err, axis=1)) > 1e-4  # and not identical to it
    # the recorded depth is uint16 millimetres consistent with the camera model
    K = ep["cameras"]["scene_cam"]["K"]
    assert K[0, 2] == pytest.approx((96 - 1) / 2)
    depth_mm = obs["depth"]["scene_cam"][0]
    valid = depth_mm[depth_mm > 0]
    assert 300 < np.median(valid) < 1500


def test_perception_noise_model_statistics():
    env = PickPlaceEnv(PickPlaceConfig(image_width=64, image_height=48))
    try:
        env.reset(0)
        noise = PerceptionNoise(bias_std_m=0.0, noise_std_cam_m=(0.001, 0.001, 0.004), dropout_prob=0.2,
                                update_rate_hz=10.0, use_extrinsic_error=False)
        model = PerceptionNoiseModel(noise, env, seed=0)
        p_true = {"a": np.array([0.5, 0.0, 0.02])}
        samples = np.array([model(p_true, t)["a"] for t in np.arange(0, 200.0, 0.02)])
    finally:
        env.close()
    # zero-order hold at 10 Hz: values change at most every 5 control steps
    changes = np.flatnonzero(np.any(np.diff(np.nan_to_num(samples, nan=9.0), axis=0) != 0, axis=1))
    assert np.min(np.diff(changes)) >= 5
    dropped = np.isnan(samples[:, 0])
    assert 0.15 < dropped.mean() < 0.25
    # noise is larger along the camera's optical axis (depth) than across it
    R = env.T_base_cam_nominal.rotation
    e_cam = (samples[~dropped] - p_true["a"]) @ R
    std = e_cam.std(axis=0)
    assert std[2] == pytest.approx(0.004, rel=0.2) and std[0] == pytest.approx(0.001, rel=0.2)


def test_wilson_interval():
    lo, hi = wilson_interval(100, 100)
    assert lo == pytest.approx(0.963, abs=1e-3) and hi == pytest.approx(1.0)
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)

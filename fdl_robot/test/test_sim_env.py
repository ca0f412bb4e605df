"""PickPlaceEnv: scene kinematics, randomisation, determinism, success, API contracts."""

import colorsys
import hashlib

import mujoco
import numpy as np
import pytest

from fdl_robot.core import kinematics, robot
from fdl_robot.core.geometry import quaternion_to_matrix
from fdl_robot.core.kinematics import rotation_log
from fdl_robot.sim import scene
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

W, H = 160, 120


@pytest.fixture(scope="module")
def env():
    e = PickPlaceEnv(PickPlaceConfig(image_width=W, image_height=H))
    yield e
    e.close()


def test_mjcf_arm_joints_are_the_core_robot():
    """The MJCF spells the arm's joint names, chain order and ranges: they are core.robot's and core.kinematics'."""
    model = scene.load_model()
    hinges = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
    assert tuple(model.joint(j).name for j in hinges) == robot.ARM_JOINT_NAMES
    bodies = [model.jnt_bodyid[j] for j in hinges]
    assert all(model.body_parentid[child] == parent for parent, child in zip(bodies[:-1], bodies[1:], strict=True))
    assert all(model.jnt_limited[hinges])
    # the MJCF states the ranges to 4 decimals
    np.testing.assert_allclose(model.jnt_range[hinges], kinematics.UR5E_LIMITS_RAD, rtol=0, atol=5e-5)
    actuated = [model.actuator(name).trnid[0] for name in scene.ARM_ACTUATOR_NAMES]
    assert actuated == hinges
    np.testing.assert_allclose(model.actuator_ctrlrange[[model.actuator(n).id for n in scene.ARM_ACTUATOR_NAMES]],
                               kinematics.UR5E_LIMITS_RAD, rtol=0, atol=5e-5)


def test_control_period_is_the_robot_one(env):
    assert env.control_dt_s == robot.CONTROL_DT_S
    assert env.physics_substeps * env.physics_dt_s == pytest.approx(robot.CONTROL_DT_S, abs=1e-12)


def test_timing_and_home_pose(env):
    assert env.physics_dt_s == pytest.approx(0.002)
    assert env.control_dt_s == pytest.approx(0.02)
    obs = env.reset(0)
    # home: TCP above the workspace, tool pointing down (approach axis = -z)
    tcp = obs["tcp"]
    assert 0.3 < tcp.position_m[0] < 0.7 and tcp.position_m[2] > 0.25
    assert quaternion_to_matrix(tcp.quat_xyzw)[:, 2] @ [0.0, 0.0, -1.0] > 0.99
    assert obs["time_s"] == 0.0
    obs, *_ = env.step(np.concatenate([obs["qpos"], [0.0]]))
    assert obs["time_s"] == pytest.approx(0.02)


def test_observation_contents(env):
    obs = env.reset(4)
    assert obs["qpos"].shape == (6,) and obs["qvel"].shape == (6,)
    assert 0.0 <= obs["gripper"] <= 0.05  # starts open
    assert obs["gripper_opening_m"] == pytest.approx(0.085, abs=0.005)
    names = set(obs["objects"])
    assert {scene.TARGET_NAME, scene.BIN_NAME} <= names
    n_dis = len(names) - 2
    assert 1 <= n_dis <= 3 and set(env.active_distractors) == names - {scene.TARGET_NAME, scene.BIN_NAME}
    cube = obs["objects"][scene.TARGET_NAME]
    assert cube.position_m[2] == pytest.approx(scene.CUBE_HALF_M, abs=1e-3)
    assert np.linalg.norm(cube.quat_xyzw) == pytest.approx(1.0)
    names_js, q, v, e = env.joint_state()
    assert names_js[:6] == list(scene.ARM_JOINT_NAMES) and q.shape == v.shape == e.shape == (8,)


def test_randomisation_ranges(env):
    cfg = env.config
    for seed in range(12):
        obs = env.reset(seed)
        cubes = [obs["objects"][n].position_m for n in (scene.TARGET_NAME,) + env.active_distractors]
        xy = np.array(cubes)[:, :2]
        assert np.all((xy[:, 0] >= cfg.object_region_x_m[0]) & (xy[:, 0] <= cfg.object_region_x_m[1]))
        assert np.all((xy[:, 1] >= cfg.object_region_y_m[0]) & (xy[:, 1] <= cfg.object_region_y_m[1]))
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + 10 * np.eye(len(xy))
        assert gaps.min() >= cfg.min_object_spacing_m
        # distractor colours are never red-ish: hue at least ~35 deg away from red
        for name in env.active_distractors:
            r, g, b, _ = env.model.geom_rgba[env.model.geom(f"{name}_geom").id]
            hue = colorsys.rgb_to_hsv(r, g, b)[0]
            assert min(hue, 1.0 - hue) > 0.1, (seed, name, hue)
        # camera jitter: a few mm, under one degree, and reflected in T_base_cam
        dT = env.T_base_cam_nominal.inverse() @ env.T_base_cam
        assert np.linalg.norm(dT.translation) < 0.006
        assert np.rad2deg(np.linalg.norm(rotation_log(dT.rotation))) < 1.0
    assert np.linalg.norm((env.T_base_cam_nominal.inverse() @ env.T_base_cam).translation) > 0


def _rollout_signature(env: PickPlaceEnv, seed: int, n_steps: int = 40) -> tuple[np.ndarray, str]:
    obs = env.reset(seed)
    q0 = obs["qpos"].copy()
    traj = []
    for k in range(n_steps):
        target = q0 + 0.3 * np.sin(0.1 * k) * np.array([1.0, 0.5, -0.5, 0.3, 0.2, 1.0])
        obs, *_ = env.step(np.concatenate([target, [k > 20]]))
        traj.append(np.concatenate([obs["qpos"], [obs["gripper"]], obs["objects"][scene.TARGET_NAME].position_m]))
    rgb, depth = env.render_rgbd()
    digest = hashlib.sha256(rgb.tobytes() + depth.tobytes()).hexdigest()
    return np.array(traj), digest


def test_episodes_are_deterministic_per_seed(env):
    traj_a, img_a = _rollout_signature(env, seed=21)
    _rollout_signature(env, seed=22)  # another episode in between must not leak state
    other = PickPlaceEnv(PickPlaceConfig(image_width=W, image_height=H))
    try:
        traj_b, img_b = _rollout_signature(other, seed=21)
    finally:
        other.close()
    np.testing.assert_array_equal(traj_a, traj_b)
    assert img_a == img_b
    traj_c, img_c = _rollout_signature(env, seed=23)
    assert img_c != img_a and not np.array_equal(traj_c[:, 7:], traj_a[:, 7:])


def test_success_false_at_reset_and_on_table(env):
    obs = env.reset(2)
    assert not env.success()
    hold = np.concatenate([obs["qpos"], [0.0]])
    for _ in range(25):
        _, reward, terminated, _, info = env.step(hold)
    assert not env.success() and reward == 0.0 and not info["success"] and not terminated


def test_success_true_when_cube_rests_in_bin(env):
    obs = env.reset(6)
    bin_pose = obs["objects"][scene.BIN_NAME]
    p_in_bin = bin_pose.transform().apply([0.02, -0.01, 0.01 + scene.CUBE_HALF_M + 0.005])
    env.set_object_pose(scene.TARGET_NAME, p_in_bin, bin_pose.quat_xyzw)
    hold = np.concatenate([obs["qpos"], [0.0]])
    for _ in range(25):  # let it drop 5 mm and settle
        env.step(hold)
    assert env.success()
    # next to the bin, on the table: no success
    env.set_object_pose(scene.TARGET_NAME, bin_pose.transform().apply([0.0, -0.15, scene.CUBE_HALF_M]))
    env.step(hold)
    assert not env.success()


def test_action_is_validated_and_clipped(env):
    obs = env.reset(0)
    with pytest.raises(ValueError):
        env.step(np.zeros(6))
    with pytest.raises(ValueError):
        env.step(np.full(7, np.nan))
    env.apply_action(np.concatenate([obs["qpos"] + 100.0, [5.0]]))
    lim = env.joint_limits_rad
    assert np.all(env.data.ctrl[:6] <= lim[:, 1]) and env.data.ctrl[6] == pytest.approx(scene.GRIPPER_MAX_CLOSURE_M)


def test_segmentation_labels_objects(env):
    obs = env.reset(9)
    seg = env.render_segmentation()
    assert seg.shape == (H, W)
    labels = env.segmentation_labels
    for name in env.object_names:
        assert np.any(seg == labels[name]), name
    assert np.any(seg == labels["robot"])
    cube = obs["objects"][scene.TARGET_NAME].position_m
    u, v = np.rint(env.camera.project(env.T_base_cam.inverse().apply(cube))).astype(int)
    assert seg[v, u] == labels[scene.TARGET_NAME]

"""Scripted expert: IK building blocks and pick-and-place success on fixed seeds."""


import mujoco
import numpy as np
import pytest

from fdl_robot.core.kinematics import DhReference, down_rotation, rotation_exp, rotation_log, solve_ik
from fdl_robot.core.robot import ARM_JOINT_NAMES
from fdl_robot.sim import scene
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
from fdl_robot.sim.expert import (ExpertConfig, ScriptedExpert, check_model_matches_core_chain, min_jerk,
                                  run_expert_episode)


@pytest.fixture(scope="module")
def env():
    e = PickPlaceEnv(PickPlaceConfig(image_width=160, image_height=120))
    yield e
    e.close()


def test_rotation_log_exp_roundtrip():
    rng = np.random.default_rng(1)
    for r in rng.normal(size=(20, 3)):
        r *= rng.uniform(0.0, 3.1) / np.linalg.norm(r)
        R = rotation_exp(r)
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(rotation_log(R), r, atol=1e-9)
    np.testing.assert_allclose(rotation_log(np.eye(3)), 0.0)


def test_down_rotation_points_down():
    R = down_rotation(0.7)
    np.testing.assert_allclose(R[:, 2], [0.0, 0.0, -1.0])
    assert np.linalg.det(R) == pytest.approx(1.0)
    assert np.arctan2(R[1, 0], R[0, 0]) == pytest.approx(0.7)


def test_min_jerk_profile():
    assert min_jerk(0.0) == 0.0 and min_jerk(1.0) == 1.0 and min_jerk(0.5) == pytest.approx(0.5)
    x = np.linspace(0, 1, 1001)
    s = np.array([min_jerk(v) for v in x])
    assert np.all(np.diff(s) >= 0)
    assert np.max(np.diff(s) / np.diff(x)) == pytest.approx(1.875, abs=1e-3)  # peak speed factor


def _mujoco_tcp_pose(model, q):
    """The model's tcp site pose (p_world, R_world) at arm joints q."""
    data = mujoco.MjData(model)
    data.qpos[[model.joint(n).qposadr[0] for n in ARM_JOINT_NAMES]] = q
    mujoco.mj_kinematics(model, data)
    site = data.site(scene.TCP_SITE)
    return site.xpos.copy(), site.xmat.reshape(3, 3).copy()


def test_dls_ik_reaches_top_down_poses(env):
    """The core IK with the expert's settings puts the MuJoCo model's tcp site on the target."""
    c = ExpertConfig()
    q = scene.HOME_QPOS_RAD.copy()
    for p, yaw in [((0.45, -0.2, 0.03), 0.3), ((0.6, 0.05, 0.1), -0.6), ((0.45, 0.35, 0.15), 1.2)]:
        result = solve_ik(np.array(p), down_rotation(yaw), q, position_tolerance_m=c.ik_position_tolerance_m,
                          orientation_tolerance_rad=c.ik_orientation_tolerance_rad,
                          max_iterations=c.ik_max_iterations)
        assert result.converged, result
        p_fk, R_fk = _mujoco_tcp_pose(env.model, result.q_rad)
        np.testing.assert_allclose(p_fk, p, atol=5e-4)
        assert np.linalg.norm(rotation_log(down_rotation(yaw) @ R_fk.T)) < 3e-3


def test_expert_refuses_a_model_off_the_core_chain():
    model = scene.load_model()
    check_model_matches_core_chain(model)
    model.site(scene.TCP_SITE).pos[2] += 0.01
    with pytest.raises(ValueError, match="off the URDF's 'tcp' frame"):
        ScriptedExpert(model)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_succeeds_on_fixed_seeds(env, seed):
    expert = ScriptedExpert(env.model)
    actions = []
    result = run_expert_episode(env, expert, seed, max_steps=600, on_step=lambda obs, a: actions.append(a))
    assert result.success, result
    assert result.expert_done_step is not None and result.expert_done_step * env.control_dt_s < 10.0
    actions = np.array(actions)
    assert actions.shape[1] == 7 and set(np.unique(actions[:, 6])) <= {0.0, 1.0}
    # joint targets move at bounded speed (2 rad/s at 50 Hz)
    assert np.max(np.abs(np.diff(actions[:, :6], axis=0))) <= 2.0 * env.control_dt_s + 1e-9


def test_expert_demos_are_the_same_on_the_dh_reference(env):
    """The URDF model (the default) and the DH reference chain drive the same demonstration."""
    runs = []
    for robot in (None, DhReference()):
        runs.append([])
        run_expert_episode(env, ScriptedExpert(env.model, robot=robot), 1, on_step=lambda obs, a: runs[-1].append(a))
    assert len(runs[0]) == len(runs[1]) > 300
    np.testing.assert_allclose(np.array(runs[0]), np.array(runs[1]), rtol=0, atol=1e-9)


def test_expert_is_deterministic(env):
    expert = ScriptedExpert(env.model)
    runs = []
    for _ in range(2):
        runs.append([])
        run_expert_episode(env, expert, 5, max_steps=150, on_step=lambda obs, a: runs[-1].append(a))
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))

"""core.kinematics: the UR5e DH reference (FK, Jacobian), SO(3) log/exp, DLS IK on a RobotModel."""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.core import kinematics as kin

RNG = np.random.default_rng(7)


def test_zero_configuration_is_the_textbook_ur5e_pose():
    """q = 0: arm stretched along -x, T = [[1,0,0,a2+a3],[0,0,-1,-(d4+d6)],[0,1,0,d1-d5]]."""
    T = kin.forward_kinematics(np.zeros(6), tcp_offset_m=0.0)
    expected = np.array([[1, 0, 0, -0.425 - 0.3922],
                         [0, 0, -1, -0.1333 - 0.0996],
                         [0, 1, 0, 0.1625 - 0.0997],
                         [0, 0, 0, 1]])
    np.testing.assert_allclose(T, expected, atol=1e-12)


def test_home_points_down_above_the_workspace():
    T = kin.forward_kinematics(kin.HOME_QPOS_RAD)
    np.testing.assert_allclose(T[:3, 3], [0.4919, 0.1333, 0.3529], atol=1e-4)
    np.testing.assert_allclose(T[:3, 2], [0, 0, -1], atol=1e-12)   # approach axis down


def test_fk_is_vectorised_and_tcp_offset_is_along_tool_z():
    qs = RNG.uniform(-3, 3, size=(5, 6))
    T = kin.forward_kinematics(qs)
    assert T.shape == (5, 4, 4)
    for q, Ti in zip(qs, T, strict=True):
        T0 = kin.forward_kinematics(q, tcp_offset_m=0.0)
        np.testing.assert_allclose(Ti, kin.forward_kinematics(q), atol=1e-12)
        np.testing.assert_allclose(Ti[:3, 3], T0[:3, 3] + kin.TCP_OFFSET_M * T0[:3, 2], atol=1e-12)
        np.testing.assert_allclose(Ti[:3, :3] @ Ti[:3, :3].T, np.eye(3), atol=1e-12)
    with pytest.raises(ValueError):
        kin.forward_kinematics(np.zeros(5))


def test_fk_equals_the_simulator_model():
    """Same chain and TCP as the MuJoCo cell: DH reference and the model's tcp site."""
    mujoco = pytest.importorskip("mujoco")
    from fdl_robot.sim import scene

    np.testing.assert_allclose(kin.HOME_QPOS_RAD, scene.HOME_QPOS_RAD)
    model = scene.load_model()
    data = mujoco.MjData(model)
    joints = [model.joint(n).qposadr[0] for n in scene.ARM_JOINT_NAMES]
    site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, scene.TCP_SITE)
    base = model.body(scene.BASE_BODY)
    for q in RNG.uniform(-3, 3, size=(5, 6)):
        data.qpos[joints] = q
        mujoco.mj_kinematics(model, data)
        p_world = data.site_xpos[site]
        p_base = p_world - data.xpos[base.id]       # base_link sits at the world origin, unrotated
        np.testing.assert_allclose(data.xmat[base.id].reshape(3, 3), np.eye(3), atol=1e-12)
        np.testing.assert_allclose(kin.tcp_position(q), p_base, atol=1e-9)


def test_geometric_jacobian_matches_finite_differences():
    eps = 1e-6
    for q in RNG.uniform(-3, 3, size=(3, 6)):
        J = kin.geometric_jacobian(q)
        for i in range(6):
            dq = np.zeros(6)
            dq[i] = eps
            Tp, Tm = kin.forward_kinematics(q + dq), kin.forward_kinematics(q - dq)
            np.testing.assert_allclose(J[:3, i], (Tp[:3, 3] - Tm[:3, 3]) / (2 * eps), atol=1e-8)
            dR = (Tp[:3, :3] - Tm[:3, :3]) / (2 * eps) @ kin.forward_kinematics(q)[:3, :3].T
            omega = np.array([dR[2, 1], dR[0, 2], dR[1, 0]])      # skew part of dR R^T
            np.testing.assert_allclose(J[3:, i], omega, atol=1e-8)


def test_rotation_log_inverts_rodrigues():
    for r in [np.zeros(3), [1e-9, 0, 0], [0.3, -0.2, 0.5], [0, 0, np.pi - 1e-6], [np.pi, 0, 0],
              [0, -2.0, 1.0]]:
        R = _rodrigues(np.asarray(r, float))
        got = kin.rotation_log(R)
        assert np.linalg.norm(got) <= np.pi + 1e-12
        np.testing.assert_allclose(_rodrigues(got), R, atol=1e-9)


def _rodrigues(r):
    a = np.linalg.norm(r)
    if a < 1e-15:
        return np.eye(3)
    k = r / a
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


@pytest.mark.parametrize("p", [(0.5, -0.1, 0.12), (0.35, 0.25, 0.2), (0.65, 0.0, 0.06),
                               (0.3, -0.3, 0.3), (0.55, 0.25, 0.15)])
def test_ik_reaches_workspace_targets_pointing_down(p):
    res = kin.solve_ik_pointing_down(p, kin.HOME_QPOS_RAD)
    assert res.converged and res.iterations < 30
    T = kin.forward_kinematics(res.q_rad)
    np.testing.assert_allclose(T[:3, 3], p, atol=2e-4)
    assert T[2, 2] < -0.999                                     # approach axis down
    assert res.q_rad[2] > 0                                     # stayed elbow up, like home


def test_ik_with_yaw_fixes_the_full_orientation():
    res = kin.solve_ik_pointing_down((0.5, 0.0, 0.1), kin.HOME_QPOS_RAD, yaw_rad=0.4)
    assert res.converged
    np.testing.assert_allclose(kin.forward_kinematics(res.q_rad)[:3, :3], kin.down_rotation(0.4),
                               atol=2e-3)


def test_rotation_exp_is_rodrigues_and_log_inverts_it():
    for r in RNG.normal(size=(10, 3)):
        r *= RNG.uniform(0.0, 3.1) / np.linalg.norm(r)
        np.testing.assert_allclose(kin.rotation_exp(r), _rodrigues(r), atol=1e-12)
        np.testing.assert_allclose(kin.rotation_log(kin.rotation_exp(r)), r, atol=1e-9)
    np.testing.assert_allclose(kin.rotation_exp(np.zeros(3)), np.eye(3))


def test_ik_reaches_a_full_orientation_off_the_vertical():
    R = kin.down_rotation(-0.3) @ kin.rotation_exp([0.2, -0.1, 0.0])   # tilted 0.22 rad
    res = kin.solve_ik((0.45, -0.1, 0.2), R, kin.HOME_QPOS_RAD)
    assert res.converged
    T = kin.forward_kinematics(res.q_rad)
    np.testing.assert_allclose(T[:3, 3], (0.45, -0.1, 0.2), atol=1e-4)
    assert np.linalg.norm(kin.rotation_log(R @ T[:3, :3].T)) < 1e-3
    with pytest.raises(ValueError):
        kin.solve_ik((0.45, -0.1, 0.2), np.full((3, 3), np.nan), kin.HOME_QPOS_RAD)


def test_ik_reports_an_unreachable_target():
    res = kin.solve_ik_pointing_down((1.5, 0.0, 0.1), kin.HOME_QPOS_RAD, max_iterations=60)
    assert not res.converged and res.position_error_m > 0.3
    assert np.all(np.isfinite(res.q_rad))
    with pytest.raises(ValueError):
        kin.solve_ik_pointing_down((np.nan, 0, 0), kin.HOME_QPOS_RAD)


def test_ik_on_the_urdf_equals_ik_on_the_dh_reference():
    """Same algorithm, two models of the same arm: the same joints, iteration for iteration."""
    ref = kin.DhReference()
    for p, yaw in [((0.5, -0.1, 0.12), None), ((0.35, 0.25, 0.2), 0.4), ((0.65, 0.0, 0.06), -1.0)]:
        urdf = kin.solve_ik_pointing_down(p, kin.HOME_QPOS_RAD, yaw_rad=yaw)
        dh = kin.solve_ik_pointing_down(p, kin.HOME_QPOS_RAD, yaw_rad=yaw, model=ref)
        assert urdf.converged and dh.converged and urdf.iterations == dh.iterations
        np.testing.assert_allclose(urdf.q_rad, dh.q_rad, atol=1e-9)
    with pytest.raises(ValueError, match="frames"):
        ref.frame_pose(np.zeros(6), "flange")


def test_ik_clips_to_the_models_limits_unless_given():
    """Any frame of the model (here tool0); the URDF's limits by default, narrower ones when given."""
    res = kin.solve_ik_pointing_down((0.3, 0.3, 0.1), kin.HOME_QPOS_RAD, frame="tool0")
    assert res.converged
    np.testing.assert_allclose(kin.forward_kinematics(res.q_rad, tcp_offset_m=0.0)[:3, 3], (0.3, 0.3, 0.1),
                               atol=1e-4)
    narrow = np.array(kin.UR5E_LIMITS_RAD)
    narrow[0] = [2.5, 3.5]                                     # the base may not turn far from home
    res = kin.solve_ik_pointing_down((0.3, -0.5, 0.1), kin.HOME_QPOS_RAD, limits_rad=narrow, max_iterations=60)
    assert not res.converged and narrow[0, 0] <= res.q_rad[0] <= narrow[0, 1]

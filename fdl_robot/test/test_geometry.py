"""Tests of fdl_robot.core.geometry (SE(3) transforms, quaternions, RPY)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fdl_robot.core.geometry import (
    T_BODY_OPTICAL,
    Transform,
    matrix_to_quaternion,
    matrix_to_rpy,
    quaternion_to_matrix,
    rpy_to_matrix,
)

SETTINGS = settings(max_examples=100, deadline=None)

finite = st.floats(-10.0, 10.0, allow_nan=False)
angles = st.floats(-np.pi, np.pi, allow_nan=False)
vec3 = arrays(np.float64, 3, elements=finite)
quat = arrays(np.float64, 4, elements=st.floats(-1.0, 1.0, allow_nan=False)).filter(
    lambda q: np.linalg.norm(q) > 1e-3
)


@st.composite
def transforms(draw) -> Transform:
    return Transform.from_quaternion(draw(quat), draw(vec3))


def Rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def Ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def Rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# ------------------------------------------------------------------ seed examples
def test_seed_29_2_3_camera_to_robot_errata_1():
    """§29.2.3 with the printed T; the seed's (-0.058, 0.333, 0.7) is wrong (errata 1)."""
    T_robot_cam = Transform.from_matrix(
        [[1, 0, 0, 0], [0, 0, -1, 0.3], [0, 1, 0, 0.2], [0, 0, 0, 1]]
    )
    p_cam = np.array([-35 / 600, -20 / 600, 0.5])
    p_robot = T_robot_cam.apply(p_cam)
    np.testing.assert_allclose(p_robot, [-35 / 600, -0.2, 0.2 - 20 / 600], atol=1e-12)
    np.testing.assert_allclose(p_robot, [-0.058333, -0.2, 0.166667], atol=1e-6)


# --------------------------------------------------------------------- builders
def test_identity():
    T = Transform.identity()
    np.testing.assert_array_equal(T.as_matrix(), np.eye(4))
    np.testing.assert_array_equal(T.as_quaternion(), [0, 0, 0, 1])
    np.testing.assert_array_equal(Transform().as_matrix(), np.eye(4))


def test_from_quaternion_known_rotation():
    # 90 degrees about z: x -> y
    s = np.sqrt(0.5)
    T = Transform.from_quaternion([0, 0, s, s], [1, 2, 3])
    np.testing.assert_allclose(T.apply([1, 0, 0]), [1, 3, 3], atol=1e-15)
    np.testing.assert_allclose(T.rotation, Rz(np.pi / 2), atol=1e-15)
    # non-unit quaternions are normalised
    np.testing.assert_allclose(Transform.from_quaternion([0, 0, 2, 2]).rotation, Rz(np.pi / 2), atol=1e-15)


@pytest.mark.parametrize("q", [[0, 0, 0, 0], [np.nan, 0, 0, 1], [0, 0, 1], [[0, 0, 0, 1]]])
def test_from_quaternion_rejects(q):
    with pytest.raises(ValueError):
        Transform.from_quaternion(q)


def test_rpy_is_fixed_axis_xyz():
    r, p, y = 0.3, -0.7, 1.9
    np.testing.assert_allclose(rpy_to_matrix(r, p, y), Rz(y) @ Ry(p) @ Rx(r), atol=1e-15)
    T = Transform.from_rpy(r, p, y, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(T.as_rpy(), [r, p, y], atol=1e-12)
    np.testing.assert_allclose(T.translation, [0.1, 0.2, 0.3])
    # pure yaw of 90 degrees is the quaternion (0, 0, sin 45, cos 45)
    np.testing.assert_allclose(Transform.from_rpy(0, 0, np.pi / 2).as_quaternion(),
                               [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-15)


def test_rpy_vectorised():
    r = np.array([0.1, 0.2]), np.array([0.3, -0.4]), np.array([1.0, 2.0])
    R = rpy_to_matrix(*r)
    assert R.shape == (2, 3, 3)
    np.testing.assert_allclose(R[1], rpy_to_matrix(0.2, -0.4, 2.0))
    np.testing.assert_allclose(matrix_to_rpy(R), np.stack(r, axis=-1), atol=1e-12)


def test_rpy_gimbal_lock():
    R = rpy_to_matrix(0.4, np.pi / 2, 1.1)
    rpy = matrix_to_rpy(R)
    assert rpy[0] == 0.0 and np.isclose(rpy[1], np.pi / 2)
    np.testing.assert_allclose(rpy_to_matrix(*rpy), R, atol=1e-12)


def test_from_matrix_validation():
    good = np.eye(4)
    good[:3, 3] = [1, 2, 3]
    Transform.from_matrix(good)
    bad_row = good.copy()
    bad_row[3] = [0, 0, 1, 1]
    reflection = np.diag([1.0, 1.0, -1.0, 1.0])
    scaled = np.diag([2.0, 2.0, 2.0, 1.0])
    nan = good.copy()
    nan[0, 3] = np.nan
    for M in (bad_row, reflection, scaled, nan, np.eye(3), np.zeros((4, 4))):
        with pytest.raises(ValueError):
            Transform.from_matrix(M)


def test_from_matrix_tolerance_and_projection():
    """A matrix printed with 4 decimals is accepted with atol=1e-3, stored as an exact rotation."""
    R = np.round(rpy_to_matrix(0.1, 0.2, 0.3), 4)
    M = np.eye(4)
    M[:3, :3] = R
    with pytest.raises(ValueError):
        Transform.from_matrix(M)
    T = Transform.from_matrix(M, atol=1e-3)
    np.testing.assert_allclose(T.rotation.T @ T.rotation, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(T.rotation, R, atol=1e-4)


def test_immutable():
    T = Transform.from_rpy(0.1, 0.2, 0.3, [1, 2, 3])
    with pytest.raises(ValueError):
        T.rotation[0, 0] = 2.0
    with pytest.raises(ValueError):
        T.translation[0] = 2.0
    with pytest.raises(AttributeError):
        T.foo = 1
    M = T.as_matrix()
    M[0, 3] = 99.0
    assert T.translation[0] == 1.0


def test_copy_and_pickle():
    T = Transform.from_rpy(0.1, 0.2, 0.3, [1, 2, 3])
    for T2 in (copy.deepcopy(T), pickle.loads(pickle.dumps(T))):
        np.testing.assert_array_equal(T2.as_matrix(), T.as_matrix())
        assert not T2.rotation.flags.writeable


def test_apply_shapes_and_nan():
    T = Transform.from_rpy(0.1, 0.2, 0.3, [1, 2, 3])
    assert T.apply(np.zeros(3)).shape == (3,)
    assert T.apply(np.zeros((5, 3))).shape == (5, 3)
    assert T.apply(np.zeros((0, 3))).shape == (0, 3)
    out = T.apply([[np.nan] * 3, [0, 0, 0]])
    assert np.all(np.isnan(out[0])) and np.allclose(out[1], [1, 2, 3])
    for bad in (np.zeros(2), np.zeros((3, 2)), np.zeros((2, 2, 3))):
        with pytest.raises(ValueError):
            T.apply(bad)
    np.testing.assert_allclose(T.rotate([1, 0, 0]), T.rotation[:, 0])


def test_matmul_rejects_arrays():
    with pytest.raises(TypeError):
        Transform.identity() @ np.eye(4)


def test_optical_frame():
    """REP-103: optical z (forward) is body x, optical x (right) is body -y, optical y (down) is body -z."""
    np.testing.assert_allclose(T_BODY_OPTICAL.apply([0, 0, 1]), [1, 0, 0])
    np.testing.assert_allclose(T_BODY_OPTICAL.apply([1, 0, 0]), [0, -1, 0])
    np.testing.assert_allclose(T_BODY_OPTICAL.apply([0, 1, 0]), [0, 0, -1])
    np.testing.assert_allclose(T_BODY_OPTICAL.as_quaternion(), [-0.5, 0.5, -0.5, 0.5], atol=1e-15)
    np.testing.assert_allclose(Transform.from_rpy(-np.pi / 2, 0, -np.pi / 2).rotation,
                               T_BODY_OPTICAL.rotation, atol=1e-15)


# -------------------------------------------------------------- quaternion maths
@pytest.mark.parametrize("angle", [0.0, np.pi, np.pi - 1e-9, 2.5])
@pytest.mark.parametrize("axis", [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [-1, 2, 0.5]])
def test_matrix_to_quaternion_all_pivots(axis, angle):
    """Shepperd's method near 180 degrees, where the naive trace formula fails."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    q = np.append(axis * np.sin(angle / 2), np.cos(angle / 2))
    q2 = matrix_to_quaternion(quaternion_to_matrix(q))
    assert q2[3] >= 0
    assert min(np.linalg.norm(q2 - q), np.linalg.norm(q2 + q)) < 1e-9


def test_quaternion_batch():
    q = np.array([[0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.1, -0.2, 0.3, -0.9]])
    R = quaternion_to_matrix(q)
    assert R.shape == (5, 3, 3)
    q2 = matrix_to_quaternion(R)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(np.sum(q2 * qn, axis=1)), 1.0, atol=1e-12)
    assert np.all(q2[:, 3] >= 0)


@SETTINGS
@given(quat)
def test_quaternion_round_trip(q):
    q = q / np.linalg.norm(q)
    R = quaternion_to_matrix(q)
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)
    q2 = Transform.from_quaternion(q).as_quaternion()
    assert q2[3] >= 0
    assert min(np.linalg.norm(q2 - q), np.linalg.norm(q2 + q)) < 1e-9


@SETTINGS
@given(angles, st.floats(-np.pi / 2, np.pi / 2), angles)
def test_rpy_round_trip(r, p, y):
    R = rpy_to_matrix(r, p, y)
    np.testing.assert_allclose(rpy_to_matrix(*matrix_to_rpy(R)), R, atol=1e-7)
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-12)


# ------------------------------------------------------------------ group laws
@SETTINGS
@given(transforms())
def test_inverse(T):
    np.testing.assert_allclose((T @ T.inverse()).as_matrix(), np.eye(4), atol=1e-9)
    np.testing.assert_allclose((T.inverse() @ T).as_matrix(), np.eye(4), atol=1e-9)
    np.testing.assert_allclose(T.inverse().as_matrix(), np.linalg.inv(T.as_matrix()), atol=1e-9)


@SETTINGS
@given(transforms(), transforms(), arrays(np.float64, (4, 3), elements=finite))
def test_composition_is_matrix_product(T_ab, T_bc, p_c):
    T_ac = T_ab @ T_bc
    np.testing.assert_allclose(T_ac.as_matrix(), T_ab.as_matrix() @ T_bc.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(T_ac.apply(p_c), T_ab.apply(T_bc.apply(p_c)), atol=1e-9)
    p_h = np.c_[p_c, np.ones(4)] @ T_ac.as_matrix().T
    np.testing.assert_allclose(T_ac.apply(p_c), p_h[:, :3], atol=1e-9)


@SETTINGS
@given(transforms())
def test_matrix_round_trip(T):
    T2 = Transform.from_matrix(T.as_matrix())
    np.testing.assert_allclose(T2.as_matrix(), T.as_matrix(), atol=1e-12)
    T3 = Transform.from_quaternion(T.as_quaternion(), T.translation)
    np.testing.assert_allclose(T3.as_matrix(), T.as_matrix(), atol=1e-12)

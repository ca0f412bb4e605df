"""Rigid transforms in SE(3): rotation matrices, quaternions and roll-pitch-yaw.

Naming convention (used throughout fdl_robot)
---------------------------------------------
``T_a_b`` is the transform that maps points expressed in frame *b* into frame *a*::

    p_a = T_a_b(p_b) = R_a_b p_b + t_a_b                                   (29.9)

so ``T_base_cam`` takes camera-frame points ``p_cam`` to base-frame points ``p_base``,
``t_a_b`` is the origin of *b* expressed in *a* (metres) and the columns of ``R_a_b``
are the axes of *b* expressed in *a*.  Frames chain like matrix indices::

    T_a_c = T_a_b @ T_b_c,        T_b_a = T_a_b.inverse().

Conventions follow ROS (REP-103): quaternions are ordered (x, y, z, w), and
roll-pitch-yaw are fixed-axis rotations about X, then Y, then Z::

    R = Rz(yaw) Ry(pitch) Rx(roll).

Angles are in radians, lengths in metres, arrays float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "Transform",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "rpy_to_matrix",
    "matrix_to_rpy",
    "T_BODY_OPTICAL",
    "T_BODY_FROM_OPTICAL",
]

#: Default tolerance when checking that a matrix is a rotation (R^T R = I, det R = 1).
ROTATION_ATOL = 1e-6


def _finite_array(x: ArrayLike, name: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    """``x`` as float64, checked to end in ``shape_tail`` and to be finite."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < len(shape_tail) or a.shape[a.ndim - len(shape_tail):] != shape_tail:
        raise ValueError(f"{name} must have shape (..., {', '.join(map(str, shape_tail))}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _vec3(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a finite float64 vector of shape (3,)."""
    a = _finite_array(x, name, (3,))
    if a.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {a.shape}")
    return a


def quaternion_to_matrix(q_xyzw: ArrayLike) -> np.ndarray:
    """Rotation matrix of a quaternion (x, y, z, w); shape (4,) -> (3, 3), (N, 4) -> (N, 3, 3).

    The quaternion is normalised first, so any non-zero multiple of a unit quaternion
    gives the same rotation.  For a unit quaternion::

        R = [[1 - 2(y² + z²), 2(xy - zw),     2(xz + yw)    ],
             [2(xy + zw),     1 - 2(x² + z²), 2(yz - xw)    ],
             [2(xz - yw),     2(yz + xw),     1 - 2(x² + y²)]]

    Raises ValueError for a zero (or non-finite) quaternion.
    """
    q = _finite_array(q_xyzw, "quaternion", (4,))
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < 1e-12):
        raise ValueError("zero quaternion has no rotation")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    R = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return R.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: ArrayLike) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix; (3, 3) -> (4,), (N, 3, 3) -> (N, 4).

    Shepperd's method: of the four equivalent formulas, use the one whose pivot
    (4w², 4x², 4y² or 4z², i.e. 1 + tr R, 1 + 2R00 - tr R, ...) is largest, so the
    square root and the division are always well conditioned.  The result is made
    canonical with w >= 0 (q and -q are the same rotation).
    """
    R = _finite_array(R, "rotation matrix", (3, 3))
    batch = R.shape[:-2]
    R = R.reshape(-1, 3, 3)
    r00, r11, r22 = R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]
    trace = r00 + r11 + r22
    pivot = np.argmax(np.stack([trace, r00, r11, r22], axis=-1), axis=-1)

    q = np.empty((R.shape[0], 4))
    for case in range(4):  # four formulas, each applied to all matrices that pick it
        m = pivot == case
        if not np.any(m):
            continue
        A = R[m]
        a00, a11, a22 = A[:, 0, 0], A[:, 1, 1], A[:, 2, 2]
        if case == 0:  # w is the largest component
            s = 2.0 * np.sqrt(1.0 + a00 + a11 + a22)  # s = 4w
            q[m] = np.stack([(A[:, 2, 1] - A[:, 1, 2]) / s, (A[:, 0, 2] - A[:, 2, 0]) / s,
                             (A[:, 1, 0] - A[:, 0, 1]) / s, 0.25 * s], axis=-1)
        elif case == 1:  # x
            s = 2.0 * np.sqrt(1.0 + a00 - a11 - a22)  # s = 4x
            q[m] = np.stack([0.25 * s, (A[:, 0, 1] + A[:, 1, 0]) / s,
                             (A[:, 0, 2] + A[:, 2, 0]) / s, (A[:, 2, 1] - A[:, 1, 2]) / s], axis=-1)
        elif case == 2:  # y
            s = 2.0 * np.sqrt(1.0 - a00 + a11 - a22)  # s = 4y
            q[m] = np.stack([(A[:, 0, 1] + A[:, 1, 0]) / s, 0.25 * s,
                             (A[:, 1, 2] + A[:, 2, 1]) / s, (A[:, 0, 2] - A[:, 2, 0]) / s], axis=-1)
        else:  # z
            s = 2.0 * np.sqrt(1.0 - a00 - a11 + a22)  # s = 4z
            q[m] = np.stack([(A[:, 0, 2] + A[:, 2, 0]) / s, (A[:, 1, 2] + A[:, 2, 1]) / s,
                             0.25 * s, (A[:, 1, 0] - A[:, 0, 1]) / s], axis=-1)

    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    q[q[:, 3] < 0] *= -1.0
    return q.reshape(batch + (4,))


def rpy_to_matrix(roll: ArrayLike, pitch: ArrayLike, yaw: ArrayLike) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll) (REP-103 fixed axes X, Y, Z), radians.

    Scalars give (3, 3); arrays broadcast to (..., 3, 3).
    """
    r, p, y = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (roll, pitch, yaw)))
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise ValueError("roll, pitch and yaw must be finite")
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    R = np.stack(
        [
            cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
            sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
            -sp, cp * sr, cp * cr,
        ],
        axis=-1,
    )
    return R.reshape(r.shape + (3, 3))


def matrix_to_rpy(R: ArrayLike) -> np.ndarray:
    """(roll, pitch, yaw) in radians of R = Rz(yaw) Ry(pitch) Rx(roll); (3, 3) -> (3,).

    pitch is in [-pi/2, pi/2], roll and yaw in (-pi, pi].  At gimbal lock
    (pitch = ±pi/2) only roll ∓ yaw is defined; roll is then set to 0.
    """
    R = _finite_array(R, "rotation matrix", (3, 3))
    cos_pitch = np.hypot(R[..., 0, 0], R[..., 1, 0])
    pitch = np.arctan2(-R[..., 2, 0], cos_pitch)
    locked = cos_pitch < 1e-9
    roll = np.where(locked, 0.0, np.arctan2(R[..., 2, 1], R[..., 2, 2]))
    yaw = np.where(locked, np.arctan2(-R[..., 0, 1], R[..., 1, 1]), np.arctan2(R[..., 1, 0], R[..., 0, 0]))
    return np.stack([roll, pitch, yaw], axis=-1)


class Transform:
    """A rigid transform ``T_a_b``: p_a = R p_b + t with R in SO(3), t in metres.

    Immutable: the rotation and translation arrays are read-only.  Build one with
    :meth:`from_matrix`, :meth:`from_quaternion`, :meth:`from_rpy`, :meth:`identity`
    or ``Transform(R, t)``; compose with ``@``; map points with :meth:`apply`.
    """

    __slots__ = ("_R", "_t")
    __array_ufunc__ = None  # so ``transform @ ndarray`` raises TypeError instead of numpy guessing

    def __init__(self, rotation: ArrayLike | None = None, translation: ArrayLike | None = None,
                 *, atol: float = ROTATION_ATOL):
        """Check ``rotation`` (3x3) is a rotation within ``atol`` and store the nearest
        exact rotation (SVD projection onto SO(3)); ``translation`` (3,) in metres."""
        R = np.eye(3) if rotation is None else _finite_array(rotation, "rotation", (3, 3))
        t = np.zeros(3) if translation is None else _vec3(translation, "translation")
        if R.shape != (3, 3):
            raise ValueError(f"rotation must have shape (3, 3), got {R.shape}")
        if not np.allclose(R.T @ R, np.eye(3), rtol=0.0, atol=atol):
            raise ValueError("rotation is not orthonormal (R^T R != I)")
        if np.linalg.det(R) < 0:
            raise ValueError("rotation has det -1: a reflection, not a rotation")
        U, _, Vt = np.linalg.svd(R)
        self._set(U @ Vt, t)

    def _set(self, R: np.ndarray, t: np.ndarray) -> None:
        R = np.array(R, dtype=np.float64)
        t = np.array(t, dtype=np.float64)
        R.flags.writeable = False
        t.flags.writeable = False
        object.__setattr__(self, "_R", R)
        object.__setattr__(self, "_t", t)

    @classmethod
    def _trusted(cls, R: np.ndarray, t: np.ndarray) -> Transform:
        """Build without checks, for R known to be a rotation (products, inverses)."""
        T = cls.__new__(cls)
        T._set(R, t)
        return T

    # ----------------------------------------------------------------- builders
    @classmethod
    def identity(cls) -> Transform:
        """The identity transform T_a_a."""
        return cls._trusted(np.eye(3), np.zeros(3))

    @classmethod
    def from_matrix(cls, T: ArrayLike, *, atol: float = ROTATION_ATOL) -> Transform:
        """From a 4x4 homogeneous matrix [[R, t], [0 0 0 1]].

        Raises ValueError unless R is orthonormal with det +1 and the last row is
        (0, 0, 0, 1), each within ``atol``.
        """
        M = _finite_array(T, "transform matrix", (4, 4))
        if M.shape != (4, 4):
            raise ValueError(f"transform matrix must be (4, 4), got {M.shape}")
        if not np.allclose(M[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=atol):
            raise ValueError(f"last row of a rigid transform must be [0, 0, 0, 1], got {M[3]}")
        return cls(M[:3, :3], M[:3, 3], atol=atol)

    @classmethod
    def from_quaternion(cls, q_xyzw: ArrayLike, t: ArrayLike = (0.0, 0.0, 0.0)) -> Transform:
        """From a quaternion (x, y, z, w) (normalised here; zero rejected) and t in metres."""
        q = _finite_array(q_xyzw, "quaternion", (4,))
        if q.shape != (4,):
            raise ValueError(f"quaternion must have shape (4,), got {q.shape}")
        return cls._trusted(quaternion_to_matrix(q), _vec3(t, "translation"))

    @classmethod
    def from_rpy(cls, roll: float, pitch: float, yaw: float, t: ArrayLike = (0.0, 0.0, 0.0)) -> Transform:
        """From roll, pitch, yaw (radians; R = Rz(yaw) Ry(pitch) Rx(roll)) and t in metres."""
        return cls._trusted(rpy_to_matrix(float(roll), float(pitch), float(yaw)),
                            _vec3(t, "translation"))

    # ---------------------------------------------------------------- accessors
    @property
    def rotation(self) -> np.ndarray:
        """R_a_b, (3, 3), read-only."""
        return self._R

    @property
    def translation(self) -> np.ndarray:
        """t_a_b: the origin of frame b expressed in frame a, (3,) metres, read-only."""
        return self._t

    def as_matrix(self) -> np.ndarray:
        """The 4x4 homogeneous matrix [[R, t], [0, 0, 0, 1]] (a new array)."""
        M = np.eye(4)
        M[:3, :3] = self._R
        M[:3, 3] = self._t
        return M

    def as_quaternion(self) -> np.ndarray:
        """Rotation as a unit quaternion (x, y, z, w) with w >= 0."""
        return matrix_to_quaternion(self._R)

    def as_rpy(self) -> np.ndarray:
        """Rotation as (roll, pitch, yaw) in radians, see :func:`matrix_to_rpy`."""
        return matrix_to_rpy(self._R)

    # ---------------------------------------------------------------- algebra
    def inverse(self) -> Transform:
        """T_b_a = T_a_b^-1:  p_b = R^T p_a - R^T t."""
        Rt = self._R.T
        return Transform._trusted(Rt, -Rt @ self._t)

    def __matmul__(self, other: Transform) -> Transform:
        """Composition T_a_c = T_a_b @ T_b_c:  R = R_ab R_bc,  t = R_ab t_bc + t_ab."""
        if not isinstance(other, Transform):
            return NotImplemented
        return Transform._trusted(self._R @ other._R, self._R @ other._t + self._t)

    def apply(self, points: ArrayLike) -> np.ndarray:
        """Map points p_b (N, 3) or (3,) in metres to p_a = R p_b + t, same shape.

        NaN rows (e.g. points without valid depth) stay NaN.
        """
        p = np.asarray(points, dtype=np.float64)
        if p.ndim not in (1, 2) or p.shape[-1] != 3:
            raise ValueError(f"points must have shape (3,) or (N, 3), got {p.shape}")
        return p @ self._R.T + self._t

    def rotate(self, vectors: ArrayLike) -> np.ndarray:
        """Rotate free vectors v_b (velocities, directions), (N, 3) or (3,): v_a = R v_b."""
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim not in (1, 2) or v.shape[-1] != 3:
            raise ValueError(f"vectors must have shape (3,) or (N, 3), got {v.shape}")
        return v @ self._R.T

    def __repr__(self) -> str:
        t = np.array2string(self._t, precision=6, separator=", ")
        q = np.array2string(self.as_quaternion(), precision=6, separator=", ")
        return f"Transform(t={t}, q_xyzw={q})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Transform is immutable")

    def __reduce__(self) -> tuple:
        """Pickle / copy exactly (bypassing __setattr__)."""
        return (Transform._trusted, (np.array(self._R), np.array(self._t)))


def _optical_frame_rotation() -> np.ndarray:
    # Columns: the optical axes expressed in the body frame (x fwd, y left, z up).
    x_right, y_down, z_forward = [0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]
    return np.column_stack([x_right, y_down, z_forward])


#: ``T_body_optical``: maps camera optical-frame points (z forward, x right, y down)
#: into the camera body frame of REP-103 (x forward, y left, z up), zero translation:
#: (X, Y, Z)_optical -> (Z, -X, -Y)_body.  It equals rpy (-pi/2, 0, -pi/2), i.e. the
#: quaternion (-0.5, 0.5, -0.5, 0.5) of ROS camera drivers' ``*_optical_frame`` joints.
#: Use ``T_base_optical = T_base_body @ T_BODY_OPTICAL`` when the extrinsics name the
#: camera body frame.
T_BODY_OPTICAL = Transform._trusted(_optical_frame_rotation(), np.zeros(3))

#: Alias of :data:`T_BODY_OPTICAL` ("body from optical").
T_BODY_FROM_OPTICAL = T_BODY_OPTICAL

"""Closed-form solvers of the hand-eye equations AX = XB and AX = ZB.

Rigid transforms are 4x4 homogeneous matrices ``[[R, t], [0, 1]]`` (metres), stacked as
(K, 4, 4); the frames they relate are the caller's (see
:mod:`fdl_robot.perception.handeye`, which builds A and B from robot and board poses).

AX = XB  (hand-eye)
-------------------
K pairs of motions (A_k, B_k) and one unknown X. Splitting rotation and translation::

    R_A R_X = R_X R_B                                                           (1)
    (R_A - I) t_X = R_X t_B - t_A                                               (2)

(1) makes A and B conjugate rotations: equal angles theta, axes k_A = R_X k_B. All
rotation-first methods solve (2) afterwards by linear least squares over the stacked
(R_A - I), whose singular values are 2 sin(theta/2) (twice) and 0 along k_A: two motions
with non-parallel axes are the least that fix t_X.

TSAI (Tsai & Lenz 1989)
    With P = 2 sin(theta/2) k (modified Rodrigues vector of a rotation) and the Cayley
    vector x = tan(theta_X / 2) k_X of R_X, ``a = R_X b`` gives ``a - b = x X (a + b)``, so::

        [P_A + P_B]x  x = P_B - P_A          (3 equations per motion, least squares)

    and theta_X = 2 atan|x|, k_X = x / |x| (singular at theta_X = 180 deg).
PARK (Park & Martin 1994)
    With alpha = log R_A and beta = log R_B (rotation vectors), alpha = R_X beta, and
    M = sum beta alpha^T::

        R_X = (M^T M)^(-1/2) M^T
HORAUD (Horaud & Dornaika 1995)
    Unit quaternions (w, v), both with w >= 0 (conjugate rotations have equal w), satisfy
    q_A q_X = q_X q_B, i.e. (L(q_A) - R(q_B)) q_X = 0 with the left/right product matrices::

        L(q) = [[w, -v^T], [v, w I + [v]x]],   R(q) = [[w, -v^T], [v, w I - [v]x]];

    q_X is the right singular vector of the stacked (4K, 4) matrix with the least singular value.
ANDREFF (Andreff, Horaud & Espiau 2001)
    Rotation and translation together, linear in (vec R_X, t_X) (column-major vec,
    vec(A X B) = (B^T kron A) vec X)::

        (I_3 kron R_A - R_B^T kron I_3) vec R_X                    = 0
        (t_B^T kron I_3) vec R_X + (I_3 - R_A) t_X                 = t_A

    solved by least squares (12 unknowns); R_X is then projected onto SO(3) and t_X solved
    again from (2) with it.
DANIILIDIS (Daniilidis 1999)
    Unit dual quaternions q + eps q' with q' = (1/2) (0, t) q. Their scalar parts agree for
    conjugate motions, and the vector part of a x = x b gives, per motion, with
    S(a, b) = [v_a - v_b, [v_a + v_b]x] (3 x 4)::

        [[S(a, b),   0      ],   [q ]
         [S(a', b'), S(a, b)]] . [q'] = 0                       (6 x 8 per motion)

    The solution lies in the span of the two right singular vectors v_7, v_8 of the stack
    with the least singular values: x = l1 v_7 + l2 v_8, with l1, l2 fixed by |q| = 1 and
    q . q' = 0 (a quadratic in l1 / l2); then t_X = 2 vec(q' q^*).

AX = ZB  (robot-world / hand-eye)
---------------------------------
N poses (A_i, B_i) and two unknowns X and Z::

    R_A R_X = R_Z R_B,        R_A t_X + t_A = R_Z t_B + t_Z

SHAH (Shah 2013)
    vec R_Z = (R_B kron R_A) vec R_X, so the matrix K = sum_i (R_B_i kron R_A_i) has
    vec R_X and vec R_Z (each times 3^(1/2)) as its right and left singular vectors of the
    largest singular value, N. Each is scaled to det +1 and projected onto SO(3); then
    ``[R_A, -I] [t_X; t_Z] = R_Z t_B - t_A`` by least squares.
LI (Li, Wang & Wu 2010)
    Everything at once, linear in (vec R_X, vec R_Z, t_X, t_Z) (24 unknowns)::

        (I_3 kron R_A) vec R_X - (R_B^T kron I_3) vec R_Z                    = 0
        R_A t_X - t_Z - (t_B^T kron I_3) vec R_Z                             = -t_A

    by least squares; the rotations are projected onto SO(3) and the translations solved
    again with them, as for SHAH.

Every solver returns exact rotations (det +1). ``nearest_rotation`` is the SO(3) projection
U diag(1, 1, det(U V^T)) V^T of the SVD M = U S V^T (the closest rotation in Frobenius norm).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fdl_robot.core.geometry import matrix_to_quaternion

__all__ = ["AXXB_METHODS", "AXZB_METHODS", "solve_axxb", "solve_axzb", "nearest_rotation", "rotation_vectors",
           "homogeneous"]

AXXB_METHODS = ("TSAI", "PARK", "HORAUD", "ANDREFF", "DANIILIDIS")
AXZB_METHODS = ("SHAH", "LI")


def _stack(T: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(T, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (4, 4) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (K, 4, 4) transforms, got shape {a.shape}")
    return a


def homogeneous(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[[R, t], [0, 1]] (4, 4)."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t).reshape(3)
    return T


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation closest to a 3x3 matrix M (Frobenius norm), by SVD."""
    U, _, Vt = np.linalg.svd(M)
    return U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0]) @ Vt


def _skew(v: np.ndarray) -> np.ndarray:
    """[v]x for v (..., 3): (..., 3, 3) with [v]x u = v x u."""
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([z, -w, y, w, z, -x, -y, x, z], axis=-1).reshape(v.shape[:-1] + (3, 3))


def _quaternions_wxyz(R: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z), w >= 0, of rotations (K, 3, 3)."""
    q = matrix_to_quaternion(R)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def rotation_vectors(R: np.ndarray) -> np.ndarray:
    """SO(3) log, vectorised: rotation vectors theta k (K, 3) of rotations (K, 3, 3)."""
    q = _quaternions_wxyz(R)
    s = np.linalg.norm(q[:, 1:], axis=1)
    angle = 2.0 * np.arctan2(s, q[:, 0])
    scale = np.where(s > 1e-12, angle / np.maximum(s, 1e-300), 2.0)
    return q[:, 1:] * scale[:, None]


def _translation_axxb(A: np.ndarray, B: np.ndarray, R_X: np.ndarray) -> np.ndarray:
    """Least-squares t_X of (R_A - I) t_X = R_X t_B - t_A."""
    M = (A[:, :3, :3] - np.eye(3)).reshape(-1, 3)
    rhs = (B[:, :3, 3] @ R_X.T - A[:, :3, 3]).reshape(-1)
    return np.linalg.lstsq(M, rhs, rcond=None)[0]


def _rotation_tsai(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    def modified_rodrigues(R):
        r = rotation_vectors(R)
        theta = np.linalg.norm(r, axis=1, keepdims=True)
        return np.where(theta > 1e-12, 2.0 * np.sin(theta / 2) * r / np.maximum(theta, 1e-300), r)

    Pa, Pb = modified_rodrigues(A[:, :3, :3]), modified_rodrigues(B[:, :3, :3])
    x = np.linalg.lstsq(_skew(Pa + Pb).reshape(-1, 3), (Pb - Pa).reshape(-1), rcond=None)[0]
    n = np.linalg.norm(x)
    if n < 1e-15:
        return np.eye(3)
    theta = 2.0 * np.arctan(n)
    k = _skew(x / n)
    return np.eye(3) + np.sin(theta) * k + (1.0 - np.cos(theta)) * (k @ k)


def _rotation_park(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    alpha, beta = rotation_vectors(A[:, :3, :3]), rotation_vectors(B[:, :3, :3])
    M = beta.T @ alpha                                       # sum_k beta_k alpha_k^T
    w, V = np.linalg.eigh(M.T @ M)
    inv_sqrt = V @ np.diag(1.0 / np.sqrt(np.maximum(w, 1e-300))) @ V.T
    return nearest_rotation(inv_sqrt @ M.T)


def _quaternion_product_matrices(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L(q), R(q) (K, 4, 4) with q p = L(q) p and p q = R(q) p, quaternions (w, x, y, z)."""
    w, v = q[:, 0], q[:, 1:]
    K = len(q)
    L = np.empty((K, 4, 4))
    L[:, 0, 0] = w
    L[:, 0, 1:] = -v
    L[:, 1:, 0] = v
    Rm = L.copy()
    L[:, 1:, 1:] = w[:, None, None] * np.eye(3) + _skew(v)
    Rm[:, 1:, 1:] = w[:, None, None] * np.eye(3) - _skew(v)
    return L, Rm


def _rotation_from_wxyz(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _rotation_horaud(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    La, _ = _quaternion_product_matrices(_quaternions_wxyz(A[:, :3, :3]))
    _, Rb = _quaternion_product_matrices(_quaternions_wxyz(B[:, :3, :3]))
    _, _, Vt = np.linalg.svd((La - Rb).reshape(-1, 4))
    return _rotation_from_wxyz(Vt[-1])


def _solve_andreff(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    I3 = np.eye(3)
    rows, rhs = [], []
    for a, b in zip(A, B, strict=True):
        Ra, ta, Rb, tb = a[:3, :3], a[:3, 3], b[:3, :3], b[:3, 3]
        rows.append(np.hstack([np.kron(I3, Ra) - np.kron(Rb.T, I3), np.zeros((9, 3))]))
        rhs.append(np.zeros(9))
        rows.append(np.hstack([np.kron(tb.reshape(1, 3), I3), I3 - Ra]))
        rhs.append(ta)
    sol = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)[0]
    R_X = _scaled_rotation(sol[:9])
    return homogeneous(R_X, _translation_axxb(A, B, R_X))


def _dual_quaternions(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real and dual parts (w, x, y, z) of unit dual quaternions, real part with w >= 0."""
    q = _quaternions_wxyz(T[:, :3, :3])
    t = np.concatenate([np.zeros((len(T), 1)), T[:, :3, 3]], axis=1)
    L_t, _ = _quaternion_product_matrices(t)
    return q, 0.5 * np.einsum("kij,kj->ki", L_t, q)


def _solve_daniilidis(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    a, a_d = _dual_quaternions(A)
    b, b_d = _dual_quaternions(B)

    def S(p, r):
        return np.concatenate([(p[:, 1:] - r[:, 1:])[:, :, None], _skew(p[:, 1:] + r[:, 1:])], axis=2)  # (K,3,4)

    K = len(A)
    T = np.zeros((K, 6, 8))
    T[:, :3, :4] = S(a, b)
    T[:, 3:, :4] = S(a_d, b_d)
    T[:, 3:, 4:] = S(a, b)
    _, _, Vt = np.linalg.svd(T.reshape(-1, 8))
    v7, v8 = Vt[-2], Vt[-1]
    u1, w1, u2, w2 = v7[:4], v7[4:], v8[:4], v8[4:]
    # q . q' = 0 for x = l1 v7 + l2 v8:  s^2 u1.w1 + s (u1.w2 + u2.w1) + u2.w2 = 0, s = l1 / l2
    c2, c1, c0 = u1 @ w1, u1 @ w2 + u2 @ w1, u2 @ w2
    if abs(c2) < 1e-14:
        candidates = [-c0 / c1] if abs(c1) > 1e-14 else [0.0]
    else:
        disc = max(c1 * c1 - 4 * c2 * c0, 0.0)
        candidates = [(-c1 + np.sqrt(disc)) / (2 * c2), (-c1 - np.sqrt(disc)) / (2 * c2)]
    norms = [s * s * (u1 @ u1) + 2 * s * (u1 @ u2) + u2 @ u2 for s in candidates]
    s = candidates[int(np.argmax(norms))]
    l2 = 1.0 / np.sqrt(max(norms)) if max(norms) > 0 else 1.0
    l1 = s * l2
    q, q_d = l1 * u1 + l2 * u2, l1 * w1 + l2 * w2
    q_conj = q * np.array([1.0, -1.0, -1.0, -1.0])
    L_qd, _ = _quaternion_product_matrices(q_d[None])
    t = 2.0 * (L_qd[0] @ q_conj)[1:]
    return homogeneous(_rotation_from_wxyz(q), t)


def solve_axxb(A: ArrayLike, B: ArrayLike, method: str = "PARK") -> np.ndarray:
    """X (4, 4) with A_k X = X B_k for motions A, B (K, 4, 4), by ``method`` (:data:`AXXB_METHODS`).

    Needs K >= 2 motions with non-parallel rotation axes (the caller checks degeneracy).
    """
    A, B = _stack(A, "A"), _stack(B, "B")
    if A.shape != B.shape:
        raise ValueError(f"A and B must hold as many motions, got {len(A)} and {len(B)}")
    if len(A) < 2:
        raise ValueError(f"AX = XB needs at least 2 motions, got {len(A)}")
    if method == "ANDREFF":
        return _solve_andreff(A, B)
    if method == "DANIILIDIS":
        return _solve_daniilidis(A, B)
    rotation = {"TSAI": _rotation_tsai, "PARK": _rotation_park, "HORAUD": _rotation_horaud}.get(method)
    if rotation is None:
        raise ValueError(f"unknown AX = XB method {method!r}; known: {AXXB_METHODS}")
    R_X = rotation(A, B)
    return homogeneous(R_X, _translation_axxb(A, B, R_X))


def _translations_axzb(A: np.ndarray, B: np.ndarray, R_Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (t_X, t_Z) of R_A t_X - t_Z = R_Z t_B - t_A."""
    M = np.concatenate([A[:, :3, :3], np.broadcast_to(-np.eye(3), (len(A), 3, 3))], axis=2).reshape(-1, 6)
    rhs = (B[:, :3, 3] @ R_Z.T - A[:, :3, 3]).reshape(-1)
    sol = np.linalg.lstsq(M, rhs, rcond=None)[0]
    return sol[:3], sol[3:]


def _scaled_rotation(v: np.ndarray) -> np.ndarray:
    M = v.reshape(3, 3, order="F")
    d = np.linalg.det(M)
    return nearest_rotation(M / np.cbrt(d) if abs(d) > 1e-300 else M)


def solve_axzb(A: ArrayLike, B: ArrayLike, method: str = "SHAH") -> tuple[np.ndarray, np.ndarray]:
    """(X, Z) (4, 4) with A_i X = Z B_i for poses A, B (N, 4, 4), by ``method`` (:data:`AXZB_METHODS`)."""
    A, B = _stack(A, "A"), _stack(B, "B")
    if A.shape != B.shape:
        raise ValueError(f"A and B must hold as many poses, got {len(A)} and {len(B)}")
    if len(A) < 3:
        raise ValueError(f"AX = ZB needs at least 3 poses, got {len(A)}")
    Ra, Rb = A[:, :3, :3], B[:, :3, :3]
    if method == "SHAH":
        K = sum(np.kron(rb, ra) for ra, rb in zip(Ra, Rb, strict=True))
        U, _, Vt = np.linalg.svd(K)
        R_X, R_Z = _scaled_rotation(Vt[0]), _scaled_rotation(U[:, 0])
    elif method == "LI":
        I3 = np.eye(3)
        rows, rhs = [], []
        for a, b in zip(A, B, strict=True):
            rows.append(np.hstack([np.kron(I3, a[:3, :3]), -np.kron(b[:3, :3].T, I3), np.zeros((9, 6))]))
            rhs.append(np.zeros(9))
            rows.append(np.hstack([np.zeros((3, 9)), -np.kron(b[:3, 3].reshape(1, 3), I3), a[:3, :3], -I3]))
            rhs.append(-a[:3, 3])
        sol = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)[0]
        R_X, R_Z = _scaled_rotation(sol[:9]), _scaled_rotation(sol[9:18])
    else:
        raise ValueError(f"unknown AX = ZB method {method!r}; known: {AXZB_METHODS}")
    t_X, t_Z = _translations_axzb(A, B, R_Z)
    return homogeneous(R_X, t_X), homogeneous(R_Z, t_Z)

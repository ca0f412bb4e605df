"""Constant-velocity Kalman filter: motion model, predict, update and Mahalanobis gate (seed §29.4).

Frames and units
----------------
Every vector lives in one Cartesian frame, the caller's (for the tracker normally
``base_link``, REP-103: x forward, y left, z up): positions in metres (m), velocities in
metres per second (m/s), times in seconds (s).  ``D`` is the spatial dimension, 3 or 2
(objects on a plane).

State and motion model
----------------------
The state of one object is ``x = [p; v]`` (length 2D): position ``p`` (m) and velocity
``v`` (m/s), with covariance ``P`` (2D x 2D).  Between two stamps ``dt = t_k - t_{k-1}``
seconds apart the object moves with constant velocity plus a continuous white-noise
acceleration of spectral density ``q`` (m^2/s^3) on each axis::

    x_k = F(dt) x_{k-1} + w,    w ~ N(0, Q(dt))

    F(dt) = [[I, dt I],          Q(dt) = q [[dt^3/3 I, dt^2/2 I],
             [0,    I]]                     [dt^2/2 I,    dt I ]]

``Q`` is the exact covariance of the integrated noise, so a filter run at 10 Hz, at
30 Hz or on jittery stamps describes the same physical model; ``dt`` always comes from
the stamps, never from a frame count.

Measurement model
-----------------
A measurement is a position ``z = H x + r`` (m) with ``H = [I 0]`` (D x 2D) and
``r ~ N(0, R)``, ``R`` (D x D, m^2) symmetric positive definite.

Predict and update
------------------
Predict over ``dt``::

    x <- F x,    P <- F P F^T + Q

Update with a measurement ``z`` of covariance ``R``::

    y = z - H x                      innovation (m)
    S = H P H^T + R                  innovation covariance (m^2)
    K = P H^T S^-1                   gain
    x <- x + K y
    P <- (I - K H) P (I - K H)^T + K R K^T      (Joseph form: stays symmetric PSD)

Gating
------
For the true measurement of an object the squared Mahalanobis distance of its
innovation::

    d^2 = y^T S^-1 y                 (dimensionless)

is chi-square distributed with D degrees of freedom, so ``d^2 <= chi2.ppf(p, D)``
(:func:`gate_threshold`) keeps it with probability ``p``.

``S`` is 2 x 2 or 3 x 3: :func:`inverse_and_det` inverts a batch of them in closed form
(adjugate over determinant), which for tens of matrices is several times cheaper than
``np.linalg.inv`` and ``np.linalg.det`` (one LAPACK call per matrix each).

All functions are pure (arrays in, new arrays out); :func:`kf_predict` and
:func:`kf_update` accept a leading batch axis (many objects at once).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

__all__ = [
    "check_dim",
    "gate_threshold",
    "inverse_and_det",
    "kf_predict",
    "kf_update",
    "mahalanobis_sq",
    "measurement_matrix",
    "process_noise",
    "check_state",
    "transition_matrix",
]

FloatArray = NDArray[np.float64]


def check_dim(dim: int) -> int:
    """``dim`` if it is a supported spatial dimension D (2 or 3), else ValueError."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    return dim


def _check_dt(dt_s: float) -> float:
    dt = float(dt_s)
    if not np.isfinite(dt) or dt < 0.0:
        raise ValueError(f"dt_s must be finite and >= 0, got {dt_s}")
    return dt


def check_state(x: ArrayLike, P: ArrayLike) -> tuple[FloatArray, FloatArray, int]:
    """``(x, P, D)`` as float arrays after checking ``x`` (..., 2D) and ``P`` (..., 2D, 2D)."""
    x = np.asarray(x, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] not in (4, 6):
        raise ValueError(f"x must have shape (..., 2D) with D in (2, 3), got {x.shape}")
    n = x.shape[-1]
    if P.shape != x.shape + (n,):
        raise ValueError(f"P must have shape {x.shape + (n,)} to match x, got {P.shape}")
    return x, P, n // 2


def transition_matrix(dt_s: float, dim: int = 3) -> FloatArray:
    """``F(dt) = [[I, dt I], [0, I]]`` (2D x 2D) for the state ``[p (m); v (m/s)]``."""
    dt = _check_dt(dt_s)
    d = check_dim(dim)
    F = np.eye(2 * d)
    F[:d, d:] = dt * np.eye(d)
    return F


def process_noise(dt_s: float, q: float, dim: int = 3) -> FloatArray:
    """``Q(dt) = q [[dt^3/3 I, dt^2/2 I], [dt^2/2 I, dt I]]`` (m^2, m^2/s, m^2/s^2).

    Continuous white-noise acceleration with spectral density ``q`` (m^2/s^3) on each
    axis independently, integrated exactly over ``dt_s`` seconds.
    """
    dt = _check_dt(dt_s)
    if not np.isfinite(q) or q < 0.0:
        raise ValueError(f"q must be finite and >= 0, got {q}")
    d = check_dim(dim)
    eye = np.eye(d)
    Q = np.zeros((2 * d, 2 * d))
    Q[:d, :d] = q * (dt**3 / 3.0 * eye)
    Q[:d, d:] = Q[d:, :d] = q * (dt**2 / 2.0 * eye)
    Q[d:, d:] = q * (dt * eye)
    return Q


def measurement_matrix(dim: int = 3) -> FloatArray:
    """``H = [I 0]`` (D x 2D): a measurement is the position only."""
    d = check_dim(dim)
    return np.hstack([np.eye(d), np.zeros((d, d))])


def gate_threshold(dim: int, probability: float) -> float:
    """``chi2.ppf(probability, dim)``: the gate on ``d^2`` holding ``probability`` of true pairs."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"gate probability must be in (0, 1), got {probability}")
    return float(chi2.ppf(probability, check_dim(dim)))


# adj(S)[i, j] = S[a, c] S[b, d] - S[a, d] S[b, c] with a, b = j + 1, j + 2 and c, d = i + 1,
# i + 2 (mod 3): the cofactor of S[j, i], its sign included by the cyclic order.  As flat
# indices into S (9,), one row per factor, one column per entry of adj(S).
_I3, _J3 = np.divmod(np.arange(9), 3)
_ADJ3 = np.stack([(_J3 + 1) % 3 * 3 + (_I3 + 1) % 3, (_J3 + 2) % 3 * 3 + (_I3 + 2) % 3,
                  (_J3 + 1) % 3 * 3 + (_I3 + 2) % 3, (_J3 + 2) % 3 * 3 + (_I3 + 1) % 3])
_ADJ2 = np.array([3, 1, 2, 0])                 # adj [[a, b], [c, d]] = [[d, -b], [-c, a]]
_ADJ2_SIGN = np.array([1.0, -1.0, -1.0, 1.0])


def inverse_and_det(S: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``S^-1`` (..., D, D) and ``det S`` (...) of a batch of D x D matrices, D = 2 or 3.

    Closed form: ``S^-1 = adj(S) / det S`` with the adjugate ``adj(S)`` (the transposed
    cofactor matrix) and ``det S = sum_k S[0, k] adj(S)[k, 0]`` (expansion along the first
    row).  For a well-conditioned S (an innovation covariance ``H P H^T + R``) as accurate
    as LU; a singular S gives inf/NaN entries instead of raising.
    """
    d = S.shape[-1]
    f = S.reshape(S.shape[:-2] + (d * d,))
    if d == 3:
        g = f[..., _ADJ3]                                       # (..., 4, 9)
        adj = g[..., 0, :] * g[..., 1, :] - g[..., 2, :] * g[..., 3, :]
    else:
        adj = f[..., _ADJ2] * _ADJ2_SIGN
    det = np.einsum("...k,...k->...", f[..., :d], adj[..., ::d])
    return (adj / det[..., None]).reshape(S.shape), det


def kf_predict(x: ArrayLike, P: ArrayLike, dt_s: float, q: float) -> tuple[FloatArray, FloatArray]:
    """Kalman predict ``x <- F x``, ``P <- F P F^T + Q`` over ``dt_s`` seconds.

    ``x`` has shape (..., 2D) and ``P`` (..., 2D, 2D): a leading batch axis predicts
    many states by the same ``dt_s``.  ``dt_s = 0`` returns copies unchanged.
    """
    x, P, d = check_state(x, P)
    F = transition_matrix(dt_s, d)
    Q = process_noise(dt_s, q, d)
    x_new = x @ F.T
    P_new = F @ P @ F.T + Q
    return x_new, 0.5 * (P_new + np.swapaxes(P_new, -1, -2))


def kf_update(
    x: ArrayLike, P: ArrayLike, z: ArrayLike, R: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Kalman update with position measurements ``z`` (..., D) of covariance ``R`` (..., D, D).

    Uses ``H = [I 0]``, the gain ``K = P H^T S^-1`` with ``S = H P H^T + R``, and the
    Joseph form ``P <- (I - K H) P (I - K H)^T + K R K^T``.  Batch axes must match.
    """
    x, P, d = check_state(x, P)
    z = np.asarray(z, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if z.shape != x.shape[:-1] + (d,):
        raise ValueError(f"z must have shape {x.shape[:-1] + (d,)}, got {z.shape}")
    if R.shape != z.shape + (d,):
        raise ValueError(f"R must have shape {z.shape + (d,)}, got {R.shape}")
    y = z - x[..., :d]                                   # innovation
    S = P[..., :d, :d] + R                               # H P H^T + R
    # K = P H^T S^-1  <=>  K^T = S^-1 (H P)   (S and P symmetric); H P = P[:d, :]
    K = np.swapaxes(np.linalg.solve(S, P[..., :d, :]), -1, -2)   # (..., 2D, D)
    x_new = x + (K @ y[..., None])[..., 0]
    I_KH = np.broadcast_to(np.eye(2 * d), P.shape).copy()
    I_KH[..., :, :d] -= K                                # I - K H
    P_new = I_KH @ P @ np.swapaxes(I_KH, -1, -2) + K @ R @ np.swapaxes(K, -1, -2)
    return x_new, 0.5 * (P_new + np.swapaxes(P_new, -1, -2))


def mahalanobis_sq(z: ArrayLike, R: ArrayLike, x: ArrayLike, P: ArrayLike) -> FloatArray:
    """Pairwise squared Mahalanobis distances ``d2[i, j] = y^T S^-1 y`` (N x M).

    ``z`` (N, D) measurements with covariances ``R`` (N, D, D); ``x`` (M, 2D) predicted
    states with covariances ``P`` (M, 2D, 2D); ``y = z_i - H x_j`` and
    ``S = H P_j H^T + R_i``.  Dimensionless; ~ chi2(D) for the true pair.
    """
    x, P, d = check_state(x, P)
    z = np.asarray(z, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if x.ndim != 2 or z.ndim != 2 or z.shape[1] != d or R.shape != (len(z), d, d):
        raise ValueError(
            "mahalanobis_sq expects z (N, D), R (N, D, D), x (M, 2D), P (M, 2D, 2D); got "
            f"{z.shape}, {R.shape}, {x.shape}, {P.shape}"
        )
    if len(z) == 0 or len(x) == 0:
        return np.zeros((len(z), len(x)))
    y = z[:, None, :] - x[None, :, :d]                    # (N, M, D)
    S = R[:, None] + P[None, :, :d, :d]                   # (N, M, D, D)
    return np.einsum("nmd,nmd->nm", y, np.linalg.solve(S, y[..., None])[..., 0])

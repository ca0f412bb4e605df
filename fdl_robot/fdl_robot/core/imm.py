"""Interacting multiple model (IMM) filter over constant-velocity models of different noise.

Frames and units as in :mod:`fdl_robot.core.kalman`: one Cartesian frame (the tracker's,
normally ``base_link``), positions in m, velocities in m/s, times in s; ``D`` = 2 or 3.

Models
------
All ``K`` models share the state ``x = [p; v]`` (2D,) and the motion matrix ``F(dt)`` of
:func:`fdl_robot.core.kalman.transition_matrix`; model ``j`` has its own white-noise
acceleration spectral density ``q_j`` (m^2/s^3), so ``Q_j(dt) = q_j Q_1(dt)`` with
``Q_1`` of :func:`fdl_robot.core.kalman.process_noise` at q = 1.  A tiny ``q_0`` is an
object at rest or drifting steadily (a conveyor), a middle one smooth motion, a large one a
manoeuvre (accelerations of a few m/s^2).  Because the state is shared, mixing needs no
state augmentation.

Mode switching (continuous time, so it does not depend on the frame rate)
-------------------------------------------------------------------------
The mode is a Markov chain that leaves its model at rate ``1 / tau`` (s^-1) towards each
of the others equally: over ``dt`` it stays with probability
``1 - s``, ``s = (K - 1) / K (1 - exp(-K dt / ((K - 1) tau)))``, and moves to each other
model with ``s / (K - 1)`` (the exact transition matrix ``expm(Lambda dt)`` of that
generator).  ``Pi[i, j]`` = P(model j at t | model i at t - dt).

One cycle (Blom & Bar-Shalom 1988), per track, all tracks batched
------------------------------------------------------------------
Mixing and prediction over ``dt`` (:func:`imm_predict`)::

    c_j    = sum_i Pi[i, j] mu_i                           predicted mode probability
    w_ij   = Pi[i, j] mu_i / c_j                           mixing weights
    x0_j   = sum_i w_ij x_i
    P0_j   = sum_i w_ij (P_i + (x_i - x0_j)(x_i - x0_j)^T)
    x_j    <- F x0_j,     P_j <- F P0_j F^T + q_j Q_1(dt),     mu_j <- c_j

Update with a position ``z`` of covariance ``R`` (:func:`imm_update`): each model's
Kalman update (``H = [I 0]``), and its likelihood
``L_j = N(y_j; 0, S_j) = exp(-d_j^2 / 2) / sqrt(det(2 pi S_j))``; then
``mu_j <- mu_j L_j / sum_k mu_k L_k``.  A track without a detection keeps ``mu = c``.

Output (:func:`imm_combine`): the moment-matched Gaussian
``x = sum_j mu_j x_j``, ``P = sum_j mu_j (P_j + (x_j - x)(x_j - x)^T)``; the tracker gates
and reports with it.

Mixing does not change the mixture (``sum_j c_j w_ij = mu_i``), so the moment-matched
Gaussian after :func:`imm_predict` follows from the one before it without combining the
models again (:func:`imm_predict_combined`)::

    x <- F x,    P <- F P F^T + (sum_j c_j q_j) Q_1(dt)

(the mean is ``F sum_j c_j x0_j = F sum_i mu_i x_i``; the covariance about it, by the law of
total covariance over j, is ``F P F^T`` plus the process noise averaged over the models).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

from fdl_robot.core.kalman import inverse_and_det

__all__ = ["imm_combine", "imm_predict", "imm_predict_combined", "imm_update", "mode_transition"]

FloatArray = NDArray[np.float64]


def mode_transition(dt_s: float, k: int, tau_s: float) -> FloatArray:
    """``Pi`` (K, K) over ``dt_s``: stay ``1 - s``, each other model ``s / (K - 1)`` (module doc)."""
    if k == 1:
        return np.ones((1, 1))
    s = (k - 1) / k * (1.0 - math.exp(-k * dt_s / ((k - 1) * tau_s)))
    pi = np.full((k, k), s / (k - 1))
    pi.flat[:: k + 1] = 1.0 - s                                # the diagonal
    return pi


def _cv_basis(d: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``I``, ``U`` (2D, 2D) with ``F(dt) = I + dt U``, and ``B`` (3, 2D, 2D) with
    ``Q_1(dt) = (dt^3/3, dt^2/2, dt) . B``: the [[I, 0], [0, 0]], [[0, I], [I, 0]] and
    [[0, 0], [0, I]] blocks."""
    e, z = np.eye(d), np.zeros((d, d))
    return (np.eye(2 * d), np.block([[z, e], [z, z]]),
            np.stack([np.block([[e, z], [z, z]]), np.block([[z, e], [e, z]]), np.block([[z, z], [z, e]])]))


_BASIS = {d: _cv_basis(d) for d in (2, 3)}


@functools.lru_cache(maxsize=16)
def _cv_blocks(dt: float, d: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``F(dt)``, ``F(dt)^T``, ``(F(dt) kron F(dt))^T`` ((2D)^2, (2D)^2) and ``Q_1(dt)``, not to
    be written to.  The Kronecker product applies ``P <- F P F^T`` to a batch of covariances
    as one matrix product of their flattened rows, ``vec(F P F^T) = (F kron F) vec(P)``
    (row-major vec): one BLAS call in place of two batched ones (measured at 30 covariances of
    6 x 6: 20 -> 9 us).  Memoised: stamps 1/15 s apart give only a handful of distinct float
    ``dt`` (7 over the speed benchmark's 500 updates), and :func:`imm_predict` and
    :func:`imm_predict_combined` of one tracker update ask for the same one."""
    eye, upper, basis = _BASIS[d]
    F = eye + dt * upper
    Q1 = np.array([dt**3 / 3.0, dt**2 / 2.0, dt]) @ basis.reshape(3, -1)
    return F, F.T.copy(), np.kron(F, F).T.copy(), Q1.reshape(eye.shape)


_mode_transition = functools.lru_cache(maxsize=16)(mode_transition)
""":func:`mode_transition` memoised (as :func:`_cv_blocks`, by ``dt``); its arrays are not to be written to."""


def _predict_covariances(P: FloatArray, FFt: FloatArray) -> FloatArray:
    """``F P F^T`` of every covariance of the batch ``P`` (..., 2D, 2D), with
    ``FFt = (F kron F)^T`` of :func:`_cv_blocks`."""
    n = P.shape[-1]
    return (P.reshape(-1, n * n) @ FFt).reshape(P.shape)


def _spread(w: FloatArray, x: FloatArray, P: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Moment match ``sum_i w[..., j, i] N(x_i, P_i)`` for every j: x (M, K, 2D), P (M, K, 2D, 2D),
    w (M, J, K) with rows summing to 1; returns (M, J, 2D), (M, J, 2D, 2D).

    Uses ``sum_i w_i (P_i + e_i e_i^T) - e e^T`` with ``e_i = x_i - c`` about the first
    model's mean ``c`` (a point close to all of them, so the subtraction loses nothing)."""
    m, k, n = x.shape
    c = x[:, :1]
    e = x - c                                                  # (M, K, 2D)
    A = (P + e[..., :, None] * e[..., None, :]).reshape(m, k, n * n)
    e0 = w @ e                                                 # (M, J, 2D)
    P0 = (w @ A).reshape(m, -1, n, n) - e0[..., :, None] * e0[..., None, :]
    return c + e0, P0


def imm_predict(x: FloatArray, P: FloatArray, mu: FloatArray, dt_s: float, q: FloatArray,
                tau_s: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mix and predict over ``dt_s`` (module doc): x (M, K, 2D), P (M, K, 2D, 2D), mu (M, K),
    q (K,) m^2/s^3; returns new arrays."""
    d = x.shape[-1] // 2
    if dt_s <= 0.0 or len(x) == 0:
        return x.copy(), P.copy(), mu.copy()
    F, Ft, FFt, Q1 = _cv_blocks(dt_s, d)
    Q = q[:, None, None] * Q1                                  # (K, 2D, 2D)
    k = mu.shape[1]
    if k == 1:
        return x @ Ft, _predict_covariances(P, FFt) + Q, mu.copy()
    pi = _mode_transition(dt_s, k, tau_s)
    c = mu @ pi                                                # (M, K)
    w = pi.T[None] * mu[:, None, :] / c[:, :, None]            # (M, K_j, K_i)
    x0, P0 = _spread(w, x, P)
    return x0 @ Ft, _predict_covariances(P0, FFt) + Q, c


def imm_predict_combined(x: FloatArray, P: FloatArray, c: FloatArray, dt_s: float,
                         q: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The moment-matched mixture after :func:`imm_predict` over ``dt_s`` from the one before
    it (module doc): x (M, 2D), P (M, 2D, 2D) combined before, c (M, K) the predicted mode
    probabilities (what :func:`imm_predict` returns as ``mu``), q (K,) m^2/s^3."""
    if dt_s <= 0.0 or len(x) == 0:
        return x.copy(), P.copy()
    F, Ft, FFt, Q1 = _cv_blocks(dt_s, x.shape[-1] // 2)
    return x @ Ft, _predict_covariances(P, FFt) + (c @ q)[:, None, None] * Q1


def imm_update(x: FloatArray, P: FloatArray, mu: FloatArray, z: FloatArray, R: FloatArray,
               inverse: tuple[FloatArray, FloatArray] | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Update every model of M tracks with positions z (M, D), covariances R (M, D, D) (or one
    (1, D, D) for all).

    x (M, K, 2D), P (M, K, 2D, 2D), mu (M, K); returns new arrays (module doc).  ``inverse``:
    ``S^-1`` (M, K, D, D) and ``det S`` (M, K) of ``S = H P H^T + R`` if the caller has them
    (:func:`fdl_robot.core.kalman.inverse_and_det`, which computes them otherwise).  The
    covariance update is ``P - K S K^T`` (= ``P - K H P``), with ``K H P = (P H^T) S^-1 (H P)``
    and ``P H^T = (H P)^T`` the first D columns of the symmetric ``P`` (a slice: a batch of
    products with the transposed view costs more).  The model weights
    ``mu_j L_j / sum_k mu_k L_k`` are computed as ``mu_j exp(-(l_j - min_k l_k) / 2)``,
    normalised, with ``l_j = d_j^2 + ln det S_j`` (the common factor ``(2 pi)^-D/2`` and the
    shift by the smallest ``l`` cancel; the shift keeps ``exp`` from underflowing to 0 for
    every model).
    """
    d = z.shape[-1]
    HP = P[..., :d, :]                                         # H P (M, K, D, 2D)
    Sinv, det = inverse_and_det(HP[..., :d] + R[:, None]) if inverse is None else inverse   # S = H P H^T + R
    y = z[:, None, :] - x[..., :d]                             # (M, K, D)
    KT = Sinv @ HP                                             # K^T (S, P symmetric)
    Sy = (Sinv @ y[..., None])[..., 0]                         # S^-1 y
    xn = x + (Sy[..., None, :] @ HP)[..., 0, :]                # x + K y = x + (H P)^T S^-1 y
    Pn = P - P[..., :, :d] @ KT                                # P - (P H^T) K^T
    Pn = 0.5 * (Pn + np.swapaxes(Pn, -1, -2))
    ell = np.sum(y * Sy, axis=-1) + np.log(det)                # l_j = d_j^2 + ln det S_j
    w = mu * np.exp(-0.5 * (ell - ell.min(axis=1, keepdims=True)))
    return xn, Pn, w / w.sum(axis=1, keepdims=True)


def imm_combine(x: FloatArray, P: FloatArray, mu: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The moment-matched mean (M, 2D) and covariance (M, 2D, 2D) of the mixture."""
    if mu.shape[1] == 1:
        return x[:, 0].copy(), P[:, 0].copy()
    xc, Pc = _spread(mu[:, None, :], x, P)
    return xc[:, 0], Pc[:, 0]

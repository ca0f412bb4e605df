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
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["imm_combine", "imm_predict", "imm_update", "mode_transition"]

FloatArray = NDArray[np.float64]


def mode_transition(dt_s: float, k: int, tau_s: float) -> FloatArray:
    """``Pi`` (K, K) over ``dt_s``: stay ``1 - s``, each other model ``s / (K - 1)`` (module doc)."""
    if k == 1:
        return np.ones((1, 1))
    s = (k - 1) / k * (1.0 - math.exp(-k * dt_s / ((k - 1) * tau_s)))
    pi = np.full((k, k), s / (k - 1))
    np.fill_diagonal(pi, 1.0 - s)
    return pi


def _cv_predict(x: FloatArray, P: FloatArray, dt: float, q: FloatArray, d: int) -> tuple[FloatArray, FloatArray]:
    """``F x``, ``F P F^T + q_j Q_1`` for x (..., K, 2D), P (..., K, 2D, 2D), q (K,), without
    building F (its blocks are I and dt I)."""
    xn = x.copy()
    xn[..., :d] += dt * x[..., d:]
    # F P F^T: rows then columns [p; v] -> [p + dt v; v]
    Pn = P.copy()
    Pn[..., :d, :] += dt * P[..., d:, :]
    Pn[..., :, :d] += dt * Pn[..., :, d:]
    eye = np.eye(d)
    q = q[:, None, None]
    Pn[..., :d, :d] += q * (dt**3 / 3.0 * eye)
    Pn[..., :d, d:] += q * (dt**2 / 2.0 * eye)
    Pn[..., d:, :d] += q * (dt**2 / 2.0 * eye)
    Pn[..., d:, d:] += q * (dt * eye)
    return xn, Pn


def imm_predict(x: FloatArray, P: FloatArray, mu: FloatArray, dt_s: float, q: FloatArray,
                tau_s: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mix and predict over ``dt_s`` (module doc): x (M, K, 2D), P (M, K, 2D, 2D), mu (M, K),
    q (K,) m^2/s^3; returns new arrays."""
    d = x.shape[-1] // 2
    if dt_s <= 0.0 or len(x) == 0:
        return x.copy(), P.copy(), mu.copy()
    pi = mode_transition(dt_s, mu.shape[1], tau_s)
    c = mu @ pi                                               # (M, K)
    w = mu[:, :, None] * pi[None] / c[:, None, :]             # (M, K_i, K_j)
    x0 = np.einsum("mij,mia->mja", w, x)
    dx = x[:, :, None, :] - x0[:, None, :, :]                 # (M, K_i, K_j, 2D)
    P0 = np.einsum("mij,miab->mjab", w, P) + np.einsum("mij,mija,mijb->mjab", w, dx, dx)
    xn, Pn = _cv_predict(x0, P0, dt_s, q, d)
    return xn, Pn, c


def imm_update(x: FloatArray, P: FloatArray, mu: FloatArray, z: FloatArray,
               R: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Update every model of M tracks with positions z (M, D), covariances R (M, D, D).

    x (M, K, 2D), P (M, K, 2D, 2D), mu (M, K); returns new arrays (module doc).  The
    covariance update is ``P - K S K^T``, symmetrised.
    """
    d = z.shape[-1]
    y = z[:, None, :] - x[..., :d]                            # (M, K, D)
    S = P[..., :d, :d] + R[:, None]                           # (M, K, D, D)
    Sinv = np.linalg.inv(S)
    PHt = P[..., :, :d]                                       # (M, K, 2D, D)
    gain = PHt @ Sinv                                         # (M, K, 2D, D)
    xn = x + np.einsum("mkad,mkd->mka", gain, y)
    Pn = P - gain @ np.swapaxes(PHt, -1, -2)
    Pn = 0.5 * (Pn + np.swapaxes(Pn, -1, -2))
    d2 = np.einsum("mkd,mkde,mke->mk", y, Sinv, y)
    log_l = -0.5 * (d2 + np.log(np.linalg.det(S))) + np.log(mu)
    log_l -= log_l.max(axis=1, keepdims=True)
    w = np.exp(log_l)
    return xn, Pn, w / w.sum(axis=1, keepdims=True)


def imm_combine(x: FloatArray, P: FloatArray, mu: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The moment-matched mean (M, 2D) and covariance (M, 2D, 2D) of the mixture."""
    xc = np.einsum("mk,mka->ma", mu, x)
    dx = x - xc[:, None]
    Pc = np.einsum("mk,mkab->mab", mu, P) + np.einsum("mk,mka,mkb->mab", mu, dx, dx)
    return xc, Pc

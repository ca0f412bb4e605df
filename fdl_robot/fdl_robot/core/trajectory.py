"""Sampling a joint trajectory as ros2_control's JointTrajectoryController does.

A trajectory is a list of knots (t_j, q_j): point j of a JointTrajectory is due at
t_j = header.stamp + time_from_start_j, and the controller starts it from the state it was
in when it took the message, (t_0, q_0) = (t_start, q_start). With positions only (no
velocities or accelerations), the controller interpolates linearly between knots and
holds the last one::

    q(t) = q_0                                              t <= t_0
    q(t) = q_j + (t - t_j) / (t_{j+1} - t_j) (q_{j+1} - q_j)   t_j <= t < t_{j+1}
    q(t) = q_m                                              t >= t_m

(JTC's "splines" interpolation with position-only points is linear; with velocities it is
cubic, with accelerations quintic; we send positions only.) Times in integer nanoseconds.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sample_linear"]


def sample_linear(knots_ns: np.ndarray, positions: np.ndarray, t_ns) -> np.ndarray:
    """q(t) (k, n) at times ``t_ns`` (k,) of knots ``knots_ns`` (m,) not decreasing and
    ``positions`` (m, n); see the module docstring. Equal knot times jump to the later one."""
    knots = np.asarray(knots_ns, dtype=np.int64)
    q = np.asarray(positions, dtype=np.float64)
    t = np.atleast_1d(np.asarray(t_ns, dtype=np.int64))
    j = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 1)   # t_j <= t
    nxt = np.minimum(j + 1, len(knots) - 1)
    span = (knots[nxt] - knots[j]).astype(np.float64)
    frac = np.where(span > 0, (t - knots[j]) / np.where(span > 0, span, 1.0), 0.0)
    frac = np.clip(frac, 0.0, 1.0)[:, None]
    return q[j] + frac * (q[nxt] - q[j])

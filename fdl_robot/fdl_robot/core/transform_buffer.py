"""A stamped history of a transform, looked up at a message's stamp (interpolation, SLERP).

A moving camera's pose T_base_cam changes with every joint state, so a measurement taken
at stamp t (an image's capture time) must be mapped with the transform *at t*, not with
the newest one. This module keeps the samples of one quantity by stamp and answers at t.

History
-------
:class:`StampHistory` holds samples (t_k, x_k), stamps t_k in integer nanoseconds, strictly
increasing, of a value x (a float array of fixed shape), and forgets those older than
``history_s`` before the newest. A new sample's stamp is classified against the newest
t_n by :func:`fdl_robot.core.timebase.classify_stamp`, as every stream of the stack is:

    t > t_n              stored
    t_n - J <= t <= t_n  out of order: rejected, counted (a late or duplicated sample)
    t < t_n - J          a new time base (time jumped back): the history is cleared,
                         counted, and starts again from this sample

Lookup at a stamp t
-------------------
With t_0 the oldest and t_n the newest stamp and ``tolerance_s`` = tau::

    t < t_0                       rejected: before the buffer
    t_n < t <= t_n + tau          the newest sample x_n (held; error <= speed * tau)
    t > t_n + tau                 rejected: too far past the newest
    t_k <= t <= t_k+1             interpolated between the bracketing samples, with
                                  s = (t - t_k) / (t_k+1 - t_k) in [0, 1]

A rejection raises :class:`StampUnavailable` with a one-line reason; it is never answered
with the newest sample instead. ``max_gap_s`` (optional) also rejects a stamp whose
bracketing samples are further apart than that (a stream that stalled: interpolating
across the gap would be a guess). An exact hit t = t_k returns x_k itself.

Interpolation of a transform
----------------------------
:class:`TransformBuffer` stores T_parent_child as a translation p (metres, parent axes)
and a unit quaternion q (x, y, z, w), and interpolates at s as tf2 does::

    p(s) = (1 - s) p_k + s p_k+1                                   (linear)
    q(s) = sin((1 - s) theta) / sin(theta) q_k + sin(s theta) / sin(theta) q_k+1   (SLERP)

with cos(theta) = q_k . q_k+1 after flipping q_k+1 to -q_k+1 when the dot product is negative
(q and -q are the same rotation; the flip takes the shorter arc, theta <= pi/2, i.e. a
rotation angle <= pi between the samples). For theta -> 0 the weights tend to (1 - s, s)
and the normalised linear blend is used. SLERP turns at a constant rate about one fixed
axis: the rotation from R_k to R(s) is s times the rotation from R_k to R_k+1.
"""
from __future__ import annotations

import bisect

import numpy as np
from numpy.typing import ArrayLike

from fdl_robot.core.geometry import Transform, matrix_to_quaternion
from fdl_robot.core.timebase import TIME_JUMP_S, StampOrder, classify_stamp

__all__ = ["StampUnavailable", "StampHistory", "TransformBuffer", "slerp"]

#: Below this angle between two quaternions (rad) SLERP is replaced by the normalised lerp.
_SLERP_MIN_ANGLE = 1e-9


class StampUnavailable(LookupError):
    """No value at the requested stamp; ``reason`` is the one-line explanation."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _ms(dt_ns: int) -> str:
    return f"{dt_ns * 1e-6:.1f} ms"


class StampHistory:
    """Samples x_k at strictly increasing stamps t_k (ns), the last ``history_s`` of them.

    ``tolerance_s``: how far past the newest sample a lookup is answered (by the newest);
    ``max_gap_s``: reject stamps between samples further apart than this (None: no limit);
    ``jump_s``: a stamp this far before the newest starts a new time base.
    ``out_of_order`` and ``new_time_bases`` count the rejected and the clearing samples.
    """

    def __init__(self, history_s: float = 10.0, tolerance_s: float = 0.0,
                 max_gap_s: float | None = None, jump_s: float = TIME_JUMP_S):
        if not history_s > 0:
            raise ValueError(f"history_s must be positive, got {history_s}")
        if not tolerance_s >= 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        if max_gap_s is not None and not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be positive or None, got {max_gap_s}")
        self.history_ns = round(history_s * 1e9)
        self.tolerance_ns = round(tolerance_s * 1e9)
        self.max_gap_ns = None if max_gap_s is None else round(max_gap_s * 1e9)
        self.jump_s = jump_s
        self._stamps: list[int] = []
        self._values: list[np.ndarray] = []
        self.out_of_order = 0
        self.new_time_bases = 0

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def oldest_ns(self) -> int | None:
        return self._stamps[0] if self._stamps else None

    @property
    def newest_ns(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def clear(self) -> None:
        self._stamps.clear()
        self._values.clear()

    def add(self, stamp_ns: int, value: ArrayLike) -> StampOrder:
        """Store ``value`` at ``stamp_ns`` unless out of order (module doc); the stamp's order.

        NEW_BASE clears the history first. Raises ValueError for a non-finite value.
        """
        x = np.array(value, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"sample at {stamp_ns} ns is not finite: {x}")
        if self._values and x.shape != self._values[-1].shape:
            raise ValueError(f"sample shape {x.shape} differs from the history's {self._values[-1].shape}")
        order = classify_stamp(int(stamp_ns), self.newest_ns, self.jump_s)
        if order is StampOrder.OUT_OF_ORDER:
            self.out_of_order += 1
            return order
        if order is StampOrder.NEW_BASE:
            self.new_time_bases += 1
            self.clear()
        x.flags.writeable = False
        self._stamps.append(int(stamp_ns))
        self._values.append(x)
        cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self.history_ns)
        if cut:
            del self._stamps[:cut], self._values[:cut]
        return order

    def bracket(self, stamp_ns: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(x_k, x_k+1, s): the samples around ``stamp_ns`` and its fraction s in [0, 1]
        between them (x_k is x_k+1 on an exact hit or within the tolerance past the newest).

        Raises :class:`StampUnavailable` (module doc).
        """
        t = int(stamp_ns)
        if not self._stamps:
            raise StampUnavailable("no samples yet")
        t0, tn = self._stamps[0], self._stamps[-1]
        if t < t0:
            raise StampUnavailable(f"stamp {_ms(t0 - t)} before the oldest sample "
                                   f"(the buffer holds {_ms(tn - t0)})")
        if t > tn:
            if t - tn > self.tolerance_ns:
                raise StampUnavailable(f"stamp {_ms(t - tn)} past the newest sample "
                                       f"(tolerance {_ms(self.tolerance_ns)})")
            return self._values[-1], self._values[-1], 0.0
        k = bisect.bisect_left(self._stamps, t)          # t_k-1 < t <= t_k
        if self._stamps[k] == t:
            return self._values[k], self._values[k], 0.0
        ta, tb = self._stamps[k - 1], self._stamps[k]
        if self.max_gap_ns is not None and tb - ta > self.max_gap_ns:
            raise StampUnavailable(f"the samples around the stamp are {_ms(tb - ta)} apart "
                                   f"(max gap {_ms(self.max_gap_ns)})")
        return self._values[k - 1], self._values[k], (t - ta) / (tb - ta)

    def interpolate(self, stamp_ns: int) -> np.ndarray:
        """x(t) = (1 - s) x_k + s x_k+1, componentwise (a new array)."""
        a, b, s = self.bracket(stamp_ns)
        return a.copy() if s == 0.0 else (1.0 - s) * a + s * b


def slerp(q0_xyzw: ArrayLike, q1_xyzw: ArrayLike, s: ArrayLike) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (x, y, z, w), shortest arc.

    q0, q1 (4,) or (N, 4) (normalised here), s scalar or (N,) in [0, 1]; returns (4,) or
    (N, 4), unit. s = 0 gives q0, s = 1 gives q1 or -q1 (the same rotation).
    """
    q0 = np.asarray(q0_xyzw, dtype=np.float64)
    q1 = np.asarray(q1_xyzw, dtype=np.float64)
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    s = np.asarray(s, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)                   # the shorter of the two arcs
    theta = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sin_theta = np.sin(theta)
    small = theta < _SLERP_MIN_ANGLE
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - s, np.sin((1.0 - s) * theta) / safe)
    w1 = np.where(small, s, np.sin(s * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


class TransformBuffer:
    """The history of one transform T_parent_child, answered at a stamp (module doc).

    ``add(stamp_ns, T)`` takes a :class:`~fdl_robot.core.geometry.Transform` or a 4x4
    matrix; ``lookup(stamp_ns)`` returns the Transform at that stamp or raises
    :class:`StampUnavailable`. The other arguments are :class:`StampHistory`'s.
    """

    def __init__(self, parent_frame: str, child_frame: str, history_s: float = 10.0,
                 tolerance_s: float = 0.0, max_gap_s: float | None = None, jump_s: float = TIME_JUMP_S):
        self.parent_frame = parent_frame
        self.child_frame = child_frame
        self.history = StampHistory(history_s, tolerance_s, max_gap_s, jump_s)

    def __len__(self) -> int:
        return len(self.history)

    def add(self, stamp_ns: int, T_parent_child: Transform | ArrayLike) -> StampOrder:
        """Store T_parent_child at ``stamp_ns`` as [p (3,), q_xyzw (4,)]; the stamp's order."""
        T = T_parent_child if isinstance(T_parent_child, Transform) else Transform.from_matrix(T_parent_child)
        return self.history.add(stamp_ns, np.concatenate([T.translation, matrix_to_quaternion(T.rotation)]))

    def lookup(self, stamp_ns: int) -> Transform:
        """T_parent_child at ``stamp_ns``: lerp of p, SLERP of q between the bracketing samples."""
        try:
            a, b, s = self.history.bracket(stamp_ns)
        except StampUnavailable as exc:
            raise StampUnavailable(f"{self.parent_frame} -> {self.child_frame}: {exc.reason}") from None
        if s == 0.0:
            return Transform.from_quaternion(a[3:], a[:3])
        return Transform.from_quaternion(slerp(a[3:], b[3:], s), (1.0 - s) * a[:3] + s * b[:3])

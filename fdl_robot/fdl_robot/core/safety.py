"""The safety layer between a policy and the robot: limits, non-finite rejection, watchdog.

Pure numpy, no ROS, no clocks: every function is given the times it needs.

Joint commands are absolute joint targets q (n,) in radians (a gripper entry is a
closure fraction, 0 open .. 1 closed, limited the same way). One control step of
length dt maps a policy's target to a command in three stages, in this order:

1. Non-finite rejection. A target with any NaN/inf entry is not partially trusted:
   the whole command becomes a *hold* at the previous position, q_cmd = q_prev.
2. Position limits (a box in joint space)::

       q_clip = min(max(q_target, q_lower), q_upper)            (elementwise)

3. Velocity limits. A joint may move at most v_max dt per step from the previous
   position q_prev (the measured state, or the previous point of a trajectory)::

       q_cmd = q_prev + clip(q_clip - q_prev, -v_max dt, +v_max dt)

   so |q_cmd - q_prev| / dt <= v_max for every joint. Joints are limited
   independently (the direction of motion in joint space may bend; each joint's speed
   is what the hardware limits).

If q_prev lies inside [q_lower, q_upper], so does q_cmd (it lies between q_prev and
q_clip). If q_prev is outside (a measured state past a configured limit), q_cmd moves
back toward the range at most v_max dt per step instead of jumping into it.

A :class:`Watchdog` decides whether inputs are fresh: an input last received at time
t_last is fresh at time t_now when |t_now - t_last| <= timeout_s (both on the same
clock; a time far in the future means the clock jumped and counts as stale).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["JointLimits", "SafetyResult", "SafetyLayer", "clip_to_limits",
           "limit_velocity", "limit_trajectory", "WatchdogStatus", "Watchdog"]


# --- limits ---------------------------------------------------------------------------

@dataclass(frozen=True)
class JointLimits:
    """Per-joint position box [lower_rad, upper_rad] and speed bound max_velocity_rad_s (n,)."""

    lower_rad: np.ndarray
    upper_rad: np.ndarray
    max_velocity_rad_s: np.ndarray

    def __post_init__(self):
        lower = np.asarray(self.lower_rad, dtype=np.float64).reshape(-1)
        upper = np.asarray(self.upper_rad, dtype=np.float64).reshape(-1)
        vmax = np.asarray(self.max_velocity_rad_s, dtype=np.float64).reshape(-1)
        if not lower.shape == upper.shape == vmax.shape:
            raise ValueError(f"limits must have one entry per joint; got lower {lower.shape}, "
                             f"upper {upper.shape}, max velocity {vmax.shape}")
        if not all(np.all(np.isfinite(x)) for x in (lower, upper, vmax)):
            raise ValueError("joint limits must be finite")
        if np.any(lower > upper):
            raise ValueError("lower limit above upper limit for joints "
                             f"{np.flatnonzero(lower > upper).tolist()}")
        if np.any(vmax <= 0):
            raise ValueError("max velocities must be positive")
        object.__setattr__(self, "lower_rad", lower)
        object.__setattr__(self, "upper_rad", upper)
        object.__setattr__(self, "max_velocity_rad_s", vmax)

    @property
    def n(self) -> int:
        return self.lower_rad.size

    def contains(self, q_rad: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """Whether each configuration (..., n) lies in the position box (within tol)."""
        q = np.asarray(q_rad, dtype=np.float64)
        return np.all((q >= self.lower_rad - tol) & (q <= self.upper_rad + tol), axis=-1)


def clip_to_limits(q_rad: np.ndarray, limits: JointLimits) -> np.ndarray:
    """q_clip = min(max(q, q_lower), q_upper), elementwise over (..., n)."""
    return np.clip(np.asarray(q_rad, dtype=np.float64), limits.lower_rad, limits.upper_rad)


def limit_velocity(q_target_rad: np.ndarray, q_prev_rad: np.ndarray,
                   max_velocity_rad_s: np.ndarray, dt_s: float) -> np.ndarray:
    """q_cmd = q_prev + clip(q_target - q_prev, -v_max dt, v_max dt), over (..., n)."""
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    q_prev = np.asarray(q_prev_rad, dtype=np.float64)
    step = np.asarray(max_velocity_rad_s, dtype=np.float64) * dt_s
    return q_prev + np.clip(np.asarray(q_target_rad, dtype=np.float64) - q_prev, -step, step)


def limit_trajectory(q_targets_rad: np.ndarray, q_start_rad: np.ndarray, limits: JointLimits,
                     dt_s: float) -> np.ndarray:
    """Position- and velocity-limit a trajectory of targets (k, n) sampled every dt_s.

    Point i is limited relative to point i-1 (point 0 relative to q_start)::

        q_0 = q_start + clip(clip_box(t_0) - q_start, +-v_max dt)
        q_i = q_{i-1} + clip(clip_box(t_i) - q_{i-1}, +-v_max dt)

    The recursion is sequential in i (a rate limiter) and vectorised over joints. A
    non-finite target row repeats the previous point (a hold for that step).
    """
    targets = np.atleast_2d(np.asarray(q_targets_rad, dtype=np.float64))
    q = np.asarray(q_start_rad, dtype=np.float64).copy()
    if not np.all(np.isfinite(q)):
        raise ValueError("trajectory start must be finite")
    finite = np.all(np.isfinite(targets), axis=1)
    boxed = clip_to_limits(np.where(finite[:, None], targets, 0.0), limits)
    step = limits.max_velocity_rad_s * dt_s
    out = np.empty_like(targets)
    for i in range(targets.shape[0]):
        if finite[i]:
            q = q + np.clip(boxed[i] - q, -step, step)
        out[i] = q
    return out


@dataclass(frozen=True)
class SafetyResult:
    """One filtered command and what the filter did to it.

    ``rejected``: the target was non-finite and ``q_cmd`` is the hold q_prev;
    ``position_clipped`` / ``velocity_limited``: joints (bool mask, n) changed by stage 2/3.
    """

    q_cmd_rad: np.ndarray
    rejected: bool
    position_clipped: np.ndarray
    velocity_limited: np.ndarray

    @property
    def modified(self) -> bool:
        return self.rejected or bool(self.position_clipped.any() or self.velocity_limited.any())


class SafetyLayer:
    """The three stages of the module docstring for one joint vector per control step."""

    def __init__(self, limits: JointLimits):
        self.limits = limits

    def filter(self, q_target_rad: np.ndarray, q_prev_rad: np.ndarray, dt_s: float) -> SafetyResult:
        """Map a policy target to a command at most v_max dt away from q_prev.

        ``q_prev_rad`` must be finite (it is what the robot holds on rejection);
        a non-finite q_prev raises ValueError.
        """
        q_prev = np.asarray(q_prev_rad, dtype=np.float64).reshape(-1)
        target = np.asarray(q_target_rad, dtype=np.float64).reshape(-1)
        n = self.limits.n
        if q_prev.size != n or target.size != n:
            raise ValueError(f"expected {n} joints, got target {target.size}, "
                             f"previous {q_prev.size}")
        if not np.all(np.isfinite(q_prev)):
            raise ValueError("previous position is not finite: cannot hold")
        none = np.zeros(n, dtype=bool)
        if not np.all(np.isfinite(target)):
            return SafetyResult(q_prev.copy(), True, none, none)
        q_clip = clip_to_limits(target, self.limits)
        q_cmd = limit_velocity(q_clip, q_prev, self.limits.max_velocity_rad_s, dt_s)
        return SafetyResult(q_cmd, False, q_clip != target, q_cmd != q_clip)

    def filter_trajectory(self, q_targets_rad: np.ndarray, q_prev_rad: np.ndarray,
                          dt_s: float) -> np.ndarray:
        """:func:`limit_trajectory` with this layer's limits."""
        return limit_trajectory(q_targets_rad, q_prev_rad, self.limits, dt_s)


# --- watchdog -------------------------------------------------------------------------

@dataclass(frozen=True)
class WatchdogStatus:
    """Freshness at one instant: ``ok`` when every input is fresh (and valid).

    ``stale``: names of inputs never received, invalid, or with |age| > timeout;
    ``ages_s``: now - last time per received input; ``entered``: this check started a
    stale episode (the previous check was ok, or it is the first check);
    ``recovered``: this check ended one.
    """

    ok: bool
    stale: tuple[str, ...]
    ages_s: dict[str, float]
    entered: bool = False
    recovered: bool = False


@dataclass
class Watchdog:
    """Freshness of the latest valid inputs, with stale-episode edges. No hidden clock.

    Each input is described by the time its last *valid* sample arrived (seconds on the
    caller's clock, or None if none has) and optionally whether the input is currently
    valid. An input is fresh at t_now when it is valid and

        |t_now - t_last| <= timeout_s

    (a t_last far in the future means the clock jumped backwards: stale as well).
    :meth:`check` is a pure function; :meth:`update` also tracks episodes so that the
    caller acts once when an episode starts (e.g. commands one hold) and once when it
    ends (e.g. resets a policy).
    """

    timeout_s: float
    _ok: bool | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")

    def check(self, now_s: float, last_s: dict[str, float | None],
              valid: dict[str, bool] | None = None) -> WatchdogStatus:
        valid = valid or {}
        ages = {k: now_s - t for k, t in last_s.items() if t is not None}
        stale = tuple(k for k, t in last_s.items()
                      if t is None or not valid.get(k, True) or abs(now_s - t) > self.timeout_s)
        return WatchdogStatus(not stale, stale, ages)

    def update(self, now_s: float, last_s: dict[str, float | None],
               valid: dict[str, bool] | None = None) -> WatchdogStatus:
        s = self.check(now_s, last_s, valid)
        entered = not s.ok and self._ok is not False
        recovered = s.ok and self._ok is False
        self._ok = s.ok
        return WatchdogStatus(s.ok, s.stale, s.ages_s, entered, recovered)

    def reset(self) -> None:
        """Forget the episode state (the next stale check counts as entering one)."""
        self._ok = None

"""The safety layer between a policy and the robot: limits, non-finite rejection, watchdog.

Pure numpy, no ROS, no clocks: every function is given the times and states it needs.

Joint commands are absolute joint targets q (n,) in radians (a gripper entry is a
closure fraction, 0 open .. 1 closed, limited the same way). One control step of
length dt maps a policy's target to a command in four stages, in this order:

1. Non-finite rejection. A target with any NaN/inf entry is not partially trusted:
   the whole command becomes a *hold* at the measured position, q_cmd = q_meas.
2. Position limits (a box in joint space)::

       q_clip = min(max(q_target, q_lower), q_upper)            (elementwise)

3. Rate limit (as ros2_control's joint limiters do). A joint's command may move at most
   v_max dt per step from the reference q_ref: the previous *command* q_cmd_prev when
   there is one and it lies within e_max of q_meas in every joint, else the measured
   position q_meas (first step, after a hold, or when the robot was moved away from its
   last command: reset, teleported in a simulator, pushed)::

       q_rate = q_ref + clip(q_clip - q_ref, -v_max dt, +v_max dt)

   so consecutive commands differ by at most v_max dt. Limiting relative to the
   measured state instead holds back a position servo that lags its target (a normal
   tracking error: ~0.1 rad for our simulated arm at 1 rad/s) to less than v_max.
4. Tracking-error bound. The command stays within e_max of the measured position::

       q_cmd = q_meas + clip(q_rate - q_meas, -e_max, +e_max)

   so a blocked or stalled joint is never commanded further than e_max from where it
   is, and no error accumulates that would jerk it when it is released.

Joints are limited independently (the direction of motion in joint space may bend;
each joint's speed is what the hardware limits). If q_ref and q_meas lie inside
[q_lower, q_upper], so does q_cmd (stage 3 stays between q_ref and q_clip, stage 4
between q_meas and that). If q_meas is outside (a measured state past a configured
limit) and there is no previous command, q_cmd moves back toward the range at most
v_max dt per step instead of jumping into it.

A :class:`Watchdog` decides whether inputs are fresh: an input last received at time
t_last is fresh at time t_now when |t_now - t_last| <= timeout_s (both on the same
clock; a time far in the future means the clock jumped and counts as stale).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fdl_robot.core.kinematics import UR5E_LIMITS_RAD
from fdl_robot.core.robot import GRIPPER_RANGE, JOINT_NAMES

__all__ = ["SafetyConfig", "JointLimits", "SafetyResult", "SafetyLayer", "clip_to_limits",
           "limit_velocity", "limit_tracking_error", "limit_trajectory", "WatchdogStatus",
           "Watchdog"]


# --- limits ---------------------------------------------------------------------------

def _floats(*values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the 7 joints of ``core.robot.JOINT_NAMES``.

    Position box: the UR5e's joint range (``core.kinematics.UR5E_LIMITS_RAD``) and the
    gripper's closure range (0 = open .. 1 = closed). ``max_velocity_rad_s``: consecutive
    commands differ by at most this times dt (gripper: closure fraction per second);
    ``max_tracking_error_rad``: largest |q_cmd - q_meas|. The defaults are policy_node's.
    """

    joint_lower_rad: tuple[float, ...] = _floats(*UR5E_LIMITS_RAD[:, 0], GRIPPER_RANGE[0])
    joint_upper_rad: tuple[float, ...] = _floats(*UR5E_LIMITS_RAD[:, 1], GRIPPER_RANGE[1])
    max_velocity_rad_s: tuple[float, ...] = (1.5, 1.5, 1.5, 2.0, 2.0, 2.0, 5.0)
    max_tracking_error_rad: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5)

    def __post_init__(self):
        self.limits()                                   # validates the four vectors
        if len(self.joint_lower_rad) != len(JOINT_NAMES):
            raise ValueError(f"limits must have {len(JOINT_NAMES)} entries ({', '.join(JOINT_NAMES)}), "
                             f"got {len(self.joint_lower_rad)}")

    def limits(self) -> "JointLimits":
        return JointLimits(self.joint_lower_rad, self.joint_upper_rad, self.max_velocity_rad_s,
                           self.max_tracking_error_rad)


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits (n,): position box [lower_rad, upper_rad], speed bound
    max_velocity_rad_s and the largest allowed |q_cmd - q_meas|, max_tracking_error_rad."""

    lower_rad: np.ndarray
    upper_rad: np.ndarray
    max_velocity_rad_s: np.ndarray
    max_tracking_error_rad: np.ndarray

    def __post_init__(self):
        lower = np.asarray(self.lower_rad, dtype=np.float64).reshape(-1)
        upper = np.asarray(self.upper_rad, dtype=np.float64).reshape(-1)
        vmax = np.asarray(self.max_velocity_rad_s, dtype=np.float64).reshape(-1)
        emax = np.asarray(self.max_tracking_error_rad, dtype=np.float64).reshape(-1)
        if not lower.shape == upper.shape == vmax.shape == emax.shape:
            raise ValueError(f"limits must have one entry per joint; got lower {lower.shape}, "
                             f"upper {upper.shape}, max velocity {vmax.shape}, "
                             f"max tracking error {emax.shape}")
        if not all(np.all(np.isfinite(x)) for x in (lower, upper, vmax, emax)):
            raise ValueError("joint limits must be finite")
        if np.any(lower > upper):
            raise ValueError("lower limit above upper limit for joints "
                             f"{np.flatnonzero(lower > upper).tolist()}")
        if np.any(vmax <= 0):
            raise ValueError("max velocities must be positive")
        if np.any(emax <= 0):
            raise ValueError("max tracking errors must be positive")
        object.__setattr__(self, "lower_rad", lower)
        object.__setattr__(self, "upper_rad", upper)
        object.__setattr__(self, "max_velocity_rad_s", vmax)
        object.__setattr__(self, "max_tracking_error_rad", emax)

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


def limit_tracking_error(q_cmd_rad: np.ndarray, q_meas_rad: np.ndarray,
                         max_tracking_error_rad: np.ndarray) -> np.ndarray:
    """q = q_meas + clip(q_cmd - q_meas, -e_max, e_max), over (..., n)."""
    q_meas = np.asarray(q_meas_rad, dtype=np.float64)
    e_max = np.asarray(max_tracking_error_rad, dtype=np.float64)
    return q_meas + np.clip(np.asarray(q_cmd_rad, dtype=np.float64) - q_meas, -e_max, e_max)


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

    ``rejected``: the target was non-finite and ``q_cmd`` is the hold q_meas;
    ``position_clipped`` / ``velocity_limited`` / ``tracking_limited``: joints (bool
    mask, n) changed by stage 2 / 3 / 4.
    """

    q_cmd_rad: np.ndarray
    rejected: bool
    position_clipped: np.ndarray
    velocity_limited: np.ndarray
    tracking_limited: np.ndarray

    @property
    def modified(self) -> bool:
        return self.rejected or bool(self.position_clipped.any() or self.velocity_limited.any()
                                     or self.tracking_limited.any())


class SafetyLayer:
    """The four stages of the module docstring for one joint vector per control step.

    Stateless: the caller passes the previous command (or None) every step.
    """

    def __init__(self, limits: JointLimits):
        self.limits = limits

    def filter(self, q_target_rad: np.ndarray, q_meas_rad: np.ndarray, dt_s: float,
               q_cmd_prev_rad: np.ndarray | None = None) -> SafetyResult:
        """Map a policy target to a command (stages 1-4 of the module docstring).

        ``q_meas_rad``, the measured position, must be finite (it is what the robot holds
        on rejection; ValueError otherwise). ``q_cmd_prev_rad`` is the command sent at the
        previous step, or None after a hold or at the start: the rate limit then applies
        relative to q_meas. A non-finite previous command, or one further than e_max from
        q_meas in any joint, counts as None.
        """
        q_meas = np.asarray(q_meas_rad, dtype=np.float64).reshape(-1)
        target = np.asarray(q_target_rad, dtype=np.float64).reshape(-1)
        n = self.limits.n
        if q_meas.size != n or target.size != n:
            raise ValueError(f"expected {n} joints, got target {target.size}, "
                             f"measured {q_meas.size}")
        if not np.all(np.isfinite(q_meas)):
            raise ValueError("measured position is not finite: cannot hold")
        q_ref = q_meas
        if q_cmd_prev_rad is not None:
            prev = np.asarray(q_cmd_prev_rad, dtype=np.float64).reshape(-1)
            if prev.size != n:
                raise ValueError(f"expected {n} joints, got previous command {prev.size}")
            if np.all(np.abs(prev - q_meas) <= self.limits.max_tracking_error_rad):
                q_ref = prev                                  # (False for NaN/inf too)
        none = np.zeros(n, dtype=bool)
        if not np.all(np.isfinite(target)):
            return SafetyResult(q_meas.copy(), True, none, none, none)
        q_clip = clip_to_limits(target, self.limits)
        q_rate = limit_velocity(q_clip, q_ref, self.limits.max_velocity_rad_s, dt_s)
        q_cmd = limit_tracking_error(q_rate, q_meas, self.limits.max_tracking_error_rad)
        return SafetyResult(q_cmd, False, q_clip != target, q_rate != q_clip, q_cmd != q_rate)

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

"""What the policy sees: the latest joint state and tracks, their freshness, target and bin.

Pure Python/numpy (no ROS): ``policy_node`` parses its messages into the plain values
below, calls :class:`PolicyInputs` and publishes what the control step decides; tests and
evaluation loops can drive the same object without a ROS graph.

Joint state (:mod:`fdl_robot.policy.joint_states`)
-----------
Joint states are merged by name from any number of messages and publishers (the arm from
joint_state_broadcaster, the gripper from its driver), with freshness kept per joint; the
gripper's native position becomes its closure through ``gripper_open_position`` /
``gripper_closed_position``. A message with a non-finite position makes its joints
*invalid* until a good one arrives; a stamp older than a joint's previous one is rejected,
unless time jumped back by more than a second (a new time base: the policy restarts).

Tracks (in ``base_frame``)
--------------------------
The target is chosen by :func:`select_target` among the tracks of ``target_class``: those
CONFIRMED, or LOST for at most ``target_max_lost_s``, the one with the most hits (ties: the
most recently updated, then the lowest id). An empty array or no track of the class means
*no target*. The bin is the most-hit CONFIRMED track of ``bin_class`` (the last one seen,
once it is lost), else the configured ``bin_position``; :meth:`PolicyInputs.reset` forgets
it.

Latency compensation (``target_prediction``)
--------------------------------------------
A track describes its object at the stamp ``t_s`` of the image it came from; the command
is decided ``h = t_now - t_s`` later (40-70 ms in the closed loop). With its velocity
``v`` and state covariance ``P = [[P_pp, P_pv], [P_vp, P_vv]]`` the target handed to the
policy is the constant-velocity prediction to the command time (``core.kalman``, without
process noise: the tracker's own model noise is not in the message)::

    p(t_now) = p + h v,     Sigma(t_now) = P_pp + h (P_pv + P_vp) + h^2 P_vv       (base_frame, m, m^2)

with ``h`` clipped to [0, ``target_prediction_max_s``], and only if the velocity is
significant, ``v^T P_vv^-1 v >= chi2.ppf(0.99, 3)`` (11.3): a static object's velocity
estimate is noise, and extrapolating it adds error. Otherwise ``p`` and ``P_pp`` are used
as they are. The observation carries the covariance (``target_covariance_m2``) and the
significant velocity (``target_v_base_m_s``, None otherwise: the ACT policy takes it as 0).

Freshness (one check, :class:`~fdl_robot.core.safety.Watchdog`)
----------------------------------------------------------------
An input received at t_last is fresh at t_now when |t_now - t_last| <= input_timeout_s
(arrival times on the caller's clock). The control step is:

* ``WAIT``: a joint has never been received, nothing to hold (:attr:`Step.stale` names
  the missing joints);
* ``HOLD``: a joint (or, if ``require_tracks``, the tracks) just became stale or invalid:
  command one hold at the last valid position (:attr:`Step.stale` says which);
* ``STALE``: still stale since the hold: command nothing;
* ``ACT``: every required input is fresh: run the policy on :attr:`Step.observation`. With
  ``require_tracks`` false, stale tracks only mean *no target*.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from fdl_robot.core.robot import ARM_JOINT_NAMES, BASE_FRAME, GRIPPER_JOINT_NAME, N_ARM_JOINTS
from fdl_robot.core.kalman import kf_predict
from fdl_robot.core.safety import Watchdog, WatchdogStatus
from fdl_robot.core.tracking import TrackState
from fdl_robot.policy.interface import PolicyObservation
from fdl_robot.policy.joint_states import JointStateError, JointStateMerger

__all__ = ["PolicyInputsConfig", "InputError", "add_joint_state", "TrackedObject", "StepKind", "Step", "PolicyInputs",
           "VELOCITY_SIGNIFICANCE", "predict_target", "select_target", "significant_velocity"]


@dataclass(frozen=True)
class PolicyInputsConfig:
    """How the policy's inputs are chosen and when they are fresh; defaults are policy_node's."""

    target_class: str = "red_cube"
    bin_position: tuple[float, float, float] = (0.55, 0.25, 0.0)   # base_frame, metres
    bin_class: str = "bin"
    input_timeout_s: float = 0.5
    require_tracks: bool = True
    target_max_lost_s: float = 0.3
    base_frame: str = BASE_FRAME
    #: Predict the target from its track's stamp to the command time (module doc).
    target_prediction: bool = True
    #: Longest prediction horizon, seconds.
    target_prediction_max_s: float = 0.2

    def __post_init__(self):
        if not self.target_class:
            raise ValueError("target_class is empty")
        if len(self.bin_position) != 3 or not np.all(np.isfinite(self.bin_position)):
            raise ValueError(f"bin_position must be 3 finite numbers, got {self.bin_position}")
        if not self.input_timeout_s > 0:
            raise ValueError(f"input_timeout_s must be positive, got {self.input_timeout_s}")
        if not self.target_max_lost_s >= 0:
            raise ValueError(f"target_max_lost_s must be >= 0, got {self.target_max_lost_s}")
        if not self.target_prediction_max_s >= 0:
            raise ValueError(f"target_prediction_max_s must be >= 0, got {self.target_prediction_max_s}")


class InputError(ValueError):
    """A rejected input; ``reason`` is the short key under which callers count it."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class TrackedObject(NamedTuple):
    """One track as the policy needs it: ``p_base_m`` (x, y, z) in base_frame, metres;
    ``v_base_m_s`` its velocity (m/s); ``covariance`` the (6, 6) covariance of [p; v]
    (m^2, m^2/s, m^2/s^2), None if unknown."""

    id: int
    state: int                       # a TrackState value
    class_name: str
    hits: int
    time_since_update_s: float
    p_base_m: tuple[float, float, float]
    v_base_m_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    covariance: np.ndarray | None = None


class StepKind(enum.Enum):
    WAIT = "wait"
    HOLD = "hold"
    STALE = "stale"
    ACT = "act"


@dataclass(frozen=True)
class Step:
    """What one control step does (see the module docstring).

    ``q_hold`` (7,): the last valid joint state (HOLD); ``observation``: the policy's input
    (ACT); ``source_stamp``: the stamp of the tracks that gave the target, or None without
    a target (ACT); ``stale``: the stale or invalid inputs, joints by name (HOLD, STALE),
    or the joints never received (WAIT); ``recovered``: this ACT step ends a stale episode.
    """

    kind: StepKind
    q_hold: np.ndarray | None = None
    observation: PolicyObservation | None = None
    source_stamp: Any = None
    stale: tuple[str, ...] = ()
    recovered: bool = False


#: chi2.ppf(0.99, 3): a velocity at least this far from zero (Mahalanobis^2) is significant.
VELOCITY_SIGNIFICANCE = 11.344866730144373


def significant_velocity(track: TrackedObject) -> np.ndarray | None:
    """The track's velocity (3,), m/s, if significant (``v^T P_vv^-1 v >= VELOCITY_SIGNIFICANCE``),
    else None; None without a covariance or with a singular one."""
    if track.covariance is None:
        return None
    v = np.asarray(track.v_base_m_s, dtype=np.float64)
    try:
        significant = v @ np.linalg.solve(np.asarray(track.covariance, dtype=np.float64)[3:, 3:], v)
    except np.linalg.LinAlgError:
        return None
    return v if significant >= VELOCITY_SIGNIFICANCE else None


def predict_target(track: TrackedObject, horizon_s: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(p (3,), Sigma (3, 3) or None): the track's position predicted ``horizon_s`` ahead
    (module doc, "Latency compensation"); unchanged for an insignificant velocity or no
    covariance."""
    return _extrapolate(track, significant_velocity(track), horizon_s)


def _extrapolate(track: TrackedObject, v: np.ndarray | None,
                 horizon_s: float) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict_target` given the track's significant velocity ``v`` (None: not significant)."""
    p = np.asarray(track.p_base_m, dtype=np.float64)
    if track.covariance is None:
        return p, None
    P = np.asarray(track.covariance, dtype=np.float64)
    if v is None or not horizon_s > 0:
        return p, P[:3, :3].copy()
    x, P_pred = kf_predict(np.r_[p, v], P, horizon_s, q=0.0)
    return x[:3], P_pred[:3, :3]


def select_target(tracks: Iterable[Any], class_name: str, max_lost_s: float):
    """The track to reach among ``tracks`` (anything with a Track's fields), or None.

    Eligible: ``class_name`` matches and the track is CONFIRMED, or LOST with
    ``time_since_update_s <= max_lost_s``. Chosen: the most ``hits``; ties go to the
    smaller ``time_since_update_s``, then the smaller ``id``.
    """
    eligible = [t for t in tracks if t.class_name == class_name and (
        t.state == TrackState.CONFIRMED
        or (t.state == TrackState.LOST and t.time_since_update_s <= max_lost_s))]
    if not eligible:
        return None
    return min(eligible, key=lambda t: (-t.hits, t.time_since_update_s, t.id))


def add_joint_state(joints: JointStateMerger, names: Sequence[str], positions: Sequence[float], stamp_ns: int,
                    now_s: float) -> bool:
    """``joints.add`` with a rejection raised as :class:`InputError` (what the nodes count);
    True if the message's stamp started a new time base."""
    try:
        return joints.add(names, positions, stamp_ns, now_s).new_time_base
    except JointStateError as exc:
        raise InputError(exc.reason, str(exc)) from None


class PolicyInputs:
    """The latest valid inputs of the policy and the control step they allow."""

    def __init__(self, config: PolicyInputsConfig = PolicyInputsConfig(),
                 joints: JointStateMerger | None = None):
        """``joints``: the joint-state merger (its names and gripper scale; default: the
        simulated cell's joints, closure as the gripper's native position)."""
        self.config = config
        self.watchdog = Watchdog(config.input_timeout_s)
        self.target_class = config.target_class
        self.seen_classes: set[str] = set()
        self._reported_unknown: set[str] = set()   # target classes reported as never seen
        self.joints = joints or JointStateMerger(ARM_JOINT_NAMES, GRIPPER_JOINT_NAME)
        self.tracks_arrival_s: float | None = None
        self.target: TrackedObject | None = None   # chosen track, or None
        self.target_stamp: Any = None              # source image stamp of its track array
        self.target_stamp_s: float | None = None   # the same in seconds on the caller's clock
        self.reset()

    def reset(self) -> None:
        """New episode: forget the bin, the freshness episode and the joint-state time base."""
        self.bin_p_base_m = np.asarray(self.config.bin_position, dtype=np.float64)
        self.watchdog.reset()
        self.joints.reset()                        # accept a new time base (a restarted sim or bag)

    @property
    def q(self) -> np.ndarray | None:
        """The last valid joint state (7,): arm rad and gripper closure; None until every
        joint has been received."""
        return self.joints.positions()

    # --- inputs -----------------------------------------------------------------------

    def add_joint_state(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int,
                        now_s: float) -> bool:
        """Take a joint state received at ``now_s`` (any subset of the joints); InputError if
        it is rejected. True if its stamp started a new time base (the caller restarts the
        policy: its chunks and velocities belong to the old time line)."""
        new_time_base = add_joint_state(self.joints, names, positions, stamp_ns, now_s)
        if new_time_base:
            self.watchdog.reset()
        return new_time_base

    def add_tracks(self, tracks: Sequence[TrackedObject], frame_id: str, stamp: Any,
                   now_s: float, stamp_s: float | None = None) -> bool:
        """Take a track array received at ``now_s``; InputError if it is rejected.

        ``stamp_s``: its stamp in seconds on the clock of ``now_s`` (None: the target is not
        predicted to the command time). Returns True the first time tracks arrive but none
        of ``target_class`` has ever been among them (the caller says so, once per class).
        """
        if tracks and not np.isfinite([t.p_base_m for t in tracks]).all():
            raise InputError("bad tracks", "non-finite track position")
        if frame_id not in ("", self.config.base_frame):
            raise InputError("bad tracks", f"frame '{frame_id}', expected {self.config.base_frame}")
        self.tracks_arrival_s = now_s
        self.seen_classes.update(t.class_name for t in tracks)
        self.target = select_target(tracks, self.target_class, self.config.target_max_lost_s)
        self.target_stamp, self.target_stamp_s = stamp, stamp_s
        if self.config.bin_class:
            bin_track = select_target(tracks, self.config.bin_class, max_lost_s=0.0)
            if bin_track is not None:
                self.bin_p_base_m = np.array(bin_track.p_base_m, dtype=np.float64)
        unknown = (self.target is None and bool(tracks) and self.target_class not in self.seen_classes
                   and self.target_class not in self._reported_unknown)
        if unknown:
            self._reported_unknown.add(self.target_class)
        return unknown

    def set_target_class(self, name: str) -> bool:
        """Pick another class; True if it changed (the target is void until the next tracks)."""
        if not name:
            raise ValueError("target_class is empty")
        if name == self.target_class:
            return False
        self.target_class, self.target = name, None
        return True

    # --- the control step ---------------------------------------------------------------

    def step(self, now_s: float) -> Step:
        """Decide this control step at ``now_s`` (see the module docstring)."""
        q = self.q
        if q is None:
            return Step(StepKind.WAIT, stale=self.joints.missing)
        status = self._freshness(now_s)
        if not status.ok:
            kind = StepKind.HOLD if status.entered else StepKind.STALE
            return Step(kind, q_hold=q, stale=status.stale)
        tracks_fresh = self.config.require_tracks or self.watchdog.check(
            now_s, {"tracks": self.tracks_arrival_s}).ok
        target = self.target if tracks_fresh else None
        v_target = None if target is None else significant_velocity(target)
        p_target, cov_target = self._target_at(target, v_target, now_s)
        observation = PolicyObservation(
            qpos_rad=q[:N_ARM_JOINTS], gripper=q[N_ARM_JOINTS], bin_p_base_m=self.bin_p_base_m,
            # the arm state's measurement time (its stamp), not this step's: the policy's
            # velocity is a finite difference over measurement times, and steps jitter
            stamp_s=now_s if (arm_ns := self.joints.arm_stamp_ns()) is None else arm_ns * 1e-9,
            target_p_base_m=p_target, target_covariance_m2=cov_target,
            target_v_base_m_s=v_target)
        return Step(StepKind.ACT, observation=observation,
                    source_stamp=None if target is None else self.target_stamp,
                    recovered=status.recovered)

    def _target_at(self, target: TrackedObject | None, v: np.ndarray | None, now_s: float) -> tuple[Any, Any]:
        """(position, covariance) of ``target`` (significant velocity ``v``) handed to the policy
        at ``now_s`` (module doc)."""
        if target is None:
            return None, None
        if not self.config.target_prediction or self.target_stamp_s is None:
            return target.p_base_m, None if target.covariance is None else np.asarray(target.covariance)[:3, :3]
        h = min(max(now_s - self.target_stamp_s, 0.0), self.config.target_prediction_max_s)
        return _extrapolate(target, v, h)

    def _freshness(self, now_s: float) -> WatchdogStatus:
        last = self.joints.arrivals()
        if self.config.require_tracks:
            last["tracks"] = self.tracks_arrival_s
        return self.watchdog.update(now_s, last, valid=self.joints.validity())

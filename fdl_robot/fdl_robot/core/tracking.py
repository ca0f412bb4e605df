"""A metric multi-object tracker: an IMM of constant-velocity filters per object (seed §29.4, issue 16).

Frames and units
----------------
Every vector lives in the *tracker's frame*, normally ``base_link`` (REP-103/105:
x forward, y left, z up): positions in metres (m), velocities in metres per second
(m/s), times in seconds (s) taken from message stamps.  ``D`` is the spatial
dimension: 3 (default) or 2 (objects on a plane).

Filter
------
Each track is an interacting multiple model (IMM) filter (:mod:`fdl_robot.core.imm`) over
``x = [p; v]`` (m, m/s): ``K`` constant-velocity models (``F(dt)`` of
:mod:`fdl_robot.core.kalman`) that differ only in the spectral density of their white-noise
acceleration, ``process_noise_q = (q_0, q_1, q_2)`` = (1e-4, 0.5, 10) m^2/s^3 by default:
an object at rest or drifting steadily (a conveyor; velocity random walk 1 cm/s per
second), smooth motion, and a manoeuvre (accelerations of a few m/s^2: ``sqrt(q dt)`` =
0.8 m/s of velocity change per 1/15 s).  The mode is a Markov chain with mean sojourn
``mode_switch_time_s`` = 0.5 s, its transition matrix computed from ``dt`` (so 10 Hz, 30 Hz
and jittered stamps describe the same model).  Each cycle mixes the models, predicts each
over ``dt``, updates each with the associated detection and reweights the models by their
likelihoods ``N(y_j; 0, S_j)``; the track's state ``x, P`` (what it reports, gates and ages
with) is the moment-matched mixture.  ``dt`` always comes from the stamps.  A detection
measures the position with ``R = measurement_std_m^2 I`` by default, or one covariance
per detection (e.g. from depth noise growing with range).  One value of
``process_noise_q`` is a single constant-velocity Kalman filter (the tracker before
issue 16).

Why an IMM and not adaptive process noise (measured on :mod:`fdl_robot.tracking_scenarios`,
5 seeds each, MOTA / IDF1, this tracker with one CV filter in place of the IMM): no single
``q`` served all regimes.  ``q`` = 0.1 (the old default) lost fast objects (0.3-0.85 m/s, up
to 4 m/s^2): 0.24 / 0.24.  ``q`` = 1 tracked them (0.970 / 0.972) but failed sensor outages
(gaps 0.71 / 0.48; not analysed further: its gates are wide after 1.5 s without input) and heavy
clutter (0.856 / 0.698); ``q`` = 3 and 10 cost the still scene its identities (IDF1 0.94,
0.69).  The IMM: fast 0.963 / 0.965, gaps 0.949 / 0.957, clutter 0.871 / 0.760, still
0.982 / 0.991.  Adaptive noise (scaling ``q`` from the normalised innovations) reacts only
after a manoeuvre has already produced large innovations, i.e. after the gate may have
lost the object; the IMM's manoeuvre model is always there, weighted by how well it
explains the data.  The models share the state, so mixing is a weighted sum (no state
augmentation), and all tracks and models are updated in a handful of batched numpy calls.

Association and gating
----------------------
For the true detection of a track the squared Mahalanobis distance of the innovation,
``d^2 = y^T S^-1 y``, is chi-square distributed with D degrees of freedom.  A detection
may be associated with a track only if ``d^2 <= gamma = chi2.ppf(gate_probability, D)``
(7.81 for D = 3 and 5.99 for D = 2 at the default 95 %; at 99 % tracks in clutter captured
false detections more often: clutter scenario MOTA 0.865 vs 0.882, 3 seeds).  The cost
of every candidate pair (below) is ``d^2``, and the assignment is solved exactly with the
gain semantics of :mod:`fdl_robot.core.assignment` (``maximize_matches=False``): it
maximises ``sum (gamma - d^2)`` over its pairs (global nearest neighbour, every unmatched detection or track costing
``gamma / 2``).  Maximising the *number* of pairs instead would, when one of two nearby
objects is missed, give the missed track the other object's detection and the other
track a nearby false positive.  Alternatively ``gating="euclidean"`` uses the plain
distance ``||y||`` (m) with the gate ``max_distance_m``.  In Mahalanobis mode
``max_distance_m`` is also a hard cap, so a long-coasting track, whose ``S`` has grown
large, cannot capture clutter far away (the IMM's manoeuvre model makes ``S`` grow fast).
The cap of a confirmed or lost track is ``max_distance_m + CAP_SPEED_S |v|`` (0.1 m at rest,
0.2 m at 0.5 m/s and above): a fast object's detection strays further from its
prediction; the cap of a tentative track is ``tentative_max_distance_m`` = 0.2 m (its
velocity is unknown, a newborn track has velocity 0, and 1 m/s at 10 Hz is 0.1 m between
frames).  Measured: a fixed cap of 0.1 m cost the fast scenario IDF1 0.87 (0.985 with
this rule), a fixed 0.2 m cost the two-camera hand-off of
``benchmarks/two_camera_tracking.py`` (objects coming back after 3 s unseen, with a huge
``S``, took a neighbour's detection).
A detection and a track whose class labels differ can never be associated.

Candidates, so that many objects stay cheap: only pairs within the cap of the track's
predicted position are candidates: dense below ``DENSE_PAIRS`` = 40000 (detection, track)
pairs (the distances of all pairs at once), a ``scipy.spatial.cKDTree`` over the detections
above (a query per track with its own cap; measured, the dense test is faster up to about
40000 pairs and the tree beyond, e.g. 0.92 vs 0.75 ms at 90000).  Both give the same
candidates.  Labels, ``d^2`` and the gate are computed for the candidates only, and
:func:`fdl_robot.core.assignment.sparse_gain_assignment` solves each connected component of
the candidate graph on its own (a component of one pair needs no solver).  The result is
the same as one dense solve; 1000 objects took 0.23 s and 130 MiB per update before, 38 ms
and 21 MiB after, 23 ms and 21 MiB with the tree over the detections and the per-track cap
(41 ms for the query per detection of radius ``tentative_max_distance_m``, measured side by
side; ``benchmarks/tracker_benchmark.py``).

Track lifecycle (:class:`TrackState`; durations in seconds of stamp time)
-------------------------------------------------------------------------
* Unmatched detections start **TENTATIVE** tracks (``x = [z, 0]``,
  ``P = diag(R, init_velocity_std_mps^2 I)``), ids 1, 2, 3, ... in order of birth.
* A track matched ``n_init`` times becomes **CONFIRMED**; a tentative track that misses
  an update that could see it is deleted at once (clutter rarely repeats itself).
* A confirmed track that is not matched by an update that could see it is **LOST**: it
  coasts on its prediction and is deleted once it has been missed for more than
  ``max_age_s`` (``time_since_update_s > max_age_s`` when every update can see every
  track, the default; below).  A match makes it confirmed again.
* A track that is *vague* is deleted before that: missed by at least two updates in a
  row that could see it, seen by every update since its last hit (not out of view, no
  outage), and with a position sigma (the largest axis of the covariance of its most
  probable model) above ``max_position_std_m`` = 0.1 m.  Such a track can no longer be
  told from clutter; left alone it captures clutter inside its wide gate and coasts on as a
  false track (a clutter-born track with a wild velocity, or a fast object's track after
  misses).  With the defaults a still object missed in view is deleted after about
  0.45 s, a manoeuvring one sooner; ``max_position_std_m = inf`` leaves deletion to
  ``max_age_s`` alone.
* Confirmed and lost tracks are associated before tentative ones, so a clutter-born
  tentative track cannot steal an established track's detection.

What the sensor could see
-------------------------
A miss is evidence that an object is gone only if the sensor could have seen it.  With
several cameras feeding one tracker, or a camera that moves, most tracks are outside the
view of most updates.  ``update(..., observable=f)`` takes a predicate on the predicted
track positions, ``f(p) -> bool (M,)`` for ``p`` (M, D) in the tracker's frame (e.g.
:meth:`fdl_robot.core.visibility.CameraView.sees`), saying which tracks this update's
sensor could have seen.  A track it could not see and that is not matched is predicted
but not penalised: it keeps its state (a confirmed track stays confirmed, a tentative
one is not deleted) and is not pruned (a tentative one only while it is younger than
``max_age_s`` since its last hit: clutter born where no update can see it must not live
forever).  Association still considers every track (a
detection of a track believed just outside the view is a detection of it).
``observable=None`` (the default) means every track is observable: the tracker of a
single fixed camera that sees the whole scene, and the behaviour before views existed.

``max_age_s`` counts the time a track has been missed while observable.  Its clock runs
from the last hit while every update since could see the track (so with
``observable=None`` it is exactly ``time_since_update_s``).  An unmatched update that
cannot see a CONFIRMED track (not missed since its last hit) pauses its clock, and the
next update that could see it and misses it restarts it from that update's stamp.  A
track that has already been missed in view (LOST), and a TENTATIVE one, keep their clock
running when they drop out of some update's view.  So a track that left the only camera's view survives any
absence, and on its return gets ``max_age_s`` to be matched again; a track of one camera
is not aged by a second camera that cannot see it.

Sensor outages
--------------
An interval of more than ``outage_s`` (0.5 s) between two updates is an outage of the
input (a camera or network hiccup, a paused bag), not evidence against the tracks: the
running miss clocks skip it (``miss_from_s`` moves forward by the interval), so a track
that is matched again when the input returns keeps its id however long the outage was,
and one that is not gets ``max_age_s`` of updates to be matched, as after a hit.  Its
prediction still spans the outage (its covariance grows; the tracks count as unseen for
the vague rule).  :meth:`MultiObjectTracker.predict` calls are no input and do not end an
outage (``predict`` keeps deleting by ``max_age_s`` of stamp time, as documented there).

One call of ``update(z_1..z_N, t)``
-----------------------------------
0. a stamp more than 1 s before the last one: start over (a new time base, below); one
   at most ``late_tolerance_s`` before it: process it in order by replaying (below);
1. predict every track from the previous stamp to ``t`` (IMM mixing and prediction; an
   outage since the last update moves the miss clocks, above);
2. view: which tracks the sensor could have seen, ``observable`` at the predicted
   positions (default all);
3. gate: the candidate (detection, track) pairs within the cap and the gate, and their cost;
4. assign: gated assignment per component, established tracks first, then tentative ones;
5. update the matched tracks (one batched Kalman update);
6. age the unmatched observable ones (confirmed -> lost; the miss clock);
7. birth: a tentative track per unmatched detection;
8. prune: missed observable tentative tracks, tentative ones unmatched for more than
   ``max_age_s``, tracks missed while observable for more than ``max_age_s``, and vague
   tracks.

Detections with a non-finite coordinate (NaN depth), one beyond ``MAX_RANGE_M``, or a non-finite
covariance or one whose variances exceed ``MAX_RANGE_M^2`` are
dropped before anything else (their count is in ``last_num_dropped``); they never
touch the filter.

Stamp order (:func:`fdl_robot.core.timebase.classify_stamp`, jump ``J = TIME_JUMP_S``
= 1 s), for a stamp ``t`` after the last processed one ``t_last``:

* ``t >= t_last``: in order (equal: a second detection set of the same instant, e.g. a
  second camera; no prediction).
* ``t_last - late_tolerance_s <= t < t_last``: a **late set** (a second camera whose
  pipeline is a few ms slower, a delayed message), an out-of-sequence measurement.  It is
  processed exactly as if it had arrived in stamp order: the tracker keeps its state before
  each call of the last ``late_tolerance_s`` (0.1 s) of stamps, rewinds to the state before
  the first call stamped after ``t``, processes the late set, and replays the later calls
  (updates and predictions, with their detections and views).  This is exact (the result
  equals in-order processing, not an approximation such as retrodiction), costs one copy
  of the track table per call (about 10 us for 10 tracks) and a replay of a few updates
  per late set.  Track ids born inside the replayed window may differ from the ones
  returned before the late set arrived.  A late ``predict`` raises
  :class:`OutOfOrderStamp` (it carries no information).
* ``t_last - J <= t < t_last - late_tolerance_s``: too late; raises
  :class:`OutOfOrderStamp` (a ``ValueError``) and leaves the tracks unchanged.  If the
  next update is again too late and *newer than the rejected one*, the stream's time line
  went back (by less than J: a restarted simulator, a bag seeked back) and that update
  starts a new time base, as below; before, every update until the stamps passed
  ``t_last`` again was rejected.
* ``t < t_last - J``: a **new time base** (a bag played again or with ``--loop``, a
  restarted simulator or camera): the tracker forgets every track and restarts as after
  :meth:`MultiObjectTracker.reset` (ids from 1), then processes the update;
  ``last_time_jump_s`` holds the size of the jump (s) for that one call, None otherwise.
  So a second play of a recording gives exactly the first play's tracks.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fdl_robot.core.assignment import sparse_gain_assignment
from fdl_robot.core.imm import imm_combine, imm_predict, imm_predict_combined, imm_update
from fdl_robot.core.kalman import (
    check_dim,
    check_state,
    gate_threshold,
    inverse_and_det,
    kf_predict,
    kf_update,
    mahalanobis_sq,
    transition_matrix,
)
from fdl_robot.core.timebase import TIME_JUMP_S, StampOrder, classify_stamp

__all__ = [
    "INIT_VELOCITY_STD_MPS",
    "ConstantVelocityKF",
    "MultiObjectTracker",
    "Observable",
    "OutOfOrderStamp",
    "Track",
    "TrackState",
    "TrackerConfig",
    "euclidean_distance",
]

FloatArray = NDArray[np.float64]

Observable = Callable[[FloatArray], ArrayLike]
"""``f(p) -> mask``: which of the track positions ``p`` (M, D) (m, tracker's frame) an
update's sensor could have seen, a boolean array (M,) (module doc, "What the sensor could
see")."""


class OutOfOrderStamp(ValueError):
    """A stamp older than the last processed one by at most ``TIME_JUMP_S``: a late or
    duplicated message, rejected (older still is a new time base, module doc)."""
Gating = Literal["mahalanobis", "euclidean"]

#: Detections farther than this from the tracker frame's origin (m, per axis), or with a variance above
#: its square, are dropped as invalid (they would overflow the filter).
MAX_RANGE_M = 1e4

INIT_VELOCITY_STD_MPS = 0.5
"""Prior velocity sigma (m/s) of a newborn track (its velocity mean is 0)."""

CV_PROCESS_NOISE_Q = 0.1
"""Default q (m^2/s^3) of a single :class:`ConstantVelocityKF` (the tracker's before the IMM)."""


class TrackState(enum.IntEnum):
    """Lifecycle state of a track; the values are ``fdl_robot_interfaces/msg/Track``'s.

    Compares and converts as that integer; prints as its lower-case name.
    """

    TENTATIVE = 0
    """Fewer than ``n_init`` hits."""
    CONFIRMED = 1
    """Passed ``n_init``, and matched in the latest update that could see it."""
    LOST = 2
    """Passed ``n_init``, missed by the latest update that could see it, coasting on its
    prediction."""

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


_STATES = tuple(TrackState)          # TrackState by value
# The values as plain ints, for the state column: comparing an int8 array with an int is
# cheaper than with an enum member, and a member look-up costs a class __getattr__ call.
_TENTATIVE, _CONFIRMED, _LOST = TrackState.TENTATIVE.value, TrackState.CONFIRMED.value, TrackState.LOST.value

CAP_SPEED_S = 0.2
"""The distance cap of an established track grows by its speed times this (s), up to
``tentative_max_distance_m`` (module doc, "Association and gating")."""

DENSE_PAIRS = 40_000
"""Up to this many (detection, track) pairs the distance cap is tested on all of them; above,
a k-d tree finds the pairs within each track's cap (module doc, "Candidates": the crossover
measured)."""


@dataclass(frozen=True)
class TrackerConfig:
    """How :class:`MultiObjectTracker` gates, filters and ages tracks; defaults are tracker_node's.

    The defaults suit objects tracked at 10-30 Hz, in metres.  Invalid values raise
    ValueError when the config is built.
    """

    measurement_std_m: float = 0.01
    """Default detection noise sigma (m) per axis: ``R = sigma^2 I`` (a detection may
    carry its own covariance instead)."""
    process_noise_q: tuple[float, ...] = (1e-4, 0.5, 10.0)
    """Spectral densities q_j (m^2/s^3) of the white-noise acceleration of the motion
    models the IMM mixes (module doc, "Filter"): at rest or steady drift, smooth motion, a
    manoeuvre.  A single value (a float or a 1-tuple) is one constant-velocity Kalman filter
    with that q, the tracker before the IMM."""
    mode_switch_time_s: float = 0.5
    """Mean time (s) the IMM's motion mode stays the same, tau of the mode Markov chain."""
    gating: Gating = "mahalanobis"
    """"mahalanobis" (cost d^2, gate chi2.ppf(gate_probability, D)) or "euclidean"
    (cost ||y|| in m, gate ``max_distance_m``)."""
    gate_probability: float = 0.95
    """Probability mass inside the Mahalanobis gate, in (0, 1)."""
    max_distance_m: float = 0.1
    """Euclidean gate (m) on the innovation ``||z - H x||`` (the distance to the
    *predicted* position, not the displacement) of a track at rest; it grows with the
    track's speed (``+ CAP_SPEED_S |v|``, up to ``tentative_max_distance_m``).  In
    Mahalanobis mode a hard cap as well (``inf`` disables the cap)."""
    tentative_max_distance_m: float = 0.2
    """The same cap (m) for TENTATIVE tracks, whose velocity is still unknown (a newborn
    track has velocity 0): 0.2 m picks up an object at 1 m/s at 10 Hz."""
    n_init: int = 3
    """Hits (matched detections, the first included) to confirm a track, >= 1."""
    max_age_s: float = 1.0
    """Seconds a confirmed track may coast unmatched before it is deleted, >= 0."""
    max_position_std_m: float = 0.1
    """A track missed twice in a row by updates that could see it, and seen by every update
    since its last hit, is deleted once its position sigma (m, the largest axis, under its
    most probable motion model) exceeds this: it can no longer be told from clutter (module
    doc, "Track lifecycle").  ``inf``: only ``max_age_s`` deletes."""
    outage_s: float = 0.5
    """An interval longer than this (s) without any update or prediction is a sensor
    outage: it does not count towards ``max_age_s`` (module doc, "Sensor outages")."""
    late_tolerance_s: float = 0.1
    """A detection set up to this many seconds older than the last processed stamp is
    late, not wrong: it is processed in stamp order by rewinding and replaying the recent
    updates (module doc, "Stamp order").  0 rejects every late set."""

    def __post_init__(self) -> None:
        if self.gating not in ("mahalanobis", "euclidean"):
            raise ValueError(f"gating must be 'mahalanobis' or 'euclidean', got {self.gating!r}")
        q = np.atleast_1d(np.asarray(self.process_noise_q, dtype=np.float64))
        if q.ndim != 1 or len(q) == 0 or not np.all(np.isfinite(q)) or np.any(q < 0.0):
            raise ValueError(f"process_noise_q must be finite values >= 0, got {self.process_noise_q}")
        object.__setattr__(self, "process_noise_q", tuple(q.tolist()))
        if not (float(self.n_init).is_integer() and self.n_init >= 1):
            raise ValueError(f"n_init must be an integer >= 1, got {self.n_init}")
        checks = (   # field, valid, what it must be
            ("measurement_std_m", np.isfinite(self.measurement_std_m) and self.measurement_std_m > 0.0,
             "finite and > 0"),
            ("mode_switch_time_s", np.isfinite(self.mode_switch_time_s) and self.mode_switch_time_s > 0.0,
             "finite and > 0"),
            ("gate_probability", 0.0 < self.gate_probability < 1.0, "in (0, 1)"),
            ("max_distance_m", self.max_distance_m > 0.0, "> 0"),
            ("tentative_max_distance_m", self.tentative_max_distance_m > 0.0, "> 0"),
            ("max_age_s", self.max_age_s >= 0.0, ">= 0"),
            ("max_position_std_m", self.max_position_std_m > 0.0, "> 0"),
            ("outage_s", self.outage_s > 0.0, "> 0"),
            ("late_tolerance_s", 0.0 <= self.late_tolerance_s < TIME_JUMP_S, f"in [0, {TIME_JUMP_S})"),
        )
        for name, valid, what in checks:
            if not valid:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)}")


def euclidean_distance(z: ArrayLike, positions: ArrayLike) -> FloatArray:
    """Pairwise distances ``||z_i - p_j||`` in metres (N x M)."""
    z = np.asarray(z, dtype=np.float64)
    p = np.asarray(positions, dtype=np.float64)
    if z.ndim != 2 or p.ndim != 2 or z.shape[1] != p.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) arrays, got {z.shape} and {p.shape}")
    return np.linalg.norm(z[:, None, :] - p[None, :, :], axis=-1)


# --------------------------------------------------------------- single filter


class ConstantVelocityKF:
    """One constant-velocity Kalman filter that takes ``dt`` from stamps.

    >>> kf = ConstantVelocityKF.from_measurement([0.5, 0.0, 0.1], stamp_s=0.0)
    >>> kf.step([0.51, 0.0, 0.1], stamp_s=0.1)   # predict to 0.1 s, then update

    Attributes ``x`` (2D,) and ``P`` (2D, 2D) are the state and its covariance at
    ``stamp_s``; positions in metres in the filter's frame.  ``q`` and
    ``measurement_std_m`` default to the tracker's (:class:`TrackerConfig`).
    """

    def __init__(
        self,
        x: ArrayLike,
        P: ArrayLike,
        stamp_s: float,
        q: float = CV_PROCESS_NOISE_Q,
        measurement_std_m: float = TrackerConfig.measurement_std_m,
    ) -> None:
        self.x, self.P, self.dim = check_state(x, P)
        if self.x.ndim != 1:
            raise ValueError(f"x must be 1-D (2D,), got {self.x.shape}")
        self.x, self.P = self.x.copy(), self.P.copy()
        self.stamp_s = float(stamp_s)
        self.q = float(q)
        self.measurement_std_m = float(measurement_std_m)

    @classmethod
    def from_measurement(
        cls,
        z: ArrayLike,
        stamp_s: float,
        q: float = CV_PROCESS_NOISE_Q,
        measurement_std_m: float = TrackerConfig.measurement_std_m,
        init_velocity_std_mps: float = INIT_VELOCITY_STD_MPS,
    ) -> ConstantVelocityKF:
        """Start at ``x = [z, 0]``, ``P = diag(sigma^2 I, init_velocity_std_mps^2 I)``."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 1 or z.shape[0] not in (2, 3):
            raise ValueError(f"z must have shape (D,) with D in (2, 3), got {z.shape}")
        d = z.shape[0]
        P = np.diag(np.r_[np.full(d, measurement_std_m**2), np.full(d, init_velocity_std_mps**2)])
        return cls(np.r_[z, np.zeros(d)], P, stamp_s, q, measurement_std_m)

    @property
    def position(self) -> FloatArray:
        """Position (m), shape (D,)."""
        return self.x[: self.dim].copy()

    @property
    def velocity(self) -> FloatArray:
        """Velocity (m/s), shape (D,)."""
        return self.x[self.dim :].copy()

    @property
    def covariance(self) -> FloatArray:
        """Position covariance (m^2), shape (D, D)."""
        return self.P[: self.dim, : self.dim].copy()

    def predict_to(self, stamp_s: float) -> None:
        """Predict to ``stamp_s``; raises ValueError if it is older than ``self.stamp_s``."""
        dt = float(stamp_s) - self.stamp_s
        if not np.isfinite(dt) or dt < 0.0:
            raise ValueError(f"stamp {stamp_s} s is older than the filter's {self.stamp_s} s")
        self.x, self.P = kf_predict(self.x, self.P, dt, self.q)
        self.stamp_s = float(stamp_s)

    def update(self, z: ArrayLike, R: ArrayLike | None = None) -> None:
        """Update with a position ``z`` (D,) (m); ``R`` defaults to ``sigma^2 I``."""
        if R is None:
            R = self.measurement_std_m**2 * np.eye(self.dim)
        self.x, self.P = kf_update(self.x, self.P, z, R)

    def step(self, z: ArrayLike, stamp_s: float, R: ArrayLike | None = None) -> None:
        """``predict_to(stamp_s)`` then ``update(z, R)``."""
        self.predict_to(stamp_s)
        self.update(z, R)


# ---------------------------------------------------------------------- tracks


@dataclass(frozen=True, eq=False)
class Track:
    """Snapshot of one track (copies: mutating it never affects the tracker).

    Vectors are in the tracker's frame (normally ``base_link``), metres and m/s.
    """

    id: int
    """Unique within a tracker: 1, 2, 3, ... in order of birth (restarts after reset)."""
    state: TrackState
    """TENTATIVE, CONFIRMED or LOST (see :class:`TrackState`)."""
    state_mean: FloatArray
    """Kalman state ``[p (m); v (m/s)]``, shape (2D,)."""
    state_covariance: FloatArray
    """Its covariance, shape (2D, 2D)."""
    hits: int
    """Number of detections associated so far (including the one that gave birth)."""
    age_s: float
    """Seconds since birth (stamp time)."""
    time_since_update_s: float
    """Seconds since the last associated detection (0 if matched in the latest update)."""
    label: Hashable | None = None
    """Class id or name (None if the detections carried none)."""
    score: float | None = None
    """Score of the last associated detection (None if not given)."""
    detection_index: int | None = None
    """Row of the latest ``update`` input matched to this track, or None."""

    @property
    def dim(self) -> int:
        return self.state_mean.shape[0] // 2

    @property
    def position(self) -> FloatArray:
        """Position (m), shape (D,)."""
        return self.state_mean[: self.dim]

    @property
    def velocity(self) -> FloatArray:
        """Velocity (m/s), shape (D,)."""
        return self.state_mean[self.dim :]

    @property
    def covariance(self) -> FloatArray:
        """Position covariance (m^2), shape (D, D)."""
        return self.state_covariance[: self.dim, : self.dim]

    @property
    def is_confirmed(self) -> bool:
        """True for CONFIRMED and LOST tracks (they passed ``n_init``)."""
        return self.state != TrackState.TENTATIVE


def _make_track(**values) -> Track:
    """``Track(**values)`` without the frozen dataclass's per-field ``object.__setattr__``
    (the same object, three times faster: the tracker builds one per track per update)."""
    track = object.__new__(Track)
    track.__dict__.update(values)
    return track


@dataclass
class _Detections:
    """The valid detections of one update, N rows, in the tracker's frame."""

    z: FloatArray                 # (N, D) positions (m)
    R: FloatArray                 # (N, D, D) covariances (m^2); (1, D, D) if uniform_R: one for all
    labels: NDArray[np.object_]   # (N,) class labels, None = unlabelled
    scores: FloatArray            # (N,) scores, NaN = none
    rows: NDArray[np.int64]       # (N,) row of each in the caller's input
    uniform_R: bool = False       # every R is the same (the default measurement_std_m^2 I)
    labelled: bool = False        # some label is not None
    scored: bool = False          # some score is given (else every one is NaN)

    def __len__(self) -> int:
        return len(self.z)

    def select(self, keep: NDArray) -> _Detections:
        """The detections at ``keep`` (boolean mask or indices)."""
        labels = self.labels[keep]
        return _Detections(self.z[keep], self.R if self.uniform_R else self.R[keep], labels, self.scores[keep],
                           self.rows[keep], self.uniform_R, self.labelled and any(v is not None for v in labels),
                           self.scored)


_REPLACED_COLUMNS = frozenset({"x", "P", "xm", "Pm", "mu", "id", "birth_s"})
"""The columns of :class:`_TrackTable` that are only ever replaced, never written into (the
filter's means, covariances and model probabilities, which every update replaces; the ids and
birth stamps, which never change), so that :meth:`_TrackTable.snapshot` may share them."""


@dataclass
class _TrackTable:
    """The live tracks as columns, one row per track in order of birth (so of id).

    Kalman updates, gating and aging work on whole columns; :meth:`select` and
    :meth:`append` are the only ways rows leave or join.
    """

    x: FloatArray                    # (M, 2D) state means [p (m); v (m/s)], the IMM's combined
    P: FloatArray                    # (M, 2D, 2D) state covariances, the IMM's combined
    xm: FloatArray                   # (M, K, 2D) the state mean of each motion model
    Pm: FloatArray                   # (M, K, 2D, 2D) its covariance
    mu: FloatArray                   # (M, K) model probabilities
    id: NDArray[np.int64]
    state: NDArray[np.int8]          # TrackState values
    hits: NDArray[np.int64]
    birth_s: FloatArray              # stamp of birth (s)
    last_hit_s: FloatArray           # stamp of the last associated detection (s)
    miss_from_s: FloatArray          # start of the miss clock (s), NaN = paused (module doc)
    misses: NDArray[np.int64]        # updates in a row that could see the track and missed it
    unseen: NDArray[np.bool_]        # unobservable (or in an outage) at some update since its last hit
    det_index: NDArray[np.int64]     # input row matched in the latest update, -1 if none
    label: NDArray[np.object_]
    score: FloatArray                # latest detection score, NaN = none

    @classmethod
    def born(
        cls, dets: _Detections, first_id: int, stamp_s: float, velocity_std_mps: float, n_init: int,
        models: int = 1,
    ) -> _TrackTable:
        """One new track per detection: ``x = [z, 0]``, ``P = diag(R, velocity_std^2 I)`` in
        every one of ``models`` models, equally probable; 1 hit."""
        n, d = dets.z.shape
        P0 = np.zeros((n, 2 * d, 2 * d))
        P0[:, :d, :d] = dets.R
        P0[:, d:, d:] = velocity_std_mps**2 * np.eye(d)
        x0 = np.hstack([dets.z, np.zeros((n, d))])
        state = _CONFIRMED if 1 >= n_init else _TENTATIVE
        return cls(
            x=x0,
            P=P0,
            xm=np.repeat(x0[:, None], models, axis=1),
            Pm=np.repeat(P0[:, None], models, axis=1),
            mu=np.full((n, models), 1.0 / models),
            id=np.arange(first_id, first_id + n, dtype=np.int64),
            state=np.full(n, state, dtype=np.int8),
            hits=np.ones(n, dtype=np.int64),
            birth_s=np.full(n, stamp_s),
            last_hit_s=np.full(n, stamp_s),
            miss_from_s=np.full(n, stamp_s),
            misses=np.zeros(n, dtype=np.int64),
            unseen=np.zeros(n, dtype=bool),
            det_index=dets.rows.astype(np.int64),
            label=dets.labels,
            score=dets.scores,
        )

    @classmethod
    def empty(cls, dim: int, models: int = 1) -> _TrackTable:
        no_detections = _Detections(np.zeros((0, dim)), np.zeros((0, dim, dim)),
                                    np.empty(0, dtype=object), np.zeros(0), np.zeros(0, dtype=np.int64))
        return cls.born(no_detections, first_id=1, stamp_s=0.0, velocity_std_mps=0.0, n_init=1, models=models)

    def __len__(self) -> int:
        return len(self.id)

    # vars(self) holds the columns in field order (the dataclass __init__ sets them so, and
    # the tracker only ever reassigns them): the positional arguments of a new table.

    def select(self, keep: NDArray) -> _TrackTable:
        """The rows at ``keep`` (boolean mask or indices), as a new table."""
        return _TrackTable(*[column[keep] for column in vars(self).values()])

    def copy(self) -> _TrackTable:
        return _TrackTable(*[column.copy() for column in vars(self).values()])

    def snapshot(self) -> _TrackTable:
        """A copy that shares the columns of :data:`_REPLACED_COLUMNS` with this table: the
        tracker replaces those with new arrays and never writes into them, so sharing is safe,
        and it saves their copies before every call (7 of the 16 copies, the largest among
        them; about 3 us of an update of 10 tracks)."""
        return _TrackTable(*[column if name in _REPLACED_COLUMNS else column.copy()
                             for name, column in vars(self).items()])

    def append(self, other: _TrackTable) -> _TrackTable:
        """This table's rows followed by ``other``'s, as a new table."""
        return _TrackTable(*[np.concatenate([a, b]) for a, b in zip(vars(self).values(), vars(other).values(),
                                                                     strict=True)])


# --------------------------------------------------------------------- tracker


class MultiObjectTracker:
    """Global-nearest-neighbour multi-object tracker with one CV Kalman filter per object.

    ``MultiObjectTracker(config)`` or ``MultiObjectTracker(**fields)``: keyword arguments
    that name :class:`TrackerConfig` fields override ``config`` (default
    ``TrackerConfig()``).  Besides the config, keyword-only:

    dim
        Spatial dimension D: 3 (default) or 2.
    init_velocity_std_mps
        Prior velocity sigma (m/s) of a newborn track (its velocity mean is 0).
    """

    def __init__(
        self,
        config: TrackerConfig | None = None,
        *,
        dim: int = 3,
        init_velocity_std_mps: float = INIT_VELOCITY_STD_MPS,
        **overrides,
    ) -> None:
        self.config = dataclasses.replace(TrackerConfig() if config is None else config, **overrides)
        self.dim = check_dim(dim)
        if not np.isfinite(init_velocity_std_mps) or init_velocity_std_mps <= 0.0:
            raise ValueError(f"init_velocity_std_mps must be finite and > 0, got {init_velocity_std_mps}")
        self.init_velocity_std_mps = float(init_velocity_std_mps)
        self.gate_mahalanobis_sq = gate_threshold(self.dim, self.config.gate_probability)
        self._q = np.asarray(self.config.process_noise_q, dtype=np.float64)
        self._default_R = self.config.measurement_std_m**2 * np.eye(self.dim)[None]    # (1, D, D)
        self.reset()

    # ------------------------------------------------------------- state access

    def reset(self) -> None:
        """Forget all tracks and the last stamp; ids restart at 1."""
        self._stamp_s: float | None = None
        self._next_id = 1
        self._tracks = _TrackTable.empty(self.dim, len(self._q))
        self.last_num_dropped = 0
        # recent calls for replaying a late set: (stamp, state before the call, call)
        self._history: list[tuple[float, tuple, tuple]] = []
        self._rejected_s: float | None = None      # stamp of the last set rejected as too late
        self._last_update_s: float | None = None   # stamp of the last update (predict excluded)
        # seconds the stamp jumped back in the latest update/predict, which therefore
        # started a new time base (module doc); None if it did not
        self.last_time_jump_s: float | None = None

    @property
    def stamp_s(self) -> float | None:
        """Stamp (s) of the last processed update/predict, None before the first."""
        return self._stamp_s

    def __len__(self) -> int:
        return len(self._tracks)

    def tracks(self) -> list[Track]:
        """All live tracks (tentative, confirmed and lost), ordered by id."""
        now = self._stamp_s if self._stamp_s is not None else 0.0
        t = self._tracks
        X, P = t.x.copy(), t.P.copy()                # the snapshots' rows are views of these copies
        return [
            _make_track(
                id=id_,
                state=_STATES[state],
                state_mean=x,
                state_covariance=p,
                hits=hits,
                age_s=age,
                time_since_update_s=since,
                label=label,
                score=None if math.isnan(score) else score,
                detection_index=row if row >= 0 else None,
            )
            for id_, state, x, p, hits, age, since, label, score, row in zip(
                t.id.tolist(), t.state.tolist(), X, P, t.hits.tolist(), (now - t.birth_s).tolist(),
                (now - t.last_hit_s).tolist(), t.label, t.score.tolist(), t.det_index.tolist(), strict=True)
        ]

    def confirmed_tracks(self, include_lost: bool = True) -> list[Track]:
        """Tracks that passed ``n_init``: CONFIRMED, plus LOST ones if ``include_lost``."""
        keep = (TrackState.CONFIRMED, TrackState.LOST) if include_lost else (TrackState.CONFIRMED,)
        return [t for t in self.tracks() if t.state in keep]

    # ------------------------------------------------------------------- input

    def _check_stamp(self, stamp_s: float, late_ok: bool = True) -> tuple[float, float | None]:
        """The stamp (s) and, if it starts a new time base, how far it jumped back (s).

        Raises ValueError for a non-finite stamp, :class:`OutOfOrderStamp` for a late one;
        changes nothing (:meth:`_start_time_base` applies a jump).
        """
        stamp = float(stamp_s)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp_s must be finite, got {stamp_s}")
        if self._stamp_s is None or stamp >= self._stamp_s:   # in order (classify_stamp would say so:
            return stamp, None                                  # x -> round(x * 1e9) is monotonic)
        order = classify_stamp(round(stamp * 1e9), round(self._stamp_s * 1e9), allow_equal=True)
        if order is StampOrder.NEW_BASE:
            return stamp, self._stamp_s - stamp
        if order is StampOrder.IN_ORDER or (late_ok and self._replay_from(stamp) is not None):
            return stamp, None
        too_late = stamp < self._stamp_s - self.config.late_tolerance_s
        if too_late and self._rejected_s is not None and stamp > self._rejected_s:
            return stamp, self._stamp_s - stamp       # the old time line goes on: a new base
        if too_late:
            self._rejected_s = stamp
        raise OutOfOrderStamp(
            f"out-of-order stamp {stamp:.6f} s is older than the last processed "
            f"{self._stamp_s:.6f} s by more than late_tolerance_s; detections rejected"
        )

    def _replay_from(self, stamp: float) -> int | None:
        """Index of the first recorded call after ``stamp`` if a late set at ``stamp`` can be
        replayed (within ``late_tolerance_s`` and the history), else None."""
        if self._stamp_s is None or stamp >= self._stamp_s or stamp < self._stamp_s - self.config.late_tolerance_s:
            return None
        for i, (t, _, _) in enumerate(self._history):
            if t > stamp:
                return i
        return None

    def _record(self, stamp: float, call: tuple) -> None:
        """Keep the state before this call (and the call) while it is within the tolerance."""
        if self.config.late_tolerance_s <= 0.0:
            return
        horizon = stamp - self.config.late_tolerance_s
        while self._history and self._history[0][0] < horizon:
            self._history.pop(0)
        self._history.append((stamp, self._snapshot(), call))

    def _snapshot(self) -> tuple:
        return (self._tracks.snapshot(), self._stamp_s, self._next_id, self._last_update_s)

    def _restore(self, snap: tuple) -> None:
        tracks, self._stamp_s, self._next_id, self._last_update_s = snap
        self._tracks = tracks.copy()

    def _start_time_base(self, jump_s: float | None) -> None:
        """After a jump back (``jump_s`` not None): forget everything, as :meth:`reset`."""
        if jump_s is not None:
            dropped = self.last_num_dropped
            self.reset()
            self.last_num_dropped = dropped
        self.last_time_jump_s = jump_s

    def _check_detections(
        self,
        positions: ArrayLike,
        labels: Sequence[Hashable | None] | NDArray | None,
        scores: ArrayLike | None,
        covariances: ArrayLike | None,
    ) -> _Detections:
        """Validate shapes; return the finite rows within ``MAX_RANGE_M`` of the frame's origin only
        (``last_num_dropped``: the others; a position of 1e150 m would overflow the filter)."""
        d = self.dim
        z = np.asarray(positions, dtype=np.float64)
        if z.size == 0:
            z = z.reshape(0, d)
        if z.ndim != 2 or z.shape[1] != d:
            raise ValueError(f"positions must have shape (N, {d}), got {z.shape}")
        n = len(z)
        lab = _label_column(labels, n)
        sc = _score_column(scores, n)
        in_range = (np.abs(z) <= MAX_RANGE_M).all(axis=1)           # False for NaN and inf too
        if covariances is None:                      # the default R: finite, positive definite
            ok = in_range
            R = self._default_R                      # (1, D, D), for every detection
        else:
            R = _covariance_column(covariances, n, d)
            ok = (in_range & np.isfinite(R).all(axis=(1, 2))
                  & (np.abs(np.diagonal(R, axis1=1, axis2=2)) <= MAX_RANGE_M**2).all(axis=1))
            R = R[ok]
            _check_positive_definite(R)
        rows = np.flatnonzero(ok)
        self.last_num_dropped = int(n - len(rows))
        if len(rows) < n:
            z, lab, sc = z[ok], lab[ok], sc[ok]
        return _Detections(z, R, lab, sc, rows, uniform_R=covariances is None,
                           labelled=labels is not None and any(v is not None for v in lab),
                           scored=scores is not None)

    # -------------------------------------------------------------------- steps

    def predict(self, stamp_s: float) -> list[Track]:
        """Coast all tracks to ``stamp_s`` without detections and return them.

        No track counts as missed (states do not change), but tracks whose miss clock
        (module doc; ``time_since_update_s`` if every update could see them) now exceeds
        ``max_age_s`` are deleted.  Stamp order as for :meth:`update` (a late stamp
        raises, a jump back starts a new time base).
        """
        stamp, jump_s = self._check_stamp(stamp_s, late_ok=False)
        self._start_time_base(jump_s)
        self._run(stamp, ("predict",))
        return self.tracks()

    def association_cost(
        self, z: ArrayLike, R: ArrayLike, track_index: ArrayLike | None = None
    ) -> tuple[FloatArray, float]:
        """Cost matrix (detections x tracks) at the current prediction, and its gate (dense:
        for inspection; ``update`` computes the same costs for the candidate pairs only).

        Mahalanobis: ``d^2`` with gate ``chi2.ppf(p, D)``, plus ``inf`` where ``||y||``
        exceeds the track's distance cap (module doc).  Euclidean: ``||y||`` (m), ``inf``
        beyond the cap.  Labels are not looked at.
        """
        t = self._tracks
        idx = np.arange(len(t)) if track_index is None else np.asarray(track_index)
        dist = euclidean_distance(z, t.x[idx, : self.dim])
        over = dist > self._caps()[idx][None, :]
        if self.config.gating == "euclidean":
            return np.where(over, np.inf, dist), self._gate()
        cost = mahalanobis_sq(z, R, t.x[idx], t.P[idx])
        cost[over] = np.inf
        return cost, self.gate_mahalanobis_sq

    def _caps(self) -> FloatArray:
        """The distance cap (m) of every track (M,): ``tentative_max_distance_m`` for tentative
        ones, else ``max_distance_m + CAP_SPEED_S |v|``, at most the larger of the two."""
        t, d, c = self._tracks, self.dim, self.config
        v = t.x[:, d:]
        moving = np.minimum(c.max_distance_m + CAP_SPEED_S * np.sqrt(np.einsum("md,md->m", v, v)),
                            max(c.max_distance_m, c.tentative_max_distance_m))
        return np.where(t.state == _TENTATIVE, c.tentative_max_distance_m, moving)

    def update(
        self,
        positions: ArrayLike,
        stamp_s: float,
        labels: Sequence[Hashable | None] | NDArray | None = None,
        scores: ArrayLike | None = None,
        covariances: ArrayLike | None = None,
        observable: Observable | None = None,
    ) -> list[Track]:
        """Process one set of detections taken at ``stamp_s`` and return the live tracks.

        Parameters
        ----------
        positions
            (N, D) detected positions (m) in the tracker's frame; N may be 0.  Rows
            with a non-finite coordinate are dropped (see ``last_num_dropped``).
        stamp_s
            Time of the detections (s), e.g. the source image stamp.  ``dt`` to the
            previous update comes from it.  Equal to the last stamp: no prediction
            (a second detection set for the same instant).  Older by at most
            ``TIME_JUMP_S``: :class:`OutOfOrderStamp`, and the tracker is left
            unchanged; older still: a new time base (tracks forgotten, module doc).
        labels
            Optional class ids/names (length N).  A detection never matches a track
            of a different label; ``None`` matches anything.  A track keeps the label
            it was born with (an unlabelled track adopts its first label).
        scores
            Optional detection scores (N,); a track reports its latest one.
        covariances
            Optional measurement covariances (N, D, D) or one (D, D) for all (m^2);
            default ``measurement_std_m^2 I``.  Rows with non-finite entries dropped.
        observable
            Optional predicate ``f(p) -> (M,) bool`` on the tracks' positions predicted to
            ``stamp_s`` (M, D): which tracks the sensor of these detections could have
            seen, e.g. ``functools.partial(view.sees, margin_px=20)`` of a
            :class:`fdl_robot.core.visibility.CameraView`.  An unmatched track outside it
            keeps its state and is not pruned (module doc).  None: every track is
            observable.  It is called once, before the tracker changes; a result of the
            wrong shape raises ValueError and leaves the tracker unchanged.

        Returns
        -------
        list[Track]
            All live tracks (tentative, confirmed, lost), ordered by id.  Use
            :meth:`confirmed_tracks` for the established ones.
        """
        stamp, jump_s = self._check_stamp(stamp_s)
        dets = self._check_detections(positions, labels, scores, covariances)
        replay = self._replay_from(stamp)
        if replay is not None:                        # a late set: rewind, then replay
            self._restore(self._history[replay][1])
            later = [(t, c) for t, _, c in self._history[replay:]]
            del self._history[replay:]
            for t, call in [(stamp, ("update", dets, observable)), *later]:
                self._run(t, call)
            self._rejected_s = None
            return self.tracks()
        self._observable(observable, stamp, jump_s)   # 2. view, checked first: may raise
        self._start_time_base(jump_s)                 # 0. a jump back: start over
        self._run(stamp, ("update", dets, observable))
        self._rejected_s = None
        return self.tracks()

    def _run(self, stamp: float, call: tuple) -> None:
        """One recorded call: ``("predict",)`` or ``("update", detections, observable)``."""
        self._record(stamp, call)
        if call[0] == "predict":
            self._predict_to(stamp)
            self._prune(stamp, observable=np.zeros(len(self._tracks), dtype=bool))   # none missed
            return
        _, dets, observable = call
        self._age_outage(stamp)
        seen = self._observable(observable, stamp, None)   # 2. view
        self._predict_to(stamp)                       # 1. predict
        inverses = self._innovation_inverses(dets)
        det, trk = self._assign(*self._candidates(dets, inverses))   # 3. gate, 4. assign
        self._update_matched(dets, det, trk, stamp, inverses)        # 5. update matched
        self._age_unmatched(trk, seen, stamp)         # 6. age unmatched observable
        self._birth(dets, det, stamp)                 # 7. birth
        self._prune(stamp, seen)                      # 8. prune

    def _age_outage(self, stamp: float) -> None:
        """An interval longer than ``outage_s`` since the last update is an outage: running miss
        clocks skip it (module doc, "Sensor outages")."""
        last = self._last_update_s
        self._last_update_s = stamp
        if last is not None and stamp - last > self.config.outage_s:
            self._tracks.miss_from_s += stamp - last
            self._tracks.unseen[:] = True

    def _predict_to(self, stamp: float) -> None:
        """1. Kalman-predict every track from the last stamp to ``stamp`` (dt from stamps)."""
        if self._stamp_s is not None:
            dt = stamp - self._stamp_s
            t = self._tracks
            if dt > 0.0 and len(t):
                t.xm, t.Pm, t.mu = imm_predict(t.xm, t.Pm, t.mu, dt, self._q, self.config.mode_switch_time_s)
                t.x, t.P = imm_predict_combined(t.x, t.P, t.mu, dt, self._q)
        self._stamp_s = stamp

    def _observable(self, observable: Observable | None, stamp: float,
                     jump_s: float | None) -> NDArray[np.bool_] | None:
        """2. Mask (M,) of the tracks the sensor could see, ``observable`` at the positions
        predicted to ``stamp`` (the mean of step 1, ``p + dt v``); None if ``observable`` is
        None: every track (the steps that take the mask read None so, without building it).

        Evaluated before steps 0-1 change anything: a wrong result raises ValueError.
        After a jump back (``jump_s``) there are no tracks left to ask about.
        """
        if observable is None:
            return None
        m = 0 if jump_s is not None else len(self._tracks)
        x = self._tracks.x[:m]
        if self._stamp_s is not None and m:
            x = x @ transition_matrix(stamp - self._stamp_s, self.dim).T
        mask = np.asarray(observable(x[:, : self.dim].copy()))
        if mask.shape != (m,) or mask.dtype != np.bool_:
            raise ValueError(f"observable must return a boolean array of shape ({m},), got "
                             f"{mask.dtype} {mask.shape}")
        return mask

    def _innovation_inverses(self, dets: _Detections) -> tuple[FloatArray, FloatArray] | None:
        """``S^-1`` (M, 1 + K, D, D) and ``det S`` (M, 1 + K) of ``S = H P H^T + R`` for every
        track's combined state (index 0: the gate) and each of its models (1..K: the update),
        when one R serves every detection (the default covariance): then S does not depend on
        which detection a track gets, and all M (1 + K) matrices are inverted in one closed-form
        call instead of two (about 6 us of an update of 10 tracks, measured).  None otherwise
        (per-detection covariances, Euclidean gating, no tracks or no detections)."""
        t, d = self._tracks, self.dim
        if not dets.uniform_R or not len(t) or not len(dets) or self.config.gating == "euclidean":
            return None
        S = np.concatenate([t.P[:, None, :d, :d], t.Pm[:, :, :d, :d]], axis=1) + dets.R
        return inverse_and_det(S)

    def _candidates(self, dets: _Detections, inverses: tuple[FloatArray, FloatArray] | None = None
                    ) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatArray]:
        """3. The candidate (detection, track) pairs and their costs: pairs within the track's
        distance cap (:meth:`_caps`; all pairs of a small problem, a k-d tree query of a large one),
        of compatible labels, inside the gate; Mahalanobis ``d^2`` computed for those only (with
        the tracks' ``S^-1`` of :meth:`_innovation_inverses` if given)."""
        t, d = self._tracks, self.dim
        cap = max(self.config.max_distance_m, self.config.tentative_max_distance_m)
        n, m = len(dets), len(t)
        if n == 0 or m == 0:
            return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0)
        pos, caps = t.x[:, :d], self._caps()
        if n * m <= DENSE_PAIRS or not math.isfinite(cap):
            # coordinate-major (D, N, M), so that numpy's inner loops run over M, not over D = 3
            diff = np.ascontiguousarray(dets.z.T)[:, :, None] - np.ascontiguousarray(pos.T)[:, None, :]
            dist = np.sqrt(np.einsum("dnm,dnm->nm", diff, diff))
            i, j = np.nonzero(dist <= caps)
            y, dist = diff[:, i, j].T, dist[i, j]
        else:
            from scipy.spatial import cKDTree

            near = cKDTree(dets.z).query_ball_point(pos, r=caps)       # per track, within its cap
            j = np.repeat(np.arange(m), [len(v) for v in near])
            i = np.fromiter(itertools.chain.from_iterable(near), dtype=np.intp, count=len(j))
            y = dets.z[i] - pos[j]
            dist = np.sqrt(np.einsum("pd,pd->p", y, y))
            ok = dist <= caps[j]
            i, j, y, dist = i[ok], j[ok], y[ok], dist[ok]
        if dets.labelled:                             # an unlabelled detection is compatible with any track
            ok = _labels_compatible(dets.labels[i], t.label[j])
            i, j, y, dist = i[ok], j[ok], y[ok], dist[ok]
        if self.config.gating == "euclidean":
            return i, j, dist
        if inverses is not None:
            Sinv = inverses[0][j, 0]
        elif dets.uniform_R:
            Sinv = inverse_and_det(t.P[:, :d, :d] + dets.R)[0][j]       # one inverse per track
        else:
            Sinv = inverse_and_det(t.P[j, :d, :d] + dets.R[i])[0]
        return i, j, np.einsum("pd,pde,pe->p", y, Sinv, y)

    def _gate(self) -> float:
        """The assignment's gate; in Euclidean mode every candidate is already within its cap."""
        if self.config.gating == "euclidean":
            return max(self.config.max_distance_m, self.config.tentative_max_distance_m)
        return self.gate_mahalanobis_sq

    def _assign(self, i: NDArray[np.intp], j: NDArray[np.intp], cost: FloatArray
                ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """4. Gated assignment (gain semantics, on the candidates only), confirmed and lost
        tracks first, then tentative ones; (detection, track) indices."""
        gate = self._gate()
        tentative = self._tracks.state[j] == _TENTATIVE
        if not tentative.any():
            return sparse_gain_assignment(i, j, cost, gate)
        r1, c1 = sparse_gain_assignment(i[~tentative], j[~tentative], cost[~tentative], gate)
        used = np.zeros(len(i) and int(i.max()) + 1, dtype=bool)
        used[r1] = True
        rest = tentative & ~used[i]
        if not rest.any():
            return r1, c1
        r2, c2 = sparse_gain_assignment(i[rest], j[rest], cost[rest], gate)
        return np.concatenate([r1, r2]), np.concatenate([c1, c2])

    def _update_matched(self, dets: _Detections, det: NDArray[np.intp], trk: NDArray[np.intp],
                        stamp: float, inverses: tuple[FloatArray, FloatArray] | None = None) -> None:
        """5. One batched Kalman update of the matched tracks (with the models' ``S^-1`` and
        ``det S`` of :meth:`_innovation_inverses` if given); a hit (the miss clock restarts);
        CONFIRMED from n_init hits on."""
        t = self._tracks
        rows = trk
        if len(trk) == len(t):                        # every track matched: whole columns, no gathers
            det, rows = det[np.argsort(trk)], slice(None)
        z, R = dets.z[det], (dets.R if dets.uniform_R else dets.R[det])   # one R broadcasts
        if inverses is not None:
            inverses = inverses[0][rows, 1:], inverses[1][rows, 1:]
        if rows is not trk and len(t):
            t.xm, t.Pm, t.mu = imm_update(t.xm, t.Pm, t.mu, z, R, inverses)
            t.x, t.P = imm_combine(t.xm, t.Pm, t.mu)
        elif len(trk):                                # new columns: the old ones may be shared (snapshot)
            xm, Pm, mu = imm_update(t.xm[trk], t.Pm[trk], t.mu[trk], z, R, inverses)
            t.xm, t.Pm, t.mu, t.x, t.P = t.xm.copy(), t.Pm.copy(), t.mu.copy(), t.x.copy(), t.P.copy()
            t.xm[trk], t.Pm[trk], t.mu[trk] = xm, Pm, mu
            t.x[trk], t.P[trk] = imm_combine(xm, Pm, mu)
        t.hits[rows] += 1
        t.last_hit_s[rows] = stamp
        t.miss_from_s[rows] = stamp
        t.misses[rows] = 0
        t.unseen[rows] = False
        t.det_index[rows] = dets.rows[det]
        if dets.scored:                               # without scores every one is NaN: kept as it was
            score = dets.scores[det]
            t.score[rows] = np.where(np.isnan(score), t.score[rows], score)
        if dets.labelled:
            unlabelled = np.array([v is None for v in t.label[trk]], dtype=bool)
            t.label[trk[unlabelled]] = dets.labels[det[unlabelled]]       # adopt the first label
        t.state[rows] = np.where(t.hits[rows] >= self.config.n_init, _CONFIRMED, _TENTATIVE)

    def _age_unmatched(self, trk: NDArray[np.intp], observable: NDArray[np.bool_] | None,
                       stamp: float) -> None:
        """6. Tracks without a detection this update: no detection index.  Observable ones
        (``observable`` None: all): confirmed -> lost, a paused miss clock restarts at
        ``stamp``.  Unobservable ones keep their state; the clock of a CONFIRMED one (not
        missed in view since its hit) pauses."""
        t = self._tracks
        if len(trk) == len(t):                        # none missed (trk has no repeats)
            return
        missed = np.ones(len(t), dtype=bool)
        missed[trk] = False
        t.det_index[missed] = -1
        confirmed = t.state == _CONFIRMED
        in_view = missed
        if observable is not None:
            in_view, hidden = missed & observable, missed & ~observable
            t.miss_from_s[hidden & confirmed] = np.nan
            t.unseen[hidden] = True
        t.miss_from_s[in_view & np.isnan(t.miss_from_s)] = stamp
        t.state[in_view & confirmed] = _LOST
        t.misses[in_view] += 1

    def _birth(self, dets: _Detections, matched: NDArray[np.intp], stamp: float) -> None:
        """7. A new track per detection not in ``matched``, ids in input order."""
        if len(matched) == len(dets):                 # every detection matched (no repeats)
            return
        free = np.ones(len(dets), dtype=bool)
        free[matched] = False
        if not free.any():
            return
        new = _TrackTable.born(dets.select(free), self._next_id, stamp, self.init_velocity_std_mps,
                               self.config.n_init, len(self._q))
        self._next_id += len(new)
        self._tracks = self._tracks.append(new)

    def _prune(self, stamp: float, observable: NDArray[np.bool_] | None) -> None:
        """8. Delete observable tentative tracks that missed, and tracks whose miss clock
        exceeds ``max_age_s`` (a paused clock, NaN, never does).  ``observable`` (None: all)
        covers the tracks before this update's births (newborn tracks are matched, so they
        are not missed tentative ones whatever the mask says of them)."""
        t = self._tracks
        missed_tentative = (t.det_index < 0) & (t.state == _TENTATIVE)
        if observable is not None:
            missed_tentative[: len(observable)] &= observable
            missed_tentative[len(observable):] = False
        dead = missed_tentative | ((stamp - t.miss_from_s) > self.config.max_age_s)
        suspect = np.flatnonzero(t.misses >= 2)
        if len(suspect):
            suspect = suspect[~t.unseen[suspect]]
        if len(suspect):                              # vague: position sigma > max_position_std_m
            d = self.dim
            best = t.Pm[suspect, t.mu[suspect].argmax(axis=1)]          # most probable model's P
            pos_var = best[:, np.arange(d), np.arange(d)].max(axis=1)
            dead[suspect[pos_var > self.config.max_position_std_m**2]] = True
        if dead.any():
            self._tracks = t.select(~dead)


def _labels_compatible(det_labels: NDArray, track_labels: NDArray) -> NDArray[np.bool_]:
    """Mask over pairs (equal-length label arrays): labels equal, or either is None (unlabelled)."""
    return np.fromiter((a is None or b is None or a == b for a, b in zip(det_labels, track_labels, strict=True)),
                       dtype=bool, count=len(det_labels))


def _covariance_column(covariances: ArrayLike, n: int, d: int) -> FloatArray:
    """(n, D, D) covariances from (n, D, D) or one (D, D) for all."""
    R = np.asarray(covariances, dtype=np.float64)
    if R.shape == (d, d):
        R = np.broadcast_to(R, (n, d, d)).copy()
    if R.shape != (n, d, d):
        raise ValueError(f"covariances must have shape ({n}, {d}, {d}) or ({d}, {d}), got {R.shape}")
    return R


def _check_positive_definite(R: FloatArray) -> None:
    if len(R) == 0:
        return
    symmetric = np.allclose(R, np.swapaxes(R, 1, 2))
    if not symmetric or np.any(np.linalg.eigvalsh(R)[:, 0] <= 0.0):
        raise ValueError("covariances must be symmetric positive definite")


def _label_column(labels: Sequence[Hashable | None] | NDArray | None, n: int) -> NDArray[np.object_]:
    """(n,) object array of labels, None = unlabelled."""
    if labels is None:
        return np.full(n, None, dtype=object)
    lab = np.empty(len(labels), dtype=object)
    for i, v in enumerate(labels):            # element by element: a label may be a tuple
        lab[i] = v
    if lab.shape != (n,):
        raise ValueError(f"labels must have length {n}, got {len(labels)}")
    return lab


def _score_column(scores: ArrayLike | None, n: int) -> FloatArray:
    """(n,) scores, NaN = none."""
    if scores is None:
        return np.full(n, np.nan)
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {sc.shape}")
    return sc

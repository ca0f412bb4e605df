"""Synthetic multi-object tracking scenarios across motion regimes (issue 16), and their scores.

Shared by ``fdl_robot/test/test_tracking_scenarios.py`` and ``benchmarks/tracker_benchmark.py``.

Every scenario is a table top in ``base_link`` (metres; x in [0.2, 0.8], y in [-0.4, 0.4],
objects at z = 0.02 m), seen by one camera that sees the whole table.  One run lasts
``DURATION_S`` seconds.  Per frame, each object is detected with probability ``p_detect``
with Gaussian noise ``NOISE_STD_M`` per axis, plus Poisson(``clutter_rate``) false
detections uniform over the table (z in [0, 0.25] m), shuffled.  Detections carry no
covariance (the tracker uses its default ``measurement_std_m``).

=============  ==========================================================================
static         6 still objects, 15 Hz
slow           6 objects on a conveyor, 5 cm/s along +y, 15 Hz
fast           5 objects on Lissajous curves: 0.3-0.85 m/s, accelerations up to ~4 m/s^2,
               turning all the time, carried at heights 4.5 cm apart (z = 0.02-0.2 m) so
               that paths cross in x-y, 15 Hz
mixed          3 still objects + 3 fast ones, 15 Hz
irregular      ``mixed`` with stamps 10-30 Hz: every interval uniform in [1/30, 1/10] s
clutter        ``mixed`` with p_detect = 0.8 and Poisson(3) clutter per frame
gaps           3 still + 3 slow objects, two sensor outages of 1.5 s (> max_age_s = 1 s)
crossing       2 pairs of objects swinging along perpendicular lines (0.5 m/s at the
               crossing), the two of a pair passing 2.5 cm apart every 1.3 s, 15 Hz
=============  ==========================================================================

Default detection model (all but ``clutter``): p_detect = 0.9, clutter 0.5 per frame.

Scoring (:func:`score`): after every update, the tracker's output (for ours
``confirmed_tracks()``: confirmed and coasting tracks, what tracker_node publishes) is
compared with the true positions of all objects with CLEAR-MOT and IDF1 within
``MATCH_M`` = 5 cm (:mod:`fdl_robot.core.mot_metrics`).  A sensor outage has no frames, so
nothing is scored during it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from fdl_robot.core.mot_metrics import MOTAccumulator, idf1

__all__ = ["SCENARIOS", "Frame", "Scenario", "make_scenario", "score", "Score"]

DURATION_S = 10.0
HZ = 15.0
NOISE_STD_M = 0.005
MATCH_M = 0.05
TABLE_LO = np.array([0.2, -0.4, 0.0])
TABLE_HI = np.array([0.8, 0.4, 0.25])
Z_M = 0.02
LEVEL_M = 0.045

SCENARIOS = ("static", "slow", "fast", "mixed", "irregular", "clutter", "gaps", "crossing")


@dataclass(frozen=True)
class Frame:
    """One detection set: stamp (s), truth (ids (G,), positions (G, 3) m), detections (N, 3) m."""

    stamp_s: float
    gt_ids: np.ndarray
    gt_positions: np.ndarray
    detections: np.ndarray


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    frames: list[Frame]

    @property
    def max_objects(self) -> int:
        return max(len(f.gt_ids) for f in self.frames)


Motion = Callable[[np.ndarray], np.ndarray]      # stamps (T,) -> positions (T, 3)


def _still(rng: np.random.Generator) -> Motion:
    p = np.r_[rng.uniform([0.25, -0.35], [0.75, 0.35]), Z_M]
    return lambda t: np.broadcast_to(p, (len(t), 3)).copy()


def _conveyor(rng: np.random.Generator, speed_mps: float = 0.05) -> Motion:
    p0 = np.r_[rng.uniform([0.25, -0.38], [0.75, -0.1]), Z_M]
    return lambda t: p0 + np.outer(t, [0.0, speed_mps, 0.0])


def _lissajous(rng: np.random.Generator, level: int) -> Motion:
    """x_i(t) = c_i + A_i sin(w_i t + phi_i): speed <= A w, acceleration <= A w^2 per axis; at
    the height of ``level`` (4.5 cm apart: carried objects cross in x-y without passing
    through each other)."""
    a = rng.uniform(0.10, 0.17, 2)
    w = rng.uniform(3.0, 5.0, 2)
    phi = rng.uniform(0, 2 * np.pi, 2)
    c = rng.uniform(TABLE_LO[:2] + a + 0.03, TABLE_HI[:2] - a - 0.03)

    def motion(t: np.ndarray) -> np.ndarray:
        xy = c + a * np.sin(np.outer(t, w) + phi)
        return np.column_stack([xy, np.full(len(t), Z_M + LEVEL_M * level)])
    return motion


def _crossing_pair(rng: np.random.Generator, centre_xy: tuple[float, float], speed_mps: float = 0.5,
                   amplitude_m: float = 0.2) -> list[Motion]:
    """Two objects swinging along perpendicular lines, u(t) = A sin(w (t - t0)) with A w =
    ``speed_mps``, through points 2.5 cm apart: they pass each other at full speed every
    pi / w seconds (acceleration <= A w^2 = 1.25 m/s^2)."""
    w = speed_mps / amplitude_m
    t0 = rng.uniform(0.5, 1.5)
    heading = rng.uniform(0, np.pi)
    out = []
    for member in (0, 1):
        h = heading + member * np.pi / 2
        d = np.array([np.cos(h), np.sin(h), 0.0])
        centre = np.array([*centre_xy, Z_M]) + member * 0.025 * np.array([-d[1], d[0], 0.0])

        def motion(t: np.ndarray, d=d, centre=centre) -> np.ndarray:
            return centre + np.outer(amplitude_m * np.sin(w * (t - t0)), d)
        out.append(motion)
    return out


def _objects(name: str, rng: np.random.Generator) -> list[Motion]:
    if name == "static":
        return [_still(rng) for _ in range(6)]
    if name == "slow":
        return [_conveyor(rng) for _ in range(6)]
    if name == "fast":
        return [_lissajous(rng, k) for k in range(5)]
    if name in ("mixed", "irregular", "clutter"):
        return [_still(rng) for _ in range(3)] + [_lissajous(rng, k) for k in range(3)]
    if name == "gaps":
        return [_still(rng) for _ in range(3)] + [_conveyor(rng) for _ in range(3)]
    if name == "crossing":
        return _crossing_pair(rng, (0.4, -0.17)) + _crossing_pair(rng, (0.6, 0.17))
    raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


def _stamps(name: str, rng: np.random.Generator) -> np.ndarray:
    if name == "irregular":
        dt = rng.uniform(1 / 30, 1 / 10, int(DURATION_S * 30))
        t = np.cumsum(dt)
        return t[t < DURATION_S]
    t = np.arange(int(DURATION_S * HZ)) / HZ
    if name == "gaps":
        starts = (rng.uniform(2.0, 3.5), rng.uniform(6.0, 7.5))
        for s in starts:
            t = t[(t < s) | (t > s + 1.5)]
    return t


def make_scenario(name: str, seed: int) -> Scenario:
    """The frames of scenario ``name`` (module doc) with random seed ``seed``."""
    rng = np.random.default_rng([SCENARIOS.index(name) if name in SCENARIOS else 99, seed])
    motions = _objects(name, rng)
    stamps = _stamps(name, rng)
    p_detect, clutter_rate = (0.8, 3.0) if name == "clutter" else (0.9, 0.5)
    truth = np.stack([m(stamps) for m in motions], axis=1)        # (T, K, 3)
    ids = np.arange(1, len(motions) + 1)
    frames = []
    for t, pos in zip(stamps, truth, strict=True):
        seen = rng.random(len(ids)) < p_detect
        det = pos[seen] + rng.normal(0.0, NOISE_STD_M, (int(seen.sum()), 3))
        clutter = TABLE_LO + (TABLE_HI - TABLE_LO) * rng.random((rng.poisson(clutter_rate), 3))
        det = np.vstack([det, clutter])
        frames.append(Frame(float(t), ids, pos, det[rng.permutation(len(det))]))
    return Scenario(name, seed, frames)


@dataclass(frozen=True)
class Score:
    mota: float
    idf1: float
    switches: int
    false_positives: int
    misses: int
    num_gt: int
    tracks_created: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


Step = Callable[[np.ndarray, float], tuple[Iterable, np.ndarray]]
"""``step(detections (N, 3), stamp_s) -> (hypothesis ids (H,), positions (H, 3))``."""


def score(scenario: Scenario, step: Step) -> Score:
    """Feed the scenario's frames to ``step`` in order and score its output (module doc)."""
    acc = MOTAccumulator(max_distance_m=MATCH_M)
    log = []
    seen_ids: set = set()
    for f in scenario.frames:
        hyp_ids, hyp_pos = step(f.detections, f.stamp_s)
        hyp_ids = np.asarray(list(hyp_ids))
        hyp_pos = np.asarray(hyp_pos, dtype=float).reshape(-1, 3)
        seen_ids.update(hyp_ids.tolist())
        acc.update(f.gt_ids, f.gt_positions, hyp_ids, hyp_pos)
        log.append((f.gt_ids, f.gt_positions, hyp_ids, hyp_pos))
    s = acc.summary()
    return Score(s.mota, idf1(log, MATCH_M), s.num_switches, s.num_false_positives, s.num_misses,
                 s.num_gt, len(seen_ids))


def tracker_step(tracker) -> Step:
    """A :class:`~fdl_robot.core.tracking.MultiObjectTracker` as a :data:`Step` (its confirmed
    and coasting tracks)."""
    def step(z: np.ndarray, t: float):
        tracker.update(z, t)
        out = tracker.confirmed_tracks()
        return [tr.id for tr in out], np.array([tr.position for tr in out]).reshape(-1, 3)
    return step

"""Peer trackers for benchmarks/tracker_benchmark.py (issue 16), each tuned per scenario on a grid.

Installed for the benchmark only, in their own venv (never in the project's):

    python3.11 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements/bench-trackers.txt

(norfair 2.1.1, motpy 0.0.10, stonesoup 1.9.1, filterpy 1.4.5 with numpy 2.4.6 and scipy 1.17.1,
the project's pins).  The benchmark imports our tracker through PYTHONPATH.

Every peer sees what ours sees: per frame the detections (N, 3) in metres and the stamp; it
reports its established tracks (past its initialisation, coasting ones included: what our
``confirmed_tracks()`` reports).  Each adapter below is written here against the peer's
public API; no peer code is copied.

* ``sort``: a SORT-style baseline on filterpy's ``KalmanFilter``: one 3-D constant-velocity
  filter per track with F(dt), Q(dt) (white-noise acceleration of density q) from the
  stamps, R = (5 mm)^2 I, association by ``scipy.optimize.linear_sum_assignment`` on the
  Euclidean distance to the predicted positions with a distance gate, confirmation after
  ``min_hits`` consecutive hits, deletion after ``max_age_s`` without one.
* ``norfair``: ``norfair.Tracker`` on 3-D points, Euclidean distance, its
  ``OptimizedKalmanFilterFactory`` (frame-based: it has no notion of dt).
* ``motpy``: ``motpy.MultiObjectTracker`` with a 3-D constant-velocity Kalman model on cubes of
  side ``box_m`` centred at the detections, IoU matching (fixed dt = 1/15 s).
* ``stonesoup``: Stone Soup's ``MultiTargetTracker`` with a 3-D nearly-constant-velocity
  transition model, Kalman predictor/updater, a Mahalanobis ``DistanceHypothesiser``, GNN
  (``GNNWith2DAssignment``), ``MultiMeasurementInitiator`` and ``UpdateTimeDeleter``; stamps
  as datetimes (irregular dt handled).

The grids (``GRIDS``) span each peer's main parameters around values sensible for this
problem (noise 5 mm, speeds up to 1 m/s at 10-30 Hz).  Tuning: per scenario, the setting
with the best mean MOTA over the seeds (ties: IDF1), measured on the same seeds that are
reported (so the peers are tuned on the test set, in their favour).
"""
from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta

import numpy as np
from scipy.optimize import linear_sum_assignment

from fdl_robot.tracking_scenarios import SCENARIOS, make_scenario, score

GRIDS: dict[str, dict[str, list]] = {
    "sort": dict(q=[0.1, 1.0, 10.0, 30.0], gate_m=[0.05, 0.1, 0.2], min_hits=[2, 3], max_age_s=[0.3, 1.0]),
    "norfair": dict(distance_threshold=[0.03, 0.06, 0.12, 0.2], Q=[1e-4, 1e-3, 1e-2], hit_counter_max=[5, 15],
                    initialization_delay=[2, 4]),
    "motpy": dict(box_m=[0.04, 0.08, 0.16], q_var_pos=[0.01, 100.0, 1e4, 1e5], min_iou=[0.05, 0.2],
                  max_staleness=[4, 12]),
    "stonesoup": dict(q=[0.1, 1.0, 10.0], missed_distance=[3.0, 5.0], min_points=[2, 3], max_age_s=[0.3, 1.0]),
}

R_STD_M = 0.005


# ------------------------------------------------------------------------ SORT (filterpy)

def _cv_matrices(dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    F = np.eye(6)
    F[:3, 3:] = dt * np.eye(3)
    Q = q * np.kron(np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]), np.eye(3))
    return F, Q


class SortTracker:
    def __init__(self, q: float, gate_m: float, min_hits: int, max_age_s: float) -> None:
        from filterpy.kalman import KalmanFilter
        self._kf = KalmanFilter
        self.q, self.gate_m, self.min_hits, self.max_age_s = q, gate_m, min_hits, max_age_s
        self.tracks: list[dict] = []
        self.next_id = 1
        self.t: float | None = None

    def _new(self, z: np.ndarray, t: float) -> dict:
        kf = self._kf(dim_x=6, dim_z=3)
        kf.x = np.r_[z, np.zeros(3)][:, None]
        kf.P = np.diag([R_STD_M**2] * 3 + [0.5**2] * 3)
        kf.H = np.hstack([np.eye(3), np.zeros((3, 3))])
        kf.R = R_STD_M**2 * np.eye(3)
        return dict(kf=kf, hits=1, streak=1, last=t, id=None)

    def step(self, z: np.ndarray, t: float):
        dt = 0.0 if self.t is None else t - self.t
        self.t = t
        for tr in self.tracks:
            tr["kf"].F, tr["kf"].Q = _cv_matrices(dt, self.q)
            tr["kf"].predict()
        pred = np.array([tr["kf"].x[:3, 0] for tr in self.tracks]).reshape(-1, 3)
        matched_d, matched_t = [], []
        if len(pred) and len(z):
            d = np.linalg.norm(z[:, None] - pred[None], axis=-1)
            r, c = linear_sum_assignment(d)
            keep = d[r, c] <= self.gate_m
            matched_d, matched_t = r[keep].tolist(), c[keep].tolist()
        for i, j in zip(matched_d, matched_t, strict=True):
            tr = self.tracks[j]
            tr["kf"].update(z[i][:, None])
            tr["hits"] += 1
            tr["streak"] += 1
            tr["last"] = t
        for j, tr in enumerate(self.tracks):
            if j not in matched_t:
                tr["streak"] = 0
        free = set(range(len(z))) - set(matched_d)
        self.tracks = [tr for tr in self.tracks if t - tr["last"] <= self.max_age_s
                       and (tr["id"] is not None or tr["streak"] > 0)]
        self.tracks += [self._new(z[i], t) for i in sorted(free)]
        out_ids, out_pos = [], []
        for tr in self.tracks:
            if tr["id"] is None and tr["streak"] >= self.min_hits:
                tr["id"], self.next_id = self.next_id, self.next_id + 1
            if tr["id"] is not None:
                out_ids.append(tr["id"])
                out_pos.append(tr["kf"].x[:3, 0].copy())
        return out_ids, np.array(out_pos).reshape(-1, 3)


# ------------------------------------------------------------------------------ norfair

class NorfairTracker:
    def __init__(self, distance_threshold: float, Q: float, hit_counter_max: int,
                 initialization_delay: int) -> None:
        import norfair
        self._det = norfair.Detection
        self.tracker = norfair.Tracker(
            distance_function="mean_euclidean", distance_threshold=distance_threshold,
            hit_counter_max=hit_counter_max, initialization_delay=initialization_delay,
            filter_factory=norfair.OptimizedKalmanFilterFactory(R=R_STD_M**2, Q=Q, pos_variance=R_STD_M**2,
                                                                vel_variance=1e-3))

    def step(self, z: np.ndarray, t: float):
        objs = self.tracker.update([self._det(points=p[None, :]) for p in z])
        return [o.id for o in objs], np.array([o.estimate[0] for o in objs]).reshape(-1, 3)


# -------------------------------------------------------------------------------- motpy

class MotpyTracker:
    def __init__(self, box_m: float, q_var_pos: float, min_iou: float, max_staleness: int) -> None:
        from motpy import Detection, MultiObjectTracker
        self._det = Detection
        self.half = box_m / 2
        self.tracker = MultiObjectTracker(
            dt=1 / 15, model_spec=dict(order_pos=1, dim_pos=3, order_size=0, dim_size=3, q_var_pos=q_var_pos,
                                       r_var_pos=R_STD_M**2 * 1e4, q_var_size=1e-6, r_var_size=1e-6, p_cov_p0=1.0),
            matching_fn_kwargs=dict(min_iou=min_iou), tracker_kwargs=dict(max_staleness=max_staleness),
            active_tracks_kwargs=dict(min_steps_alive=3, max_staleness=max_staleness))

    def step(self, z: np.ndarray, t: float):
        # positions scaled to cm for motpy's numerics (its defaults are pixel-sized)
        s = 100.0
        dets = [self._det(box=np.r_[(p - self.half) * s, (p + self.half) * s]) for p in z]
        tracks = self.tracker.step(dets)
        pos = np.array([(np.asarray(tr.box[:3]) + np.asarray(tr.box[3:])) / 2 / s for tr in tracks]).reshape(-1, 3)
        return [tr.id for tr in tracks], pos


# ---------------------------------------------------------------------------- Stone Soup

class StoneSoupTracker:
    def __init__(self, q: float, missed_distance: float, min_points: int, max_age_s: float) -> None:
        from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
        from stonesoup.deleter.time import UpdateTimeDeleter
        from stonesoup.hypothesiser.distance import DistanceHypothesiser
        from stonesoup.initiator.simple import MultiMeasurementInitiator
        from stonesoup.measures import Mahalanobis
        from stonesoup.models.measurement.linear import LinearGaussian
        from stonesoup.models.transition.linear import (
            CombinedLinearGaussianTransitionModel,
            ConstantVelocity,
        )
        from stonesoup.predictor.kalman import KalmanPredictor
        from stonesoup.types.detection import Detection
        from stonesoup.types.state import GaussianState
        from stonesoup.updater.kalman import KalmanUpdater

        self._Detection = Detection
        transition = CombinedLinearGaussianTransitionModel([ConstantVelocity(q)] * 3)
        self.measurement_model = LinearGaussian(ndim_state=6, mapping=(0, 2, 4),
                                                noise_covar=np.eye(3) * R_STD_M**2)
        predictor = KalmanPredictor(transition)
        self.updater = updater = KalmanUpdater(self.measurement_model)
        hypothesiser = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(),
                                            missed_distance=missed_distance)
        self.associator = GNNWith2DAssignment(hypothesiser)
        self.deleter = UpdateTimeDeleter(timedelta(seconds=max_age_s))
        prior = GaussianState(np.zeros((6, 1)), np.diag([R_STD_M**2, 0.5**2] * 3))
        self.initiator = MultiMeasurementInitiator(
            prior, measurement_model=self.measurement_model, deleter=UpdateTimeDeleter(timedelta(seconds=0.2)),
            data_associator=GNNWith2DAssignment(hypothesiser), updater=updater, min_points=min_points)
        self.tracks: set = set()
        self.epoch = datetime(2026, 1, 1)
        self.ids: dict[str, int] = {}

    def step(self, z: np.ndarray, t: float):
        when = self.epoch + timedelta(seconds=float(t))
        dets = {self._Detection(p[:, None], timestamp=when, measurement_model=self.measurement_model) for p in z}
        hyps = self.associator.associate(self.tracks, dets, when)
        used = set()
        for track in self.tracks:
            h = hyps[track]
            if h:                       # a detection was associated
                track.append(self.updater.update(h))
                used.add(h.measurement)
            else:
                track.append(h.prediction)
        self.tracks -= self.deleter.delete_tracks(self.tracks)
        self.tracks |= self.initiator.initiate(dets - used, when)
        out_ids, out_pos = [], []
        for track in self.tracks:
            out_ids.append(self.ids.setdefault(track.id, len(self.ids) + 1))
            out_pos.append(np.asarray(track.state_vector, dtype=float)[[0, 2, 4], 0])
        return out_ids, np.array(out_pos).reshape(-1, 3)


PEERS = {"sort": SortTracker, "norfair": NorfairTracker, "motpy": MotpyTracker, "stonesoup": StoneSoupTracker}


def _step_of(peer: str, params: dict):
    tracker = PEERS[peer](**params)
    return tracker.step


def run_all(seeds: int, names: list[str]) -> tuple[dict, dict]:
    """Every peer tuned per scenario: {peer: {scenario: summary + best params}}, and the grids."""
    from tracker_benchmark import summarise

    scenarios = {n: [make_scenario(n, s) for s in range(seeds)] for n in SCENARIOS}
    best: dict = {}
    for peer in names:
        grid = GRIDS[peer]
        combos = [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
        best[peer] = {}
        for name in SCENARIOS:
            t0 = time.perf_counter()
            top = None
            for params in combos:
                runs = [score(sc, _step_of(peer, params)) for sc in scenarios[name]]
                s = summarise(runs)
                if top is None or (s["mota"], s["idf1"]) > (top["mota"], top["idf1"]):
                    top = dict(s, params=params)
            best[peer][name] = top
            print(f"  [{peer}] {name:9s} best MOTA {top['mota']:.3f} IDF1 {top['idf1']:.3f} IDSW "
                  f"{top['switches']:.1f} at {top['params']} ({len(combos)} settings, "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
    return best, GRIDS

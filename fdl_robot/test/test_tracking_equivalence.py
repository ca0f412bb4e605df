"""The tracker made faster computes what it computed before (issue 16, item 1's speed target).

The reference is the tracker of commit ``REFERENCE`` (main before the speed-up of this
branch): its core modules (kalman, assignment, imm, tracking) loaded from git into a temporary
package by ``benchmarks/tracker_benchmark.py``'s ``load_tracking``.  Both trackers get the same
calls; after every call the live tracks must agree: ids, states, hits, labels, scores,
detection indices, ages and the miss bookkeeping exactly, the combined and per-model means and
covariances and the model probabilities to 1e-12 (normwise relative, per track), and the
scenario scores (MOTA, IDF1, ...) exactly.  Skipped only where git or the commit is missing
(e.g. a shallow clone).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fdl_robot.core import tracking
from fdl_robot.tracking_scenarios import SCENARIOS, make_scenario, score

REPO = Path(__file__).resolve().parents[2]
REFERENCE = "c4059db"
RTOL = 1e-12
HZ = 15.0


@pytest.fixture(scope="module")
def reference():
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{REFERENCE}^{{commit}}"],
                           capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"commit {REFERENCE} is not in this clone")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import tracker_benchmark
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return tracker_benchmark.load_tracking(REFERENCE)


def _close(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.linalg.norm(a - b) <= RTOL * np.linalg.norm(b))


def assert_same(new, ref, where) -> None:
    """The two trackers' live tracks and internal columns agree (module doc)."""
    a, b = new.tracks(), ref.tracks()
    assert [t.id for t in a] == [t.id for t in b], where
    for s, r in zip(a, b, strict=True):
        exact = ("state", "hits", "age_s", "time_since_update_s", "label", "score", "detection_index")
        assert [getattr(s, f) for f in exact] == [getattr(r, f) for f in exact], (where, s.id)
        assert _close(s.state_mean, r.state_mean) and _close(s.state_covariance, r.state_covariance), (where, s.id)
    ta, tb = new._tracks, ref._tracks
    for col in ("miss_from_s", "misses", "unseen"):
        np.testing.assert_array_equal(getattr(ta, col), getattr(tb, col), err_msg=f"{where} {col}")
    for col in ("xm", "Pm", "mu"):
        for k in range(len(ta)):
            assert _close(getattr(ta, col)[k], getattr(tb, col)[k]), (where, col, k)
    assert new.stamp_s == ref.stamp_s and new.last_num_dropped == ref.last_num_dropped, where
    assert new.last_time_jump_s == ref.last_time_jump_s, where


def both(ref, method: str, *args, where=None, **kwargs):
    """Call ``method`` on (new, reference) trackers ``ref = (new, old)``; the same outcome
    (both raise the same exception type, or both return and agree)."""
    outcome = []
    for trk in ref:
        try:
            getattr(trk, method)(*args, **kwargs)
            outcome.append(None)
        except ValueError as e:
            outcome.append(type(e).__name__)
    assert outcome[0] == outcome[1], (where, outcome)
    assert_same(*ref, where)


# ------------------------------------------------------------------------ scenarios

@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_gives_the_same_tracks_and_scores(reference, name):
    """5 seeds of each scenario of tracking_scenarios with the defaults, compared after every
    update; the scores follow (identical ids and positions), and are compared too."""
    for seed in range(5):
        scen = make_scenario(name, seed)
        pair = (tracking.MultiObjectTracker(), reference.MultiObjectTracker())
        outputs = {0: [], 1: []}

        def step(z, t, pair=pair, outputs=outputs):
            both(pair, "update", z, t, where=(name, seed, t))
            for k, trk in enumerate(pair):
                out = trk.confirmed_tracks()
                outputs[k].append(([tr.id for tr in out], np.array([tr.position for tr in out]).reshape(-1, 3)))
            return outputs[0][-1]

        s_new = score(scen, step)
        old = iter(outputs[1])
        assert s_new == score(scen, lambda z, t, old=old: next(old)), (name, seed)


@pytest.mark.parametrize("config", [dict(process_noise_q=0.1), dict(gating="euclidean"),
                                    dict(late_tolerance_s=0.0), dict(max_distance_m=np.inf, max_position_std_m=np.inf),
                                    dict(n_init=1), dict(mode_switch_time_s=0.1, process_noise_q=(0.01, 3.0))])
def test_other_configs_give_the_same_tracks(reference, config):
    for name in ("mixed", "clutter", "gaps"):
        scen = make_scenario(name, 7)
        pair = (tracking.MultiObjectTracker(**config), reference.MultiObjectTracker(**config))
        for f in scen.frames:
            both(pair, "update", f.detections, f.stamp_s, where=(config, name, f.stamp_s))


def test_labels_scores_covariances_views_and_invalid_rows_give_the_same_tracks(reference):
    rng = np.random.default_rng(11)
    scen = make_scenario("irregular", 2)
    pair = (tracking.MultiObjectTracker(), reference.MultiObjectTracker())
    for k, f in enumerate(scen.frames):
        z = f.detections.copy()
        n = len(z)
        labels = [("cube", "ball", None)[i % 3] for i in range(n)]
        scores = np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
        cov = np.array([np.diag(rng.uniform(0.5e-4, 2e-4, 3)) for _ in range(n)])
        if n and k % 7 == 3:
            z[0, 2] = np.nan                                   # a NaN depth: dropped
        seen = (lambda p: p[:, 1] < 0.2) if k % 4 == 1 else None
        both(pair, "update", z, f.stamp_s, labels=labels, scores=scores,
             covariances=cov if k % 2 else None, observable=seen, where=k)
        if k % 10 == 5:
            both(pair, "predict", f.stamp_s + 0.01, where=("predict", k))


def test_late_sets_jumps_and_two_cameras_give_the_same_tracks(reference):
    rng = np.random.default_rng(12)
    objs = np.array([[0.3 + 0.1 * i, -0.2 + 0.08 * i, 0.02] for i in range(6)])
    pair = (tracking.MultiObjectTracker(), reference.MultiObjectTracker())
    sees = {"A": lambda p: p[:, 0] < 0.55, "B": lambda p: p[:, 0] >= 0.45}
    for k in range(60):
        t = k / HZ + (0.8 if k > 40 else 0.0)                  # an outage of 0.8 s
        for cam, late in (("A", 0.0), ("B", 0.004 * (k % 3))):
            z = objs[sees[cam](objs)] + rng.normal(0, 0.003, (int(sees[cam](objs).sum()), 3))
            both(pair, "update", z[rng.random(len(z)) < 0.85], t - late, observable=sees[cam], where=(k, cam))
        if k == 30:
            both(pair, "update", objs, t - 0.5, where="too late")          # raises, then a new base
            both(pair, "update", objs, t - 0.4, where="new base")
        if k == 50:
            both(pair, "update", objs, t - 3.0, where="jump back")


def test_two_dimensions_give_the_same_tracks(reference):
    rng = np.random.default_rng(13)
    pair = (tracking.MultiObjectTracker(dim=2), reference.MultiObjectTracker(dim=2))
    for k in range(80):
        t = k / HZ
        z = np.array([[0.3 + 0.4 * t, 0.1], [0.6, -0.2 + 0.2 * np.sin(3 * t)], [0.5, 0.3]])
        z = np.vstack([z + rng.normal(0, 0.004, z.shape), rng.uniform(0, 1, (rng.poisson(1), 2))])
        both(pair, "update", z[rng.random(len(z)) < 0.9], t, where=k)


@pytest.mark.parametrize("n", [10, 50, 1000])
def test_the_benchmark_grids_give_the_same_tracks(reference, monkeypatch, n):
    """The speed benchmark's grids (10 and 50 objects dense, 1000 through the k-d tree), with
    misses, clutter and drift; 50 objects also with the k-d tree forced (DENSE_PAIRS = 0)."""
    rng = np.random.default_rng(n)
    side = int(np.ceil(np.sqrt(n)))
    x, y = np.meshgrid(np.linspace(0.2, 1.0, side), np.linspace(-0.4, 0.6, side))
    objs = np.column_stack([x.ravel(), y.ravel(), np.full(side * side, 0.02)])[:n]
    for dense_pairs in ((None, 0) if n == 50 else (None,)):
        if dense_pairs is not None:
            monkeypatch.setattr(tracking, "DENSE_PAIRS", dense_pairs)
            monkeypatch.setattr(reference, "DENSE_PAIRS", dense_pairs)
        pair = (tracking.MultiObjectTracker(), reference.MultiObjectTracker())
        for k in range(25 if n == 1000 else 60):
            t = k / HZ
            z = objs + [0.05 * t, 0.0, 0.0] + rng.normal(0, 0.003, objs.shape)
            z = np.vstack([z[rng.random(n) < 0.9], rng.uniform([0.2, -0.4, 0], [1, 0.6, 0.2], (n // 10, 3))])
            both(pair, "update", z[rng.permutation(len(z))], t, where=(n, dense_pairs, k))

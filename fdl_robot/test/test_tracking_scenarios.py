"""Issue 16: the tracker with its defaults across motion regimes, and its edge cases.

The scenarios are :mod:`fdl_robot.tracking_scenarios` (also benchmarks/tracker_benchmark.py,
which runs more seeds, the tuned peers and the speed figures).
"""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.core import tracking
from fdl_robot.core.assignment import hungarian, sparse_gain_assignment
from fdl_robot.core.imm import imm_combine, imm_predict, imm_predict_combined, imm_update, mode_transition
from fdl_robot.core.tracking import ConstantVelocityKF, MultiObjectTracker, OutOfOrderStamp, TrackState
from fdl_robot.tracking_scenarios import SCENARIOS, make_scenario, score, tracker_step

HZ = 15.0


def _grid(n: int, spacing: float = 0.1) -> np.ndarray:
    side = int(np.ceil(np.sqrt(n)))
    x, y = np.meshgrid(np.arange(side) * spacing + 0.2, np.arange(side) * spacing - 0.4)
    return np.column_stack([x.ravel(), y.ravel(), np.full(side * side, 0.02)])[:n]


# ------------------------------------------------------------------------ scenarios

@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "clutter"])
def test_defaults_track_every_motion_regime(name):
    """MOTA and IDF1 >= 0.9 with the defaults, two seeds (the old defaults: fast 0.35 / 0.29)."""
    for seed in (0, 1):
        s = score(make_scenario(name, seed), tracker_step(MultiObjectTracker()))
        assert s.mota >= 0.9 and s.idf1 >= 0.9, (name, seed, s)


def test_defaults_in_heavy_clutter_stay_well_above_the_old_tracker():
    """p_detect 0.8 and 3 false detections per frame: the one scenario below the 0.9 target
    (measured 0.88 / 0.78 over 5 seeds); the old defaults scored MOTA 0.33."""
    for seed in (0, 1):
        s = score(make_scenario("clutter", seed), tracker_step(MultiObjectTracker()))
        assert s.mota >= 0.85 and s.idf1 >= 0.7, (seed, s)


def test_scenarios_are_reproducible_and_differ_by_seed():
    a, b, c = make_scenario("fast", 3), make_scenario("fast", 3), make_scenario("fast", 4)
    assert all(np.array_equal(f.detections, g.detections) for f, g in zip(a.frames, b.frames, strict=True))
    assert not np.allclose(a.frames[5].gt_positions, c.frames[5].gt_positions)
    speeds = np.linalg.norm(np.diff([f.gt_positions for f in a.frames], axis=0), axis=-1) * HZ
    assert 0.5 < speeds.max() < 1.1                     # up to ~1 m/s


# ----------------------------------------------------------------------------- IMM

def test_one_model_is_the_constant_velocity_kalman_filter():
    trk = MultiObjectTracker(process_noise_q=0.1, n_init=1)
    stamps = np.cumsum(np.r_[0.0, np.random.default_rng(0).uniform(0.03, 0.1, 20)])
    zs = [[0.3 + 0.2 * t, 0.1, 0.02] for t in stamps]
    kf = ConstantVelocityKF.from_measurement(zs[0], stamps[0], q=0.1)
    trk.update([zs[0]], stamps[0])
    for z, t in zip(zs[1:], stamps[1:], strict=True):
        kf.step(z, t)
        [tr] = trk.update([z], t)
    np.testing.assert_allclose(tr.state_mean, kf.x, atol=1e-12)
    np.testing.assert_allclose(tr.state_covariance, kf.P, atol=1e-12)


def test_mode_probabilities_follow_the_motion():
    rng = np.random.default_rng(1)
    trk = MultiObjectTracker(n_init=1)
    for k in range(45):                                # still for 1 s, then a sharp turn at 0.8 m/s
        t = k / HZ
        p = [0.5, 0.0, 0.02] if t < 1.0 else [0.5 + 0.2 * np.sin(4 * (t - 1)), 0.2 * (1 - np.cos(4 * (t - 1))), 0.02]
        trk.update(np.array([p]) + rng.normal(0, 0.003, (1, 3)), t)
        if k == 14:
            still = trk._tracks.mu[0].copy()
    moving = trk._tracks.mu[0]
    assert still[0] > 0.8                              # the model at rest explains a still object
    assert moving[0] < still[0] / 3 and moving[2] > 3 * still[2]


def test_imm_pieces_by_hand():
    pi = mode_transition(0.1, 3, 0.5)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0)
    assert pi[0, 0] == pytest.approx(1 - 2 / 3 * (1 - np.exp(-3 * 0.1 / (2 * 0.5))))
    x = np.array([[[0.0, 0, 0, 1, 0, 0], [0.1, 0, 0, 1, 0, 0]]])
    P = np.broadcast_to(np.eye(6) * 1e-4, (1, 2, 6, 6)).copy()
    mu = np.array([[0.25, 0.75]])
    xc, Pc = imm_combine(x, P, mu)
    assert xc[0, 0] == pytest.approx(0.075)
    assert Pc[0, 0, 0] == pytest.approx(1e-4 + 0.25 * 0.075**2 + 0.75 * 0.025**2)
    xp, Pp, c = imm_predict(x, P, mu, 0.0, np.array([0.1, 1.0]), 0.5)   # dt = 0: nothing changes
    np.testing.assert_array_equal(xp, x)
    np.testing.assert_array_equal(c, mu)
    xu, Pu, mu_u = imm_update(x, P, mu, np.array([[0.1, 0.0, 0.0]]), np.eye(3)[None] * 1e-4)
    assert mu_u[0, 1] > mu[0, 1]                       # the model that predicted the detection gains


def test_the_combined_prediction_equals_combining_the_predicted_models():
    """imm_predict_combined (the tracker's shortcut) = imm_combine after imm_predict."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 0.1, (5, 3, 6))
    A = rng.normal(0.0, 0.05, (5, 3, 6, 6))
    P = A @ np.swapaxes(A, -1, -2) + 1e-4 * np.eye(6)
    mu = rng.dirichlet(np.ones(3), 5)
    q = np.array([1e-4, 0.5, 10.0])
    for dt in (0.0, 1 / 30, 0.4):
        xp, Pp, c = imm_predict(x, P, mu, dt, q, 0.5)
        want = imm_combine(xp, Pp, c)
        got = imm_predict_combined(*imm_combine(x, P, mu), c, dt, q)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------- edge cases

def test_two_cameras_at_one_stamp_keep_each_others_tracks():
    """Camera A sees x < 0.6, B x >= 0.6, both at the same stamps: nothing is deleted or
    flips to lost because the other camera's update could not see it."""
    objs = np.array([[0.3, y, 0.02] for y in (-0.3, 0.0, 0.3)] + [[0.9, y, 0.02] for y in (-0.3, 0.0, 0.3)])
    sees = {"A": lambda p: p[:, 0] < 0.6, "B": lambda p: p[:, 0] >= 0.6}
    trk = MultiObjectTracker()
    for k in range(20):
        for cam in ("A", "B"):
            before = {t.id: t.state for t in trk.tracks()}
            after = {t.id: t.state for t in trk.update(objs[sees[cam](objs)], k / HZ, observable=sees[cam])}
            assert set(before) <= set(after)
            assert not any(before[i] == TrackState.CONFIRMED and after[i] == TrackState.LOST for i in before)
    assert [t.id for t in trk.confirmed_tracks(include_lost=False)] == [1, 2, 3, 4, 5, 6]


def test_a_sensor_outage_longer_than_max_age_costs_no_track():
    """1.5 s without any input (max_age_s = 1 s); the first update after it misses two
    objects: all six keep their ids; an object gone for good still dies max_age_s later."""
    rng = np.random.default_rng(4)
    objs = _grid(6)
    trk = MultiObjectTracker()
    for k in range(30):
        trk.update(objs + rng.normal(0, 0.003, objs.shape), k / HZ)
    ids = [t.id for t in trk.confirmed_tracks()]
    t0 = 29 / HZ + 1.5
    trk.update(objs[2:], t0)
    for k in range(1, 15):
        trk.update(objs + rng.normal(0, 0.003, objs.shape), t0 + k / HZ)
    assert [t.id for t in trk.confirmed_tracks()] == ids == [1, 2, 3, 4, 5, 6]
    gone = next(k for k in range(15, 60) if 6 not in [t.id for t in trk.update(objs[:5], t0 + k / HZ)])
    assert (gone - 14) / HZ <= 1.0 + 1e-9                                       # object 6 leaves: deleted
    # before issue 16 (no outage rule) objects 1 and 2 were deleted at t0 and reborn
    old = MultiObjectTracker(outage_s=10.0)
    for k in range(30):
        old.update(objs, k / HZ)
    assert len(old.update(objs[2:], t0)) == 4


@pytest.mark.parametrize("late_s", [0.001, 0.02, 0.09])
def test_a_late_set_is_processed_in_stamp_order(late_s):
    """B's set for t arrives after A's set for t + late_s: accepted, and the tracks equal
    those of the same sets fed in stamp order (before: every B set was rejected)."""
    rng = np.random.default_rng(5)
    objs = _grid(4)
    sets = []
    for k in range(20):
        sets.append((k / HZ + late_s, objs + rng.normal(0, 0.003, objs.shape)))
        sets.append((k / HZ, objs[1:] + rng.normal(0, 0.003, (3, 3))))
    trk, ref = MultiObjectTracker(), MultiObjectTracker()
    for t, z in sets:
        trk.update(z, t)
    for t, z in sorted(sets, key=lambda s: s[0]):
        ref.update(z, t)
    got, want = trk.tracks(), ref.tracks()
    assert [(t.id, t.state, t.hits) for t in got] == [(t.id, t.state, t.hits) for t in want]
    np.testing.assert_allclose([t.state_mean for t in got], [t.state_mean for t in want], atol=1e-12)
    assert trk.stamp_s == ref.stamp_s


def test_a_set_later_than_the_tolerance_raises_and_changes_nothing():
    trk = MultiObjectTracker()
    for k in range(10):
        trk.update(_grid(2), k / HZ)
    before = [(t.id, t.state_mean.tolist()) for t in trk.tracks()]
    with pytest.raises(OutOfOrderStamp):
        trk.update(_grid(2), 9 / HZ - 0.15)
    with pytest.raises(OutOfOrderStamp):
        trk.predict(9 / HZ - 0.01)                        # a late predict carries nothing
    assert [(t.id, t.state_mean.tolist()) for t in trk.tracks()] == before
    strict = MultiObjectTracker(late_tolerance_s=0.0)       # 0: every late set is rejected
    strict.update(_grid(1), 1.0)
    with pytest.raises(OutOfOrderStamp):
        strict.update(_grid(1), 0.999)


def test_a_jump_back_of_half_a_second_costs_one_update():
    """The stamps jump back 0.5 s (< TIME_JUMP_S) and go on at 15 Hz: the first update
    after the jump is rejected, the second starts a new time base (before: 8 of the next
    150 were rejected, and the tracker predicted backwards in time once they passed)."""
    objs = _grid(3)
    trk = MultiObjectTracker()
    for k in range(30):
        trk.update(objs, k / HZ)
    t0 = 29 / HZ - 0.5
    raised = 0
    jumps = []
    for k in range(150):
        try:
            trk.update(objs, t0 + k / HZ)
            jumps.append(trk.last_time_jump_s)
        except OutOfOrderStamp:
            raised += 1
    assert raised == 1
    assert jumps[0] == pytest.approx(29 / HZ - t0 - 1 / HZ) and jumps[1:] == [None] * 148
    assert [t.id for t in trk.confirmed_tracks()] == [1, 2, 3]            # ids restarted at 1


def test_a_repeated_late_stamp_is_not_a_new_time_base():
    trk = MultiObjectTracker()
    for k in range(10):
        trk.update(_grid(2), k / HZ)
    for _ in range(3):                                 # the same stale message, again and again
        with pytest.raises(OutOfOrderStamp):
            trk.update(_grid(2), 0.2)
    assert [t.id for t in trk.tracks()] == [1, 2]


def test_a_vague_lost_track_is_deleted_but_an_unseen_one_is_not():
    """A young fast track and a still object's track, missed in view, are deleted once their
    position sigma passes max_position_std_m (before max_age_s); out of view only max_age_s
    counts; max_position_std_m = inf: max_age_s alone."""
    for limit, lives in ((0.1, range(2, 10)), (np.inf, [15])):
        trk = MultiObjectTracker(max_position_std_m=limit)
        for k, x in enumerate((0.30, 0.40, 0.48, 0.55)):      # 4 hits on a line at 1.5 m/s
            trk.update([[x, 0.0, 0.02]], k / HZ)
        assert [t.state for t in trk.tracks()] == [TrackState.CONFIRMED]
        assert next(m for m in range(1, 30) if not trk.update(np.zeros((0, 3)), (3 + m) / HZ)) - 1 in lives
    still = MultiObjectTracker()
    for k in range(15):
        still.update([[0.5, 0.0, 0.02]], k / HZ)
    lived = next(k for k in range(15, 60) if not still.update(np.zeros((0, 3)), k / HZ)) - 14
    assert 4 <= lived <= 10                                # 0.27-0.67 s, less than max_age_s
    hidden = MultiObjectTracker()
    for k in range(15):
        hidden.update([[0.5, 0.0, 0.02]], k / HZ)
    for k in range(15, 60):                                # out of view for 3 s, then missed in view
        hidden.update(np.zeros((0, 3)), k / HZ, observable=lambda p: np.zeros(len(p), dtype=bool))
    for k in range(60, 70):
        out = hidden.update(np.zeros((0, 3)), k / HZ)
    assert [t.id for t in out] == [1]                      # max_age_s (1 s) from its first miss in view


# -------------------------------------------------------------------------- large N

def test_the_k_d_tree_path_gives_the_dense_answer(monkeypatch):
    rng = np.random.default_rng(7)
    objs = np.column_stack([rng.uniform(0, 1.5, 80), rng.uniform(-0.75, 0.75, 80), np.full(80, 0.02)])
    frames = [objs + rng.normal(0, 0.004, objs.shape) + 0.01 * k * np.array([1, 0, 0]) for k in range(12)]
    frames = [f[rng.random(len(f)) < 0.9] for f in frames]          # misses: partial matches
    runs = []
    for dense in (10**9, 0):
        monkeypatch.setattr(tracking, "DENSE_PAIRS", dense)
        trk = MultiObjectTracker()
        for k, z in enumerate(frames):
            out = trk.update(z, k / HZ)
        runs.append([(t.id, t.state, t.hits, tuple(np.round(t.position, 12))) for t in out])
    assert runs[0] == runs[1] and len(runs[0]) >= 70


@pytest.mark.parametrize("dense_cells", [4096, 0], ids=["one block", "per component"])
def test_sparse_gain_assignment_equals_the_dense_solver(monkeypatch, dense_cells):
    from fdl_robot.core import assignment
    monkeypatch.setattr(assignment, "DENSE_CELLS", dense_cells)
    rng = np.random.default_rng(8)
    for trial in range(200):
        n, m = rng.integers(1, 9, 2)
        cost = rng.uniform(0, 10, (n, m))
        cost[rng.random((n, m)) < 0.6] = np.inf
        i, j = np.nonzero(np.isfinite(cost))
        r, c = sparse_gain_assignment(i, j, cost[i, j], 6.0)
        r0, c0 = hungarian(cost, max_cost=6.0, maximize_matches=False)
        gain = lambda rr, cc: float(np.sum(6.0 - cost[rr, cc]))     # noqa: E731
        assert gain(r, c) == pytest.approx(gain(r0, c0)), trial
        assert len(set(r.tolist())) == len(r) and len(set(c.tolist())) == len(c)
        assert np.all(cost[r, c] <= 6.0)

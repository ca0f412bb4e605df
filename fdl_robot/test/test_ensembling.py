"""Tests of fdl_robot.core.ensembling: ACT temporal ensembling and chunked execution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdl_robot.core.ensembling import (
    ActionScheduler,
    ChunkedExecutor,
    TemporalEnsembler,
    ensemble_weights,
    temporal_ensemble,
)


def coded_chunk(t: int, k: int) -> np.ndarray:
    """Chunk made at step t whose prediction for step t + j is 10 t + j (A = 1)."""
    return (10.0 * t + np.arange(k))[:, None]


def run(scheduler, chunks):
    return np.array([scheduler.update(c) for c in chunks])


# -------------------------------------------------------------------- by hand


def test_first_step_returns_first_action_of_first_chunk():
    ens = TemporalEnsembler(chunk_size=4, m=0.01)
    chunk = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(ens.update(chunk), [0.0, 1.0])
    assert ens.step == 1 and ens.action_dim == 2


def test_m_zero_is_the_plain_mean_of_overlapping_predictions():
    ens = TemporalEnsembler(chunk_size=3, m=0.0)
    out = run(ens, [coded_chunk(t, 3) for t in range(5)])[:, 0]
    # t=0: {0}; t=1: {1, 10}; t=2: {2, 11, 20}; t=3: {12, 21, 30}; t=4: {22, 31, 40}
    np.testing.assert_allclose(out, [0.0, 5.5, 11.0, 21.0, 31.0])


def test_oldest_prediction_gets_the_largest_weight():
    # m = ln 2: weights 1, 1/2, 1/4 from the oldest to the newest
    ens = TemporalEnsembler(chunk_size=3, m=math.log(2.0))
    out = run(ens, [coded_chunk(t, 3) for t in range(4)])[:, 0]
    assert out[1] == pytest.approx((1 * 1 + 0.5 * 10) / 1.5)                  # 4.0
    assert out[2] == pytest.approx((1 * 2 + 0.5 * 11 + 0.25 * 20) / 1.75)      # 7.142857
    assert out[3] == pytest.approx((1 * 12 + 0.5 * 21 + 0.25 * 30) / 1.75)     # 17.142857
    np.testing.assert_allclose(ensemble_weights(3, math.log(2.0)), np.array([4, 2, 1]) / 7)
    # m < 0 reverses the order (newest weighs most); any finite m is stable
    assert ensemble_weights(3, -math.log(2.0))[-1] == pytest.approx(4 / 7)
    assert np.all(np.isfinite(ensemble_weights(100, 1e3)))


def test_constant_chunks_give_the_constant():
    ens = TemporalEnsembler(chunk_size=5, m=0.3)
    a = np.array([0.1, -0.2, 0.3, 0.0, 1.5, -1.0, 1.0])  # 6 joints + gripper
    for _ in range(12):
        np.testing.assert_allclose(ens.update(np.tile(a, (5, 1))), a, rtol=1e-12)


def test_reset_forgets_history_and_action_dimension():
    ens = TemporalEnsembler(chunk_size=3, m=0.01)
    run(ens, [coded_chunk(t, 3) for t in range(4)])
    ens.reset()
    assert ens.step == 0 and ens.action_dim is None
    chunk = np.full((3, 2), 7.0)
    np.testing.assert_array_equal(ens.update(chunk), [7.0, 7.0])  # new A allowed after reset


def test_chunk_size_one_is_a_pass_through():
    ens = TemporalEnsembler(chunk_size=1)
    for v in (1.0, 2.0, 3.0):
        assert ens.update([[v]])[0] == v


@pytest.mark.parametrize(
    "chunk",
    [np.zeros((2, 1)), np.zeros(3), np.zeros((3, 1, 1)), np.full((3, 1), np.nan), np.zeros((3, 2)), None],
)
def test_ensembler_rejects_bad_chunks(chunk):
    ens = TemporalEnsembler(chunk_size=3)
    ens.update(np.zeros((3, 1)))
    with pytest.raises(ValueError):
        ens.update(chunk)
    assert ens.step == 1


@pytest.mark.parametrize("kwargs", [dict(chunk_size=0), dict(chunk_size=2.5), dict(chunk_size=3, m=np.nan)])
def test_ensembler_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        TemporalEnsembler(**kwargs)


@settings(max_examples=60, deadline=None)
@given(
    k=st.integers(1, 6),
    T=st.integers(1, 15),
    A=st.integers(1, 3),
    m=st.floats(-1.0, 2.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_stateful_equals_offline_and_is_a_convex_combination(k, T, A, m, seed):
    chunks = np.random.default_rng(seed).normal(size=(T, k, A))
    online = run(TemporalEnsembler(k, m), chunks)
    np.testing.assert_allclose(online, temporal_ensemble(chunks, m), rtol=1e-10, atol=1e-12)
    for t in range(T):
        preds = np.array([chunks[tp, t - tp] for tp in range(max(0, t - k + 1), t + 1)])
        assert np.all(online[t] >= preds.min(axis=0) - 1e-12)
        assert np.all(online[t] <= preds.max(axis=0) + 1e-12)


# -------------------------------------------------------------- chunked execution


def test_chunked_executor_runs_n_action_steps_then_asks():
    ex = ChunkedExecutor(chunk_size=4, n_action_steps=2)
    assert ex.needs_chunk
    out = []
    for t in range(6):
        out.append(ex.update(coded_chunk(t, 4) if ex.needs_chunk else None)[0])
    # chunks are taken at steps 0, 2, 4 and their first two actions executed
    assert out == [0.0, 1.0, 20.0, 21.0, 40.0, 41.0]
    assert ex.step == 6
    with pytest.raises(ValueError, match="needs_chunk"):
        ex.update(None)
    # replanning early is allowed
    ex.update(coded_chunk(9, 4))
    assert ex.update(coded_chunk(10, 4))[0] == 100.0
    ex.reset()
    assert ex.needs_chunk and ex.step == 0
    with pytest.raises(ValueError):
        ex.update()
    with pytest.raises(ValueError):
        ChunkedExecutor(chunk_size=4, n_action_steps=5)


def test_default_chunked_executor_uses_the_whole_chunk():
    ex = ChunkedExecutor(chunk_size=3)
    out = [ex.update(coded_chunk(t, 3) if ex.needs_chunk else None)[0] for t in range(6)]
    assert out == [0.0, 1.0, 2.0, 30.0, 31.0, 32.0]


@pytest.mark.parametrize("scheduler", [TemporalEnsembler(4, m=0.0), ChunkedExecutor(4, 1)])
def test_same_interface_drives_a_control_loop(scheduler):
    assert isinstance(scheduler, ActionScheduler)
    policy_calls = 0
    actions = []
    for t in range(8):
        chunk = None
        if scheduler.needs_chunk:
            policy_calls += 1
            chunk = np.full((4, 2), float(t))  # a policy whose chunks are constant
        actions.append(scheduler.update(chunk))
    assert policy_calls == 8  # both query every step here (n_action_steps = 1)
    assert np.array(actions).shape == (8, 2)

"""Tests of fdl_robot.core.assignment: seed examples, errata 3, brute force, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment

from fdl_robot.core.assignment import (
    feasible_mask,
    greedy_assignment,
    hungarian,
    match,
    matching_cost,
    unmatched_indices,
)

INF = math.inf
NAN = math.nan


def pairs(rows, cols):
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


# --------------------------------------------------------------------------- seed


def test_seed_25_3_4_detr_example_optimal_is_pred0_gt0_pred1_gt1():
    # 3 predictions x 2 ground truths.  The seed's trace mixes 0- and 1-based
    # indices; the optimum is pred0-GT0 (0.5) + pred1-GT1 (0.3) = 0.8.
    c = np.array([[0.5, 1.2], [0.8, 0.3], [1.0, 0.6]])
    rows, cols = hungarian(c)
    assert pairs(rows, cols) == [(0, 0), (1, 1)]
    assert matching_cost(c, rows, cols) == pytest.approx(0.8)
    m = match(c)
    assert m.unmatched_rows.tolist() == [2]  # pred 2 -> "no object"
    assert m.unmatched_cols.tolist() == []


def test_seed_29_4_3_tracking_example():
    # 3 detections x 2 tracks -> det0-track0, det1-track1, det2 unmatched.
    c = np.array([[0.2, 1.0], [0.8, 0.3], [1.5, 0.7]])
    m = match(c)
    assert pairs(m.rows, m.cols) == [(0, 0), (1, 1)]
    assert m.unmatched_rows.tolist() == [2]
    assert matching_cost(c, m.rows, m.cols) == pytest.approx(0.5)


def test_errata_3_greedy_is_not_optimal():
    c = np.array([[1.0, 2.0], [2.0, 100.0]])
    gr, gc = greedy_assignment(c)
    hr, hc = hungarian(c)
    assert pairs(gr, gc) == [(0, 0), (1, 1)]
    assert matching_cost(c, gr, gc) == 101.0
    assert pairs(hr, hc) == [(0, 1), (1, 0)]
    assert matching_cost(c, hr, hc) == 4.0


def test_gating_before_solving_keeps_more_pairs_than_gating_after():
    # The documented example: raw optimum {(0,0),(1,1)} loses (1,1) to the gate.
    c = np.array([[1.0, 4.0], [4.0, 6.0]])
    r, cc = linear_sum_assignment(c)
    post = [(i, j) for i, j in zip(r, cc, strict=True) if c[i, j] <= 5.0]
    assert post == [(0, 0)]
    rows, cols = hungarian(c, max_cost=5.0)
    assert pairs(rows, cols) == [(0, 1), (1, 0)]
    # greedy stops after (0, 0): the remaining (1, 1) is outside the gate
    assert pairs(*greedy_assignment(c, max_cost=5.0)) == [(0, 0)]


def test_gain_semantics_never_trades_a_good_pair_for_two_poor_ones():
    c = np.array([[1.0, 4.0], [4.0, 6.0]])
    assert pairs(*hungarian(c, 5.0, maximize_matches=False)) == [(0, 0)]
    # the tracker case: detections (rows) D1 of track T1, and a false positive C;
    # track T2's own detection was missed.  Squared Mahalanobis costs, gate 11.34.
    d2 = np.array([[0.5, 6.0], [8.0, INF]])
    assert pairs(*hungarian(d2, 11.34)) == [(0, 1), (1, 0)]         # C -> T1, D1 -> T2
    assert pairs(*hungarian(d2, 11.34, maximize_matches=False)) == [(0, 0)]  # D1 -> T1
    m = match(d2, 11.34, maximize_matches=False)
    assert m.unmatched_rows.tolist() == [1] and m.unmatched_cols.tolist() == [1]
    # seed examples: same answers as before
    assert pairs(*hungarian([[0.5, 1.2], [0.8, 0.3], [1.0, 0.6]], 2.0, maximize_matches=False)) == [
        (0, 0),
        (1, 1),
    ]
    with pytest.raises(ValueError, match="finite"):
        hungarian(c, maximize_matches=False)


def test_gate_is_inclusive_and_filters():
    c = np.array([[1.0, 9.0], [9.0, 2.0]])
    assert pairs(*hungarian(c, max_cost=2.0)) == [(0, 0), (1, 1)]
    assert pairs(*hungarian(c, max_cost=1.5)) == [(0, 0)]
    assert pairs(*hungarian(c, max_cost=0.5)) == []


def test_negative_costs_like_minus_iou():
    c = -np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.0]])
    assert pairs(*hungarian(c)) == [(0, 0), (1, 1)]


def test_huge_finite_costs_do_not_overflow():
    c = np.array([[1e308, -1e308], [-1e308, 1e308]])
    assert pairs(*hungarian(c)) == [(0, 1), (1, 0)]
    assert pairs(*hungarian(c, 1e308, maximize_matches=False)) == [(0, 1), (1, 0)]


# --------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (4, 0)])
def test_empty_matrices(shape):
    c = np.zeros(shape)
    for fn in (hungarian, greedy_assignment):
        rows, cols = fn(c)
        assert rows.shape == cols.shape == (0,)
        assert rows.dtype == cols.dtype == np.intp
    rows, cols = hungarian(c, 1.0, maximize_matches=False)
    assert rows.shape == cols.shape == (0,)
    m = match(c)
    assert m.unmatched_rows.tolist() == list(range(shape[0]))
    assert m.unmatched_cols.tolist() == list(range(shape[1]))


def test_all_forbidden_rows_columns_nan_and_infinities():
    c = np.array(
        [
            [INF, INF, INF],
            [1.0, NAN, 3.0],
            [-INF, 2.0, INF],
        ]
    )
    rows, cols = hungarian(c)
    assert pairs(rows, cols) == [(1, 0), (2, 1)]
    assert np.all(np.isfinite(c[rows, cols]))
    assert pairs(*greedy_assignment(c)) == [(1, 0), (2, 1)]
    # entirely forbidden
    assert pairs(*hungarian(c, 10.0, maximize_matches=False)) == [(1, 0), (2, 1)]
    for bad in (np.full((3, 2), INF), np.full((2, 2), NAN), np.array([[INF, NAN]])):
        assert pairs(*hungarian(bad)) == []
        assert pairs(*hungarian(bad, 1.0, maximize_matches=False)) == []
        assert pairs(*greedy_assignment(bad)) == []


def test_single_feasible_entry_and_constant_costs():
    c = np.full((3, 4), INF)
    c[2, 1] = 7.0
    assert pairs(*hungarian(c)) == [(2, 1)]
    assert len(hungarian(np.ones((3, 5)))[0]) == 3


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2, 2)), 5.0])
def test_wrong_shape_raises_value_error(bad):
    with pytest.raises(ValueError, match="2-D"):
        hungarian(bad)
    with pytest.raises(ValueError, match="2-D"):
        greedy_assignment(bad)


def test_nan_gate_raises_and_unknown_method_raises():
    with pytest.raises(ValueError, match="NaN"):
        hungarian(np.zeros((2, 2)), max_cost=NAN)
    with pytest.raises(ValueError, match="method"):
        match(np.zeros((2, 2)), method="auction")


def test_helpers():
    assert unmatched_indices(5, [3, 0]).tolist() == [1, 2, 4]
    assert unmatched_indices(0, []).tolist() == []
    assert feasible_mask([[1.0, NAN, INF, 3.0]], 2.0).tolist() == [[True, False, False, False]]
    assert matching_cost(np.zeros((2, 2)), [], []) == 0.0


def test_accepts_lists_and_int_matrices():
    assert pairs(*hungarian([[3, 1], [1, 3]])) == [(0, 1), (1, 0)]


# ------------------------------------------------------------ brute force (property)


def brute_force(c: np.ndarray, max_cost: float) -> tuple[int, float]:
    """(max number of feasible pairs, min total cost among those), by enumeration."""
    n, m = c.shape
    feas = np.isfinite(c) & (c <= max_cost)
    best = (0, 0.0)

    def rec(i: int, used: frozenset, count: int, total: float) -> None:
        nonlocal best
        if i == n:
            if count > best[0] or (count == best[0] and total < best[1]):
                best = (count, total)
            return
        rec(i + 1, used, count, total)  # row i unmatched
        for j in range(m):
            if j not in used and feas[i, j]:
                rec(i + 1, used | {j}, count + 1, total + c[i, j])

    rec(0, frozenset(), 0, 0.0)
    return best


entries = st.one_of(
    st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False),
    st.integers(0, 4).map(float),  # many ties
    st.just(INF),
    st.just(NAN),
    st.just(-INF),
)
matrices = st.tuples(st.integers(0, 5), st.integers(0, 5)).flatmap(
    lambda s: arrays(np.float64, s, elements=entries)
)
gates = st.one_of(st.just(INF), st.floats(-10.0, 10.0))


@settings(max_examples=100, deadline=None)
@given(c=matrices, gate=gates)
def test_hungarian_matches_brute_force_and_beats_greedy(c, gate):
    rows, cols = hungarian(c, gate)
    # valid: distinct rows/cols, every pair feasible, rows ascending
    assert len(set(rows.tolist())) == len(rows) == len(cols) == len(set(cols.tolist()))
    assert np.all(np.diff(rows) > 0)
    assert np.all(feasible_mask(c, gate)[rows, cols])
    # optimal in the documented sense: most pairs, then least cost
    n_best, cost_best = brute_force(c, gate)
    assert len(rows) == n_best
    assert math.isclose(matching_cost(c, rows, cols), cost_best, rel_tol=1e-9, abs_tol=1e-9)
    # never worse than greedy, lexicographically (more pairs, then lower cost)
    gr, gc = greedy_assignment(c, gate)
    assert np.all(feasible_mask(c, gate)[gr, gc])
    assert len(rows) >= len(gr)
    if len(rows) == len(gr):
        assert matching_cost(c, rows, cols) <= matching_cost(c, gr, gc) + 1e-9


def brute_force_gain(c: np.ndarray, max_cost: float) -> float:
    """max over matchings of feasible pairs of sum (max_cost - C_ij), by enumeration."""
    n, m = c.shape
    feas = np.isfinite(c) & (c <= max_cost)
    best = 0.0

    def rec(i: int, used: frozenset, gain: float) -> None:
        nonlocal best
        if i == n:
            best = max(best, gain)
            return
        rec(i + 1, used, gain)
        for j in range(m):
            if j not in used and feas[i, j]:
                rec(i + 1, used | {j}, gain + max_cost - c[i, j])

    rec(0, frozenset(), 0.0)
    return best


@settings(max_examples=100, deadline=None)
@given(c=matrices, gate=st.floats(-10.0, 10.0))
def test_gain_semantics_matches_brute_force(c, gate):
    rows, cols = hungarian(c, gate, maximize_matches=False)
    assert len(set(rows.tolist())) == len(rows) == len(cols) == len(set(cols.tolist()))
    assert np.all(np.diff(rows) > 0)
    assert np.all(feasible_mask(c, gate)[rows, cols])
    gain = float(np.sum(gate - c[rows, cols]))
    assert math.isclose(gain, brute_force_gain(c, gate), rel_tol=1e-9, abs_tol=1e-9)
    # never more pairs than the maximum-cardinality solution
    assert len(rows) <= len(hungarian(c, gate)[0])

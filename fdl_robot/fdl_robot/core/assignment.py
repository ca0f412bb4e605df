"""Optimal (Hungarian) and greedy assignment with gating (seed §25.3, §29.4.2).

The problem
-----------
A cost matrix ``C`` (N x M) scores every pairing of a row item with a column item:
predictions x ground truths for DETR's bipartite loss, detections x tracks for a
tracker.  Lower is better; costs may be negative (e.g. ``-IoU``).  A *matching* is a
set of pairs ``(i, j)`` that uses every row and every column at most once.

A pair is **feasible** when ``C[i, j]`` is finite and ``C[i, j] <= max_cost`` (the
*gate*).  ``+inf``, ``-inf`` and ``NaN`` all mean "forbidden": such a pair is never
returned, whatever the other entries are.  Nothing in this module raises on
forbidden entries, all-forbidden rows or columns, or empty (0 x M, N x 0) matrices.

Semantics of :func:`hungarian` (gate first, then solve)
--------------------------------------------------------
Among all matchings made of feasible pairs only, :func:`hungarian` returns one with

1. the **largest number of pairs**, and among those
2. the **smallest total cost** ``sum_k C[rows[k], cols[k]]``.

This is the *maximum-cardinality minimum-cost* matching, the default.  It fits when
every pair inside the gate is a plausible association and leaving one unmatched is
worse than any in-gate match (CLEAR-MOT evaluation, :mod:`fdl_robot.core.mot_metrics`,
matches this way).  A tracker in clutter wants the gain semantics below instead.

How it is solved.  ``scipy.optimize.linear_sum_assignment`` (an exact
Jonker-Volgenant / Hungarian solver) needs finite entries and always returns
``k = min(N, M)`` pairs.  We therefore

* map the feasible costs affinely into ``[0, 1]``:
  ``w = (c - c_min) / (c_max - c_min)`` (an increasing map, so among matchings with
  the same number of pairs the ranking by total cost is unchanged: the total moves by
  the same ``k_feasible * c_min`` and is scaled by the same positive factor);
* give every forbidden pair the finite weight ``B = k + 1``;
* solve, and drop the forbidden pairs from the answer.

Why ``B = k + 1`` is big enough: the feasible part of any returned matching sums to
at most ``k`` (at most k pairs, each weight <= 1).  A matching with one more feasible
pair trades one ``B`` for a feasible weight, lowering the total by at least
``B - k = 1 > 0``; so the solver first maximises the number of feasible pairs and
then minimises their cost.  Any feasible partial matching can be completed with
forbidden pairs to the k pairs the solver returns, so nothing is lost by the
completion.  Normalising first keeps ``B`` small, so the float64 sums resolve cost
differences down to about ``1e-13`` of the feasible cost range and never overflow.

Why not "solve on the raw costs, gate afterwards" (the usual SORT-style shortcut)?
The unconstrained optimum may pay for one out-of-gate pair to save cost elsewhere
and then loses that pair to the gate, although a matching with more in-gate pairs
exists.  With ``C = [[1, 4], [4, 6]]`` and ``max_cost = 5`` the raw optimum is
``{(0,0), (1,1)}`` (total 7); gating drops ``(1,1)`` (cost 6) and leaves one pair,
while ``{(0,1), (1,0)}`` matches both rows inside the gate (total 8).  Gating first
returns the latter.

Gain semantics (``maximize_matches=False``)
-------------------------------------------
The other standard choice treats the gate as the price of leaving things unmatched:
every pair earns ``max_cost - C_ij >= 0`` and the matching maximises the total gain,
i.e. minimises ``sum (C_ij - max_cost)``.  This equals charging ``max_cost / 2`` for
every unmatched row and every unmatched column (MATLAB
``assignDetectionsToTracks(cost, costOfNonAssignment)``, ``lap.lapjv(cost,
cost_limit=max_cost)``).  On the example above it prefers the single pair
``(0, 0)`` (gain 4) to the two pairs (gain 1 + 1).  It never trades a good pair for
two poor ones, which is what a tracker in clutter needs: when one of two nearby
objects is missed, maximising the number of matches would hand the missed track the
other object's detection and give the other track a nearby false positive, while
the gain solution keeps the good pair and lets the missed track coast.  The
multi-object tracker uses it.  It is solved exactly: feasible pairs weigh
``C_ij - max_cost <= 0`` and forbidden pairs 0 (the same as unmatched), so no big
constant is needed.

Sparse candidates (many objects)
--------------------------------
:func:`sparse_gain_assignment` solves the gain semantics on a list of candidate pairs
(``rows[k], cols[k], cost[k]``) instead of a full matrix: a pair not listed is forbidden.
The candidate graph (rows and columns as nodes, pairs as edges) falls apart into connected
components, and the optimum is the union of the components' optima (no pair joins two
components).  A component of one pair is taken as it is (its gain is >= 0); the others are
solved exactly with :func:`hungarian` on their own small matrices.  When every row and
column has at most one candidate the answer is all the candidates, found without a solver;
a small problem (at most ``DENSE_CELLS`` cells over the rows and columns involved) is one
dense solve.  So 1000 well separated objects cost O(pairs), not O(N M) memory and a
1000 x 1000 solve.

Greedy (the seed's "simplified Hungarian", errata 3)
----------------------------------------------------
:func:`greedy_assignment` repeatedly takes the globally cheapest feasible entry and
removes its row and column.  It is **not** optimal: on ``[[1, 2], [2, 100]]`` it
returns ``{(0,0), (1,1)}`` with total 101, while the optimum ``{(0,1), (1,0)}`` costs
4.  It is kept only to demonstrate that.  Because it may also stop with fewer pairs
than possible, :func:`hungarian` is never worse than greedy in the lexicographic
order (more pairs first, then lower cost) -- but it can have a *higher* total when it
matches more pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

__all__ = [
    "Matching",
    "feasible_mask",
    "greedy_assignment",
    "hungarian",
    "match",
    "matching_cost",
    "sparse_gain_assignment",
    "unmatched_indices",
]

IntArray = NDArray[np.intp]


class Matching(NamedTuple):
    """Result of :func:`match`: matched pairs plus the leftovers on each side."""

    rows: IntArray
    """Row index of each matched pair (ascending)."""
    cols: IntArray
    """Column index of each matched pair (``cols[k]`` goes with ``rows[k]``)."""
    unmatched_rows: IntArray
    """Rows that are in no pair (ascending)."""
    unmatched_cols: IntArray
    """Columns that are in no pair (ascending)."""


def _as_cost_matrix(cost: ArrayLike) -> NDArray[np.float64]:
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D (N x M) matrix, got shape {c.shape}")
    return c


def _check_max_cost(max_cost: float) -> float:
    g = float(max_cost)
    if np.isnan(g):
        raise ValueError("max_cost must not be NaN (use inf for 'no gate')")
    return g


def _empty() -> tuple[IntArray, IntArray]:
    return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)


def feasible_mask(cost: ArrayLike, max_cost: float = np.inf) -> NDArray[np.bool_]:
    """Boolean N x M mask of feasible pairs: ``isfinite(C) & (C <= max_cost)``.

    NaN and +-inf entries are infeasible (forbidden).
    """
    c = _as_cost_matrix(cost)
    g = _check_max_cost(max_cost)
    with np.errstate(invalid="ignore"):
        return np.isfinite(c) & (c <= g)


def hungarian(
    cost: ArrayLike, max_cost: float = np.inf, *, maximize_matches: bool = True
) -> tuple[IntArray, IntArray]:
    """Optimal gated assignment on a rectangular cost matrix.

    Parameters
    ----------
    cost
        N x M matrix, lower is better.  NaN and +-inf entries are forbidden pairs.
    max_cost
        Gate: pairs with ``cost > max_cost`` are forbidden (``<=`` is allowed).
    maximize_matches
        True (default): the matching with the most feasible pairs and, among
        those, the least total cost.  False: the matching that maximises the total
        gain ``sum (max_cost - C_ij)`` of its (feasible) pairs, i.e. a pair is taken
        only when it pays for itself against the gate; ``max_cost`` must then be
        finite.  See the module docstring.

    Returns
    -------
    rows, cols
        Integer arrays of equal length ``K <= min(N, M)``, rows ascending, such that
        the pairs ``(rows[k], cols[k])`` are feasible and optimal in the chosen sense
        (the gate is applied *before* solving).  Empty arrays when nothing is
        feasible or the matrix is empty.

    Raises
    ------
    ValueError
        If ``cost`` is not 2-D, ``max_cost`` is NaN, or ``maximize_matches`` is
        False with an infinite ``max_cost``.
    """
    c = _as_cost_matrix(cost)
    feasible = feasible_mask(c, max_cost)
    if not maximize_matches and not np.isfinite(max_cost):
        raise ValueError("maximize_matches=False needs a finite max_cost (the value of a pair)")
    n, m = c.shape
    if n == 0 or m == 0 or not feasible.any():
        return _empty()

    if not maximize_matches:
        # Gain semantics: minimise sum (C_ij - max_cost) <= 0 over feasible pairs.
        # Forbidden pairs weigh 0, exactly like leaving both ends unmatched, so the
        # solver's completion to min(N, M) pairs changes nothing.
        # (Both terms are divided by the largest magnitude first: no overflow.)  Pairs of
        # zero gain (C_ij == max_cost) may or may not be returned: both are optimal.
        gate = float(max_cost)
        vals = c[feasible]
        scale = max(float(np.max(np.abs(vals))), abs(gate)) or 1.0
        weights = np.zeros((n, m))
        weights[feasible] = vals / scale - gate / scale
        rows, cols = linear_sum_assignment(weights)
        keep = feasible[rows, cols]
        return rows[keep].astype(np.intp), cols[keep].astype(np.intp)

    # Map the feasible costs into [0, 1] without overflow (divide by the largest
    # magnitude first, so c - c_min stays finite even for costs near 1e308).
    vals = c[feasible]
    scale = float(np.max(np.abs(vals)))
    vals = vals / scale if scale > 0.0 else vals
    lo = float(vals.min())
    span = float(vals.max()) - lo
    k = min(n, m)
    weights = np.full((n, m), float(k + 1))  # B = k + 1 for forbidden pairs
    weights[feasible] = (vals - lo) / span if span > 0.0 else 0.0

    rows, cols = linear_sum_assignment(weights)
    keep = feasible[rows, cols]
    return rows[keep].astype(np.intp), cols[keep].astype(np.intp)


def greedy_assignment(cost: ArrayLike, max_cost: float = np.inf) -> tuple[IntArray, IntArray]:
    """The seed's §25.3 "simplified Hungarian": repeatedly take the global minimum.

    Take the cheapest feasible entry, add the pair, delete its row and column, repeat
    until no feasible entry is left.  Ties are broken in row-major order.  Returned
    rows are ascending.  Not optimal (see the module docstring, errata 3); use
    :func:`hungarian`.
    """
    c = _as_cost_matrix(cost)
    feasible = feasible_mask(c, max_cost)
    n, m = c.shape
    flat = np.flatnonzero(feasible)
    # A stable sort of the feasible entries visits them in the order "repeated global
    # minimum" would, so one sweep that skips used rows/columns is equivalent.
    order = flat[np.argsort(c.ravel()[flat], kind="stable")]
    row_used = np.zeros(n, dtype=bool)
    col_used = np.zeros(m, dtype=bool)
    rows: list[int] = []
    cols: list[int] = []
    for idx in order:
        i, j = divmod(int(idx), m)
        if row_used[i] or col_used[j]:
            continue
        row_used[i] = col_used[j] = True
        rows.append(i)
        cols.append(j)
        if len(rows) == min(n, m):
            break
    r = np.asarray(rows, dtype=np.intp)
    cc = np.asarray(cols, dtype=np.intp)
    by_row = np.argsort(r, kind="stable")
    return r[by_row], cc[by_row]


def unmatched_indices(n: int, matched: ArrayLike) -> IntArray:
    """Indices in ``range(n)`` that do not appear in ``matched`` (ascending)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    free = np.ones(int(n), dtype=bool)
    free[np.asarray(matched, dtype=np.intp)] = False
    return np.flatnonzero(free).astype(np.intp)


def matching_cost(cost: ArrayLike, rows: ArrayLike, cols: ArrayLike) -> float:
    """Total cost ``sum_k C[rows[k], cols[k]]`` of a matching (0.0 when empty)."""
    c = _as_cost_matrix(cost)
    r = np.asarray(rows, dtype=np.intp)
    cc = np.asarray(cols, dtype=np.intp)
    if r.shape != cc.shape or r.ndim != 1:
        raise ValueError(f"rows and cols must be 1-D of equal length, got {r.shape}, {cc.shape}")
    return float(c[r, cc].sum())


def match(
    cost: ArrayLike,
    max_cost: float = np.inf,
    method: str = "hungarian",
    *,
    maximize_matches: bool = True,
) -> Matching:
    """Assignment plus unmatched rows and columns, with ``method`` "hungarian" or "greedy".

    ``maximize_matches`` is passed to :func:`hungarian` (ignored by greedy).
    """
    c = _as_cost_matrix(cost)
    if method == "hungarian":
        rows, cols = hungarian(c, max_cost, maximize_matches=maximize_matches)
    elif method == "greedy":
        rows, cols = greedy_assignment(c, max_cost)
    else:
        raise ValueError(f"method must be 'hungarian' or 'greedy', got {method!r}")
    n, m = c.shape
    return Matching(rows, cols, unmatched_indices(n, rows), unmatched_indices(m, cols))


DENSE_CELLS = 4096
"""Up to this many cells (rows x columns involved) :func:`sparse_gain_assignment` solves in one matrix."""


def sparse_gain_assignment(
    rows: ArrayLike, cols: ArrayLike, cost: ArrayLike, max_cost: float
) -> tuple[IntArray, IntArray]:
    """The gain-semantics assignment (``hungarian(..., maximize_matches=False)``) over the
    candidate pairs ``(rows[k], cols[k])`` with costs ``cost[k]`` (module doc, "Sparse
    candidates").  Pairs must be unique; non-finite costs and costs above ``max_cost`` are
    forbidden.  Returns (rows, cols) of the chosen pairs, rows ascending."""
    r = np.asarray(rows, dtype=np.intp)
    c = np.asarray(cols, dtype=np.intp)
    w = np.asarray(cost, dtype=np.float64)
    ok = np.isfinite(w) & (w <= max_cost)
    if not ok.all():
        r, c, w = r[ok], c[ok], w[ok]
    if len(r) == 0:
        return _empty()
    if np.bincount(r).max() <= 1 and np.bincount(c).max() <= 1:     # nothing to decide
        order = np.argsort(r, kind="stable")
        return r[order], c[order]
    ur, ir = np.unique(r, return_inverse=True)
    uc, ic = np.unique(c, return_inverse=True)
    if len(ur) * len(uc) <= DENSE_CELLS:
        return _solve_block(ur, uc, ir, ic, w, max_cost)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(ir)), (ir, len(ur) + ic)), shape=(len(ur) + len(uc),) * 2)
    _, label = connected_components(graph, directed=False)
    comp = label[ir]
    sizes = np.bincount(comp)
    single = sizes[comp] == 1
    out_r, out_c = [r[single]], [c[single]]
    multi = np.flatnonzero(~single)
    multi = multi[np.argsort(comp[multi], kind="stable")]
    for seg in np.split(multi, np.flatnonzero(np.diff(comp[multi])) + 1):
        sr, sir = np.unique(r[seg], return_inverse=True)
        sc, sic = np.unique(c[seg], return_inverse=True)
        a, b = _solve_block(sr, sc, sir, sic, w[seg], max_cost)
        out_r.append(a)
        out_c.append(b)
    r, c = np.concatenate(out_r), np.concatenate(out_c)
    order = np.argsort(r, kind="stable")
    return r[order], c[order]


def _solve_block(ur: IntArray, uc: IntArray, ir: IntArray, ic: IntArray, w: NDArray,
                 max_cost: float) -> tuple[IntArray, IntArray]:
    """The gain assignment of the pairs (ur[ir], uc[ic]) in one dense matrix."""
    dense = np.full((len(ur), len(uc)), np.inf)
    dense[ir, ic] = w
    a, b = hungarian(dense, max_cost=max_cost, maximize_matches=False)
    return ur[a], uc[b]

"""CLEAR-MOT evaluation of a 3-D (or 2-D) tracker against ground truth.

Per frame t, ground-truth objects (ids, positions in metres) are matched to tracker
hypotheses (ids, positions in the same frame) as in Bernardin & Stiefelhagen (2008):

1. Keep last frame's correspondences ``gt -> hyp`` whose two ids are both present
   and whose distance is still ``<= max_distance_m``.
2. Match the remaining objects and hypotheses with the optimal gated assignment
   (:func:`fdl_robot.core.assignment.hungarian`) on Euclidean distance with the gate
   ``max_distance_m``.
3. A new correspondence whose ground-truth object was last matched to a *different*
   hypothesis id is an **identity switch** (IDSW).

Unmatched ground truths are misses (FN), unmatched hypotheses false positives (FP)::

    MOTA = 1 - (FN + FP + IDSW) / GT        (GT = sum over frames of #objects)
    RMSE = sqrt(mean ||p_hyp - p_gt||^2)     over all matched pairs (m)
    MOTP = mean ||p_hyp - p_gt||             over all matched pairs (m)

IDF1 (Ristani et al. 2016) scores identities over the whole sequence instead of frame by
frame: every (frame, gt, hyp) pair within ``max_distance_m`` is a co-occurrence of the
identities (gt, hyp); the best one-to-one mapping of gt identities to hypothesis
identities (Hungarian on the co-occurrence counts) keeps IDTP of them::

    IDF1 = 2 IDTP / (#gt detections + #hyp detections)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from fdl_robot.core.assignment import hungarian

__all__ = ["MOTAccumulator", "MOTSummary", "evaluate_mot", "idf1"]


@dataclass(frozen=True)
class MOTSummary:
    """Totals over a sequence; distances in metres."""

    num_frames: int
    num_gt: int
    num_matches: int
    num_misses: int
    num_false_positives: int
    num_switches: int
    mota: float
    rmse_m: float
    motp_m: float

    def __str__(self) -> str:
        return (
            f"frames={self.num_frames} GT={self.num_gt} TP={self.num_matches} "
            f"FN={self.num_misses} FP={self.num_false_positives} IDSW={self.num_switches} "
            f"MOTA={self.mota:.4f} RMSE={self.rmse_m * 1000:.2f} mm "
            f"MOTP={self.motp_m * 1000:.2f} mm"
        )


def _ids_and_points(ids: ArrayLike, points: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    i = np.asarray(ids).reshape(-1)
    p = np.asarray(points, dtype=np.float64)
    if p.size == 0:
        p = p.reshape(0, p.shape[-1] if p.ndim == 2 else 3)
    if p.ndim != 2 or len(p) != len(i):
        raise ValueError(
            f"{what}: expected ids (N,) and positions (N, D), got {i.shape}, {p.shape}"
        )
    if len(np.unique(i)) != len(i):
        raise ValueError(f"{what}: ids must be unique within a frame")
    return i, p


class MOTAccumulator:
    """Accumulates CLEAR-MOT counts frame by frame; see the module docstring."""

    def __init__(self, max_distance_m: float = 0.05) -> None:
        if not max_distance_m > 0.0:
            raise ValueError(f"max_distance_m must be > 0, got {max_distance_m}")
        self.max_distance_m = float(max_distance_m)
        self._prev: dict = {}       # gt id -> hyp id matched in the previous frame
        self._last: dict = {}       # gt id -> hyp id of its most recent match ever
        self._frames = self._gt = self._tp = self._fn = self._fp = self._sw = 0
        self._sum_d = self._sum_d2 = 0.0

    def update(
        self,
        gt_ids: ArrayLike,
        gt_positions: ArrayLike,
        hyp_ids: ArrayLike,
        hyp_positions: ArrayLike,
    ) -> None:
        """Add one frame: ground truth (G,) ids + (G, D) positions, hypotheses (H,) + (H, D)."""
        g_ids, g_pos = _ids_and_points(gt_ids, gt_positions, "ground truth")
        h_ids, h_pos = _ids_and_points(hyp_ids, hyp_positions, "hypotheses")
        if len(g_pos) and len(h_pos) and g_pos.shape[1] != h_pos.shape[1]:
            raise ValueError("ground truth and hypotheses must have the same dimension")
        dist = np.linalg.norm(g_pos[:, None, :] - h_pos[None, :, :], axis=-1) if (
            len(g_pos) and len(h_pos)) else np.zeros((len(g_pos), len(h_pos)))
        h_index = {h: j for j, h in enumerate(h_ids.tolist())}

        pairs: list[tuple[int, int]] = []
        g_free = np.ones(len(g_ids), dtype=bool)
        h_free = np.ones(len(h_ids), dtype=bool)
        # 1. keep last frame's correspondences that are still valid
        for i, g in enumerate(g_ids.tolist()):
            j = h_index.get(self._prev.get(g))
            if j is not None and h_free[j] and dist[i, j] <= self.max_distance_m:
                pairs.append((i, j))
                g_free[i] = h_free[j] = False
        # 2. optimal gated assignment of the rest
        gi, hj = np.flatnonzero(g_free), np.flatnonzero(h_free)
        r, c = hungarian(dist[np.ix_(gi, hj)], max_cost=self.max_distance_m)
        new_pairs = list(zip(gi[r].tolist(), hj[c].tolist(), strict=True))
        # 3. identity switches among the new correspondences
        for i, j in new_pairs:
            g = g_ids[i].item()
            if g in self._last and self._last[g] != h_ids[j].item():
                self._sw += 1
        pairs += new_pairs

        self._prev = {g_ids[i].item(): h_ids[j].item() for i, j in pairs}
        self._last.update(self._prev)
        d = np.array([dist[i, j] for i, j in pairs])
        self._frames += 1
        self._gt += len(g_ids)
        self._tp += len(pairs)
        self._fn += len(g_ids) - len(pairs)
        self._fp += len(h_ids) - len(pairs)
        self._sum_d += float(d.sum())
        self._sum_d2 += float((d**2).sum())

    def summary(self) -> MOTSummary:
        """MOTA (NaN without ground truth), IDSW, RMSE/MOTP (NaN without matches)."""
        mota = 1.0 - (self._fn + self._fp + self._sw) / self._gt if self._gt else float("nan")
        rmse = float(np.sqrt(self._sum_d2 / self._tp)) if self._tp else float("nan")
        motp = self._sum_d / self._tp if self._tp else float("nan")
        return MOTSummary(
            num_frames=self._frames,
            num_gt=self._gt,
            num_matches=self._tp,
            num_misses=self._fn,
            num_false_positives=self._fp,
            num_switches=self._sw,
            mota=mota,
            rmse_m=rmse,
            motp_m=motp,
        )


def evaluate_mot(
    frames: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]],
    max_distance_m: float = 0.05,
) -> MOTSummary:
    """CLEAR-MOT over ``(gt_ids, gt_positions, hyp_ids, hyp_positions)`` per frame."""
    acc = MOTAccumulator(max_distance_m)
    for gt_ids, gt_pos, hyp_ids, hyp_pos in frames:
        acc.update(gt_ids, gt_pos, hyp_ids, hyp_pos)
    return acc.summary()


def idf1(
    frames: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]],
    max_distance_m: float = 0.05,
) -> float:
    """IDF1 of ``(gt_ids, gt_positions, hyp_ids, hyp_positions)`` per frame (module docstring).

    NaN without any detection; 0 when no pair ever comes within ``max_distance_m``.
    """
    from scipy.optimize import linear_sum_assignment

    counts: dict[tuple, int] = {}
    n_gt = n_hyp = 0
    for gt_ids, gt_pos, hyp_ids, hyp_pos in frames:
        g_ids, g_pos = _ids_and_points(gt_ids, gt_pos, "ground truth")
        h_ids, h_pos = _ids_and_points(hyp_ids, hyp_pos, "hypotheses")
        n_gt, n_hyp = n_gt + len(g_ids), n_hyp + len(h_ids)
        if len(g_ids) and len(h_ids):
            d = np.linalg.norm(g_pos[:, None] - h_pos[None], axis=-1)
            g_list, h_list = g_ids.tolist(), h_ids.tolist()
            for i, j in zip(*np.nonzero(d <= max_distance_m), strict=True):
                key = (g_list[i], h_list[j])
                counts[key] = counts.get(key, 0) + 1
    if n_gt + n_hyp == 0:
        return float("nan")
    if not counts:
        return 0.0
    gts = sorted({g for g, _ in counts}, key=str)
    hyps = sorted({h for _, h in counts}, key=str)
    m = np.zeros((len(gts), len(hyps)))
    for (g, h), c in counts.items():
        m[gts.index(g), hyps.index(h)] = c
    rows, cols = linear_sum_assignment(-m)
    return 2.0 * m[rows, cols].sum() / (n_gt + n_hyp)

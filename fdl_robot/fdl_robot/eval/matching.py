"""Detections matched to ground truth one to one, within each class, by box overlap.

For every class c, the detections and the ground-truth boxes of class c are paired by
the optimal gated assignment (:func:`fdl_robot.core.assignment.hungarian`) on the cost
``1 - IoU`` (:func:`fdl_robot.core.boxes.box_iou`) with the gate ``IoU >= iou_threshold``:
the most pairs, then the largest total IoU. Boxes are XYXY pixels; detections of a class
without ground truth (and vice versa) stay unmatched.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from fdl_robot.core.assignment import hungarian
from fdl_robot.core.boxes import box_iou

__all__ = ["match_by_class"]


def match_by_class(det_boxes: ArrayLike, det_classes: Sequence[Hashable] | np.ndarray,
                   gt_boxes: ArrayLike, gt_classes: Sequence[Hashable] | np.ndarray,
                   iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """Pairs (detection index, ground-truth index) of the same class (module docstring).

    ``det_boxes`` (N, 4) with ``det_classes`` (N,), ``gt_boxes`` (M, 4) with ``gt_classes``
    (M,); classes are any comparable labels (names or ids). Pairs are listed class by class
    (sorted), detections ascending within a class.
    """
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    det_classes, gt_classes = np.asarray(det_classes).tolist(), np.asarray(gt_classes).tolist()
    pairs: list[tuple[int, int]] = []
    for c in sorted(set(gt_classes)):
        d = [i for i, k in enumerate(det_classes) if k == c]
        g = [j for j, k in enumerate(gt_classes) if k == c]
        if not d:
            continue
        rows, cols = hungarian(1.0 - box_iou(det_boxes[d], gt_boxes[g]), max_cost=1.0 - iou_threshold)
        pairs += [(d[r], g[k]) for r, k in zip(rows.tolist(), cols.tolist(), strict=True)]
    return pairs

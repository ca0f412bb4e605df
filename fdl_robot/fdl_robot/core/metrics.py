"""COCO-style detection metrics: AP per class and IoU threshold, mAP50, mAP75, mAP50-95.

Precision and recall of the detections ranked by score (seed §23.4)::

    precision_n = TP_n / n,   recall_n = TP_n / G                              (23.17)

after the n best detections, with G the number of ground-truth (GT) boxes.  AP is
the area under the precision-recall curve, computed exactly as COCO does
(pycocotools' ``COCOeval``), so the numbers are comparable with published ones:

1. Matching, per image and class, at each IoU threshold t: detections in order of
   descending score (at most ``max_detections`` = 100 per image *and class*, which is
   what pycocotools effectively does) each take, among the GT boxes not matched yet,
   the one with the highest IoU >= t (on equal IoU, the later GT).  A matched
   detection is a true positive (TP), the others are false positives; each GT is
   matched at most once.
2. Per class, the detections of all images are ranked by score (ties keep image
   order), giving the precision-recall curve.  Precision is made monotone (its upper
   envelope: p(r) = max over r' >= r) and read at the 101 recalls r = 0, 0.01, ..., 1
   (the first point with recall >= r; 0 where recall r is never reached); AP is the
   mean of those 101 values.
3. mAP is the mean AP over the classes that have at least one GT box; mAP50-95
   averages over t = 0.50, 0.55, ..., 0.95 as well (eq. 23.20).

Not modelled: COCO's area ranges (small/medium/large; only "all" is computed),
``iscrowd`` GT boxes and ignore regions.  Boxes are XYXY pixels with continuous
coordinates, so the IoU is the one of :func:`fdl_robot.core.boxes.box_iou` (no "+1").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .boxes import box_iou

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "match_detections",
    "interpolated_precision",
    "average_precision",
    "evaluate_detections",
]

#: IoU thresholds 0.50:0.05:0.95, computed as pycocotools computes them.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
#: The 101 recall points 0:0.01:1 of COCO's interpolated precision.
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def match_detections(pred_boxes: ArrayLike, pred_scores: ArrayLike, gt_boxes: ArrayLike,
                     iou_thresholds: ArrayLike = COCO_IOU_THRESHOLDS,
                     max_detections: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCO matching of one image's detections of one class to its GT boxes.

    Returns ``(order, is_tp)``: ``order`` (D,) the indices of the detections kept (the
    best ``max_detections`` by descending score, ties by index), ``is_tp`` (T, D) bool,
    whether detection ``order[d]`` matched a GT box at IoU threshold t.
    """
    thresholds = np.minimum(np.asarray(iou_thresholds, dtype=np.float64), 1 - 1e-10)  # as pycocotools
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")[:max_detections]
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    T, D, G = len(thresholds), len(order), len(gt)
    is_tp = np.zeros((T, D), dtype=bool)
    if D == 0 or G == 0:
        return order, is_tp
    iou = box_iou(np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)[order], gt)  # (D, G)
    gt_matched = np.zeros((T, G), dtype=bool)
    rows = np.arange(T)
    for d in range(D):  # sequential: each detection sees the matches of the better ones
        candidate_iou = np.where(gt_matched | (iou[d] < thresholds[:, None]), -np.inf, iou[d])  # (T, G)
        best = G - 1 - np.argmax(candidate_iou[:, ::-1], axis=1)  # last GT of highest IoU
        hit = np.isfinite(candidate_iou[rows, best])
        is_tp[hit, d] = True
        gt_matched[rows[hit], best[hit]] = True
    return order, is_tp


def interpolated_precision(scores: ArrayLike, is_tp: ArrayLike, num_gt: int,
                           recall_thresholds: ArrayLike = COCO_RECALL_THRESHOLDS) -> np.ndarray:
    """Monotone precision at each recall threshold: (D,) or (T, D) flags -> (R,) or (T, R).

    Detections are ranked by descending ``scores`` (stable: ties keep their order);
    ``is_tp`` says which are true positives (per IoU threshold if 2-D); ``num_gt`` is
    the number of GT boxes (> 0).  Precision at recall r is the envelope
    max_{n: recall_n >= r} precision_n, 0 where recall r is never reached.
    """
    r = np.asarray(recall_thresholds, dtype=np.float64)
    flags = np.asarray(is_tp, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or flags.shape[-1] != len(s) or flags.ndim not in (1, 2):
        raise ValueError(f"is_tp must be (D,) or (T, D) for D = {s.shape} scores, got {flags.shape}")
    if num_gt <= 0:
        raise ValueError("precision at a recall needs num_gt > 0")
    ranked = np.atleast_2d(flags)[:, np.argsort(-s, kind="stable")]
    tp = np.cumsum(ranked, axis=1)
    fp = np.cumsum(~ranked, axis=1)
    recall = tp / num_gt
    precision = tp / (tp + fp)  # tp + fp = rank >= 1
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    out = np.zeros((len(ranked), len(r)))
    for t in range(len(ranked)):  # recall differs per threshold; T is small
        first = np.searchsorted(recall[t], r, side="left")  # first rank reaching recall r
        reached = first < ranked.shape[1]
        out[t, reached] = envelope[t, first[reached]]
    return out[0] if flags.ndim == 1 else out


def average_precision(scores: ArrayLike, is_tp: ArrayLike, num_gt: int,
                      recall_thresholds: ArrayLike = COCO_RECALL_THRESHOLDS) -> float | np.ndarray:
    """COCO 101-point interpolated AP: the mean of :func:`interpolated_precision`.

    ``is_tp`` (D,) gives a float, (T, D) gives (T,) (one AP per IoU threshold).
    AP is NaN when ``num_gt`` is 0 (the class is left out of mAP).
    """
    if num_gt <= 0:
        flags = np.asarray(is_tp)
        return np.nan if flags.ndim == 1 else np.full(flags.shape[0], np.nan)
    ap = interpolated_precision(scores, is_tp, num_gt, recall_thresholds).mean(axis=-1)
    return float(ap) if np.ndim(ap) == 0 else ap


def _image_arrays(item: Mapping[str, ArrayLike], with_scores: bool, where: str) -> tuple[np.ndarray, ...]:
    boxes = np.asarray(item["boxes"], dtype=np.float64)
    boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
    labels = np.asarray(item["labels"]).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.all(np.isfinite(boxes)):
        raise ValueError(f"{where}: boxes must be finite (M, 4) XYXY, got shape {boxes.shape}")
    if labels.shape != (len(boxes),) or not np.array_equal(labels, labels.astype(np.int64)):
        raise ValueError(f"{where}: labels must be {len(boxes)} integer class ids, got {labels.shape} {labels.dtype}")
    labels = labels.astype(np.int64)
    if not with_scores:
        return boxes, labels
    scores = np.asarray(item["scores"], dtype=np.float64).reshape(-1)
    if scores.shape != (len(boxes),) or not np.all(np.isfinite(scores)):
        raise ValueError(f"{where}: scores must be {len(boxes)} finite numbers, got shape {scores.shape}")
    return boxes, labels, scores


def evaluate_detections(predictions: Sequence[Mapping[str, ArrayLike]],
                        ground_truths: Sequence[Mapping[str, ArrayLike]],
                        iou_thresholds: ArrayLike = COCO_IOU_THRESHOLDS,
                        max_detections: int = 100) -> dict[str, object]:
    """COCO-style evaluation of a detector over a set of images.

    ``predictions[i]`` = {"boxes": (M, 4) XYXY pixels, "labels": (M,) int, "scores": (M,)}
    and ``ground_truths[i]`` = {"boxes": (G, 4), "labels": (G,)} for image i.

    Returns a dict with

    * ``"mAP50-95"``, ``"mAP50"``, ``"mAP75"``: floats, means over the classes with GT
      (NaN if there are none, or if the thresholds lack 0.5 / 0.75);
    * ``"classes"`` (C,) the class ids seen in GT or predictions, sorted;
    * ``"ap"`` (C, T) AP per class and IoU threshold, NaN for classes without GT;
    * ``"recall"`` (C, T) the recall reached by all kept detections;
    * ``"num_gt"`` (C,) GT boxes per class; ``"iou_thresholds"`` (T,).
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} prediction entries for {len(ground_truths)} images")
    thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    T = len(thresholds)
    scores_of: dict[int, list[np.ndarray]] = {}
    tp_of: dict[int, list[np.ndarray]] = {}
    num_gt: dict[int, int] = {}
    for i, (pred, gt) in enumerate(zip(predictions, ground_truths, strict=True)):
        p_boxes, p_labels, p_scores = _image_arrays(pred, True, f"predictions[{i}]")
        g_boxes, g_labels = _image_arrays(gt, False, f"ground_truths[{i}]")
        for c in np.unique(np.concatenate([p_labels, g_labels])).tolist():
            p, g = p_labels == c, g_labels == c
            order, is_tp = match_detections(p_boxes[p], p_scores[p], g_boxes[g], thresholds, max_detections)
            scores_of.setdefault(c, []).append(p_scores[p][order])
            tp_of.setdefault(c, []).append(is_tp)
            num_gt[c] = num_gt.get(c, 0) + int(np.count_nonzero(g))

    classes = np.array(sorted(num_gt), dtype=np.int64)
    ap = np.full((len(classes), T), np.nan)
    recall = np.full((len(classes), T), np.nan)
    for k, c in enumerate(classes.tolist()):
        if num_gt[c] == 0:
            continue
        is_tp = np.concatenate(tp_of[c], axis=1)
        ap[k] = average_precision(np.concatenate(scores_of[c]), is_tp, num_gt[c])
        recall[k] = is_tp.sum(axis=1) / num_gt[c]

    has_gt = np.array([num_gt[c] > 0 for c in classes.tolist()], dtype=bool)

    def mean_ap(columns: np.ndarray) -> float:
        if not np.any(has_gt) or not np.any(columns):
            return float("nan")
        return float(ap[np.ix_(has_gt, columns)].mean())

    return {
        "mAP50-95": mean_ap(np.ones(T, dtype=bool)),
        "mAP50": mean_ap(np.isclose(thresholds, 0.5)),
        "mAP75": mean_ap(np.isclose(thresholds, 0.75)),
        "classes": classes,
        "ap": ap,
        "recall": recall,
        "num_gt": np.array([num_gt[c] for c in classes.tolist()], dtype=np.int64),
        "iou_thresholds": thresholds,
    }

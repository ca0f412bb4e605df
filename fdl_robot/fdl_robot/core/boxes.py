"""Axis-aligned boxes in pixels: formats, IoU / GIoU and non-maximum suppression.

Formats (seed §23.2): corner format XYXY = (x1, y1, x2, y2) with (x1, y1) the top-left
and (x2, y2) the bottom-right corner, and centre format CXCYWH = (cx, cy, w, h)::

    x1 = cx - w/2,  y1 = cy - h/2,  x2 = cx + w/2,  y2 = cy + h/2        (23.7-23.8)

Coordinates are continuous (no "+1" pixel convention): a box's area is
(x2 - x1)(y2 - y1), as in COCO and torchvision.  A box with x2 <= x1 or y2 <= y1 has
zero area.  Functions take (N, 4) arrays (the conversions also a single (4,) box)
and return float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "xyxy_to_cxcywh",
    "cxcywh_to_xyxy",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "nms",
    "batched_nms",
    "clip_boxes",
]


def _boxes(x: ArrayLike, name: str = "boxes") -> np.ndarray:
    """``x`` as a finite float64 (N, 4) array."""
    b = np.asarray(x, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} contains NaN or inf")
    return b


def _last_dim_4(x: ArrayLike) -> np.ndarray:
    b = np.asarray(x, dtype=np.float64)
    if b.ndim == 0 or b.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4), got {b.shape}")
    return b


def xyxy_to_cxcywh(boxes_xyxy: ArrayLike) -> np.ndarray:
    """(x1, y1, x2, y2) -> (cx, cy, w, h); shape (..., 4) kept."""
    b = _last_dim_4(boxes_xyxy)
    x1, y1, x2, y2 = np.moveaxis(b, -1, 0)
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def cxcywh_to_xyxy(boxes_cxcywh: ArrayLike) -> np.ndarray:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) (eq. 23.7-23.8); shape (..., 4) kept."""
    b = _last_dim_4(boxes_cxcywh)
    cx, cy, w, h = np.moveaxis(b, -1, 0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def box_area(boxes_xyxy: ArrayLike) -> np.ndarray:
    """Area (x2 - x1)(y2 - y1) of each XYXY box, 0 for inverted boxes; (N, 4) -> (N,)."""
    b = _last_dim_4(boxes_xyxy)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _intersection_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise intersection and union areas (eq. 23.10-23.11), both (N, M)."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter, union


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den == 0."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """Pairwise intersection over union of XYXY boxes, (N, 4) x (M, 4) -> (N, M) in [0, 1].

        IoU(A, B) = |A ∩ B| / |A ∪ B|                                         (23.9)

    Pairs whose union is empty (both boxes of zero area) get IoU 0, not NaN.
    """
    inter, union = _intersection_union(_boxes(boxes_a, "boxes_a"), _boxes(boxes_b, "boxes_b"))
    return _safe_divide(inter, union)


def generalized_box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """Pairwise generalised IoU (Rezatofighi et al. 2019), (N, 4) x (M, 4) -> (N, M).

        GIoU(A, B) = IoU(A, B) - |C \\ (A ∪ B)| / |C|,

    with C the smallest box enclosing A and B.  GIoU lies in [-1, 1], equals IoU when
    one box encloses the other, and goes to -1 as two small boxes move far apart.
    """
    a, b = _boxes(boxes_a, "boxes_a"), _boxes(boxes_b, "boxes_b")
    inter, union = _intersection_union(a, b)
    enclosing_w = np.maximum(a[:, None, 2], b[None, :, 2]) - np.minimum(a[:, None, 0], b[None, :, 0])
    enclosing_h = np.maximum(a[:, None, 3], b[None, :, 3]) - np.minimum(a[:, None, 1], b[None, :, 1])
    enclosing = np.clip(enclosing_w, 0, None) * np.clip(enclosing_h, 0, None)
    return _safe_divide(inter, union) - _safe_divide(enclosing - union, enclosing)


def _scores(scores: ArrayLike, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {s.shape}")
    if np.any(np.isnan(s)):
        raise ValueError("scores contain NaN")
    return s


def nms(boxes_xyxy: ArrayLike, scores: ArrayLike, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression (seed Algorithm 1, §23.3).

    Repeatedly keep the highest-scoring remaining box and remove every remaining box
    whose IoU with it is *greater than* ``iou_threshold``.  Equal scores are broken by
    the lower index first, so the result is deterministic.

    Returns the kept indices into ``boxes_xyxy`` (int64), sorted by descending score.
    """
    boxes = _boxes(boxes_xyxy)
    s = _scores(scores, len(boxes))
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iou = box_iou(boxes[best][None], boxes[rest])[0]
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes_xyxy: ArrayLike, scores: ArrayLike, class_ids: ArrayLike,
                iou_threshold: float) -> np.ndarray:
    """Class-aware NMS: :func:`nms` run separately within each class.

    Boxes of different classes never suppress each other.  Returns kept indices
    (int64) sorted by descending score, ties by index.
    """
    boxes = _boxes(boxes_xyxy)
    s = _scores(scores, len(boxes))
    c = np.asarray(class_ids)
    if c.shape != (len(boxes),):
        raise ValueError(f"class_ids must have shape ({len(boxes)},), got {c.shape}")
    kept = [np.flatnonzero(c == k)[nms(boxes[c == k], s[c == k], iou_threshold)] for k in np.unique(c)]
    keep = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return keep[np.lexsort((keep, -s[keep]))].astype(np.int64)


def clip_boxes(boxes_xyxy: ArrayLike, width: float, height: float) -> np.ndarray:
    """Clip XYXY boxes to the image [0, width] x [0, height] (pixels); returns a new array."""
    b = _last_dim_4(boxes_xyxy)
    if not (width > 0 and height > 0):
        raise ValueError(f"width and height must be positive, got {width}, {height}")
    lo = np.zeros(4)
    hi = np.array([width, height, width, height], dtype=np.float64)
    return np.clip(b, lo, hi)

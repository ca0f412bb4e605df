"""From raw detector outputs to pixel boxes: YOLO grid decoding and DETR post-processing.

All boxes returned are XYXY in pixels of the network input image, scores in [0, 1],
class ids int64, sorted by descending score.

* Anchor-based YOLO (v2/v3 style, seed §24.3.2): each cell (i, j) of an S_h x S_w grid
  of stride s pixels predicts, for each of B anchors (p_w, p_h) in pixels,
  [t_x, t_y, t_w, t_h, t_o, c_1..c_K] (logits) decoded as::

      b_x = σ(t_x) + j,  b_y = σ(t_y) + i              (cells)      (24.11-24.12)
      b_w = p_w exp(t_w), b_h = p_h exp(t_h)            (pixels)     (24.13-24.14)
      box = (b_x s, b_y s, b_w, b_h)  as (cx, cy, w, h) (pixels)     (24.15)

  objectness σ(t_o) and class probabilities σ(c_k) (independent sigmoids, as YOLOv3;
  YOLOv2 used a softmax).  YOLOv5 changed the equations (2σ - 0.5, (2σ)² p); this
  module implements the seed's.
* Anchor-free YOLOv8/11 (ultralytics ONNX export): (4 + K, N) rows cx, cy, w, h in
  pixels and K class scores already passed through a sigmoid (errata 6: these models
  have no anchors).
* DETR (seed §25.4.2): N queries, each with K + 1 class logits (the last is
  "no object") and a box (cx, cy, w, h) normalised to [0, 1] by the image size
  (errata 5: not XYXY).  One query per object, so no NMS.
* RT-DETR (ultralytics ONNX export): the decoder's top-k already inside the graph, rows
  (cx, cy, w, h, score, class id) with the box normalised to the network input and the
  score a sigmoid of the query's class logit (no "no object" class: each class is an
  independent sigmoid, as in Deformable DETR's focal loss).  No NMS either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, softmax

from .boxes import batched_nms, clip_boxes, cxcywh_to_xyxy

__all__ = [
    "anchor_centers",
    "yolo_grid_decode",
    "yolo_postprocess",
    "yolov8_postprocess",
    "detr_postprocess",
    "rtdetr_postprocess",
    "select_detections",
]

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes_xyxy (M, 4), scores (M,), class_ids (M,)


def anchor_centers(height: int, width: int, stride_px: float) -> np.ndarray:
    """Anchor centres of an H x W feature map of stride s: (H, W, 2) array of (x, y) pixels.

        center_x = (j + 0.5) s,  center_y = (i + 0.5) s                  (23.2-23.3)

    for the cell in row i, column j; e.g. cell (5, 7) of a stride-32 map is (240, 176).
    """
    if height < 0 or width < 0 or not stride_px > 0:
        raise ValueError(f"need height, width >= 0 and stride > 0, got {height}, {width}, {stride_px}")
    x = (np.arange(width) + 0.5) * stride_px
    y = (np.arange(height) + 0.5) * stride_px
    xx, yy = np.meshgrid(x, y)  # (H, W) each
    return np.stack([xx, yy], axis=-1)


def yolo_grid_decode(raw: ArrayLike, anchors_px: ArrayLike, stride_px: float) -> Detections:
    """Decode one YOLO output grid (seed §24.3.2) into boxes, objectness and class probabilities.

    ``raw`` holds logits, shape (S_h, S_w, B, 5 + K) or the head's (S_h, S_w, B (5 + K))
    with the B anchors' blocks side by side (e.g. (13, 13, 255) for B = 3, K = 80).
    ``anchors_px`` is (B, 2) anchor widths and heights (p_w, p_h) in pixels, ``stride_px``
    the cell size s in pixels.

    Returns ``(boxes_xyxy_px (N, 4), objectness (N,), class_probs (N, K))`` with
    N = S_h S_w B, row n = (i S_w + j) B + b for cell (i, j) and anchor b.
    """
    anchors = np.asarray(anchors_px, dtype=np.float64)
    if anchors.ndim != 2 or anchors.shape[1] != 2 or np.any(anchors <= 0):
        raise ValueError(f"anchors_px must be (B, 2) positive widths and heights, got {anchors.shape}")
    if not stride_px > 0:
        raise ValueError(f"stride_px must be positive, got {stride_px}")
    t = np.asarray(raw, dtype=np.float64)
    B = len(anchors)
    if t.ndim == 3 and t.shape[2] % B == 0:
        t = t.reshape(t.shape[0], t.shape[1], B, t.shape[2] // B)
    if t.ndim != 4 or t.shape[2] != B or t.shape[3] < 5:
        raise ValueError(f"raw must be (S_h, S_w, {B}, 5 + K) or (S_h, S_w, {B}(5 + K)), got {np.shape(raw)}")
    S_h, S_w = t.shape[:2]
    i = np.arange(S_h)[:, None, None]  # row of the cell
    j = np.arange(S_w)[None, :, None]  # column of the cell
    b_x = expit(t[..., 0]) + j
    b_y = expit(t[..., 1]) + i
    b_w = anchors[:, 0] * np.exp(t[..., 2])
    b_h = anchors[:, 1] * np.exp(t[..., 3])
    boxes_cxcywh = np.stack([b_x * stride_px, b_y * stride_px, b_w, b_h], axis=-1)
    K = t.shape[3] - 5
    return (cxcywh_to_xyxy(boxes_cxcywh).reshape(-1, 4),
            expit(t[..., 4]).reshape(-1),
            expit(t[..., 5:]).reshape(-1, K))


def select_detections(boxes_xyxy: np.ndarray, class_scores: np.ndarray, score_threshold: float,
                      iou_threshold: float | None, max_det: int) -> Detections:
    """Single-label selection shared by the post-processors.

    Each candidate takes its best class (score = max_k class_scores), candidates with
    score > ``score_threshold`` are kept, class-aware NMS runs (unless
    ``iou_threshold`` is None), and the best ``max_det`` are returned by descending score.
    """
    if max_det < 0:
        raise ValueError(f"max_det must be >= 0, got {max_det}")
    if class_scores.shape[1] == 0:
        raise ValueError("no classes")
    class_ids = np.argmax(class_scores, axis=1)
    scores = class_scores[np.arange(len(class_scores)), class_ids]
    keep = np.flatnonzero(scores > score_threshold)
    if iou_threshold is None:
        keep = keep[np.argsort(-scores[keep], kind="stable")]
    else:
        keep = keep[batched_nms(boxes_xyxy[keep], scores[keep], class_ids[keep], iou_threshold)]
    keep = keep[:max_det]
    return boxes_xyxy[keep], scores[keep], class_ids[keep].astype(np.int64)


def yolo_postprocess(raw_outputs: Sequence[ArrayLike], anchors_px: Sequence[ArrayLike],
                     strides_px: Sequence[float], score_threshold: float = 0.25,
                     iou_threshold: float = 0.45, max_det: int = 100,
                     image_size: tuple[int, int] | None = None) -> Detections:
    """Multi-scale anchor-based YOLO post-processing (seed §24.5.2).

    Decodes each scale's grid with its anchors and stride (e.g. 13/26/52 grids at
    strides 32/16/8 with 3 anchors each: 10,647 candidates for a 416 px input,
    errata 4), scores each candidate as objectness x class probability for its best
    class, keeps score > ``score_threshold``, applies class-aware NMS and returns the
    top ``max_det``.  Boxes are clipped to ``image_size`` = (width, height) if given.
    """
    if not len(raw_outputs) == len(anchors_px) == len(strides_px):
        raise ValueError("need one anchor set and one stride per output scale")
    decoded = [yolo_grid_decode(r, a, s) for r, a, s in zip(raw_outputs, anchors_px, strides_px, strict=True)]
    boxes = np.concatenate([d[0] for d in decoded])
    class_scores = np.concatenate([d[1][:, None] * d[2] for d in decoded])
    if image_size is not None:
        boxes = clip_boxes(boxes, *image_size)
    return select_detections(boxes, class_scores, score_threshold, iou_threshold, max_det)


def yolov8_postprocess(output: ArrayLike, score_threshold: float = 0.25, iou_threshold: float = 0.7,
                       max_det: int = 300) -> Detections:
    """Post-process an anchor-free YOLOv8/11 head (ultralytics ONNX export).

    ``output`` is (4 + K, N) or (1, 4 + K, N): per candidate (cx, cy, w, h) in pixels of
    the network input and K sigmoid class scores.  Each candidate takes its best
    class; score > ``score_threshold``; class-aware NMS; top ``max_det``.  The defaults
    are ultralytics' (conf 0.25, iou 0.7, max_det 300).  Undoing a letterbox resize is
    the caller's job.
    """
    out = np.asarray(output, dtype=np.float64)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(f"batch of {out.shape[0]} images: post-process one at a time")
        out = out[0]
    if out.ndim != 2 or out.shape[0] < 5:
        raise ValueError(f"output must be (4 + K, N) or (1, 4 + K, N), got {np.shape(output)}")
    return select_detections(cxcywh_to_xyxy(out[:4].T), out[4:].T, score_threshold, iou_threshold, max_det)


def detr_postprocess(class_logits: ArrayLike, boxes_cxcywh_norm: ArrayLike, image_size: tuple[float, float],
                     score_threshold: float = 0.5) -> Detections:
    """DETR post-processing (seed §25.4.2): no NMS.

    Softmax over the K + 1 logits of each query, drop the last ("no object") class,
    score = max over the K real classes; keep score > ``score_threshold``.  Boxes
    (cx, cy, w, h) normalised by ``image_size`` = (width, height) become XYXY pixels::

        (x1, y1, x2, y2) = (cx - w/2, cy - h/2, cx + w/2, cy + h/2) * (W, H, W, H)
    """
    logits = np.asarray(class_logits, dtype=np.float64)
    boxes = np.asarray(boxes_cxcywh_norm, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"class_logits must be (N, K + 1) with K >= 1, got {logits.shape}")
    if boxes.shape != (len(logits), 4):
        raise ValueError(f"boxes_cxcywh_norm must be ({len(logits)}, 4), got {boxes.shape}")
    width, height = image_size
    if not (width > 0 and height > 0):
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    probs = softmax(logits, axis=1)[:, :-1]
    boxes_px = cxcywh_to_xyxy(boxes) * np.array([width, height, width, height], dtype=np.float64)
    return select_detections(boxes_px, probs, score_threshold, None, len(logits))


def rtdetr_postprocess(output: ArrayLike, input_size: tuple[float, float], score_threshold: float = 0.25,
                       max_det: int = 300) -> Detections:
    """Post-process an ultralytics RT-DETR ONNX export: no NMS.

    ``output`` is (Q, 6) or (1, Q, 6): per row (cx, cy, w, h) normalised to [0, 1] by the
    network input's ``input_size`` = (width, height) in pixels, the score in [0, 1] (already
    a sigmoid) and the class id (a float holding an integer).  The export picked these rows
    as the top Q of all (query, class) scores, so one query may appear once per class.
    Rows with score > ``score_threshold`` are kept, best first, at most ``max_det``; boxes
    become XYXY pixels of the network input::

        (x1, y1, x2, y2) = (cx - w/2, cy - h/2, cx + w/2, cy + h/2) * (W, H, W, H)

    Undoing a letterbox resize is the caller's job.
    """
    out = np.asarray(output, dtype=np.float64)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(f"batch of {out.shape[0]} images: post-process one at a time")
        out = out[0]
    if out.ndim != 2 or out.shape[1] != 6:
        raise ValueError(f"output must be (Q, 6) or (1, Q, 6) rows (cx, cy, w, h, score, class), "
                         f"got {np.shape(output)}")
    if max_det < 0:
        raise ValueError(f"max_det must be >= 0, got {max_det}")
    width, height = input_size
    if not (width > 0 and height > 0):
        raise ValueError(f"input_size must be positive (width, height), got {input_size}")
    scores = out[:, 4]
    keep = np.flatnonzero(scores > score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_det]
    boxes = cxcywh_to_xyxy(out[keep, :4]) * np.array([width, height, width, height], dtype=np.float64)
    return boxes, scores[keep], np.rint(out[keep, 5]).astype(np.int64)

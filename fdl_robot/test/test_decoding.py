"""Tests of fdl_robot.core.decoding (YOLO grids, YOLOv8 heads, DETR and RT-DETR post-processing)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdl_robot.core.boxes import box_iou
from fdl_robot.core.decoding import (
    anchor_centers,
    detr_postprocess,
    rtdetr_postprocess,
    yolo_grid_decode,
    yolo_postprocess,
    yolov8_postprocess,
)

# YOLOv3's COCO anchors (pixels of a 416 px input), per stride.
ANCHORS = {8: [(10, 13), (16, 30), (33, 23)], 16: [(30, 61), (62, 45), (59, 119)],
           32: [(116, 90), (156, 198), (373, 326)]}


# ------------------------------------------------------------------ seed examples
def test_seed_23_1_2_anchor_centre():
    centres = anchor_centers(13, 13, 32)
    assert centres.shape == (13, 13, 2)
    np.testing.assert_array_equal(centres[5, 7], [240.0, 176.0])  # ((7 + .5) 32, (5 + .5) 32)
    np.testing.assert_array_equal(centres[0, 0], [16.0, 16.0])
    np.testing.assert_array_equal(anchor_centers(2, 3, 10)[1, 2], [25.0, 15.0])


def test_seed_24_5_2_candidate_count_errata_4():
    """(52² + 26² + 13²) x 3 = 10,647 candidates for 416 px (the seed prints 13,182)."""
    raws = [np.zeros((416 // s, 416 // s, 3 * 85)) for s in (8, 16, 32)]
    decoded = [yolo_grid_decode(r, ANCHORS[s], s) for r, s in zip(raws, (8, 16, 32), strict=True)]
    assert sum(len(d[0]) for d in decoded) == 10_647
    assert all(d[2].shape[1] == 80 for d in decoded)
    # zero logits put every box at its anchor centre with the anchor's size
    boxes, obj, cls = decoded[2]
    np.testing.assert_allclose(obj, 0.5)
    np.testing.assert_allclose(cls, 0.5)
    first = boxes[0]  # cell (0, 0), anchor (116, 90), centre (16, 16)
    np.testing.assert_allclose(first, [16 - 58, 16 - 45, 16 + 58, 16 + 45])


# ---------------------------------------------------------------- YOLO decoding
def test_yolo_grid_decode_single_cell_by_hand():
    """Grid 2x3, one anchor (10, 20) px, stride 32, K = 2; only cell (i=1, j=2) is set.

    t_x = 0 -> σ = 0.5, t_y = ln 3 -> σ = 0.75, t_w = ln 2, t_h = 0:
    centre ((0.5 + 2) 32, (0.75 + 1) 32) = (80, 56), size (20, 20) -> XYXY (70, 46, 90, 66).
    Objectness logit 0 -> 0.5; class logits (ln 4, -ln 4) -> (0.8, 0.2).
    """
    raw = np.zeros((2, 3, 1, 7))
    raw[1, 2, 0] = [0.0, np.log(3), np.log(2), 0.0, 0.0, np.log(4), -np.log(4)]
    boxes, obj, cls = yolo_grid_decode(raw, [[10, 20]], 32)
    assert boxes.shape == (6, 4) and obj.shape == (6,) and cls.shape == (6, 2)
    n = (1 * 3 + 2) * 1 + 0  # row of cell (1, 2), anchor 0
    np.testing.assert_allclose(boxes[n], [70, 46, 90, 66], atol=1e-12)
    assert obj[n] == pytest.approx(0.5)
    np.testing.assert_allclose(cls[n], [0.8, 0.2], atol=1e-12)
    # another cell, zero logits: the anchor centre, anchor size
    np.testing.assert_allclose(boxes[0], [16 - 5, 16 - 10, 16 + 5, 16 + 10])


def test_yolo_grid_decode_flat_channels_match_split():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(4, 5, 3, 7))
    a = yolo_grid_decode(raw, ANCHORS[8], 8)
    b = yolo_grid_decode(raw.reshape(4, 5, 21), ANCHORS[8], 8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # row n = (i W + j) B + b
    i, j, k = 2, 3, 1
    n = (i * 5 + j) * 3 + k
    cx = (1 / (1 + np.exp(-raw[i, j, k, 0])) + j) * 8
    assert (a[0][n, 0] + a[0][n, 2]) / 2 == pytest.approx(cx)


def test_yolo_grid_decode_rejects():
    with pytest.raises(ValueError):
        yolo_grid_decode(np.zeros((2, 2, 3, 7)), [[10, 10]] * 2, 8)  # B mismatch
    with pytest.raises(ValueError):
        yolo_grid_decode(np.zeros((2, 2, 1, 4)), [[10, 10]], 8)  # < 5 channels
    with pytest.raises(ValueError):
        yolo_grid_decode(np.zeros((2, 2, 1, 7)), [[10, -1]], 8)
    with pytest.raises(ValueError):
        yolo_grid_decode(np.zeros((2, 2, 1, 7)), [[10, 10]], 0)


def test_yolo_postprocess():
    big = 10.0  # a large logit: sigmoid ~ 1
    raws = [np.full((416 // s, 416 // s, 3, 5 + 2), -big) for s in (8, 16, 32)]
    # two neighbouring anchors of the stride-8 grid see the same object of class 1,
    # with scores σ(3) and σ(2); a class-0 object sits in the same place on stride 16
    raws[0][10, 10, 0, :5] = [0, 0, 0, 0, 3.0]
    raws[0][10, 10, 0, 6] = big
    raws[0][10, 10, 1, :5] = [0.1, 0, np.log(10 / 16), np.log(13 / 30), 2.0]
    raws[0][10, 10, 1, 6] = big
    raws[1][5, 5, 0, :5] = [-np.log(3), -np.log(3), np.log(10 / 30), np.log(13 / 61), 1.0]
    raws[1][5, 5, 0, 5] = big
    anchors = [ANCHORS[s] for s in (8, 16, 32)]
    boxes, scores, classes = yolo_postprocess(raws, anchors, (8, 16, 32), score_threshold=0.5)
    assert classes.tolist() == [1, 0]  # the duplicate class-1 box is suppressed, class 0 is not
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(scores, [sig(3.0) * sig(big), sig(1.0) * sig(big)])
    np.testing.assert_allclose(boxes[0], [84 - 5, 84 - 6.5, 84 + 5, 84 + 6.5])
    assert box_iou(boxes[:1], boxes[1:])[0, 0] > 0.9
    # top-N and clipping
    b1, s1, _ = yolo_postprocess(raws, anchors, (8, 16, 32), score_threshold=0.5, max_det=1)
    assert len(b1) == 1 and s1[0] == scores[0]
    raws[2][0, 0, 2, :5] = [0, 0, 0, 0, big]
    raws[2][0, 0, 2, 5] = big
    b2, _, _ = yolo_postprocess(raws, anchors, (8, 16, 32), score_threshold=0.5, image_size=(416, 416))
    assert b2.min() >= 0 and b2.max() <= 416
    with pytest.raises(ValueError):
        yolo_postprocess(raws, anchors[:2], (8, 16, 32))


# --------------------------------------------------------------------- YOLOv8
def test_yolov8_postprocess():
    K, N = 3, 6
    out = np.zeros((4 + K, N))
    out[:4] = np.array([
        [100, 100, 40, 40],  # class 0, 0.9
        [102, 101, 40, 40],  # class 0, 0.8: duplicate of the first -> suppressed
        [102, 101, 40, 40],  # class 2, 0.7: other class -> kept
        [300, 200, 50, 20],  # class 1, 0.6
        [500, 400, 10, 10],  # class 1, 0.2: below threshold
        [10, 10, 8, 8],      # class 1, exactly 0.25: not > threshold
    ], dtype=float).T
    out[4:, 0] = [0.9, 0.1, 0.0]
    out[4:, 1] = [0.8, 0.0, 0.3]
    out[4:, 2] = [0.1, 0.2, 0.7]
    out[4:, 3] = [0.0, 0.6, 0.1]
    out[4:, 4] = [0.0, 0.2, 0.0]
    out[4:, 5] = [0.0, 0.25, 0.0]
    boxes, scores, classes = yolov8_postprocess(out[None])
    assert classes.dtype == np.int64
    assert classes.tolist() == [0, 2, 1]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6])
    np.testing.assert_allclose(boxes[0], [80, 80, 120, 120])
    np.testing.assert_allclose(boxes[2], [275, 190, 325, 210])
    assert len(yolov8_postprocess(out, max_det=2)[0]) == 2
    empty = yolov8_postprocess(np.zeros((1, 84, 8400)))
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,) and empty[2].shape == (0,)
    with pytest.raises(ValueError):
        yolov8_postprocess(np.zeros((2, 84, 10)))
    with pytest.raises(ValueError):
        yolov8_postprocess(np.zeros((4, 10)))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_yolov8_postprocess_properties(seed):
    rng = np.random.default_rng(seed)
    N, K = 60, 4
    out = np.concatenate([rng.uniform(0, 320, (2, N)), rng.uniform(5, 80, (2, N)), rng.random((K, N))])
    boxes, scores, classes = yolov8_postprocess(out, score_threshold=0.3, iou_threshold=0.5)
    assert np.all(scores > 0.3) and np.all(np.diff(scores) <= 0)
    iou = box_iou(boxes, boxes)
    same = classes[:, None] == classes[None, :]
    np.fill_diagonal(same, False)
    assert not np.any(iou[same] > 0.5)


# ----------------------------------------------------------------------- DETR
def test_detr_postprocess_by_hand():
    """Softmax of (ln 6, ln 3, ln 1) is (0.6, 0.3, 0.1); the last column is "no object"."""
    logits = np.log([
        [6.0, 3.0, 1.0],  # class 0, 0.6
        [1.0, 1.0, 8.0],  # mostly no-object: best real class 0.1 -> dropped
        [1.0, 8.0, 1.0],  # class 1, 0.8
    ])
    boxes_norm = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.75, 0.1, 0.1]])
    boxes, scores, classes = detr_postprocess(logits, boxes_norm, (640, 480), score_threshold=0.5)
    assert classes.tolist() == [1, 0]  # sorted by score
    np.testing.assert_allclose(scores, [0.8, 0.6], atol=1e-12)
    # (0.25, 0.75, 0.1, 0.1) * (640, 480): centre (160, 360), size 64 x 48
    np.testing.assert_allclose(boxes, [[128, 336, 192, 384], [256, 144, 384, 336]], atol=1e-9)
    # a low threshold keeps every query: DETR has no NMS, even for overlapping boxes
    same = np.repeat(boxes_norm[:1], 3, axis=0)
    assert len(detr_postprocess(logits, same, (640, 480), score_threshold=0.05)[0]) == 3


def test_detr_postprocess_rejects():
    with pytest.raises(ValueError):
        detr_postprocess(np.zeros((3, 1)), np.zeros((3, 4)), (640, 480))
    with pytest.raises(ValueError):
        detr_postprocess(np.zeros((3, 3)), np.zeros((2, 4)), (640, 480))
    with pytest.raises(ValueError):
        detr_postprocess(np.zeros((3, 3)), np.zeros((3, 4)), (0, 480))


# --------------------------------------------------------------------- RT-DETR
def test_rtdetr_postprocess_by_hand():
    """Rows (cx, cy, w, h, score, class) normalised to a 320 x 320 input: threshold, order, pixels."""
    rows = np.array([
        [0.50, 0.50, 0.20, 0.10, 0.40, 2.0],     # bin, 0.4
        [0.25, 0.75, 0.10, 0.05, 0.90, 0.0],     # red_cube, 0.9
        [0.25, 0.75, 0.10, 0.05, 0.30, 1.0],     # the same query as "cube": kept (no NMS), after it
        [0.90, 0.10, 0.05, 0.05, 0.20, 1.0],     # below the threshold
    ])
    boxes, scores, classes = rtdetr_postprocess(rows[None], (320, 320), score_threshold=0.25)
    assert classes.tolist() == [0, 2, 1] and classes.dtype == np.int64
    np.testing.assert_allclose(scores, [0.9, 0.4, 0.3])
    # (0.25, 0.75, 0.1, 0.05) * 320: centre (80, 240), size 32 x 16
    np.testing.assert_allclose(boxes[0], [64, 232, 96, 248])
    np.testing.assert_allclose(boxes[1], [128, 144, 192, 176])
    np.testing.assert_allclose(boxes[2], boxes[0])
    # a non-square input scales x by its width, y by its height; max_det keeps the best
    b, s, c = rtdetr_postprocess(rows, (640, 480), score_threshold=0.25, max_det=1)
    np.testing.assert_allclose(b, [[128, 348, 192, 372]])
    assert s.tolist() == [0.9] and c.tolist() == [0]
    # a strict threshold: a score equal to it is dropped (as select_detections)
    assert len(rtdetr_postprocess(rows, (320, 320), score_threshold=0.9)[0]) == 0


def test_rtdetr_postprocess_rejects():
    with pytest.raises(ValueError, match="batch of 2"):
        rtdetr_postprocess(np.zeros((2, 5, 6)), (320, 320))
    with pytest.raises(ValueError, match=r"\(Q, 6\)"):
        rtdetr_postprocess(np.zeros((5, 7)), (320, 320))       # a (Q, 4 + K) head without the top-k
    with pytest.raises(ValueError, match="input_size"):
        rtdetr_postprocess(np.zeros((5, 6)), (0, 320))
    with pytest.raises(ValueError, match="max_det"):
        rtdetr_postprocess(np.zeros((5, 6)), (320, 320), max_det=-1)
    boxes, scores, classes = rtdetr_postprocess(np.zeros((0, 6)), (320, 320))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)

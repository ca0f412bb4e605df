"""Tests of fdl_robot.core.boxes (formats, IoU, GIoU, NMS)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdl_robot.core.boxes import (
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    generalized_box_iou,
    nms,
    xyxy_to_cxcywh,
)

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def boxes_st(draw, min_size: int = 0, max_size: int = 12, quantised: bool = False):
    """(N, 4) XYXY boxes; quantised=True draws a coarse grid, so exact ties happen."""
    n = draw(st.integers(min_size, max_size))
    if quantised:
        coord = st.integers(0, 8).map(lambda v: 10.0 * v)
        size = st.integers(0, 4).map(lambda v: 10.0 * v)
    else:
        coord = st.floats(0, 100, allow_nan=False)
        size = st.floats(0, 60, allow_nan=False)
    xy = np.array([[draw(coord), draw(coord)] for _ in range(n)]).reshape(n, 2)
    wh = np.array([[draw(size), draw(size)] for _ in range(n)]).reshape(n, 2)
    return np.concatenate([xy, xy + wh], axis=1)


def scores_for(draw, n: int, quantised: bool) -> np.ndarray:
    elem = st.integers(0, 3).map(lambda v: v / 4) if quantised else st.floats(0, 1, allow_nan=False)
    return np.array([draw(elem) for _ in range(n)], dtype=float)


# ------------------------------------------------------------------ seed examples
def test_seed_23_2_3_iou():
    iou = box_iou([[100, 100, 200, 200]], [[150, 100, 250, 200]])
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(1 / 3, abs=1e-15)


SEED_NMS_BOXES = np.array([
    [100, 100, 200, 200],
    [105, 105, 205, 205],
    [400, 400, 500, 500],
    [405, 405, 505, 505],
    [600, 600, 700, 700],
], dtype=float)
SEED_NMS_SCORES = np.array([0.95, 0.90, 0.88, 0.85, 0.75])


def test_seed_23_3_3_nms_errata_2():
    """IoU(B1, B2) = 95²/(2·100² - 95²) = 9025/10975 ≈ 0.822 (the seed prints 0.815)."""
    iou = box_iou(SEED_NMS_BOXES, SEED_NMS_BOXES)
    assert iou[0, 1] == pytest.approx(9025 / 10975, abs=1e-15)
    assert iou[2, 3] == pytest.approx(9025 / 10975, abs=1e-15)
    keep = nms(SEED_NMS_BOXES, SEED_NMS_SCORES, 0.5)
    assert keep.dtype == np.int64
    assert keep.tolist() == [0, 2, 4]  # [B1, B3, B5]
    # the output is sorted by score whatever the input order
    perm = np.array([4, 3, 2, 1, 0])
    assert perm[nms(SEED_NMS_BOXES[perm], SEED_NMS_SCORES[perm], 0.5)].tolist() == [0, 2, 4]


# ---------------------------------------------------------------------- formats
def test_conversions():
    xyxy = np.array([[10, 20, 30, 60], [0, 0, 0, 0]], dtype=float)
    cxcywh = np.array([[20, 40, 20, 40], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(xyxy_to_cxcywh(xyxy), cxcywh)
    np.testing.assert_array_equal(cxcywh_to_xyxy(cxcywh), xyxy)
    np.testing.assert_array_equal(cxcywh_to_xyxy([20, 40, 20, 40]), [10, 20, 30, 60])
    assert xyxy_to_cxcywh(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError):
        xyxy_to_cxcywh(np.zeros((3, 5)))


@SETTINGS
@given(boxes_st())
def test_conversion_round_trip(b):
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(b)), b, atol=1e-12)


def test_area_and_clip():
    b = np.array([[0, 0, 10, 5], [5, 5, 2, 8], [-10, -10, 700, 500]], dtype=float)
    np.testing.assert_array_equal(box_area(b), [50, 0, 710 * 510])
    np.testing.assert_array_equal(clip_boxes(b, 640, 480)[2], [0, 0, 640, 480])
    np.testing.assert_array_equal(clip_boxes(b, 640, 480)[:2], b[:2])
    with pytest.raises(ValueError):
        clip_boxes(b, 0, 480)


# -------------------------------------------------------------------- IoU, GIoU
def test_iou_degenerate_boxes_are_zero_not_nan():
    z = np.array([[5, 5, 5, 5], [5, 5, 5, 9]], dtype=float)
    iou = box_iou(z, z)
    assert np.all(iou == 0)
    giou = generalized_box_iou(z, np.array([[0, 0, 10, 10]], dtype=float))
    assert np.all(np.isfinite(giou)) and np.all(giou >= -1)
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_iou_rejects_bad_input():
    for bad in (np.zeros((2, 3)), np.zeros(4), [[0, 0, np.nan, 1]]):
        with pytest.raises(ValueError):
            box_iou(bad, np.zeros((1, 4)))


def test_giou_known_values():
    a = np.array([[0, 0, 10, 10]], dtype=float)
    # disjoint: IoU 0, union 200, enclosing 20x10 = 200 -> GIoU 0; further apart -> negative
    assert generalized_box_iou(a, [[10, 0, 20, 10]])[0, 0] == pytest.approx(0.0)
    assert generalized_box_iou(a, [[20, 0, 30, 10]])[0, 0] == pytest.approx(-(300 - 200) / 300)
    # nested: GIoU = IoU
    assert generalized_box_iou(a, [[2, 2, 4, 4]])[0, 0] == pytest.approx(4 / 100)
    assert generalized_box_iou(a, a)[0, 0] == 1.0


@SETTINGS
@given(boxes_st(), boxes_st())
def test_iou_properties(a, b):
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert np.all((iou >= 0) & (iou <= 1))
    np.testing.assert_allclose(iou, box_iou(b, a).T, atol=1e-12)
    positive = box_area(a) > 0
    np.testing.assert_allclose(np.diag(box_iou(a, a))[positive], 1.0, atol=1e-12)
    giou = generalized_box_iou(a, b)
    assert np.all((giou >= -1 - 1e-12) & (giou <= 1 + 1e-12))
    assert np.all(giou <= iou + 1e-12)


# -------------------------------------------------------------------------- NMS
def reference_nms(boxes, scores, thr):
    """Seed Algorithm 1 written literally with Python lists (stable sort by score)."""
    remaining = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    while remaining:
        best = remaining.pop(0)
        keep.append(best)
        remaining = [i for i in remaining if box_iou(boxes[[best]], boxes[[i]])[0, 0] <= thr]
    return keep


def test_nms_edge_cases():
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    b = np.array([[0, 0, 10, 10]] * 3, dtype=float)
    assert nms(b, [0.5, 0.5, 0.5], 0.5).tolist() == [0]  # ties: lowest index wins
    assert nms(b, [0.5, 0.5, 0.5], 1.0).tolist() == [0, 1, 2]  # IoU 1 is not > 1
    with pytest.raises(ValueError):
        nms(b, [0.5, np.nan, 0.5], 0.5)
    with pytest.raises(ValueError):
        nms(b, [0.5, 0.5], 0.5)
    with pytest.raises(ValueError):
        nms(b, [0.5, 0.5, 0.5], 1.5)


@SETTINGS
@given(st.data(), st.booleans(), st.sampled_from([0.0, 0.3, 0.5, 0.7]))
def test_nms_properties(data, quantised, thr):
    boxes = data.draw(boxes_st(quantised=quantised))
    scores = scores_for(data.draw, len(boxes), quantised)
    keep = nms(boxes, scores, thr)
    assert keep.tolist() == reference_nms(boxes, scores, thr)
    # sorted by descending score
    assert np.all(np.diff(scores[keep]) <= 0)
    iou = box_iou(boxes, boxes)
    # no kept pair overlaps above the threshold
    kk = iou[np.ix_(keep, keep)]
    assert not np.any(kk[~np.eye(len(keep), dtype=bool)] > thr)
    # every suppressed box overlaps a kept box that ranks before it
    rank = np.empty(len(boxes), int)
    rank[np.argsort(-scores, kind="stable")] = np.arange(len(boxes))
    for i in sorted(set(range(len(boxes))) - set(keep.tolist())):
        assert np.any((iou[i, keep] > thr) & (rank[keep] < rank[i]))


@SETTINGS
@given(st.data(), st.booleans())
def test_batched_nms_is_per_class_nms(data, quantised):
    boxes = data.draw(boxes_st(quantised=quantised))
    scores = scores_for(data.draw, len(boxes), quantised)
    classes = np.array([data.draw(st.integers(0, 2)) for _ in range(len(boxes))], dtype=np.int64)
    keep = batched_nms(boxes, scores, classes, 0.5)
    assert keep.dtype == np.int64
    assert np.all(np.diff(scores[keep]) <= 0)
    for c in range(3):
        idx = np.flatnonzero(classes == c)
        expected = idx[nms(boxes[idx], scores[idx], 0.5)]
        assert sorted(keep[classes[keep] == c].tolist()) == sorted(expected.tolist())


def test_batched_nms_never_suppresses_across_classes():
    b = np.array([[0, 0, 10, 10]] * 4, dtype=float)
    s = np.array([0.9, 0.8, 0.7, 0.95])
    assert batched_nms(b, s, [0, 1, 2, 0], 0.5).tolist() == [3, 1, 2]
    assert batched_nms(b, s, [3, 1, 2, 0], 0.5).tolist() == [3, 0, 1, 2]
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).tolist() == []
    with pytest.raises(ValueError):
        batched_nms(b, s, [0, 1], 0.5)

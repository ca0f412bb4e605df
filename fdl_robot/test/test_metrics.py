"""Tests of fdl_robot.core.metrics: hand-computed APs and agreement with pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdl_robot.core.metrics import (
    COCO_IOU_THRESHOLDS,
    average_precision,
    evaluate_detections,
    interpolated_precision,
    match_detections,
)

GT_BOX = [0.0, 0.0, 100.0, 100.0]


def one_image(pred_boxes, pred_scores, gt_boxes, pred_labels=None, gt_labels=None):
    pred_labels = [0] * len(pred_boxes) if pred_labels is None else pred_labels
    gt_labels = [0] * len(gt_boxes) if gt_labels is None else gt_labels
    return ([{"boxes": np.array(pred_boxes, float).reshape(-1, 4), "labels": np.array(pred_labels, int),
              "scores": np.array(pred_scores, float)}],
            [{"boxes": np.array(gt_boxes, float).reshape(-1, 4), "labels": np.array(gt_labels, int)}])


# --------------------------------------------------------------- hand-computed
def test_perfect_detection_ap_1():
    r = evaluate_detections(*one_image([GT_BOX], [0.9], [GT_BOX]))
    assert r["mAP50-95"] == r["mAP50"] == r["mAP75"] == 1.0
    np.testing.assert_array_equal(r["ap"], np.ones((1, 10)))
    np.testing.assert_array_equal(r["recall"], np.ones((1, 10)))


def test_false_positive_above_true_positive():
    """Ranks: FP (0.9) then TP (0.8): precision (0, 1/2), recall (0, 1).

    Envelope (1/2, 1/2); every recall point 0..1 reads 1/2, so AP = 0.5.
    """
    r = evaluate_detections(*one_image([[500, 500, 600, 600], GT_BOX], [0.9, 0.8], [GT_BOX]))
    assert r["mAP50-95"] == pytest.approx(0.5, abs=1e-15)


def test_true_positive_above_false_positive():
    r = evaluate_detections(*one_image([GT_BOX, [500, 500, 600, 600]], [0.9, 0.8], [GT_BOX]))
    assert r["mAP50-95"] == 1.0


def test_half_recall():
    """One of two GT found: precision 1 for the 51 recall points 0.00..0.50, 0 beyond."""
    r = evaluate_detections(*one_image([GT_BOX], [0.9], [GT_BOX, [200, 200, 300, 300]]))
    assert r["mAP50"] == pytest.approx(51 / 101, abs=1e-15)
    np.testing.assert_allclose(r["recall"], 0.5)


def test_iou_threshold_sweep():
    """IoU 0.62 is a TP at t = 0.50, 0.55, 0.60 only: mAP50-95 = 3/10, mAP50 = 1, mAP75 = 0."""
    r = evaluate_detections(*one_image([[0, 0, 100, 62]], [0.9], [GT_BOX]))
    assert (r["mAP50"], r["mAP75"]) == (1.0, 0.0)
    assert r["mAP50-95"] == pytest.approx(0.3, abs=1e-15)


def test_duplicates_and_greedy_by_score():
    """The higher-scored detection matches first, even with the lower IoU.

    A (0.9) has IoU 0.6, B (0.8) IoU 0.95.  At t = 0.5 A is the TP and B a duplicate
    (FP): AP 1.  At t = 0.75 A misses and B matches: ranks FP, TP -> AP 0.5.
    """
    a, b = [0, 0, 100, 60], [0, 0, 100, 95]
    r = evaluate_detections(*one_image([a, b], [0.9, 0.8], [GT_BOX]))
    t = r["iou_thresholds"]
    np.testing.assert_allclose(r["ap"][0, t < 0.6 - 1e-9], 1.0)
    np.testing.assert_allclose(r["ap"][0, (t > 0.6 + 1e-9) & (t < 0.95 - 1e-9)], 0.5)
    np.testing.assert_allclose(r["ap"][0, -1], 1 / 2)  # 0.95 <= IoU(B) = 0.95: still a match


def test_detection_takes_best_unmatched_gt():
    g1, g2 = [0, 0, 100, 100], [10, 0, 110, 100]
    d1, d2 = [8, 0, 108, 100], [0, 0, 100, 100]  # d1 overlaps g2 best, d2 is exactly g1
    order, is_tp = match_detections([d1, d2], [0.9, 0.8], [g1, g2], [0.5])
    assert order.tolist() == [0, 1] and is_tp.tolist() == [[True, True]]
    r = evaluate_detections(*one_image([d1, d2], [0.9, 0.8], [g1, g2]))
    assert r["mAP50"] == 1.0


def test_equal_iou_goes_to_the_later_gt_like_pycocotools():
    """D1 has IoU 0.78 with both A and B; COCO gives it the later GT (B), leaving A
    (IoU 70/78 ≈ 0.897) for D2, whose IoU with B would be 0.48.

    t = 0.50..0.75: both TP, AP 1; t = 0.80, 0.85: D1 misses, D2 hits A: ranks FP, TP
    with 2 GT -> 51 recall points at precision 1/2; t = 0.90, 0.95: no match.
    """
    gt_a, gt_b = [0, 0, 100, 78], [0, 22, 100, 100]
    d1, d2 = [0, 0, 100, 100], [0, 0, 100, 70]
    preds, gts = one_image([d1, d2], [0.9, 0.8], [gt_a, gt_b])
    r = evaluate_detections(preds, gts)
    np.testing.assert_allclose(r["ap"][0], [1] * 6 + [51 * 0.5 / 101] * 2 + [0] * 2, atol=1e-15)
    (map_5095, _, _), _, _, _ = coco_eval(preds, gts)
    assert r["mAP50-95"] == pytest.approx(map_5095, abs=1e-12)


def test_classes_without_gt_are_excluded():
    preds, gts = one_image([GT_BOX, [300, 300, 400, 400]], [0.9, 0.95], [GT_BOX], pred_labels=[0, 7])
    r = evaluate_detections(preds, gts)
    assert r["classes"].tolist() == [0, 7]
    assert r["mAP50-95"] == 1.0 and np.all(np.isnan(r["ap"][1])) and r["num_gt"].tolist() == [1, 0]
    # a class whose GT was never detected counts as AP 0
    preds, gts = one_image([GT_BOX], [0.9], [GT_BOX, GT_BOX], gt_labels=[0, 3])
    assert evaluate_detections(preds, gts)["mAP50"] == 0.5


def test_wrong_class_is_not_a_match():
    r = evaluate_detections(*one_image([GT_BOX], [0.9], [GT_BOX], pred_labels=[1], gt_labels=[0]))
    assert r["mAP50-95"] == 0.0


def test_max_detections_per_image_and_class():
    """101 FPs outscore the only TP: with maxDets 100 the TP is cut, AP 0."""
    fps = [[200 + i, 200, 210 + i, 210] for i in range(100)]
    preds, gts = one_image(fps + [GT_BOX], [0.9] * 100 + [0.1], [GT_BOX])
    assert evaluate_detections(preds, gts)["mAP50"] == 0.0
    assert evaluate_detections(preds, gts, max_detections=101)["mAP50"] == pytest.approx(1 / 101)


def test_empty_inputs():
    preds, gts = one_image([], [], [GT_BOX])
    r = evaluate_detections(preds, gts)
    assert r["mAP50-95"] == 0.0
    r = evaluate_detections([{"boxes": [], "labels": [], "scores": []}], [{"boxes": [], "labels": []}])
    assert np.isnan(r["mAP50-95"]) and r["classes"].shape == (0,)
    assert np.isnan(evaluate_detections(*one_image([GT_BOX], [0.9], [GT_BOX]), iou_thresholds=[0.6])["mAP50"])


def test_validation():
    preds, gts = one_image([GT_BOX], [0.9], [GT_BOX])
    with pytest.raises(ValueError):
        evaluate_detections(preds, gts * 2)
    for bad in ({"boxes": [[0, 0, 1]], "labels": [0], "scores": [1.0]},
                {"boxes": [GT_BOX], "labels": [0.5], "scores": [1.0]},
                {"boxes": [GT_BOX], "labels": [0], "scores": [np.nan]},
                {"boxes": [GT_BOX], "labels": [0, 1], "scores": [1.0]}):
        with pytest.raises(ValueError):
            evaluate_detections([bad], gts)


def test_average_precision_direct():
    # ranks TP, FP, TP with 3 GT: precision (1, 1/2, 2/3), recall (1/3, 1/3, 2/3)
    # envelope (1, 2/3, 2/3): r <= 1/3 -> 1 (34 points: 0.00..0.33), r in (1/3, 2/3] -> 2/3 (33 points)
    scores = np.array([0.3, 0.9, 0.5])
    is_tp = np.array([True, True, False])
    assert average_precision(scores, is_tp, 3) == pytest.approx((34 * 1 + 33 * 2 / 3) / 101, abs=1e-15)
    q = interpolated_precision(scores, np.stack([is_tp, ~is_tp]), 3)
    assert q.shape == (2, 101)
    assert np.isnan(average_precision(scores, is_tp, 0))
    assert average_precision([], np.zeros(0, bool), 2) == 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=30), st.integers(1, 40))
def test_average_precision_properties(dets, extra_gt):
    scores = np.array([d[0] for d in dets])
    is_tp = np.array([d[1] for d in dets], dtype=bool)
    num_gt = int(is_tp.sum()) + extra_gt - 1 if is_tp.sum() else extra_gt
    ap = average_precision(scores, is_tp, num_gt)
    assert 0.0 <= ap <= 1.0
    # rank-based: scaling the scores, or (if they are distinct) reordering the list, changes nothing
    assert average_precision(scores * 2, is_tp, num_gt) == ap
    if len(np.unique(scores)) == len(scores):
        assert average_precision(scores[::-1], is_tp[::-1], num_gt) == ap
    # a false positive ranked below everything changes nothing
    assert average_precision(np.append(scores, -1.0), np.append(is_tp, False), num_gt) == ap
    # the precision curve is non-increasing in recall
    assert np.all(np.diff(interpolated_precision(scores, is_tp, num_gt)) <= 0)


# --------------------------------------------------------- against pycocotools
def random_dataset(seed: int, quantised: bool, crowded: bool = False):
    """Random GT and detections: jittered copies of GT (some relabelled), duplicates, and FPs."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(15):
        n_gt = rng.integers(0, 8)
        xy = rng.uniform(0, 400, (n_gt, 2))
        wh = rng.uniform(5, 150, (n_gt, 2))
        g_boxes = np.c_[xy, xy + wh]
        g_labels = rng.integers(0, 3, n_gt)
        if n_gt >= 2 and rng.random() < 0.3:  # exact duplicate GT: equal IoUs
            g_boxes[1], g_labels[1] = g_boxes[0], g_labels[0]
        copies = np.repeat(np.arange(n_gt), rng.integers(0, 3, n_gt))
        jitter = rng.normal(0, 0.12, (len(copies), 4)) * np.c_[wh[copies], wh[copies]]
        p_boxes = g_boxes[copies] + jitter
        p_labels = np.where(rng.random(len(copies)) < 0.9, g_labels[copies], rng.integers(0, 3, len(copies)))
        n_fp = rng.integers(0, 6)
        fp_labels = rng.choice([0, 1, 2, 5], n_fp)
        if crowded and rng.random() < 0.3:  # over 100 detections of class 0: maxDets cuts
            n_fp += 120
            fp_labels = np.concatenate([fp_labels, np.zeros(120, int)])
        fp_xy = rng.uniform(0, 450, (n_fp, 2))
        p_boxes = np.concatenate([p_boxes, np.c_[fp_xy, fp_xy + rng.uniform(5, 100, (n_fp, 2))]])
        p_labels = np.concatenate([p_labels, fp_labels])
        p_boxes[:, 2:] = np.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1)
        scores = rng.random(len(p_boxes))
        if quantised:  # integer boxes, scores in steps of 0.1: exact IoU ties, score ties
            g_boxes, p_boxes, scores = np.round(g_boxes), np.round(p_boxes), np.round(scores, 1)
        preds.append({"boxes": p_boxes, "labels": p_labels, "scores": scores})
        gts.append({"boxes": g_boxes, "labels": g_labels})
    return preds, gts


def coco_eval(preds, gts):
    """Run pycocotools' COCOeval ("bbox") on the same data, in its xywh format."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    classes = sorted({int(c) for d in preds + gts for c in d["labels"]})
    images, annotations, results = [], [], []
    for i, (p, g) in enumerate(zip(preds, gts, strict=True)):
        images.append({"id": i + 1})
        for b, c in zip(g["boxes"], g["labels"], strict=True):  # ids from 1: pycocotools treats id 0 as "unmatched"
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                "bbox": xywh(b), "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0})
        for b, c, s in zip(p["boxes"], p["labels"], p["scores"], strict=True):
            results.append({"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations,
                           "categories": [{"id": c + 1, "name": str(c)} for c in classes]}
        coco_gt.createIndex()
        E = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    precision = E.eval["precision"][:, :, :, 0, -1]  # (T, R, K) for area "all", maxDets 100
    ap = np.where(precision[:, 0, :] > -1, precision.mean(axis=1), np.nan).T  # (K, T)
    return E.stats[:3], np.array(classes), ap, np.asarray(E.params.iouThrs)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("quantised", [False, True])
def test_agrees_with_pycocotools(seed, quantised):
    preds, gts = random_dataset(seed, quantised, crowded=seed % 2 == 1)
    (map_5095, map_50, map_75), classes, coco_ap, coco_thresholds = coco_eval(preds, gts)
    r = evaluate_detections(preds, gts)
    np.testing.assert_array_equal(r["iou_thresholds"], coco_thresholds)
    np.testing.assert_array_equal(r["classes"], classes)
    assert 0.01 < r["mAP50-95"] < 0.95  # a non-trivial case
    np.testing.assert_allclose(r["ap"], coco_ap, rtol=0, atol=1e-12)
    assert r["mAP50-95"] == pytest.approx(map_5095, abs=1e-12)
    assert r["mAP50"] == pytest.approx(map_50, abs=1e-12)
    assert r["mAP75"] == pytest.approx(map_75, abs=1e-12)


def test_coco_thresholds_constant():
    np.testing.assert_allclose(COCO_IOU_THRESHOLDS, np.arange(0.5, 0.96, 0.05), atol=1e-12)

"""Perception on a recorded bag scored against the bag's ground truth: the regression replay.

    python -m fdl_robot.bags.replay fdl_robot/test/data/sim_episode            # auto backend
    python -m fdl_robot.bags.replay BAG --backend ultralytics --model best.pt --json

:class:`ReplayEvaluator` plays the bag through detector, localizer and tracker
(:func:`fdl_robot.bags.replay.replay_perception`) and :func:`evaluate` scores what they
published against the ground truth recorded alongside (``scripts/make_regression_bag.py``:
``/sim/ground_truth`` markers in base_link, ``/sim/ground_truth/boxes`` labels), frame by
frame, matched by stamp:

* detection: detections and labels of the same class matched one to one
  (:func:`fdl_robot.eval.matching.match_by_class`, IoU >= ``iou_threshold``): precision
  and recall, overall and per class;
* 3D: for every correctly detected cube, the distance of its lifted position (localizer
  output, base_link) to the nearest true cube centre of its class: median, 90th
  percentile, max. It includes the calibration error of the simulated episode (its true
  camera pose differs from the nominal one the localizer uses), as on a robot;
* tracking: CLEAR-MOT (MOTA, ID switches, RMSE) and IDF1 (:mod:`fdl_robot.core.mot_metrics`)
  of the published tracks of cube classes against the true cube centres, gate ``mot_gate_m``.

The ``color`` backend (HSV blobs) names its classes by colour; :data:`COLOR_CLASS_MAP`
maps them to the simulator's classes (green and yellow blobs are cubes, the blue blob is
the bin); distractors of other colours are invisible to it.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.bags.replay import ReplayResult, replay_perception
from fdl_robot.core.mot_metrics import MOTAccumulator, idf1
from fdl_robot.eval.matching import match_by_class

__all__ = ["COLOR_CLASS_MAP", "Perception", "ReplayEvaluator", "ReplayReport", "Scores", "evaluate", "main"]

TRUTH_TOPIC = "/sim/ground_truth"
BOXES_TOPIC = "/sim/ground_truth/boxes"
CUBE_CLASSES = ("red_cube", "cube")
COLOR_CLASS_MAP = {"red_cube": "red_cube", "green_cube": "cube", "yellow_cube": "cube",
                   "blue_cube": "bin"}
IOU_THRESHOLD = 0.5
MOT_GATE_M = 0.05
NAN = float("nan")


@dataclass
class Scores:
    frames: int
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    false_negatives: int
    per_class: dict                    # class -> {"precision", "recall", "tp", "fp", "fn"}
    error_3d_median_m: float           # cubes: lifted position vs true centre
    error_3d_p90_m: float
    error_3d_max_m: float
    error_3d_count: int
    mota: float
    idf1: float
    id_switches: int
    mot_rmse_m: float
    mot_frames: int

    def as_dict(self) -> dict:
        return asdict(self)


def _stamp_ns(msg) -> int:
    """Header stamp in ns (a MarkerArray: its first marker's; -1 if it has none)."""
    if not hasattr(msg, "header"):
        msg = msg.markers[0] if msg.markers else None
        if msg is None:
            return -1
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _ground_truth(bag) -> tuple[dict, dict]:
    """{stamp: MarkerArray of true poses}, {stamp: Detection2DArray of true labels}."""
    from fdl_robot.bags.reader import read_messages

    truth, boxes = {}, {}
    for topic, _t, msg in read_messages(bag, [TRUTH_TOPIC, BOXES_TOPIC]):
        (truth if topic == TRUTH_TOPIC else boxes)[_stamp_ns(msg)] = msg
    return truth, boxes


def _true_cubes(markers) -> tuple[list[str], np.ndarray, list[str]]:
    """Names, centres (N, 3) in base_link and classes of the cubes of a ground-truth MarkerArray."""
    names, pos, classes = [], [], []
    for m in markers.markers:
        if m.ns == "bin":
            continue
        names.append(m.ns)
        pos.append([m.pose.position.x, m.pose.position.y, m.pose.position.z])
        classes.append("red_cube" if m.ns == "red_cube" else "cube")
    return names, np.array(pos, float).reshape(-1, 3), classes


def _box(d) -> tuple[float, float, float, float]:
    return d.x_min, d.y_min, d.x_max, d.y_max


def _ratio(a: int, b: int) -> float:
    return a / b if b else NAN


def _detection_scores(result: ReplayResult, labels: dict, cls, iou_threshold: float) -> tuple[dict, set]:
    """Per-class counts (tp, fp, fn, precision, recall) and the (stamp, box) of every true positive."""
    per_class: dict[str, dict] = {}
    good_boxes: set[tuple] = set()
    for det in result.detections:
        stamp = _stamp_ns(det)
        gt = labels.get(stamp)
        if gt is None:
            continue
        det_classes = [cls(d.class_name) for d in det.detections]
        gt_classes = [d.class_name for d in gt.detections]
        pairs = match_by_class([_box(d) for d in det.detections], det_classes,
                               [_box(d) for d in gt.detections], gt_classes, iou_threshold)
        matched = [det_classes[i] for i, _ in pairs]
        for c in sorted(set(det_classes) | set(gt_classes)):
            counts = per_class.setdefault(c, {"tp": 0, "fp": 0, "fn": 0})
            tp = matched.count(c)
            counts["tp"] += tp
            counts["fp"] += det_classes.count(c) - tp
            counts["fn"] += gt_classes.count(c) - tp
        good_boxes.update((stamp, _box(det.detections[i])) for i, _ in pairs)
    for v in per_class.values():
        v["precision"] = _ratio(v["tp"], v["tp"] + v["fp"])
        v["recall"] = _ratio(v["tp"], v["tp"] + v["fn"])
    return per_class, good_boxes


def _with_truth(messages: list, truth: dict):
    """(message, stamp, true cube names, centres, classes) of every message with ground truth at its stamp."""
    for msg in messages:
        stamp = _stamp_ns(msg)
        if stamp in truth:
            yield (msg, stamp, *_true_cubes(truth[stamp]))


def _errors_3d(result: ReplayResult, truth: dict, cls, good_boxes: set) -> np.ndarray:
    """Distance (m) of each correctly detected cube's lifted position to the nearest true cube of its class."""
    errors = []
    for objs, stamp, _names, centres, classes in _with_truth(result.objects, truth):
        for o in objs.objects:
            c = cls(o.class_name)
            if c not in CUBE_CLASSES or (stamp, _box(o.detection)) not in good_boxes:
                continue
            same = [k for k, k_cls in enumerate(classes) if k_cls == c]
            p = np.array([o.position.x, o.position.y, o.position.z])
            errors.append(float(np.min(np.linalg.norm(centres[same] - p, axis=1))))
    return np.array(errors)


def _tracking_scores(result: ReplayResult, truth: dict, cls, mot_gate_m: float):
    """CLEAR-MOT summary and IDF1 of the tracks of cube classes against the true cube centres."""
    acc = MOTAccumulator(mot_gate_m)
    frames = []
    for tracks, _stamp, names, centres, _classes in _with_truth(result.tracks, truth):
        hyp = [t for t in tracks.tracks if cls(t.class_name) in CUBE_CLASSES]
        h_ids = np.array([t.id for t in hyp], dtype=int)
        h_pos = np.array([[t.position.x, t.position.y, t.position.z] for t in hyp], float).reshape(-1, 3)
        acc.update(np.array(names), centres, h_ids, h_pos)
        frames.append((names, centres, h_ids, h_pos))
    return acc.summary(), idf1(frames, mot_gate_m)


def evaluate(bag: str | Path, result: ReplayResult, class_map: dict | None = None,
             iou_threshold: float = IOU_THRESHOLD, mot_gate_m: float = MOT_GATE_M) -> Scores:
    """Score a replay of ``bag`` against the bag's ground truth (module docstring).

    ``class_map`` renames the detector's classes to the simulator's (default: :data:`COLOR_CLASS_MAP`
    for the ``color`` backend, none otherwise).
    """
    if class_map is None:
        class_map = COLOR_CLASS_MAP if result.backend == "color" else {}

    def cls(name: str) -> str:
        return class_map.get(name, name)

    truth, labels = _ground_truth(bag)
    per_class, good_boxes = _detection_scores(result, labels, cls, iou_threshold)
    tp, fp, fn = (sum(v[key] for v in per_class.values()) for key in ("tp", "fp", "fn"))
    errors = _errors_3d(result, truth, cls, good_boxes)
    mot, id_f1 = _tracking_scores(result, truth, cls, mot_gate_m)
    return Scores(
        frames=len(result.detections), precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn),
        true_positives=tp, false_positives=fp, false_negatives=fn, per_class=per_class,
        error_3d_median_m=float(np.median(errors)) if errors.size else NAN,
        error_3d_p90_m=float(np.percentile(errors, 90)) if errors.size else NAN,
        error_3d_max_m=float(errors.max()) if errors.size else NAN, error_3d_count=int(errors.size),
        mota=mot.mota, idf1=id_f1, id_switches=mot.num_switches, mot_rmse_m=mot.rmse_m,
        mot_frames=mot.num_frames)


@dataclass(frozen=True)
class Perception:
    """The perception under test: detector backend ('auto' = the shipped weights if any, else
    'color') and its weights ('' = the shipped ones)."""

    backend: str = "auto"
    model_path: str = ""


@dataclass(frozen=True)
class ReplayReport:
    result: ReplayResult
    scores: Scores

    def as_dict(self) -> dict:
        """The JSON of ``--json``: backend, replay time, frames without output, the scores."""
        return {"backend": self.result.backend, "replay_s": self.result.wall_s, "missing": self.result.missing,
                **self.scores.as_dict()}

    def lines(self) -> list[str]:
        """The text report."""
        r, s = self.result, self.scores
        out = [f"backend {r.backend}: {r.frames} frames in {r.wall_s:.2f} s "
               f"({1000 * r.wall_s / max(r.frames, 1):.0f} ms/frame), {r.missing} without output",
               f"detection  P {s.precision:.3f}  R {s.recall:.3f}  (TP {s.true_positives}, "
               f"FP {s.false_positives}, FN {s.false_negatives}, IoU>={IOU_THRESHOLD:g})"]
        out += [f"  {c:10s} P {v['precision']:.3f}  R {v['recall']:.3f}  (TP {v['tp']}, FP {v['fp']}, FN {v['fn']})"
                for c, v in sorted(s.per_class.items())]
        out += [f"3D (cubes) median {1000 * s.error_3d_median_m:.1f} mm, p90 {1000 * s.error_3d_p90_m:.1f} mm, "
                f"max {1000 * s.error_3d_max_m:.1f} mm over {s.error_3d_count} objects",
                f"tracking   MOTA {s.mota:.3f}  IDF1 {s.idf1:.3f}  IDSW {s.id_switches}  "
                f"RMSE {1000 * s.mot_rmse_m:.1f} mm over {s.mot_frames} frames"]
        return out


class ReplayEvaluator:
    """Replays one bag through the perception under test and scores it (module docstring)."""

    def __init__(self, bag: str | Path):
        self.bag = bag

    def run(self, perception: Perception) -> ReplayReport:
        result = replay_perception(self.bag, perception.backend, perception.model_path)
        return ReplayReport(result, evaluate(self.bag, result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fdl_robot.bags.replay",
                                     description="replay a bag through detector, localizer and "
                                                 "tracker and score them against its ground truth",
                                     formatter_class=HelpFormatter)
    parser.add_argument("bag")
    parser.add_argument("--backend", default="auto", help="auto (shipped weights if any, else "
                        "color), color, ultralytics, detr")
    parser.add_argument("--model", default="", help="detector weights ('' = shipped)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    report = ReplayEvaluator(args.bag).run(Perception(args.backend, args.model))
    print(json.dumps(report.as_dict(), indent=2) if args.json else "\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Replay a recorded camera stream through the perception nodes and score them.

    python -m fdl_robot.bags.replay fdl_robot/test/data/sim_episode            # auto backend
    python -m fdl_robot.bags.replay BAG --backend ultralytics --model best.pt --json

:func:`replay_perception` builds detector_node, localizer_node and tracker_node in one
process exactly as ``fdl-robot run --graph perception`` does (the runner, the YAML of
:mod:`fdl_robot.ros.parameters`, per-node overrides), plays the bag's colour, aligned
depth and camera_info topics frame by frame -- each frame's messages, then spin until the
tracker has published for that frame -- and collects every output. Nothing depends on
CPU load: no frame is skipped however slow the detector, so two replays give identical
outputs (a test checks it) and the scores are those of every frame.

:func:`evaluate` scores the outputs against the ground truth recorded in the same bag
(``scripts/make_regression_bag.py``: ``/sim/ground_truth`` markers in base_link and
``/sim/ground_truth/boxes`` labels):

* detection: per frame, detections and labels of the same class matched one to one
  (Hungarian on 1 - IoU, IoU >= ``iou_threshold``): precision, recall, per class too;
* 3D: the lifted position (localizer output, base_link) of every correctly detected
  cube, distance to its true centre (the nearest true cube of that class): median,
  90th percentile, max. It includes the calibration error of the simulated episode
  (its true camera pose differs from the nominal one the localizer uses by a few mm and
  < 1 deg) -- as on a robot;
* tracking: CLEAR-MOT (:mod:`fdl_robot.core.mot_metrics`; MOTA, ID switches, RMSE) and
  IDF1 (Ristani et al. 2016) of the published tracks of cube classes against the true
  cube centres, gate ``mot_gate_m``.

The ``color`` backend (HSV blobs) names its classes by colour; :data:`COLOR_CLASS_MAP`
maps them to the simulator's classes (green/yellow blobs are cubes, the blue blob is the
bin; purple or other distractors are invisible to it).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ReplayResult", "Scores", "replay_perception", "evaluate", "default_backend",
           "COLOR_CLASS_MAP", "idf1", "main"]

COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/color/camera_info"
TRUTH_TOPIC = "/sim/ground_truth"
BOXES_TOPIC = "/sim/ground_truth/boxes"
CUBE_CLASSES = ("red_cube", "cube")
COLOR_CLASS_MAP = {"red_cube": "red_cube", "green_cube": "cube", "yellow_cube": "cube",
                   "blue_cube": "bin"}


def default_backend() -> str:
    """'ultralytics' once trained weights ship in fdl_robot/models/detector/, else 'color'."""
    from fdl_robot.ros.detector_node import default_model_path

    return "ultralytics" if default_model_path() else "color"


@dataclass
class ReplayResult:
    backend: str
    frames: int                                       # images published
    detections: list = field(default_factory=list)    # Detection2DArray per frame
    objects: list = field(default_factory=list)       # Object3DArray per frame
    tracks: list = field(default_factory=list)        # TrackArray per frame
    missing: int = 0                                  # frames without tracker output in time
    wall_s: float = 0.0                               # replay time (frames only)

    def outputs(self) -> list:
        """Every output message, for exact comparisons between replays (``==``; not CDR
        bytes: rclpy's serialized buffers carry uninitialised padding)."""
        return [*self.detections, *self.objects, *self.tracks]


def _graph_config(path: Path, backend: str, model_path: str, overrides: dict | None) -> Path:
    import yaml

    from fdl_robot.ros import parameters

    config = yaml.safe_load(parameters.to_yaml())
    config["/**/detector_node"]["ros__parameters"].update(backend=backend, model_path=model_path)
    for node, params in (overrides or {}).items():
        config[f"/**/{node}"]["ros__parameters"].update(params)
    path.write_text(yaml.safe_dump(config))
    return path


def replay_perception(bag: str | Path, backend: str = "auto", model_path: str = "",
                      overrides: dict | None = None, frame_timeout_s: float = 10.0,
                      max_frames: int | None = None) -> ReplayResult:
    """Play ``bag`` frame by frame through detector, localizer and tracker (module docstring).

    ``overrides`` maps node names to parameter values on top of the defaults.
    """
    import rclpy
    from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray, TrackArray
    from rclpy.executors import SingleThreadedExecutor

    from fdl_robot.bags.player import BagPlayer
    from fdl_robot.ros.runner import build_nodes

    backend = default_backend() if backend == "auto" else backend
    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = f"/replay_{time.monotonic_ns() % 10**9}"
    nodes, player = [], None
    executor = SingleThreadedExecutor(context=context)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = _graph_config(Path(tmp) / "graph.yaml", backend, model_path, overrides)
            nodes = build_nodes("perception", config, namespace=namespace, context=context,
                                only=["detector_node", "localizer_node", "tracker_node"])
        probe = rclpy.create_node("replay_probe", namespace=namespace, context=context)
        nodes.append(probe)
        for node in nodes:
            executor.add_node(node)
        result = ReplayResult(backend=backend, frames=0)
        probe.create_subscription(Detection2DArray, "detections", result.detections.append, 100)
        probe.create_subscription(Object3DArray, "objects", result.objects.append, 100)
        probe.create_subscription(TrackArray, "tracks", result.tracks.append, 100)
        player = BagPlayer(probe, bag, topics=[COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC], namespace=namespace)
        player.wait_for_subscribers([COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC],
                                    lambda: executor.spin_once(timeout_sec=0.01), timeout_s=10.0)
        for sub in ("detections", "objects", "tracks"):       # probe subscriptions matched too
            _spin_until(executor, lambda s=sub: probe.count_publishers(f"{namespace}/{s}") > 0, 10.0)
        start = time.monotonic()
        while max_frames is None or result.frames < max_frames:
            published = player.publish_until(COLOR_TOPIC)
            if not published or published[-1].topic != COLOR_TOPIC:
                break
            result.frames += 1
            want = result.frames - result.missing
            if not _spin_until(executor, lambda: len(result.tracks) >= want, frame_timeout_s):
                result.missing += 1
        result.wall_s = time.monotonic() - start
        _spin_until(executor, lambda: False, 0.05)             # stragglers of the last frame
        return result
    finally:
        if player is not None:
            player.close()
        executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def _spin_until(executor, condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        executor.spin_once(timeout_sec=0.005)
    return True


# --- scoring ------------------------------------------------------------------------------

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
    """Header stamp in ns (a MarkerArray: its first marker's)."""
    if not hasattr(msg, "header"):
        msg = msg.markers[0] if msg.markers else None
        if msg is None:
            return -1
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from fdl_robot.core.boxes import box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(a, b)


def _match(det_boxes, gt_boxes, iou_threshold):
    """One-to-one matches (det index, gt index) with IoU >= iou_threshold, maximal total IoU."""
    from fdl_robot.core.assignment import hungarian

    iou = _iou(det_boxes, gt_boxes)
    if iou.size == 0:
        return []
    rows, cols = hungarian(1.0 - iou, max_cost=1.0 - iou_threshold)
    return list(zip(rows.tolist(), cols.tolist()))


def idf1(frames, max_distance_m: float) -> float:
    """IDF1 of ``(gt_ids, gt_positions, hyp_ids, hyp_positions)`` per frame.

    IDTP is the number of (frame, gt, hyp) co-occurrences within ``max_distance_m`` kept by
    the best one-to-one mapping of gt identities to hypothesis identities over the whole
    sequence (Hungarian); IDF1 = 2 IDTP / (#gt detections + #hyp detections).
    """
    from scipy.optimize import linear_sum_assignment

    counts: dict[tuple, int] = {}
    n_gt = n_hyp = 0
    for g_ids, g_pos, h_ids, h_pos in frames:
        g_pos, h_pos = np.asarray(g_pos, float).reshape(-1, 3), np.asarray(h_pos, float).reshape(-1, 3)
        n_gt, n_hyp = n_gt + len(g_ids), n_hyp + len(h_ids)
        if len(g_ids) and len(h_ids):
            d = np.linalg.norm(g_pos[:, None] - h_pos[None], axis=-1)
            for i, j in zip(*np.nonzero(d <= max_distance_m)):
                key = (g_ids[i], h_ids[j])
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


def _ground_truth(bag):
    from fdl_robot.bags.reader import read_messages

    truth, boxes = {}, {}
    for topic, _t, msg in read_messages(bag, [TRUTH_TOPIC, BOXES_TOPIC]):
        (truth if topic == TRUTH_TOPIC else boxes)[_stamp_ns(msg)] = msg
    return truth, boxes


def _true_cubes(markers) -> tuple[list[str], np.ndarray, list[str]]:
    """Names, centres (N, 3) and classes of the cubes of a ground-truth MarkerArray."""
    names, pos, classes = [], [], []
    for m in markers.markers:
        if m.ns == "bin":
            continue
        names.append(m.ns)
        pos.append([m.pose.position.x, m.pose.position.y, m.pose.position.z])
        classes.append("red_cube" if m.ns == "red_cube" else "cube")
    return names, np.array(pos, float).reshape(-1, 3), classes


def evaluate(bag: str | Path, result: ReplayResult, class_map: dict | None = None,
             iou_threshold: float = 0.5, mot_gate_m: float = 0.05) -> Scores:
    """Score a replay against the bag's ground truth (module docstring)."""
    from fdl_robot.core.mot_metrics import MOTAccumulator

    if class_map is None:
        class_map = COLOR_CLASS_MAP if result.backend == "color" else {}
    cls = lambda name: class_map.get(name, name)  # noqa: E731
    truth, labels = _ground_truth(bag)
    per_class: dict[str, dict] = {}

    def bump(c, key, n=1):
        per_class.setdefault(c, {"tp": 0, "fp": 0, "fn": 0})[key] += n

    good_boxes: set[tuple] = set()                  # (stamp, box) of true-positive detections
    for det in result.detections:
        stamp = _stamp_ns(det)
        gt = labels.get(stamp)
        if gt is None:
            continue
        for c in {cls(d.class_name) for d in det.detections} | {d.class_name for d in gt.detections}:
            d_idx = [i for i, d in enumerate(det.detections) if cls(d.class_name) == c]
            g_idx = [i for i, d in enumerate(gt.detections) if d.class_name == c]
            box = lambda d: [d.x_min, d.y_min, d.x_max, d.y_max]  # noqa: E731
            pairs = _match(np.array([box(det.detections[i]) for i in d_idx], float).reshape(-1, 4),
                           np.array([box(gt.detections[i]) for i in g_idx], float).reshape(-1, 4),
                           iou_threshold)
            bump(c, "tp", len(pairs))
            bump(c, "fp", len(d_idx) - len(pairs))
            bump(c, "fn", len(g_idx) - len(pairs))
            for i, _ in pairs:
                good_boxes.add((stamp, tuple(box(det.detections[d_idx[i]]))))
    for v in per_class.values():
        v["precision"] = v["tp"] / (v["tp"] + v["fp"]) if v["tp"] + v["fp"] else float("nan")
        v["recall"] = v["tp"] / (v["tp"] + v["fn"]) if v["tp"] + v["fn"] else float("nan")
    tp = sum(v["tp"] for v in per_class.values())
    fp = sum(v["fp"] for v in per_class.values())
    fn = sum(v["fn"] for v in per_class.values())

    errors = []
    for objs in result.objects:
        stamp = _stamp_ns(objs)
        if stamp not in truth:
            continue
        _names, centres, classes = _true_cubes(truth[stamp])
        for o in objs.objects:
            c = cls(o.class_name)
            d = o.detection
            if c not in CUBE_CLASSES or (stamp, (d.x_min, d.y_min, d.x_max, d.y_max)) not in good_boxes:
                continue
            same = [k for k, k_cls in enumerate(classes) if k_cls == c]
            p = np.array([o.position.x, o.position.y, o.position.z])
            errors.append(float(np.min(np.linalg.norm(centres[same] - p, axis=1))))
    errors = np.array(errors)

    acc = MOTAccumulator(mot_gate_m)
    mot_frames = []
    for tracks in result.tracks:
        stamp = _stamp_ns(tracks)
        if stamp not in truth:
            continue
        names, centres, _ = _true_cubes(truth[stamp])
        hyp = [t for t in tracks.tracks if cls(t.class_name) in CUBE_CLASSES]
        h_ids = np.array([t.id for t in hyp], dtype=int)
        h_pos = np.array([[t.position.x, t.position.y, t.position.z] for t in hyp], float).reshape(-1, 3)
        acc.update(np.array(names), centres, h_ids, h_pos)
        mot_frames.append((names, centres, h_ids.tolist(), h_pos))
    mot = acc.summary()
    nan = float("nan")
    return Scores(
        frames=len(result.detections),
        precision=tp / (tp + fp) if tp + fp else nan, recall=tp / (tp + fn) if tp + fn else nan,
        true_positives=tp, false_positives=fp, false_negatives=fn, per_class=per_class,
        error_3d_median_m=float(np.median(errors)) if errors.size else nan,
        error_3d_p90_m=float(np.percentile(errors, 90)) if errors.size else nan,
        error_3d_max_m=float(errors.max()) if errors.size else nan, error_3d_count=int(errors.size),
        mota=mot.mota, idf1=idf1(mot_frames, mot_gate_m), id_switches=mot.num_switches,
        mot_rmse_m=mot.rmse_m, mot_frames=mot.num_frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fdl_robot.bags.replay",
                                     description="replay a bag through detector, localizer and "
                                                 "tracker and score them against its ground truth")
    parser.add_argument("bag")
    parser.add_argument("--backend", default="auto", help="auto (shipped weights if any, else "
                        "color), color, ultralytics, detr")
    parser.add_argument("--model", default="", help="detector weights ('' = shipped)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    result = replay_perception(args.bag, args.backend, args.model)
    scores = evaluate(args.bag, result)
    if args.json:
        print(json.dumps({"backend": result.backend, "replay_s": result.wall_s,
                          "missing": result.missing, **scores.as_dict()}, indent=2))
        return 0
    print(f"backend {result.backend}: {result.frames} frames in {result.wall_s:.2f} s "
          f"({1000 * result.wall_s / max(result.frames, 1):.0f} ms/frame), {result.missing} without output")
    print(f"detection  P {scores.precision:.3f}  R {scores.recall:.3f}  "
          f"(TP {scores.true_positives}, FP {scores.false_positives}, FN {scores.false_negatives}, IoU>=0.5)")
    for c, v in sorted(scores.per_class.items()):
        print(f"  {c:10s} P {v['precision']:.3f}  R {v['recall']:.3f}  (TP {v['tp']}, FP {v['fp']}, FN {v['fn']})")
    print(f"3D (cubes) median {1000 * scores.error_3d_median_m:.1f} mm, p90 {1000 * scores.error_3d_p90_m:.1f} mm, "
          f"max {1000 * scores.error_3d_max_m:.1f} mm over {scores.error_3d_count} objects")
    print(f"tracking   MOTA {scores.mota:.3f}  IDF1 {scores.idf1:.3f}  IDSW {scores.id_switches}  "
          f"RMSE {1000 * scores.mot_rmse_m:.1f} mm over {scores.mot_frames} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

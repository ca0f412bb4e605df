"""Held-out accuracy of a detector in 2D (COCO mAP) and of detector + lifting in 3D.

    fdl-robot-eval-detector                                  # shipped weights, 60 episodes
    fdl-robot-eval-detector --backend ultralytics --weights best.onnx --imgsz 320
    fdl-robot-eval-detector --camera wrist --depth-model ideal   # the wrist camera, perfect depth

Frames are rendered from validation seeds (:data:`fdl_robot.sim.detection_dataset.VAL_SEED0`
onwards, never used in training) exactly as the dataset's validation split, with their
aligned depth and ground truth, so the evaluation needs no dataset on disk.

2D: COCO mAP50-95 / mAP50 (:func:`fdl_robot.core.metrics.evaluate_detections`) per class
and over the cube classes (``red_cube``, ``cube``).

3D: each ground-truth object is matched to at most one detection of its class
(:func:`fdl_robot.eval.matching.match_by_class`, IoU >= 0.5); the matched box is lifted with
the aligned depth (:func:`fdl_robot.perception.lifting.lift_detections`: robust box depth,
pinhole back-projection, surface-to-centre offset, ``p_base = T_base_cam p_cam``) and compared
with the true object centre in ``base_link``::

    e = || p_base_estimated - p_base_true ||     (metres)

reported as median and p95, broken down by distance (optical-axis depth of the centre)
and occlusion (visible fraction of the whole object, from the segmentation render: a part
outside the image counts as hidden, which matters for the wide, close wrist camera). Two extrinsics are
compared: the episode's true camera pose (a calibrated camera), and the nominal pose
the localizer is configured with (the sim jitters the real camera around it, like an
imperfect hand-eye calibration). Only cubes have a target (median <= 5 mm, p95 <= 15 mm
unoccluded); the bin is hollow, so its "centre" from the visible surface is reported
for information.

``--camera scene|wrist`` picks the camera (the wrist camera's "nominal" extrinsics are the
arm's exact FK times the nominal mount, T_base_tool0(q) T_flange_cam_nominal; its lifting
accepts depths from the D405's 7 cm); ``--depth-model realsense`` (the default: every
evaluation sees a stereo camera's depth, ``sim.depth_model``) or ``ideal`` (the render).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.metrics import evaluate_detections
from fdl_robot.outputs import FIGURE, JSON, check_args, exit_on_error, write_figure, write_json
from fdl_robot.eval.base import EvalConfig, add_arguments, from_arguments
from fdl_robot.eval.matching import match_by_class
from fdl_robot.perception.detector import Detector, DetectorConfig, default_model_path, make_detector
from fdl_robot.perception.lifting import LiftingConfig, lift_detections
from fdl_robot.sim.depth_model import DEPTH_MODELS
from fdl_robot.sim.detection_dataset import CLASS_NAMES, VAL_SEED0
from fdl_robot.sim.scene import CAMERAS, SCENE_CAMERA

__all__ = ["DETECTOR_EVAL", "DISTANCE_BINS_M", "OCCLUSION_BINS", "DetectorEvaluator", "run_evaluation",
           "summarise_2d", "summarise_3d", "main"]

#: Depth of the object centre along the optical axis, metres: [lo, hi), per camera.
DISTANCE_BINS_M = {"scene_cam": ((0.0, 0.75), (0.75, 0.9), (0.9, 1.05), (1.05, 9.0)),
                   "wrist_cam": ((0.0, 0.15), (0.15, 0.25), (0.25, 0.4), (0.4, 9.0))}
#: Visible fraction: name, [lo, hi].
OCCLUSION_BINS = (("unoccluded", 0.97, 1.01), ("partly (50-97 %)", 0.5, 0.97), ("mostly (<50 %)", 0.0, 0.5))
CUBE_CLASSES = (0, 1)
#: 60 episodes of the validation split (seeds from VAL_SEED0 on; training uses them to pick its
#: best epoch, so give e.g. --seed0 30000 for seeds no run has seen). No episode limit: each
#: episode gives FRAMES_PER_EPISODE frames at fixed moments of the expert's run.
DETECTOR_EVAL = EvalConfig(episodes=60, seed0=VAL_SEED0)
FRAMES_PER_EPISODE = 4
#: The lifting and operating threshold of detector_node.
_LIFTING = LiftingConfig()
_DETECTOR = DetectorConfig()


def run_evaluation(detector: Detector, config: EvalConfig = DETECTOR_EVAL,
                   frames_per_episode: int = FRAMES_PER_EPISODE, lifting: LiftingConfig | None = None,
                   score_threshold: float = _DETECTOR.score_threshold, progress: bool = True,
                   camera: str = SCENE_CAMERA, depth_model: str = "realsense",
                   extrinsics: str | None = None) -> dict:
    """Render held-out frames of ``camera``, detect, lift; return per-frame predictions and
    per-object rows.

    Predictions keep every detection (mAP needs the low-score tail); matching and lifting
    use only those with ``score >= score_threshold``, what detector_node would publish.
    ``lifting``: None = detector_node's, with the camera's minimum range as ``min_depth_m``.
    ``extrinsics``: a calibration YAML (``fdl-robot-calibrate``; ``{seed}`` in the path is the
    episode's seed, as the sim's camera pose differs per episode), lifted with as a third pose.
    """
    from fdl_robot.calibrate import read_extrinsics
    from fdl_robot.sim.detection_dataset import episode_frames
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
    from fdl_robot.sim.expert import ScriptedExpert

    names = tuple(detector.class_names)
    # detector class id -> dataset class id (by name); unknown names map to -1
    to_dataset = {i: (CLASS_NAMES.index(n) if n in CLASS_NAMES else -1) for i, n in enumerate(names)}
    env = PickPlaceEnv(PickPlaceConfig(depth_model=depth_model))
    if lifting is None:
        lifting = replace(_LIFTING, min_depth_m=min(_LIFTING.min_depth_m, env.depth_sensor(camera).min_depth_m))
    expert = ScriptedExpert(env.model)
    preds, gts, rows = [], [], []
    latencies = []
    try:
        for seed in tqdm(config.seeds, desc="evaluating", unit="ep", disable=not progress):
            calibrated = read_extrinsics(extrinsics.format(seed=seed)) if extrinsics else None
            for frame in episode_frames(env, expert, seed, frames_per_episode, cameras=(camera,)):
                t0 = time.perf_counter()
                det = detector.detect(frame.rgb)
                latencies.append(time.perf_counter() - t0)
                ids = np.array([to_dataset[int(i)] for i in det.class_ids], dtype=int)
                gt_boxes = np.array([lb.box_xyxy for lb in frame.labels]).reshape(-1, 4)
                gt_ids = np.array([lb.class_id for lb in frame.labels], dtype=int)
                preds.append({"boxes": det.boxes_xyxy, "labels": ids, "scores": det.scores})
                gts.append({"boxes": gt_boxes, "labels": gt_ids})
                kept = np.flatnonzero(det.scores >= score_threshold)
                pairs = {g: int(kept[d]) for d, g in match_by_class(det.boxes_xyxy[kept], ids[kept], gt_boxes, gt_ids)}
                rows += _object_rows(frame, det.boxes_xyxy, pairs, lifting, calibrated)
    finally:
        env.close()
    return {"predictions": preds, "ground_truths": gts, "objects": rows,
            "latency_s": np.asarray(latencies), "class_names": CLASS_NAMES}


def _object_rows(frame, det_boxes: np.ndarray, pairs: dict[int, int], lifting: LiftingConfig,
                 T_calibrated=None) -> list[dict]:
    """One row per ground-truth object: detected or not, 3D error with true, nominal (and calibrated) extrinsics."""
    matched = sorted(pairs)
    lifted = {}
    poses = {"true": frame.T_base_cam, "nominal": frame.T_base_cam_nominal}
    if T_calibrated is not None:
        poses["calibrated"] = T_calibrated
    for key, T in poses.items():
        boxes = det_boxes[[pairs[g] for g in matched]].reshape(-1, 4)
        obj = lift_detections(boxes, frame.depth_m, frame.camera, T, lifting)
        lifted[key] = {matched[i]: obj.p_base[k] for k, i in enumerate(obj.index)}
    rows = []
    for g, lb in enumerate(frame.labels):
        row = {"seed": frame.seed, "step": frame.step, "name": lb.name, "class_id": lb.class_id,
               # the fraction of the whole object seen: hidden parts and parts outside the image
               "visibility": lb.visibility * lb.in_image, "depth_m": lb.depth_m, "detected": g in pairs}
        for key in poses:
            p = lifted[key].get(g)
            row[f"error_{key}_m"] = float(np.linalg.norm(p - lb.p_base_m)) if p is not None else None
        rows.append(row)
    return rows


def _stats(errors: list[float]) -> dict:
    e = np.asarray(errors, dtype=float)
    if e.size == 0:
        return {"n": 0, "median_mm": None, "p95_mm": None}
    return {"n": int(e.size), "median_mm": round(float(np.median(e)) * 1e3, 2),
            "p95_mm": round(float(np.percentile(e, 95)) * 1e3, 2)}


def summarise_3d(rows: list[dict], classes: Sequence[int] = CUBE_CLASSES, extrinsics: str = "true",
                 distance_bins_m: Sequence[tuple[float, float]] = DISTANCE_BINS_M[SCENE_CAMERA]) -> dict:
    """3D error statistics of the lifted, matched objects of ``classes``, with breakdowns."""
    key = f"error_{extrinsics}_m"
    sel = [r for r in rows if r["class_id"] in classes]
    lifted = [r for r in sel if r[key] is not None]
    out = {"instances": len(sel), "detected_and_lifted": len(lifted), "all": _stats([r[key] for r in lifted])}
    out["by_occlusion"] = {name: {**_stats([r[key] for r in lifted if lo <= r["visibility"] < hi]),
                                  "recall": _recall([r for r in sel if lo <= r["visibility"] < hi])}
                           for name, lo, hi in OCCLUSION_BINS}
    out["by_distance"] = {f"{lo:.2f}-{hi:.2f} m" if hi < 9 else f">= {lo:.2f} m":
                          _stats([r[key] for r in lifted if lo <= r["depth_m"] < hi and r["visibility"] >= 0.97])
                          for lo, hi in distance_bins_m}
    return out


def _recall(rows: list[dict]) -> float | None:
    return round(sum(r["detected"] for r in rows) / len(rows), 4) if rows else None


def summarise_2d(preds: list[dict], gts: list[dict], class_names: Sequence[str]) -> dict:
    """COCO mAP over all classes, over the cube classes, and per class."""
    def only(items, classes):
        out = []
        for it in items:
            keep = np.isin(it["labels"], classes)
            out.append({k: np.asarray(v)[keep] for k, v in it.items()})
        return out

    res = {"all": evaluate_detections(preds, gts)}
    res["cubes"] = evaluate_detections(only(preds, CUBE_CLASSES), only(gts, CUBE_CLASSES))
    per_class = {}
    for c, name in enumerate(class_names):
        r = evaluate_detections(only(preds, [c]), only(gts, [c]))
        per_class[name] = {"mAP50": round(float(r["mAP50"]), 4), "mAP50-95": round(float(r["mAP50-95"]), 4),
                           "instances": int(sum(np.sum(g["labels"] == c) for g in gts))}
    return {"all": {k: round(float(res["all"][k]), 4) for k in ("mAP50", "mAP50-95")},
            "cubes": {k: round(float(res["cubes"][k]), 4) for k in ("mAP50", "mAP50-95")},
            "per_class": per_class}


def plot_errors(rows: list[dict], path: Path) -> None:
    """CDF of the 3D error of cubes per occlusion level (true and nominal extrinsics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key in zip(axes, ("true", "nominal"), strict=True):
        for name, lo, hi in OCCLUSION_BINS:
            e = np.sort([r[f"error_{key}_m"] * 1e3 for r in rows if r["class_id"] in CUBE_CLASSES
                         and r[f"error_{key}_m"] is not None and lo <= r["visibility"] < hi])
            if e.size:
                ax.step(e, np.arange(1, e.size + 1) / e.size, where="post", label=f"{name} (n={e.size})")
        ax.axvline(5, color="grey", ls=":", lw=1)
        ax.axvline(15, color="grey", ls="--", lw=1)
        ax.set_xlim(0, 40)
        ax.set_xlabel("3D position error of cube centre in base_link [mm]")
        ax.set_title(f"{key} extrinsics")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of cubes")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    write_figure(path, fig, "plot", dpi=110)
    plt.close(fig)


def markdown(summary: dict) -> str:
    d2, d3 = summary["2d"], summary["3d_true"]
    lines = ["| classes | mAP50 | mAP50-95 | instances |", "|---|---|---|---|",
             f"| cubes (red_cube + cube) | {d2['cubes']['mAP50']:.3f} | {d2['cubes']['mAP50-95']:.3f} | "
             f"{sum(v['instances'] for k, v in d2['per_class'].items() if k != 'bin')} |"]
    for name, v in d2["per_class"].items():
        lines.append(f"| {name} | {v['mAP50']:.3f} | {v['mAP50-95']:.3f} | {v['instances']} |")
    lines += ["", "| cubes, 3D error in base_link | n | recall | median (true extr.) | p95 (true) | "
              "median (nominal extr.) | p95 (nominal) |", "|---|---|---|---|---|---|---|"]
    nom = summary["3d_nominal"]

    def fmt(x):
        return "-" if x is None else f"{x:.1f} mm"

    lines.append(f"| all | {d3['all']['n']} | {d3['detected_and_lifted'] / max(d3['instances'], 1):.3f} | "
                 f"{fmt(d3['all']['median_mm'])} | {fmt(d3['all']['p95_mm'])} | "
                 f"{fmt(nom['all']['median_mm'])} | {fmt(nom['all']['p95_mm'])} |")
    for name, v in d3["by_occlusion"].items():
        n = nom["by_occlusion"][name]
        lines.append(f"| {name} | {v['n']} | {v['recall'] if v['recall'] is not None else '-'} | "
                     f"{fmt(v['median_mm'])} | {fmt(v['p95_mm'])} | {fmt(n['median_mm'])} | {fmt(n['p95_mm'])} |")
    for name, v in d3["by_distance"].items():
        n = nom["by_distance"][name]
        lines.append(f"| unoccluded, depth {name} | {v['n']} | | {fmt(v['median_mm'])} | {fmt(v['p95_mm'])} | "
                     f"{fmt(n['median_mm'])} | {fmt(n['p95_mm'])} |")
    if "3d_calibrated" in summary:
        c = summary["3d_calibrated"]
        lines.append(f"| calibrated extrinsics: all | {c['all']['n']} | | {fmt(c['all']['median_mm'])} | "
                     f"{fmt(c['all']['p95_mm'])} | | |")
        u = c["by_occlusion"]["unoccluded"]
        lines.append(f"| calibrated extrinsics: unoccluded | {u['n']} | | {fmt(u['median_mm'])} | "
                     f"{fmt(u['p95_mm'])} | | |")
    b = summary["3d_bin_true"]["all"]
    lines.append(f"| (bin, visible-surface centre) | {b['n']} | | {fmt(b['median_mm'])} | {fmt(b['p95_mm'])} | | |")
    return "\n".join(lines)


class DetectorEvaluator:
    """Evaluates a detector (built with a low score threshold, for mAP) on ``config``'s seeds.

    ``score_threshold`` is the operating threshold of the 3D part and of ``2d_at_threshold``;
    ``plot``: where to draw the CDF of the 3D errors (none if None); ``camera`` and
    ``depth_model``: see :func:`run_evaluation`.
    """

    def __init__(self, config: EvalConfig = DETECTOR_EVAL, score_threshold: float = _DETECTOR.score_threshold,
                 plot: Path | None = None, progress: bool = True, camera: str = SCENE_CAMERA,
                 depth_model: str = "realsense", extrinsics: str | None = None):
        self.config, self.score_threshold, self.plot, self.progress = config, score_threshold, plot, progress
        self.camera, self.depth_model = camera, depth_model
        self.extrinsics = extrinsics

    def run(self, detector: Detector) -> dict:
        """2D mAP (all detections and those at the threshold), 3D error statistics, latency."""
        result = run_evaluation(detector, self.config, score_threshold=self.score_threshold,
                                progress=self.progress, camera=self.camera, depth_model=self.depth_model,
                                extrinsics=self.extrinsics)
        # 3D uses the detections an operating detector would publish (score >= threshold)
        rows = result["objects"]
        kept_preds = [{k: np.asarray(v)[np.asarray(pr["scores"]) >= self.score_threshold] for k, v in pr.items()}
                      for pr in result["predictions"]]
        if self.plot is not None:
            plot_errors(rows, self.plot)
        calibrated = {"3d_calibrated": summarise_3d(rows, CUBE_CLASSES, "calibrated"),
                      "extrinsics": self.extrinsics} if self.extrinsics else {}
        bins = DISTANCE_BINS_M[self.camera]
        return {
            **calibrated,
            "episodes": self.config.episodes, "seed0": self.config.seed0, "frames": len(result["predictions"]),
            "camera": self.camera, "depth_model": self.depth_model,
            "2d": summarise_2d(result["predictions"], result["ground_truths"], result["class_names"]),
            "2d_at_threshold": summarise_2d(kept_preds, result["ground_truths"], result["class_names"]),
            "3d_true": summarise_3d(rows, CUBE_CLASSES, "true", bins),
            "3d_nominal": summarise_3d(rows, CUBE_CLASSES, "nominal", bins),
            "3d_bin_true": summarise_3d(rows, (2,), "true", bins),
            "latency_ms_median": round(float(np.median(result["latency_s"])) * 1e3, 2),
        }


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fdl-robot-eval-detector", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--backend", default=_DETECTOR.backend, help="'ultralytics' (.pt/.onnx), 'onnx', 'openvino', "
                   "'detr' (the shipped RT-DETR's ONNX export by default), 'color'")
    p.add_argument("--weights", default="", help="weights ('' = the backend's shipped file: best.pt, "
                   "best.onnx for onnx / openvino, models/detector_detr/best.onnx for detr)")
    p.add_argument("--dataset", default="", help="(unused; frames are re-rendered from their seeds)")
    p.add_argument("--imgsz", type=int, default=_DETECTOR.image_size)
    p.add_argument("--score-threshold", type=float, default=_DETECTOR.score_threshold)
    add_arguments(p, DETECTOR_EVAL, limit=None,
                  episodes_help=f"validation episodes ({FRAMES_PER_EPISODE} frames each)",
                  seed0_help="first seed (default: VAL_SEED0, the validation split that training also "
                             "uses to pick its best epoch; give e.g. 30000 for seeds no run has seen)")
    p.add_argument("--extrinsics", default=None, help="also lift with a calibration YAML of fdl-robot-calibrate "
                   "('{seed}' in the path: the episode's seed; the sim's camera differs per episode)")
    p.add_argument("--camera", choices=tuple(CAMERAS), default="scene", help="the camera whose frames are evaluated")
    p.add_argument("--depth-model", choices=DEPTH_MODELS, default="realsense",
                   help="depth of the frames (sim.depth_model): a stereo camera's, or the exact render")
    p.add_argument("--json", type=Path, default=Path("outputs/detector_eval.json"))
    p.add_argument("--plot", type=Path, default=None, help="CDF plot (default: next to --json)")
    args = p.parse_args(argv)
    if args.plot is None:
        args.plot = args.json.with_suffix(".png")
    check_args(p, args, {"--json": JSON, "--plot": FIGURE})

    weights = args.weights or default_model_path(args.backend)
    # mAP needs the low-score tail of the detections: evaluate at a low threshold for 2D
    detector = make_detector(args.backend, weights, image_size=args.imgsz, score_threshold=0.001,
                             max_detections=100)
    evaluator = DetectorEvaluator(from_arguments(args, DETECTOR_EVAL), args.score_threshold, args.plot,
                                  camera=CAMERAS[args.camera], depth_model=args.depth_model,
                                  extrinsics=args.extrinsics)
    summary = {"backend": args.backend, "weights": str(weights), "imgsz": args.imgsz, **evaluator.run(detector)}
    print(markdown(summary))
    write_json(args.json, summary, "--json")
    print(f"\nwritten: {args.json}, {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

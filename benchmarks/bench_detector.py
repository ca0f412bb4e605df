"""Per-frame latency of every detector backend at 320 and 640 px, side by side in one run.

    .venv/bin/python benchmarks/bench_detector.py                 # shipped weights, 60 frames each
    .venv/bin/python benchmarks/bench_detector.py --frames 100 --json outputs/bench_detector.json

Frames: 640x480 renders of the simulated cell (validation seeds). Each backend first
runs ``--warmup`` frames, then ``--frames`` timed frames (wall clock of ``detect``:
pre-processing, inference, decoding, NMS, back to image pixels). All backends use every
core (torch and ONNX Runtime with their default thread pools). The ONNX/PyTorch ratio
is measured in this same run, on the same frames.

Backends: ``ultralytics`` (the shipped YOLO ``best.pt`` through ultralytics' predictor),
``onnx`` (its ONNX export through ONNX Runtime, decoded by ``fdl_robot.core``; a 640
export is made on the fly in ``outputs/``), ``detr`` (a Hugging Face DETR with a
ResNet-18-sized backbone and the original's 6+6 layers, *randomly initialised*: this
times the architecture, no DETR weights are trained) and ``color`` (HSV blobs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def sim_frames(n: int) -> list[np.ndarray]:
    from fdl_robot.sim.env import PickPlaceEnv

    env = PickPlaceEnv()
    frames = []
    for seed in range(20_600, 20_600 + n):
        env.reset(seed)
        frames.append(env.render_rgb())
    env.close()
    return frames


def time_detector(detector, frames: list[np.ndarray], n: int, warmup: int) -> np.ndarray:
    for i in range(warmup):
        detector.detect(frames[i % len(frames)])
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        detector.detect(frames[i % len(frames)])
        out[i] = time.perf_counter() - t0
    return out


def random_detr(path: Path) -> Path:
    """A DETR-R18-sized model (ResNet-18 basic blocks, d_model 256, 6+6 layers, 100 queries)."""
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    if (path / "config.json").exists():
        return path
    backbone = ResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2],
                            out_features=["stage4"], layer_type="basic")
    names = {0: "red_cube", 1: "cube", 2: "bin"}
    cfg = DetrConfig(backbone_config=backbone, use_timm_backbone=False, use_pretrained_backbone=False,
                     num_labels=3, id2label=names, label2id={v: k for k, v in names.items()})
    DetrForObjectDetection(cfg).eval().save_pretrained(path)
    return path


def model_for(backend: str, size: int, shipped: Path, work: Path) -> Path | str:
    """The weights a backend is timed with at ``size`` px (exported to ONNX when needed)."""
    if backend == "ultralytics":
        return shipped / "best.pt"
    if backend == "onnx":
        if size == 320:                                    # the shipped export is 320 px
            return shipped / "best.onnx"
        path = work / f"best_{size}.onnx"
        if not path.exists():
            from ultralytics import YOLO

            shutil.copy(shipped / "best.pt", work / "best_export.pt")
            shutil.move(YOLO(str(work / "best_export.pt")).export(format="onnx", imgsz=size), path)
        return path
    if backend == "detr":
        return random_detr(work / "detr_r18_random")
    return ""


def speedups(rows: list[dict], sizes: list[int]) -> dict[str, float]:
    """Median ms of PyTorch over ONNX Runtime per input size, where both were measured."""
    ratios = {}
    for size in sizes:
        pt = next((r for r in rows if r["backend"] == "ultralytics" and r["size"] == size), None)
        ox = next((r for r in rows if r["backend"] == "onnx" and r["size"] == size), None)
        if pt and ox:
            ratios[str(size)] = round(pt["median_ms"] / ox["median_ms"], 2)
    return ratios


def main() -> int:
    from fdl_robot.perception.detector import default_model_dir, make_detector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    p.add_argument("--backends", nargs="+", default=["ultralytics", "onnx", "detr", "color"])
    p.add_argument("--json", type=Path, default=Path("outputs/bench_detector.json"))
    args = p.parse_args()

    frames = sim_frames(10)          # render before torch is imported (EGL + torch import order)

    import torch

    shipped = default_model_dir()
    work = Path("outputs/bench_detector")
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"{args.frames} timed frames of 640x480 per entry")
    for size in args.sizes:
        for backend in args.backends:
            if backend == "color" and size != args.sizes[0]:
                continue                                   # the colour detector has no input size
            path = model_for(backend, size, shipped, work)
            det = make_detector(backend, path, image_size=size, score_threshold=0.25)
            t = time_detector(det, frames, args.frames, args.warmup) * 1e3
            rows.append({"backend": backend, "size": size if backend != "color" else None,
                         "median_ms": round(float(np.median(t)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2),
                         "fps": round(1e3 / float(np.median(t)), 1)})
            print(rows[-1], flush=True)

    ratios = speedups(rows, args.sizes)
    print("\n| backend | input px | median ms/frame | p95 ms | frames/s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['size'] or '-'} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['fps']:.1f} |")
    for size, ratio in ratios.items():
        print(f"\nONNX Runtime speed-up over PyTorch (ultralytics) at {size} px: {ratio:.2f}x (median, same run)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "onnx_over_pytorch_speedup": ratios,
                                     "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                     "frames": args.frames}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

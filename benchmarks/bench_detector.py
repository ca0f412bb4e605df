"""Per-frame latency of every detector backend at 320 and 640 px and 1 and 2 threads, in one run.

    .venv/bin/python benchmarks/bench_detector.py                 # shipped weights, 60 frames each
    .venv/bin/python benchmarks/bench_detector.py --frames 100 --threads 1 2 \
        --backends ultralytics onnx openvino-f32 openvino-bf16 --json outputs/bench_detector.json

Frames: 640x480 renders of the simulated cell (validation seeds). Timed: the wall clock
of ``detect`` (pre-processing, inference, decoding, NMS, back to image pixels), and the
process CPU time it used (all threads; a runtime whose threads spin or fan out costs
more CPU than wall time, CPU the other nodes of a 2-core robot computer then lack).

Order: for each input size and thread count (``DetectorConfig.threads``: ONNX Runtime's
intra-op threads, OpenVINO's ``INFERENCE_NUM_THREADS``, torch's ``set_num_threads``;
0 = the runtime's default) every backend is built, then timed in ``--rounds`` rounds,
each backend in turn running ``--warmup`` untimed and ``frames / rounds`` timed frames
per round: a load that comes and goes on a shared machine then falls on all backends
alike, and one runtime's pool winding down does not land in another's timed frames.
The speed-ups over ONNX Runtime are measured in this same run, on the same frames.
The JSON also records the load average and the cores other processes used meanwhile
(/proc/stat less this process): absolute times are comparable across runs only when
that is near 0.

Backends: ``ultralytics`` (the shipped YOLO ``best.pt`` through ultralytics' predictor),
``onnx`` (its ONNX export through ONNX Runtime, decoded by ``fdl_robot.core``; a 640
export is made on the fly in ``outputs/``), ``openvino-f32`` and ``openvino-bf16`` (the
same export, pre-processing and decoding, compiled by OpenVINO at that precision),
``detr`` (the shipped RT-DETR, ``models/detector_detr``: its ONNX export through ONNX
Runtime, decoded by ``fdl_robot.core`` without NMS; a 640 export is made on the fly) and
``color`` (HSV blobs; no threads or size, timed once).
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json


def sim_frames(n: int) -> list[np.ndarray]:
    from fdl_robot.sim.env import PickPlaceEnv

    env = PickPlaceEnv()
    frames = []
    for seed in range(20_600, 20_600 + n):
        env.reset(seed)
        frames.append(env.render_rgb())
    env.close()
    return frames


def time_block(detector, frames: list[np.ndarray], n: int, warmup: int, start: int = 0
               ) -> tuple[np.ndarray, float]:
    """``warmup`` untimed then ``n`` timed calls from frame ``start`` on: wall seconds per
    call, and the process CPU seconds of the ``n`` timed calls together."""
    for i in range(warmup):
        detector.detect(frames[(start + i) % len(frames)])
    wall = np.empty(n)
    cpu0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        detector.detect(frames[(start + i) % len(frames)])
        wall[i] = time.perf_counter() - t0
    return wall, time.process_time() - cpu0


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def split_variant(variant: str) -> tuple[str, dict]:
    """'openvino-bf16' -> ('openvino', {'precision': 'bf16'}); other names are backends."""
    backend, _, precision = variant.partition("-")
    return backend, ({"precision": precision} if precision else {})


def model_for(backend: str, size: int, work: Path) -> Path | str:
    """The shipped weights a backend is timed with at ``size`` px (exported to ONNX when needed)."""
    from fdl_robot.perception.detector import default_model_dir, family_of

    family = family_of(backend)
    shipped = default_model_dir("detector", family)
    if backend == "ultralytics":
        return shipped / "best.pt"
    if backend in ("onnx", "openvino", "detr"):
        if size == 320:                                    # the shipped exports are 320 px
            return shipped / "best.onnx"
        path = work / f"best_{family}_{size}.onnx"
        if not path.exists():
            from fdl_robot.perception.train_detector import export_onnx

            shutil.copy(shipped / "best.pt", work / "best_export.pt")
            shutil.move(export_onnx(work / "best_export.pt", size, family), path)
        return path
    return ""


def speedups(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Median ms of ONNX Runtime over each backend's, per 'size px / threads' group (> 1: faster)."""
    ratios: dict[str, dict[str, float]] = {}
    for ox in (r for r in rows if r["backend"] == "onnx"):
        group = f"{ox['size']} px / {ox['threads']} threads"
        ratios[group] = {r["backend"]: round(ox["median_ms"] / r["median_ms"], 2) for r in rows
                         if r["size"] == ox["size"] and r["threads"] == ox["threads"] and r["backend"] != "onnx"}
    return ratios


def row(variant: str, size: int | None, threads: int | None, wall_s: np.ndarray, cpu_s: float) -> dict:
    t = wall_s * 1e3
    return {"backend": variant, "size": size, "threads": threads,
            "median_ms": round(float(np.median(t)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2),
            "cpu_ms_per_frame": round(cpu_s * 1e3 / len(t), 2), "fps": round(1e3 / float(np.median(t)), 1)}


@exit_on_error
def main() -> int:
    from fdl_robot.perception.detector import make_detector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60, help="timed frames per entry")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames per entry and round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="0 = the runtime's default")
    p.add_argument("--backends", nargs="+",
                   default=["ultralytics", "onnx", "openvino-f32", "openvino-bf16", "detr", "color"])
    p.add_argument("--json", type=Path, default=Path("outputs/bench_detector.json"))
    args = p.parse_args()
    check_args(p, args, {"--json": JSON})

    frames = sim_frames(10)          # render before torch is imported (EGL + torch import order)

    import torch

    work = Path("outputs/bench_detector")
    work.mkdir(parents=True, exist_ok=True)
    per_round = max(1, args.frames // args.rounds)
    load_at_start, torch_default_threads = os.getloadavg()[0], torch.get_num_threads()
    print(f"CPU cores: {os.cpu_count()}, {per_round * args.rounds} timed frames of 640x480 per entry "
          f"in {args.rounds} rounds, load average {load_at_start:.2f}")
    groups = [(size, threads) for size in args.sizes for threads in args.threads]
    if "color" in args.backends:
        groups.append((None, None))
    rows = []
    busy0, own0, wall0 = machine_busy_s(), time.process_time(), time.perf_counter()
    for size, threads in groups:
        variants = ["color"] if size is None else [v for v in args.backends if v != "color"]
        torch.set_num_threads(torch_default_threads)     # threads 0: torch's default, not the last group's
        detectors = {}
        for v in variants:
            backend, extra = split_variant(v)
            path = model_for(backend, size or 0, work)
            detectors[v] = make_detector(backend, path, image_size=size or 320, score_threshold=0.25,
                                         threads=threads or 0, **extra)
        walls = {v: [] for v in variants}
        cpus = dict.fromkeys(variants, 0.0)
        for k in range(args.rounds):
            for v, det in detectors.items():
                wall, cpu = time_block(det, frames, per_round, args.warmup, start=k * per_round)
                walls[v].append(wall)
                cpus[v] += cpu
        for v in variants:
            rows.append(row(v, size, threads, np.concatenate(walls[v]), cpus[v]))
            print(rows[-1], flush=True)
        del detectors

    # what the rest of the machine ran meanwhile, in cores: 0 on a quiet machine
    others = (machine_busy_s() - busy0 - (time.process_time() - own0)) / (time.perf_counter() - wall0)
    print(f"other processes used {others:.2f} cores on average during the run")
    ratios = speedups(rows)
    print("\n| backend | input px | threads | median ms/frame | p95 ms | CPU ms/frame | frames/s |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['size'] or '-'} | {r['threads'] or '-'} | {r['median_ms']:.1f} | "
              f"{r['p95_ms']:.1f} | {r['cpu_ms_per_frame']:.1f} | {r['fps']:.1f} |")
    for group, by_backend in ratios.items():
        print(f"\nspeed-up over ONNX Runtime at {group} (median, same run): "
              + ", ".join(f"{b} {x:.2f}x" for b, x in by_backend.items()))
    write_json(args.json, {"rows": rows, "speedup_over_onnx_runtime": ratios,
                           "cpu_cores": os.cpu_count(), "frames": per_round * args.rounds,
                           "rounds": args.rounds, "load_average_1min": {
                               "start": load_at_start, "end": os.getloadavg()[0]},
                           "other_processes_cores": round(others, 3),
                           "versions": versions()}, "--json")
    return 0


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("onnxruntime", "openvino", "torch", "ultralytics"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


if __name__ == "__main__":
    raise SystemExit(main())

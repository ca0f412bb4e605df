#!/usr/bin/env python3
"""Soak of the real-time closed loop, a process per node: success, memory, files, threads.

    .venv/bin/python benchmarks/soak_closed_loop.py --minutes 60
    .venv/bin/python benchmarks/soak_closed_loop.py --minutes 10 --out benchmarks/results/issue13/soak_10min.json

Runs ``fdl-robot-closed-loop``'s evaluation (a process per node, real time, wall clock,
its defaults) on consecutive seeds for about ``--minutes``, and at the start of every
episode samples each node's process: resident memory (RSS), open file descriptors and
threads. At the end it prints, per process, the least-squares slope of RSS after the
warm-up (``--warmup-min``) in MB per hour with its standard error, and the range of file
descriptors and threads (constant = no leak), and writes JSON and a PNG of RSS over time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fdl_robot.eval.closed_loop import DETECTOR_DEFAULTS, GraphOptions, run_closed_loop
from fdl_robot.outputs import JSON, check_args, exit_on_error, write_figure, write_json

OUT = Path(__file__).resolve().parent / "results" / "issue13" / "soak_closed_loop.json"
EPISODE_WALL_S = 10.0          # about one episode at real time, to size the run


def slope_mb_per_h(t_s: np.ndarray, rss_mb: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of rss(t) and its standard error, MB/h."""
    if len(t_s) < 3:
        return float("nan"), float("nan")
    a = np.vstack([t_s, np.ones_like(t_s)]).T
    coef, res, *_ = np.linalg.lstsq(a, rss_mb, rcond=None)
    resid = rss_mb - a @ coef
    s2 = float(resid @ resid) / (len(t_s) - 2)
    se = np.sqrt(s2 / float(((t_s - t_s.mean()) ** 2).sum()))
    return float(coef[0] * 3600), float(se * 3600)


@exit_on_error
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed0", type=int, default=7000)
    ap.add_argument("--warmup-min", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    check_args(ap, args, {"--out": JSON})
    import psutil

    samples: list[dict] = []
    t0 = time.monotonic()

    def sample(episode: int, pids: dict) -> None:
        row = {"t_s": round(time.monotonic() - t0, 1), "episode": episode, "nodes": {}}
        for name, pid in pids.items():
            try:
                p = psutil.Process(pid)
                row["nodes"][name] = {"rss_mb": round(p.memory_info().rss / 2**20, 2), "fds": p.num_fds(),
                                      "threads": p.num_threads()}
            except (psutil.NoSuchProcess, TypeError):
                pass
        samples.append(row)

    options = GraphOptions.with_realtime("auto", log_dir=args.out.with_suffix(".logs"))
    episodes = max(1, round(args.minutes * 60 / EPISODE_WALL_S))
    run = run_closed_loop(episodes, args.seed0, {"detector_node": dict(DETECTOR_DEFAULTS)}, options=options,
                          progress=lambda s: print(s, flush=True), on_episode_start=sample)
    per_node = {}
    for name in samples[0]["nodes"]:
        rows = [(s["t_s"], s["nodes"][name]) for s in samples if name in s["nodes"]]
        t = np.array([r[0] for r in rows])
        rss = np.array([r[1]["rss_mb"] for r in rows])
        keep = t >= args.warmup_min * 60
        slope, se = slope_mb_per_h(t[keep], rss[keep])
        fds = [r[1]["fds"] for r in rows if r[0] >= args.warmup_min * 60]
        threads = [r[1]["threads"] for r in rows if r[0] >= args.warmup_min * 60]
        per_node[name] = {"rss_mb_first": float(rss[keep][0]) if keep.any() else None,
                          "rss_mb_last": float(rss[-1]), "rss_slope_mb_per_h": round(slope, 2),
                          "rss_slope_se_mb_per_h": round(se, 2),
                          "fds_range": [min(fds), max(fds)] if fds else None,
                          "threads_range": [min(threads), max(threads)] if threads else None}
    ok = sum(r.success for r in run.results)
    summary = {"minutes": round((time.monotonic() - t0) / 60, 1), "episodes": len(run.results), "successes": ok,
               "timing": run.timing, "cpu_percent": run.cpu_percent, "sched_fifo": options.priority,
               "per_node": per_node, "samples": samples,
               "results": [r.__dict__ for r in run.results]}
    write_json(args.out, summary, "--out")
    for name, v in per_node.items():
        print(f"{name:16s} RSS {v['rss_mb_first']} -> {v['rss_mb_last']} MB, slope {v['rss_slope_mb_per_h']:+.2f} "
              f"+- {v['rss_slope_se_mb_per_h']:.2f} MB/h, fds {v['fds_range']}, threads {v['threads_range']}")
    print(f"success {ok}/{len(run.results)} over {summary['minutes']} min -> {args.out}")
    _plot(samples, args.out.with_suffix(".png"))
    return 0


def _plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name in samples[0]["nodes"]:
        rows = [(s["t_s"] / 60, s["nodes"][name]["rss_mb"]) for s in samples if name in s["nodes"]]
        ax.plot([r[0] for r in rows], [r[1] for r in rows], label=name)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS, MB")
    ax.set_title("closed loop at real time, a process per node")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(path, fig, "plot", dpi=100)


if __name__ == "__main__":
    sys.exit(main())

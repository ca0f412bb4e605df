#!/usr/bin/env python3
"""Soak: the whole graph for minutes, sampling memory; memory must stay flat.

    .venv/bin/python benchmarks/soak.py --minutes 10                 # pre-rendered frames, 15 Hz
    .venv/bin/python benchmarks/soak.py --minutes 10 --source sim    # sim_node closed loop

The graph runs in this process the way ``fdl-robot run`` runs it (``runner.build_nodes``:
same YAML, same overrides, one MultiThreadedExecutor), so its Python heap can be sampled:

* ``--source frames`` (default): detector, localizer, tracker and policy nodes fed by a
  camera stand-in publishing the cached MuJoCo frames of one expert episode (640x480
  RGB-D, looping; stamps = wall time) and joint states at 50 Hz;
* ``--source sim``: the ``sim`` graph, sim_node (rendering, physics, /clock) and the
  same four nodes on simulated time, closed loop.

Every ``--interval`` seconds it records the process RSS, the Python heap
(``tracemalloc``; ``--no-tracemalloc`` to run without its overhead, then only
``sys.getallocatedblocks``), live gc objects, threads, open files and the messages each
stage published. At the end it prints a table, the least-squares slope of RSS and heap
after the warm-up (MB/min) with first/last values, the allocation sites that grew most
(tracemalloc snapshots), and writes JSON and a PNG.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT_DIR, FrameSource, load_frames, machine_info, write_config  # noqa: E402

from fdl_robot.outputs import FIGURE, JSON, check_args, exit_on_error, write_figure, write_json  # noqa: E402
from fdl_robot.ros.parameters import (DETECTIONS_TOPIC, OBJECTS_TOPIC, TRACKS_TOPIC,  # noqa: E402
                                      TRAJECTORY_TOPIC)

STAGE_TOPICS = {"detections": DETECTIONS_TOPIC, "objects": OBJECTS_TOPIC, "tracks": TRACKS_TOPIC,
                "commands": TRAJECTORY_TOPIC}


def _slope_mb_per_min(t_s, values_mb) -> tuple[float | None, float | None]:
    """Least-squares slope (MB/min) and its standard error."""
    if len(t_s) < 3:
        return None, None
    t, v = np.asarray(t_s) / 60.0, np.asarray(values_mb, dtype=float)
    slope, intercept = np.polyfit(t, v, 1)
    resid = v - (slope * t + intercept)
    stderr = resid.std(ddof=2) / np.sqrt(((t - t.mean()) ** 2).sum()) if len(t) > 3 else None
    return float(slope), None if stderr is None else float(stderr)


def _traced_heap_bytes() -> int:
    """Python heap traced by tracemalloc (bytes): the least of 5 readings 0.1 s apart."""
    readings = []        # frames in flight (1-2 MB each) otherwise dominate the noise
    for _ in range(5):
        readings.append(tracemalloc.get_traced_memory()[0])
        time.sleep(0.1)
    return min(readings)


def _growth_sites(snapshot_start) -> list[dict]:
    """The 10 allocation sites that grew most since ``snapshot_start`` (none without a snapshot)."""
    if snapshot_start is None:
        return []
    diff = tracemalloc.take_snapshot().compare_to(snapshot_start, "lineno")
    diff.sort(key=lambda d: -d.size_diff)                       # growth first
    return [{"site": str(d.traceback[0]), "size_diff_kb": d.size_diff / 1e3,
             "count_diff": d.count_diff} for d in diff[:10]]


class _Soak:
    """The graph under test in this process, a probe counting each stage's messages, and the samples."""

    def __init__(self, args):
        """Build the graph, the probe and the frame source from ``args``; nothing spins until start()."""
        import psutil
        import rclpy
        from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray, TrackArray
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from trajectory_msgs.msg import JointTrajectory

        from fdl_robot.ros.graph import LaunchArguments
        from fdl_robot.ros.runner import build_nodes

        self.args = args
        frames = load_frames(args.width, args.height, args.seed)
        self.config = write_config(args.out.with_suffix(".yaml"), frames, args.backend, args.model,
                                   args.image_size, args.policy, args.policy_model,
                                   extra={"sim_node": {"width": args.width, "height": args.height,
                                                       "camera_rate_hz": args.rate}})
        ns = f"/fdl_soak_{os.getpid()}"
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.graph = "sim" if args.source == "sim" else "perception"
        self.nodes = build_nodes(self.graph, LaunchArguments(config=str(self.config), namespace=ns),
                                 context=self.context)
        self.probe = rclpy.create_node("soak_probe", namespace=ns, context=self.context)
        self.counts = {k: 0 for k in STAGE_TOPICS}
        self.counts["holds"] = 0
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for (name, topic), msg_type in zip(STAGE_TOPICS.items(),
                                            (Detection2DArray, Object3DArray, TrackArray, JointTrajectory),
                                            strict=True):
            self.probe.create_subscription(msg_type, topic, self._counter(name), qos)
        self.source = (FrameSource(self.probe, frames, args.rate, max_records=100)
                       if args.source == "frames" else None)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        for node in self.nodes + [self.probe]:
            self.executor.add_node(node)
        self.spinner = threading.Thread(target=self.executor.spin, name="soak_executor", daemon=True)
        self.process = psutil.Process()
        self.samples: list[dict] = []
        self.snapshot_start = None     # tracemalloc snapshot at the end of the warm-up

    def _counter(self, name: str):
        """Subscription callback counting the messages of stage ``name`` (and the hold commands)."""
        def cb(msg):
            if (name == "commands" and len(msg.points) == 1 and len(msg.points[0].velocities)
                    and not any(msg.points[0].velocities)):
                self.counts["holds"] += 1
            self.counts[name] += 1
        return cb

    def start(self) -> None:
        """Start tracemalloc (if asked), the executor thread and the frame source."""
        if self.args.tracemalloc:      # after the frames and their messages (~400 MB) are built
            tracemalloc.start(1)
        self.spinner.start()
        if self.source is not None:
            self.source.start()
            self.source.frames_on(True)

    def take_sample(self, t: float) -> dict:
        """Record and print one sample at ``t`` s: RSS, heap, gc objects, threads, fds, counts, CPU."""
        mem = self.process.memory_info()
        heap = _traced_heap_bytes() if self.args.tracemalloc else None
        sample = {"t_s": round(t, 2), "rss_mb": mem.rss / 1e6,
                  "heap_mb": None if heap is None else heap / 1e6,
                  "allocated_blocks": sys.getallocatedblocks(),
                  "gc_objects": len(gc.get_objects()), "threads": self.process.num_threads(),
                  "fds": self.process.num_fds(), **{f"n_{k}": v for k, v in self.counts.items()},
                  "frames_published": self.source.n_published if self.source else None,
                  "cpu_s": sum(self.process.cpu_times()[:2])}
        self.samples.append(sample)
        return sample

    def sample_loop(self, t0: float, duration_s: float, warmup_s: float) -> None:
        """Sample every ``--interval`` s from ``t0`` (monotonic) to ``duration_s``; snapshot the heap after warm-up."""
        next_sample = t0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                t = now - t0
                sample = self.take_sample(t)
                if self.args.tracemalloc and self.snapshot_start is None and t >= warmup_s:
                    self.snapshot_start = tracemalloc.take_snapshot()
                heap_mb = sample["heap_mb"]
                print(f"  t={t:7.1f} s  RSS {sample['rss_mb']:8.1f} MB  heap "
                      f"{'-' if heap_mb is None else f'{heap_mb:7.2f}'} MB  commands "
                      f"{self.counts['commands']}  tracks {self.counts['tracks']}", file=sys.stderr)
                next_sample += self.args.interval
                if t >= duration_s:
                    break
            time.sleep(max(0.0, min(next_sample - time.monotonic(), 1.0)))

    def shutdown(self) -> tuple[list[dict], dict]:
        """Stop the source, executor and nodes; the heap's growth sites and each node's counters."""
        import rclpy

        top = _growth_sites(self.snapshot_start) if self.args.tracemalloc else []
        if self.source is not None:
            self.source.stop()
        counters = {n.get_name(): dict(n.counters) for n in self.nodes}
        self.executor.shutdown(timeout_sec=10.0)
        self.spinner.join(timeout=10.0)
        for node in self.nodes + [self.probe]:
            node.destroy_node()
        rclpy.shutdown(context=self.context)
        if self.args.tracemalloc:
            tracemalloc.stop()
        return top, counters


def _memory_summary(samples: list[dict], warmup_s: float) -> dict:
    """RSS and heap after the warm-up (first, last, max, least-squares slope), and end counts."""
    after = [s for s in samples if s["t_s"] >= warmup_s]
    t = [s["t_s"] for s in after]
    summary = {}
    for key in ("rss_mb", "heap_mb"):
        vals = [s[key] for s in after if s[key] is not None]
        if vals:
            slope, stderr = _slope_mb_per_min(t[:len(vals)], vals)
            summary[key] = {"first": samples[0][key], "after_warmup": vals[0], "last": vals[-1],
                            "max": max(vals), "slope_mb_per_min": slope,
                            "slope_stderr_mb_per_min": stderr}
    for key in ("allocated_blocks", "gc_objects", "threads", "fds"):
        summary[key] = {"after_warmup": after[0][key], "last": after[-1][key]} if after else {}
    return summary


def _output_rates(samples: list[dict]) -> dict:
    """Messages per second of each stage between the first and the last sample (None if no time passed)."""
    elapsed = samples[-1]["t_s"] - samples[0]["t_s"] if len(samples) > 1 else 0.0
    return {k: (samples[-1][f"n_{k}"] - samples[0][f"n_{k}"]) / elapsed if elapsed else None
            for k in STAGE_TOPICS}


def run(args) -> dict:
    """Soak the graph for ``--minutes``, sampling every ``--interval`` s; the report as a dict."""
    soak = _Soak(args)
    soak.start()
    t0 = time.monotonic()
    duration_s = args.minutes * 60.0
    warmup_s = min(args.warmup_s, duration_s / 3)
    print(f"soak: {soak.graph} graph, source {args.source}, {args.rate:g} Hz, {args.minutes:g} min, "
          f"sample every {args.interval:g} s ...", file=sys.stderr)
    try:
        soak.sample_loop(t0, duration_s, warmup_s)
    finally:
        top, counters = soak.shutdown()
    return {"config": {"source": args.source, "graph": soak.graph, "rate_hz": args.rate,
                       "minutes": args.minutes, "interval_s": args.interval, "warmup_s": warmup_s,
                       "backend": args.backend, "model": args.model, "policy": args.policy,
                       "width": args.width, "height": args.height, "tracemalloc": args.tracemalloc,
                       "graph_config": str(soak.config)},
            "machine": machine_info(), "summary": _memory_summary(soak.samples, warmup_s),
            "output_rates_hz": _output_rates(soak.samples),
            "node_counters": counters, "top_growth_sites": top, "samples": soak.samples}


def markdown(report: dict) -> str:
    c, s = report["config"], report["summary"]
    lines = [f"### Soak: {c['graph']} graph, source {c['source']}, camera {c['rate_hz']:g} Hz, "
             f"{c['minutes']:g} min, {c['backend']} backend, policy {c['policy']}", "",
             "| t (s) | RSS (MB) | Python heap (MB) | gc objects | threads | fds | detections | commands |",
             "|---|---|---|---|---|---|---|---|"]
    samples = report["samples"]
    step = max(1, len(samples) // 12)
    for x in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        heap = "-" if x["heap_mb"] is None else f"{x['heap_mb']:.2f}"
        lines.append(f"| {x['t_s']:.0f} | {x['rss_mb']:.1f} | {heap} | {x['gc_objects']} | "
                     f"{x['threads']} | {x['fds']} | {x['n_detections']} | {x['n_commands']} |")
    lines += ["", "| memory | first | after warm-up | last | max | slope after warm-up |",
              "|---|---|---|---|---|---|"]
    for key, name in (("rss_mb", "RSS"), ("heap_mb", "Python heap (tracemalloc)")):
        if key in s:
            v = s[key]
            lines.append(f"| {name} | {v['first']:.2f} MB | {v['after_warmup']:.2f} MB | "
                         f"{v['last']:.2f} MB | {v['max']:.2f} MB | "
                         f"{v['slope_mb_per_min']:+.3f} +- {v['slope_stderr_mb_per_min'] or 0:.3f} MB/min |"
                         if v["slope_mb_per_min"] is not None
                         else f"| {name} | {v['first']:.2f} | {v['after_warmup']:.2f} | {v['last']:.2f} | "
                         f"{v['max']:.2f} | - |")
    rates = ", ".join(f"{k} {v:.1f} Hz" for k, v in report["output_rates_hz"].items() if v is not None)
    lines += ["", f"Output rates: {rates}."]
    bad = {n: {k: v for k, v in cs.items() if not k.startswith("ok")}
           for n, cs in report["node_counters"].items()}
    bad = {n: v for n, v in bad.items() if v}
    if bad:
        lines.append(f"Rejected/held inputs per node: {bad}.")
    if report["top_growth_sites"]:
        lines += ["", "Allocation sites that grew most after the warm-up (tracemalloc):", ""]
        lines += [f"- {d['site']}: {d['size_diff_kb']:+.1f} KB ({d['count_diff']:+d} blocks)"
                  for d in report["top_growth_sites"][:5]]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["samples"]
    t = np.array([x["t_s"] for x in s]) / 60.0
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(t, [x["rss_mb"] for x in s], "o-", ms=3)
    axes[0].set_ylabel("RSS (MB)")
    if s[0]["heap_mb"] is not None:
        axes[1].plot(t, [x["heap_mb"] for x in s], "o-", ms=3, color="C1")
        axes[1].set_ylabel("Python heap (MB)")
    else:
        axes[1].plot(t, [x["allocated_blocks"] / 1e3 for x in s], "o-", ms=3, color="C1")
        axes[1].set_ylabel("allocated blocks (k)")
    for k in STAGE_TOPICS:
        axes[2].plot(t, [x[f"n_{k}"] for x in s], label=k)
    axes[2].set_ylabel("messages published")
    axes[2].set_xlabel("minutes")
    axes[2].legend(fontsize=8)
    warm = report["config"]["warmup_s"] / 60.0
    for ax in axes:
        ax.axvline(warm, color="k", ls=":", lw=0.8)
        ax.grid(alpha=0.3)
    summ = report["summary"]
    title = f"soak: {report['config']['graph']} graph, {report['config']['source']}"
    if "rss_mb" in summ and summ["rss_mb"]["slope_mb_per_min"] is not None:
        title += f"; RSS slope {summ['rss_mb']['slope_mb_per_min']:+.3f} MB/min"
    if "heap_mb" in summ and summ["heap_mb"]["slope_mb_per_min"] is not None:
        title += f", heap {summ['heap_mb']['slope_mb_per_min']:+.3f} MB/min"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_figure(path, fig, "plot", dpi=110)
    plt.close(fig)


@exit_on_error
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="excluded from the slope")
    ap.add_argument("--source", choices=["frames", "sim"], default="frames")
    ap.add_argument("--rate", type=float, default=15.0, help="camera rate, Hz")
    ap.add_argument("--backend", default="color")
    ap.add_argument("--model", default="")
    ap.add_argument("--image-size", type=int, default=320)
    ap.add_argument("--policy", default="scripted")
    ap.add_argument("--policy-model", default="")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-tracemalloc", dest="tracemalloc", action="store_false")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "soak.json")
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args(argv)
    check_args(ap, args, {"--out": JSON, "--png": FIGURE})
    report = run(args)
    write_json(args.out, report, "--out", indent=1)
    png = args.png or args.out.with_suffix(".png")
    print(markdown(report))
    plot(report, png)
    print(f"\nJSON: {args.out}\nPNG:  {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 16: our tracker with its defaults vs tuned peer trackers, its speed, and its edge cases.

    PYTHONPATH=fdl_robot OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tracker_benchmark.py \\
        --seeds 5 --json benchmarks/results/issue16/tracker_benchmark.json
    # the peers (norfair, motpy, Stone Soup, a filterpy SORT) run in their own venv:
    python3.11 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements/bench-trackers.txt
    PYTHONPATH=fdl_robot OMP_NUM_THREADS=1 .venv-bench/bin/python benchmarks/tracker_benchmark.py \\
        --seeds 5 --sections scenarios,peers --json benchmarks/results/issue16/tracker_benchmark_peers.json

Sections (``--sections``, default all but ``peers`` unless ``--peers``):

* ``scenarios``: :mod:`fdl_robot.tracking_scenarios` (static, slow, fast, mixed, irregular,
  clutter, gaps, crossing), ``--seeds`` seeds each, our :class:`MultiObjectTracker` with its
  DEFAULTS: MOTA, IDF1, ID switches (mean over seeds; ``min`` = the worst seed).
* ``peers``: each peer tuned per scenario on a small grid over its main parameters (the
  grid is in :mod:`tracker_peers`), the setting with the best mean MOTA per scenario (ties:
  IDF1) reported with that setting.  The peers are installed for the benchmark only.
* ``speed``: mean ``update()`` time (us) for 10, 50 and 1000 objects (a grid of objects
  on the table, each detected with 3 mm noise, 15 Hz, 200 updates after 20 warm-up ones;
  1000 objects: 20 updates) and the peak memory that one update allocates (tracemalloc).
* ``edges``: issue 16 item 2, measured: two cameras at one stamp, a sensor outage, a late
  detection set, a jump back of 0.5 s (module functions ``edge_*``).

``--impl old`` runs ``speed`` and ``edges`` on the tracker of commit 75d7855 (before issue
16), loaded from git into a temporary package, so before/after come from one machine;
``--impl REV`` does the same for any git revision.  Under load, compare side by side:

    PYTHONPATH=fdl_robot OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tracker_benchmark.py \\
        --sections speed --against c4059db --alternations 5

times this tree and ``c4059db`` alternately (5 runs each per size) and prints the medians and
the ratio new / reference.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from fdl_robot.tracking_scenarios import SCENARIOS, make_scenario, score, tracker_step

REPO = Path(__file__).resolve().parents[1]
OLD_COMMIT = "75d7855"
HZ = 15.0


CORE_MODULES = ("kalman", "assignment", "imm", "tracking")
"""The tracker's modules in ``fdl_robot/fdl_robot/core`` (what ``load_tracking`` takes from git)."""


def load_tracking(impl: str):
    """The tracking module: ``new`` (this tree), ``old`` (commit 75d7855, before issue 16) or any
    git revision, loaded from git: the tracker's core modules of that revision (those it has)
    as one temporary package, so that they import each other and nothing of this tree's."""
    if impl == "new":
        from fdl_robot.core import tracking
        return tracking
    rev = OLD_COMMIT if impl == "old" else impl
    package = "tracker_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    if package in sys.modules:
        return sys.modules[package + ".tracking"]
    root = Path(tempfile.mkdtemp()) / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    for name in CORE_MODULES:
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:fdl_robot/fdl_robot/core/{name}.py"],
                             capture_output=True, text=True)
        if src.returncode == 0:
            text = src.stdout
            for other in CORE_MODULES:
                text = text.replace(f"fdl_robot.core.{other} ", f"{package}.{other} ")
            (root / f"{name}.py").write_text(text)
    sys.path.insert(0, str(root.parent))
    try:
        return importlib.import_module(package + ".tracking")
    finally:
        sys.path.remove(str(root.parent))


# ------------------------------------------------------------------------ scenarios

def run_scenarios(seeds: int, make_tracker, progress: str = "ours") -> dict:
    out = {}
    for name in SCENARIOS:
        t0 = time.perf_counter()
        runs = [score(make_scenario(name, s), tracker_step(make_tracker())) for s in range(seeds)]
        out[name] = summarise(runs)
        print(f"  [{progress}] {name:9s} MOTA {out[name]['mota']:.3f} IDF1 {out[name]['idf1']:.3f} "
              f"IDSW {out[name]['switches']:.1f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def summarise(runs) -> dict:
    return dict(mota=float(np.mean([r.mota for r in runs])), mota_min=float(min(r.mota for r in runs)),
                idf1=float(np.mean([r.idf1 for r in runs])), idf1_min=float(min(r.idf1 for r in runs)),
                switches=float(np.mean([r.switches for r in runs])),
                false_positives=float(np.mean([r.false_positives for r in runs])),
                misses=float(np.mean([r.misses for r in runs])))


# ---------------------------------------------------------------------------- speed

def grid_objects(n: int) -> np.ndarray:
    """``n`` objects on a grid over the table (spacing >= 2.5 cm even for 1000)."""
    side = int(np.ceil(np.sqrt(n)))
    x, y = np.meshgrid(np.linspace(0.2, 0.8 + 0.2 * (n > 100), side), np.linspace(-0.4, 0.4 + 0.2 * (n > 100), side))
    return np.column_stack([x.ravel(), y.ravel(), np.full(side * side, 0.02)])[:n]


def time_updates(tracking, n: int, updates: int, warmup: int = 20) -> dict:
    rng = np.random.default_rng(0)
    objects = grid_objects(n)
    trk = tracking.MultiObjectTracker()
    frames = [objects + rng.normal(0.0, 0.003, objects.shape) for _ in range(warmup + updates + 1)]
    for k in range(warmup):
        trk.update(frames[k], k / HZ)
    times, cpu = [], []
    for k in range(warmup, warmup + updates):
        t0, c0 = time.perf_counter(), time.thread_time()
        trk.update(frames[k], k / HZ)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    tracemalloc.start()
    trk.update(frames[-1], (warmup + updates) / HZ)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    confirmed = len(trk.confirmed_tracks())
    return dict(objects=n, mean_us=1e6 * float(np.mean(times)), median_us=1e6 * float(np.median(times)),
                cpu_mean_us=1e6 * float(np.mean(cpu)),
                p90_us=1e6 * float(np.percentile(times, 90)), peak_mib=peak / 2**20, confirmed=confirmed)


def run_speed(tracking, sizes=((10, 500), (50, 300), (1000, 20))) -> list[dict]:
    out = []
    for n, updates in sizes:
        r = time_updates(tracking, n, updates)
        print(f"  speed: {n:5d} objects: mean {r['mean_us']:9.1f} us/update (p90 {r['p90_us']:.1f}), "
              f"peak {r['peak_mib']:.1f} MiB, {r['confirmed']} confirmed", flush=True)
        out.append(r)
    return out


def run_speed_side_by_side(tracking, reference, alternations: int,
                           sizes=((10, 500), (50, 300), (1000, 20))) -> list[dict]:
    """``time_updates`` of ``reference`` and ``tracking`` in turn, ``alternations`` times per size,
    so that both see the same load on a busy machine; the medians of the runs' means (of wall
    time, and of the thread's CPU time, which leaves out the time the process waited for a
    core) and of their per-update medians, and the ratios new / reference."""
    out = []
    for n, updates in sizes:
        runs: dict[str, list[dict]] = {"reference": [], "new": []}
        for _ in range(alternations):
            for key, module in (("reference", reference), ("new", tracking)):
                runs[key].append(time_updates(module, n, updates))
        row = dict(objects=n, alternations=alternations)
        for key in runs:
            row[f"{key}_mean_us"] = float(np.median([r["mean_us"] for r in runs[key]]))
            row[f"{key}_median_us"] = float(np.median([r["median_us"] for r in runs[key]]))
            row[f"{key}_cpu_mean_us"] = float(np.median([r["cpu_mean_us"] for r in runs[key]]))
        for stat in ("mean", "median", "cpu_mean"):
            row[f"ratio_{stat}"] = row[f"new_{stat}_us"] / row[f"reference_{stat}_us"]
        print(f"  speed: {n:5d} objects: reference {row['reference_mean_us']:9.1f} us, "
              f"new {row['new_mean_us']:9.1f} us (medians of the runs' means); new / reference: "
              f"mean {row['ratio_mean']:.3f}, per-update median {row['ratio_median']:.3f}, "
              f"thread CPU time {row['ratio_cpu_mean']:.3f}", flush=True)
        out.append(row)
    return out


# ----------------------------------------------------------------------- edge cases

def edge_two_cameras_same_stamp(tracking) -> dict:
    """Cameras A (objects 1-3) and B (objects 4-6) publish at the same stamps, 15 Hz, 2 s,
    each with a view that sees only its own objects (``observable``).  Counts: tentative
    tracks deleted by the other camera's update, confirmed->lost flips, and objects without
    a confirmed track at the end."""
    rng = np.random.default_rng(3)
    objs = np.array([[0.3, y, 0.02] for y in (-0.3, -0.1, 0.1)] + [[0.9, y, 0.02] for y in (-0.3, -0.1, 0.1)])
    sees = {"A": lambda p: p[:, 0] < 0.6, "B": lambda p: p[:, 0] >= 0.6}
    trk = tracking.MultiObjectTracker()
    flips = deleted = 0
    for k in range(30):
        for cam in ("A", "B"):
            before = {t.id: t.state for t in trk.tracks()}
            z = objs[sees[cam](objs)]
            after = {t.id: t.state for t in trk.update(z + rng.normal(0, 0.003, z.shape), k / HZ,
                                                       observable=sees[cam])}
            flips += sum(1 for i, s in after.items() if before.get(i) == 1 and s == 2)
            deleted += sum(1 for i, s in before.items() if s == 0 and i not in after)
    confirmed = [t.position for t in trk.confirmed_tracks(include_lost=False)]
    missing = sum(1 for o in objs if not any(np.linalg.norm(o - p) < 0.02 for p in confirmed))
    return dict(tentative_deleted=deleted, confirmed_to_lost=flips, objects_untracked=missing)


def edge_outage(tracking, gap_s: float = 1.5) -> dict:
    """Six still objects, 15 Hz for 2 s, no update at all for ``gap_s`` (> max_age_s), then
    15 Hz again, where the first update after the outage misses objects 1 and 2 (as any
    frame may): how many objects keep their track (same id) after the outage."""
    rng = np.random.default_rng(4)
    objs = grid_objects(6)
    trk = tracking.MultiObjectTracker()
    stamps = list(np.arange(30) / HZ) + list(30 / HZ + gap_s + np.arange(15) / HZ)
    ids_before = None
    for k, t in enumerate(stamps):
        z = objs[2:] if k == 30 else objs
        trk.update(z + rng.normal(0, 0.003, z.shape), t)
        if k == 29:
            ids_before = sorted(tr.id for tr in trk.confirmed_tracks())
    ids_after = sorted(tr.id for tr in trk.confirmed_tracks())
    return dict(gap_s=gap_s, tracks_before=len(ids_before), kept=len(set(ids_before) & set(ids_after)),
                new_tracks=len(set(ids_after) - set(ids_before)))


def edge_late(tracking, late_s: float = 0.001) -> dict:
    """Two cameras at 15 Hz: B's set for stamp t arrives after A's set for t + ``late_s``.
    Counts the sets rejected, and the largest position difference (m) of the final tracks
    from those of the same sets fed in stamp order."""
    rng = np.random.default_rng(5)
    objs = grid_objects(4)
    sets = []
    for k in range(30):
        t = k / HZ
        sets.append((t + late_s, objs + rng.normal(0, 0.003, objs.shape)))
        sets.append((t, objs + rng.normal(0, 0.003, objs.shape)))       # B, stamped earlier, arrives later
    trk, ref = tracking.MultiObjectTracker(), tracking.MultiObjectTracker()
    rejected = 0
    for t, z in sets:
        try:
            trk.update(z, t)
        except tracking.OutOfOrderStamp:
            rejected += 1
    for t, z in sorted(sets, key=lambda s: s[0]):
        ref.update(z, t)
    a = np.array([tr.position for tr in trk.confirmed_tracks()])
    b = np.array([tr.position for tr in ref.confirmed_tracks()])
    diff = float(np.abs(a - b).max()) if a.shape == b.shape and len(a) else float("nan")
    return dict(late_s=late_s, sets=len(sets), rejected=rejected, max_position_diff_m=diff)


def edge_jump_back(tracking, jump_s: float = 0.5, after: int = 150) -> dict:
    """15 Hz for 2 s, then the stamps jump back by ``jump_s`` (< 1 s) and go on at 15 Hz:
    how many of the next ``after`` updates raise, and whether the objects are tracked after."""
    rng = np.random.default_rng(6)
    objs = grid_objects(3)
    trk = tracking.MultiObjectTracker()
    for k in range(30):
        trk.update(objs + rng.normal(0, 0.003, objs.shape), k / HZ)
    t0 = 29 / HZ - jump_s
    raised = 0
    for k in range(after):
        try:
            trk.update(objs + rng.normal(0, 0.003, objs.shape), t0 + k / HZ)
        except tracking.OutOfOrderStamp:
            raised += 1
    return dict(jump_s=jump_s, updates=after, raised=raised, confirmed_at_end=len(trk.confirmed_tracks()))


def run_edges(tracking) -> dict:
    out = {}
    for name, fn in (("two_cameras_same_stamp", edge_two_cameras_same_stamp), ("outage", edge_outage),
                     ("late_1ms", edge_late), ("late_20ms", lambda m: edge_late(m, 0.02)),
                     ("jump_back_0.5s", edge_jump_back)):
        out[name] = fn(tracking)
        print(f"  edge {name}: {out[name]}", flush=True)
    return out


# -------------------------------------------------------------------------- output

def table(ours: dict, peers: dict | None) -> str:
    cols = ["ours (defaults)"] + sorted(peers or {})
    lines = ["| scenario | " + " | ".join(f"{c} MOTA / IDF1 / IDSW" for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name in SCENARIOS:
        cells = [ours[name]] + [peers[p][name] for p in sorted(peers or {})]
        lines.append(f"| {name} | " + " | ".join(
            f"{c['mota']:.3f} / {c['idf1']:.3f} / {c['switches']:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds per scenario (default 5)")
    ap.add_argument("--sections", default=None, help="comma list of scenarios,peers,speed,edges")
    ap.add_argument("--peers", action="store_true", help="also run the tuned peers (needs .venv-bench)")
    ap.add_argument("--peer-names", default="sort,norfair,motpy,stonesoup", help="which peers")
    ap.add_argument("--impl", default="new", help="tracker: new (this tree), old (75d7855) or a git revision")
    ap.add_argument("--against", default=None, help="speed: time --impl and this one (new, old or a git "
                    "revision) alternately, with the ratio")
    ap.add_argument("--alternations", type=int, default=5, help="runs of each with --against (default 5)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    sections = (args.sections.split(",") if args.sections else
                ["scenarios", "speed", "edges"] + (["peers"] if args.peers else []))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tracking = load_tracking(args.impl)
    result: dict = dict(impl=args.impl, seeds=args.seeds, sections=sections)
    if "scenarios" in sections:
        print("scenarios, our tracker with its defaults:", flush=True)
        result["ours"] = run_scenarios(args.seeds, tracking.MultiObjectTracker)
    if "peers" in sections:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import tracker_peers
        result["peers"], result["peer_grids"] = tracker_peers.run_all(args.seeds, args.peer_names.split(","))
    if "speed" in sections:
        if args.against:
            print(f"speed ({args.impl} vs {args.against}, alternately):", flush=True)
            result["against"] = args.against
            result["speed"] = run_speed_side_by_side(tracking, load_tracking(args.against), args.alternations)
        else:
            print(f"speed ({args.impl}):", flush=True)
            result["speed"] = run_speed(tracking)
    if "edges" in sections:
        print(f"edge cases ({args.impl}):", flush=True)
        result["edges"] = run_edges(tracking)
    if "ours" in result:
        print(table(result["ours"], result.get("peers")))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

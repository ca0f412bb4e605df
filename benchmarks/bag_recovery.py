#!/usr/bin/env python3
"""Messages recovered of messages published, after ``kill -9`` of a recorder at a random moment.

    .venv/bin/python benchmarks/bag_recovery.py                    # 20 kills, 4 baseline, 4 SIGTERM (~3 min)
    .venv/bin/python benchmarks/bag_recovery.py --kills 4 --baseline-kills 0 --term-trials 0

Each trial starts ``fdl-robot-bag record`` (a real process, default options) on topics
that this process publishes at the rates of the simulated cell, in one of two scenarios
(trials alternate between them):

* ``camera``: colour (320x240 rgb8) and aligned depth (16UC1) images at 15 Hz, best
  effort, as sim_node and realsense-ros publish them; camera_info at 15 Hz and
  joint_states (7 joints) at 50 Hz, reliable (about 5.8 MB/s: rosbags' 1 MiB chunks fill
  every 0.2 s anyway);
* ``arm``: joint_states at 50 Hz and camera_info at 15 Hz only (about 20 kB/s: a 1 MiB
  chunk would take a minute).

Every message is numbered (``header.frame_id``) and its publish time
kept. Publishing starts once the recorder subscribed to every topic; the recorder is
*ready* once it acknowledged every reliable message (its DDS readers can match our writers
a second or more after we see its subscriptions: what is published before that is never
received, a discovery effect, not a kill's; this can take up to Fast DDS' 3 s heartbeat).
A random time after that (uniform in [--min-s, --max-s]) the recorder gets SIGKILL and
publishing stops; ``fdl-robot-bag reindex`` (:func:`fdl_robot.bags.recovery.reindex`)
rebuilds the bag, and the numbers in it are compared with those published between
readiness and the kill.

Modes: ``flush`` (the recorder as shipped: what it received goes to the file every
``FLUSH_PERIOD_S`` = 0.5 s), ``baseline`` (``--flush-period 0``: rosbags' writer alone,
which writes a chunk per MiB of messages, as the recorder did before) and ``term``
(SIGTERM instead of SIGKILL, then no reindex: the reference for transport losses).

Per trial: published, recovered, and the messages not in the bag split in two:

* **lost to the kill**: published after the newest message in the bag (of any topic): what
  the recorder held in memory or was still receiving. The **kill window** is the kill
  time minus the publish time of that newest message: the last this-many seconds before
  the kill are lost, everything older is in the bag unless it was never received;
* **missing earlier** (holes before that message): never received by the recorder, e.g.
  best-effort images dropped by the transport on a loaded machine or sent before the
  recorder's reader of that topic had matched; a kill cannot cause these. The SIGTERM
  trials (no kill) show the same.

Also per trial: the *receipt lag* of the counted messages in the bag (the recorder's receipt time,
its log time, minus the publish time in ``header.stamp``): a recorder that falls behind
(starved of CPU on a loaded machine: it runs at this process' niceness) holds more in
memory, which a kill loses; a kill window longer than the flush period comes with a long
lag.

Writes ``benchmarks/results/issue14/bag_recovery.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, percentiles  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "issue14" / "bag_recovery.json"
TOPICS = {  # name: (rate Hz, reliable)
    "camera/color/image_raw": (15.0, False),
    "camera/aligned_depth_to_color/image_raw": (15.0, False),
    "camera/color/camera_info": (15.0, True),
    "joint_states": (50.0, True),
}
SCENARIOS = {"camera": list(TOPICS), "arm": ["camera/color/camera_info", "joint_states"]}


class Publisher:
    """Publishes ``topics`` (of TOPICS) under ``namespace`` from a thread; remembers publish times."""

    def __init__(self, node, namespace: str, topics: list[str], rng: np.random.Generator):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, JointState

        def qos(reliable: bool) -> QoSProfile:
            return QoSProfile(depth=10 if reliable else 5, reliability=ReliabilityPolicy.RELIABLE
                              if reliable else ReliabilityPolicy.BEST_EFFORT)

        self.node = node
        noise = rng.integers(0, 256, 320 * 240 * 3, dtype=np.uint8).tobytes()   # compresses little
        depth = (500 + rng.integers(0, 50, 320 * 240)).astype("<u2").tobytes()
        self.template = {
            "camera/color/image_raw": Image(height=240, width=320, encoding="rgb8", step=960, data=noise),
            "camera/aligned_depth_to_color/image_raw": Image(height=240, width=320, encoding="16UC1",
                                                             step=640, data=depth),
            "camera/color/camera_info": CameraInfo(height=240, width=320),
            "joint_states": JointState(name=[f"joint_{i}" for i in range(7)], position=[0.1] * 7,
                                       velocity=[0.0] * 7),
        }
        self.topics = {t: TOPICS[t] for t in topics}
        self.pubs = {t: node.create_publisher(type(self.template[t]), f"{namespace}/{t}", qos(rel))
                     for t, (_hz, rel) in self.topics.items()}
        self.sent: dict[str, list[float]] = {t: [] for t in topics}      # publish time of seq i
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def subscribed(self) -> bool:
        return all(p.get_subscription_count() >= 1 for p in self.pubs.values())

    def acknowledged(self) -> bool:
        """Every reliable message sent so far (at least one per topic) reached the recorder."""
        from rclpy.duration import Duration

        return all(self.sent[t] and self.pubs[t].wait_for_all_acked(Duration(seconds=0.05))
                   for t, (_hz, reliable) in self.topics.items() if reliable)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        t0 = time.monotonic()
        due = {t: t0 for t in self.topics}
        while not self._stop.is_set():
            now = time.monotonic()
            for topic, (hz, _rel) in self.topics.items():
                if now >= due[topic]:
                    msg = self.template[topic]
                    msg.header.frame_id = str(len(self.sent[topic]))
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
                    self.sent[topic].append(time.monotonic())
                    self.pubs[topic].publish(msg)
                    due[topic] += 1.0 / hz
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))

    def close(self) -> None:
        for pub in self.pubs.values():
            self.node.destroy_publisher(pub)


def recovered_numbers(bag: Path, namespace: str, topics: list[str]):
    """Numbers in the bag per topic, and their receipt lags (log time - publish stamp, s) by number."""
    from fdl_robot.bags.reader import read_messages

    out: dict[str, list[int]] = {t: [] for t in topics}
    lags: dict[str, dict[int, float]] = {t: {} for t in topics}
    for topic, t_ns, msg in read_messages(bag):
        name, number = topic[len(namespace) + 1:], int(msg.header.frame_id)
        out[name].append(number)
        lags[name][number] = (t_ns - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) * 1e-9
    return out, lags


def trial(node, k: int, mode: str, scenario: str, duration_s: float, rng, workdir: Path) -> dict:
    from fdl_robot.bags.recovery import reindex

    namespace = f"/bagbench_{os.getpid()}_{k}"
    bag = workdir / f"trial{k}"
    topics = SCENARIOS[scenario]
    cmd = [sys.executable, "-m", "fdl_robot.bags.cli", "record", "-o", str(bag),
           *[f"{namespace}/{t}" for t in topics]]
    if mode == "baseline":
        cmd += ["--flush-period", "0"]
    recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pub = Publisher(node, namespace, topics, rng)
    try:
        end = time.monotonic() + 30
        while not pub.subscribed():
            if time.monotonic() > end:
                raise RuntimeError(f"trial {k}: the recorder did not subscribe within 30 s")
            time.sleep(0.02)
        pub.start()
        t_start = time.monotonic()
        while not pub.acknowledged():
            if time.monotonic() > end:
                raise RuntimeError(f"trial {k}: the recorder acknowledged nothing within 30 s")
        t_ready = time.monotonic()
        time.sleep(duration_s)
        t_kill = time.monotonic()
        recorder.send_signal(signal.SIGTERM if mode == "term" else signal.SIGKILL)
        pub.stop()
        recorder.wait(timeout=30)
    finally:
        recorder.kill()
        pub.stop()
        pub.close()
    t0 = time.monotonic()
    result = None if mode == "term" else reindex(bag, keep_original=False)
    reindex_s = time.monotonic() - t0
    got, lags = recovered_numbers(bag, namespace, topics)
    size = sum(p.stat().st_size for p in bag.iterdir())
    shutil.rmtree(bag)
    row = {"mode": mode, "scenario": scenario, "trial": k, "kill_after_s": round(duration_s, 3),
           "ready_after_s": round(t_ready - t_start, 3), "bag_bytes": size, "reindex_s": round(reindex_s, 3),
           "dropped_bytes": result.dropped_bytes if result else 0,
           "unreadable_records": result.unreadable if result else [],
           "topics": {}}
    counted = {t: {i for i, ti in enumerate(pub.sent[t]) if t_ready <= ti < t_kill} for t in topics}
    recovered_sets = {t: counted[t] & set(got[t]) for t in topics}
    newest = max([pub.sent[t][i] for t in topics for i in recovered_sets[t]], default=t_ready)
    counted_lags = [lags[t][i] for t in topics for i in recovered_sets[t]]
    row["receipt_lag_s"] = {k: round(v, 4) if v is not None else None
                            for k, v in percentiles(counted_lags, ps=(50, 99)).items()}
    for topic in topics:
        times, in_bag = pub.sent[topic], got[topic]
        lost = counted[topic] - recovered_sets[topic]
        row["topics"][topic] = {
            "published": len(counted[topic]), "recovered": len(recovered_sets[topic]),
            "lost_to_kill": sum(times[i] > newest for i in lost),
            "missing_earlier": sum(times[i] <= newest for i in lost),
            "missing_runs": _runs(sorted(i - min(counted[topic]) for i in lost if times[i] <= newest)),
            "duplicates": len(in_bag) - len(set(in_bag)),
            "unexpected": sum(not (0 <= i < len(times) and times[i] < t_kill) for i in set(in_bag))}
    total = {key: sum(v[key] for v in row["topics"].values())
             for key in ("published", "recovered", "lost_to_kill", "missing_earlier")}
    row.update(total, kill_window_s=round(t_kill - newest, 3))
    return row


def _runs(values: list[int]) -> list[list[int]]:
    """[[first, last], ...] of the consecutive runs in sorted ``values``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def _pair(p: dict, unit: str) -> str:
    """'p50 / max unit' of a percentiles() dict ('-' when empty)."""
    return "-" if p["n"] == 0 else f"{p['p50']:.2f} / {p['max']:.2f} {unit}"


def summarize(rows: list[dict]) -> dict:
    published = sum(r["published"] for r in rows)
    recovered = sum(r["recovered"] for r in rows)
    return {"trials": len(rows), "published": published, "recovered": recovered,
            "recovered_fraction": round(recovered / published, 4) if published else None,
            "lost_to_kill": sum(r["lost_to_kill"] for r in rows),
            "missing_earlier": sum(r["missing_earlier"] for r in rows),
            "complete_trials": sum(r["recovered"] == r["published"] for r in rows),
            "kill_window_s": percentiles([r["kill_window_s"] for r in rows], ps=(50, 95)),
            "receipt_lag_max_s": percentiles([r["receipt_lag_s"]["max"] for r in rows
                                              if r["receipt_lag_s"]["max"] is not None], ps=(50, 95)),
            "unexpected_or_duplicates": sum(t["unexpected"] + t["duplicates"] for r in rows
                                            for t in r["topics"].values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILL trials, recorder as shipped")
    parser.add_argument("--baseline-kills", type=int, default=4, help="SIGKILL trials, --flush-period 0")
    parser.add_argument("--term-trials", type=int, default=4, help="SIGTERM trials (reference)")
    parser.add_argument("--min-s", type=float, default=0.0, help="earliest kill after the recorder is ready")
    parser.add_argument("--max-s", type=float, default=2.5, help="latest kill after the recorder is ready")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="JSON to write")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    import rclpy

    from fdl_robot.bags.recorder import FLUSH_PERIOD_S

    rng = np.random.default_rng(args.seed)
    machine_at_start = machine_info()
    plan = (["flush"] * args.kills + ["baseline"] * args.baseline_kills + ["term"] * args.term_trials)
    rclpy.init()
    node = rclpy.create_node("bag_recovery_bench")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bag_recovery_") as tmp:
            for k, mode in enumerate(plan):
                scenario = list(SCENARIOS)[k % len(SCENARIOS)]
                row = trial(node, k, mode, scenario, float(rng.uniform(args.min_s, args.max_s)), rng,
                            Path(tmp))
                rows.append(row)
                print(f"{mode:8s} {scenario:6s} #{k:2d} stop at {row['kill_after_s']:4.2f} s: recovered "
                      f"{row['recovered']:4d} of {row['published']:4d}, lost to the stop "
                      f"{row['lost_to_kill']:3d} ({row['kill_window_s']:.2f} s), missing earlier "
                      f"{row['missing_earlier']:3d}, reindex {row['reindex_s']:.2f} s", flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    summary = {f"{mode}/{sc}": summarize(sel) for mode in dict.fromkeys(plan) for sc in SCENARIOS
               if (sel := [r for r in rows if r["mode"] == mode and r["scenario"] == sc])}
    report = {"command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
              "topics": {t: {"rate_hz": hz, "reliable": rel} for t, (hz, rel) in TOPICS.items()},
              "scenarios": SCENARIOS,
              "flush_period_s": FLUSH_PERIOD_S, "stop_after_ready_s": [args.min_s, args.max_s],
              "seed": args.seed, "machine_at_start": machine_at_start, "machine": machine_info(),
              "summary": summary, "trials": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print("\n| recorder, stop | topics | stops | recovered / published | lost to the stop | "
          "kill window p50 / max | missing earlier | receipt lag max, p50 / max |")
    print("|---|---|---|---|---|---|---|---|")
    for key, s in summary.items():
        mode, sc = key.split("/")
        label = {"flush": f"as shipped (flush every {FLUSH_PERIOD_S:g} s), SIGKILL",
                 "baseline": "--flush-period 0 (as before), SIGKILL", "term": "as shipped, SIGTERM"}[mode]
        w, lag = s["kill_window_s"], s["receipt_lag_max_s"]
        print(f"| {label} | {sc} | {s['trials']} | {s['recovered']} / {s['published']} "
              f"({100 * (s['recovered_fraction'] or 0):.1f} %) | {s['lost_to_kill']} | "
              f"{_pair(w, 's')} | {s['missing_earlier']} | "
              f"{_pair(lag, 's')} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

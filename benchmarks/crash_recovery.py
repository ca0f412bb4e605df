#!/usr/bin/env python3
"""Through crashes: ``kill -9`` one node mid-episode, with respawn on, and watch the robot.

    .venv/bin/python benchmarks/crash_recovery.py --episodes 20          # 4 per node, nodes in turn
    .venv/bin/python benchmarks/crash_recovery.py --episodes 5 --nodes tracker_node

The sim graph runs as ``fdl-robot-closed-loop`` runs it (a process per node, real time,
wall clock), with ``respawn`` on. In episode i the node ``nodes[i % len(nodes)]`` gets
SIGKILL ``--kill-after-s`` into the episode. Measured where the arm receives commands:

* **time to hold**: kill -> the first hold command (policy_node's watchdog: a single point,
  zero velocity, once joint states or tracks are older than ``input_timeout_s``). Killing
  policy_node itself stops the commands; the arm then finishes the last trajectory it got;
* **commands from stale data**: non-hold commands received after the hold and before the
  killed node is back (must be 0);
* **time to recover**: kill -> the first non-hold command after the node's restart;
* success of each episode (it must complete, or end at a hold: never a crash of the graph).

Writes ``benchmarks/results/issue13/crash_recovery.json``.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from fdl_robot.eval.closed_loop import DETECTOR_DEFAULTS, GraphOptions, run_closed_loop
from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json

NODES = ["detector_node", "localizer_node", "tracker_node", "policy_node", "sim_node"]
OUT = Path(__file__).resolve().parent / "results" / "issue13" / "crash_recovery.json"


class Killer:
    """Kills the episode's node after a delay and remembers when (monotonic ns)."""

    def __init__(self, nodes: list[str], after_s: float):
        self.nodes, self.after_s = nodes, after_s
        self.kills: dict[int, tuple[str, int, int]] = {}        # episode -> (node, pid, kill ns)

    def __call__(self, episode: int, pids: dict) -> None:
        name = self.nodes[episode % len(self.nodes)]

        def kill():
            pid = pids.get(name)
            if pid:
                t = time.monotonic_ns()
                os.kill(pid, signal.SIGKILL)
                self.kills[episode] = (name, pid, t)

        threading.Timer(self.after_s, kill).start()


def analyse(timing, kill_ns: int) -> dict:
    rx = np.asarray(timing.command_rx_ns, dtype=np.int64)
    holds = set(timing.hold_rx_ns)
    after = rx[rx > kill_ns]
    first_hold = next((t for t in after if t in holds), None)
    recovered = next((t for t in after if t not in holds and first_hold is not None and t > first_hold), None)
    stale = 0
    if first_hold is not None:      # non-holds between the hold and the recovery (the first non-hold is it)
        window = after[(after > first_hold) & (after < (recovered or after.max() + 1))]
        stale = int(sum(t not in holds for t in window))
    last_before = rx[rx <= kill_ns].max() if (rx <= kill_ns).any() else kill_ns
    gap = next((t for t in after), None)
    return {
        "time_to_hold_s": None if first_hold is None else round((first_hold - kill_ns) * 1e-9, 3),
        "time_to_recover_s": None if recovered is None else round((recovered - kill_ns) * 1e-9, 2),
        "stale_commands": stale,
        "command_gap_s": None if gap is None else round((gap - last_before) * 1e-9, 3),
    }


@exit_on_error
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed0", type=int, default=5000)
    ap.add_argument("--nodes", default=",".join(NODES))
    ap.add_argument("--kill-after-s", type=float, default=2.0, help="wall seconds into the episode")
    ap.add_argument("--respawn-delay", type=float, default=0.5)
    ap.add_argument("--max-sim-s", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    check_args(ap, args, {"--out": JSON})
    killer = Killer(args.nodes.split(","), args.kill_after_s)
    options = GraphOptions.with_realtime("auto", respawn=True, respawn_delay=args.respawn_delay,
                                         log_dir=args.out.with_suffix(".logs"))
    run = run_closed_loop(args.episodes, args.seed0, {"detector_node": dict(DETECTOR_DEFAULTS)}, args.max_sim_s,
                          options=options,
                          progress=lambda s: print(s, flush=True), on_episode_start=killer)
    rows = []
    for r, timing in zip(run.results, run.episode_timing, strict=True):
        name, pid, t = killer.kills.get(r.episode, (None, None, None))
        row = {"episode": r.episode, "seed": r.seed, "killed": name, "success": r.success,
               "duration_s": r.duration_s}
        if t is not None:
            row.update(analyse(timing, t))
        rows.append(row)
        print(row, flush=True)
    per_node = {}
    for name in killer.nodes:
        mine = [r for r in rows if r["killed"] == name]
        holds = [r["time_to_hold_s"] for r in mine if r.get("time_to_hold_s") is not None]
        recov = [r["time_to_recover_s"] for r in mine if r.get("time_to_recover_s") is not None]
        per_node[name] = {"episodes": len(mine), "successes": sum(r["success"] for r in mine),
                          "time_to_hold_s_max": max(holds) if holds else None,
                          "time_to_recover_s_median": float(np.median(recov)) if recov else None,
                          "stale_commands": sum(r.get("stale_commands", 0) for r in mine)}
    summary = {"episodes": len(rows), "successes": sum(r["success"] for r in rows), "per_node": per_node,
               "kill_after_s": args.kill_after_s, "respawn_delay_s": args.respawn_delay, "timing": run.timing,
               "rows": rows}
    write_json(args.out, summary, "--out")
    for name, v in per_node.items():
        print(f"{name:15s} success {v['successes']}/{v['episodes']}, time to hold max {v['time_to_hold_s_max']} s, "
              f"recover median {v['time_to_recover_s_median']} s, stale commands {v['stale_commands']}")
    print(f"success {summary['successes']}/{summary['episodes']} with one crash each -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

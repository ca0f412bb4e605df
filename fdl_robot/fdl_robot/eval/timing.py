"""Timing of a closed loop as the robot sees it: command intervals, missed ticks, latency.

Measured where the commands arrive (the arm's side of the ``JointTrajectory`` topic), on
the wall clock:

* **intervals** between consecutive commands received in an episode, ms; the share of
  them within ``period ± tolerance`` (the target: >= 99 % within 20 ± 5 ms at 50 Hz);
* **missed ticks**: for an interval Δ, ``max(0, round(Δ / period) - 1)`` control periods
  passed without a command;
* **end-to-end latency** from an image's stamp (its capture) to the first command that
  carries that stamp in its header (``policy_node`` stamps each command with the source
  image stamp of the tracks it used), ms;
* **real-time factor**: simulated seconds (control steps x period) per wall second.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fdl_robot.core.robot import CONTROL_DT_S

__all__ = ["INTERVAL_TOLERANCE_S", "LoopTiming", "timing_summary"]

#: A command interval within CONTROL_DT_S ± this counts as on time.
INTERVAL_TOLERANCE_S = 0.005


def _percentiles(values_ms: np.ndarray) -> dict:
    if values_ms.size == 0:
        return {"n": 0}
    p = np.percentile(values_ms, [1, 50, 99])
    return {"n": int(values_ms.size), "p1": round(float(p[0]), 2), "p50": round(float(p[1]), 2),
            "p99": round(float(p[2]), 2), "max": round(float(values_ms.max()), 2)}


@dataclass
class LoopTiming:
    """What one episode's receiver saw: command receipt times, latencies, steps, wall time."""

    command_rx_ns: list[int] = field(default_factory=list)   # monotonic receipt times
    hold_rx_ns: list[int] = field(default_factory=list)      # ... of those that were holds
    latency_ns: list[int] = field(default_factory=list)      # image stamp -> first command with it
    sim_steps: int = 0                                        # control steps simulated (joint states)
    wall_s: float = 0.0

    def intervals_ms(self) -> np.ndarray:
        return np.diff(np.asarray(self.command_rx_ns, dtype=np.int64)) * 1e-6


def timing_summary(episodes: list[LoopTiming], period_s: float = CONTROL_DT_S,
                   tolerance_s: float = INTERVAL_TOLERANCE_S) -> dict:
    """The figures above over all ``episodes`` (intervals never span two episodes)."""
    intervals = np.concatenate([e.intervals_ms() for e in episodes] or [np.zeros(0)])
    latency = np.concatenate([np.asarray(e.latency_ns, dtype=np.float64) * 1e-6 for e in episodes]
                             or [np.zeros(0)])
    period_ms, tol_ms = period_s * 1e3, tolerance_s * 1e3
    on_time = float(np.mean(np.abs(intervals - period_ms) <= tol_ms)) if intervals.size else float("nan")
    missed = int(np.maximum(0, np.round(intervals / period_ms) - 1).sum()) if intervals.size else 0
    sim_s = sum(e.sim_steps for e in episodes) * period_s
    wall_s = sum(e.wall_s for e in episodes)
    return {
        "real_time_factor": round(sim_s / wall_s, 3) if wall_s > 0 else float("nan"),
        "command_interval_ms": _percentiles(intervals),
        "commands_on_time": round(on_time, 4),
        "on_time_window_ms": [period_ms - tol_ms, period_ms + tol_ms],
        "missed_ticks": missed,
        "control_ticks": int(round(sim_s / period_s)),
        "latency_ms": _percentiles(latency),
    }

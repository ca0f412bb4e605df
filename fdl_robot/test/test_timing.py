"""eval.timing: command intervals, missed ticks, latency and real-time factor as the arm sees them."""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.eval.timing import LoopTiming, timing_summary

MS = 1_000_000


def test_a_steady_50hz_stream_is_on_time_with_no_missed_ticks():
    rx = (np.arange(500) * 20 * MS + np.random.default_rng(0).integers(-2 * MS, 2 * MS, 500)).tolist()
    t = timing_summary([LoopTiming(command_rx_ns=rx, latency_ns=[25 * MS] * 10, sim_steps=500, wall_s=10.0)])
    assert t["commands_on_time"] == 1.0 and t["missed_ticks"] == 0
    assert 19.0 < t["command_interval_ms"]["p50"] < 21.0
    assert t["latency_ms"]["p50"] == pytest.approx(25.0)
    assert t["real_time_factor"] == pytest.approx(1.0)
    assert t["control_ticks"] == 500


def test_gaps_count_as_missed_ticks_and_late_intervals_as_off_time():
    # 20 ms ticks with one 100 ms gap (4 ticks missed) and one 30 ms interval (1 missed, off time)
    gaps_ms = [20] * 10 + [100] + [20] * 10 + [30] + [20] * 10
    rx = np.cumsum([0] + gaps_ms) * MS
    t = timing_summary([LoopTiming(command_rx_ns=rx.tolist(), sim_steps=50, wall_s=2.0)])
    assert t["missed_ticks"] == 4 + 1
    assert t["commands_on_time"] == pytest.approx(30 / 32)
    assert t["real_time_factor"] == pytest.approx(0.5)        # 50 steps of 20 ms in 2 s


def test_intervals_never_span_two_episodes():
    a = LoopTiming(command_rx_ns=[0, 20 * MS], sim_steps=1, wall_s=0.02)
    b = LoopTiming(command_rx_ns=[10_000 * MS, 10_020 * MS], sim_steps=1, wall_s=0.02)
    t = timing_summary([a, b])
    assert t["command_interval_ms"]["n"] == 2 and t["missed_ticks"] == 0


def test_no_commands_no_figures_but_no_crash():
    t = timing_summary([LoopTiming(sim_steps=10, wall_s=0.2)])
    assert t["command_interval_ms"] == {"n": 0} and t["latency_ms"] == {"n": 0}
    assert np.isnan(t["commands_on_time"])

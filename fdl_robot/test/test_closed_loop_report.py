"""The closed loop's report of perturbed episodes (re-grasps, time to recover, success by kind), without a graph."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from fdl_robot.eval.closed_loop import ClosedLoopReport, EpisodeResult  # noqa: E402
from fdl_robot.eval.stats import SuccessSummary  # noqa: E402
from fdl_robot.eval.timing import LoopTiming, timing_summary  # noqa: E402


def _report(results, kind="mixed"):
    summary = SuccessSummary.of([r.seed for r in results], [r.success for r in results],
                                [r.duration_s for r in results])
    return ClosedLoopReport(summary, results, timing_summary([LoopTiming()]), {}, 1.0, "processes",
                            {"sim_node": {"perturbation": kind}})


def test_regrasps_recovery_and_success_by_kind_from_the_perturbation_messages():
    results = [
        EpisodeResult(0, 5000, True, 9.0, 9.0, 450, 135, {"kind": "drop", "fired_s": 4.0, "grasps": 2}),
        EpisodeResult(1, 5001, False, 20.0, 20.0, 1000, 300, {"kind": "drop", "fired_s": 5.0, "grasps": 3}),
        EpisodeResult(2, 5002, True, 7.0, 7.0, 350, 105, {"kind": "shift", "fired_s": 1.0, "grasps": 1}),
        EpisodeResult(3, 5003, True, 6.0, 6.0, 300, 90, {"kind": "bin", "fired_s": None, "grasps": 1}),
    ]
    p = _report(results).perturbation_summary()
    assert p["kind"] == "mixed" and p["fired"] == 3
    assert p["by_kind"] == {"drop": [1, 2], "shift": [1, 1], "bin": [1, 1]}
    assert p["mean_regrasps"] == pytest.approx((1 + 2 + 0 + 0) / 4)
    assert p["median_recover_s"] == pytest.approx(5.5)             # 9 - 4 and 7 - 1; the failure has none
    line = next(x for x in _report(results).lines() if x.startswith("perturbation"))
    assert "fired in 3/4" in line and "drop 1/2" in line


def test_no_perturbation_line_without_one():
    results = [EpisodeResult(0, 5000, True, 6.0, 6.0, 300, 90)]
    assert not any(x.startswith("perturbation") for x in _report(results, "none").lines())
    assert _report(results, "none").as_dict()["perturbation"]["by_kind"] == {"?": [1, 1]}

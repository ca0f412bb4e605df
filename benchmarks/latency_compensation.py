"""Latency compensation: the target the policy gets, with and without predicting it to the command time.

    .venv/bin/python benchmarks/latency_compensation.py
    .venv/bin/python benchmarks/latency_compensation.py --json benchmarks/results/issue16/latency_compensation.json

A cube moves on the table (base_link, metres) at a constant speed along a random heading,
or slides 5-15 cm in 0.5 s with the minimum-jerk profile of ``sim.perturbations`` (peak
0.28-0.56 m/s). A camera sees it at 15 Hz: detections with the localizer-like noise
sigma = (2, 2, 4) mm and that covariance, into a :class:`~fdl_robot.core.tracking.MultiObjectTracker`
with tracker_node's defaults. The track array of image stamp ``t_img`` reaches the policy
``--track-delay-ms`` later (35 ms: the closed loop's detector, localizer and tracker,
issue 13's breakdown); the policy decides at every 50 Hz tick from the newest tracks it
has, through :class:`~fdl_robot.policy.inputs.PolicyInputs` exactly as policy_node does,
with ``target_prediction`` on and off (the same tracks, side by side).

Reported per scenario: the error |p_input - p_true(t_tick)| of the target at the decision
time (median, p95, mm) with and without prediction, over ``--seeds`` seeds of 6 s each.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from fdl_robot.core.robot import CONTROL_DT_S, JOINT_NAMES
from fdl_robot.core.tracking import MultiObjectTracker, TrackState
from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json
from fdl_robot.policy.inputs import PolicyInputs, PolicyInputsConfig, TrackedObject
from fdl_robot.sim.expert import min_jerk

CAMERA_HZ = 15.0
SIGMA_M = np.array([0.002, 0.002, 0.004])
DURATION_S = 6.0
SCENARIOS = {"static": 0.0, "conveyor 2 cm/s": 0.02, "conveyor 5 cm/s": 0.05, "conveyor 8 cm/s": 0.08,
             "sliding 0.3 m/s": 0.3, "shift 5-15 cm in 0.5 s": None}


def trajectory(speed: float | None, rng: np.random.Generator):
    """p_true(t) (m, base_link) of one run: constant velocity, or a min-jerk shift starting at 2 s."""
    p0 = np.array([0.45, -0.1, 0.02])
    h = rng.uniform(-math.pi, math.pi)
    u = np.array([math.cos(h), math.sin(h), 0.0])
    if speed is not None:
        return lambda t: p0 + speed * t * u
    d, t0, T = rng.uniform(0.05, 0.15), 2.0, 0.5
    return lambda t: p0 + d * min_jerk((t - t0) / T) * u


def run(speed: float | None, seed: int, track_delay_s: float) -> dict[str, np.ndarray]:
    """Target errors (m) at every tick after the track is confirmed, prediction on / off."""
    rng = np.random.default_rng(seed)
    p_true = trajectory(speed, rng)
    tracker = MultiObjectTracker()
    inputs = {on: PolicyInputs(PolicyInputsConfig(target_prediction=on)) for on in (True, False)}
    for x in inputs.values():
        x.add_joint_state(list(JOINT_NAMES), [0.0] * len(JOINT_NAMES), stamp_ns=1, now_s=0.0)
    frames = np.arange(0.0, DURATION_S, 1.0 / CAMERA_HZ)
    arrivals = [(t + track_delay_s, t) for t in frames]
    errors = {True: [], False: []}
    k = 0
    for tick in np.arange(0.0, DURATION_S, CONTROL_DT_S):
        while k < len(arrivals) and arrivals[k][0] <= tick:
            t_img = arrivals[k][1]
            z = p_true(t_img) + rng.normal(0.0, SIGMA_M)
            tracks = tracker.update(z[None], t_img, labels=["red_cube"], covariances=np.diag(SIGMA_M**2))
            msg = [TrackedObject(t.id, int(t.state), "red_cube", t.hits, t.time_since_update_s,
                                 tuple(t.position), tuple(t.velocity), t.state_covariance)
                   for t in tracks if t.state == TrackState.CONFIRMED]
            for x in inputs.values():
                x.add_joint_state(list(JOINT_NAMES), [0.0] * len(JOINT_NAMES), stamp_ns=round(tick * 1e9) + 1,
                                  now_s=tick)
                x.add_tracks(msg, "base_link", None, now_s=tick, stamp_s=t_img)
            k += 1
        for on, x in inputs.items():
            obs = x.step(tick).observation
            if obs is not None and obs.target_p_base_m is not None:
                errors[on].append(np.linalg.norm(obs.target_p_base_m - p_true(tick)))
    return {"on": np.array(errors[True]), "off": np.array(errors[False])}


@exit_on_error
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--track-delay-ms", type=float, default=35.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    check_args(ap, a, {"--json": JSON})
    rows = []
    print("| scenario | error without prediction, median / p95 (mm) | with prediction (mm) |")
    print("|---|---|---|")
    for name, speed in SCENARIOS.items():
        runs = [run(speed, s, a.track_delay_ms * 1e-3) for s in range(a.seeds)]
        row = {"scenario": name}
        for key in ("off", "on"):
            e = 1e3 * np.concatenate([r[key] for r in runs])
            row[key] = {"median_mm": round(float(np.median(e)), 2), "p95_mm": round(float(np.percentile(e, 95)), 2),
                        "n": int(e.size)}
        rows.append(row)
        print(f"| {name} | {row['off']['median_mm']:.1f} / {row['off']['p95_mm']:.1f} | "
              f"{row['on']['median_mm']:.1f} / {row['on']['p95_mm']:.1f} |")
    if a.json:
        write_json(a.json, {"seeds": a.seeds, "track_delay_ms": a.track_delay_ms, "camera_hz": CAMERA_HZ,
                            "sigma_m": SIGMA_M.tolist(), "rows": rows}, "--json", indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

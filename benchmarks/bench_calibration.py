"""Hand-eye calibration in the simulator over several seeds: error against the truth per method.

    python benchmarks/bench_calibration.py --seeds 10 --poses 18
        -> benchmarks/results/issue15/calibration.json, and a markdown table on stdout
    python benchmarks/bench_calibration.py --seeds 100 --seed0 30000 --modes eye-to-hand \
        --keep outputs/calibration/test_seeds --json benchmarks/results/issue15/calibration_test_seeds.json
        -> one extrinsics.yaml per seed, for fdl-robot-eval-detector --extrinsics
           outputs/calibration/test_seeds/eye-to-hand_{seed}/extrinsics.yaml

Each seed is one ``fdl-robot-calibrate --sim`` run (its episode: scene-camera jitter, lights;
its pose plan; its image noise), both modes. Reported: median and max over the seeds of the
selected answer's error, per method the median error, and the nominal pose's error.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from fdl_robot import calibrate
from fdl_robot.perception.handeye import MODES

RESULTS = Path(__file__).resolve().parent / "results" / "issue15" / "calibration.json"


def run(mode: str, seed: int, poses: int, noise: float, out: Path) -> dict:
    d = out / f"{mode}_{seed}"
    assert calibrate.main(["--sim", "--mode", mode, "--seed", str(seed), "--poses", str(poses), "--pixel-noise",
                           str(noise), "--output", str(d), "--quiet"]) == 0
    return json.loads((d / "report.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed0", type=int, default=0)
    p.add_argument("--poses", type=int, default=18)
    p.add_argument("--pixel-noise", type=float, default=2.0)
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--keep", type=Path, default=None, help="keep each run's outputs here (MODE_SEED/)")
    p.add_argument("--json", type=Path, default=RESULTS)
    args = p.parse_args()
    summary = {"seeds": list(range(args.seed0, args.seed0 + args.seeds)), "poses": args.poses,
               "pixel_noise": args.pixel_noise, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            reports = [run(mode, s, args.poses, args.pixel_noise, args.keep or Path(tmp)) for s in summary["seeds"]]
            err = np.array([[r["calibration_error"]["mm"], r["calibration_error"]["deg"]] for r in reports])
            methods = {}
            for row in reports[0]["methods"]:
                name = row["method"]
                e = np.array([[m["error_mm"], m["error_deg"]] for r in reports for m in r["methods"]
                              if m["method"] == name and m.get("error_mm") is not None])
                methods[name] = {"median_mm": round(float(np.median(e[:, 0])), 3),
                                 "max_mm": round(float(np.max(e[:, 0])), 3),
                                 "median_deg": round(float(np.median(e[:, 1])), 4),
                                 "max_deg": round(float(np.max(e[:, 1])), 4)}
            summary["modes"][mode] = {
                "selected": sorted({r["selected"] for r in reports}),
                "median_mm": round(float(np.median(err[:, 0])), 3), "max_mm": round(float(np.max(err[:, 0])), 3),
                "median_deg": round(float(np.median(err[:, 1])), 4), "max_deg": round(float(np.max(err[:, 1])), 4),
                "reprojection_rms_px_median": round(float(np.median(
                    [next(m for m in r["methods"] if m["method"] == r["selected"])["reprojection_rms_px"]
                     for r in reports])), 4),
                "per_seed": [{"seed": s, **r["calibration_error"]}
                             for s, r in zip(summary["seeds"], reports, strict=True)],
                "methods": methods}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"| mode | method | median error | max error | ({len(summary['seeds'])} seeds, {args.poses} poses, "
          f"pixel noise {args.pixel_noise:g}) |")
    print("|---|---|---|---|---|")
    for mode, m in summary["modes"].items():
        for name, e in m["methods"].items():
            print(f"| {mode} | {name} | {e['median_mm']:.2f} mm, {e['median_deg']:.3f} deg | "
                  f"{e['max_mm']:.2f} mm, {e['max_deg']:.3f} deg | |")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()

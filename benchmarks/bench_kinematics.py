"""Speed of the kinematics: the URDF model (pinocchio) against the hand-written UR5e DH chain.

    .venv/bin/python benchmarks/bench_kinematics.py                  # prints a table
    .venv/bin/python benchmarks/bench_kinematics.py --batch 50000 --json outputs/bench_kinematics.json

Timed, per call (median of ``--repeats`` blocks, single thread):

* FK of the TCP for one q, and for a batch of ``--batch`` q (the ACT training-time
  feature path, ``processor.tcp_position``: a Python loop over pinocchio calls against
  the DH chain's numpy broadcasting);
* the TCP's geometric Jacobian for one q;
* one IK solve with the expert's settings, warm-started one control step (20 ms at
  0.3 m/s) from the answer, and a cold solve from home to a workspace target, on both
  models through the same DLS code (``core.kinematics.solve_ik``; the DH chain through
  ``DhReference``).

Both models give the same numbers to ~1e-15 (tests/test_robot_model.py); this only
times them. The figures depend on the machine's load (2 shared cores here).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json


def per_call_s(fn, calls: int, repeats: int) -> float:
    """Median over ``repeats`` blocks of the wall time of one call, ``calls`` calls per block."""
    fn()                                                  # warm up (caches, lazy imports)
    blocks = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        blocks.append((time.perf_counter() - t0) / calls)
    return float(np.median(blocks))


@exit_on_error
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=20_000, help="q per batch FK (default 20000)")
    p.add_argument("--calls", type=int, default=300, help="calls per timed block of the single-q rows")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per row (median)")
    p.add_argument("--json", default="", help="also write the rows here")
    args = p.parse_args()
    check_args(p, args, {"--json": JSON})
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from fdl_robot.core import kinematics as kin
    from fdl_robot.core.robot_model import ur5e_gripper
    from fdl_robot.policy.act.processor import tcp_position

    urdf, dh = ur5e_gripper(), kin.DhReference()
    rng = np.random.default_rng(0)
    q = kin.HOME_QPOS_RAD + rng.uniform(-0.3, 0.3, 6)
    Q = rng.uniform(-np.pi, np.pi, (args.batch, 6))
    target, R = np.array([0.5, -0.1, 0.1]), kin.down_rotation(0.3)
    q_goal = kin.solve_ik(target, R, kin.HOME_QPOS_RAD).q_rad
    p_next = target + np.array([0.3 * 0.02, 0.0, 0.0])     # one expert control step further
    expert = dict(position_tolerance_m=2e-4, orientation_tolerance_rad=2e-3, max_iterations=50)
    batch_repeats = max(1, args.repeats // 2)

    rows = []

    def row(what: str, fn_urdf, fn_dh, calls: int, repeats: int, unit_n: int = 1) -> None:
        t_urdf = per_call_s(fn_urdf, calls, repeats) / unit_n
        t_dh = per_call_s(fn_dh, calls, repeats) / unit_n
        rows.append({"what": what, "urdf_us": t_urdf * 1e6, "dh_us": t_dh * 1e6, "dh_over_urdf": t_dh / t_urdf})

    row("FK tcp, one q", lambda: urdf.frame_pose(q, "tcp"), lambda: dh.frame_pose(q, "tcp"),
        args.calls, args.repeats)
    row(f"FK tcp, batch of {args.batch} (per q)", lambda: urdf.frame_pose(Q, "tcp"),
        lambda: dh.frame_pose(Q, "tcp"), 1, batch_repeats, args.batch)
    row(f"ACT features p_tcp, batch of {args.batch} (per q)", lambda: tcp_position(Q),
        lambda: kin.tcp_position(Q), 1, batch_repeats, args.batch)
    row("Jacobian tcp, one q", lambda: urdf.jacobian(q, "tcp"), lambda: dh.jacobian(q, "tcp"),
        args.calls, args.repeats)
    row("IK, warm start (one control step)",
        lambda: kin.solve_ik(p_next, R, q_goal, model=urdf, **expert),
        lambda: kin.solve_ik(p_next, R, q_goal, model=dh, **expert), args.calls // 3, args.repeats)
    row("IK, cold from home", lambda: kin.solve_ik(target, R, kin.HOME_QPOS_RAD, model=urdf),
        lambda: kin.solve_ik(target, R, kin.HOME_QPOS_RAD, model=dh), max(1, args.calls // 30), args.repeats)
    its = [kin.solve_ik(p_next, R, q_goal, model=urdf, **expert).iterations,
           kin.solve_ik(target, R, kin.HOME_QPOS_RAD, model=urdf).iterations]

    print(f"{'':44s} {'URDF (pinocchio)':>17s} {'DH (numpy)':>12s} {'DH / URDF':>10s}")
    for r in rows:
        print(f"{r['what']:44s} {r['urdf_us']:14.2f} us {r['dh_us']:9.2f} us {r['dh_over_urdf']:9.2f}x")
    print(f"(IK iterations: warm start {its[0]}, cold {its[1]}; load average {os.getloadavg()[0]:.2f})")
    if args.json:
        write_json(args.json, {"rows": rows, "ik_iterations": {"warm": its[0], "cold": its[1]},
                               "batch": args.batch, "loadavg_1min": os.getloadavg()[0]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""CPU cost of one callback under each rclpy executor (what a node pays per message).

    .venv/bin/python benchmarks/bench_executors.py

A subscriber process spins one node with a subscription whose callback does nothing,
under ``SingleThreadedExecutor``, ``MultiThreadedExecutor`` (4 threads, what
``fdl_robot.ros.runner.spin_nodes`` uses) or ``rclpy.experimental.EventsExecutor``; this
process publishes small messages (std_msgs/Header) at ``--rate`` Hz for ``--seconds``.
Reported: the subscriber's CPU time per received message (user + system, minus its idle
CPU measured with no messages), and how many arrived. Same machine, same messages: the
difference is the executor.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json

SUBSCRIBER = r'''
import os, sys, time, threading, resource
import rclpy
from std_msgs.msg import Header
kind, seconds, ns = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rclpy.init()
node = rclpy.create_node("exec_sub", namespace=ns)
count = [0]
node.create_subscription(Header, "exec_bench", lambda m: count.__setitem__(0, count[0] + 1), 100)
if kind == "single":
    from rclpy.executors import SingleThreadedExecutor as E; ex = E()
elif kind == "multi":
    from rclpy.executors import MultiThreadedExecutor as E; ex = E(num_threads=4)
else:
    from rclpy.experimental import EventsExecutor as E; ex = E()
ex.add_node(node)
threading.Thread(target=ex.spin, daemon=True).start()
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
time.sleep(1.0)
c0 = cpu(); time.sleep(2.0); idle = (cpu() - c0) / 2.0          # CPU/s with no messages
print("READY", flush=True)
sys.stdin.readline()                                               # publishing starts
c0, n0, t0 = cpu(), count[0], time.monotonic()
sys.stdin.readline()                                               # publishing ended
time.sleep(0.3)
dt = time.monotonic() - t0
print(f"RESULT {cpu() - c0} {idle} {dt} {count[0] - n0}", flush=True)
os._exit(0)
'''


def run(kind: str, rate: float, seconds: float) -> dict:
    import rclpy
    from std_msgs.msg import Header

    ns = f"/exec_bench_{os.getpid()}_{kind}"
    proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, kind, str(seconds), ns],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("exec_pub", namespace=ns, context=context)
    pub = node.create_publisher(Header, "exec_bench", 100)
    try:
        assert proc.stdout.readline().strip() == "READY"
        end = time.monotonic() + 10
        while pub.get_subscription_count() < 1 and time.monotonic() < end:
            time.sleep(0.05)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        period, sent = 1.0 / rate, 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            pub.publish(Header(frame_id="x"))
            sent += 1
            time.sleep(max(0.0, t0 + sent * period - time.monotonic()))
        proc.stdin.write("done\n")
        proc.stdin.flush()
        _, cpu_s, idle_per_s, dt, received = proc.stdout.readline().split()
        cpu_s, idle_per_s, dt, received = float(cpu_s), float(idle_per_s), float(dt), int(received)
    finally:
        proc.kill()
        node.destroy_node()
        rclpy.shutdown(context=context)
    busy = cpu_s - idle_per_s * dt
    return {"executor": kind, "sent": sent, "received": received,
            "cpu_ms_per_message": 1e3 * busy / max(received, 1),
            "idle_cpu_percent": 100 * idle_per_s, "cpu_percent_at_rate": 100 * cpu_s / dt}


@exit_on_error
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--executors", nargs="+", default=["single", "multi"],
                    help="single, multi, events (rclpy.experimental.EventsExecutor: spun in a "
                         "thread here it busy-loops and delivers nothing with rclpy 9.1.2)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "outputs" / "bench"
                    / "executors.json")
    args = ap.parse_args(argv)
    check_args(ap, args, {"--out": JSON})
    rows = [run(k, args.rate, args.seconds) for k in args.executors]
    print(f"| executor | messages received / sent at {args.rate:g} Hz | CPU per message (ms) | "
          "idle CPU (%) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['executor']} | {r['received']} / {r['sent']} | {r['cpu_ms_per_message']:.3f} | "
              f"{r['idle_cpu_percent']:.1f} |")
    write_json(args.out, {"rate_hz": args.rate, "seconds": args.seconds, "rows": rows,
                          "loadavg": os.getloadavg()}, "--out", indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

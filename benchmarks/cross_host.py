#!/usr/bin/env python3
"""The closed loop across two hosts: camera and perception on the robot's PC, the policy on a workstation.

    sudo .venv/bin/python benchmarks/cross_host.py                  # plain, 1 %, 5 % loss; 5 episodes each
    sudo .venv/bin/python benchmarks/cross_host.py --loss 0 --episodes 2 --out /tmp/x.json
    sudo .venv/bin/python benchmarks/cross_host.py --local          # also the same graph on one host
    sudo .venv/bin/python benchmarks/cross_host.py --local --loss   # only that

What runs
---------
``scripts/netns.sh up`` makes the two "hosts": network namespaces ``fdl_robot_pc``
(10.77.0.1) and ``fdl_workstation`` (10.77.0.2) joined by a veth pair, multicast stopped at
the link as a router between two subnets would. For each loss level (``netns.sh loss P``:
an nftables rule on the workstation's side drops P % of the IPv4 packets each way, measured
with 2000 UDP datagrams each way before the run) this script starts itself again inside
``fdl_robot_pc`` and runs :class:`fdl_robot.eval.closed_loop.ClosedLoopEvaluator` with a
process per node at real time (wall clock), the evaluator's episode monitor in its own
process on the robot's PC:

    fdl_robot_pc:    sim_node, detector_node, localizer_node, tracker_node, episode_monitor
    fdl_workstation: policy_node   (launcher prefix ``ip netns exec fdl_workstation``)

Discovery is configured the documented ROS 2 way for hosts that multicast does not reach:
``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` and ``ROS_STATIC_PEERS=<the other host's address>``
on each side. The robot's PC keeps the project's Fast DDS profile (shared memory among its
own processes, which carry the images); policy_node runs with the UDP-only profile
(``fdl_robot/ros/fastdds_udp_only.xml``), so nothing it exchanges can go through the
``/dev/shm`` the namespaces share (``fdl_robot/test/test_cross_host.py`` checks that
traffic between the namespaces stops when the link drops everything).

What is measured
----------------
* success, end-to-end latency (image stamp -> command received on the robot's PC), command
  intervals, missed ticks, real-time factor and CPU per process: the evaluator's report;
* per topic that crosses (found from the graph: policy_node's subscriptions that a robot-PC
  node publishes and its publications that a robot-PC node subscribes to): messages per
  second and serialized (CDR) bytes per second, counted by a probe on the robot's PC with
  raw subscriptions (local delivery: the probe adds nothing to the link), and for topics
  from the workstation the one-way delay source timestamp -> receipt on the robot's PC
  (the namespaces share one clock);
* the link: bytes and packets per second each way from veth0's counters on the robot's
  PC (Ethernet frames: payload plus RTPS, UDP, IP and Ethernet headers, discovery,
  heartbeats, acknowledgements and retransmissions).
Rates are averaged over the window from the first to the last command the probe saw.

Needs root (namespaces). CPU heavy: run nothing else meanwhile.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine_info  # noqa: E402
from fdl_robot.outputs import JSON, check_args, exit_on_error, write_json  # noqa: E402

NETNS = REPO / "scripts" / "netns.sh"
UDP_ONLY_PROFILE = REPO / "fdl_robot" / "fdl_robot" / "ros" / "fastdds_udp_only.xml"
OUT = REPO / "benchmarks" / "results" / "issue13" / "cross_host.json"
LOG_DIR = REPO / "outputs" / "cross_host"
ROBOT_NS, WORKSTATION_NS, SUBNET = "fdl_robot_pc", "fdl_workstation", "10.77.0"
ROBOT_IP, WORKSTATION_IP = f"{SUBNET}.1", f"{SUBNET}.2"
DEV = "veth0"
#: The nodes on the workstation; every other node of the sim graph stays on the robot's PC.
WORKSTATION_NODES = ("policy_node",)
TO_WORKSTATION, TO_ROBOT = "robot_pc -> workstation", "workstation -> robot_pc"
DIRECTIONS = {"to_workstation": TO_WORKSTATION, "to_robot": TO_ROBOT}
SAMPLE_S = 0.5


def discovery_env(peer_ip: str) -> dict[str, str]:
    """How a process on one host finds the other: SUBNET discovery plus the peer's address."""
    return {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET",
            "ROS_STATIC_PEERS": peer_ip}


# --- measurement on the robot's PC ---------------------------------------------------------------

class LinkMeter:
    """veth0's counters on this host, sampled every SAMPLE_S (tx = to the peer, rx = from it)."""

    FIELDS = ("tx_bytes", "tx_packets", "rx_bytes", "rx_packets")

    def __init__(self, dev: str = DEV):
        self.dir = Path("/sys/class/net") / dev / "statistics"
        if not self.dir.is_dir():
            raise RuntimeError(f"no {dev} here: run inside the robot PC's namespace")
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="link_meter", daemon=True)

    def read(self) -> dict:
        return {f: int((self.dir / f).read_text()) for f in self.FIELDS}

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.read()))
            self._stop.wait(SAMPLE_S)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self.read()))

    def rates(self, t0: float, t1: float) -> dict:
        """Bytes and packets per second each way between the samples nearest t0 and t1."""
        times = np.array([t for t, _ in self.samples])
        a, b = self.samples[int(np.argmin(abs(times - t0)))], self.samples[int(np.argmin(abs(times - t1)))]
        dt = b[0] - a[0]
        if dt <= 0:
            return {}
        rate = {f: (b[1][f] - a[1][f]) / dt for f in self.FIELDS}
        return {TO_WORKSTATION: {"bytes_per_s": round(rate["tx_bytes"]), "packets_per_s": round(rate["tx_packets"], 1)},
                TO_ROBOT: {"bytes_per_s": round(rate["rx_bytes"]), "packets_per_s": round(rate["rx_packets"], 1)},
                "window_s": round(dt, 1)}


def _message_class(type_name: str):
    """'pkg/msg/Type' -> the Python message class."""
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class TopicProbe:
    """Raw subscriptions to the topics that cross in one ``direction``, on the publishing host.

    Every 2 s it looks at the graph around the workstation's nodes. Towards the workstation
    (a probe on the robot's PC): topics a workstation node subscribes to and a robot-PC node
    publishes; towards the robot's PC (a probe on the workstation): topics a workstation node
    publishes and a robot-PC node subscribes to. Subscribing on the publisher's host, the
    probe receives locally and adds no copy to the link. Each message is counted with its
    serialized size; ``copies`` is the number of participants (processes) on the other host
    that subscribe, each of which gets its own copy over the link.
    """

    NAME = "cross_host_probe"

    def __init__(self, direction: str, workstation_nodes=WORKSTATION_NODES):
        if direction not in (TO_WORKSTATION, TO_ROBOT):
            raise ValueError(f"direction must be '{TO_WORKSTATION}' or '{TO_ROBOT}'")
        self.direction, self.workstation_nodes = direction, set(workstation_nodes)
        self.lock = threading.Lock()
        self.topics: dict[str, dict] = {}       # topic -> {direction, type, copies, rx: [(t, bytes)]}

    def start(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(self.NAME, context=self.context)
        self.node.create_timer(2.0, self.scan)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, name="topic_probe", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def _on_workstation(self, info) -> bool:
        return info.node_name in self.workstation_nodes

    def _on_robot(self, info) -> bool:
        return not self._on_workstation(info) and info.node_name != self.NAME

    def scan(self) -> None:
        to_ws = self.direction == TO_WORKSTATION
        here, there = (self._on_robot, self._on_workstation) if to_ws else (self._on_workstation, self._on_robot)
        for name in sorted(self.workstation_nodes):
            try:
                endpoints = (self.node.get_subscriber_names_and_types_by_node(name, "/") if to_ws
                             else self.node.get_publisher_names_and_types_by_node(name, "/"))
            except Exception:  # noqa: BLE001 - the node is not (yet) in the graph
                continue
            for topic, types in endpoints:
                writers = [i for i in self.node.get_publishers_info_by_topic(topic) if here(i)]
                readers = [i for i in self.node.get_subscriptions_info_by_topic(topic) if there(i)]
                if not (writers and readers):
                    continue
                copies = len({bytes(i.endpoint_gid[:12]) for i in readers})    # GUID prefix: one per participant
                if topic not in self.topics:
                    self._subscribe(topic, types[0], writers[0].qos_profile)
                with self.lock:
                    self.topics[topic]["copies"] = max(copies, self.topics[topic]["copies"])

    def _subscribe(self, topic: str, type_name: str, publisher_qos) -> None:
        from rclpy.qos import QoSProfile

        qos = QoSProfile(depth=100, reliability=publisher_qos.reliability, durability=publisher_qos.durability)
        entry = {"direction": self.direction, "type": type_name, "copies": 0, "rx": []}

        def on_message(data: bytes) -> None:
            with self.lock:
                entry["rx"].append((time.monotonic(), len(data)))

        with self.lock:
            self.topics[topic] = entry
        self.node.create_subscription(_message_class(type_name), topic, on_message, qos, raw=True)

    def snapshot(self) -> dict:
        with self.lock:
            return {topic: {**e, "rx": list(e["rx"])} for topic, e in self.topics.items()}


def probe_main(args) -> int:
    """A probe process (``--probe``): count until SIGINT / SIGTERM, then write the counts as JSON.

    Time stamps are CLOCK_MONOTONIC, which network namespaces share with the worker.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    probe = TopicProbe(DIRECTIONS[args.probe])
    probe.start()
    stop.wait()
    probe.stop()
    Path(args.json).write_text(json.dumps(probe.snapshot()))
    return 0


def command_window(topics: dict) -> tuple[float, float] | None:
    """(first, last) time of a message towards the robot's PC: the loop ran between them."""
    times = [t for e in topics.values() if e["direction"] == TO_ROBOT for t, _ in e["rx"]]
    return (min(times), max(times)) if len(times) > 1 else None


def topic_rates(topics: dict, t0: float, t1: float) -> dict:
    """Messages and serialized bytes per second of each topic between t0 and t1."""
    out = {}
    for topic, e in sorted(topics.items()):
        sizes = np.array([n for t, n in e["rx"] if t0 <= t <= t1], dtype=float)
        rate = float(sizes.sum()) / (t1 - t0)
        out[topic] = {"direction": e["direction"], "type": e["type"], "messages": int(sizes.size),
                      "messages_per_s": round(sizes.size / (t1 - t0), 2), "bytes_per_s": round(rate),
                      "mean_message_bytes": round(float(sizes.mean()), 1) if sizes.size else None,
                      "copies": e["copies"], "bytes_per_s_over_link": round(rate * e["copies"])}
    return out


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def worker(args) -> int:
    """Inside the robot PC's namespace: the closed loop with policy_node on the workstation."""
    signal.signal(signal.SIGTERM, _interrupt)
    local = args.local
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.update(discovery_env(WORKSTATION_IP))
    import fdl_robot.ros  # noqa: F401 - selects the project's profile for the robot PC's processes
    from fdl_robot.eval.closed_loop import CLOSED_LOOP_EVAL, ClosedLoopEvaluator, GraphOptions, NodePolicy

    workstation_env = {} if local else {**discovery_env(ROBOT_IP),
                                        "FASTDDS_DEFAULT_PROFILES_FILE": str(UDP_ONLY_PROFILE)}
    prefix = [] if local else ["ip", "netns", "exec", args.workstation_ns]
    options = GraphOptions(runner="processes", real_time_factor=1.0, log_dir=Path(args.log_dir),
                           prefix={n: prefix for n in WORKSTATION_NODES} if prefix else {},
                           env={n: dict(workstation_env) for n in WORKSTATION_NODES} if workstation_env else {})
    config = dataclasses.replace(CLOSED_LOOP_EVAL, episodes=args.episodes, seed0=args.seed0)
    link, probe = LinkMeter(), TopicProbe(TO_WORKSTATION)
    remote_json = Path(args.json).with_suffix(".workstation_probe.json")
    remote = subprocess.Popen([*prefix, sys.executable, str(Path(__file__).resolve()), "--probe", "to_robot",
                               "--json", str(remote_json)], env={**os.environ, **workstation_env})
    link.start()
    probe.start()
    try:
        report = ClosedLoopEvaluator(config, graph=options, progress=lambda s: print(s, flush=True)).run(NodePolicy())
    finally:
        probe.stop()
        link.stop()
        remote.send_signal(signal.SIGINT)
        remote.wait(timeout=30)
    topics = {**probe.snapshot(), **json.loads(remote_json.read_text())}
    remote_json.unlink()
    window = command_window(topics)
    result = {
        "placement": ({"one host": "every node"} if local else
                      {args.robot_ns: "sim_node detector_node localizer_node tracker_node episode_monitor",
                       args.workstation_ns: " ".join(WORKSTATION_NODES)}),
        "discovery": {"robot_pc": discovery_env(WORKSTATION_IP), "workstation": workstation_env},
        "success": report.summary.successes, "episodes": report.summary.episodes,
        "latency_ms": report.timing["latency_ms"], "real_time_factor": report.real_time_factor,
        "window_s": round(window[1] - window[0], 1) if window else None,
        "topics": topic_rates(topics, *window) if window else {},
        "link": link.rates(*window) if window else {},
        "closed_loop": report.as_dict(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2))
    print("\n".join(report.lines()), flush=True)
    return 0


# --- the two hosts, from the root namespace ---------------------------------------------------------

def netns(*args: str, env: dict) -> str:
    out = subprocess.run(["bash", str(NETNS), *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"netns.sh {' '.join(args)}: {out.stderr.strip()}")
    print(out.stdout, end="", flush=True)
    return out.stdout


def measured_loss(text: str, robot_ns: str) -> dict:
    """netns.sh's 'measured loss A -> B: x %' lines -> {direction: percent}."""
    return {TO_WORKSTATION if a == robot_ns else TO_ROBOT: float(pct)
            for a, _b, pct in re.findall(r"measured loss (\S+) -> (\S+): ([\d.]+) %", text)}


class OtherLoad:
    """Processes of this project running beside the benchmark (in the root namespace: not ours).

    The closed loop at real time is timing sensitive on a small machine; a run that had
    company is marked so in the JSON instead of being silently slower.
    """

    WORDS = ("fdl_robot", "fdl-robot", "pytest", "benchmarks/")

    def __init__(self):
        self.own_net = os.readlink("/proc/self/ns/net")
        self.seen: dict[str, float] = {}           # command line -> CPU seconds seen (max)
        self.load: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="other_load", daemon=True)

    def _loop(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            self.load.append(os.getloadavg()[0])
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if int(pid) == os.getpid() or os.readlink(f"/proc/{pid}/ns/net") != self.own_net:
                        continue
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if not any(w in cmd for w in self.WORDS) or "cross_host.py" in cmd:
                        continue
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cpu_s = (int(fields[11]) + int(fields[12])) / tick        # utime + stime
                except (OSError, IndexError, ValueError):
                    continue
                key = f"{pid} {cmd[:120].strip()}"
                self.seen[key] = max(cpu_s, self.seen.get(key, 0.0))
            self._stop.wait(2.0)

    def __enter__(self) -> OtherLoad:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"other_project_processes": sorted(self.seen), "loadavg_1min_max": max(self.load, default=None),
                "loadavg_1min_mean": round(float(np.mean(self.load)), 2) if self.load else None}


def run_level(loss: float | None, args, env: dict) -> dict:
    """One run of the worker: at ``loss`` % across the hosts, or on one host (None)."""
    label = "one_host" if loss is None else f"loss_{loss:g}"
    link = {}
    if loss is not None:
        netns("loss", f"{loss:g}", "--no-measure", env=env)
        link = measured_loss(netns("measure", env=env), args.robot_ns)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        tmp = f.name
    cmd = ["ip", "netns", "exec", args.robot_ns, sys.executable, str(Path(__file__).resolve()), "--worker",
           "--episodes", str(args.episodes), "--seed0", str(args.seed0), "--json", tmp,
           "--robot-ns", args.robot_ns, "--workstation-ns", args.workstation_ns, "--log-dir", str(LOG_DIR / label)]
    if loss is None:
        cmd.append("--local")
    print(f"[cross_host] {label}: {shlex.join(cmd)}", flush=True)
    t0 = time.monotonic()
    with OtherLoad() as other:
        proc = subprocess.run(cmd)
    try:
        if proc.returncode != 0:
            raise RuntimeError(f"{label}: the closed loop exited with {proc.returncode} (logs in {LOG_DIR / label})")
        result = json.loads(Path(tmp).read_text())
    finally:
        os.unlink(tmp)
    if other.seen:
        print(f"[cross_host] {label}: WARNING other processes of the project ran meanwhile: {sorted(other.seen)}")
    return {"loss_percent": loss, "link_loss_measured_percent": link, "wall_s": round(time.monotonic() - t0, 1),
            "company": other.summary(), **result}


def _table(levels: dict) -> str:
    rows = ["| run | success | latency p50 / p99 ms | RTF | topic | direction | msg/s | bytes/s (payload) | copies |",
            "|---|---|---|---|---|---|---|---|---|"]
    for label, r in levels.items():
        lat = r["latency_ms"]
        head = (f"| {label} | {r['success']}/{r['episodes']} | {lat.get('p50', float('nan')):.1f} / "
                f"{lat.get('p99', float('nan')):.1f} | {r['real_time_factor']:.2f} ")
        for i, (topic, t) in enumerate(r["topics"].items()):
            rows.append((head if i == 0 else "| | | | ") + f"| `{topic}` | {t['direction']} | "
                        f"{t['messages_per_s']:.1f} | {t['bytes_per_s']} | {t['copies']} |")
        for direction in (TO_WORKSTATION, TO_ROBOT):
            if direction in r["link"]:
                w = r["link"][direction]
                rows.append(f"| | | | | veth0, all frames | {direction} | {w['packets_per_s']:.0f} pkt/s | "
                            f"{w['bytes_per_s']} | |")
    return "\n".join(rows)


@exit_on_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loss", type=float, nargs="*", default=[0.0, 1.0, 5.0],
                   help="packet loss levels, %% each way (none: with --local, only the one-host run)")
    p.add_argument("--local", action="store_true", help="also run the same graph on one host (reference)")
    p.add_argument("--episodes", type=int, default=5, help="episodes per level")
    p.add_argument("--seed0", type=int, default=5000, help="seeds seed0 .. seed0 + N - 1 at every level")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--keep", action="store_true", help="leave the namespaces up afterwards")
    p.add_argument("--robot-ns", default=ROBOT_NS)
    p.add_argument("--workstation-ns", default=WORKSTATION_NS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--probe", choices=sorted(DIRECTIONS), default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default="", help=argparse.SUPPRESS)
    p.add_argument("--log-dir", default=str(LOG_DIR), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        return probe_main(args)
    if args.worker:
        return worker(args)
    if os.geteuid() != 0:
        p.error("needs root: network namespaces (run it with sudo)")
    check_args(p, args, {"--out": JSON})
    env = {**os.environ, "FDL_NETNS_ROBOT": args.robot_ns, "FDL_NETNS_WORKSTATION": args.workstation_ns,
           "FDL_NETNS_SUBNET": SUBNET, "FDL_NETNS_MULTICAST": "router"}
    netns("up", env=env)
    levels: dict[str, dict] = {}
    try:
        for loss in ([None] if args.local else []) + list(args.loss):
            label = "one_host" if loss is None else f"loss_{loss:g}"
            levels[label] = run_level(loss, args, env)
            write_json(args.out, {"machine": machine_info(), "episodes_per_level": args.episodes,
                                  "seed0": args.seed0, "levels": levels}, "--out")
    finally:
        netns("loss", "0", env=env)
        if not args.keep:
            netns("down", env=env)
    print(_table(levels))
    print(f"[cross_host] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

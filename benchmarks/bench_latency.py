#!/usr/bin/env python3
"""Latency of the whole graph, per stage and end to end, at camera rates of 15 and 30 Hz.

    .venv/bin/python benchmarks/bench_latency.py       # shipped YOLO and ACT, both modes, 15 and 30 Hz
    .venv/bin/python benchmarks/bench_latency.py --modes one-process --rates 15 --policy scripted
    .venv/bin/python benchmarks/bench_latency.py --backend color   # no neural detector

What runs
---------
* Frames: one scripted-expert pick-and-place episode of the MuJoCo cell, rendered once at
  640x480 (colour + aligned 16UC1 depth, cached in ``outputs/bench/``), so the renderer is
  not measured. A camera stand-in in this process publishes them like camera_node
  (``camera/color/image_raw``, aligned depth, camera_info; sensor QoS) at the camera rate,
  with header stamp = wall time at publishing, and ``joint_states`` at 50 Hz.
* The graph: detector_node -> localizer_node -> tracker_node -> policy_node, with the
  generated parameters YAML plus the benchmark's overrides (backend, model, image size,
  policy; extrinsics = the cell's calibrated camera), started as a separate process exactly
  as the README runs it (``python -m fdl_robot.ros.runner run --graph perception``:
  one process, one SingleThreadedExecutor: the nodes' callbacks run in turn), and/or as one
  process per node (``--modes multi-process``, what ``ros2 launch`` does).

What is measured (from outside the graph)
-----------------------------------------
Every message carries the source image stamp. This process subscribes to every stage's
output with ``MessageInfo`` and takes the DDS *source timestamp* (the wall time at which
the stage published), so ``stage latency = publish time of the stage's output - image
stamp`` does not include the probe's own delivery. The JointTrajectory of a frame is the
first command whose header stamp is that frame's stamp (policy_node stamps commands with
the source image stamp of the tracks it used; it runs on a 50 Hz timer, so the command
stage includes waiting for the next control tick, dt/2 = 10 ms on average).

Compute per stage is measured separately, before the graph starts, by calling each node's
callback directly (``DetectorNode.on_image``, ``LocalizerNode.on_input``,
``TrackerNode.on_objects``, ``PolicyNode.on_tracks + on_timer``) in this process on the
same frames: message -> numpy conversion, library call, message building and publishing
(serialisation) included; deserialisation by the executor is not. Then per stage
``transport + queueing = stage increment - compute``; it contains DDS transport,
(de)serialisation, executor scheduling and, in one process, waiting for the GIL.

Drops: frames published vs Detection2DArray, Object3DArray, TrackArray and
JointTrajectory messages with that frame's stamp. A frame can only yield a stamped
command if its tracks hold a target (a CONFIRMED or recently LOST track of the target
class; the first frames of a track are tentative), so commands are counted against those.

Output: a markdown table on stdout, JSON (``--out``) and a PNG of histograms (``--png``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (OUT_DIR, REPO, FrameSource, Graph, load_frames,  # noqa: E402
                     machine_info, percentiles, write_config)

from fdl_robot.core.robot import CONTROL_DT_S  # noqa: E402
from fdl_robot.outputs import FIGURE, JSON, check_args, exit_on_error, write_figure, write_json  # noqa: E402
from fdl_robot.ros.parameters import (DETECTIONS_TOPIC, OBJECTS_TOPIC, TRACKS_TOPIC,  # noqa: E402
                                      TRAJECTORY_TOPIC)

STAGES = ["detections", "objects", "tracks", "command"]
STAGE_TOPIC = {"detections": DETECTIONS_TOPIC, "objects": OBJECTS_TOPIC, "tracks": TRACKS_TOPIC,
               "command": TRAJECTORY_TOPIC}
STAGE_NODE = {"detections": "detector_node", "objects": "localizer_node",
              "tracks": "tracker_node", "command": "policy_node"}
SEED_BUDGET_MS = {  # seed section 29.5, per frame
    "camera capture": 5, "detection (YOLOv8s)": 15, "3D localization": 2,
    "action generation (ACT)": 20, "IK + trajectory planning": 10,
    "robot execution (sending command)": 5}
TARGET_P50_MS, TARGET_P99_MS = 50.0, 80.0


class _Capture:
    """Stands in for a node's publisher: keeps what is published, then publishes it."""

    def __init__(self, publisher):
        self.publisher, self.last = publisher, None

    def publish(self, msg):
        self.last = msg
        self.publisher.publish(msg)

    def __getattr__(self, name):
        return getattr(self.publisher, name)


# --- compute: node callbacks called directly --------------------------------------------------

def measure_compute(frames, config: Path, n_frames: int, rate_hz: float = 15.0) -> dict:
    """Callback time of every node on ``n_frames`` frames, chained like the graph (ms)."""
    import rclpy
    from rclpy.serialization import deserialize_message, serialize_message

    from fdl_robot.ros.conversions import ns_to_stamp
    from fdl_robot.ros.detector_node import DetectorNode
    from fdl_robot.ros.localizer_node import LocalizerNode
    from fdl_robot.ros.policy_node import PolicyNode
    from fdl_robot.ros.tracker_node import TrackerNode

    context = rclpy.Context()
    rclpy.init(context=context)
    ns = f"/fdl_bench_compute_{os.getpid()}"
    args = ["--ros-args", "--params-file", str(config)]
    nodes = []
    try:
        det = DetectorNode(context=context, cli_args=args, namespace=ns)
        loc = LocalizerNode(context=context, cli_args=args, namespace=ns)
        trk = TrackerNode(context=context, cli_args=args, namespace=ns)
        pol = PolicyNode(context=context, cli_args=args, namespace=ns)
        nodes = [det, loc, trk, pol]
        for node in (det, loc, trk, pol):
            node.pub = _Capture(node.pub)
        pol.timer.cancel()                      # on_timer is called by hand below
        # a publisher-side node: the stand-in's messages (stamps set per frame)
        src_node = rclpy.create_node("bench_compute_source", context=context, namespace=ns)
        nodes.append(src_node)
        src = FrameSource(src_node, frames, rate_hz)
        times = {k: [] for k in ("detector_node", "localizer_node", "tracker_node", "policy_node",
                                 "policy_node.on_timer")}
        counts = {"detections": [], "objects": [], "tracks": [], "targets": 0}
        t0_ns, period_ns = time.time_ns(), round(1e9 / rate_hz)
        warm = 5
        for k in range(n_frames + warm):
            i = k % len(frames)
            stamp = ns_to_stamp(t0_ns + k * period_ns)
            color, depth, info = src.color_msgs[i], src.depth_msgs[i], src.info_msg
            for m in (color, depth, info):
                m.header.stamp = stamp
            loc.on_camera_info(info)
            src.joint_msg.header.stamp = pol.get_clock().now().to_msg()
            src.joint_msg.position = [float(v) for v in frames.joints[i]]
            pol.on_joint_state(src.joint_msg)

            t = time.perf_counter()
            det.on_image(color)
            t_det = time.perf_counter() - t
            loc.on_input(1, depth)
            t = time.perf_counter()
            loc.on_input(0, det.pub.last)
            t_loc = time.perf_counter() - t
            t = time.perf_counter()
            trk.on_objects(loc.pub.last)
            t_trk = time.perf_counter() - t
            t = time.perf_counter()
            pol.on_tracks(trk.pub.last)
            t_pol_in = time.perf_counter() - t
            t = time.perf_counter()
            pol.on_timer()
            t_pol = time.perf_counter() - t
            if k < warm:
                continue
            times["detector_node"].append(t_det * 1e3)
            times["localizer_node"].append(t_loc * 1e3)
            times["tracker_node"].append(t_trk * 1e3)
            times["policy_node"].append((t_pol_in + t_pol) * 1e3)
            times["policy_node.on_timer"].append(t_pol * 1e3)
            counts["detections"].append(len(det.pub.last.detections))
            counts["objects"].append(len(loc.pub.last.objects))
            counts["tracks"].append(len(trk.pub.last.tracks))
            counts["targets"] += pol.target is not None

        # (de)serialisation of one frame's messages: part of "transport" in the graph
        ser = {}
        for name, msg in (("color image", src.color_msgs[0]), ("depth image", src.depth_msgs[0]),
                          ("Detection2DArray", det.pub.last), ("Object3DArray", loc.pub.last),
                          ("TrackArray", trk.pub.last), ("JointTrajectory", pol.pub.last)):
            if msg is None:
                continue
            samples = []
            for _ in range(20):
                t = time.perf_counter()
                blob = serialize_message(msg)
                deserialize_message(blob, type(msg))
                samples.append((time.perf_counter() - t) * 1e3)
            ser[name] = {"bytes": len(blob), "ms_median": float(np.median(samples))}
        failures = {n.get_name(): dict(n.counters) for n in (det, loc, trk, pol)}
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
    return {"n_frames": n_frames, "ms": {k: percentiles(v) for k, v in times.items()},
            "per_frame": {"detections": float(np.mean(counts["detections"])),
                          "objects": float(np.mean(counts["objects"])),
                          "tracks": float(np.mean(counts["tracks"])),
                          "frames_with_target": counts["targets"]},
            "serialize_deserialize": ser, "node_counters": failures}


# --- one run: a mode and a camera rate ------------------------------------------------------------

class _Probe:
    """The benchmark's node: the frame source, and a subscriber to every stage's output.

    ``rec[stage][stamp_ns] = (source ts, received ts)`` (ns) of the first message of that
    stage carrying the image stamp; ``has_target[stamp_ns]``: that frame's tracks hold a
    target; ``command_log``: (publish time, header stamp) of every command that is not a hold.
    """

    def __init__(self, context, ns: str, frames, rate_hz: float, target_class: str):
        """Create the node, its executor, the frame source and the subscriptions."""
        import rclpy
        from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray, TrackArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from trajectory_msgs.msg import JointTrajectory

        from fdl_robot.policy.inputs import select_target
        from fdl_robot.ros.conversions import stamp_to_ns

        self._select_target, self._stamp_to_ns = select_target, stamp_to_ns
        self.ns, self.target_class = ns, target_class
        self.node = rclpy.create_node("bench_probe", context=context, namespace=ns)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.source = FrameSource(self.node, frames, rate_hz)
        self.rec = {s: {} for s in STAGES}
        self.n_commands = {"all": 0, "holds": 0}
        self.has_target: dict[int, bool] = {}
        self.command_log: list[tuple[int, int]] = []
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        for stage, msg_type in (("detections", Detection2DArray), ("objects", Object3DArray),
                                ("tracks", TrackArray)):
            self.node.create_subscription(msg_type, STAGE_TOPIC[stage], self._recorder(stage), reliable)
        self.node.create_subscription(JointTrajectory, STAGE_TOPIC["command"], self._on_command, reliable)

    def _recorder(self, stage: str):
        """Callback keeping the DDS timestamps of stage ``stage``'s first message per image stamp."""
        def cb(msg, info):
            stamp = self._stamp_to_ns(msg.header.stamp)
            self.rec[stage].setdefault(stamp, (info["source_timestamp"], info["received_timestamp"]))
            if stage == "tracks":
                self.has_target[stamp] = self._select_target(msg.tracks, self.target_class, 0.3) is not None
        return cb

    def _on_command(self, msg, info) -> None:
        """Count a hold, or log and record a command by its header stamp."""
        if len(msg.points) == 1 and list(msg.points[0].velocities) == [0.0] * len(msg.joint_names):
            self.n_commands["holds"] += 1
            return
        stamp = self._stamp_to_ns(msg.header.stamp)
        self.n_commands["all"] += 1
        self.command_log.append((info["source_timestamp"], stamp))
        self.rec["command"].setdefault(stamp, (info["source_timestamp"], info["received_timestamp"]))

    def spin(self, seconds: float, until=None) -> bool:
        """Spin for ``seconds``, or until ``until()`` is true (then True)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return False

    def graph_ready(self) -> bool:
        """The graph subscribes to the frames and publishes every stage's output."""
        return self.source.subscribers_ready() and all(
            self.node.count_publishers(f"{self.ns}/{t}") >= 1 for t in STAGE_TOPIC.values())

    def chain_works(self) -> bool:
        """Some published frame got a command of its own (the chain works end to end)."""
        return bool(set(self.rec["command"]) & {f.stamp_ns for f in self.source.published})

    def close(self) -> None:
        """Shut the executor down and destroy the node."""
        self.executor.shutdown()
        self.node.destroy_node()


@dataclass
class _Window:
    """The measuring phase: published frames [first, last), its length and CPU readings at both ends."""

    first: int
    last: int
    elapsed_s: float
    late0: int                             # frame deadlines the source had missed before it
    graph_cpu0: dict
    graph_cpu1: dict
    busy0: float
    busy1: float
    own0: float
    own1: float


def _wait_for_graph(probe: _Probe, graph: Graph, timeout_s: float) -> float:
    """Spin until the graph is up (seconds it took); TimeoutError after ``timeout_s``."""
    t_start = time.monotonic()
    while not probe.spin(1.0, probe.graph_ready):
        graph.check_alive()
        if time.monotonic() - t_start > timeout_s:
            raise TimeoutError(f"the graph did not come up in {timeout_s} s")
    return time.monotonic() - t_start


def _measure(probe: _Probe, graph: Graph, warmup_s: float, duration_s: float) -> _Window:
    """Publish frames: warm up, wait for a first command, measure ``duration_s``, wait for stragglers."""
    source = probe.source
    source.start()
    source.frames_on(True)
    probe.spin(warmup_s)
    probe.spin(30.0, probe.chain_works)
    graph.check_alive()
    first = len(source.published)
    late0 = source.late
    cpu0, sys0, own0 = _cpu_times(graph.pids()), _system_busy_s(), _own_cpu_s()
    t0 = time.monotonic()
    probe.spin(duration_s)
    source.frames_on(False)
    elapsed = time.monotonic() - t0
    cpu1, sys1, own1 = _cpu_times(graph.pids()), _system_busy_s(), _own_cpu_s()
    last = len(source.published)
    probe.spin(1.5)                                   # stragglers
    graph.check_alive()
    return _Window(first, last, elapsed, late0, cpu0, cpu1, sys0, sys1, own0, own1)


def _run_result(probe: _Probe, w: _Window, startup_s: float, codes: dict, settings: dict) -> dict:
    """The run's report: latencies and losses of the window's frames, frame counts and CPU use."""
    source, elapsed = probe.source, w.elapsed_s
    window = source.published[w.first:w.last]
    result = analyse(window, probe.rec, probe.has_target, probe.command_log)
    result.update({
        **settings, "duration_s": elapsed, "startup_s": startup_s,
        "frames_published": len(window), "achieved_rate_hz": len(window) / elapsed,
        "source_late": source.late - w.late0, "commands": probe.n_commands, "exit_codes": codes,
        "graph_cpu_percent": {k: 100.0 * (w.graph_cpu1.get(k, 0) - v) / elapsed for k, v in w.graph_cpu0.items()},
        "bench_process_cpu_percent": 100.0 * (w.own1 - w.own0) / elapsed,
        "machine_busy_percent": 100.0 * (w.busy1 - w.busy0) / elapsed,   # of one core; 200 = 2 cores
        "loadavg_after": list(os.getloadavg())})
    graph_cpu = sum(result["graph_cpu_percent"].values()) + result["bench_process_cpu_percent"]
    result["other_processes_cpu_percent"] = result["machine_busy_percent"] - graph_cpu
    return result


def run_graph(mode: str, rate_hz: float, frames, config: Path, duration_s: float, warmup_s: float,
              log_dir: Path, graph_executor: str = "runner", sensor_depth: int = 0,
              target_class: str = "red_cube",
              startup_timeout_s: float = 120.0) -> dict:
    """Start the graph in ``mode``, feed it frames at ``rate_hz`` and measure ``duration_s`` seconds."""
    import rclpy

    ns = f"/fdl_bench_{os.getpid()}_{mode.replace('-', '_')}_{int(rate_hz)}"
    context = rclpy.Context()
    rclpy.init(context=context)
    probe = _Probe(context, ns, frames, rate_hz, target_class)
    graph = Graph(mode, config, ns, log_dir, executor=graph_executor,
                  sensor_depth=sensor_depth).start()
    try:
        startup_s = _wait_for_graph(probe, graph, startup_timeout_s)
        measured = _measure(probe, graph, warmup_s, duration_s)
    finally:
        probe.source.stop()
        codes = graph.stop()
        probe.close()
        rclpy.shutdown(context=context)
    return _run_result(probe, measured, startup_s, codes,
                       {"mode": mode, "executor": graph_executor, "rate_hz": rate_hz})


def _system_busy_s() -> float:
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _own_cpu_s() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def _cpu_times(pids: dict[str, int]) -> dict:
    """CPU seconds (user + system) of each graph process, by name."""
    import psutil

    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            pass
    return out


def analyse(window, rec, has_target, command_log) -> dict:
    """Per-frame latencies and where frames were lost.

    A frame whose tracks held a target but got no command of its own is *superseded*
    when the first command published after its tracks that carries this or a later
    frame's stamp carries a later one (a newer TrackArray reached policy_node before its
    next control tick, so the newer one was used), and *lost* otherwise.
    """
    lat = {s: [] for s in ["camera publish"] + STAGES + ["command received"]}
    inc = {s: [] for s in STAGES}
    lost = {s: 0 for s in STAGES}
    superseded = 0
    command_log = sorted(command_log)
    frame_stamps = set(rec["tracks"])
    command_times = np.array([t for t, _ in command_log], dtype=np.int64)
    target_frames = 0
    for f in window:
        stamp = f.stamp_ns
        lat["camera publish"].append((f.done_ns - stamp) * 1e-6)
        previous = stamp
        complete = True
        for stage in STAGES:
            if stage == "command":
                if not has_target.get(stamp, False):
                    complete = False
                    break
                target_frames += 1
            got = rec[stage].get(stamp)
            if got is None and stage == "command":
                k = int(np.searchsorted(command_times, rec["tracks"][stamp][0], side="right"))
                later = next((s for _, s in command_log[k:] if s >= stamp and s in frame_stamps),
                             None)
                if later is not None and later > stamp:
                    superseded += 1
                    complete = False
                    break
            if got is None:
                lost[stage] += 1
                complete = False
                break
            lat[stage].append((got[0] - stamp) * 1e-6)
            inc[stage].append((got[0] - previous) * 1e-6)
            previous = got[0]
        if complete:
            lat["command received"].append((rec["command"][stamp][1] - stamp) * 1e-6)
    n = len(window)
    counts = {"frames": n, "detections": n - lost["detections"]}
    counts["objects"] = counts["detections"] - lost["objects"]
    counts["tracks"] = counts["objects"] - lost["tracks"]
    counts["frames_with_target"] = target_frames
    counts["commands_for_target_frames"] = target_frames - lost["command"] - superseded
    counts["superseded_at_policy"] = superseded
    return {"latency_ms": {k: percentiles(v) for k, v in lat.items()},
            "increment_ms": {k: percentiles(v) for k, v in inc.items()},
            "lost_at_stage": lost, "superseded_at_policy": superseded, "counts": counts,
            "raw_latency_ms": {k: [round(x, 3) for x in v] for k, v in lat.items()}}


def breakdown(run: dict, compute: dict) -> dict:
    """Mean end-to-end latency split into compute, control-tick wait and transport."""
    e2e = run["latency_ms"]["command"]["mean"]
    if e2e is None:
        return {}
    c = {s: compute["ms"][STAGE_NODE[s]]["mean"] for s in STAGES}
    wait = CONTROL_DT_S / 2 * 1e3
    per_stage = {}
    for s in STAGES:
        inc = run["increment_ms"][s]["mean"]
        t = inc - c[s] - (wait if s == "command" else 0.0)
        per_stage[s] = {"increment_mean_ms": inc, "compute_mean_ms": c[s],
                        "transport_queueing_mean_ms": t}
    total_c = sum(c.values())
    transport = e2e - total_c - wait
    return {"e2e_mean_ms": e2e, "compute_ms": total_c, "control_tick_wait_ms_estimated": wait,
            "transport_queueing_ms": transport, "compute_share": total_c / e2e,
            "tick_wait_share": wait / e2e, "transport_share": transport / e2e,
            "per_stage": per_stage}


# --- report ---------------------------------------------------------------------------------------

def _f(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = [f"### Graph latency: {cfg['backend']} backend"
             f"{' (' + Path(cfg['model']).name + ')' if cfg['model'] else ''}, image_size "
             f"{cfg['image_size']}, policy {cfg['policy']}, frames {cfg['width']}x{cfg['height']}, "
             f"{report['machine']['cpus']} CPUs, Fast DDS profile "
             f"{Path(cfg['dds_profile']).name if cfg['dds_profile'] else 'default'}, executor "
             f"{cfg['executor']}, sensor QoS depth {cfg['sensor_depth']}", ""]
    lines += ["| mode | camera | frames | e2e p50 | p95 | p99 | max | "
              "lost: det / obj / trk / cmd (of frames with a target) | transport share | "
              "targets (p50<=50, p99<=80, no drops at 15 Hz) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        e = run["latency_ms"]["command"]
        lost = run["lost_at_stage"]
        b = run.get("breakdown", {})
        ok = run["targets"]
        lines.append(
            f"| {run['mode']} | {run['rate_hz']:g} Hz ({run['achieved_rate_hz']:.1f}) | "
            f"{run['frames_published']} | {_f(e['p50'])} | {_f(e['p95'])} | {_f(e['p99'])} | "
            f"{_f(e['max'])} | {lost['detections']} / {lost['objects']} / {lost['tracks']} / "
            f"{lost['command']} (+{run['superseded_at_policy']} superseded) of "
            f"{run['counts']['frames_with_target']} | "
            f"{_f(100 * b['transport_share'], 0) if b else '-'} % | "
            f"{'yes' if ok['all'] else 'no: ' + ', '.join(k for k, v in ok.items() if k != 'all' and not v)} |")
    lines += ["", "CPU during each run (% of one core; the machine has "
              f"{report['machine']['cpus']}): " + "; ".join(
                  f"{r['mode']} {r['rate_hz']:g} Hz: graph {sum(r['graph_cpu_percent'].values()):.0f}, "
                  f"frame source + probe {r['bench_process_cpu_percent']:.0f}, other processes "
                  f"{r['other_processes_cpu_percent']:.0f}" for r in report["runs"])]
    per_node = [r for r in report["runs"] if r["mode"] == "multi-process"]
    if per_node:
        lines += ["", "CPU time of each node process in the graph (includes deserialisation and the "
                  "executor; policy_node per 50 Hz control tick, the others per camera frame):"]
        for r in per_node:
            cpu = r["graph_cpu_percent"]
            parts = [f"{n} {cpu[n] * 10 / (50.0 if n == 'policy_node' else r['rate_hz']):.1f} ms"
                     for n in ("detector_node", "localizer_node", "tracker_node", "policy_node")
                     if n in cpu]
            lines.append(f"- {r['rate_hz']:g} Hz: " + ", ".join(parts))
    lines += ["", "Per stage, ms since the image stamp (DDS publish time of the stage's output); "
              "increment = this stage's output minus the previous one's; compute = the node's "
              "callback called directly (offline, same frames):", ""]
    comp = report["compute"]["ms"]
    lines += ["| mode | camera | stage | p50 | p95 | p99 | increment p50 | compute p50 | "
              "transport + queueing (mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        per = run.get("breakdown", {}).get("per_stage", {})
        for s in ["camera publish"] + STAGES + ["command received"]:
            L = run["latency_ms"][s]
            inc = run["increment_ms"].get(s, {})
            c = comp[STAGE_NODE[s]]["p50"] if s in STAGE_NODE else None
            t = per.get(s, {}).get("transport_queueing_mean_ms")
            lines.append(f"| {run['mode']} | {run['rate_hz']:g} Hz | {s} | {_f(L['p50'])} | "
                         f"{_f(L['p95'])} | {_f(L['p99'])} | {_f(inc.get('p50'))} | {_f(c)} | "
                         f"{_f(t)} |")
    lines += ["", "Seed budget (section 29.5, 57 ms) against the measured medians "
              "(first run of each mode at 15 Hz):", ""]
    runs15 = [r for r in report["runs"] if r["rate_hz"] == 15]
    lines += ["| seed component | seed ms | ours | " + " | ".join(r["mode"] for r in runs15) + " |",
              "|---|---|---|" + "---|" * len(runs15)]
    mapping = [("camera capture", "camera publish (pre-rendered: capture not measured)",
                lambda r: r["latency_ms"]["camera publish"]["p50"]),
               ("detection (YOLOv8s)", "detector_node increment",
                lambda r: r["increment_ms"]["detections"]["p50"]),
               ("3D localization", "localizer_node + tracker_node increments",
                lambda r: r["increment_ms"]["objects"]["p50"] + r["increment_ms"]["tracks"]["p50"]),
               ("action generation (ACT)", f"policy_node increment ({cfg['policy']} policy, "
                "incl. waiting for the 50 Hz tick)",
                lambda r: r["increment_ms"]["command"]["p50"]),
               ("IK + trajectory planning", "inside policy_node (safety layer)", lambda r: None),
               ("robot execution (sending command)", "command publish -> received by a subscriber",
                lambda r: r["latency_ms"]["command received"]["p50"] - r["latency_ms"]["command"]["p50"]),
               ]
    for seed_name, ours, fn in mapping:
        vals = []
        for r in runs15:
            try:
                vals.append(_f(fn(r)))
            except (TypeError, KeyError):
                vals.append("-")
        lines.append(f"| {seed_name} | {SEED_BUDGET_MS[seed_name]} | {ours} | " + " | ".join(vals) + " |")
    lines.append(f"| total | {sum(SEED_BUDGET_MS.values())} | end to end (publish) | "
                 + " | ".join(_f(r["latency_ms"]["command"]["p50"]) for r in runs15) + " |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.8 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        raw = run["raw_latency_ms"]
        top = max([max(v) for v in raw.values() if v] + [100.0])
        bins = np.linspace(0, min(top, 300), 121)
        for s in STAGES:
            if raw[s]:
                ax.hist(np.clip(raw[s], 0, bins[-1]), bins=bins, histtype="step", lw=1.4,
                        label=f"{s} (p50 {np.percentile(raw[s], 50):.1f} ms)")
        for x, style, label in ((TARGET_P50_MS, "--", "target p50"), (TARGET_P99_MS, ":", "target p99"),
                                (57.0, "-.", "seed budget 57 ms")):
            ax.axvline(x, color="k", ls=style, lw=0.8, label=label)
        ax.set_title(f"{run['mode']}, camera {run['rate_hz']:g} Hz, {run['frames_published']} frames "
                     f"(other processes used {run['other_processes_cpu_percent']:.0f} % of one core)",
                     fontsize=9)
        ax.set_xlabel("ms since the source image stamp (stage output published)")
        ax.set_ylabel("frames")
        ax.legend(fontsize=7, loc="upper right")
    cfg = report["config"]
    fig.suptitle(f"fdl_robot graph latency: {cfg['backend']} backend, policy {cfg['policy']}, executor "
                 f"{cfg['executor']}, sensor QoS depth {cfg['sensor_depth']}, "
                 f"{report['machine']['cpus']} CPUs", fontsize=10)
    fig.tight_layout()
    write_figure(path, fig, "plot", dpi=110)
    plt.close(fig)


@exit_on_error
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[15.0, 30.0], help="camera rates, Hz")
    ap.add_argument("--modes", nargs="+", default=["one-process", "multi-process"],
                    choices=["one-process", "multi-process"])
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=4.0, help="seconds before measuring")
    ap.add_argument("--backend", default="ultralytics",
                    help="detector backend: ultralytics (the shipped YOLO), onnx, detr, color")
    ap.add_argument("--model", default="", help="detector weights ('' = the shipped ones)")
    ap.add_argument("--image-size", type=int, default=320, help="detector inference size, px")
    ap.add_argument("--policy", default="act", help="policy_node policy: act (the shipped model) or scripted")
    ap.add_argument("--policy-model", default="", help="ACT checkpoint ('' = the shipped one)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--seed", type=int, default=0, help="episode rendered for the frames")
    ap.add_argument("--compute-frames", type=int, default=120)
    ap.add_argument("--out", type=Path, default=OUT_DIR / "latency.json")
    ap.add_argument("--png", type=Path, default=None, help="histogram PNG (default: --out with .png)")
    ap.add_argument("--executor", choices=["runner", "single", "multi"], default="runner",
                    help="runner: the project's entry points (SingleThreadedExecutor); single/multi: "
                         "the same nodes spun by benchmarks/_graph_process.py with that executor")
    ap.add_argument("--sensor-depth", type=int, default=0,
                    help="experiment: history depth of the nodes' sensor QoS (default 5; 1 = always "
                         "the newest frame); needs --executor single or multi")
    ap.add_argument("--dds-profile", default=str(REPO / "fdl_robot" / "fdl_robot" / "ros" / "fastdds_profile.xml"),
                    help="Fast DDS XML profile for every process ('' = Fast DDS defaults, which lose "
                         "best-effort messages > 512 KB between processes)")
    ap.add_argument("--policy-threads", type=int, default=None,
                    help="policy_node policy_threads (default: the YAML's, 1; 0 = torch's default, "
                         "one thread per core: the comparison in the README)")
    ap.add_argument("--keep-raw", action="store_true", help="keep per-frame latencies in the JSON")
    args = ap.parse_args(argv)
    check_args(ap, args, {"--out": JSON, "--png": FIGURE})

    if args.dds_profile:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(args.dds_profile).resolve())
    else:                                   # set but empty: fdl_robot.ros.dds leaves it alone
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = ""
    model = args.model
    if args.backend in ("ultralytics", "onnx") and not model:
        shipped = REPO / "fdl_robot" / "fdl_robot" / "models" / "detector" / (
            "best.onnx" if args.backend == "onnx" else "best.pt")
        model = str(shipped) if shipped.is_file() else ""
    frames = load_frames(args.width, args.height, args.seed)
    config = write_config(args.out.with_suffix(".yaml"), frames, args.backend, model,
                          args.image_size, args.policy, args.policy_model,
                          extra=({"policy_node": {"policy_threads": args.policy_threads}}
                                 if args.policy_threads is not None else None))
    report = {"config": {"backend": args.backend, "model": model, "image_size": args.image_size,
                         "policy": args.policy, "policy_model": args.policy_model,
                         "policy_threads": args.policy_threads,
                         "width": args.width, "height": args.height, "frames": len(frames),
                         "duration_s": args.duration, "rates_hz": args.rates, "modes": args.modes,
                         "graph_config": str(config), "dds_profile": args.dds_profile,
                         "executor": args.executor, "sensor_depth": args.sensor_depth or 5},
              "machine": {**machine_info(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")},
              "seed_budget_ms": SEED_BUDGET_MS}
    print(f"compute: calling the node callbacks on {args.compute_frames} frames ...", file=sys.stderr)
    report["compute"] = measure_compute(frames, config, args.compute_frames)
    report["runs"] = []
    for mode in args.modes:
        for rate in args.rates:
            print(f"run: {mode}, camera {rate:g} Hz, {args.duration:g} s ...", file=sys.stderr)
            run = run_graph(mode, rate, frames, config, args.duration, args.warmup,
                            args.out.parent / "logs", graph_executor=args.executor,
                            sensor_depth=args.sensor_depth)
            run["breakdown"] = breakdown(run, report["compute"])
            e = run["latency_ms"]["command"]
            no_drops = (run["lost_at_stage"]["detections"] == 0 and run["lost_at_stage"]["objects"] == 0
                        and run["lost_at_stage"]["tracks"] == 0 and run["lost_at_stage"]["command"] == 0)
            run["targets"] = {"p50": e["p50"] is not None and e["p50"] <= TARGET_P50_MS,
                              "p99": e["p99"] is not None and e["p99"] <= TARGET_P99_MS,
                              "no drops": no_drops or rate != 15}
            run["targets"]["all"] = all(run["targets"].values())
            report["runs"].append(run)
            print(f"  e2e p50 {_f(e['p50'])} p99 {_f(e['p99'])} ms, lost {run['lost_at_stage']}",
                  file=sys.stderr)
    png = args.png or args.out.with_suffix(".png")
    saved = report if args.keep_raw else {
        **report, "runs": [{k: v for k, v in run.items() if k != "raw_latency_ms"} for run in report["runs"]]}
    write_json(args.out, saved, "--out", indent=1)
    print(markdown(report))
    plot(report, png)                        # from the per-frame latencies
    print(f"\nJSON: {args.out}\nPNG:  {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

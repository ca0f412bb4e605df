"""fdl-robot launch: a process per node, logs, respawn, clean stops, a clear failure.

The :class:`Launcher` itself is tested on small stand-in processes (fast and exact); the
command line on the real nodes of the ``perception`` graph.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fdl_robot.ros.launcher import Launcher, NodeExited, ProcessSpec

pytest.importorskip("rclpy")

# a stand-in node: prints, exits 0 on SIGINT (or ignores it), optionally exits by itself
NODE = """
import signal, sys, time
mode = sys.argv[1]
def on_int(*_):
    print('STOP' + 'PING', flush=True); sys.exit(0)
signal.signal(signal.SIGINT, signal.SIG_IGN if mode == 'stubborn' else on_int)
print('RE' + 'ADY', flush=True)     # not in the command line the log repeats
if mode.startswith('exit'):
    time.sleep(0.2); print('RuntimeError: it broke', flush=True); sys.exit(int(mode[4:]))
while True:
    time.sleep(0.05)
"""


def spec(name: str, mode: str = "run", **kw) -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-c", NODE, mode), **kw)


def wait_for(predicate, timeout_s: float = 10.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_every_node_gets_its_process_and_log_and_one_sigint_stops_them_cleanly(tmp_path):
    launcher = Launcher([spec("a"), spec("b")], log_dir=tmp_path, progress=lambda s: None).start()
    pids = launcher.pids()
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert wait_for(lambda: all("READY" in (tmp_path / f"{n}.log").read_text() for n in "ab"))
    for pid in pids.values():                     # each in its own session: a terminal's Ctrl-C
        assert os.getsid(pid) == pid              # reaches the launcher only
    codes = launcher.stop()
    assert codes == {"a": 0, "b": 0}
    for n in "ab":
        assert (tmp_path / f"{n}.log").read_text().count("STOPPING") == 1


def test_a_node_that_ignores_sigint_gets_sigterm(tmp_path):
    launcher = Launcher([spec("stubborn", "stubborn")], log_dir=tmp_path, sigterm_timeout_s=0.5,
                        progress=lambda s: None).start()
    assert wait_for(lambda: "READY" in (tmp_path / "stubborn.log").read_text())
    t0 = time.monotonic()
    assert launcher.stop() == {"stubborn": -signal.SIGTERM}
    assert 0.4 < time.monotonic() - t0 < 3.0


def test_a_node_that_dies_without_respawn_stops_the_graph_with_a_one_line_reason(tmp_path):
    launcher = Launcher([spec("ok"), spec("broken", "exit3")], log_dir=tmp_path, progress=lambda s: None).start()
    with pytest.raises(NodeExited) as err:
        assert wait_for(lambda: launcher.poll() and False, timeout_s=5.0)
    reason = str(err.value)
    assert "\n" not in reason
    assert reason.startswith("broken exit code 3") and "RuntimeError: it broke" in reason
    assert str(tmp_path / "broken.log") in reason
    assert launcher.stop()["ok"] == 0


def test_respawn_restarts_a_node_after_its_delay(tmp_path):
    launcher = Launcher([spec("flaky", "exit1", respawn=True, respawn_delay_s=0.3)], log_dir=tmp_path,
                        progress=lambda s: None).start()
    first = launcher.pids()["flaky"]
    try:
        assert wait_for(lambda: launcher.poll() or launcher.children["flaky"].starts >= 3, timeout_s=10)
        child = launcher.children["flaky"]
        assert launcher.failure is None and child.starts >= 3
        gaps = [b - a[0] for a, b in zip(child.exits, [t for t, _ in child.exits[1:]], strict=False)]
        assert all(g >= 0.3 + 0.2 for g in gaps)            # the delay, then 0.2 s of life
        assert (tmp_path / "flaky.log").read_text().count("start ") == child.starts
        assert first not in {launcher.pids()["flaky"]}
    finally:
        launcher.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_on_sigint_and_sigterm_and_exits_zero(sig, tmp_path):
    launcher = Launcher([spec("a")], log_dir=tmp_path, progress=lambda s: None)
    threading.Timer(1.5, lambda: os.kill(os.getpid(), sig)).start()
    assert launcher.run() == 0
    assert "STOPPING" in (tmp_path / "a.log").read_text()


# --- the command line on real nodes ------------------------------------------------------------

_LAUNCHED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_launched_graphs():
    """A failed assertion must not leave a graph running: SIGTERM (the launcher stops its
    nodes), then SIGKILL, whatever the test's outcome."""
    yield
    while _LAUNCHED:
        proc = _LAUNCHED.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _launch(tmp_path: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "fdl_robot.ros.launcher", "--log-dir", str(tmp_path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _LAUNCHED.append(proc)
    return proc


def _node_pids(proc: subprocess.Popen, n: int, timeout_s: float = 60.0) -> dict[str, int]:
    """Read '[launch] <node> started, pid <pid>' lines until ``n`` nodes have started."""
    pids: dict[str, int] = {}
    t0 = time.monotonic()
    while len(pids) < n and time.monotonic() - t0 < timeout_s:
        line = proc.stdout.readline()
        if " started, pid " in line:
            name = line.split()[1]
            pids[name] = int(line.split("pid ")[1].split(",")[0])
    return pids


def _logs_clean(tmp_path: Path, names) -> None:
    for name in names:
        text = (tmp_path / f"{name}.log").read_text()
        for bad in ("Traceback", "KeyboardInterrupt", "rosout", "Segmentation", "context is not valid"):
            assert bad not in text, f"{name}.log: {bad}\n{text[-2000:]}"


@pytest.mark.slow
def test_perception_graph_a_process_per_node_stops_cleanly_on_a_doubled_sigint(tmp_path):
    proc = _launch(tmp_path, "--graph", "perception")
    pids = _node_pids(proc, 4)
    assert set(pids) == {"detector_node", "localizer_node", "tracker_node", "policy_node"}
    # up: every node has logged (policy_node warns that it waits for joint states)
    assert wait_for(lambda: "waiting for the arm's joint states" in (tmp_path / "policy_node.log").read_text(), 90)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    for pid in pids.values():                 # what a launcher that forwards Ctrl-C to a group does
        os.kill(pid, signal.SIGINT)
    time.sleep(0.05)
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "every node exited cleanly" in out
    _logs_clean(tmp_path, pids)


@pytest.mark.slow
def test_a_node_that_cannot_start_fails_the_launch_with_its_reason(tmp_path):
    proc = _launch(tmp_path, "--graph", "perception", "--nodes", "tracker_node,policy_node",
                   "-p", "policy_node:policy:=no_such_policy")
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1
    (line,) = [ln for ln in err.splitlines() if ln.startswith("fdl-robot launch:")]
    assert "policy_node exit code 1" in line and "no_such_policy" in line, err
    _logs_clean(tmp_path, ["tracker_node"])


def test_unknown_nodes_and_bad_overrides_are_refused_before_anything_starts(tmp_path):
    for args in (["--graph", "perception", "--nodes", "sim_node"],
                 ["--graph", "perception", "-p", "trackr_node:max_age_s:=1.0"],
                 ["--graph", "perception", "-p", "no_colon_here"]):
        proc = _launch(tmp_path, *args)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and "fdl-robot launch:" in err, (args, err)
        assert "started" not in out


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_sim_node_stops_cleanly_on_a_doubled_sigint_while_it_steps(attempt, tmp_path):
    pytest.importorskip("mujoco")
    proc = _launch(tmp_path, "--graph", "sim", "--nodes", "sim_node", "-p", "sim_node:width:=96",
                   "-p", "sim_node:height:=72")
    (pid,) = _node_pids(proc, 1).values()
    assert wait_for(lambda: "MuJoCo cell" in (tmp_path / "sim_node.log").read_text(), 60)
    time.sleep(3.0 + 0.3 * attempt)          # stepping and publishing (the first frame compiles
                                             # llvmpipe's shaders: ~1-2 s) when the signals come
    proc.send_signal(signal.SIGINT)
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    _logs_clean(tmp_path, ["sim_node"])
    assert "measured real-time factor" in (tmp_path / "sim_node.log").read_text()


# a stand-in node that reports the scheduler its main thread and a thread it starts run under
SCHED_NODE = """
import os, sys, threading, time
from fdl_robot.ros.runner import apply_priority
apply_priority()
seen = []
t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0))); t.start(); t.join()
print('SCHED', os.sched_getscheduler(0), os.sched_getparam(0).sched_priority, seen[0], flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_child_runs_under_its_own_priority_never_its_parents(tmp_path):
    # a closed loop's monitor launches the graph under SCHED_FIFO: a node without a priority
    # must not inherit it (it starved the detector), one with a priority gets its own
    if not hasattr(os, "SCHED_FIFO"):
        pytest.skip("no SCHED_FIFO on this platform")
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(5))
    except PermissionError:
        pytest.skip("SCHED_FIFO needs root or CAP_SYS_NICE")
    try:
        launcher = Launcher([ProcessSpec("plain", (sys.executable, "-c", SCHED_NODE)),
                             ProcessSpec("rt", (sys.executable, "-c", SCHED_NODE), priority=7)],
                            log_dir=tmp_path, progress=lambda s: None).start()
    finally:
        os.sched_setscheduler(0, *before)
    try:
        assert wait_for(lambda: all("SCHED " in (tmp_path / f"{n}.log").read_text() for n in ("plain", "rt")))
        line = {n: (tmp_path / f"{n}.log").read_text().split("SCHED ")[1].split() for n in ("plain", "rt")}
        assert line["plain"] == [str(os.SCHED_OTHER), "0", str(os.SCHED_OTHER)]
        assert line["rt"] == [str(os.SCHED_FIFO), "7", str(os.SCHED_FIFO)]
    finally:
        launcher.stop()

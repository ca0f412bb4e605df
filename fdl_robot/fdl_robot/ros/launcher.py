"""A process per node, the way ``ros2 launch`` starts a graph: ``fdl-robot launch``.

``ros2 launch`` (launch / launch_ros) is not on PyPI. This launcher does what it does for
our launch files, built from the same description (:mod:`fdl_robot.ros.graph`: the node
list, :class:`~fdl_robot.ros.graph.LaunchArguments`, the YAML and the per-node overrides):

* every node runs in its own OS process, ``python -m fdl_robot.ros.<node> --ros-args
  --params-file <yaml> -p k:=v ... -r __ns:=<namespace>``, in its own session, so a
  Ctrl-C in the terminal reaches the launcher only and each node gets exactly one SIGINT;
* each node's stdout and stderr go to ``<log_dir>/<node>.log`` (``--output screen``
  leaves them on the terminal), the default ``log_dir`` being
  ``$ROS_LOG_DIR`` or ``~/.ros/log``, then ``fdl_robot_<date>_<pid>``;
* ``respawn`` / ``respawn_delay`` as launch_ros's ``Node`` has them: a node that exits is
  started again after the delay;
* SIGINT or SIGTERM stops the graph: SIGINT to every node, SIGTERM to those still running
  after ``sigterm_timeout_s``, SIGKILL after ``sigkill_timeout_s`` more (launch's
  defaults, 5 s each), exit status 0 when every node stopped cleanly;
* ``--priority node=N`` runs a node under SCHED_FIFO (what ros2_control's controller
  manager does for its control loop), so that on a loaded machine its callbacks run when
  they are due instead of when the scheduler gets to them;
* a node that exits without ``respawn`` (it failed to start, or died) stops the graph and
  the launcher exits with status 1 and one line saying which node, how, and its log's last
  line -- ``on_exit=Shutdown()`` in the launch files.

    fdl-robot launch --graph sim
    fdl-robot launch --graph robot --namespace arm1 --respawn true --log-dir /tmp/logs
    fdl-robot launch --graph sim --nodes sim_node --prefix sim_node='ip netns exec robot_pc'
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.outputs import DIRECTORY, check_args
from fdl_robot.ros import graph as graphs
from fdl_robot.ros.parameter_check import check_sources, resolve_overrides

__all__ = ["Launcher", "NodeExited", "ProcessSpec", "default_log_dir", "graph_processes", "main"]

SIGTERM_TIMEOUT_S = 5.0     # launch's sigterm_timeout: SIGINT, then SIGTERM after this
SIGKILL_TIMEOUT_S = 5.0     # launch's sigkill_timeout: then SIGKILL after this
POLL_S = 0.05
#: Set in every node's environment: the launcher's pid. A node that sees it asks the kernel
#: for SIGTERM when its parent dies (``runner.die_with_launcher``), so a launcher killed
#: with SIGKILL leaves no orphans behind.
LAUNCHER_PID_VARIABLE = "FDL_ROBOT_LAUNCHER_PID"
#: Set in a node's environment when it is to run under SCHED_FIFO at this priority
#: (``runner.apply_priority``, before rclpy creates its threads, so they inherit it).
PRIORITY_VARIABLE = "FDL_ROBOT_SCHED_FIFO"


def ros_args(config: str | Path | list, overrides: dict, namespace: str = "") -> list[str]:
    """The node-local command line a launch file gives: params file(s) (a later one wins),
    ``-p k:=v``, namespace."""
    args = ["--ros-args"]
    for path in config if isinstance(config, list) else [config]:
        args += ["--params-file", str(path)]
    for key, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else value
        args += ["-p", f"{key}:={text}"]
    if namespace:
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    return args


@dataclass(frozen=True)
class ProcessSpec:
    """One node's process: its command line (after ``prefix``), environment and respawn."""

    name: str
    argv: tuple[str, ...]
    prefix: tuple[str, ...] = ()          # e.g. ('ip', 'netns', 'exec', 'robot_pc'), like launch_ros's prefix
    env: dict = field(default_factory=dict)   # added to the launcher's environment
    respawn: bool = False
    respawn_delay_s: float = 2.0
    priority: int = 0                      # SCHED_FIFO priority (1-99) of the process; 0 = the default scheduler

    @property
    def command(self) -> list[str]:
        return [*self.prefix, *self.argv]


def graph_processes(graph: str, args: graphs.LaunchArguments = graphs.DEFAULT_ARGUMENTS,
                    only: list[str] | None = None, extra_overrides: dict[str, dict] | None = None,
                    prefix: dict[str, list[str]] | None = None, env: dict[str, dict] | None = None,
                    priority: dict[str, int] | None = None, python: str = sys.executable) -> list[ProcessSpec]:
    """The processes of ``graph`` (or of its nodes in ``only``), as the launch files start them.

    ``extra_overrides`` ({node: {parameter: value}}) go after the launch overrides, like
    ``-p`` on a ``ros2 run`` command line; ``prefix``, ``env`` and ``priority`` (SCHED_FIFO)
    are per node.
    """
    config = args.param_files()
    names = graphs.graph_nodes(graph, args.camera)
    check_sources([("file", str(path)) for path in config], names)
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValueError(f"nodes {unknown} are not in the '{graph}' graph {names}")
    for what, table in (("extra_overrides", extra_overrides), ("prefix", prefix), ("env", env),
                        ("priority", priority)):
        stray = sorted(set(table or {}) - set(names))
        if stray:
            raise ValueError(f"{what} names nodes {stray} that are not in the '{graph}' graph {names}")
    specs = []
    for name in names:
        if only is not None and name not in only:
            continue
        overrides = {**graphs.node_overrides(name, graph, args), **(extra_overrides or {}).get(name, {})}
        argv = (python, "-m", graphs.node_spec(name).module,
                *ros_args(config, overrides, graphs.node_namespace(name, args.namespace)))
        specs.append(ProcessSpec(name, argv, tuple((prefix or {}).get(name, ())), dict((env or {}).get(name, {})),
                                 args.respawn, args.respawn_delay, int((priority or {}).get(name, 0))))
    return specs


def default_log_dir() -> Path:
    """``$ROS_LOG_DIR`` (else ``$ROS_HOME/log``, else ``~/.ros/log``) / fdl_robot_<date>_<pid>."""
    base = os.environ.get("ROS_LOG_DIR") or Path(os.environ.get("ROS_HOME", Path.home() / ".ros")) / "log"
    return Path(base) / f"fdl_robot_{datetime.now():%Y-%m-%d-%H-%M-%S}_{os.getpid()}"


class NodeExited(RuntimeError):
    """A node exited while the graph was running and was not to be respawned."""


def _last_line(path: Path | None, node: str = "") -> str:
    """The line of a node's log that says why it stopped: its own ``<node>: <reason>`` line
    (``runner.startup_line``), else the last line naming an error, else the last line."""
    if path is None or not path.is_file():
        return ""
    with open(path, "rb") as f:
        tail = deque(f, maxlen=20)
    lines = [ln.decode(errors="replace").strip() for ln in tail if ln.strip()]
    own = [ln for ln in lines if node and ln.startswith(f"{node}: ")]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln or "Exception" in ln]
    return (own or errors or lines or [""])[-1][:300]


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def set_priority(pid: int, priority: int) -> str:
    """Process ``pid`` under SCHED_FIFO ``priority``, or the default scheduler for 0; '' when
    done, else why not (no permission: root or CAP_SYS_NICE is needed).

    A child inherits its parent's real-time policy (a closed loop's monitor runs under
    SCHED_FIFO): the launcher sets each child's own at once, before the child starts a thread,
    and the node sets it again as it starts (:func:`fdl_robot.ros.runner.apply_priority`), so
    that a node without a priority never runs at its parent's.
    """
    policy, param = (os.SCHED_FIFO, os.sched_param(priority)) if priority > 0 else (os.SCHED_OTHER, os.sched_param(0))
    try:
        if priority > 0 or os.sched_getscheduler(pid) != os.SCHED_OTHER:
            os.sched_setscheduler(pid, policy, param)
    except OSError as exc:                       # PermissionError, ProcessLookupError
        return str(exc)
    return ""


class _Child:
    """The running process of one spec, its restarts and its log."""

    def __init__(self, spec: ProcessSpec, log_path: Path | None):
        self.spec, self.log_path = spec, log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exits: list[tuple[float, int]] = []      # (monotonic s, return code)
        self.restart_at: float | None = None      # monotonic s of a pending respawn
        self.started_at = 0.0

    def start(self) -> None:
        out = None
        if self.log_path is not None:
            out = open(self.log_path, "ab")
            out.write(f"--- {datetime.now():%H:%M:%S} start {self.starts + 1}: "
                      f"{shlex.join(self.spec.command)}\n".encode())
            out.flush()
        try:
            env = {**os.environ, **self.spec.env, LAUNCHER_PID_VARIABLE: str(os.getpid())}
            if self.spec.priority:
                env[PRIORITY_VARIABLE] = str(self.spec.priority)
            self.proc = subprocess.Popen(self.spec.command, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT if out else None, start_new_session=True)
        finally:
            if out is not None:
                out.close()
        set_priority(self.proc.pid, self.spec.priority)
        self.starts += 1
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Launcher:
    """Starts, watches, respawns and stops the processes of a graph (module docstring).

    Use as a context manager (``with Launcher(specs) as graph: ...``) from Python, or
    :meth:`run` to block until a signal or a node's failure, as ``fdl-robot launch`` does.
    """

    def __init__(self, specs: list[ProcessSpec], log_dir: Path | None = None, output: str = "log",
                 sigterm_timeout_s: float = SIGTERM_TIMEOUT_S, sigkill_timeout_s: float = SIGKILL_TIMEOUT_S,
                 progress=print):
        if output not in ("log", "screen"):
            raise ValueError(f"output must be 'log' or 'screen', got '{output}'")
        self.log_dir = None if output == "screen" else Path(log_dir) if log_dir else default_log_dir()
        self.children = {s.name: _Child(s, self.log_dir / f"{s.name.replace('/', '.')}.log" if self.log_dir else None)
                         for s in specs}
        self.sigterm_timeout_s, self.sigkill_timeout_s = sigterm_timeout_s, sigkill_timeout_s
        self.progress = progress
        self.failure: str | None = None
        self._lock = threading.Lock()
        self._stopping = False

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Launcher:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children.values():
            child.start()
            self.progress(f"[launch] {child.spec.name} started, pid {child.proc.pid}"
                          + (f", log {child.log_path}" if child.log_path else ""))
        return self

    def __enter__(self) -> Launcher:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def pids(self) -> dict[str, int | None]:
        """The running process of each node (None while it is down)."""
        return {name: c.pid for name, c in self.children.items()}

    def poll(self) -> None:
        """Respawn what is due; raise :class:`NodeExited` for a node that exited without respawn."""
        now = time.monotonic()
        with self._lock:
            if self.failure:
                raise NodeExited(self.failure)
            if self._stopping:
                return
            for name, child in self.children.items():
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.start()
                        self.progress(f"[launch] {name} respawned, pid {child.proc.pid}")
                    continue
                code = child.proc.poll() if child.proc is not None else None
                if code is None:
                    continue
                child.exits.append((now, code))
                if not child.spec.respawn:
                    last = _last_line(child.log_path, name)
                    self.failure = (f"{name} {_describe(code)} {now - child.started_at:.1f} s after it started"
                                    + (f" (log {child.log_path})" if child.log_path else "")
                                    + (f": {last}" if last else ""))
                    raise NodeExited(self.failure)
                child.restart_at = now + child.spec.respawn_delay_s
                self.progress(f"[launch] {name} {_describe(code)}; respawning in {child.spec.respawn_delay_s:g} s")

    def stop(self) -> dict[str, int]:
        """Stop every node (SIGINT, then SIGTERM, then SIGKILL); their return codes."""
        with self._lock:
            self._stopping = True
        live = [c for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
        for sig, timeout in ((signal.SIGINT, self.sigterm_timeout_s), (signal.SIGTERM, self.sigkill_timeout_s),
                             (signal.SIGKILL, 5.0)):
            for child in live:
                child.signal(sig)
            deadline = time.monotonic() + timeout
            while live and time.monotonic() < deadline:
                live = [c for c in live if c.proc.poll() is None]
                time.sleep(POLL_S)
            if not live:
                break
            self.progress(f"[launch] {', '.join(c.spec.name for c in live)} still running after "
                          f"{signal.Signals(sig).name}")
        return {name: c.proc.returncode for name, c in self.children.items() if c.proc is not None}

    def run(self) -> int:
        """Start, then watch until SIGINT / SIGTERM or a node's failure; the exit status."""
        stop = threading.Event()
        received: list[int] = []

        def on_signal(signum, _frame):
            received.append(signum)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.is_set():
                self.poll()
                stop.wait(POLL_S)
        except NodeExited as exc:
            self.progress(f"[launch] {exc}; stopping the graph")
        finally:
            codes = self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self.failure:
            print(f"fdl-robot launch: {self.failure}", file=sys.stderr)
            return 1
        unclean = {n: c for n, c in codes.items() if c not in (0, -signal.SIGINT)}
        if unclean:
            print("fdl-robot launch: nodes did not stop cleanly: "
                  + ", ".join(f"{n} {_describe(c)}" for n, c in unclean.items()), file=sys.stderr)
            return 1
        self.progress(f"[launch] stopped on {signal.Signals(received[0]).name if received else 'request'}; "
                      "every node exited cleanly")
        return 0


# --- command line -------------------------------------------------------------------------

def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--namespace``, ... : :class:`LaunchArguments` as options."""
    for f in fields(graphs.LaunchArguments):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, type=graphs.parse_bool, default=f.default, metavar="true|false",
                                help=graphs.ARGUMENT_HELP[f.name])
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=graphs.ARGUMENT_HELP[f.name])


def launch_arguments(args: argparse.Namespace) -> graphs.LaunchArguments:
    return graphs.LaunchArguments(**{f.name: getattr(args, f.name) for f in fields(graphs.LaunchArguments)})


def _node_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--{what} takes node=value, got '{item}'")
        out[name] = value
    return out


def parse_prefixes(items: list[str]) -> dict[str, list[str]]:
    """``node=command`` items (``--prefix``) -> {node: argv prefix}."""
    return {name: shlex.split(cmd) for name, cmd in _node_values(items, "prefix").items()}


def add_param_option(parser: argparse.ArgumentParser) -> None:
    """``-p [NODE:]NAME:=VALUE`` (repeatable), resolved by ``parameter_check.resolve_overrides``."""
    parser.add_argument("-p", "--param", action="append", default=[], metavar="[NODE:]NAME:=VALUE",
                        help="parameter override after the YAML and the launch overrides: NODE:NAME:=VALUE "
                             "for one node, NAME:=VALUE for every node of the graph that declares NAME")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fdl-robot launch", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--graph", default="robot", choices=sorted(graphs.GRAPHS), help="node graph to launch")
    add_launch_arguments(p)
    p.add_argument("--nodes", default="", help="comma-separated subset of the graph's nodes (default: all)")
    p.add_argument("--log-dir", type=Path, default=None, help="per-node log files (default: ~/.ros/log/fdl_robot_...)")
    p.add_argument("--output", default="log", choices=["log", "screen"], help="node output to log files or the screen")
    p.add_argument("--prefix", action="append", default=[], metavar="NODE=CMD",
                   help="command prefix of a node's process, e.g. sim_node='ip netns exec pc1'")
    p.add_argument("--priority", action="append", default=[], metavar="NODE=N",
                   help="run a node under SCHED_FIFO at priority N (1-99; needs root or CAP_SYS_NICE)")
    add_param_option(p)
    args = p.parse_args(argv)
    check_args(p, args, {"--log-dir": DIRECTORY})
    try:
        names = graphs.graph_nodes(args.graph, args.camera)
        specs = graph_processes(args.graph, launch_arguments(args),
                                only=[n for n in args.nodes.split(",") if n] or None,
                                extra_overrides=resolve_overrides(args.param, names),
                                prefix=parse_prefixes(args.prefix),
                                priority={k: int(v) for k, v in _node_values(args.priority, "priority").items()})
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"fdl-robot launch: {exc}", file=sys.stderr)
        return 2
    return Launcher(specs, args.log_dir, args.output, progress=lambda s: print(s, flush=True)).run()


if __name__ == "__main__":
    sys.exit(main())

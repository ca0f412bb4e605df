"""Run fdl_robot nodes: one node per process (every node's ``main``) or a graph in one.

``fdl-robot launch`` (:mod:`fdl_robot.ros.launcher`) starts a process per node, as
``ros2 launch`` does. ``fdl-robot run`` builds the same nodes (:mod:`fdl_robot.ros.graph`,
the same ``--params-file`` and per-node overrides) in ONE process and spins them in one
executor ("manual composition", the only composition rclpy has)::

    fdl-robot launch --graph sim                       # a process per node
    fdl-robot run --graph sim --config config/fdl_robot.yaml     # one process
    fdl-robot run --graph robot --camera-source realsense --namespace arm1
    fdl-robot run --graph sim --ros-args -p max_age_s:=2.0     # after the YAML, as in ROS 2

Start-up failures (a parameter typo, a missing device, bad weights) end the process with
status 1 and one line, ``<node>: <reason>`` (:func:`startup_line`); ``FDL_ROBOT_DEBUG=1``
adds the traceback.

Stopping: SIGINT and SIGTERM both stop a process cleanly, however often they arrive. rclpy
is initialised without its own signal handlers (which shut the context down at once, so a
node's clean-up would then log to a dead rosout and sim_node's stepping thread would
publish on it); instead the first signal ends the spin loop, the nodes are destroyed while
their context is alive, and only then is it shut down. Later signals are ignored.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.ros import graph as graphs
from fdl_robot.ros import parameters
from fdl_robot.ros.launcher import (LAUNCHER_PID_VARIABLE, PRIORITY_VARIABLE, add_launch_arguments, add_param_option,
                                   launch_arguments, ros_args, set_priority)
from fdl_robot.ros.parameter_check import (BUILTIN_PARAMETERS, check_sources, parameter_arguments,
                                           parse_param, resolve_overrides)

SPIN_TIMEOUT_S = 0.1      # the spin loop looks at the stop flag at least this often


def build_nodes(graph: str, args: graphs.LaunchArguments = graphs.DEFAULT_ARGUMENTS, context=None,
                only: list[str] | None = None, extra_overrides: dict[str, dict] | None = None,
                ros_arguments: list[str] | None = None) -> list:
    """Instantiate the nodes of ``graph`` (or the subset ``only``) in this process.

    Each node's own arguments are, in this order (the later wins, as in ROS 2): the
    parameters file, the launch overrides, ``extra_overrides`` ({node name: {parameter:
    value}}), then the parameter items of ``ros_arguments`` (a command line's ``--ros-args
    --params-file F -p name:=value ...``: every file, and each ``-p`` given to the nodes
    that declare it). Everything is checked before the first node starts
    (:func:`~fdl_robot.ros.parameter_check.check_sources`); a node that fails to start
    names itself (:func:`startup_line`).
    """
    config = args.param_files()
    names = [n for n in graphs.graph_nodes(graph, args.camera) if only is None or n in only]
    items = parameter_arguments(ros_arguments)
    check_sources([*(("file", str(path)) for path in config), *items], names)
    nodes = []
    try:
        for name in names:
            overrides = {**graphs.node_overrides(name, graph, args), **(extra_overrides or {}).get(name, {})}
            cli_args = ros_args(config, overrides) + _items_for(name, items)
            with starting(name):
                nodes.append(graphs.node_class(name)(context=context, cli_args=cli_args,
                                                     namespace=graphs.node_namespace(name, args.namespace) or None))
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def _items_for(name: str, items: list[tuple[str, str]]) -> list[str]:
    """The parameter items of a command line that concern node ``name``, as its own arguments."""
    out: list[str] = []
    for kind, text in items:
        if kind == "file":
            out += ["--params-file", text]
        elif kind == "param":
            node, param, _ = parse_param(text)
            declared = {p.name for p in parameters.NODE_PARAMETERS[name]} | set(BUILTIN_PARAMETERS)
            if node in ("", name) and param in declared:
                out += ["-p", f"{param}:={text.partition(':=')[2]}"]
    return out


def make_executor(num_threads: int = 1, context=None):
    """A SingleThreadedExecutor for 1 thread (the default everywhere, see spin_nodes), else a
    MultiThreadedExecutor with ``num_threads``."""
    if num_threads <= 1:
        return SingleThreadedExecutor(context=context)
    return MultiThreadedExecutor(num_threads=num_threads, context=context)


class StopOnSignals:
    """``with StopOnSignals() as stop:`` -- SIGINT / SIGTERM (or ``signals``) set ``stop``
    (an Event), never raise; a second one also sets :attr:`hurry` (skip what is left of a
    clean stop's waiting). ``received`` lists the signals in order of arrival.

    The handlers are installed whatever the inherited disposition (a job started with ``&``
    by a non-interactive shell has SIGINT ignored), except for a signal of ``keep_ignored``
    that is ignored on entry (SIGHUP under ``nohup``). On leaving the block the previous
    handlers come back, or, with ``ignore_after`` (a process on its way out), the signals
    stay ignored: a late second SIGINT must not raise KeyboardInterrupt in the interpreter's
    exit handlers. Only the main thread can install signal handlers; elsewhere this does
    nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, ignore_after: bool = False, signals: Sequence[int] = SIGNALS,
                 keep_ignored: Sequence[int] = ()):
        self.ignore_after = ignore_after
        self.signals, self.keep_ignored = tuple(signals), tuple(keep_ignored)
        self.stop, self.hurry = threading.Event(), threading.Event()
        self.received: list[int] = []
        self._previous: dict = {}

    def _handler(self, signum, _frame) -> None:
        if self.stop.is_set():
            self.hurry.set()
        self.received.append(signum)
        self.stop.set()

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.signals
                              if not (s in self.keep_ignored and signal.getsignal(s) == signal.SIG_IGN)}
        return self.stop

    def __exit__(self, *_exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_IGN if self.ignore_after else handler)


def spin_nodes(nodes, context=None, num_threads: int = 1, stop: threading.Event | None = None) -> None:
    """Spin nodes together until ``stop`` is set (or the context shuts down), then destroy them.

    One thread by default: rclpy's MultiThreadedExecutor costs about twice the CPU per
    callback and, with the detector in the graph, cut its throughput to ~10 frames/s on two
    cores (``benchmarks/bench_executors.py``, ``bench_latency.py --executor``); the nodes'
    callbacks are short and the GIL serialises them anyway. sim_node steps in its own thread.
    """
    stop = stop or threading.Event()
    executor = make_executor(num_threads, context)
    for node in nodes:
        executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok(context=context):
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        if rclpy.ok(context=context):
            rclpy.shutdown(context=context)


def die_with_launcher(environ=os.environ) -> None:
    """In a process started by ``fdl-robot launch``: SIGTERM when the launcher dies (Linux).

    ``prctl(PR_SET_PDEATHSIG)`` asks the kernel for the signal when the parent exits; a
    parent that is gone already (the pid no longer matches) is the same case.
    """
    launcher_pid = environ.get(LAUNCHER_PID_VARIABLE)
    if not launcher_pid or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(launcher_pid):
        os.kill(os.getpid(), signal.SIGTERM)


def apply_priority(environ=os.environ) -> int:
    """SCHED_FIFO at the priority the launcher asked for (``--priority``), for this process
    and every thread it starts later (rclpy's and the DDS's included); 0 if none was asked,
    and then the default scheduler, never a real-time policy inherited from the parent.

    Without the permission (root or CAP_SYS_NICE) the node warns and keeps the default scheduler.
    """
    wanted = int(environ.get(PRIORITY_VARIABLE, "0") or 0)
    reason = set_priority(0, wanted)
    if reason:
        print(f"warning: cannot run under SCHED_FIFO {wanted} ({reason}); using the default scheduler",
              file=sys.stderr, flush=True)
        return 0
    return max(wanted, 0)


#: Set to 1 to get the traceback of a start-up failure besides its one line.
DEBUG_VARIABLE = "FDL_ROBOT_DEBUG"
#: Errors whose message is written for the user: their one line needs no type name.
_PLAIN_ERRORS = (ValueError, RuntimeError, FileNotFoundError, PermissionError)


@contextmanager
def starting(node_name: str):
    """An exception raised inside names the node that failed to start (:func:`startup_line`)."""
    try:
        yield
    except Exception as exc:
        if not hasattr(exc, "fdl_robot_node"):
            exc.fdl_robot_node = node_name
        raise


def startup_line(exc: BaseException, who: str) -> str:
    """``<node>: <reason>``, one line: the node an exception names (:func:`starting`) or ``who``,
    and the first line of the message (with the type's name unless it is one of ours)."""
    node = getattr(exc, "fdl_robot_node", who)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = lines[0] if lines else ""
    if not isinstance(exc, _PLAIN_ERRORS) or not reason:
        reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return reason if reason.startswith(f"{node}: ") else f"{node}: {reason}"


def run_until_signal(make_nodes: Callable[[], Sequence], args: list[str] | None = None, num_threads: int = 1,
                     nodes: Sequence[str] = (), who: str = "") -> int:
    """Init rclpy (no rclpy signal handlers), build the nodes, spin until SIGINT / SIGTERM.

    ``args``: the process's command line (None: ``sys.argv``), whose parameter items are
    checked first against ``nodes`` (the names of the nodes it builds). A signal during
    start-up (the detector loads for seconds) stops right after it. Returns the exit
    status: 0 after a clean stop, 1 when start-up failed; the failure is one line on
    stderr, ``<node>: <reason>`` (``who`` when no node is to blame), with the traceback
    only when ``FDL_ROBOT_DEBUG=1``.
    """
    with StopOnSignals(ignore_after=True) as stop:
        die_with_launcher()
        apply_priority()
        try:
            check_sources(parameter_arguments(sys.argv if args is None else args), nodes)
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
            built = list(make_nodes())
        except Exception as exc:  # noqa: BLE001 - every start-up failure ends as one line
            rclpy.try_shutdown()
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                traceback.print_exc()
            print(startup_line(exc, who or ", ".join(nodes) or "fdl_robot"), file=sys.stderr, flush=True)
            return 1
        spin_nodes(built, num_threads=num_threads, stop=stop)
    return 0


def node_main(make_node: Callable[[], object]) -> Callable[[list[str] | None], None]:
    """The ``main`` of a node's module (``ros2 run fdl_robot <node>``, ``python -m ...``):
    ``make_node`` is its class, or a function that builds it alone in its process.
    ``--help`` (outside ``--ros-args``) lists the node's parameters with their defaults."""
    module = sys.modules[make_node.__module__]
    spec = getattr(module, "__spec__", None)        # python -m runs the module as __main__
    module_name = spec.name if spec is not None else make_node.__module__
    name = next(n for n, node in graphs.NODES.items() if node.module == module_name)

    def main(args: list[str] | None = None) -> None:
        argv = sys.argv if args is None else args
        if {"-h", "--help"} & set(rclpy.utilities.remove_ros_args(argv)[1:]):
            summary = (module.__doc__ or "").strip().splitlines()[:1]
            print(parameters.node_help(name, summary[0] if summary else ""), end="")
            sys.exit(0)

        def make_nodes():
            with starting(name):
                return [make_node()]

        sys.exit(run_until_signal(make_nodes, args, nodes=[name], who=name))

    return main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fdl-robot", description="fdl_robot command line",
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("launch", add_help=False, help="run a node graph, a process per node (like ros2 launch)")
    run = sub.add_parser("run", help="run a node graph in one process", formatter_class=HelpFormatter,
                         usage="%(prog)s [options] [--ros-args --params-file FILE -p [NODE:]NAME:=VALUE ...]",
                         epilog="--ros-args: parameter files and -p items after the graph's YAML (the later\n"
                                "wins, as in ROS 2), and any other ROS argument (-r, --log-level) for every node.")
    run.add_argument("--graph", default="robot", choices=sorted(graphs.GRAPHS), help="node graph to run")
    add_launch_arguments(run)
    add_param_option(run)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:
        from fdl_robot.ros import launcher

        return launcher.main(argv[1:])
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    args, ros_cli = parser.parse_args(argv[:split]), argv[split:]
    names = graphs.graph_nodes(args.graph, args.camera)

    def make_nodes():
        return build_nodes(args.graph, launch_arguments(args), extra_overrides=resolve_overrides(args.param, names),
                           ros_arguments=ros_cli)

    return run_until_signal(make_nodes, ["fdl-robot", *ros_cli], nodes=names, who="fdl-robot run")


if __name__ == "__main__":
    sys.exit(main())

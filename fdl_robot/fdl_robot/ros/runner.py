"""Run fdl_robot nodes: one node per process (every node's ``main``) or a graph in one.

``fdl-robot launch`` (:mod:`fdl_robot.ros.launcher`) starts a process per node, as
``ros2 launch`` does. ``fdl-robot run`` builds the same nodes (:mod:`fdl_robot.ros.graph`,
the same ``--params-file`` and per-node overrides) in ONE process and spins them in one
executor ("manual composition", the only composition rclpy has)::

    fdl-robot launch --graph sim                       # a process per node
    fdl-robot run --graph sim --config config/fdl_robot.yaml     # one process
    fdl-robot run --graph robot --camera-source realsense --namespace arm1

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
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from fdl_robot.ros import graph as graphs
from fdl_robot.ros.launcher import (LAUNCHER_PID_VARIABLE, PRIORITY_VARIABLE, add_launch_arguments,
                                   launch_arguments, ros_args)

SPIN_TIMEOUT_S = 0.1      # the spin loop looks at the stop flag at least this often


def build_nodes(graph: str, args: graphs.LaunchArguments = graphs.DEFAULT_ARGUMENTS, context=None,
                only: list[str] | None = None, extra_overrides: dict[str, dict] | None = None) -> list:
    """Instantiate the nodes of ``graph`` (or the subset ``only``) in this process.

    ``extra_overrides`` ({node name: {parameter: value}}) go after the launch overrides,
    like ``-p`` arguments on a ``ros2 run`` command line.
    """
    config = args.param_files()
    for path in config:
        if not path.is_file():
            raise FileNotFoundError(f"parameters file not found: {path}")
    nodes = []
    try:
        for name in graphs.graph_nodes(graph):
            if only is not None and name not in only:
                continue
            overrides = {**graphs.node_overrides(name, graph, args), **(extra_overrides or {}).get(name, {})}
            nodes.append(graphs.node_class(name)(context=context, cli_args=ros_args(config, overrides),
                                                 namespace=args.namespace or None))
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def make_executor(num_threads: int = 1, context=None):
    """A SingleThreadedExecutor for 1 thread (the default everywhere, see spin_nodes), else a
    MultiThreadedExecutor with ``num_threads``."""
    if num_threads <= 1:
        return SingleThreadedExecutor(context=context)
    return MultiThreadedExecutor(num_threads=num_threads, context=context)


class StopOnSignals:
    """``with StopOnSignals() as stop:`` -- SIGINT / SIGTERM set ``stop`` (an Event), never raise.

    On leaving the block the previous handlers come back, or, with ``ignore_after`` (a
    process on its way out), the signals stay ignored: a late second SIGINT must not raise
    KeyboardInterrupt in the interpreter's exit handlers. Only the main thread can install
    signal handlers; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, ignore_after: bool = False):
        self.ignore_after = ignore_after
        self.stop = threading.Event()
        self.received: list[int] = []
        self._previous: dict = {}

    def _handler(self, signum, _frame) -> None:
        self.received.append(signum)
        self.stop.set()

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
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
    and every thread it starts later (rclpy's and the DDS's included); 0 if none was asked.

    Without the permission (root or CAP_SYS_NICE) the node warns and keeps the default scheduler.
    """
    wanted = int(environ.get(PRIORITY_VARIABLE, "0") or 0)
    if wanted <= 0:
        return 0
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(wanted))
    except (PermissionError, OSError) as exc:
        print(f"warning: cannot run under SCHED_FIFO {wanted} ({exc}); using the default scheduler",
              file=sys.stderr, flush=True)
        return 0
    return wanted


def run_until_signal(make_nodes: Callable[[], Sequence], args: list[str] | None = None, num_threads: int = 1) -> int:
    """Init rclpy (no rclpy signal handlers), build the nodes, spin until SIGINT / SIGTERM.

    A signal during start-up (the detector loads for seconds) stops right after it.
    Returns the exit status: 0 after a clean stop.
    """
    with StopOnSignals(ignore_after=True) as stop:
        die_with_launcher()
        apply_priority()
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        try:
            nodes = list(make_nodes())
        except BaseException:
            rclpy.try_shutdown()
            raise
        spin_nodes(nodes, num_threads=num_threads, stop=stop)
    return 0


def node_main(make_node: Callable[[], object]) -> Callable[[list[str] | None], None]:
    """The ``main`` of a node's module (``ros2 run fdl_robot <node>``, ``python -m ...``):
    ``make_node`` is its class, or a function that builds it alone in its process."""
    def main(args: list[str] | None = None) -> None:
        sys.exit(run_until_signal(lambda: [make_node()], args))

    return main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fdl-robot", description="fdl_robot command line")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("launch", add_help=False, help="run a node graph, a process per node (like ros2 launch)")
    run = sub.add_parser("run", help="run a node graph in one process")
    run.add_argument("--graph", default="robot", choices=sorted(graphs.GRAPHS))
    add_launch_arguments(run)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:
        from fdl_robot.ros import launcher

        return launcher.main(argv[1:])
    args, ros_cli = parser.parse_known_args(argv)
    return run_until_signal(lambda: build_nodes(args.graph, launch_arguments(args)), ros_cli or None)


if __name__ == "__main__":
    sys.exit(main())

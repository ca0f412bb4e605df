"""``fdl-robot-bag``: record, play, inspect and repair rosbag2 bags without rosbag2.

    fdl-robot-bag record -o run1 /camera/color/image_raw /joint_states   # Ctrl-C stops
    fdl-robot-bag record -o run1 --all --duration 10
    fdl-robot-bag play run1 --rate 0.5 --clock
    fdl-robot-bag play run1 --fast --topics /camera/color/image_raw
    fdl-robot-bag info run1
    fdl-robot-bag reindex run1          # a recording whose recorder was killed

Bags are rosbag2 directories (metadata.yaml + one .mcap or .db3 file) that ``ros2 bag``
reads on a real install; see :mod:`fdl_robot.bags`. ROS arguments (``--ros-args ...``)
after the options go to the recorder's or player's node.

Stopping a recording: SIGINT (Ctrl-C), SIGTERM (``timeout``, systemd, docker stop, ``kill``)
and SIGHUP (the terminal closed) all end it the same way: the messages already received
are taken and written, then the mcap's summary and footer and metadata.yaml. The recorder
installs these handlers itself, so a recorder started with ``&`` from a script, where
SIGINT arrives ignored, stops on SIGINT too. One exception: a SIGHUP that arrives ignored
(``nohup``) stays ignored, as nohup asks. A second signal skips the wait for queued
messages. After SIGKILL or a power loss, ``fdl-robot-bag reindex`` recovers the file
(:mod:`fdl_robot.bags.recovery`); the recorder writes what it received every
``--flush-period`` seconds so that little is lost.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime

from fdl_robot.cli_format import HelpFormatter

__all__ = ["main", "STOP_SIGNALS"]

#: Signals that end a recording cleanly (SIGHUP not under nohup).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _drain(executor, recorder, hurry: threading.Event | None = None, quiet_s: float = 0.2,
           limit_s: float = 2.0) -> None:
    """Take what is still queued: spin until the recorder has written nothing new for
    ``quiet_s`` (at most ``limit_s``; at once when ``hurry`` is set)."""
    end, quiet_until = time.monotonic() + limit_s, time.monotonic() + quiet_s
    written = sum(recorder.counts.values())
    try:
        while time.monotonic() < min(end, quiet_until) and not (hurry and hurry.is_set()):
            executor.spin_once(timeout_sec=0.02)
            if (now_written := sum(recorder.counts.values())) != written:
                written, quiet_until = now_written, time.monotonic() + quiet_s
    except Exception:  # noqa: BLE001 - the context may be shut down already (external shutdown)
        pass


def _record(args, ros_args) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from fdl_robot.bags.recorder import BagRecorder

    out = args.output or datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S")

    # rclpy's own handlers would shut the context down at the first signal; ours only set a
    # flag, so the messages already delivered to the subscriptions are still taken and
    # written (drain below) before the bag is closed.
    from fdl_robot.ros.runner import StopOnSignals

    signals = StopOnSignals(signals=STOP_SIGNALS, keep_ignored=(signal.SIGHUP,))
    with signals:
        rclpy.init(args=ros_args, signal_handler_options=SignalHandlerOptions.NO)
        node = rclpy.create_node("fdl_bag_recorder", parameter_overrides=[
            Parameter("use_sim_time", value=args.use_sim_time)])
        recorder = BagRecorder(node, out, args.topics or None, all_topics=args.all,
                               storage=args.storage, version=args.version,
                               compress=not args.no_compress, flush_period_s=args.flush_period)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        end = time.monotonic() + args.duration if args.duration else None
        try:
            while (not signals.stop.is_set() and rclpy.ok()
                   and (end is None or time.monotonic() < end)):
                executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            _drain(executor, recorder, signals.hurry)
            recorder.close()
            node.destroy_node()
            rclpy.try_shutdown()
    total = sum(recorder.counts.values())
    why = f" (stopped by {signal.Signals(signals.received[0]).name})" if signals.received else ""
    print(f"wrote {total} messages on {len(recorder.recording)} topics to {out}{why}")
    for topic, reason in recorder.skipped.items():
        print(f"  not recorded: {topic}: {reason}", file=sys.stderr)
    return 0


def _play(args, ros_args) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from fdl_robot.bags.player import BagPlayer

    remap = {}
    for item in args.remap:
        src, sep, dst = item.partition(":=")
        if not sep:
            raise SystemExit(f"--remap expects FROM:=TO, got {item!r}")
        remap[src] = dst
    rclpy.init(args=ros_args)
    node = rclpy.create_node("fdl_bag_player")
    player = BagPlayer(node, args.bag, topics=args.topics or None, remap=remap,
                       publish_clock=args.clock is not None,
                       clock_period_s=1.0 / args.clock if args.clock else 0.025)
    executor = SingleThreadedExecutor()          # discovery, parameter services
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
    spinner.start()
    try:
        if args.wait_for_subscribers:
            try:
                player.wait_for_subscribers(list(player.publishers), lambda: time.sleep(0.01),
                                            timeout_s=args.wait_for_subscribers)
            except TimeoutError as exc:
                print(f"playing anyway: {exc}", file=sys.stderr)
        time.sleep(args.delay)
        stats = player.play(rate=0.0 if args.fast else args.rate, loop=args.loop)
        print(f"published {stats.messages} messages: {stats.bag_span_s:.2f} s of recording in "
              f"{stats.wall_s:.2f} s (max lateness {stats.max_lateness_s * 1000:.1f} ms)")
    except KeyboardInterrupt:
        player.stop()
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        player.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _spin(executor) -> None:
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def _info(args, _ros_args) -> int:
    from fdl_robot.bags.reader import format_summary, summarize

    print(format_summary(summarize(args.bag)))
    return 0


def _reindex(args, _ros_args) -> int:
    from fdl_robot.bags.recovery import format_result, reindex

    try:
        result = reindex(args.bag, keep_original=not args.no_backup, force=args.force,
                         compress=not args.no_compress)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"fdl-robot-bag reindex: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    from fdl_robot.bags.recorder import FLUSH_PERIOD_S

    parser = argparse.ArgumentParser(prog="fdl-robot-bag", description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="record topics into a new bag", formatter_class=HelpFormatter)
    rec.add_argument("topics", nargs="*", help="topics to record")
    rec.add_argument("-a", "--all", action="store_true", help="record every topic (not /rosout, "
                     "/parameter_events, hidden topics)")
    rec.add_argument("-o", "--output", default="", help="bag directory to create "
                     "(default: rosbag2_<date>-<time>)")
    rec.add_argument("-s", "--storage", default="mcap", choices=["mcap", "sqlite3"])
    rec.add_argument("--version", type=int, default=8, choices=[8, 9],
                     help="rosbag2 metadata version (8: readable by Humble..Kilted; 9: Kilted+)")
    rec.add_argument("--no-compress", action="store_true", help="no zstd chunk compression (mcap)")
    rec.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    rec.add_argument("--use-sim-time", action="store_true", help="stamp with /clock time")
    rec.add_argument("--flush-period", type=float, default=FLUSH_PERIOD_S, metavar="S",
                     help="write what was received to the file every S seconds, so that a "
                     "SIGKILL loses at most about S s (0: only per MiB of messages; default %(default)s)")
    rec.set_defaults(run=_record)

    play = sub.add_parser("play", help="publish a bag's messages", formatter_class=HelpFormatter)
    play.add_argument("bag")
    play.add_argument("-r", "--rate", type=float, default=1.0, help="playback speed factor")
    play.add_argument("--fast", action="store_true", help="as fast as possible")
    play.add_argument("--clock", type=float, nargs="?", const=40.0, default=None, metavar="HZ",
                      help="publish /clock with the bag time (between messages at HZ, default 40)")
    play.add_argument("--topics", nargs="+", default=[], help="play only these topics")
    play.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO")
    play.add_argument("-l", "--loop", action="store_true")
    play.add_argument("-d", "--delay", type=float, default=0.5,
                      help="seconds to wait before playing (discovery)")
    play.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="TIMEOUT_S",
                      help="first wait (at most this long) until every played topic has a subscriber")
    play.set_defaults(run=_play)

    info = sub.add_parser("info", help="summarise a bag", formatter_class=HelpFormatter)
    info.add_argument("bag")
    info.set_defaults(run=_info)

    rdx = sub.add_parser("reindex", help="rebuild metadata.yaml and the mcap index of a recording "
                         "that was not closed (recorder killed, power lost)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rdx.add_argument("bag", help="bag directory (or its .mcap file)")
    rdx.add_argument("--no-backup", action="store_true",
                     help="do not keep the damaged file as <file>.orig")
    rdx.add_argument("--force", action="store_true", help="rewrite a bag that is complete too")
    rdx.add_argument("--no-compress", action="store_true", help="no zstd chunk compression")
    rdx.set_defaults(run=_reindex)

    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = None
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], ["fdl-robot-bag"] + argv[i:]
    args = parser.parse_args(argv)
    if args.command == "record":            # the bag directory is checked before recording starts
        from fdl_robot.outputs import BAG, OutputError, check

        if not args.output:
            args.output = datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S")
        try:
            check(args.output, BAG, "--output")
        except OutputError as exc:
            rec.error(str(exc))
    from fdl_robot.bags.reader import BagError

    try:
        return args.run(args, ros_args)
    except BagError as exc:
        print(f"fdl-robot-bag {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

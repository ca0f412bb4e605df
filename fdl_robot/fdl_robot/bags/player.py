"""Play a rosbag2 bag (mcap or sqlite3) into the ROS graph with rclpy and rosbags.

    player = BagPlayer(node, "run1", publish_clock=True)
    stats = player.play(rate=1.0)           # recorded timing; rate=0: as fast as possible
    player.close()

or frame by frame, e.g. for deterministic tests::

    player.publish_until("/camera/color/image_raw")    # everything up to the next image

What ``ros2 bag play`` does, in Python:

* one publisher per topic, typed by the recorded type (its rclpy class must be
  importable) and with a QoS from the recorded offers
  (:func:`fdl_robot.bags.qos.playback_qos`); the recorded CDR bytes are published as
  they are (``Publisher.publish(bytes)``), never deserialized;
* messages go out in the order of their recorded (receipt) times, message i at
  ``t_start + (t_i - t_0) / rate`` of the wall clock; ``rate <= 0`` publishes as fast
  as possible; a message that is late is published at once (the schedule is not
  shifted, so one slow publish does not delay all that follow);
* ``publish_clock``: ``rosgraph_msgs/Clock`` with the bag time on ``clock_topic``, before
  each message and every ``clock_period_s`` while waiting, so nodes with
  ``use_sim_time`` run on the recording's time line;
* ``namespace`` prefixes every recorded (absolute) topic name, ``remap`` renames single
  topics (applied first); ``topics`` selects what to play.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from fdl_robot.bags.qos import playback_qos
from fdl_robot.bags.reader import open_reader
from fdl_robot.bags.recorder import message_class

__all__ = ["BagPlayer", "BagMessage", "PlayStats"]

CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: topic (as recorded), receipt time (ns), type, CDR bytes."""

    topic: str
    timestamp_ns: int
    msgtype: str
    data: bytes


@dataclass(frozen=True)
class PlayStats:
    messages: int
    bag_span_s: float          # recorded time from the first to the last message played
    wall_s: float              # wall-clock time from the first to the last publish
    max_lateness_s: float      # largest delay of a publish behind its schedule (paced play)


def _ns_to_clock(t_ns: int) -> Clock:
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
    return msg


class BagPlayer:
    """Publishes the messages of a bag through ``node`` (see the module docstring)."""

    def __init__(self, node, path: str | Path, *, topics: list[str] | None = None,
                 namespace: str = "", remap: dict[str, str] | None = None,
                 publish_clock: bool = False, clock_topic: str = "/clock",
                 clock_period_s: float = 0.025, qos: dict[str, QoSProfile] | None = None):
        self.node = node
        self.path = Path(path)
        self.namespace = namespace.rstrip("/")
        self.remap = dict(remap or {})
        self.clock_period_s = float(clock_period_s)
        self.reader = open_reader(self.path)          # BagError: one line, says what to do
        try:
            by_topic = defaultdict(list)
            for c in self.reader.connections:
                if topics is None or c.topic in topics:
                    by_topic[c.topic].append(c)
            missing = sorted(set(topics or ()) - set(by_topic))
            if missing:
                raise KeyError(f"{self.path} has no topic {missing}; it has "
                               f"{sorted(c.topic for c in self.reader.connections)}")
            self.connections = [c for conns in by_topic.values() for c in conns]
            self.publishers = {}
            for topic, conns in by_topic.items():
                msgtypes = {c.msgtype for c in conns}
                if len(msgtypes) > 1:
                    raise ValueError(f"{topic} was recorded with several types {sorted(msgtypes)}")
                offers = [q for c in conns for q in c.ext.offered_qos_profiles]
                profile = (qos or {}).get(topic) or playback_qos(offers)
                self.publishers[topic] = node.create_publisher(
                    message_class(msgtypes.pop()), self.output_topic(topic), profile)
            self.clock_pub = (node.create_publisher(Clock, clock_topic, CLOCK_QOS)
                              if publish_clock else None)
        except BaseException:
            self.reader.close()
            raise
        self.start_ns = self.reader.start_time
        self.end_ns = self.reader.end_time
        self.published = 0
        self._stop = threading.Event()
        self._pending: BagMessage | None = None
        self._iter = self.messages()

    # --- reading ------------------------------------------------------------------------

    def output_topic(self, topic: str) -> str:
        """The name a recorded topic is published under."""
        if topic in self.remap:
            return self.remap[topic]
        return self.namespace + topic if topic.startswith("/") else topic

    def messages(self):
        """Every selected message of the bag, in recorded time order (a new generator)."""
        for conn, t_ns, data in self.reader.messages(self.connections):
            yield BagMessage(conn.topic, t_ns, conn.msgtype, data if isinstance(data, bytes) else bytes(data))

    def rewind(self) -> None:
        """Start again from the first message."""
        self._pending = None
        self._iter = self.messages()

    def _next(self) -> BagMessage | None:
        if self._pending is not None:
            msg, self._pending = self._pending, None
            return msg
        return next(self._iter, None)

    def peek(self) -> BagMessage | None:
        """The next message to publish (None at the end), without publishing it."""
        if self._pending is None:
            self._pending = next(self._iter, None)
        return self._pending

    # --- publishing ---------------------------------------------------------------------

    def wait_for_subscribers(self, topics: list[str], spin, timeout_s: float = 5.0) -> None:
        """Call ``spin()`` until each recorded topic in ``topics`` has a subscriber."""
        end = time.monotonic() + timeout_s
        for topic in topics:
            pub = self.publishers[topic]
            while pub.get_subscription_count() < 1:
                if time.monotonic() > end:
                    raise TimeoutError(f"no subscriber on {pub.topic_name}")
                spin()

    def publish_clock(self, t_ns: int) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(_ns_to_clock(t_ns))

    def _publish(self, msg: BagMessage) -> None:
        self.publish_clock(msg.timestamp_ns)
        self.publishers[msg.topic].publish(msg.data)
        self.published += 1

    def publish_next(self) -> BagMessage | None:
        """Publish the next message now; None at the end of the bag."""
        msg = self._next()
        if msg is not None:
            self._publish(msg)
        return msg

    def publish_until(self, topic: str) -> list[BagMessage]:
        """Publish messages up to and including the next one on ``topic`` (all if none)."""
        out = []
        while (msg := self.publish_next()) is not None:
            out.append(msg)
            if msg.topic == topic:
                break
        return out

    def play(self, rate: float = 1.0, loop: bool = False) -> PlayStats:
        """Publish the rest of the bag at ``rate`` x recorded speed (<= 0: as fast as possible).

        Blocks until the end (or :meth:`stop`); safe to run in a thread while an executor
        spins the subscribers elsewhere.
        """
        self._stop.clear()
        n, lateness = 0, 0.0
        first_t = last_t = None
        wall0 = wall_first = wall_last = None
        while not self._stop.is_set():
            msg = self._next()
            if msg is None:
                if not loop or n == 0:
                    break
                self.rewind()
                wall0, first_t = None, None             # a new pass starts its own schedule
                continue
            if wall0 is None:
                wall0, first_t = time.monotonic(), msg.timestamp_ns
            if rate > 0:
                due = wall0 + (msg.timestamp_ns - first_t) * 1e-9 / rate
                self._wait_until(due, msg.timestamp_ns, first_t, wall0, rate)
                if self._stop.is_set():
                    self._pending = msg
                    break
                lateness = max(lateness, time.monotonic() - due)
            self._publish(msg)
            now = time.monotonic()
            wall_first = now if wall_first is None else wall_first
            wall_last = now
            last_t = msg.timestamp_ns if last_t is None else max(last_t, msg.timestamp_ns)
            n += 1
        span = 0.0 if last_t is None else (last_t - (first_t or last_t)) * 1e-9
        wall = 0.0 if wall_first is None else wall_last - wall_first
        return PlayStats(n, span, wall, lateness)

    def _wait_until(self, due: float, due_t: int, first_t: int, wall0: float, rate: float) -> None:
        while True:
            remaining = due - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return
            if self.clock_pub is None:
                self._stop.wait(remaining)
                continue
            self._stop.wait(min(remaining, self.clock_period_s))
            self.publish_clock(min(due_t, first_t + int((time.monotonic() - wall0) * rate * 1e9)))

    def stop(self) -> None:
        """Make a running :meth:`play` return after the message it is waiting for."""
        self._stop.set()

    def close(self, ack_timeout_s: float = 2.0) -> None:
        """Stop, wait until reliable subscribers acknowledged what was published, release.

        Without the wait, a player that exits right after a fast burst destroys its writers
        while the last samples are still in their history, and a recorder in another
        process loses them (seen in CI: 2 of 13).
        """
        from rclpy.duration import Duration

        self.stop()
        for pub in self.publishers.values():
            try:
                pub.wait_for_all_acked(Duration(seconds=ack_timeout_s))
            except Exception:  # noqa: BLE001 - best effort: a context already shut down
                pass
            self.node.destroy_publisher(pub)
        if self.clock_pub is not None:
            self.node.destroy_publisher(self.clock_pub)
        self.publishers = {}
        if self.reader.is_open:
            self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Record ROS 2 topics into a rosbag2 bag (mcap or sqlite3) with rclpy and rosbags.

    recorder = BagRecorder(node, "run1", ["/camera/color/image_raw", "/joint_states"])
    ...spin node...
    recorder.close()                      # writes the mcap index and metadata.yaml

What ``ros2 bag record`` does, in Python:

* Topics are found by discovery (a timer on the node polls every
  ``discovery_period_s``): a topic is subscribed once it has a publisher, with the
  type discovery reports and a QoS adapted to what the publishers offer
  (:func:`fdl_robot.bags.qos.recording_qos`); their offered profiles go into the bag.
* Subscriptions are raw (``raw=True``): rclpy hands over the CDR bytes it received and
  they are written as they are, never deserialized and serialized again.
* Each message is stamped with the node's clock at receipt (``use_sim_time`` on the
  node gives simulated time, as ``ros2 bag record --use-sim-time``).
* Message definitions come from :func:`fdl_robot.bags.typestore.typestore` (the pinned
  distribution plus ``fdl_robot_interfaces`` and any other installed ``.msg``); the
  writer embeds them as mcap schemas (``ros2msg``) and their RIHS01 hashes as
  ``type_description_hash``.

Bag format (:func:`open_writer`): rosbag2 metadata **version 8** by default, the newest
that every ``ros2 bag`` from Humble to Kilted reads (version 9, Kilted's, stores the
QoS profiles as a YAML list that Jazzy and Humble cannot parse; pass ``version=9`` to
get it); mcap storage with zstd chunk compression (what rosbag2's ``zstd_fast`` mcap
preset writes: compressed chunks, no rosbag2-level compression).

Surviving a kill (:meth:`BagRecorder.flush`): rosbags' mcap writer keeps the open chunk
(up to 1 MiB of messages) in memory and writes the summary, the footer and metadata.yaml
only in ``close()``. So every ``flush_period_s`` (and on :meth:`close`) the recorder ends
the chunk and hands it to the operating system: after SIGKILL the file holds every
message received more than about ``flush_period_s`` before the kill (page cache: a power
loss can take more), and ``fdl-robot-bag reindex`` (:mod:`fdl_robot.bags.recovery`)
rebuilds the rest. This reaches into rosbags' ``McapWriter`` (``storage.chunk``,
``close_chunk()``, ``bio``); with another storage or version it does nothing and says so
once. sqlite3 bags (rosbags commits only at close) get no such protection.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from importlib import import_module
from pathlib import Path

from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from fdl_robot.bags.qos import recording_qos, to_bag_qos
from fdl_robot.bags.typestore import ensure_types, typestore

__all__ = ["BagRecorder", "open_writer", "message_class", "DEFAULT_VERSION", "EXCLUDED_TOPICS",
           "FLUSH_PERIOD_S"]

DEFAULT_VERSION = 8
#: Longest time a received message stays in memory only (see "Surviving a kill").
FLUSH_PERIOD_S = 0.5
#: Not recorded by ``all_topics``: per-node infrastructure, as rosbag2's defaults.
EXCLUDED_TOPICS = ("/rosout", "/parameter_events")


def open_writer(path: str | Path, storage: str = "mcap", version: int = DEFAULT_VERSION,
                compress: bool = True, custom_data: dict[str, str] | None = None) -> Writer:
    """An open rosbags Writer for a new bag directory ``path``.

    ``storage`` 'mcap' (default) or 'sqlite3'; ``compress`` zstd-compresses mcap chunks
    (ignored for sqlite3). ``custom_data`` goes into metadata.yaml (strings only).
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
    writer = Writer(Path(path), version=version, storage_plugin=plugins[storage])
    if compress and storage == "mcap":
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    # An empty custom_data is written as null, which yaml-cpp readers dislike: always set one.
    writer.set_custom_data("recorded_by", "fdl_robot")
    for key, value in (custom_data or {}).items():
        writer.set_custom_data(str(key), str(value))
    writer.open()
    return writer


def message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name``."""
    pkg, kind, name = msgtype.split("/")
    return getattr(import_module(f"{pkg}.{kind}"), name)


class BagRecorder:
    """Records topics seen by ``node`` into a new bag (see the module docstring).

    ``topics``: names to record (relative names resolve in the node's namespace); None
    with ``all_topics=True`` records every topic but :data:`EXCLUDED_TOPICS` and hidden
    ones. ``counts`` holds messages written per topic, ``skipped`` topics that cannot be
    recorded (unknown type definition) with the reason. Callbacks may run on several
    executor threads: writes are serialised by a lock. ``flush_period_s`` (0: never, rosbags
    writes a chunk per MiB) bounds what a kill loses, see the module docstring.
    """

    def __init__(self, node, path: str | Path, topics: list[str] | None = None, *,
                 all_topics: bool = False, storage: str = "mcap", version: int = DEFAULT_VERSION,
                 compress: bool = True, custom_data: dict[str, str] | None = None,
                 discovery_period_s: float = 0.1, flush_period_s: float = FLUSH_PERIOD_S):
        if not topics and not all_topics:
            raise ValueError("name the topics to record or set all_topics=True")
        self.node = node
        self.path = Path(path)
        self.topics = None if all_topics else [node.resolve_topic_name(t) for t in topics]
        self.store = typestore()
        self.counts: Counter[str] = Counter()
        self.skipped: dict[str, str] = {}
        self._lock = threading.Lock()
        self._subscriptions: dict[str, object] = {}
        self._connections: dict[str, object] = {}
        self._writer = open_writer(self.path, storage, version, compress, custom_data)
        self._sync_file()                     # the mcap magic and header: a valid start at once
        self._closed = False
        self.flush_period_s = float(flush_period_s)
        self._flushed_at = time.monotonic()
        self._can_flush = True
        self._timer = node.create_timer(discovery_period_s, self._tick)
        self.discover()

    @property
    def recording(self) -> list[str]:
        """Topics recorded so far."""
        return sorted(self._connections)

    def _wanted(self, topic: str) -> bool:
        if self.topics is not None:
            return topic in self.topics
        return topic not in EXCLUDED_TOPICS and not any(p.startswith("_") for p in topic.split("/"))

    def _tick(self) -> None:
        self.discover()
        if self.flush_period_s > 0 and time.monotonic() - self._flushed_at >= self.flush_period_s:
            self.flush()

    def flush(self) -> None:
        """Write the messages held in memory (rosbags' open mcap chunk) to the file now."""
        with self._lock:
            self._flushed_at = time.monotonic()
            if self._closed or not self._can_flush:
                return
            storage = getattr(self._writer, "storage", None)
            chunk = getattr(storage, "chunk", None)
            if not all(hasattr(x, a) for x, a in ((storage, "close_chunk"), (storage, "bio"),
                                                  (chunk, "msgs"))):
                self._can_flush = False
                self.node.get_logger().warning(
                    f"{type(storage).__name__} storage: cannot flush while recording; a kill "
                    "loses what was received since the recording started")
                return
            if chunk.msgs:                         # schemas and channels alone wait for a message
                storage.close_chunk()
                self._sync_file()

    def _sync_file(self) -> None:
        """Hand what rosbags' writer buffered in its file object to the operating system."""
        bio = getattr(getattr(self._writer, "storage", None), "bio", None)
        if hasattr(bio, "flush"):
            bio.flush()

    def discover(self) -> None:
        """Subscribe to wanted topics that have appeared (called by the timer)."""
        if self._closed:
            return
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._connections or topic in self.skipped or not self._wanted(topic):
                continue
            offers = self.node.get_publishers_info_by_topic(topic)
            if not offers:
                continue                          # only subscribers so far: no QoS to adapt to
            self._subscribe(topic, types[0], [o.qos_profile for o in offers])

    def _subscribe(self, topic: str, msgtype: str, offers: list) -> None:
        try:
            ensure_types(self.store, [msgtype])
            cls = message_class(msgtype)
        except (KeyError, ImportError, AttributeError, ValueError) as exc:
            self.skipped[topic] = f"{msgtype}: {exc}"
            self.node.get_logger().warning(f"not recording {topic}: {self.skipped[topic]}")
            return
        with self._lock:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self.store,
                offered_qos_profiles=[to_bag_qos(q) for q in offers])
        self._subscriptions[topic] = self.node.create_subscription(
            cls, topic, lambda data, t=topic: self._on_message(t, data), recording_qos(offers),
            raw=True)
        self.node.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp_ns = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed:
                return
            self._writer.write(self._connections[topic], stamp_ns, data)
            self.counts[topic] += 1
        if self.flush_period_s > 0 and time.monotonic() - self._flushed_at >= self.flush_period_s:
            self.flush()

    def write(self, topic: str, msg, qos=None) -> None:
        """Write ``msg`` (an rclpy message made by this process, not received) on ``topic``,
        stamped with the node's clock now, as if a publisher with ``qos`` (default: reliable,
        volatile, depth 10) had sent it: for markers such as an episode's start and end, which
        must not depend on discovery. Flushed like received messages."""
        from rclpy.qos import QoSProfile

        from fdl_robot.bags.cdr import msgtype_of, serialize

        topic = self.node.resolve_topic_name(topic)
        msgtype = msgtype_of(msg)
        with self._lock:
            if self._closed:
                return
            if topic not in self._connections:
                ensure_types(self.store, [msgtype])
                self._connections[topic] = self._writer.add_connection(
                    topic, msgtype, typestore=self.store,
                    offered_qos_profiles=[to_bag_qos(qos or QoSProfile(depth=10))])
            self._writer.write(self._connections[topic], self.node.get_clock().now().nanoseconds,
                               serialize(msg, self.store))
            self.counts[topic] += 1
        self.flush()

    def close(self) -> None:
        """Stop recording and finish the bag (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.node.destroy_timer(self._timer)
        for sub in self._subscriptions.values():
            self.node.destroy_subscription(sub)
        self._subscriptions = {}
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

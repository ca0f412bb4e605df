"""Read rosbag2 bags into rclpy messages, and summarise them (``fdl-robot-bag info``).

:func:`open_reader` opens every bag the tools read (info, play, replay): a bag that cannot
be read is a :class:`BagError` of one line that says why and, for a recording that was
never closed (no metadata.yaml, or an mcap without its footer), how to recover it.
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rosbags.rosbag2 import Reader, ReaderError

__all__ = ["BagError", "open_reader", "read_messages", "BagSummary", "TopicSummary", "summarize",
           "format_summary"]


class BagError(RuntimeError):
    """A bag that cannot be read (the message is one line)."""


def _reindex_hint(path: Path) -> str:
    return f"if its recorder was killed, recover it with: fdl-robot-bag reindex {path}"


def open_reader(path: str | Path) -> Reader:
    """An open rosbags Reader of ``path`` (a bag directory or one .mcap/.db3 file).

    Raises :class:`BagError` naming the bag and the fault. Close it when done
    (``with contextlib.closing(open_reader(path)) as reader``).
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        if any(path.glob("*.mcap")) or any(path.glob("*.db3")):
            raise BagError(f"{path} has no metadata.yaml: the recording was not closed; "
                           + _reindex_hint(path))
        raise BagError(f"{path} is not a rosbag2 bag (no metadata.yaml, no .mcap or .db3 file)")
    reader = Reader(path)
    try:
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        text = str(exc).rstrip(".") or type(exc).__name__
        raise BagError(f"cannot read {path}: {text}; " + _reindex_hint(path)) from None
    return reader


def read_messages(path: str | Path, topics: list[str] | None = None):
    """Yield ``(topic, receipt time ns, rclpy message)`` in recorded order.

    Messages are deserialized by rclpy (``rclpy.serialization.deserialize_message``) into
    the classes a node would receive, so evaluation code needs no second message model.
    """
    from rclpy.serialization import deserialize_message

    from fdl_robot.bags.recorder import message_class

    with closing(open_reader(path)) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        classes = {c.id: message_class(c.msgtype) for c in conns}
        for conn, t_ns, data in reader.messages(conns):
            yield conn.topic, t_ns, deserialize_message(bytes(data), classes[conn.id])


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str
    count: int
    serialization_format: str
    offered_qos: list


@dataclass(frozen=True)
class BagSummary:
    path: Path
    files: list[tuple[str, int]]      # (file name, size in bytes)
    storage: str
    version: int | None
    ros_distro: str | None
    start_ns: int
    end_ns: int
    message_count: int
    compression: str
    topics: list[TopicSummary]

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9


def summarize(path: str | Path) -> BagSummary:
    """What ``ros2 bag info`` shows, from the bag's metadata and storage index."""
    import yaml

    path = Path(path)
    meta = {}
    if (path / "metadata.yaml").is_file():
        meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    with closing(open_reader(path)) as reader:
        topics = [TopicSummary(name, info.msgtype or "?", info.msgcount,
                               info.connections[0].ext.serialization_format,
                               [q for c in info.connections for q in c.ext.offered_qos_profiles])
                  for name, info in sorted(reader.topics.items())]
        start, end, count = reader.start_time, reader.end_time - 1, reader.message_count  # end: exclusive
        compression = "/".join(x for x in (reader.compression_format, reader.compression_mode) if x)
        chunks = _mcap_chunk_compression(reader)
        if chunks:
            compression = (compression + ", " if compression else "") + f"mcap chunks: {chunks}"
        distro = reader.ros_distro
    if path.is_dir():
        names = meta.get("relative_file_paths") or [p.name for p in path.iterdir()
                                                    if p.suffix in (".mcap", ".db3")]
    else:
        names = [path.name]
    base = path if path.is_dir() else path.parent
    files = [(n, (base / n).stat().st_size if (base / n).exists() else 0) for n in names]
    if start > end:                                    # an empty bag
        start = end = 0
    return BagSummary(path, files, meta.get("storage_identifier", path.suffix.lstrip(".")),
                      meta.get("version"), distro, start, end, count, compression or "none", topics)


def _mcap_chunk_compression(reader) -> str:
    """Chunk compression of mcap storage ('' when none or not mcap; rosbags internals)."""
    try:
        storages = getattr(reader.storage, "storages", None) or [reader.storage]
        found = {c.compression for st in storages for c in getattr(st, "chunks", [])}
    except Exception:  # noqa: BLE001 - a summary must not fail on a reader detail
        return ""
    return "/".join(sorted(c for c in found if c))


def _time(ns: int) -> str:
    stamp = datetime.fromtimestamp(ns * 1e-9, tz=timezone.utc)
    return f"{stamp:%b %d %Y %H:%M:%S.%f}"[:-3] + f" UTC ({ns * 1e-9:.9f})"


def format_summary(s: BagSummary) -> str:
    size = sum(n for _, n in s.files)
    lines = [
        f"Files:             {', '.join(n for n, _ in s.files)}",
        f"Bag size:          {size / 2**20:.1f} MiB",
        f"Storage id:        {s.storage}" + (f" (rosbag2 metadata version {s.version})" if s.version else ""),
        f"ROS distro:        {s.ros_distro or '-'}",
        f"Duration:          {s.duration_s:.3f}s",
        f"Start:             {_time(s.start_ns)}",
        f"End:               {_time(s.end_ns)}",
        f"Messages:          {s.message_count}",
        f"Compression:       {s.compression}",
        "Topic information:",
    ]
    for t in s.topics:
        qos = sorted({f"{q.reliability.name.lower()}/{q.durability.name.lower()}" for q in t.offered_qos})
        lines.append(f"  Topic: {t.name} | Type: {t.msgtype} | Count: {t.count} | "
                     f"Serialization Format: {t.serialization_format} | QoS: {', '.join(qos) or '-'}")
    return "\n".join(lines)

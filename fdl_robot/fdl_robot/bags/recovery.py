"""Recover a recording that was never closed: ``fdl-robot-bag reindex BAG``.

What a killed recorder (SIGKILL, OOM killer, power loss) leaves: rosbags' mcap writer, like
rosbag2's, writes the summary (schemas, channels, chunk indexes, statistics), the footer
and metadata.yaml only when the bag is closed. Before that the file is the header and the
chunks written so far (schemas and channels inside them, each chunk followed by its
message indexes), and it may end inside a record. rosbags and ``ros2 bag info`` refuse
such a file ("File end magic is invalid", no metadata.yaml).

:func:`reindex` does what ``ros2 bag reindex`` does for metadata, and rebuilds the mcap's
index and summary too:

1. **Framing scan** (:func:`scan_records`), the only hand-written parsing: after the 8-byte
   magic every MCAP record is ``opcode: u8, length: u64 little endian, body[length]``
   (MCAP specification, "Records"). The scan walks these headers and stops at the first
   record that the end of the file cuts off (dropped, and reported with its size) or at
   an invalid opcode 0x00 (zeros where a power loss left blocks unwritten).
2. **Record contents** are read by the ``mcap`` package (its ``StreamReader`` on each
   complete record): schemas, channels and messages, chunks decompressed, CRCs checked
   where the writer set them. A complete record that it cannot read (corrupt chunk) is
   skipped and reported; the scan goes on after it.
3. **Rewrite** with rosbags' Writer (zstd chunks, as the recorder writes) into a temporary
   directory beside the bag, each channel with its recorded topic, type, message
   definition (the schema in the file, hashed into ``type_description_hash``) and offered
   QoS, each message with its log time and bytes unchanged. The new bag is read back
   (message count checked), then the damaged file is kept as ``<file>.orig`` (unless
   ``keep_original=False``) and the new mcap and metadata.yaml are moved into place.

A bag that opens (summary, footer and metadata.yaml present) is left alone unless
``force``. One mcap file per bag (what our recorder writes); sqlite3 bags are not handled.
"""
from __future__ import annotations

import io
import os
import shutil
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.exceptions import EndOfFile, McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Header, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

from fdl_robot.bags.recorder import DEFAULT_VERSION, open_writer

__all__ = ["MAGIC", "Record", "ScanResult", "ReindexResult", "scan_records", "recover_records",
           "find_mcap", "bag_opens", "reindex", "format_result"]

MAGIC = b"\x89MCAP0\r\n"
_HEAD = struct.Struct("<BQ")                       # opcode u8, record length u64 (little endian)
_CONTENT = (Opcode.HEADER, Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE, Opcode.CHUNK)


@dataclass(frozen=True)
class Record:
    offset: int                 # byte offset of the opcode in the file
    opcode: int
    length: int                 # of the body (the record takes 9 + length bytes)

    @property
    def end(self) -> int:
        return self.offset + _HEAD.size + self.length


@dataclass
class ScanResult:
    records: list[Record]
    file_size: int
    end: int                                     # first byte after the last complete record
    footer: bool                                 # the file ends with a footer and magic
    stop_reason: str = ""                        # why the scan stopped before the file's end

    @property
    def dropped_bytes(self) -> int:
        return self.file_size - self.end


@dataclass
class ReindexResult:
    bag: Path
    mcap: Path
    message_counts: dict[str, int]               # recovered, per topic
    dropped_bytes: int                           # after the last complete record
    stop_reason: str
    unreadable: list[str] = field(default_factory=list)   # complete records that failed
    orphans: int = 0                             # messages whose channel was not found
    backup: Path | None = None
    rewritten: bool = True

    @property
    def message_count(self) -> int:
        return sum(self.message_counts.values())


def scan_records(path: str | Path) -> ScanResult:
    """Offsets of the complete top-level records of an mcap file (see step 1 above)."""
    path = Path(path)
    size = path.stat().st_size
    records: list[Record] = []
    with open(path, "rb") as f:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            if len(magic) < len(MAGIC) and MAGIC.startswith(magic):   # killed before any write
                return ScanResult([], size, 0, False, "the file ends before the end of the MCAP "
                                  "magic: nothing was written")
            raise ValueError(f"{path} is not an mcap file (no MCAP magic at its start)")
        pos, reason, footer = len(MAGIC), "", False
        while pos < size:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                reason = f"a record header cut off at byte {pos}"
                break
            opcode, length = _HEAD.unpack(head)
            if opcode == 0:
                reason = f"invalid record (opcode 0x00) at byte {pos}"
                break
            record = Record(pos, opcode, length)
            if record.end > size:
                name = Opcode(opcode).name.lower() if opcode in Opcode._value2member_map_ else hex(opcode)
                reason = f"a {name} record cut off at byte {pos} ({record.end - size} bytes missing)"
                break
            records.append(record)
            pos = record.end
            f.seek(pos)
            if opcode == Opcode.FOOTER:
                footer = f.read(len(MAGIC)) == MAGIC
                pos += len(MAGIC) if footer else 0
                if not footer:
                    reason = f"no magic after the footer at byte {record.offset}"
                break
    return ScanResult(records, size, pos, footer, reason)


class _Window(io.RawIOBase):
    """Bytes ``[start, end)`` of an open file, as a stream of its own."""

    def __init__(self, f, start: int, end: int):
        self._f, self._pos, self._end = f, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._end - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._pos)
        data = self._f.read(n)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def recover_records(path: str | Path, scan: ScanResult, unreadable: list[str]):
    """Yield the Header, Schema, Channel and Message records (chunks opened) of ``scan``.

    Complete records the ``mcap`` package cannot read are described in ``unreadable``.
    """
    with open(path, "rb") as f:
        for record in scan.records:
            if record.opcode not in _CONTENT:
                continue                          # indexes, statistics, summary: rebuilt
            reader = StreamReader(_Window(f, record.offset, record.end), skip_magic=True,
                                  validate_crcs=True)
            try:
                yield from reader.records
            except EndOfFile:
                pass                              # the end of this record's window
            except (McapError, ValueError, struct.error, UnicodeDecodeError, OSError) as exc:
                unreadable.append(f"{Opcode(record.opcode).name.lower()} record at byte "
                                  f"{record.offset}: {type(exc).__name__}: {exc}")


def find_mcap(bag: str | Path) -> tuple[Path, Path]:
    """``(bag directory, its mcap file)``; ``bag`` may be either."""
    bag = Path(bag)
    if bag.is_file():
        if bag.suffix != ".mcap":
            raise ValueError(f"{bag} is not an .mcap file or a bag directory")
        return bag.parent, bag
    if not bag.is_dir():
        raise FileNotFoundError(f"{bag}: no such bag directory")
    files = sorted(bag.glob("*.mcap"))
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise ValueError(f"{bag}: reindex handles bags of one .mcap file, found {found}")
    return bag, files[0]


def bag_opens(bag: Path) -> bool:
    """Whether rosbags reads the bag as it is (metadata.yaml, summary and footer present)."""
    try:
        with Reader(bag):
            return True
    except (ReaderError, OSError, ValueError, KeyError):
        return False


def _rihs01(schema: Schema) -> tuple[str, str]:
    """The message definition text of a schema and its RIHS01 hash (as rosbags computes it)."""
    text = schema.data.decode()
    store = get_typestore(Stores.EMPTY)
    if schema.encoding == "ros2msg":
        store.register(get_types_from_msg(text, schema.name))
    elif schema.encoding in ("ros2idl", "omgidl"):
        sep = "=" * 80 + "\n"
        parts = text.split(sep)[1:] if text.startswith(sep + "IDL: ") else [text]
        for part in parts:
            store.register(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
    else:
        raise ValueError(f"schema {schema.name}: encoding {schema.encoding!r} is not a ROS 2 one")
    return text, store.hash_rihs01(schema.name)


def _old_metadata(bag: Path) -> dict:
    try:
        return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}


def reindex(bag: str | Path, *, keep_original: bool = True, force: bool = False,
            compress: bool = True) -> ReindexResult:
    """Rebuild metadata.yaml and the mcap summary of ``bag`` (see the module docstring)."""
    bag, mcap = find_mcap(bag)
    if not force and (bag / "metadata.yaml").is_file() and bag_opens(bag):
        with Reader(bag) as reader:
            counts = {name: t.msgcount for name, t in reader.topics.items()}
        return ReindexResult(bag, mcap, counts, 0, "", rewritten=False)

    scan = scan_records(mcap)
    old = _old_metadata(bag)
    custom = {str(k): str(v) for k, v in (old.get("custom_data") or {}).items() if k != "recorded_by"}
    custom["reindexed_by"] = "fdl-robot-bag reindex"
    for stale in bag.glob(".reindex-*"):            # left by a reindex that was killed itself
        shutil.rmtree(stale, ignore_errors=True)
    work = bag / f".reindex-{os.getpid()}"
    out = work / mcap.stem                 # rosbags names the file <directory>.mcap: keep the name
    unreadable: list[str] = []
    try:
        writer = open_writer(out, compress=compress, version=int(old.get("version") or DEFAULT_VERSION),
                             custom_data=custom)
        try:
            counts, orphans = _copy(recover_records(mcap, scan, unreadable), writer, mcap)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        with Reader(out) as reader:                      # the new bag reads back, complete
            if reader.message_count != sum(counts.values()):
                raise RuntimeError(f"reindex wrote {sum(counts.values())} messages but reads back "
                                   f"{reader.message_count}; {bag} left as it was")
        backup = None
        if keep_original:
            backup = mcap.with_name(mcap.name + ".orig")
            os.replace(mcap, backup)
        os.replace(out / mcap.name, mcap)
        os.replace(out / "metadata.yaml", bag / "metadata.yaml")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ReindexResult(bag, mcap, dict(counts), scan.dropped_bytes, scan.stop_reason,
                         unreadable, orphans, backup)


def _copy(records, writer, mcap: Path) -> tuple[Counter, int]:
    """Write recovered ``records`` through ``writer``: (messages per topic, orphan messages)."""
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    connections: dict[int, object] = {}
    by_key: dict[tuple, object] = {}
    counts: Counter[str] = Counter()
    orphans = 0
    for rec in records:
        if isinstance(rec, Header) and rec.profile != "ros2":
            raise ValueError(f"{mcap}: mcap profile {rec.profile!r} is not ros2")
        if isinstance(rec, Schema):
            schemas.setdefault(rec.id, rec)
        elif isinstance(rec, Channel):
            channels.setdefault(rec.id, rec)
        elif isinstance(rec, Message):
            conn = connections.get(rec.channel_id)
            if conn is None and rec.channel_id in channels:
                conn = connections[rec.channel_id] = _connect(writer, channels[rec.channel_id],
                                                              schemas, by_key)
            if conn is None:
                orphans += 1
                continue
            writer.write(conn, rec.log_time, rec.data)
            counts[conn.topic] += 1
    return counts, orphans


def _connect(writer, channel: Channel, schemas: dict[int, Schema], by_key: dict):
    """The writer's connection for a recovered channel (channels alike share one)."""
    schema = schemas.get(channel.schema_id)
    if schema is None:
        raise ValueError(f"channel {channel.topic}: its schema (id {channel.schema_id}) is not in "
                         "the file; cannot write it without a message definition")
    qos = parse_qos(channel.metadata.get("offered_qos_profiles", ""))
    key = (channel.topic, schema.name, channel.message_encoding, repr(qos))
    if key not in by_key:
        msgdef, rihs01 = _rihs01(schema)
        by_key[key] = writer.add_connection(channel.topic, schema.name, msgdef=msgdef, rihs01=rihs01,
                                            serialization_format=channel.message_encoding,
                                            offered_qos_profiles=qos)
    return by_key[key]


def format_result(r: ReindexResult) -> str:
    """What ``fdl-robot-bag reindex`` prints."""
    if not r.rewritten:
        return (f"{r.bag} is complete (metadata.yaml, mcap summary and footer): nothing to do, "
                f"{r.message_count} messages (--force rewrites it anyway)")
    lines = [f"recovered {r.message_count} messages on {len(r.message_counts)} topics into {r.mcap} "
             "and a new metadata.yaml"]
    lines += [f"  {topic}: {n}" for topic, n in sorted(r.message_counts.items())]
    if r.dropped_bytes:
        lines.append(f"dropped the last {r.dropped_bytes} bytes: {r.stop_reason} (an incomplete record)")
    lines += [f"skipped an unreadable {u}" for u in r.unreadable]
    if r.orphans:
        lines.append(f"skipped {r.orphans} messages whose channel is not in the file")
    if r.backup:
        lines.append(f"the file as it was: {r.backup}")
    return "\n".join(lines)

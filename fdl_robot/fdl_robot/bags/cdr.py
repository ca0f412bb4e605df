"""CDR bytes of an rclpy message as a subscriber receives them: exact length, nothing after.

    data = serialize(msg)             # for Writer.write(); not rclpy's serialize_message(msg)

Why not ``rclpy.serialization.serialize_message``: it calls ``rmw_serialize``, and
rmw_fastrtps_cpp (the rmw here, and ROS 2's default) sizes the buffer with the type
support's *estimated* serialized size and reports that estimate as the length
(``serialized_message->buffer_length = data_length``), not the length Fast-CDR wrote.
The estimate adds the alignment of a sequence's element type even when the sequence is
empty, so a message ending in empty float64 sequences comes back with 4 to 8
uninitialised bytes after the end of its CDR data: ``sensor_msgs/JointState`` without
efforts (what sim_node and most drivers publish) is 4 bytes too long, without
velocities and efforts 8. The publish path sets ``payload.length =
get_serialized_data_length()``, so what a subscriber, ``ros2 bag record`` and our
recorder receive is exact (measured here: a 2-joint JointState without efforts is 104
bytes on the wire, 108 from ``serialize_message``; ``test_bags_cdr.py`` checks it).

Readers differ on bytes after the data. rclpy (Fast-CDR) ignores them. ``rosbags``
accepts at most 3, the padding to a 4-byte boundary that RTPS puts after a payload and
that XTypes 1.3 (7.6.3.1.2) lets the encapsulation options announce, and raises
"CDR message size mismatch" beyond that. rosbags is right: those bytes are no part of
the CDR stream (and they leak uninitialised memory into the file). So bags must hold the
exact bytes, and :func:`serialize` gives them: rclpy's bytes cut where the CDR data ends,
the end found by walking the message with the bag's typestore
(:func:`cdr_length`). The bytes kept are rclpy's own.
"""
from __future__ import annotations

from fdl_robot.bags.typestore import ensure_types, typestore

__all__ = ["serialize", "cdr_length", "msgtype_of"]

_ENCAPSULATIONS = {b"\x00\x00": False, b"\x00\x01": True}       # CDR_BE, CDR_LE: little endian?


def msgtype_of(msg) -> str:
    """``pkg/msg/Name`` of an rclpy message (its class lives in ``pkg.msg._name``)."""
    pkg, kind = type(msg).__module__.split(".")[:2]
    return f"{pkg}/{kind}/{type(msg).__name__}"


def cdr_length(data: bytes | memoryview, msgtype: str, store=None) -> int:
    """Bytes of ``data`` (encapsulation header included) that its CDR encoding of ``msgtype`` uses.

    ``data`` may be longer; raises ValueError if it is not plain CDR or too short for the type.
    """
    store = store or typestore()
    ensure_types(store, [msgtype])
    head = bytes(data[:2])
    if len(data) < 4 or head not in _ENCAPSULATIONS:
        raise ValueError(f"not a CDR message (encapsulation {head.hex() or 'missing'}): {msgtype}")
    msgdef = store.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if _ENCAPSULATIONS[head] else msgdef.deserialize_cdr_be
    try:
        _, pos = func(memoryview(data)[4:], 0, msgdef.cls, store)
    except Exception as exc:  # noqa: BLE001 - struct / unicode / value errors of a short buffer
        raise ValueError(f"{len(data)} bytes are no CDR {msgtype}: {exc}") from None
    return 4 + pos


def serialize(msg, store=None) -> bytes:
    """``msg`` in CDR, exactly as a subscriber receives it (see the module docstring)."""
    from rclpy.serialization import serialize_message

    data = serialize_message(msg)
    return data[:cdr_length(data, msgtype_of(msg), store)]

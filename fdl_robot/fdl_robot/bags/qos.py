"""QoS between rclpy and rosbag2 metadata, and the profiles a recorder and a player use.

rosbag2 stores, per topic, the QoS profiles its publishers *offered* when the topic was
recorded (``offered_qos_profiles`` in metadata.yaml and in each mcap channel). We do the
same, from ``Node.get_publishers_info_by_topic``, and adapt as ``ros2 bag`` does:

* recording: subscribe reliable only if every publisher offers reliable (a reliable
  reader does not match a best-effort writer), transient-local only if every
  publisher offers it, keep-last with a deep queue (the recorder must not drop);
* playback: offer what the recording's publishers offered when they agree on
  reliability and durability, else the rclpy default (reliable, volatile); depth 10 or
  the recorded depth if larger. Discovery reports no history or depth (UNKNOWN, 0),
  so those come from the defaults.

Durations: rmw's "infinite" is 2^63 - 1 ns, written as sec 9223372036, nsec 854775807
(as rmw_time_t); older bags wrote sec 2147483647, nsec 4294967295; both read as infinite.
"""
from __future__ import annotations

from rclpy.duration import Duration, Infinite
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile,
                       ReliabilityPolicy)
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)

__all__ = ["to_bag_qos", "from_bag_qos", "recording_qos", "playback_qos"]

_INFINITE_NS = 2**63 - 1
_INFINITE_TIMES = {(9223372036, 854775807), (2147483647, 4294967295), (0x7FFFFFFF, 0xFFFFFFFF)}
RECORD_DEPTH = 100
PLAYBACK_DEPTH = 10


def _bag_time(d: Duration) -> QosTime:
    ns = d.nanoseconds
    if ns >= _INFINITE_NS:
        return QosTime(9223372036, 854775807)
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return QosTime(sec, nsec)


def _duration(t: QosTime) -> Duration:
    if (t.sec, t.nsec) in _INFINITE_TIMES:
        return Infinite
    return Duration(seconds=t.sec, nanoseconds=t.nsec)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """rclpy QoSProfile (as discovery reports it) -> rosbags Qos (same enum values as rmw)."""
    return Qos(
        history=QosHistory(int(profile.history)),
        depth=int(profile.depth),
        reliability=QosReliability(int(profile.reliability)),
        durability=QosDurability(int(profile.durability)),
        deadline=_bag_time(profile.deadline),
        lifespan=_bag_time(profile.lifespan),
        liveliness=QosLiveliness(int(profile.liveliness)),
        liveliness_lease_duration=_bag_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def from_bag_qos(qos: Qos) -> QoSProfile:
    """rosbags Qos -> rclpy QoSProfile (unknown history/depth -> keep last 10)."""
    history = HistoryPolicy(qos.history.value) if qos.history in (
        QosHistory.KEEP_LAST, QosHistory.KEEP_ALL) else HistoryPolicy.KEEP_LAST
    return QoSProfile(
        history=history,
        depth=max(int(qos.depth), PLAYBACK_DEPTH) if history == HistoryPolicy.KEEP_LAST else 0,
        reliability=ReliabilityPolicy(qos.reliability.value) if qos.reliability in (
            QosReliability.RELIABLE, QosReliability.BEST_EFFORT) else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy(qos.durability.value) if qos.durability in (
            QosDurability.TRANSIENT_LOCAL, QosDurability.VOLATILE) else DurabilityPolicy.VOLATILE,
        deadline=_duration(qos.deadline),
        lifespan=_duration(qos.lifespan),
        liveliness=LivelinessPolicy(qos.liveliness.value) if qos.liveliness in (
            QosLiveliness.AUTOMATIC, QosLiveliness.MANUAL_BY_TOPIC) else LivelinessPolicy.AUTOMATIC,
        liveliness_lease_duration=_duration(qos.liveliness_lease_duration),
        avoid_ros_namespace_conventions=qos.avoid_ros_namespace_conventions,
    )


def recording_qos(offers: list[QoSProfile], depth: int = RECORD_DEPTH) -> QoSProfile:
    """The subscription profile that receives from every offer without dropping."""
    reliable = bool(offers) and all(o.reliability == ReliabilityPolicy.RELIABLE for o in offers)
    transient = bool(offers) and all(o.durability == DurabilityPolicy.TRANSIENT_LOCAL for o in offers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE)


def playback_qos(offers: list[Qos]) -> QoSProfile:
    """The publisher profile of a topic whose recording saw ``offers``."""
    if not offers:
        return QoSProfile(depth=PLAYBACK_DEPTH)
    if len({(q.reliability, q.durability) for q in offers}) > 1:
        return QoSProfile(depth=max([PLAYBACK_DEPTH] + [q.depth for q in offers]))
    return from_bag_qos(max(offers, key=lambda q: q.depth))

"""Message order on one stream: in order, out of order, or a new time base.

Every stateful stage (localizer, tracker, policy inputs) keeps the stamp t_last of the last
message it accepted on a stream and classifies the next stamp t::

    t >  t_last                    IN_ORDER      accept
    t_last - J <= t <= t_last      OUT_OF_ORDER  reject (a late or duplicated message)
    t <  t_last - J                NEW_BASE      time jumped back: start over from t

with J = ``jump_s`` (:data:`TIME_JUMP_S` by default). A jump back by more than J is no late
frame but a new time line: a bag played a second time or with ``--loop``, a restarted
simulator or camera driver, a clock reset. The stage then forgets what it inferred from
the old time line (tracks, filters, chunks) and carries on from t, without a manual
reset, as tf2's buffer does when it sees time jump backwards. A first message (t_last
None) is IN_ORDER.

``allow_equal`` makes t == t_last IN_ORDER (streams where two messages may share a stamp).
"""
from __future__ import annotations

import enum

__all__ = ["TIME_JUMP_S", "StampOrder", "classify_stamp"]

#: A stamp this many seconds before the last accepted one starts a new time base.
TIME_JUMP_S = 1.0


class StampOrder(enum.Enum):
    IN_ORDER = "in order"
    OUT_OF_ORDER = "out of order"
    NEW_BASE = "new time base"


def classify_stamp(stamp_ns: int, last_ns: int | None, jump_s: float = TIME_JUMP_S,
                   allow_equal: bool = False) -> StampOrder:
    """The order of a stamp ``stamp_ns`` after the last accepted ``last_ns`` (module doc)."""
    if last_ns is None or stamp_ns > last_ns or (allow_equal and stamp_ns == last_ns):
        return StampOrder.IN_ORDER
    if stamp_ns < last_ns - round(jump_s * 1e9):
        return StampOrder.NEW_BASE
    return StampOrder.OUT_OF_ORDER

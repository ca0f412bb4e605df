"""A small stamp synchroniser (message_filters is not on PyPI).

Messages from several inputs are keyed by their header stamp (integer nanoseconds). A set
is released when every input has a message whose stamp lies within ``tolerance_ns`` of
the reference input's stamp; older unmatched messages are dropped and counted, queues are
bounded, so nothing grows without limit. Pure Python: no rclpy import, testable alone.

Time jumping back (:mod:`fdl_robot.core.timebase`): when an input's stamp is more than
``jump_s`` older than that input's last one (a bag played again or with ``--loop``, a
restarted simulator), a new time line has begun. Every queued message stamped more than
``jump_s`` after the new stamp belongs to the old line and can never be matched: all
inputs' queues are cleared of them at once (counted in ``stale_dropped`` and passed to
``on_new_base(input, stamp_ns, discarded)``, not to ``on_drop``), so neither they nor a
full queue of them hold up the new line, and a late straggler of the old line cannot be
paired with a new message that happens to carry the same stamp.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence

from fdl_robot.core.timebase import TIME_JUMP_S, StampOrder, classify_stamp


class StampSynchronizer:
    """Match messages of ``n_inputs`` streams by stamp; the first input is the reference.

    ``add(i, stamp_ns, msg)`` returns the matched tuple ``(msg_0, ..., msg_{n-1})`` once
    all inputs have a message within tolerance of a reference stamp, else None.
    """

    def __init__(self, n_inputs: int, tolerance_ns: int = 0, queue_size: int = 30,
                 on_drop: Callable[[int, int], None] | None = None,
                 on_new_base: Callable[[int, int, int], None] | None = None,
                 jump_s: float = TIME_JUMP_S):
        if n_inputs < 2:
            raise ValueError("a synchroniser needs at least two inputs")
        self.tolerance_ns = int(tolerance_ns)
        self.queue_size = int(queue_size)
        self.jump_s = float(jump_s)
        self._queues: list[OrderedDict[int, Any]] = [OrderedDict() for _ in range(n_inputs)]
        self._last_ns: list[int | None] = [None] * n_inputs     # newest stamp seen per input
        self._on_drop = on_drop or (lambda _input, _stamp: None)
        self._on_new_base = on_new_base or (lambda _input, _stamp, _discarded: None)
        self.dropped = 0          # unmatched messages dropped (too old, or a queue overflowed)
        self.stale_dropped = 0    # messages of an old time line dropped at a jump back
        self.new_time_bases = 0   # jumps back seen, counted per input

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple[Any, ...] | None:
        stamp_ns = int(stamp_ns)
        order = classify_stamp(stamp_ns, self._last_ns[index], self.jump_s, allow_equal=True)
        if order is StampOrder.NEW_BASE:
            self._start_time_base(index, stamp_ns)
        if order is not StampOrder.OUT_OF_ORDER:
            self._last_ns[index] = stamp_ns
        queue = self._queues[index]
        queue[stamp_ns] = msg
        if len(queue) > self.queue_size:
            self._drop(index, next(iter(queue)))
        return self._try_match()

    def _nearest(self, queue: OrderedDict[int, Any], stamp_ns: int) -> int | None:
        best = min(queue, key=lambda s: abs(s - stamp_ns), default=None)
        return best if best is not None and abs(best - stamp_ns) <= self.tolerance_ns else None

    def _try_match(self) -> tuple[Any, ...] | None:
        reference = self._queues[0]
        for ref_stamp in list(reference):           # oldest first
            keys = [self._nearest(q, ref_stamp) for q in self._queues[1:]]
            if all(k is not None for k in keys):
                matched = (reference.pop(ref_stamp),) + tuple(
                    q.pop(k) for q, k in zip(self._queues[1:], keys, strict=True))
                self._discard_older_than(ref_stamp - self.tolerance_ns)
                return matched
        return None

    def _discard_older_than(self, stamp_ns: int) -> None:
        for i, queue in enumerate(self._queues):
            for s in [s for s in queue if s < stamp_ns]:
                self._drop(i, s)

    def _start_time_base(self, index: int, stamp_ns: int) -> None:
        """Input ``index`` jumped back to ``stamp_ns``: drop the old line's messages (module doc)."""
        newest_new = stamp_ns + round(self.jump_s * 1e9)
        discarded = 0
        for queue in self._queues:
            for s in [s for s in queue if s > newest_new]:
                del queue[s]
                discarded += 1
        self.stale_dropped += discarded
        self.new_time_bases += 1
        self._on_new_base(index, stamp_ns, discarded)

    def _drop(self, index: int, stamp_ns: int) -> None:
        del self._queues[index][stamp_ns]
        self.dropped += 1
        self._on_drop(index, stamp_ns)

    def pending(self) -> Sequence[int]:
        return [len(q) for q in self._queues]

    def reset(self) -> None:
        for q in self._queues:
            q.clear()
        self._last_ns = [None] * len(self._queues)

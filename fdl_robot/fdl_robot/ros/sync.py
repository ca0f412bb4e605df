"""A small stamp synchroniser (message_filters is not on PyPI).

Messages from several inputs are keyed by their header stamp (integer nanoseconds). A set
is released when every input has a message whose stamp lies within ``tolerance_ns`` of
the reference input's stamp; older unmatched messages are dropped and counted, queues are
bounded, so nothing grows without limit. Pure Python: no rclpy import, testable alone.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence


class StampSynchronizer:
    """Match messages of ``n_inputs`` streams by stamp; the first input is the reference.

    ``add(i, stamp_ns, msg)`` returns the matched tuple ``(msg_0, ..., msg_{n-1})`` once
    all inputs have a message within tolerance of a reference stamp, else None.
    """

    def __init__(self, n_inputs: int, tolerance_ns: int = 0, queue_size: int = 30,
                 on_drop: Callable[[int, int], None] | None = None):
        if n_inputs < 2:
            raise ValueError("a synchroniser needs at least two inputs")
        self.tolerance_ns = int(tolerance_ns)
        self.queue_size = int(queue_size)
        self._queues: list[OrderedDict[int, Any]] = [OrderedDict() for _ in range(n_inputs)]
        self._on_drop = on_drop or (lambda _input, _stamp: None)
        self.dropped = 0

    def add(self, index: int, stamp_ns: int, msg: Any) -> tuple[Any, ...] | None:
        queue = self._queues[index]
        queue[int(stamp_ns)] = msg
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

    def _drop(self, index: int, stamp_ns: int) -> None:
        del self._queues[index][stamp_ns]
        self.dropped += 1
        self._on_drop(index, stamp_ns)

    def pending(self) -> Sequence[int]:
        return [len(q) for q in self._queues]

    def reset(self) -> None:
        for q in self._queues:
            q.clear()

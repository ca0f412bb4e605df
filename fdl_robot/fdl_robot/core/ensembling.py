"""Executing action chunks: ACT temporal ensembling and plain chunked execution.

Action chunks
-------------
An action-chunking policy (ACT, Zhao et al. 2023) queried at control step ``t``
returns a chunk ``a_t`` of shape (k, A): ``a_t[j]`` is its action for step ``t + j``,
``j = 0 .. k-1`` (k = chunk size, A = action dimension, e.g. 6 joint targets in rad
plus a gripper command).  Steps are control ticks (e.g. 50 Hz in ACT); this module
never looks at clocks.

Temporal ensembling (ACT)
-------------------------
Query the policy at *every* step.  At step ``t`` the chunks made at steps
``t' = t-n+1, ..., t`` with ``n = min(t+1, k)`` all contain a prediction for step
``t``, namely ``a_{t'}[t - t']``.  Number them ``i = 0 .. n-1`` from the OLDEST
(``t'_i = t - n + 1 + i``) and average::

    w_i   = exp(-m i)                                  (i = 0: oldest, weight 1)
    a*_t  = sum_i w_i a_{t'_i}[t - t'_i]  /  sum_i w_i

For ``m > 0`` older predictions weigh more; ``m = 0`` is the plain mean; a smaller
``m`` incorporates new observations faster.  ACT uses ``m = 0.01`` with k = 100, so
the weights barely differ (exp(-0.99) ~ 0.37 for the newest of 100).  Measure
whether it helps: LeRobot's ACT scored lower on gym-aloha transfer-cube with
ensembling (70.8 %) than with plain chunking (87.6 %).

:class:`TemporalEnsembler` keeps the last k chunks in a ring buffer of shape
(k, k, A) (slot ``t' mod k`` holds ``a_{t'}``), so one step costs O(k A) time and the
state is O(k^2 A) memory.  :func:`temporal_ensemble` computes the same thing offline
for a whole recorded sequence of chunks.

Chunked execution
-----------------
:class:`ChunkedExecutor` runs each chunk open loop for ``n_action_steps <= k``
steps and only then asks for a new one (ACT without ensembling, Diffusion Policy's
``n_action_steps``).

Both implement :class:`ActionScheduler`: ask ``needs_chunk``; if True, query the
policy and pass the chunk to ``update``, else pass None; ``update`` returns the
action (A,) to apply at this step.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ActionScheduler",
    "ChunkedExecutor",
    "TemporalEnsembler",
    "ensemble_weights",
    "temporal_ensemble",
]

FloatArray = NDArray[np.float64]


def _check_chunk_size(chunk_size: int) -> int:
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size}")
    return int(chunk_size)


def _check_m(m: float) -> float:
    if not np.isfinite(m):
        raise ValueError(f"m must be finite, got {m}")
    return float(m)


def ensemble_weights(n: int, m: float = 0.01) -> FloatArray:
    """Normalised weights ``exp(-m i) / sum_j exp(-m j)``, ``i = 0 .. n-1``, i = 0 the oldest."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    log_w = -_check_m(m) * np.arange(n, dtype=np.float64)
    w = np.exp(log_w - log_w.max())  # stable for any finite m (also m < 0)
    return w / w.sum()


@runtime_checkable
class ActionScheduler(Protocol):
    """Turns a stream of action chunks (k, A) into one action (A,) per control step."""

    @property
    def needs_chunk(self) -> bool:
        """True if ``update`` must be given a fresh chunk at this step."""
        ...

    def update(self, chunk: ArrayLike | None) -> FloatArray:
        """Advance one step and return the action (A,) to apply now."""
        ...

    def reset(self) -> None:
        """Forget everything (start of an episode)."""
        ...


class _ChunkInput:
    """Shared validation of chunks of shape (chunk_size, A)."""

    chunk_size: int
    action_dim: int | None

    def _as_chunk(self, chunk: ArrayLike) -> FloatArray:
        a = np.asarray(chunk, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != self.chunk_size:
            raise ValueError(f"chunk must have shape ({self.chunk_size}, A), got {a.shape}")
        if self.action_dim is not None and a.shape[1] != self.action_dim:
            raise ValueError(
                f"chunk has action dimension {a.shape[1]}, expected {self.action_dim} "
                "(reset() to change it)"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError("chunk contains NaN or inf")
        return a


class TemporalEnsembler(_ChunkInput):
    """ACT temporal ensembling: a new chunk every step, weighted average per step.

    Parameters
    ----------
    chunk_size
        k, the number of actions per chunk.
    m
        Decay of the weights ``w_i = exp(-m i)``, i = 0 the oldest prediction.
    """

    def __init__(self, chunk_size: int, m: float = 0.01) -> None:
        self.chunk_size = _check_chunk_size(chunk_size)
        self.m = _check_m(m)
        self.reset()

    def reset(self) -> None:
        """Forget all chunks; the action dimension is set again by the next chunk."""
        self.action_dim: int | None = None
        self._buffer: FloatArray | None = None  # (k, k, A): slot t' mod k holds a_{t'}
        self._t = 0                              # index of the next step

    @property
    def needs_chunk(self) -> bool:
        """Always True: ensembling queries the policy at every step."""
        return True

    @property
    def step(self) -> int:
        """Number of actions emitted since the last reset."""
        return self._t

    def update(self, chunk: ArrayLike | None) -> FloatArray:
        """Add the chunk ``a_t`` (k, A) predicted at this step; return the ensembled action (A,)."""
        if chunk is None:
            raise ValueError("temporal ensembling needs a new chunk at every step")
        a = self._as_chunk(chunk)
        k, t = self.chunk_size, self._t
        if self._buffer is None:
            self.action_dim = a.shape[1]
            self._buffer = np.zeros((k, k, self.action_dim))
        self._buffer[t % k] = a

        n = min(t + 1, k)
        t_prime = np.arange(t - n + 1, t + 1)                # oldest first: i = 0 .. n-1
        predictions = self._buffer[t_prime % k, t - t_prime]  # (n, A): a_{t'}[t - t']
        self._t += 1
        return ensemble_weights(n, self.m) @ predictions


def temporal_ensemble(chunks: ArrayLike, m: float = 0.01) -> FloatArray:
    """Offline temporal ensembling of chunks (T, k, A) made at steps 0..T-1 -> actions (T, A).

    Same result as feeding the chunks one by one to :class:`TemporalEnsembler`.
    """
    c = np.asarray(chunks, dtype=np.float64)
    if c.ndim != 3 or c.shape[1] < 1:
        raise ValueError(f"chunks must have shape (T, k, A), got {c.shape}")
    T, k, _ = c.shape
    t = np.arange(T)[:, None]                    # (T, 1)
    age = np.arange(k)[None, :]                  # j = t - t', 0 = newest
    t_prime = t - age                            # (T, k)
    valid = t_prime >= 0
    pred = c[np.clip(t_prime, 0, None), age]     # (T, k, A): a_{t-j}[j]
    n = np.minimum(t + 1, k)                     # predictions available at step t
    i = n - 1 - age                              # index from the oldest
    log_w = np.where(valid, -_check_m(m) * i, -np.inf)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("tk,tka->ta", w, pred)


class ChunkedExecutor(_ChunkInput):
    """Plain action chunking: run ``n_action_steps`` actions of each chunk open loop.

    Parameters
    ----------
    chunk_size
        k, the number of actions per chunk.
    n_action_steps
        How many actions of a chunk to execute before asking for the next one
        (1 <= n_action_steps <= k; default k).
    """

    def __init__(self, chunk_size: int, n_action_steps: int | None = None) -> None:
        self.chunk_size = _check_chunk_size(chunk_size)
        n = self.chunk_size if n_action_steps is None else n_action_steps
        if int(n) != n or not 1 <= n <= self.chunk_size:
            raise ValueError(
                f"n_action_steps must be in [1, {self.chunk_size}], got {n_action_steps}"
            )
        self.n_action_steps = int(n)
        self.reset()

    def reset(self) -> None:
        """Drop the current chunk; the next ``update`` needs a new one."""
        self.action_dim: int | None = None
        self._chunk: FloatArray | None = None
        self._index = 0
        self._t = 0

    @property
    def needs_chunk(self) -> bool:
        """True when there is no chunk or its ``n_action_steps`` actions are used up."""
        return self._chunk is None or self._index >= self.n_action_steps

    @property
    def step(self) -> int:
        """Number of actions emitted since the last reset."""
        return self._t

    def update(self, chunk: ArrayLike | None = None) -> FloatArray:
        """Start ``chunk`` (k, A) if given (replanning early is allowed), else continue.

        Returns the next action (A,).  Raises ValueError if no chunk is given while
        ``needs_chunk`` is True.
        """
        if chunk is not None:
            a = self._as_chunk(chunk)
            self.action_dim = a.shape[1]
            self._chunk, self._index = a.copy(), 0
        elif self.needs_chunk:
            raise ValueError("a new chunk is needed at this step (check needs_chunk)")
        assert self._chunk is not None
        action = self._chunk[self._index].copy()
        self._index += 1
        self._t += 1
        return action

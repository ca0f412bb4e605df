"""Success rates with their confidence interval, and the summary every episodic evaluation prints.

Wilson score interval of a binomial proportion p = k / n at z (1.96 for 95 %)::

    centre = (p + z^2 / 2n) / (1 + z^2 / n)
    half   = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["wilson_interval", "SuccessSummary"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """(lower, upper) Wilson score interval of ``successes`` out of ``n`` (default 95 %); (0, 1) if n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SuccessSummary:
    """K successes out of N episodes, the 95 % Wilson interval, the failed seeds.

    ``mean_duration_s``: mean over the successful episodes of their duration (None if none).
    """

    episodes: int
    successes: int
    wilson95: tuple[float, float]
    failed_seeds: tuple[int, ...]
    mean_duration_s: float | None

    @classmethod
    def of(cls, seeds: Sequence[int], successes: Sequence[bool],
           durations_s: Sequence[float | None]) -> SuccessSummary:
        """Summary of episodes given as parallel sequences (a failed episode's duration is ignored)."""
        n, k = len(seeds), int(sum(bool(s) for s in successes))
        times = [d for d, ok in zip(durations_s, successes, strict=True) if ok]
        return cls(n, k, wilson_interval(k, n),
                   tuple(s for s, ok in zip(seeds, successes, strict=True) if not ok),
                   float(np.mean(times)) if times else None)

    @property
    def success_rate(self) -> float:
        """k / n (0 without episodes)."""
        return self.successes / max(self.episodes, 1)

    def percent_with_ci(self) -> str:
        """'96.0 % (95 % Wilson CI 86.5-98.9 %)'."""
        lo, hi = self.wilson95
        return (f"{100 * self.successes / max(self.episodes, 1):.1f} % "
                f"(95 % Wilson CI {100 * lo:.1f}-{100 * hi:.1f} %)")

    def __str__(self) -> str:
        """'48/50 = 96.0 % (95 % Wilson CI 86.5-98.9 %)'."""
        return f"{self.successes}/{self.episodes} = {self.percent_with_ci()}"

    def as_dict(self, duration_key: str = "mean_duration_s") -> dict:
        """JSON fields: episodes, successes, success_rate, wilson95, ``duration_key``, failed_seeds."""
        return {"episodes": self.episodes, "successes": self.successes, "success_rate": self.success_rate,
                "wilson95": list(self.wilson95), duration_key: self.mean_duration_s,
                "failed_seeds": list(self.failed_seeds)}

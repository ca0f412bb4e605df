"""The shape of every evaluation: its settings (:class:`EvalConfig`) and :class:`Evaluator`.

An evaluator is built once from its settings (this config for the seeds and the episode
limit, plus its own: image size, outputs to write, ...) and evaluates one subject per
:meth:`Evaluator.run` call -- the thing under test, a policy, the scripted expert, a
detector or the perception graph -- returning its metrics.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fdl_robot.core.robot import CONTROL_DT_S

__all__ = ["EvalConfig", "Evaluator", "OwnsSimulator", "POLICY_TEST_SEED0", "add_arguments", "from_arguments"]

#: First seed of the policy evaluations; training never uses seeds from here on.
POLICY_TEST_SEED0 = 5000

S = TypeVar("S", contravariant=True)
M = TypeVar("M", covariant=True)


class Evaluator(Protocol[S, M]):
    """Evaluates one subject per call; everything else it was built with."""

    def run(self, subject: S, /) -> M:
        """Evaluate ``subject`` (over the configured episodes) and return its metrics."""
        ...


class OwnsSimulator:
    """Base of the evaluators that keep a simulator (``self.env``) between runs: close them,
    or use them in a ``with`` block, to free its renderer."""

    env: Any

    def __enter__(self):
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        self.env.close()


@dataclass(frozen=True)
class EvalConfig:
    """Which episodes an evaluation runs and how long each may last.

    Episode i (0 <= i < ``episodes``) resets the simulator with seed ``seed0 + i``; an
    episode that has not ended after ``max_sim_s`` simulated seconds ends there.
    """

    episodes: int = 100
    seed0: int = POLICY_TEST_SEED0
    max_sim_s: float = 14.0

    def __post_init__(self):
        if self.episodes < 0 or not self.max_sim_s > 0:
            raise ValueError(f"need episodes >= 0 and max_sim_s > 0, got {self.episodes} and {self.max_sim_s}")

    @property
    def seeds(self) -> range:
        """seed0, seed0 + 1, ..., seed0 + episodes - 1."""
        return range(self.seed0, self.seed0 + self.episodes)

    @property
    def max_steps(self) -> int:
        """The episode limit in control steps (``CONTROL_DT_S`` each)."""
        return round(self.max_sim_s / CONTROL_DT_S)


def add_arguments(parser: argparse.ArgumentParser, defaults: EvalConfig, limit: str | None = "steps",
                  seed0_help: str = "", episodes_help: str = "") -> argparse.ArgumentParser:
    """``--episodes``, ``--seed0`` and the episode limit, defaulting to ``defaults``.

    ``limit``: ``"steps"`` (``--max-steps``, control steps), ``"seconds"`` (``--max-sim-s``)
    or None (no limit option). Read them back with :func:`from_arguments`.
    """
    parser.add_argument("--episodes", type=int, default=defaults.episodes, help=episodes_help or None)
    parser.add_argument("--seed0", type=int, default=defaults.seed0,
                        help=seed0_help or "first seed: episode i uses seed seed0 + i")
    if limit == "steps":
        parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                            help=f"episode limit in control steps of {CONTROL_DT_S:g} s")
    elif limit == "seconds":
        parser.add_argument("--max-sim-s", type=float, default=defaults.max_sim_s,
                            help="episode limit, simulated seconds")
    elif limit is not None:
        raise ValueError(f"limit must be 'steps', 'seconds' or None, got '{limit}'")
    return parser


def from_arguments(args: argparse.Namespace, defaults: EvalConfig) -> EvalConfig:
    """The config of arguments added by :func:`add_arguments` (``defaults`` for a missing limit)."""
    if getattr(args, "max_steps", None) is not None:
        max_sim_s = args.max_steps * CONTROL_DT_S
    else:
        max_sim_s = getattr(args, "max_sim_s", defaults.max_sim_s)
    return EvalConfig(episodes=args.episodes, seed0=args.seed0, max_sim_s=max_sim_s)

"""The policy interface: what every policy (ACT, the scripted stand-in) sees and returns.

Observation (the perception stack's output, seed §29.3.3), all in ``base_link``
(REP-103, metres) and radians::

    qpos_rad         (6,)  arm joint positions, core.robot.ARM_JOINT_NAMES order
    gripper          ()    gripper closure, 0 = open .. 1 = closed
    target_p_base_m  (3,)  tracked target position, or None when no target is known
    bin_p_base_m     (3,)  bin position (tracked, else configured)
    stamp_s          ()    time of the observation, seconds

Action: a chunk of k future *absolute* joint targets, one every ``dt_s`` seconds::

    chunk (k, 7) = [q_1 .. q_6 (rad), gripper (0 open .. 1 closed)]

row i is the position to reach at t + (i + 1) dt_s, where t is the time of the control
step at which the chunk was predicted (row 0 is commanded at that step, to be reached one
period later).

Absolute targets, like the original ACT (Zhao et al. 2023) and unlike the joint deltas in
§29.3 of the seed text (the README's "Seed errata"): an absolute target does not integrate
errors over a chunk, and the safety layer can limit it directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from fdl_robot.core.robot import JOINT_NAMES, N_ARM_JOINTS

__all__ = ["ACTION_DIM", "PolicyObservation", "Policy"]

#: 6 arm joints + gripper.
ACTION_DIM = len(JOINT_NAMES)


@dataclass(frozen=True)
class PolicyObservation:
    """One observation; validated and converted to float64 arrays on construction."""

    qpos_rad: np.ndarray
    gripper: float
    target_p_base_m: np.ndarray | None
    bin_p_base_m: np.ndarray
    stamp_s: float
    #: Covariance (3, 3) of ``target_p_base_m`` in m^2 (None: not known).
    target_covariance_m2: np.ndarray | None = None
    #: The target's velocity (3,) in base_link, m/s (None: still, or not significant).
    target_v_base_m_s: np.ndarray | None = None

    def __post_init__(self):
        def vec(name, value, n):
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.size != n:
                raise ValueError(f"{name} must have {n} entries, got {arr.size}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} is not finite: {arr}")
            return arr

        object.__setattr__(self, "qpos_rad", vec("qpos_rad", self.qpos_rad, N_ARM_JOINTS))
        object.__setattr__(self, "bin_p_base_m", vec("bin_p_base_m", self.bin_p_base_m, 3))
        if self.target_p_base_m is not None:
            object.__setattr__(self, "target_p_base_m",
                               vec("target_p_base_m", self.target_p_base_m, 3))
        g = float(self.gripper)
        if not np.isfinite(g):
            raise ValueError(f"gripper is not finite: {g}")
        object.__setattr__(self, "gripper", g)
        object.__setattr__(self, "stamp_s", float(self.stamp_s))
        if self.target_v_base_m_s is not None:
            object.__setattr__(self, "target_v_base_m_s", vec("target_v_base_m_s", self.target_v_base_m_s, 3))
        if self.target_covariance_m2 is not None:
            object.__setattr__(self, "target_covariance_m2",
                               vec("target_covariance_m2", self.target_covariance_m2, 9).reshape(3, 3))

    @property
    def has_target(self) -> bool:
        return self.target_p_base_m is not None

    @property
    def joint_state(self) -> np.ndarray:
        """[qpos_rad, gripper] (7,): the robot state in action coordinates."""
        return np.append(self.qpos_rad, self.gripper)


@runtime_checkable
class Policy(Protocol):
    """A chunking policy emitting absolute joint targets.

    ``chunk_size`` (k) rows per chunk, ``dt_s`` seconds between rows (the control
    period it was designed or trained for). ``reset()`` forgets any episode state
    (call at episode start and after a watchdog hold). ``predict_chunk(obs)`` returns a
    (k, 7) float array of absolute targets [6 joints rad, gripper 0..1]; row 0 is the
    target for the next control step.
    """

    chunk_size: int
    dt_s: float

    def reset(self) -> None: ...

    def predict_chunk(self, obs: PolicyObservation) -> np.ndarray: ...

"""PolicyRunner: a chunking policy + chunk execution + the safety layer, one step at a time.

Pure Python/numpy (no ROS): ``policy_node`` parses messages, calls :meth:`PolicyRunner.step`
once per control period and publishes what it returns; the simulator's closed-loop
evaluation can call the same object directly.

Execution modes (``core.ensembling``; Zhao et al. 2023)
-------------------------------------------------------
``'chunk'`` (:class:`~fdl_robot.core.ensembling.ChunkedExecutor`): query the policy once
every k steps and execute its chunk open loop.

``'ensemble'`` (:class:`~fdl_robot.core.ensembling.TemporalEnsembler`): query the policy
every step and average, for the current step t, the predictions of every chunk that
covers it::

    a_t = sum_i w_i A_i[t - t_i] / sum_i w_i,    w_i = exp(-m i),  i = 0 the oldest chunk

Steps are control ticks. A missed timer tick is not replayed: the next step simply uses
the next row, so under load the robot follows the plan slightly late (never early or
faster). A gap longer than one chunk (k dt), or time going backwards, restarts from a
fresh chunk. A chunk with NaN/inf is not executed: that step is a hold, and the policy
is asked again at the next step.

Safety (``core.safety``), every step: rate-limited relative to the previous command
q_cmd,prev (q_meas after a reset, a gap, or when q_cmd,prev is further than e_max from the
robot), then kept within e_max of the measured state q_meas::

    q_cmd   = q_meas + clip(q_cmd,prev + clip(clip_box(a_t) - q_cmd,prev, +-v_max dt) - q_meas,
                            +-e_max)
    q_cmd,j = q_cmd,j-1 + clip(clip_box(a_t+j) - q_cmd,j-1, +-v_max dt)   (the remaining points)

A servo that lags its target follows the plan at full speed; a robot that is blocked is
never commanded further than e_max from where it is, so it does not jerk when released.

What the policy is given each step (joint state, target, bin, freshness) is decided by
:mod:`fdl_robot.policy.inputs`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from fdl_robot.core.config import from_mapping
from fdl_robot.core.ensembling import ActionScheduler, ChunkedExecutor, TemporalEnsembler
from fdl_robot.core.robot import CONTROL_RATE_HZ
from fdl_robot.core.safety import JointLimits, SafetyConfig, SafetyLayer, SafetyResult
from fdl_robot.policy.interface import ACTION_DIM, Policy, PolicyObservation

__all__ = ["EXECUTION_MODES", "POLICIES", "PolicyConfig", "RunnerOutput", "PolicyRunner",
           "limits_from_params", "make_policy"]

EXECUTION_MODES = ("ensemble", "chunk")
POLICIES = ("act", "scripted")


@dataclass(frozen=True)
class PolicyConfig:
    """Which policy runs, at what rate, and how its chunks are executed.

    ``policy``: 'act' (``model_path``, '' = the shipped weights, run on ``policy_threads``
    torch threads per forward pass, 0 = torch's setting) or 'scripted'; ``control_rate_hz``:
    the rate of commands, 1 / dt; ``chunk_execution``: 'ensemble' (temporal ensembling with
    weights w_i = exp(-ensemble_m i)) or 'chunk'. The defaults are policy_node's.
    """

    policy: str = "act"
    model_path: str = ""
    policy_threads: int = 1
    control_rate_hz: float = CONTROL_RATE_HZ
    chunk_execution: str = "ensemble"
    ensemble_m: float = 0.01
    #: Points per published trajectory: this step's command, then the next of the chunk. An
    #: arm controller holds the last point when commands stop, so this bounds the motion after
    #: the last command (a crashed policy) to trajectory_points x dt; fewer points are also
    #: cheaper to build, send and parse at 50 Hz. 0 = the whole chunk.
    trajectory_points: int = 5

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy '{self.policy}'; choose one of {list(POLICIES)}")
        if self.chunk_execution not in EXECUTION_MODES:
            raise ValueError(f"chunk_execution must be one of {EXECUTION_MODES}, "
                             f"got '{self.chunk_execution}'")
        if not self.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be positive, got {self.control_rate_hz}")
        if self.policy_threads < 0 or self.ensemble_m < 0 or self.trajectory_points < 0:
            raise ValueError(f"policy_threads, ensemble_m and trajectory_points must be >= 0, got "
                             f"{self.policy_threads}, {self.ensemble_m} and {self.trajectory_points}")

    @property
    def dt_s(self) -> float:
        """Control period, seconds."""
        return 1.0 / self.control_rate_hz


_POLICY = PolicyConfig()


@dataclass(frozen=True)
class RunnerOutput:
    """One control step.

    ``command`` (7,): the safety-filtered target for this step (reach it in dt);
    ``trajectory`` (m, 7): ``command`` followed by the remaining planned points, every
    point limited relative to the one before (row j is due at (j + 1) dt);
    ``policy_target`` (7,): what the policy / ensemble asked for before safety;
    ``safety``: what the safety layer did to ``command``; ``queried``: whether the policy
    was run this step.
    """

    command: np.ndarray
    trajectory: np.ndarray
    policy_target: np.ndarray
    safety: SafetyResult
    queried: bool


class PolicyRunner:
    """Runs a :class:`~fdl_robot.policy.interface.Policy` at its dt through the safety layer."""

    def __init__(self, policy: Policy, limits: JointLimits, execution: str = _POLICY.chunk_execution,
                 ensemble_m: float = _POLICY.ensemble_m, trajectory_points: int = 0):
        if execution not in EXECUTION_MODES:
            raise ValueError(f"chunk_execution must be one of {EXECUTION_MODES}, got '{execution}'")
        if limits.n != ACTION_DIM:
            raise ValueError(f"limits must cover {ACTION_DIM} joints (6 arm + gripper), "
                             f"got {limits.n}")
        self.policy = policy
        self.safety = SafetyLayer(limits)
        self.execution = execution
        self.ensemble_m = float(ensemble_m)
        self.trajectory_points = int(trajectory_points)        # 0 = the whole remaining chunk
        self.dt_s = float(policy.dt_s)
        self.k = int(policy.chunk_size)
        self.scheduler: ActionScheduler = (
            TemporalEnsembler(self.k, ensemble_m) if execution == "ensemble"
            else ChunkedExecutor(self.k))
        self.reset()

    def reset(self) -> None:
        """Forget all chunks and the policy's episode state (new episode, after a hold)."""
        self.policy.reset()
        self.scheduler.reset()
        self._last_s: float | None = None
        self._chunk: np.ndarray | None = None     # newest chunk (k, 7)
        self._chunk_step = 0                      # scheduler step at which it started
        self._last_cmd: np.ndarray | None = None  # command of the previous step (7,)

    # --- one control step -------------------------------------------------------------

    def step(self, obs: PolicyObservation, now_s: float) -> RunnerOutput:
        """Choose this step's target from the chunks and filter it through the safety layer."""
        if self._last_s is not None and not 0 <= now_s - self._last_s <= self.k * self.dt_s:
            self.scheduler.reset()                # every prediction expired, or time went back
            self._chunk = None
            self._last_cmd = None                 # rate-limit from the measured state again
        self._last_s = now_s
        queried = self.scheduler.needs_chunk
        chunk = None
        if queried:
            chunk = np.asarray(self.policy.predict_chunk(obs), dtype=np.float64)
            if chunk.shape != (self.k, ACTION_DIM):
                raise ValueError(f"policy returned a chunk of shape {chunk.shape}, "
                                 f"expected ({self.k}, {ACTION_DIM})")
        if chunk is not None and not np.all(np.isfinite(chunk)):
            target, remaining = np.full(ACTION_DIM, np.nan), np.empty((0, ACTION_DIM))
        else:
            if chunk is not None:
                self._chunk, self._chunk_step = chunk, self.scheduler.step
            target = self.scheduler.update(chunk)
            remaining = self._chunk[self.scheduler.step - self._chunk_step:]
            if self.trajectory_points:
                remaining = remaining[:self.trajectory_points - 1]
        q_meas = obs.joint_state
        result = self.safety.filter(target, q_meas, self.dt_s, self._last_cmd)
        self._last_cmd = result.q_cmd_rad
        rest = (self.safety.filter_trajectory(remaining, result.q_cmd_rad, self.dt_s)
                if len(remaining) else np.empty((0, ACTION_DIM)))
        return RunnerOutput(result.q_cmd_rad, np.vstack([result.q_cmd_rad[None], rest]),
                            target, result, queried)


def limits_from_params(p: Mapping[str, Any]) -> JointLimits:
    """The :class:`JointLimits` of a policy_node parameter dict (``ros.parameters``)."""
    return from_mapping(SafetyConfig, p).limits()


# --- policy selection ---------------------------------------------------------------------

def make_policy(name: str, *, dt_s: float, model_path: str = "", threads: int = 0,
                **kwargs: Any) -> Policy:
    """The policy named by the ``policy`` parameter: 'scripted' or 'act'.

    'act' loads :class:`fdl_robot.policy.act.policy.ACTPolicy` from ``model_path`` ('' =
    the shipped weights; torch is imported only here) with ``threads`` torch threads per
    forward pass (0 = torch's setting); its control period is fixed by training, so
    ``dt_s`` must equal it (ValueError otherwise). A missing checkpoint raises
    FileNotFoundError, one that cannot be loaded ValueError; both name the path.
    """
    if name == "scripted":
        from fdl_robot.policy.scripted import ScriptedPolicy

        return ScriptedPolicy(dt_s=dt_s, **kwargs)
    if name == "act":
        from fdl_robot.policy.act.policy import SHIPPED_MODEL_PATH, ACTPolicy

        try:
            policy = ACTPolicy.load(model_path, threads=threads, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch.load raises anything on a corrupt file
            detail = (str(exc).strip().splitlines() or [""])[0]
            raise ValueError(f"cannot load the ACT checkpoint {model_path or SHIPPED_MODEL_PATH}: "
                             f"{type(exc).__name__}: {detail}") from exc
        if abs(policy.dt_s - dt_s) > 1e-9:
            raise ValueError(f"the ACT model was trained at dt = {policy.dt_s} s "
                             f"({1 / policy.dt_s:g} Hz), not {dt_s} s")
        return policy
    raise ValueError(f"unknown policy '{name}'; choose 'scripted' or 'act'")

"""ACTPolicy: the trained ACT model behind :class:`fdl_robot.policy.interface.Policy`.

    policy = ACTPolicy.load()                 # the shipped weights (models/act/act.pt)
    chunk = policy.predict_chunk(obs)         # (k, 7) absolute targets, row 0 = next step

Per call: observation vector (``processor.observation_vector``: qpos, gripper, TCP by
forward kinematics, joint-state velocity, target centre and bin x, y in base_link) ->
normalise -> ACT with z = 0 (prior mean) -> unnormalise -> back to absolute targets
(``chunk_from_model``: + q_t for the joints) -> gripper clipped to [0, 1].

Velocity: the finite difference of the joint states of this and the previous call,
v = (x_t - x_prev) / (t - t_prev) over the window w = t - t_prev (stamps ``stamp_s``).
With temporal ensembling the policy is called every control step (w = dt); with chunked
execution every k steps (w = k dt; training covers windows up to ``max_window_steps``).
After ``reset()``, or when the previous call is older than ``max_window_steps`` dt (or the
clock went back), the arm is taken to be at rest: v = 0, w = dt. (Episodes start at rest,
and the policy_node resets the policy after a watchdog hold.) A call with the same stamp
and joint state as the previous one (the same measurement again) reuses its velocity.
Every call updates the previous state, also the hold calls without a target. Give
``stamp_s`` = the time the joint state was measured (its header stamp), so that the
finite difference is taken over measurement times. Joint limits and speeds are left to the
safety layer of :class:`~fdl_robot.policy.runner.PolicyRunner`.

Missing data never moves the robot and NaN never reaches the model:

* no target (``obs.target_p_base_m is None``): a *hold chunk*, the current joint state
  repeated k times (``mode = 'hold'``). With ``target_memory_s > 0`` (default 0, off) the
  last target seen at most that long ago (by ``obs.stamp_s``) is used instead, e.g. to
  ride out a track that disappears while the cube is occluded in the gripper.
* :class:`PolicyObservation` rejects non-finite inputs on construction; a non-finite
  model output (never observed) also gives the hold chunk (``mode = 'invalid'``).

Threads: ``threads`` > 0 runs each forward pass with that many torch intra-op threads and
restores the process's setting afterwards (so a PyTorch detector in the same process keeps
its threads). The policy_node uses 1: a batch-1 forward of this model gains nothing from a
second thread, and on a 2-core computer shared with the detector a second OpenMP thread
waits for a core (measured with both cores busy: p50 2.2 / p99 7.3 ms with one thread,
p50 14 / p99 209 ms with two).

Checkpoint (``torch.save`` of a dict of tensors and plain values, loadable with
``weights_only=True``)::

    format        'fdl_robot.act/1'
    config        ACTConfig.to_dict()
    normalizer    Normalizer.to_dict()   (per-feature mean/std of the training set)
    state_dict    model weights (the shipped file leaves out the CVAE encoder)
    with_vae_encoder, meta (training facts)
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdl_robot.outputs import SHIPPED_MODELS_DIR, write_bytes
from fdl_robot.policy.act.config import ACTConfig
from fdl_robot.policy.act.model import ACTModel
from fdl_robot.policy.act.processor import Normalizer, chunk_from_model, observation_vector
from fdl_robot.policy.interface import ACTION_DIM, PolicyObservation

__all__ = ["CHECKPOINT_FORMAT", "SHIPPED_MODEL_PATH", "ACTPolicy", "save_checkpoint",
           "load_checkpoint"]

CHECKPOINT_FORMAT = "fdl_robot.act/1"
#: The weights shipped with the package (``fdl_robot/models/act/act.pt``).
SHIPPED_MODEL_PATH = SHIPPED_MODELS_DIR / "act" / "act.pt"


def save_checkpoint(path: str | Path, model: ACTModel, normalizer: Normalizer,
                    inference_only: bool = True, meta: dict[str, Any] | None = None) -> None:
    """Write model + config + normalizer (+ meta) to ``path`` (see the module docstring), whole
    or not at all (:func:`fdl_robot.outputs.write_bytes`; OutputError if it cannot)."""
    state = model.inference_state_dict() if inference_only else model.state_dict()
    buffer = io.BytesIO()
    torch.save({
        "format": CHECKPOINT_FORMAT,
        "config": model.cfg.to_dict(),
        "normalizer": normalizer.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
        "with_vae_encoder": not inference_only and model.vae is not None,
        "meta": dict(meta or {}),
    }, buffer)
    write_bytes(path, buffer.getvalue(), "checkpoint")


def load_checkpoint(path: str | Path) -> tuple[ACTModel, Normalizer, dict[str, Any]]:
    """(model in eval mode, normalizer, meta) from a checkpoint written by :func:`save_checkpoint`."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an fdl_robot ACT checkpoint ({CHECKPOINT_FORMAT})")
    cfg = ACTConfig.from_dict(ckpt["config"])
    model = ACTModel(cfg, with_vae_encoder=bool(ckpt["with_vae_encoder"]))
    model.load_state_dict(ckpt["state_dict"], strict=True)
    model.eval()
    return model, Normalizer.from_dict(ckpt["normalizer"]), dict(ckpt.get("meta", {}))


class ACTPolicy:
    """Implements :class:`fdl_robot.policy.interface.Policy` with a trained :class:`ACTModel`."""

    def __init__(self, model: ACTModel, normalizer: Normalizer, target_memory_s: float = 0.0,
                 meta: dict[str, Any] | None = None, threads: int = 0):
        if not target_memory_s >= 0:
            raise ValueError(f"target_memory_s must be >= 0, got {target_memory_s}")
        if not int(threads) >= 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        #: torch intra-op threads for each forward pass (0 = leave torch's setting).
        self.threads = int(threads)
        self.model = model.eval()
        self.normalizer = normalizer
        self.config: ACTConfig = model.cfg
        self.chunk_size = int(self.config.chunk_size)
        self.dt_s = float(self.config.dt_s)
        self.target_memory_s = float(target_memory_s)
        self.meta = dict(meta or {})
        #: 'act' (model output), 'memory' (model on a remembered target), 'hold' (no
        #: target: current state repeated) or 'invalid' (non-finite output: hold).
        self.mode = "hold"
        #: Wall time of the last model evaluation, seconds.
        self.last_inference_s = 0.0
        self.reset()

    @classmethod
    def load(cls, path: str | Path = "", **kwargs: Any) -> "ACTPolicy":
        """Load a checkpoint; ``''`` = the shipped weights."""
        path = Path(path) if str(path) else SHIPPED_MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(f"ACT checkpoint not found: {path}")
        model, normalizer, meta = load_checkpoint(path)
        return cls(model, normalizer, meta=meta, **kwargs)

    def reset(self) -> None:
        self._last_target: np.ndarray | None = None
        self._last_target_s: float | None = None
        self._prev: tuple[float, np.ndarray, np.ndarray, float] | None = None
        self.mode = "hold"

    def velocity(self, obs: PolicyObservation) -> tuple[np.ndarray, float]:
        """(joint-state velocity (7,), window s) from the previous call (module docstring)."""
        x, t = obs.joint_state, obs.stamp_s
        max_window = self.config.augment.max_window_steps * self.dt_s + 1e-6
        if self._prev is not None:
            t_prev, x_prev, v_prev, w_prev = self._prev
            if abs(t - t_prev) <= 1e-9 and np.array_equal(x, x_prev):
                return v_prev, w_prev                  # the same measurement again
            if 0.0 < t - t_prev <= max_window:
                return (x - x_prev) / (t - t_prev), t - t_prev
        return np.zeros(ACTION_DIM), self.dt_s

    def hold_chunk(self, obs: PolicyObservation) -> np.ndarray:
        """The current joint state repeated k times: (k, 7)."""
        return np.tile(obs.joint_state, (self.chunk_size, 1))

    def predict_chunk(self, obs: PolicyObservation) -> np.ndarray:
        """(k, 7) absolute targets [6 joints rad, gripper 0..1]; a hold chunk without a target."""
        velocity, window = self.velocity(obs)
        self._prev = (obs.stamp_s, obs.joint_state, velocity, window)
        mode = "act"
        if obs.has_target:
            self._last_target, self._last_target_s = obs.target_p_base_m.copy(), obs.stamp_s
        elif (self._last_target is not None and self.target_memory_s > 0
              and 0.0 <= obs.stamp_s - self._last_target_s <= self.target_memory_s):
            obs = PolicyObservation(obs.qpos_rad, obs.gripper, self._last_target, obs.bin_p_base_m,
                                    obs.stamp_s)
            mode = "memory"
        else:
            self.mode = "hold"
            return self.hold_chunk(obs)
        chunk = self.predict_vectors(observation_vector(obs, velocity, window)[None])[0]
        if not np.all(np.isfinite(chunk)):
            self.mode = "invalid"
            return self.hold_chunk(obs)
        self.mode = mode
        return chunk

    def predict_vectors(self, obs_vectors: np.ndarray) -> np.ndarray:
        """Batch inference on observation vectors (B, 28) -> chunks (B, k, 7), float64."""
        x = self.normalizer.normalize_obs(obs_vectors)
        t0 = time.perf_counter()
        process_threads = torch.get_num_threads()
        switch = self.threads > 0 and self.threads != process_threads
        if switch:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                a_n, _, _ = self.model(torch.as_tensor(x, dtype=torch.float32))
        finally:
            if switch:
                torch.set_num_threads(process_threads)
        self.last_inference_s = time.perf_counter() - t0
        chunk = chunk_from_model(self.normalizer.unnormalize_action(a_n.numpy().astype(np.float64)),
                                 np.asarray(obs_vectors, np.float64)[:, :7], self.config.relative_actions)
        chunk[..., ACTION_DIM - 1] = np.clip(chunk[..., ACTION_DIM - 1], 0.0, 1.0)
        return chunk

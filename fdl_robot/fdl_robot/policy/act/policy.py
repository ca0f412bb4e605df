"""ACTPolicy: the trained ACT model behind :class:`fdl_robot.policy.interface.Policy`.

    policy = ACTPolicy.load()                 # the shipped weights (models/act/act.pt)
    chunk = policy.predict_chunk(obs)         # (k, 7) absolute targets, row 0 = next step

Per call: observation vector (``processor.observation_vector``: qpos, gripper, TCP by
forward kinematics, target centre and bin x, y in base_link) -> normalise -> ACT with
z = 0 (prior mean) -> unnormalise -> back to absolute targets (``chunk_from_model``: + q_t
for the joints) -> gripper clipped to [0, 1]. Joint limits and speeds are left to the
safety layer of :class:`~fdl_robot.policy.runner.PolicyRunner`.

Missing data never moves the robot and NaN never reaches the model:

* no target (``obs.target_p_base_m is None``): a *hold chunk*, the current joint state
  repeated k times (``mode = 'hold'``). With ``target_memory_s > 0`` (default 0, off) the
  last target seen at most that long ago (by ``obs.stamp_s``) is used instead, e.g. to
  ride out a track that disappears while the cube is occluded in the gripper.
* :class:`PolicyObservation` rejects non-finite inputs on construction; a non-finite
  model output (never observed) also gives the hold chunk (``mode = 'invalid'``).

Checkpoint (``torch.save`` of a dict of tensors and plain values, loadable with
``weights_only=True``)::

    format        'fdl_robot.act/1'
    config        ACTConfig.to_dict()
    normalizer    Normalizer.to_dict()   (per-feature mean/std of the training set)
    state_dict    model weights (the shipped file leaves out the CVAE encoder)
    with_vae_encoder, meta (training facts)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fdl_robot.policy.act.config import ACTConfig
from fdl_robot.policy.act.model import ACTModel
from fdl_robot.policy.act.processor import Normalizer, chunk_from_model, observation_vector
from fdl_robot.policy.interface import ACTION_DIM, PolicyObservation

__all__ = ["CHECKPOINT_FORMAT", "SHIPPED_MODEL_PATH", "ACTPolicy", "save_checkpoint",
           "load_checkpoint"]

CHECKPOINT_FORMAT = "fdl_robot.act/1"
#: The weights shipped with the package (``fdl_robot/models/act/act.pt``).
SHIPPED_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "act" / "act.pt"


def save_checkpoint(path: str | Path, model: ACTModel, normalizer: Normalizer,
                    inference_only: bool = True, meta: dict[str, Any] | None = None) -> None:
    """Write model + config + normalizer (+ meta) to ``path`` (see the module docstring)."""
    state = model.inference_state_dict() if inference_only else model.state_dict()
    torch.save({
        "format": CHECKPOINT_FORMAT,
        "config": model.cfg.to_dict(),
        "normalizer": normalizer.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
        "with_vae_encoder": not inference_only and model.vae is not None,
        "meta": dict(meta or {}),
    }, Path(path))


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
                 meta: dict[str, Any] | None = None):
        if not target_memory_s >= 0:
            raise ValueError(f"target_memory_s must be >= 0, got {target_memory_s}")
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
        self.mode = "hold"

    def hold_chunk(self, obs: PolicyObservation) -> np.ndarray:
        """The current joint state repeated k times: (k, 7)."""
        return np.tile(obs.joint_state, (self.chunk_size, 1))

    def predict_chunk(self, obs: PolicyObservation) -> np.ndarray:
        """(k, 7) absolute targets [6 joints rad, gripper 0..1]; a hold chunk without a target."""
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
        chunk = self.predict_vectors(observation_vector(obs)[None])[0]
        if not np.all(np.isfinite(chunk)):
            self.mode = "invalid"
            return self.hold_chunk(obs)
        self.mode = mode
        return chunk

    def predict_vectors(self, obs_vectors: np.ndarray) -> np.ndarray:
        """Batch inference on observation vectors (B, 20) -> chunks (B, k, 7), float64."""
        x = self.normalizer.normalize_obs(obs_vectors)
        t0 = time.perf_counter()
        with torch.inference_mode():
            a_n, _, _ = self.model(torch.as_tensor(x, dtype=torch.float32))
        self.last_inference_s = time.perf_counter() - t0
        chunk = chunk_from_model(self.normalizer.unnormalize_action(a_n.numpy().astype(np.float64)),
                                 np.asarray(obs_vectors, np.float64)[:, :7], self.config.relative_actions)
        chunk[..., ACTION_DIM - 1] = np.clip(chunk[..., ACTION_DIM - 1], 0.0, 1.0)
        return chunk

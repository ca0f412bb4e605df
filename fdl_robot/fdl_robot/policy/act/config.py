"""ACTConfig: every number that defines the ACT model, its inputs and its training.

Stored as JSON inside each checkpoint (and next to the shipped weights), so a checkpoint
rebuilds its own model; nothing here imports torch.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ACTConfig", "AugmentConfig"]


@dataclass(frozen=True)
class AugmentConfig:
    """Perturbation of the object inputs during training (see ``processor.augment_objects``).

    Lengths in metres, times in control steps (20 ms at 50 Hz). Per training sample one
    source is drawn: the clean ground truth (``p_clean``), the recorded perception-noise
    stream ``objects_noisy`` (``p_recorded``), or the synthetic model below (the rest).

    Synthetic target (red cube): delay d ~ U{0..max_delay_steps} (latency + 15 Hz
    zero-order hold), with probability ``p_freeze`` after the grasp started the input is
    frozen at a random earlier time since then (occlusion by the fingers), plus a bias
    (per sample = per episode, the model sees one instant) and white noise, per axis.
    Synthetic bin: bias + noise in x, y (a tracked bin detection's centre).
    """

    p_clean: float = 0.15
    p_recorded: float = 0.25
    max_delay_steps: int = 8
    p_freeze: float = 0.3
    target_bias_std_m: tuple[float, float, float] = (0.003, 0.003, 0.004)
    target_noise_std_m: float = 0.0025
    bin_bias_std_m: float = 0.008
    bin_noise_std_m: float = 0.002
    #: Extra bin bias added to the recorded stream (its own bias is only 2 mm).
    recorded_bin_bias_std_m: float = 0.006
    #: Velocity input: with this probability over a long window (half of them exactly
    #: max_window_steps = k, as with chunked execution, which queries the policy every k
    #: steps; the other half U{2..k}), else over one step (temporal ensembling).
    p_long_window: float = 0.3
    max_window_steps: int = 25


@dataclass(frozen=True)
class ACTConfig:
    """Model, input and training hyper-parameters.

    Inputs (``processor.OBS_FEATURES``): qpos (6, rad), gripper (0..1), TCP position by
    forward kinematics (3), joint-state velocity (7) and its window (1), target position and
    target - TCP (3 + 3, m, base_link), bin position x, y and bin - TCP in x, y (2 + 2, m,
    base_link) -> ``obs_dim`` = 28.
    Output: ``chunk_size`` rows of ``action_dim`` = 7 absolute joint targets.
    """

    # --- interface
    obs_dim: int = 28
    action_dim: int = 7
    chunk_size: int = 25
    dt_s: float = 0.02
    #: Predict joint targets relative to the observed joints (``processor.chunk_to_model``).
    relative_actions: bool = True
    # --- model
    d_model: int = 64
    n_heads: int = 4
    dim_feedforward: int = 256
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    n_vae_encoder_layers: int = 2
    latent_dim: int = 32
    dropout: float = 0.05
    # --- loss and optimisation
    kl_weight: float = 10.0
    lr: float = 3e-4
    lr_min: float = 1e-5
    warmup_steps: int = 500
    weight_decay: float = 1e-4
    grad_clip_norm: float = 1.0
    batch_size: int = 64
    steps: int = 16000
    val_fraction: float = 0.1
    val_every: int = 1000
    seed: int = 0
    #: Lower bound on a normalisation std (a constant feature would divide by zero).
    std_floor: float = 1e-3
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ACTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ACTConfig fields {sorted(unknown)}")
        d = dict(d)
        aug = d.pop("augment", None)
        if isinstance(aug, dict):
            aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
            d["augment"] = AugmentConfig(**aug)
        elif aug is not None:
            d["augment"] = aug
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.chunk_size < 1 or not self.dt_s > 0:
            raise ValueError(f"need chunk_size >= 1 and dt_s > 0, got {self.chunk_size}, {self.dt_s}")
        if self.n_decoder_layers < 1 or self.n_encoder_layers < 1:
            raise ValueError("need at least one encoder and one decoder layer")

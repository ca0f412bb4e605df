"""ACTConfig: every number that defines the ACT model, its inputs and its training.

Stored as JSON inside each checkpoint (and next to the shipped weights), so a checkpoint
rebuilds its own model; nothing here imports torch.

Both configs check themselves when they are built (``__post_init__``): a ValueError names
every violated rule. Each field's ``metadata['help']`` describes it (the training command
line takes its option help from there). A comment above a field gives the value of the
ACT paper (Zhao et al. 2023) where this one departs from it, and why.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

from fdl_robot.core.robot import CONTROL_DT_S

__all__ = ["ACTConfig", "AugmentConfig"]


def _field(default: Any, help: str) -> Any:
    """A dataclass field with its default and its description (``metadata['help']``)."""
    return field(default=default, metadata={"help": help})


def _check(config: object, rules: Iterable[tuple[bool, str]]) -> None:
    """Raise ValueError listing the message of every rule whose condition is False."""
    broken = [message for ok, message in rules if not ok]
    if broken:
        raise ValueError(f"invalid {type(config).__name__}: " + "; ".join(broken))


@dataclass(frozen=True)
class AugmentConfig:
    """Perturbation of the object inputs during training (see ``processor.augment_objects``).

    Lengths in metres, times in control steps (``CONTROL_DT_S`` each). Per training sample
    one source is drawn: the clean ground truth (``p_clean``), the recorded perception-noise
    stream ``objects_noisy`` (``p_recorded``, at most 1 - p_clean of the samples), or the
    synthetic model below (the rest).

    Synthetic target (red cube): delay d ~ U{0..max_delay_steps} (latency + 15 Hz
    zero-order hold), with probability ``p_freeze`` while the gripper is commanded closed
    the input is frozen at a random earlier time of that grasp (occlusion by the fingers;
    a cube dropped and grasped again is frozen within the new grasp only), plus a bias
    (per sample = per episode, the model sees one instant) and white noise, per axis.
    Synthetic bin: bias + noise in x, y (a tracked bin detection's centre). Target velocity
    (x, y): the true one at the input's step plus white noise, 0 for a frozen input and where
    its norm is below ``target_velocity_min_m_s`` (the tracker's velocity is given to the
    policy only when significant, ``policy.inputs``).

    The ACT paper perturbs no inputs; these perturbations stand in for the perception
    stack (detector, lifting, tracker) that feeds the policy here.
    """

    p_clean: float = _field(0.15, "probability of ground-truth object inputs")
    p_recorded: float = _field(0.25, "probability of the recorded perception-noise stream")
    max_delay_steps: int = _field(8, "largest synthetic delay of the target input, control steps")
    p_freeze: float = _field(0.3, "probability that the synthetic target is frozen while the gripper is closed")
    target_bias_std_m: tuple[float, float, float] = _field(
        (0.003, 0.003, 0.004), "std of the synthetic target bias per axis x y z, m")
    target_noise_std_m: float = _field(0.0025, "std of the synthetic target noise per axis, m")
    bin_bias_std_m: float = _field(0.008, "std of the synthetic bin bias in x and y, m")
    bin_noise_std_m: float = _field(0.002, "std of the synthetic bin noise in x and y, m")
    recorded_bin_bias_std_m: float = _field(
        0.006, "extra bin bias added to the recorded stream (its own bias is only 2 mm), m")
    target_velocity_noise_std_m_s: float = _field(0.02, "std of the target velocity noise in x and y, m/s")
    target_velocity_min_m_s: float = _field(
        0.03, "a perceived target velocity below this is given as 0 (not significant), m/s")
    p_long_window: float = _field(
        0.3, "probability of a long velocity window (half of them exactly max_window_steps, as with "
             "chunked execution, the other half U{2..max_window_steps}); else one step, as with ensembling")
    max_window_steps: int = _field(25, "longest velocity window, control steps (chunked execution: chunk_size)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming every violated rule (also called on construction)."""
        probabilities = {k: getattr(self, k) for k in ("p_clean", "p_recorded", "p_freeze", "p_long_window")}
        stds = {"target_bias_std_m": min(self.target_bias_std_m, default=0.0),
                **{k: getattr(self, k) for k in ("target_noise_std_m", "bin_bias_std_m", "bin_noise_std_m",
                                                 "recorded_bin_bias_std_m", "target_velocity_noise_std_m_s",
                                                 "target_velocity_min_m_s")}}
        _check(self, [
            *((0.0 <= p <= 1.0, f"{k} must be in [0, 1], got {p}") for k, p in probabilities.items()),
            *((s >= 0.0, f"{k} must be >= 0, got {s}") for k, s in stds.items()),
            (len(self.target_bias_std_m) == 3,
             f"target_bias_std_m needs 3 values (x, y, z), got {self.target_bias_std_m}"),
            (self.max_delay_steps >= 0, f"max_delay_steps must be >= 0, got {self.max_delay_steps}"),
            (self.max_window_steps >= 2,
             f"max_window_steps must be >= 2 (long windows are drawn from 2..max_window_steps), "
             f"got {self.max_window_steps}"),
        ])


@dataclass(frozen=True)
class ACTConfig:
    """Model, input and training hyper-parameters.

    Inputs: the ``obs_dim`` features of ``processor.OBS_FEATURES`` (joint states, TCP,
    velocity, target and bin in base_link; ``processor`` states them and their units).
    Output: ``chunk_size`` rows of ``action_dim`` = 7 absolute joint targets, one per
    control step of ``dt_s``.

    Cross-field rules: ``d_model`` divisible by ``n_heads``; ``lr_min <= lr``;
    ``chunk_size <= augment.max_window_steps`` (chunked execution queries the policy every
    ``chunk_size`` steps, and ``ACTPolicy`` takes a velocity window longer than the trained
    ones for a robot at rest).
    """

    # --- interface
    obs_dim: int = _field(30, "observation features (processor.OBS_DIM)")
    action_dim: int = _field(7, "action features: 6 arm joints and the gripper")
    # ACT paper: 100 (2 s); 25 (0.5 s) re-planned every step with temporal ensembling suffices for this task.
    chunk_size: int = _field(25, "actions predicted per query (k), one per control step")
    dt_s: float = _field(CONTROL_DT_S, "control period of the demonstrations and of the policy, s")
    # ACT paper: absolute targets; relative ones turn reaching into a small, nearly linear map (processor).
    relative_actions: bool = _field(
        True, "predict joint targets relative to the observed joints (processor.chunk_to_model)")
    # --- model
    # ACT paper: 512, 8 heads, 3200; state inputs (no camera images) need far less, and train on a CPU.
    d_model: int = _field(64, "transformer width")
    n_heads: int = _field(4, "attention heads (d_model must be divisible by it)")
    dim_feedforward: int = _field(256, "hidden width of the transformer MLPs")
    n_encoder_layers: int = _field(4, "layers of the policy's transformer encoder")
    # ACT paper: 7, of which its code uses only the first.
    n_decoder_layers: int = _field(1, "layers of the transformer decoder")
    # ACT paper: 4; the CVAE encoder is used in training only.
    n_vae_encoder_layers: int = _field(2, "layers of the CVAE encoder (training only)")
    latent_dim: int = _field(32, "dimension of the CVAE latent z")
    # ACT paper: 0.1; halved for the 64-wide model, which the input perturbations regularise as well.
    dropout: float = _field(0.05, "dropout probability in the transformer layers")
    # --- loss and optimisation
    kl_weight: float = _field(10.0, "weight beta of the KL term in the loss")
    # ACT paper: constant 1e-5 at batch 8 (pretrained backbone); a small model from scratch takes more, warmed up.
    lr: float = _field(3e-4, "peak learning rate (AdamW), after the linear warm-up")
    lr_min: float = _field(1e-5, "learning rate at the end of the cosine decay")
    warmup_steps: int = _field(500, "optimiser steps of linear learning-rate warm-up")
    weight_decay: float = _field(1e-4, "AdamW weight decay of the weight matrices (ACTModel.param_groups)")
    # ACT paper: no clipping; it bounds the early steps of the higher learning rate.
    grad_clip_norm: float = _field(1.0, "largest gradient norm (clipped above)")
    # ACT paper: 8; a batch of state vectors is cheap.
    batch_size: int = _field(64, "samples per optimiser step")
    steps: int = _field(16000, "optimiser steps")
    val_fraction: float = _field(0.1, "fraction of the episodes held out for validation (at least one)")
    val_every: int = _field(1000, "validate (and keep the best checkpoint) every this many steps")
    seed: int = _field(0, "seed of the split, the initialisation, the batches and the augmentation")
    std_floor: float = _field(1e-3, "lower bound on a normalisation std (a constant feature would divide by 0)")
    augment: AugmentConfig = field(default_factory=AugmentConfig,
                                   metadata={"help": "perturbation of the object inputs in training"})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming every violated rule (also called on construction)."""
        positive = ("obs_dim", "action_dim", "chunk_size", "d_model", "n_heads", "dim_feedforward",
                    "n_encoder_layers", "n_decoder_layers", "n_vae_encoder_layers", "latent_dim",
                    "batch_size", "steps", "val_every")
        non_negative = ("kl_weight", "lr_min", "warmup_steps", "weight_decay")
        _check(self, [
            *((getattr(self, k) >= 1, f"{k} must be >= 1, got {getattr(self, k)}") for k in positive),
            *((getattr(self, k) >= 0, f"{k} must be >= 0, got {getattr(self, k)}") for k in non_negative),
            *((getattr(self, k) > 0, f"{k} must be > 0, got {getattr(self, k)}")
              for k in ("dt_s", "lr", "grad_clip_norm", "std_floor")),
            (self.n_heads < 1 or self.d_model % self.n_heads == 0,
             f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.lr_min <= self.lr, f"lr_min {self.lr_min} must be <= lr {self.lr}"),
            (isinstance(self.augment, AugmentConfig), f"augment must be an AugmentConfig, got {self.augment!r}"),
            (not isinstance(self.augment, AugmentConfig) or self.chunk_size <= self.augment.max_window_steps,
             f"chunk_size {self.chunk_size} must be <= augment.max_window_steps "
             f"{getattr(self.augment, 'max_window_steps', None)}: chunked execution queries the policy every "
             "chunk_size steps, and a longer velocity window than trained is taken for a robot at rest"),
        ])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ACTConfig":
        """The config of :meth:`to_dict` (JSON lists back to tuples); unknown keys are an error."""
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
        return cls(**d)

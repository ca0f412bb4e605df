"""ACT (Action Chunking with Transformers, Zhao et al. 2023) for the pick-and-place cell.

State inputs (joint positions, gripper, tracked target and bin positions in base_link),
absolute joint-target chunks out. Modules:

* ``config``    -- :class:`ACTConfig` (model, inputs, training, augmentation); no torch
* ``model``     -- :class:`ACTModel`: CVAE encoder, transformer encoder, 1-layer decoder
* ``processor`` -- observation assembly, :class:`Normalizer`, demonstrations, augmentation; no torch
* ``policy``    -- :class:`ACTPolicy` (the :class:`~fdl_robot.policy.interface.Policy`), checkpoints
* ``train``     -- ``fdl-robot-train-act``
* ``evaluate``  -- ``fdl-robot-eval-act``: closed loop in the simulator through PolicyRunner

torch is imported by ``model``, ``policy``, ``train`` and ``evaluate`` only; importing
this package does not import it (``ACTPolicy`` and ``ACTModel`` load on first access).
"""
from __future__ import annotations

from fdl_robot.policy.act.config import ACTConfig, AugmentConfig

__all__ = ["ACTConfig", "AugmentConfig", "ACTModel", "ACTPolicy"]


def __getattr__(name: str):
    if name == "ACTPolicy":
        from fdl_robot.policy.act.policy import ACTPolicy

        return ACTPolicy
    if name == "ACTModel":
        from fdl_robot.policy.act.model import ACTModel

        return ACTModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

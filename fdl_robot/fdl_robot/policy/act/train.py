"""Train ACT on recorded demonstrations: ``fdl-robot-train-act``.

    fdl_sim record --episodes 300 --seed0 0 --no-align-yaw --out outputs/act/demos_300
    fdl-robot-train-act --data outputs/act/demos_300 --out outputs/act/run [--ship]

Writes to ``--out`` (a run directory, ``outputs/act/train`` by default): ``act.pt`` (best
checkpoint by validation loss, inference weights + config + normalizer), ``config.json``,
``metrics.json``, ``train_log.csv`` and ``loss.png`` (:data:`RUN_FILES`). The shipped
weights (``fdl_robot/models/act``) are replaced only with ``--ship``, which copies those files
there once training has ended. Every output is checked before any work. The validation
split is by episode (``--val-fraction``).

Each training sample is one step t of one episode: observation o_t with perturbed object
inputs (``processor.augment_objects``) and the action chunk a_{t..t+k-1} (padded with the
episode's last action). Loss: L1 + kl_weight * KL (``model.act_loss``), AdamW, linear
warm-up then cosine decay of the learning rate, gradient-norm clipping.

Validation (every ``--val-every`` steps) runs the model as the policy runs it, z = 0,
on every 3rd step of the validation episodes: ``val_l1`` with the object inputs
perturbed by one fixed draw of the augmentation (the selection criterion) and
``val_l1_clean`` with ground truth.

The command line has one option ``--field-name`` per field of :class:`ACTConfig` and of
its :class:`AugmentConfig` (:func:`add_config_options`: type, default and help from the
field) except ``FIXED_FIELDS``; ``OPTION_ALIASES`` keeps the earlier short names, and
``--absolute-actions`` is ``--no-relative-actions``. The run options (``--data``,
``--out``, ``--ship``, ``--max-episodes``, ``--max-minutes``, ``--threads``, ``--quiet``,
``--no-augment``) are not part of the config.
"""
from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import os
import time
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Sequence, get_args, get_origin, get_type_hints

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.config import field_default
from fdl_robot.outputs import (DIRECTORY, OutputError, check, check_args, copy_into, exit_on_error, write_figure,
                               write_json, write_text, writing)
from fdl_robot.policy.act.config import ACTConfig
from fdl_robot.policy.act.model import ACTModel, act_loss
from fdl_robot.policy.act.policy import SHIPPED_MODEL_PATH, save_checkpoint
from fdl_robot.policy.act.processor import DemoArrays, DemoDataError, Normalizer, chunk_to_model, load_episodes

__all__ = ["train", "main", "split_episodes", "lr_at", "TrainingData", "ValidationSet", "TrainLog",
           "BestCheckpoint", "optimiser_step", "validate", "write_artefacts", "add_config_options",
           "config_from_args", "OPTION_ALIASES", "FIXED_FIELDS"]


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (train, val) episode indices; at least one validation episode when n > 1."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(val_fraction * n))) if n > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def lr_at(step: int, cfg: ACTConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.lr_min at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    x = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * x))


def _tensor(x: np.ndarray) -> Tensor:
    return torch.as_tensor(x, dtype=torch.float32)


def model_chunks(data: DemoArrays, g: np.ndarray, cfg: ACTConfig) -> np.ndarray:
    """The targets of steps g (B,): their action chunks (B, k, 7) in model coordinates (``chunk_to_model``)."""
    return chunk_to_model(data.chunks(g, cfg.chunk_size), data.qpos[g], cfg.relative_actions)


# --- data --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingData:
    """The demonstrations split by episode and the normaliser fitted on the training split.

    ``val`` is the training split itself when there is one episode only
    (``n_val_episodes`` = 0).
    """

    cfg: ACTConfig
    data_dir: str
    train: DemoArrays
    val: DemoArrays
    n_train_episodes: int
    n_val_episodes: int
    normalizer: Normalizer

    @classmethod
    def load(cls, cfg: ACTConfig, data_dir: str | Path | Sequence[str | Path],
             max_episodes: int | None = None) -> "TrainingData":
        """Read the (first ``max_episodes``) episodes of one directory or several (in order;
        their seeds must differ), split them (:func:`split_episodes`) and fit the normaliser on
        clean observations and on the chunks of at most 50 000 training steps."""
        dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
        episodes = [e for d in dirs for e in load_episodes(str(d))][:max_episodes]
        seeds = [e.seed for e in episodes]
        if len(set(seeds)) < len(seeds):
            raise DemoDataError(f"the same seed in two episodes of {', '.join(map(str, dirs))}: record the "
                             "directories from disjoint --seed0 ranges")
        train_idx, val_idx = split_episodes(len(episodes), cfg.val_fraction, cfg.seed)
        tr = DemoArrays.from_episodes([episodes[i] for i in train_idx])
        va = DemoArrays.from_episodes([episodes[i] for i in val_idx]) if len(val_idx) else tr
        g_stats = np.random.default_rng(cfg.seed + 2).choice(len(tr), min(len(tr), 50_000), replace=False)
        norm = Normalizer.fit(tr.clean_obs(), model_chunks(tr, g_stats, cfg), cfg.std_floor)
        return cls(cfg, " ".join(map(str, dirs)), tr, va, len(train_idx), len(val_idx), norm)

    def sample_batch(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``cfg.batch_size`` training steps drawn uniformly with replacement from those with a
        valid label (``DemoArrays.sample_steps``): normalised
        observations (B, OBS_DIM) with perturbed objects (``cfg.augment``) and normalised
        chunks (B, k, 7) in model coordinates, float32."""
        g = self.train.sample_steps[rng.integers(0, len(self.train.sample_steps), self.cfg.batch_size)]
        obs = self.normalizer.normalize_obs(self.train.observations(g, rng, self.cfg.augment))
        return _tensor(obs), _tensor(self.normalizer.normalize_action(model_chunks(self.train, g, self.cfg)))

    def meta(self) -> dict[str, Any]:
        """What the checkpoint records about its data: directory and the seeds of both splits."""
        return {"data": self.data_dir, "train_seeds": [int(s) for s in self.train.seeds],
                "val_seeds": [int(s) for s in self.val.seeds] if self.n_val_episodes else []}


@dataclass(frozen=True)
class ValidationSet:
    """The fixed validation samples: every ``stride``-th step with a valid label of the validation episodes.

    ``obs`` holds two normalised observation sets (B, OBS_DIM) for the same targets
    ``actions`` (B, k, 7): ``'val_l1'`` with one draw of the augmentation (generator
    seeded cfg.seed + 1), ``'val_l1_clean'`` with the ground truth.
    """

    obs: dict[str, Tensor]
    actions: Tensor

    @classmethod
    def draw(cls, data: TrainingData, stride: int = 3) -> "ValidationSet":
        va, norm, cfg = data.val, data.normalizer, data.cfg
        g = va.sample_steps[::stride]
        rng = np.random.default_rng(cfg.seed + 1)
        obs = {"val_l1": _tensor(norm.normalize_obs(va.observations(g, rng, cfg.augment))),
               "val_l1_clean": _tensor(norm.normalize_obs(va.clean_obs(g)))}
        return cls(obs, _tensor(norm.normalize_action(model_chunks(va, g, cfg))))

    def __len__(self) -> int:
        return len(self.actions)


# --- one step, validation ----------------------------------------------------------------------

def optimiser_step(model: ACTModel, opt: torch.optim.Optimizer, obs: Tensor, actions: Tensor, lr: float,
                   cfg: ACTConfig) -> dict[str, float]:
    """One step at learning rate ``lr`` on a batch; returns the loss terms ``{'loss', 'l1', 'kl'}``.

    Forward with z from the posterior q_phi(z | o, a), L = L1 + kl_weight * KL
    (``model.act_loss``), gradient norm clipped to ``cfg.grad_clip_norm``, then ``opt.step()``.
    """
    for group in opt.param_groups:
        group["lr"] = lr
    a_hat, mu, logvar = model(obs, actions)
    losses = act_loss(a_hat, actions, mu, logvar, cfg.kl_weight)
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
    opt.step()
    return {k: v.item() for k, v in losses.items()}


def validate(model: ACTModel, val: ValidationSet, batch_size: int = 1024) -> dict[str, float]:
    """Mean |a_hat - a| over the validation set for each of its observation sets, with z = 0
    as at inference (eval mode, no gradients); the model is left in training mode."""
    model.eval()
    res = {}
    with torch.inference_mode():
        for key, obs in val.obs.items():
            err = 0.0
            for s in range(0, len(obs), batch_size):
                a_hat, _, _ = model(obs[s:s + batch_size])
                err += (a_hat - val.actions[s:s + batch_size]).abs().sum().item()
            res[key] = err / val.actions.numel()
    model.train()
    return res


# --- records -----------------------------------------------------------------------------------

class TrainLog:
    """The rows of ``train_log.csv``: every ``EVERY`` steps a ``'train'`` row (loss terms
    averaged over those steps, the learning rate), after each validation a ``'val'`` row.
    Steps count from 1; ``wall_s`` is the time since the loop started."""

    EVERY = 100
    KEYS = ("kind", "step", "loss", "l1", "kl", "lr", "val_l1", "val_l1_clean", "wall_s")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._sums = dict.fromkeys(("loss", "l1", "kl"), 0.0)
        self._n = 0

    def add_train(self, step: int, losses: dict[str, float], lr: float, wall_s: float) -> None:
        for k in self._sums:
            self._sums[k] += losses[k]
        self._n += 1
        if step % self.EVERY == 0:
            self.rows.append({"kind": "train", "step": step, **{k: s / self._n for k, s in self._sums.items()},
                              "lr": lr, "wall_s": wall_s})
            self._sums, self._n = dict.fromkeys(self._sums, 0.0), 0

    def add_val(self, step: int, values: dict[str, float], wall_s: float) -> None:
        self.rows.append({"kind": "val", "step": step, **values, "wall_s": wall_s})

    def last(self, kind: str) -> dict[str, Any]:
        """The last row of ``kind`` ('train' or 'val'); {} if there is none."""
        return next((r for r in reversed(self.rows) if r["kind"] == kind), {})

    @property
    def steps_done(self) -> int:
        return int(self.rows[-1]["step"]) if self.rows else 0

    def write_csv(self, path: Path) -> None:
        with writing(path, "training log"), open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.KEYS))
            w.writeheader()
            for r in self.rows:
                w.writerow({k: r.get(k, "") for k in self.KEYS})


class BestCheckpoint:
    """Keeps ``path`` the checkpoint (inference weights, normaliser, meta) of the lowest
    ``val_l1`` offered so far; ``best`` is ``{'step', 'val_l1', 'val_l1_clean'}`` of it
    (step -1 and val_l1 inf before the first)."""

    def __init__(self, path: Path, normalizer: Normalizer, meta: dict[str, Any]):
        self.path, self.normalizer, self.meta = path, normalizer, meta
        self.best: dict[str, Any] = {"val_l1": float("inf"), "step": -1}

    def offer(self, model: ACTModel, step: int, values: dict[str, float]) -> None:
        if values["val_l1"] < self.best["val_l1"]:
            self.best = {"step": step, **values}
            save_checkpoint(self.path, model, self.normalizer, inference_only=True,
                            meta={**self.meta, "step": step, **values})


def _plot(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    tr = [r for r in log if r["kind"] == "train"]
    va = [r for r in log if r["kind"] == "val"]
    ax[0].plot([r["step"] for r in tr], [r["l1"] for r in tr], lw=0.8, label="train L1 (posterior z)")
    ax[0].plot([r["step"] for r in va], [r["val_l1"] for r in va], "o-", ms=3, label="val L1 (z=0, noisy objects)")
    ax[0].plot([r["step"] for r in va], [r["val_l1_clean"] for r in va], "s-", ms=3, label="val L1 (z=0, ground truth)")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("L1 (normalised actions)")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].plot([r["step"] for r in tr], [r["kl"] for r in tr], lw=0.8, color="C3")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("KL (nats, per sample)")
    ax[1].grid(alpha=0.3)
    fig.suptitle("ACT training")
    fig.tight_layout()
    write_figure(path, fig, "loss plot", dpi=110)
    plt.close(fig)


def write_artefacts(out: Path, data: TrainingData, val: ValidationSet, log: TrainLog, best: dict[str, Any],
                    model: ACTModel, wall_s: float, load_s: float) -> dict[str, Any]:
    """Write ``train_log.csv``, ``loss.png``, ``config.json`` and ``metrics.json`` next to the
    checkpoint ``act.pt`` in ``out``; return the metrics."""
    log.write_csv(out / "train_log.csv")
    _plot(log.rows, out / "loss.png")
    write_text(out / "config.json", data.cfg.to_json() + "\n", "config")
    tr, va = data.train, data.val
    last_train = log.last("train")
    metrics = {
        "data": data.data_dir,
        "episodes_train": data.n_train_episodes, "episodes_val": data.n_val_episodes,
        "train_seeds": f"{min(tr.seeds)}..{max(tr.seeds)} ({len(tr.seeds)} seeds, val seeds excluded)",
        "val_seeds": sorted(int(s) for s in va.seeds) if data.n_val_episodes else [],
        "samples_train": len(tr), "samples_val": len(val),
        "steps_done": log.steps_done, "stopped_early": log.steps_done < data.cfg.steps,
        "best_step": best["step"],
        "best_val_l1_noisy_objects": best["val_l1"], "best_val_l1_ground_truth": best.get("val_l1_clean"),
        "final_train_l1": last_train.get("l1"), "final_train_kl": last_train.get("kl"),
        "train_wall_time_s": round(wall_s, 1), "data_load_s": round(load_s, 1),
        "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "parameters_total": sum(p.numel() for p in model.parameters()),
        "parameters_inference": sum(v.numel() for v in model.inference_state_dict().values()),
        "checkpoint_bytes": os.path.getsize(out / "act.pt"),
        "loss": "L1 (normalised actions) + kl_weight * KL; val: z = 0 as at inference",
    }
    write_json(out / "metrics.json", metrics, "metrics")
    return metrics


# --- the loop ----------------------------------------------------------------------------------

def train(cfg: ACTConfig, data_dir: str | Path | Sequence[str | Path], out_dir: str | Path, progress: bool = True,
          max_minutes: float | None = None, max_episodes: int | None = None,
          threads: int | None = 1) -> dict:
    """Train, keep the best checkpoint by validation L1, write the artefacts; return the metrics.

    Per step: a batch (:meth:`TrainingData.sample_batch`), one optimiser step at
    :func:`lr_at` (:func:`optimiser_step`). Every ``cfg.val_every`` steps, at the last step
    and once ``max_minutes`` have passed (which ends the run): :func:`validate` and the
    checkpoint if ``val_l1`` improved. ``threads``: torch threads (None: torch's default).
    One seed (``cfg.seed``) fixes the split, the initialisation, the batches and the
    augmentation draws.
    """
    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_load = time.perf_counter()
    data = TrainingData.load(cfg, data_dir, max_episodes)
    load_s = time.perf_counter() - t_load
    val = ValidationSet.draw(data)
    model = ACTModel(cfg)
    opt = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr)
    log, keeper = TrainLog(), BestCheckpoint(out / "act.pt", data.normalizer, data.meta())
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(1, cfg.steps + 1), desc="train ACT", unit="step", disable=not progress, mininterval=2.0)
    for step in bar:                # counted from 1: ``step`` optimiser steps are done after this one
        lr = lr_at(step - 1, cfg)
        log.add_train(step, optimiser_step(model, opt, *data.sample_batch(rng), lr, cfg), lr,
                      time.perf_counter() - t0)
        out_of_time = max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            values = validate(model, val)
            log.add_val(step, values, time.perf_counter() - t0)
            keeper.offer(model, step, values)
            best = keeper.best
            bar.set_postfix(l1=f"{log.last('train').get('l1', float('nan')):.3f}", val=f"{values['val_l1']:.3f}",
                            best=f"{best['val_l1']:.3f}@{best['step']}")
            if out_of_time:
                break
    wall_s = time.perf_counter() - t0
    bar.close()
    return write_artefacts(out, data, val, log, keeper.best, model, wall_s, load_s)


# --- command line ------------------------------------------------------------------------------

#: What a run writes into ``--out`` (and ``--ship`` copies into the shipped model directory).
RUN_FILES = ("act.pt", "config.json", "metrics.json", "train_log.csv", "loss.png")

#: train()'s keyword defaults: the defaults of the run options (--max-episodes, ...).
_RUN_DEFAULTS = {k: p.default for k, p in inspect.signature(train).parameters.items()}

#: The option names the command line had before it was derived from the config: field -> aliases.
OPTION_ALIASES: dict[str, tuple[str, ...]] = {
    "n_heads": ("--heads",), "dim_feedforward": ("--ff",), "n_encoder_layers": ("--enc-layers",),
    "n_decoder_layers": ("--dec-layers",), "n_vae_encoder_layers": ("--vae-layers",)}
#: Config fields without an option: fixed by the observation and action vectors
#: (``processor``) and by the control period the demonstrations were recorded at.
FIXED_FIELDS = ("obs_dim", "action_dim", "dt_s")


def _option_kind(kind: Any) -> dict[str, Any]:
    """argparse keywords for a field annotation: bool, a fixed-length tuple, or a scalar type."""
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if get_origin(kind) is tuple:
        return {"type": get_args(kind)[0], "nargs": len(get_args(kind))}
    return {"type": kind}


def add_config_options(parser: argparse.ArgumentParser | Any, config_cls: type = ACTConfig,
                       skip: Sequence[str] = FIXED_FIELDS) -> None:
    """Add one option ``--field-name`` (dest = the field's name) per field of the dataclass
    ``config_cls`` except ``skip``: type from its annotation, default from the field, help
    from ``metadata['help']``, plus its ``OPTION_ALIASES``. A field that is a dataclass
    adds an argument group of that dataclass's fields."""
    hints = get_type_hints(config_cls)
    for f in fields(config_cls):
        kind = hints[f.name]
        if f.name in skip:
            continue
        if is_dataclass(kind):
            add_config_options(parser.add_argument_group(f"{f.name}: {f.metadata['help']}"), kind, skip)
            continue
        parser.add_argument("--" + f.name.replace("_", "-"), *OPTION_ALIASES.get(f.name, ()), dest=f.name,
                            default=field_default(config_cls, f.name),
                            help=f.metadata["help"] + " (default: %(default)s)", **_option_kind(kind))


def config_from_args(args: argparse.Namespace, config_cls: type = ACTConfig,
                     skip: Sequence[str] = FIXED_FIELDS) -> Any:
    """The ``config_cls`` of options added by :func:`add_config_options` (``skip``: defaults)."""
    hints = get_type_hints(config_cls)
    values = {}
    for f in fields(config_cls):
        kind = hints[f.name]
        if f.name in skip:
            continue
        value = config_from_args(args, kind, skip) if is_dataclass(kind) else getattr(args, f.name)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**values)


def _parser() -> argparse.ArgumentParser:
    run = _RUN_DEFAULTS
    p = argparse.ArgumentParser(prog="fdl-robot-train-act", description="Train the ACT policy on recorded demos.",
                                formatter_class=HelpFormatter)
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="directories of episode_*.hdf5 (policy.act.record or fdl_sim record), read in order")
    p.add_argument("--out", type=Path, default=Path("outputs/act/train"), help="run directory (RUN_FILES)")
    p.add_argument("--ship", action="store_true",
                   help=f"after training, copy the run's files over the shipped ones ({SHIPPED_MODEL_PATH.parent}); "
                        "also needed for an --out inside it")
    p.add_argument("--max-episodes", type=int, default=run["max_episodes"],
                   help="use only the first N episodes")
    p.add_argument("--max-minutes", type=float, default=run["max_minutes"],
                   help="stop (and validate) after this wall time")
    p.add_argument("--threads", type=int, default=run["threads"],
                   help="torch threads (0 = leave torch's default; default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-augment", action="store_true",
                   help="ground-truth object inputs only (p_clean 1, p_recorded 0)")
    add_config_options(p)
    p.add_argument("--absolute-actions", dest="relative_actions", action="store_false",
                   help="alias of --no-relative-actions: predict absolute joint targets")
    return p


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    check_args(parser, a, {"--out": DIRECTORY}, shipped_ok=a.ship)
    try:
        if a.ship:
            check(SHIPPED_MODEL_PATH.parent, DIRECTORY, "--ship", shipped_ok=True)
    except OutputError as exc:
        parser.error(str(exc))
    try:
        cfg = config_from_args(a)
        if a.no_augment:
            cfg = replace(cfg, augment=replace(cfg.augment, p_clean=1.0, p_recorded=0.0))
    except ValueError as e:
        parser.error(str(e))
    try:
        m = train(cfg, a.data, a.out, progress=not a.quiet, max_minutes=a.max_minutes,
                  max_episodes=a.max_episodes, threads=a.threads or None)
    except (DemoDataError, FileNotFoundError) as e:
        raise SystemExit(f"error: --data: {e}") from None
    print(json.dumps({k: m[k] for k in ("episodes_train", "episodes_val", "steps_done", "best_step",
                                        "best_val_l1_noisy_objects", "best_val_l1_ground_truth",
                                        "train_wall_time_s", "checkpoint_bytes")}, indent=2))
    print(f"wrote {a.out}/{', '.join(RUN_FILES)}")
    if a.ship:
        shipped = copy_into(SHIPPED_MODEL_PATH.parent, [a.out / name for name in RUN_FILES], "shipped file")
        print(f"shipped into {SHIPPED_MODEL_PATH.parent}: {', '.join(shipped)}; its eval.json and "
              "closed_loop_eval.json still describe the previous weights: re-run fdl-robot-eval-act and "
              "fdl-robot-closed-loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train ACT on recorded demonstrations: ``fdl-robot-train-act``.

    fdl_sim record --episodes 300 --seed0 0 --no-align-yaw --out outputs/act/demos_300
    fdl-robot-train-act --data outputs/act/demos_300 --out outputs/act/run

Writes to ``--out``: ``act.pt`` (best checkpoint by validation loss, inference weights +
config + normalizer), ``config.json``, ``metrics.json``, ``train_log.csv`` and
``loss.png``. The validation split is by episode (``--val-fraction``).

Each training sample is one step t of one episode: observation o_t with perturbed object
inputs (``processor.augment_objects``) and the action chunk a_{t..t+k-1} (padded with the
episode's last action). Loss: L1 + kl_weight * KL (``model.act_loss``), AdamW, linear
warm-up then cosine decay of the learning rate, gradient-norm clipping.

Validation (every ``--val-every`` steps) runs the model as the policy runs it, z = 0,
on every 3rd step of the validation episodes: ``val_l1`` with the object inputs
perturbed by one fixed draw of the augmentation (the selection criterion) and
``val_l1_clean`` with ground truth.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from fdl_robot.policy.act.config import ACTConfig, AugmentConfig
from fdl_robot.policy.act.processor import DemoArrays, Normalizer, chunk_to_model, load_episodes

__all__ = ["train", "main", "split_episodes"]


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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(cfg: ACTConfig, data_dir: str | Path, out_dir: str | Path, progress: bool = True,
          max_minutes: float | None = None, max_episodes: int | None = None,
          threads: int | None = 1) -> dict:
    """Train, keep the best checkpoint by validation L1, write the artefacts; return the metrics."""
    import torch
    from tqdm import tqdm

    from fdl_robot.policy.act.model import ACTModel, act_loss
    from fdl_robot.policy.act.policy import save_checkpoint

    if threads:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    def model_chunks(data: DemoArrays, g: np.ndarray) -> np.ndarray:
        return chunk_to_model(data.chunks(g, cfg.chunk_size), data.qpos[g], cfg.relative_actions)

    t_load = time.perf_counter()
    episodes = load_episodes(str(data_dir))[:max_episodes]
    train_idx, val_idx = split_episodes(len(episodes), cfg.val_fraction, cfg.seed)
    tr = DemoArrays.from_episodes([episodes[i] for i in train_idx])
    va = DemoArrays.from_episodes([episodes[i] for i in val_idx]) if len(val_idx) else tr
    g_stats = np.random.default_rng(cfg.seed + 2).choice(len(tr), min(len(tr), 50_000), replace=False)
    norm = Normalizer.fit(tr.clean_obs(), model_chunks(tr, g_stats), cfg.std_floor)
    load_s = time.perf_counter() - t_load

    # fixed validation set: every 3rd step, one draw of the augmentation and ground truth
    g_val = np.arange(0, len(va), 3)
    val_rng = np.random.default_rng(cfg.seed + 1)
    val_obs = {
        "val_l1": torch.as_tensor(norm.normalize_obs(va.observations(g_val, val_rng, cfg.augment)), dtype=torch.float32),
        "val_l1_clean": torch.as_tensor(norm.normalize_obs(va.clean_obs(g_val)), dtype=torch.float32),
    }
    val_act = torch.as_tensor(norm.normalize_action(model_chunks(va, g_val)), dtype=torch.float32)

    model = ACTModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    n_params_inf = sum(v.numel() for v in model.inference_state_dict().values())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n not in ("queries", "token_embed", "vae_pos", "vae_cls")]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n not in ("queries", "token_embed", "vae_pos", "vae_cls"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)

    def validate() -> dict[str, float]:
        model.eval()
        res = {}
        with torch.inference_mode():
            for key, obs in val_obs.items():
                err = 0.0
                for s in range(0, len(obs), 1024):
                    a_hat, _, _ = model(obs[s:s + 1024])
                    err += (a_hat - val_act[s:s + 1024]).abs().sum().item()
                res[key] = err / val_act.numel()
        model.train()
        return res

    meta = {"data": str(data_dir), "train_seeds": [int(s) for s in tr.seeds],
            "val_seeds": [int(s) for s in va.seeds] if len(val_idx) else []}
    log: list[dict] = []
    best = {"val_l1": float("inf"), "step": -1}
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.steps), desc="train ACT", unit="step", disable=not progress, mininterval=2.0)
    run = {"loss": 0.0, "l1": 0.0, "kl": 0.0, "n": 0}
    stopped_early = False
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        g = rng.integers(0, len(tr), cfg.batch_size)
        obs = torch.as_tensor(norm.normalize_obs(tr.observations(g, rng, cfg.augment)), dtype=torch.float32)
        act = torch.as_tensor(norm.normalize_action(model_chunks(tr, g)), dtype=torch.float32)
        a_hat, mu, logvar = model(obs, act)
        losses = act_loss(a_hat, act, mu, logvar, cfg.kl_weight)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        opt.step()
        for key in ("loss", "l1", "kl"):
            run[key] += losses[key].item()
        run["n"] += 1
        if (step + 1) % 100 == 0:
            log.append({"kind": "train", "step": step + 1, **{k: run[k] / run["n"] for k in ("loss", "l1", "kl")},
                        "lr": lr_at(step, cfg), "wall_s": time.perf_counter() - t0})
            run = {"loss": 0.0, "l1": 0.0, "kl": 0.0, "n": 0}
        out_of_time = max_minutes is not None and time.perf_counter() - t0 > 60.0 * max_minutes
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps or out_of_time:
            v = validate()
            log.append({"kind": "val", "step": step + 1, **v, "wall_s": time.perf_counter() - t0})
            if v["val_l1"] < best["val_l1"]:
                best = {"step": step + 1, **v}
                save_checkpoint(out / "act.pt", model, norm, inference_only=True,
                                meta={**meta, "step": step + 1, **v})
            bar.set_postfix(l1=f"{log[-2]['l1'] if len(log) > 1 else float('nan'):.3f}",
                            val=f"{v['val_l1']:.3f}", best=f"{best['val_l1']:.3f}@{best['step']}")
            if out_of_time:
                stopped_early = step + 1 < cfg.steps
                break
    wall_s = time.perf_counter() - t0
    bar.close()

    with open(out / "train_log.csv", "w", newline="") as f:
        keys = ["kind", "step", "loss", "l1", "kl", "lr", "val_l1", "val_l1_clean", "wall_s"]
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in log:
            w.writerow({k: r.get(k, "") for k in keys})
    _plot(log, out / "loss.png")
    (out / "config.json").write_text(cfg.to_json() + "\n")
    last_train = [r for r in log if r["kind"] == "train"][-1:] or [{}]
    metrics = {
        "data": str(data_dir),
        "episodes_train": len(train_idx), "episodes_val": len(val_idx),
        "train_seeds": f"{min(tr.seeds)}..{max(tr.seeds)} ({len(tr.seeds)} seeds, val seeds excluded)",
        "val_seeds": sorted(int(s) for s in va.seeds) if len(val_idx) else [],
        "samples_train": len(tr), "samples_val": int(len(g_val)),
        "steps_done": int(log[-1]["step"]) if log else 0, "stopped_early": stopped_early,
        "best_step": best["step"],
        "best_val_l1_noisy_objects": best["val_l1"], "best_val_l1_ground_truth": best.get("val_l1_clean"),
        "final_train_l1": last_train[0].get("l1"), "final_train_kl": last_train[0].get("kl"),
        "train_wall_time_s": round(wall_s, 1), "data_load_s": round(load_s, 1),
        "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "parameters_total": n_params, "parameters_inference": n_params_inf,
        "checkpoint_bytes": os.path.getsize(out / "act.pt"),
        "loss": "L1 (normalised actions) + kl_weight * KL; val: z = 0 as at inference",
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _parser() -> argparse.ArgumentParser:
    d = ACTConfig()
    p = argparse.ArgumentParser(prog="fdl-robot-train-act", description="Train the ACT policy on recorded demos.")
    p.add_argument("--data", type=Path, required=True, help="directory of episode_*.hdf5 (fdl_sim record)")
    p.add_argument("--out", type=Path, default=Path("outputs/act/train"), help="output directory")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--chunk-size", type=int, default=d.chunk_size)
    p.add_argument("--d-model", type=int, default=d.d_model)
    p.add_argument("--heads", type=int, default=d.n_heads)
    p.add_argument("--ff", type=int, default=d.dim_feedforward)
    p.add_argument("--enc-layers", type=int, default=d.n_encoder_layers)
    p.add_argument("--dec-layers", type=int, default=d.n_decoder_layers)
    p.add_argument("--vae-layers", type=int, default=d.n_vae_encoder_layers)
    p.add_argument("--latent-dim", type=int, default=d.latent_dim)
    p.add_argument("--kl-weight", type=float, default=d.kl_weight)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-augment", action="store_true", help="ground-truth object inputs only")
    p.add_argument("--absolute-actions", action="store_true",
                   help="predict absolute joint targets (default: relative to the observed joints)")
    p.add_argument("--p-freeze", type=float, default=d.augment.p_freeze)
    p.add_argument("--max-episodes", type=int, default=None, help="use only the first N episodes")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and validate) after this wall time")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = leave torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    aug = AugmentConfig(p_freeze=a.p_freeze)
    if a.no_augment:
        aug = replace(aug, p_clean=1.0, p_recorded=0.0)
    cfg = ACTConfig(chunk_size=a.chunk_size, relative_actions=not a.absolute_actions,
                    d_model=a.d_model, n_heads=a.heads, dim_feedforward=a.ff,
                    n_encoder_layers=a.enc_layers, n_decoder_layers=a.dec_layers,
                    n_vae_encoder_layers=a.vae_layers, latent_dim=a.latent_dim, kl_weight=a.kl_weight,
                    dropout=a.dropout, lr=a.lr, batch_size=a.batch_size, steps=a.steps,
                    val_fraction=a.val_fraction, val_every=a.val_every, seed=a.seed, augment=aug)
    cfg.validate()
    m = train(cfg, a.data, a.out, progress=not a.quiet, max_minutes=a.max_minutes,
              max_episodes=a.max_episodes, threads=a.threads or None)
    print(json.dumps({k: m[k] for k in ("episodes_train", "episodes_val", "steps_done", "best_step",
                                        "best_val_l1_noisy_objects", "best_val_l1_ground_truth",
                                        "train_wall_time_s", "checkpoint_bytes")}, indent=2))
    print(f"wrote {a.out}/act.pt, config.json, metrics.json, train_log.csv, loss.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

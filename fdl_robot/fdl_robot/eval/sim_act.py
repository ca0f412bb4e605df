"""Closed-loop evaluation of a policy (ACT) in the simulator: ``fdl-robot-eval-act``.

    fdl-robot-eval-act --episodes 100 --seed0 5000 --json outputs/act/eval.json

Every episode: ``PickPlaceEnv.reset(seed)``, then at each control step a
:class:`~fdl_robot.policy.interface.PolicyObservation` is built from the simulator's
joint state and the object inputs below, :class:`~fdl_robot.policy.runner.PolicyRunner`
(the policy_node's defaults: its joint limits, rate limit and tracking-error bound,
``core.safety``) turns it into this step's command, and the command is
applied for one step. An episode ends after ``--max-steps`` steps, when the cube falls
off the table, or once the task has been solved for ``--settle-s`` seconds in a row.
Success = ``env.success()`` at the end (cube at rest inside the bin, not touching the
gripper). "time" = the simulated time at which that final success began.

Object inputs (rows):

* ``gt``: ground-truth cube centre and bin position.
* ``noisy``: what perception would report: ``sim.dataset.PerceptionNoiseModel`` (the
  ``objects_noisy`` model: extrinsic error of the episode's camera jitter, 2 mm bias,
  per-frame noise (1.5, 1.5, 4) mm in the optical frame, 15 Hz zero-order hold, 3 %
  dropouts) with dropouts replaced by the last valid value (as a tracker coasts), plus
  ``--latency-s`` of delay and an extra per-episode bin-centre bias N(0, ``--bin-bias-m``^2)
  in x and y (a tracked bin detection's centre).
* ``occluded``: ``noisy`` and, while the gripper is closed (closure > 0.3), the target
  input frozen at its last value before closing (the cube hidden by the fingers).
* ``tracked``: ``noisy``'s detections (missed ones left out) fed at their 15 Hz frames to the
  tracker with its defaults (:class:`fdl_robot.core.tracking.MultiObjectTracker`); the target is
  the track ``policy.inputs`` selects, delayed by ``--latency-s`` and predicted over it with the
  track's significant velocity (policy_node's ``target_prediction``), and the velocity is that
  track's significant velocity, as in the graph (no synthetic velocity noise). The bin is as in
  ``noisy``.

The target's velocity (x, y) goes with it: the true one (``gt``), delayed as the position
plus noise N(0, ``AugmentConfig.target_velocity_noise_std_m_s``^2) (``noisy``), none while frozen; a speed below
``AugmentConfig.target_velocity_min_m_s`` is given as none (not significant), as
``policy.inputs`` gives a tracker's.

Scene perturbations (``--perturbation``, ``sim.perturbations``): every row is run once per
kind given (default ``none``): the cube shifted during the reach, knocked out of the
gripper, the bin moved, a conveyor. Per episode: when the perturbation fired, the grasps
(re-grasps = grasps - 1, once the cube was grasped) and the time to recover (from the
perturbation to the final success).

Each row is run with ``ensemble`` (query every step, temporal ensembling) and/or ``chunk``
(execute each chunk open loop) execution. Output: a markdown table (success with 95 %
Wilson interval, mean time to success, failed seeds) and a JSON file with every episode.
"""
from __future__ import annotations

import argparse
import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.robot import CONTROL_DT_S
from fdl_robot.eval.base import EvalConfig, OwnsSimulator, add_arguments, from_arguments
from fdl_robot.eval.media import caption, evenly_spaced, write_strip
from fdl_robot.eval.stats import SuccessSummary
from fdl_robot.outputs import IMAGE, JSON, check_args, exit_on_error, write_json
from fdl_robot.policy.inputs import (PolicyInputsConfig, TrackedObject, predict_target, select_target,
                                     significant_velocity)
from fdl_robot.policy.runner import EXECUTION_MODES
from fdl_robot.ros.parameters import defaults
from fdl_robot.sim.perturbations import PERTURBATIONS

__all__ = ["EpisodeOutcome", "ObjectInputs", "PolicyEvalConfig", "ACTEvaluator", "run_episode", "markdown_table",
           "main", "INPUT_MODES", "POLICY_EVAL"]

INPUT_MODES = ("gt", "noisy", "occluded", "tracked")
#: Gripper closure above which the 'occluded' inputs freeze the target.
_CLOSED = 0.3
#: Seeds, episodes and limit of the policy evaluations: the defaults of :class:`EvalConfig`.
POLICY_EVAL = EvalConfig()
#: Strip of the first episode: a frame every STRIP_EVERY control steps, STRIP_FRAMES of them.
STRIP_EVERY, STRIP_FRAMES = 10, 8


@dataclass(frozen=True)
class PolicyEvalConfig:
    """The rows of a policy evaluation and how each episode is run (module docstring).

    ``settle_s``: end an episode once solved this long (0 = always run the limit);
    ``ensemble_m``: temporal ensembling weight decay (policy_node's default);
    ``latency_s``, ``bin_bias_m``: object input delay and extra bin-centre bias std of the
    noisy rows.
    """

    inputs: tuple[str, ...] = ("gt", "noisy")
    executions: tuple[str, ...] = EXECUTION_MODES
    settle_s: float = 1.0
    ensemble_m: float = defaults("policy_node")["ensemble_m"]
    latency_s: float = 0.08
    bin_bias_m: float = 0.007
    perturbations: tuple[str, ...] = ("none",)

    def __post_init__(self):
        if not set(self.inputs) <= set(INPUT_MODES) or not set(self.executions) <= set(EXECUTION_MODES):
            raise ValueError(f"inputs must be among {INPUT_MODES} and executions among {EXECUTION_MODES}, "
                             f"got {self.inputs} and {self.executions}")
        if not set(self.perturbations) <= set(PERTURBATIONS):
            raise ValueError(f"perturbations must be among {PERTURBATIONS}, got {self.perturbations}")


_DEFAULTS = PolicyEvalConfig()


@dataclass(frozen=True)
class EpisodeOutcome:
    seed: int
    success: bool
    time_to_success_s: float | None
    steps: int
    cube_dropped: bool
    hold_steps: int
    mean_predict_ms: float
    perturbation: str = "none"
    #: Simulated time the perturbation fired (None: it never did).
    perturbation_fired_s: float | None = None
    #: Times the cube was taken off the table.
    grasps: int = 0

    @property
    def regrasps(self) -> int:
        """Grasps after the first."""
        return max(self.grasps - 1, 0)

    @property
    def recover_s(self) -> float | None:
        """From the perturbation to the final success (s); None without both."""
        if self.time_to_success_s is None or self.perturbation_fired_s is None:
            return None
        return self.time_to_success_s - self.perturbation_fired_s


class ObjectInputs:
    """The target and bin positions the policy is fed in one episode (see the module docstring)."""

    def __init__(self, mode: str, env: Any, seed: int, latency_s: float = _DEFAULTS.latency_s,
                 bin_bias_m: float = _DEFAULTS.bin_bias_m):
        if mode not in INPUT_MODES:
            raise ValueError(f"inputs must be one of {INPUT_MODES}, got '{mode}'")
        from fdl_robot.sim.dataset import PerceptionNoise, PerceptionNoiseModel

        self.mode = mode
        self.latency_s = float(latency_s)
        self.perceiver = None if mode == "gt" else PerceptionNoiseModel(PerceptionNoise(), env, seed)
        self.bin_bias = np.zeros(3)
        if mode != "gt":
            self.bin_bias[:2] = np.random.default_rng([seed, 0xB1A5]).normal(0.0, bin_bias_m, 2)
        self.last_valid: dict[str, np.ndarray] = {}
        self.history: deque[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = deque()
        self.frozen: np.ndarray | None = None
        self.env = env
        self.velocity_rng = np.random.default_rng([seed, 0x7E10])
        from fdl_robot.policy.act.config import AugmentConfig

        augment = AugmentConfig()                   # the velocity noise and threshold of training
        self.velocity_noise_std_m_s = augment.target_velocity_noise_std_m_s
        self.velocity_min_m_s = augment.target_velocity_min_m_s
        self.tracker = None
        if mode == "tracked":
            from fdl_robot.core.tracking import MultiObjectTracker

            self.tracker = MultiObjectTracker()
            self.selection = PolicyInputsConfig()          # policy_node's target selection and prediction
            self.frame_s: float | None = None
            self.tracked: tuple[TrackedObject, np.ndarray | None] | None = None

    def _velocity(self, v_true: np.ndarray, noisy: bool) -> np.ndarray | None:
        """The target velocity (3,) handed to the policy, None when not significant."""
        v = v_true.copy()
        v[2] = 0.0
        if noisy:
            v[:2] += self.velocity_rng.normal(0.0, self.velocity_noise_std_m_s, 2)
        return v if np.linalg.norm(v[:2]) >= self.velocity_min_m_s else None

    def __call__(self, obs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(target (3,), bin (3,), target velocity (3,) or None) in base_link for this step's observation."""
        objects = obs["objects"]
        true = {"red_cube": objects["red_cube"].position_m, "bin": objects["bin"].position_m}
        v_true = self.env.object_velocity("red_cube")[0]
        if self.perceiver is None:
            return true["red_cube"].copy(), true["bin"].copy(), self._velocity(v_true, noisy=False)
        t = float(obs["time_s"])
        seen = self.perceiver(true, t)
        for name, p in seen.items():
            if np.all(np.isfinite(p)):
                self.last_valid[name] = p
            elif name not in self.last_valid:      # no detection yet: the first one is late
                self.last_valid[name] = true[name] + np.nan_to_num(p)
        target, bin_p, velocity = self._delayed(seen, t, v_true)
        if self.mode == "occluded":
            if obs["gripper"] > _CLOSED:
                if self.frozen is None:
                    self.frozen = target.copy()
                target, velocity = self.frozen, None
            else:
                self.frozen = None
        return target.copy(), bin_p.copy(), velocity


    def _delayed(self, seen: dict[str, np.ndarray], t: float,
                 v_true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Target, bin and target velocity as perceived ``latency_s`` before ``t`` (``noisy``,
        ``occluded``), or as the tracker gave them then, predicted over the delay (``tracked``)."""
        if self.tracker is not None:
            self._track(seen)
            target_now, v_now = self.tracked if self.tracked is not None else (self.last_valid["red_cube"], None)
        else:
            target_now, v_now = self.last_valid["red_cube"], v_true
        self.history.append((t, target_now, self.last_valid["bin"] + self.bin_bias, v_now))
        while len(self.history) > 1 and self.history[1][0] <= t - self.latency_s + 1e-9:
            self.history.popleft()
        _, target, bin_p, v_then = self.history[0]
        if self.tracker is None:
            return target, bin_p, self._velocity(v_then, noisy=True)
        if isinstance(target, TrackedObject):          # policy_node's target_prediction over the delay
            target, _ = predict_target(target, min(self.latency_s, self.selection.target_prediction_max_s))
        return target, bin_p, v_then

    def _track(self, seen: dict[str, np.ndarray]) -> None:
        """``tracked`` mode: a new perceived frame (the perceiver's 15 Hz) updates the tracker; the
        selected target track and its significant velocity (None if not) are kept."""
        frame_s = self.perceiver.next_update_s
        if frame_s == self.frame_s:
            return
        self.frame_s = frame_s
        names = [n for n, p in seen.items() if np.all(np.isfinite(p))]
        z = np.array([seen[n] for n in names]).reshape(-1, 3)
        stamp_s = frame_s - 1.0 / self.perceiver.noise.update_rate_hz
        tracks = self.tracker.update(z, stamp_s, labels=names)
        chosen = select_target([TrackedObject(k.id, k.state, k.label, k.hits, k.time_since_update_s,
                                              tuple(k.position), tuple(k.velocity), k.state_covariance)
                                for k in tracks], self.selection.target_class, self.selection.target_max_lost_s)
        if chosen is not None:
            self.tracked = (chosen, significant_velocity(chosen))


def run_episode(env: Any, runner: Any, seed: int, inputs: str = "gt", max_steps: int = POLICY_EVAL.max_steps,
                settle_s: float = _DEFAULTS.settle_s, latency_s: float = _DEFAULTS.latency_s,
                bin_bias_m: float = _DEFAULTS.bin_bias_m, on_step: Any = None,
                perturbation: str = "none") -> EpisodeOutcome:
    """One closed-loop episode of ``runner`` (a PolicyRunner) in ``env`` (see the module docstring)."""
    from fdl_robot.policy.interface import PolicyObservation

    obs = env.reset(seed, perturbation=perturbation)
    runner.reset()
    feed = ObjectInputs(inputs, env, seed, latency_s, bin_bias_m)
    policy = runner.policy
    success_since: float | None = None
    dropped = False
    holds, predict_s, n_pred = 0, 0.0, 0
    steps = 0
    while steps < max_steps:
        steps += 1
        t = float(obs["time_s"])
        target, bin_p, target_v = feed(obs)
        pobs = PolicyObservation(obs["qpos"], obs["gripper"], target, bin_p, t, target_v_base_m_s=target_v)
        t0 = time.perf_counter()
        out = runner.step(pobs, t)
        if out.queried:
            predict_s += time.perf_counter() - t0
            n_pred += 1
            holds += getattr(policy, "mode", "") == "hold"
        if on_step is not None:
            on_step(obs, out)
        obs, _, terminated, _, info = env.step(out.command)
        if info["success"]:
            success_since = obs["time_s"] if success_since is None else success_since
        else:
            success_since = None
        if terminated:
            dropped = bool(info["cube_dropped"])
            break
        if success_since is not None and settle_s > 0 and obs["time_s"] - success_since >= settle_s - 1e-9:
            break
    success = bool(env.success())
    p = env.perturbation
    return EpisodeOutcome(seed, success, success_since if success else None, steps, dropped, holds,
                          1000.0 * predict_s / max(n_pred, 1), p.kind, p.fired_s, p.grasps)


def _summary(outcomes: list[EpisodeOutcome]) -> dict[str, Any]:
    summary = SuccessSummary.of([o.seed for o in outcomes], [o.success for o in outcomes],
                                [o.time_to_success_s for o in outcomes])
    recover = [o.recover_s for o in outcomes if o.recover_s is not None]
    return {**summary.as_dict("mean_time_to_success_s"),
            "mean_predict_ms": float(np.mean([o.mean_predict_ms for o in outcomes])),
            "fired": sum(o.perturbation_fired_s is not None for o in outcomes),
            "mean_regrasps": float(np.mean([o.regrasps for o in outcomes])) if outcomes else 0.0,
            "median_recover_s": float(np.median(recover)) if recover else None}


class ACTEvaluator(OwnsSimulator):
    """Runs a policy through :class:`~fdl_robot.policy.runner.PolicyRunner` for every
    (inputs, execution) row over ``config``'s seeds, in its own simulator.

    ``strip``: image strip of the first episode, written as soon as it ends (a failed
    write, OutputError, stops the run there).
    """

    def __init__(self, config: EvalConfig = POLICY_EVAL, rows: PolicyEvalConfig = _DEFAULTS,
                 progress: bool = True, strip: Path | None = None):
        from fdl_robot.policy.runner import limits_from_params
        from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

        self.config, self.rows, self.progress, self.strip = config, rows, progress, strip
        self.node_params = defaults("policy_node")
        self.limits = limits_from_params(self.node_params)
        self.env = PickPlaceEnv(PickPlaceConfig(image_width=320, image_height=240, max_episode_steps=0))

    def run(self, policy: Any) -> dict[str, Any]:
        """Every row's summary and episodes, and the settings they were run with (JSON-ready)."""
        from tqdm import tqdm

        from fdl_robot.policy.runner import PolicyRunner

        env, cfg, rows_cfg = self.env, self.config, self.rows
        if abs(env.control_dt_s - policy.dt_s) > 1e-9:
            raise ValueError(f"policy dt {policy.dt_s} != simulator control dt {env.control_dt_s}")
        rows = []
        frames: list[tuple[np.ndarray, str]] = []

        def capture(obs, _out):
            if round(obs["time_s"] / env.control_dt_s) % STRIP_EVERY == 0:
                frames.append((env.render_rgb(), f"{obs['time_s']:.1f}s g={obs['gripper']:.2f}"))

        for kind, mode, execution in itertools.product(rows_cfg.perturbations, rows_cfg.inputs,
                                                       rows_cfg.executions):
            runner = PolicyRunner(policy, self.limits, execution, rows_cfg.ensemble_m)
            outcomes: list[EpisodeOutcome] = []
            bar = tqdm(cfg.seeds, desc=f"{kind}/{mode}/{execution}", unit="ep", disable=not self.progress)
            t0 = time.perf_counter()
            for seed in bar:
                first = self.strip is not None and not rows and not outcomes
                outcomes.append(run_episode(env, runner, seed, mode, cfg.max_steps, rows_cfg.settle_s,
                                            rows_cfg.latency_s, rows_cfg.bin_bias_m,
                                            on_step=capture if first else None, perturbation=kind))
                if first and frames:
                    write_strip([caption(rgb, text) for rgb, text in evenly_spaced(frames, STRIP_FRAMES)],
                                self.strip)
                bar.set_postfix(success=f"{sum(o.success for o in outcomes)}/{len(outcomes)}")
            rows.append({"perturbation": kind, "inputs": mode, "execution": execution, **_summary(outcomes),
                         "wall_s": round(time.perf_counter() - t0, 1),
                         "episodes_detail": [asdict(o) for o in outcomes]})
        return {"seeds": [cfg.seed0, cfg.seed0 + cfg.episodes - 1], "chunk_size": policy.chunk_size,
                "dt_s": policy.dt_s, "ensemble_m": rows_cfg.ensemble_m, "max_steps": cfg.max_steps,
                "settle_s": rows_cfg.settle_s, "latency_s": rows_cfg.latency_s, "bin_bias_m": rows_cfg.bin_bias_m,
                "max_velocity_rad_s": list(self.node_params["max_velocity_rad_s"]), "rows": rows}


def markdown_table(result: dict[str, Any]) -> str:
    lines = ["| perturbation | object inputs | execution | success | 95 % Wilson CI | mean time to success | "
             "re-grasps / episode | median time to recover | failed seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lo, hi = r["wilson95"]
        t = f"{r['mean_time_to_success_s']:.2f} s" if r["mean_time_to_success_s"] is not None else "-"
        rec = f"{r['median_recover_s']:.2f} s" if r.get("median_recover_s") is not None else "-"
        failed = ", ".join(map(str, r["failed_seeds"][:10])) + (" ..." if len(r["failed_seeds"]) > 10 else "")
        lines.append(f"| {r.get('perturbation', 'none')} | {r['inputs']} | {r['execution']} | "
                     f"{r['successes']}/{r['episodes']} = {100 * r['success_rate']:.1f} % | "
                     f"{100 * lo:.1f}-{100 * hi:.1f} % | {t} | {r.get('mean_regrasps', 0.0):.2f} | {rec} | "
                     f"{failed or '-'} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fdl-robot-eval-act", description=__doc__.splitlines()[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--model", default="", help="checkpoint ('' = the shipped weights)")
    add_arguments(ap, POLICY_EVAL, "steps", seed0_help="first seed (never used in training)")
    ap.add_argument("--inputs", nargs="+", default=list(_DEFAULTS.inputs), choices=INPUT_MODES)
    ap.add_argument("--execution", nargs="+", default=list(_DEFAULTS.executions), choices=EXECUTION_MODES)
    ap.add_argument("--settle-s", type=float, default=_DEFAULTS.settle_s,
                    help="end an episode once solved for this long (0 = always run max-steps)")
    ap.add_argument("--ensemble-m", type=float, default=_DEFAULTS.ensemble_m)
    ap.add_argument("--latency-s", type=float, default=_DEFAULTS.latency_s,
                    help="object input delay of the noisy rows")
    ap.add_argument("--bin-bias-m", type=float, default=_DEFAULTS.bin_bias_m,
                    help="extra bin-centre bias std of the noisy rows")
    ap.add_argument("--perturbation", nargs="+", default=list(_DEFAULTS.perturbations), choices=PERTURBATIONS,
                    help="scene perturbations (sim.perturbations): each row is run once per kind")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--strip", type=Path, default=None, help="PNG strip of the first episode")
    ap.add_argument("--quiet", action="store_true")
    return ap


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    check_args(parser, a, {"--json": JSON, "--strip": IMAGE})
    import torch

    from fdl_robot.policy.runner import make_policy

    if a.threads:
        torch.set_num_threads(a.threads)
    rows = PolicyEvalConfig(tuple(a.inputs), tuple(a.execution), a.settle_s, a.ensemble_m, a.latency_s,
                            a.bin_bias_m, tuple(a.perturbation))
    t0 = time.perf_counter()
    policy = make_policy("act", dt_s=CONTROL_DT_S, model_path=a.model)
    with ACTEvaluator(from_arguments(a, POLICY_EVAL), rows, progress=not a.quiet, strip=a.strip) as evaluator:
        result = {"model": a.model or "shipped", **evaluator.run(policy)}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["torch_threads"] = torch.get_num_threads()
    print(markdown_table(result))
    print(f"mean predict_chunk (incl. runner step): "
          f"{np.mean([r['mean_predict_ms'] for r in result['rows']]):.2f} ms; wall {result['wall_s']:.0f} s")
    if a.json:
        write_json(a.json, result, "--json", indent=1)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

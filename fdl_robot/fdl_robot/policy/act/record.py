"""Record ACT training demos with the expert executing through the policy's safety layer.

    python -m fdl_robot.policy.act.record --episodes 1000 --seed0 0 --out outputs/act/demos

Why not plain ``fdl_sim record``: the ROS ``policy_node`` sends every command through
``core.safety`` (rate limit ``max_velocity_rad_s`` [1.5, 1.5, 1.5, 2, 2, 2, 5] per second
between consecutive commands, and at most ``max_tracking_error_rad`` from the measured
joints). Here the expert runs slower than its defaults (``--joint-speed``, ``--tcp-speed``)
and every command goes through the same :class:`~fdl_robot.core.safety.SafetyLayer` with
the policy_node's limits, given the previous executed command exactly as
:class:`~fdl_robot.policy.runner.PolicyRunner` does; the recorded action is that *executed*
command, so the demos only contain commands the deployed runner passes unchanged.

History: the first shipped model was recorded when the velocity limit applied relative to
the *measured* joints. The simulated servos lag their targets by ~0.1 rad at the expert's
speed, so that clamp bound, the arm under-reached, and the demonstrator itself solved only
91/100 of the evaluation seeds 5000-5099 (100/100 with the current rule).

DART-style perturbations (Laskey et al. 2017): in a fraction ``--perturb-frac`` of the
episodes, an Ornstein-Uhlenbeck offset (std ``--perturb-std`` rad per arm joint, time
constant ``--perturb-tau`` s) is added to the executed arm command during the free-space
phases without the cube in hand (approach, retreat; it decays within ~0.3 s
elsewhere: shaking a held cube made it slip out of the weak grip of the earlier rule, see
below), while the label stays the expert's safety-filtered command: the data show how to
return to the plan from states the unperturbed expert never visits.

Grip force: the gripper command is rate-limited from the previous command and may lead
the measured closure by up to 0.5, so a command of 1 squeezes the cube while the fingers rest
on it (closure ~0.53). Under the earlier rule (0.1 from the measured closure) the grip was
~6 N instead of ~30 N, and a shaken cube slipped.

Scene perturbations (``sim.perturbations``; issue 16): each episode's kind is drawn from
its seed with the weights of ``--perturbations`` (default: 30 % none, 17.5 % each of
shift, drop, bin, conveyor), so the demos show the expert recovering: re-approaching a
cube shifted during the reach, re-grasping a cube knocked out of the gripper, following a
moved bin and a cube on a conveyor. An episode ends ``--tail-steps`` after the expert is
done (at most ``--steps``), so a recovery is not cut off and no episode idles for long.

Expert lapses (DAgger-style corrections; Ross et al. 2011): the attentive expert follows a
shifted or conveyed cube at once, so its demos never leave the cube's path, and a policy
that lags behind it (latency, chunking, a late reaction) is in states the data never show.
In a fraction ``--lapse-frac`` of the shift and conveyor episodes the expert is blind to the
cube's motion for ``lapse_s`` ~ U(``--lapse-s``) from U(``--lapse-onset-s``) (default 0) after
the perturbation starts (until it is 5 cm above where the cube was, at most): it keeps
planning from where the cube was, then sees the cube
jump and replans from off its path. The lapse's own steps carry wrong labels where the
cube has moved more than ``lapse_label_tolerance_m``: they are written as
``label_valid`` = False, and the trainer draws no sample there.

Output: the ``sim.dataset`` layout (``episode_<i>.hdf5`` + ``dataset_info.json``) with the
recorder's settings in each file's ``recorder`` attribute; only successful episodes are
kept (the next seed is tried).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np  # noqa: E402

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.outputs import DIRECTORY, check_args, exit_on_error, write_json

__all__ = ["PERTURBATION_MIX", "RecorderConfig", "parse_mix", "perturbation_of", "record", "main"]


#: Seed-sequence tag of the per-episode perturbation draw.
_KIND_STREAM = 0x3C1D
#: Default mix of scene perturbations: (kind, weight).
PERTURBATION_MIX: tuple[tuple[str, float], ...] = (("none", 0.3), ("shift", 0.175), ("drop", 0.175),
                                                   ("bin", 0.175), ("conveyor", 0.175))


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``"none:0.3,shift:0.7"`` -> ``(("none", 0.3), ("shift", 0.7))``; weights > 0, kinds checked."""
    from fdl_robot.sim.perturbations import check_perturbation

    mix = []
    for item in text.split(","):
        kind, sep, weight = item.strip().partition(":")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"perturbation weight must be a number, got {item!r}") from None
        if not w > 0:
            raise ValueError(f"perturbation weight must be > 0, got {item!r}")
        mix.append((check_perturbation(kind), w))
    return tuple(mix)


def perturbation_of(seed: int, mix: tuple[tuple[str, float], ...]) -> str:
    """The perturbation kind of episode ``seed``: drawn from its own seed stream with the mix's weights."""
    kinds, weights = zip(*mix, strict=True)
    p = np.asarray(weights, dtype=np.float64)
    return str(kinds[np.random.default_rng([seed, _KIND_STREAM]).choice(len(kinds), p=p / p.sum())])


@dataclass(frozen=True)
class RecorderConfig:
    joint_speed_rad_s: float = 1.0
    tcp_speed_m_s: float = 0.35
    #: Longest episode, control steps; it ends ``tail_steps`` after the expert is done.
    episode_steps: int = 1000
    tail_steps: int = 150
    perturbations: tuple[tuple[str, float], ...] = PERTURBATION_MIX
    perturb_frac: float = 0.5
    perturb_std_rad: float = 0.015
    perturb_tau_s: float = 0.3
    #: Expert phases during which the offset is driven; elsewhere (descend, close, lower,
    #: release, ...) it decays with time constant 0.1 s so grasps and releases stay clean.
    perturb_phases: tuple[str, ...] = ("approach", "retreat")
    #: Expert lapses (module doc): the fraction of the ``lapse_kinds`` episodes with one, and
    #: the range of its duration, s.
    lapse_frac: float = 0.5
    lapse_s: tuple[float, float] = (0.3, 1.5)
    #: Range of the lapse's start after the perturbation's, s: (0, 0) = at once (a conveyor's
    #: lapse then ends before the arm is near the cube); later starts show corrections above it.
    lapse_onset_s: tuple[float, float] = (0.0, 0.0)
    lapse_kinds: tuple[str, ...] = ("shift", "conveyor")
    #: A lapsed step whose planned-from cube is this far from the true one has a wrong label, m.
    lapse_label_tolerance_m: float = 0.01
    #: Expert phases a lapse may last into (it ends when the close starts).
    lapse_phases: tuple[str, ...] = ("approach", "descend")
    #: ... and it ends once the TCP is this close above the planned-from cube, m, so the expert
    #: replans before it closes beside the cube (the v4 demos predate this rule: 3 of their 273
    #: lapses went lower, none into the close).
    lapse_min_height_m: float = 0.05


class _LapsingExpert:
    """``expert`` that, during a lapse (module doc), plans from the cube's position when the
    perturbation started; ``label_valid`` (one bool per ``act``) marks the steps whose
    action is still the attentive expert's (the planned-from cube within
    ``lapse_label_tolerance_m`` of the true one)."""

    def __init__(self, expert: Any, env: Any, cfg: RecorderConfig, rng: np.random.Generator):
        self._expert, self._env, self._cfg, self._rng = expert, env, cfg, rng
        self.label_valid: list[bool] = []
        self.lapse_s, self.onset_s, self._active = 0.0, 0.0, False     # this episode's lapse (reset)
        self._frozen: np.ndarray | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._expert, name)

    def reset(self) -> None:
        """Draw this episode's lapse (call after ``env.reset``, as run_expert_episode does)."""
        self._expert.reset()
        self.label_valid, self._frozen = [], None
        lapses = self._env.perturbation.kind in self._cfg.lapse_kinds and self._rng.random() < self._cfg.lapse_frac
        self.lapse_s = float(self._rng.uniform(*self._cfg.lapse_s)) if lapses else 0.0
        lo, hi = self._cfg.lapse_onset_s            # drawn only for a range (the v4 demos' stream stays)
        self.onset_s = float(self._rng.uniform(lo, hi)) if lapses and hi > lo else float(lo)
        self._active = lapses

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        from fdl_robot.sim.env import ObjectPose
        from fdl_robot.sim.scene import TARGET_NAME

        cube = obs["objects"][TARGET_NAME]
        fired_s = self._env.perturbation.fired_s
        if self._active and fired_s is not None and obs["time_s"] >= fired_s + self.onset_s - 1e-9:
            phase = self._expert.phase if not self._expert.done else "finished"  # 'done' before the first plan
            above_m = np.inf if self._frozen is None else obs["tcp"].position_m[2] - self._frozen[2]
            self._active = (obs["time_s"] < fired_s + self.onset_s + self.lapse_s
                            and phase in (*self._cfg.lapse_phases, "done")
                            and above_m > self._cfg.lapse_min_height_m)
            if self._active:
                if self._frozen is None:
                    self._frozen = np.array(cube.position_m, dtype=np.float64)
                objects = {**obs["objects"], TARGET_NAME: ObjectPose(self._frozen.copy(), cube.quat_xyzw)}
                error_m = float(np.linalg.norm(self._frozen - cube.position_m))
                self.label_valid.append(error_m <= self._cfg.lapse_label_tolerance_m)
                return self._expert.act({**obs, "objects": objects})
        self.label_valid.append(True)
        return self._expert.act(obs)


class _ClampedEnv:
    """``env`` whose ``step`` sends the action through the safety layer (+ perturbation).

    Logs the clamped, unperturbed command of every step in ``executed`` (the label).
    """

    def __init__(self, env: Any, safety: Any, cfg: RecorderConfig, rng: np.random.Generator, expert: Any):
        self._env, self._safety, self._cfg, self._rng, self._expert = env, safety, cfg, rng, expert
        self.executed: list[np.ndarray] = []
        self._offset = np.zeros(6)
        self._perturb = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        self.executed = []
        self._offset[:] = 0.0
        self._perturb = bool(self._rng.random() < self._cfg.perturb_frac)
        self._last_obs = self._env.reset(seed, perturbation=perturbation_of(seed, self._cfg.perturbations))
        return self._last_obs

    def step(self, action: np.ndarray):
        obs = self._last_obs
        q_meas = np.append(obs["qpos"], obs["gripper"])
        dt = self._env.control_dt_s
        q_prev = self.executed[-1] if self.executed else None       # as PolicyRunner does
        cmd = self._safety.filter(np.asarray(action, np.float64), q_meas, dt, q_prev).q_cmd_rad
        self.executed.append(cmd.copy())
        run = cmd.copy()
        if self._perturb:
            if self._expert.phase in self._cfg.perturb_phases:
                a = np.exp(-dt / self._cfg.perturb_tau_s)         # OU: stationary std = perturb_std
                self._offset = a * self._offset + np.sqrt(1 - a * a) * self._rng.normal(
                    0.0, self._cfg.perturb_std_rad, 6)
            else:
                self._offset *= np.exp(-dt / 0.1)
            run[:6] += self._offset
        out = self._env.step(run)
        self._last_obs = out[0]
        return out


def record(n_episodes: int, out_dir: str | Path, seed0: int = 0, cfg: RecorderConfig = RecorderConfig(),
           progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from fdl_robot.core.safety import SafetyLayer
    from fdl_robot.policy.runner import limits_from_params
    from fdl_robot.ros.parameters import defaults
    from fdl_robot.sim.dataset import PerceptionNoise, record_episode
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
    from fdl_robot.sim.expert import ExpertConfig, ScriptedExpert

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = defaults("policy_node")
    safety = SafetyLayer(limits_from_params(p))
    limits_meta = {k: list(p[k]) for k in ("max_velocity_rad_s", "max_tracking_error_rad")}
    base_env = PickPlaceEnv(PickPlaceConfig(image_width=64, image_height=48, max_episode_steps=0))
    expert = ScriptedExpert(base_env.model, ExpertConfig(align_yaw=False, max_joint_speed_rad_s=cfg.joint_speed_rad_s,
                                                         max_speed_m_s=cfg.tcp_speed_m_s))
    expert = _LapsingExpert(expert, base_env, cfg, np.random.default_rng([seed0, 0x1A95E]))
    env = _ClampedEnv(base_env, safety, cfg, np.random.default_rng([seed0, 0xDA27]), expert)
    saved, failures, seed = [], 0, seed0
    t0 = time.perf_counter()
    bar = tqdm(total=n_episodes, desc="recording (clamped expert)", unit="ep", disable=not progress)
    while len(saved) < n_episodes:
        if seed - seed0 > 2 * n_episodes + 10:
            raise RuntimeError(f"only {len(saved)} successful episodes in {seed - seed0} seeds")
        ep = record_episode(env, expert, seed, cfg.episode_steps, PerceptionNoise(), tail_steps=cfg.tail_steps)
        perturbed = env._perturb
        seed += 1
        if not ep.attrs["success"]:
            failures += 1
            bar.set_postfix(failed=failures)
            continue
        ep.action = env.executed                                    # label = executed command
        ep.label_valid = expert.label_valid
        ep.attrs["expert_lapse_s"] = expert.lapse_s
        ep.attrs["expert_lapse_onset_s"] = expert.onset_s
        ep.attrs["recorder"] = json.dumps({**asdict(cfg), "perturbed": perturbed, **limits_meta})
        name = f"episode_{len(saved)}.hdf5"
        ep.save(out / name)
        saved.append({"file": name, "seed": ep.seed, "perturbed": perturbed,
                      "perturbation": ep.attrs["perturbation"], "steps": len(ep.action),
                      "expert_done_step": ep.attrs["expert_done_step"], "retries": ep.attrs["retries"],
                      "replans": ep.attrs["replans"], "grasps": ep.attrs["grasps"], "lapse_s": expert.lapse_s,
                      "masked_steps": expert.label_valid.count(False)})
        bar.update(1)
    bar.close()
    base_env.close()
    info = {"episodes": saved, "n_saved": len(saved), "seeds": [seed0, seed - 1], "failures": failures,
            "recorder": asdict(cfg), **limits_meta, "wall_s": round(time.perf_counter() - t0, 1)}
    write_json(out / "dataset_info.json", info, "dataset info", indent=1)
    return info


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    d = RecorderConfig()
    ap = argparse.ArgumentParser(prog="python -m fdl_robot.policy.act.record", description=__doc__.splitlines()[0],
                                 formatter_class=HelpFormatter)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=d.episode_steps, help="longest episode, control steps (50 Hz)")
    ap.add_argument("--tail-steps", type=int, default=d.tail_steps,
                    help="control steps recorded after the expert is done")
    ap.add_argument("--perturbations", type=parse_mix, default=", ".join(f"{k}:{w:g}" for k, w in d.perturbations),
                    help="scene perturbation mix, kind:weight,... with kinds none, shift, drop, bin, conveyor")
    ap.add_argument("--joint-speed", type=float, default=d.joint_speed_rad_s, help="expert joint speed limit, rad/s")
    ap.add_argument("--tcp-speed", type=float, default=d.tcp_speed_m_s, help="expert peak TCP speed, m/s")
    ap.add_argument("--perturb-frac", type=float, default=d.perturb_frac)
    ap.add_argument("--perturb-std", type=float, default=d.perturb_std_rad)
    ap.add_argument("--perturb-tau", type=float, default=d.perturb_tau_s)
    ap.add_argument("--lapse-frac", type=float, default=d.lapse_frac,
                    help=f"fraction of the {', '.join(d.lapse_kinds)} episodes with an expert lapse")
    ap.add_argument("--lapse-s", type=float, nargs=2, default=list(d.lapse_s), metavar=("MIN", "MAX"),
                    help="range of a lapse's duration, s")
    ap.add_argument("--lapse-onset-s", type=float, nargs=2, default=list(d.lapse_onset_s), metavar=("MIN", "MAX"),
                    help="range of a lapse's start after the perturbation's, s")
    a = ap.parse_args(argv)
    check_args(ap, a, {"--out": DIRECTORY})
    cfg = RecorderConfig(a.joint_speed, a.tcp_speed, a.steps, a.tail_steps, a.perturbations, a.perturb_frac,
                         a.perturb_std, a.perturb_tau, lapse_frac=a.lapse_frac, lapse_s=tuple(a.lapse_s),
                         lapse_onset_s=tuple(a.lapse_onset_s))

    info = record(a.episodes, a.out, a.seed0, cfg)
    print(f"saved {info['n_saved']} episodes (seeds {info['seeds'][0]}..{info['seeds'][1]}, "
          f"{info['failures']} expert failures skipped) to {a.out} in {info['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

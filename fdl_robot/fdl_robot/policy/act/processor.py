"""Inputs and outputs of ACT: feature assembly, normalisation, demonstrations, augmentation.

numpy only (no torch), so the policy's data path can be tested and reused without it.

Observation vector: ``OBS_DIM`` = len(``OBS_FEATURES``) = {OBS_DIM} features, float64, in
``OBS_FEATURES`` order, computed from the raw inputs (joint state, target centre, bin
position; ``PolicyObservation``) by :func:`features`::

    proprio  [q_1 .. q_6]   arm joint positions, rad (ARM_JOINT_NAMES)    qpos_rad
             g              gripper closure, 0 open .. 1 closed            gripper
             p_tcp (3)      tool centre point, base_link, m: FK(q) of the URDF's tcp frame (tcp_position)
             v (7)          joint-state velocity, rad/s (gripper 1/s): finite difference
                            (x_t - x_{t-w}) / w of the joint states of two observations
             w              that window, s (CONTROL_DT_S when the policy is queried every step)
    target   p_t (3)        target (red cube) centre, base_link, m        target_p_base_m
             p_t - p_tcp (3)
             v_t,xy (2)     its velocity on the table, base_link, m/s      target_v_base_m_s[:2]
    bin      p_b,xy (2)     bin centre on the table, base_link, m          bin_p_base_m[:2]
             p_b,xy - p_tcp,xy (2)

base_link is REP-103 (x forward, y left, z up) on the table top. The TCP position and the
differences are functions of the raw inputs (forward kinematics), given to the network so
that it can servo on "where the cube is relative to the gripper" instead of learning the
arm's kinematics from a few hundred cube positions. The velocity tells a moving arm from a
resting one at the same place: without it, every state along a carry looks like the
start of the motion and the policy creeps (measured: stalls after the lift, releases early).
The policy computes it from the observations it is given (``ACTPolicy``: every step with
ensembling; every k steps with chunked execution, hence the window input). The bin's z is not an input: the bin
stands on the table (z = 0 in every demonstration), and a perceived z (rim, floor or
centre of the detection) would only be an out-of-distribution input. The target's velocity
(the tracker's, 0 when not significant: ``policy.inputs``) tells a sliding or conveyed cube
from a still one: the expert holds while the cube slides fast and meets a conveyed cube ahead
of where it is, which the position alone cannot explain (measured without it, ground-truth
inputs: shift 55/100, conveyor 37/100).

Action vector (7,): [q_1 .. q_6 (rad), gripper command 0 open .. 1 closed], absolute: what
the policy returns and the demonstrations record. The network itself predicts the chunk
in *model coordinates* (``chunk_to_model`` / ``chunk_from_model``): with
``relative_actions`` the joint rows relative to the joint positions observed at the
chunk's start, a_i - [q_t, 0] (i = 0 .. k-1, every row relative to the same q_t, so
nothing is integrated along the chunk; the gripper stays absolute). Reaching a cube 1 cm
away is then a small, nearly linear function of (p_t - p_tcp) instead of a 1 %-precise
regression of absolute angles, and the output is still absolute after adding q_t back.

Normalisation (``Normalizer``): x_n = (x - mean) / max(std, std_floor) per feature, mean
and std over the training set (for actions per chunk row and joint, shape (k, 7)); stored
in the checkpoint with the weights so that a checkpoint is self-contained.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from fdl_robot.core.kinematics import TCP_FRAME
from fdl_robot.core.robot import CONTROL_DT_S
from fdl_robot.core.robot_model import ur5e_gripper
from fdl_robot.policy.act.config import AugmentConfig
from fdl_robot.policy.interface import PolicyObservation

__all__ = ["OBS_FEATURES", "ACTION_FEATURES", "TOKEN_GROUPS", "OBS_DIM", "tcp_position", "features", "chunk_to_model",
           "grasp_since",
           "chunk_from_model", "Normalizer", "observation_vector", "Episode", "DemoArrays",
           "load_episodes", "forward_fill", "DemoDataError", "augment_objects"]

OBS_FEATURES = ("q1", "q2", "q3", "q4", "q5", "q6", "gripper", "tcp_x", "tcp_y", "tcp_z",
                "v1", "v2", "v3", "v4", "v5", "v6", "v_gripper", "velocity_window_s",
                "target_x", "target_y", "target_z", "target_dx", "target_dy", "target_dz",
                "target_vx", "target_vy", "bin_x", "bin_y", "bin_dx", "bin_dy")
ACTION_FEATURES = ("q1", "q2", "q3", "q4", "q5", "q6", "gripper")
#: Token groups of the policy encoder: name -> slice of the observation vector.
TOKEN_GROUPS = (("proprio", slice(0, 18)), ("target", slice(18, 26)), ("bin", slice(26, 30)))
OBS_DIM = len(OBS_FEATURES)
__doc__ = (__doc__ or "").replace("{OBS_DIM}", str(OBS_DIM))  # the docstring's count, from the code


def tcp_position(q_rad: np.ndarray) -> np.ndarray:
    """p_base_tcp (B, 3), m, of arm joints (B, 6): the simulated UR5e's URDF (``ur5e_gripper()``)."""
    return ur5e_gripper().frame_pose(np.atleast_2d(q_rad), TCP_FRAME)[:, :3, 3]


def features(qpos7: np.ndarray, velocity7: np.ndarray, window_s: np.ndarray, target: np.ndarray,
             bin_xy: np.ndarray, tcp: np.ndarray | None = None,
             target_velocity_xy: np.ndarray | None = None) -> np.ndarray:
    """Observation vectors (B, OBS_DIM) from joint states (B, 7), their velocities (B, 7) over
    windows (B,) s, targets (B, 3), bin x, y (B, 2) and the targets' velocities x, y (B, 2),
    m/s (None: 0, a still target).

    ``tcp`` (B, 3) may be given when already known (it is FK(qpos7[:, :6])).
    """
    qpos7, velocity7, target, bin_xy = (np.atleast_2d(np.asarray(x, np.float64))
                                        for x in (qpos7, velocity7, target, bin_xy))
    window = np.asarray(window_s, np.float64).reshape(-1, 1) * np.ones((len(qpos7), 1))
    if tcp is None:
        tcp = tcp_position(qpos7[:, :6])
    v_target = (np.zeros((len(qpos7), 2)) if target_velocity_xy is None
                else np.atleast_2d(np.asarray(target_velocity_xy, np.float64)) * np.ones((len(qpos7), 1)))
    return np.concatenate([qpos7, tcp, velocity7, window, target, target - tcp, v_target, bin_xy,
                           bin_xy - tcp[:, :2]], axis=1)


def chunk_to_model(chunks: np.ndarray, qpos7: np.ndarray, relative: bool) -> np.ndarray:
    """Absolute chunks (B, k, 7) -> model coordinates: joints minus q_t (B, 7) if ``relative``."""
    out = np.array(chunks, dtype=np.float64)
    if relative:
        out[..., :6] -= np.asarray(qpos7, np.float64)[:, None, :6]
    return out


def chunk_from_model(chunks: np.ndarray, qpos7: np.ndarray, relative: bool) -> np.ndarray:
    """Inverse of :func:`chunk_to_model`."""
    out = np.array(chunks, dtype=np.float64)
    if relative:
        out[..., :6] += np.asarray(qpos7, np.float64)[:, None, :6]
    return out


def observation_vector(obs: PolicyObservation, velocity7: np.ndarray, window_s: float) -> np.ndarray:
    """PolicyObservation + joint-state velocity over a window -> (OBS_DIM,). Requires a target."""
    if obs.target_p_base_m is None:
        raise ValueError("the ACT observation needs a target position")
    v = None if obs.target_v_base_m_s is None else obs.target_v_base_m_s[:2]
    return features(obs.joint_state, velocity7, window_s, obs.target_p_base_m, obs.bin_p_base_m[:2],
                    target_velocity_xy=v)[0]


@dataclass(frozen=True)
class Normalizer:
    """Per-feature affine normalisation x_n = (x - mean) / std of observations and actions."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    def __post_init__(self):
        for name in ("obs_mean", "obs_std", "action_mean", "action_std"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"normalizer {name} is not finite")
            object.__setattr__(self, name, arr)
        if np.any(self.obs_std <= 0) or np.any(self.action_std <= 0):
            raise ValueError("normalizer std must be positive")

    @classmethod
    def fit(cls, obs: np.ndarray, actions: np.ndarray, std_floor: float = 1e-3) -> "Normalizer":
        """Mean and std (floored at ``std_floor``) over axis 0 of obs (N, OBS_DIM) and actions (M, ...).

        Actions (M, 7) give per-joint statistics, chunks (M, k, 7) per row and joint.
        """
        obs, actions = np.asarray(obs, np.float64), np.asarray(actions, np.float64)
        return cls(obs.mean(0), np.maximum(obs.std(0), std_floor),
                   actions.mean(0), np.maximum(actions.std(0), std_floor))

    def normalize_obs(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.obs_mean) / self.obs_std

    def normalize_action(self, a: np.ndarray) -> np.ndarray:
        return (np.asarray(a, np.float64) - self.action_mean) / self.action_std

    def unnormalize_action(self, a_n: np.ndarray) -> np.ndarray:
        return np.asarray(a_n, np.float64) * self.action_std + self.action_mean

    def to_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in ("obs_mean", "obs_std", "action_mean", "action_std")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalizer":
        return cls(**{k: np.asarray(d[k], np.float64) for k in ("obs_mean", "obs_std", "action_mean",
                                                                 "action_std")})


# --- demonstrations ---------------------------------------------------------------------------

def forward_fill(x: np.ndarray) -> np.ndarray:
    """Replace NaN rows of (T, n) by the last valid row (leading NaN rows: the first valid row).

    What a tracker that keeps its last estimate does on a dropped detection; raises if no
    row is valid.
    """
    x = np.asarray(x, np.float64)
    valid = np.all(np.isfinite(x), axis=1)
    if not valid.any():
        raise ValueError("no valid row to fill from")
    idx = np.where(valid, np.arange(len(x)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = np.flatnonzero(valid)[0]
    return x[idx]


class DemoDataError(ValueError):
    """Demonstrations the trainer cannot use (the message says why and what to do)."""


@dataclass
class Episode:
    """One demonstration as the trainer needs it (all (T, .) float64, base_link, SI units)."""

    seed: int
    qpos: np.ndarray          # (T, 7) joints + gripper closure
    action: np.ndarray        # (T, 7)
    target: np.ndarray        # (T, 3) true cube centre
    bin: np.ndarray           # (T, 3) true bin position
    target_noisy: np.ndarray  # (T, 3) recorded perception stream, NaN forward-filled
    bin_noisy: np.ndarray     # (T, 3)
    grasp_since: np.ndarray   # (T,) first step of the current run of close commands; T while open
    label_valid: np.ndarray | None = None  # (T,) bool: the action is a valid label (None: every step)

    @property
    def length(self) -> int:
        return len(self.action)


def load_episodes(data_dir: str, target: str = "red_cube", bin_name: str = "bin") -> list[Episode]:
    """Read every ``episode_*.hdf5`` of ``data_dir`` (``sim.dataset`` layout), sorted by index."""
    import h5py

    paths = sorted(glob.glob(os.path.join(data_dir, "episode_*.hdf5")),
                   key=lambda p: int(os.path.basename(p)[len("episode_"):-len(".hdf5")]))
    if not paths:
        raise FileNotFoundError(f"no episode_*.hdf5 in {data_dir}")
    episodes = []
    for path in paths:
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get("success", True)):
                continue
            action = f["action"][()]
            obs = f["observations"]
            episodes.append(Episode(
                seed=int(f.attrs["seed"]), qpos=obs["qpos"][()], action=action,
                target=obs["objects"][target][()], bin=obs["objects"][bin_name][()],
                target_noisy=forward_fill(obs["objects_noisy"][target][()]),
                bin_noisy=forward_fill(obs["objects_noisy"][bin_name][()]),
                grasp_since=grasp_since(action[:, 6] > 0.5),
                label_valid=f["label_valid"][()].astype(bool) if "label_valid" in f else None))
    return episodes


def grasp_since(closed: np.ndarray) -> np.ndarray:
    """Per step, the first step of the run of close commands it is in; ``len(closed)`` where open.

    >>> grasp_since(np.array([0, 1, 1, 0, 1], bool))
    array([5, 1, 1, 5, 4])
    """
    closed = np.asarray(closed, dtype=bool)
    before = np.zeros_like(closed)
    before[1:] = closed[:-1]
    onset = closed & ~before                                           # rising edges
    run_start = np.maximum.accumulate(np.where(onset, np.arange(len(closed)), 0))
    return np.where(closed, run_start, len(closed))


@dataclass
class DemoArrays:
    """Episodes concatenated into flat arrays (N = total steps), for vectorised batches.

    Per global step g: its episode's first and last global step (``ep_start``,
    ``ep_end``) and the first step of the close command it is in (``grasp``; ep_end + 1
    while the gripper is commanded open: a cube dropped and re-grasped is frozen only
    within one grasp). ``valid``: whether step g's action is a label to learn from (the
    recorder's expert lapses mark the steps that are not); ``sample_steps`` lists those.
    """

    qpos: np.ndarray
    action: np.ndarray
    target: np.ndarray
    bin: np.ndarray
    target_noisy: np.ndarray
    bin_noisy: np.ndarray
    ep_start: np.ndarray
    ep_end: np.ndarray
    grasp: np.ndarray
    seeds: tuple[int, ...]
    tcp: np.ndarray | None = None   # (N, 3) FK of qpos, filled on construction
    dt_s: float = CONTROL_DT_S
    target_v: np.ndarray | None = None   # (N, 2) the target's velocity x, y (m/s), filled on construction
    valid: np.ndarray | None = None      # (N,) bool, all True unless given

    def __post_init__(self):
        if self.tcp is None:
            self.tcp = tcp_position(self.qpos[:, :6])
        if self.target_v is None:
            # (p_g - p_{g-1}) / dt within each episode (0 at its first step): the cube's true velocity
            prev = np.maximum(np.arange(len(self.target)) - 1, self.ep_start)
            self.target_v = (self.target[:, :2] - self.target[prev, :2]) / self.dt_s
        if self.valid is None:
            self.valid = np.ones(len(self.action), dtype=bool)
        self.sample_steps = np.flatnonzero(self.valid)
        if not len(self.sample_steps):
            raise DemoDataError("no step with a valid label (label_valid is False everywhere)")

    @classmethod
    def from_episodes(cls, episodes: list[Episode]) -> "DemoArrays":
        if not episodes:
            raise ValueError("no episodes")
        starts = np.cumsum([0] + [e.length for e in episodes[:-1]])
        rep = lambda v: np.concatenate([np.full(e.length, x) for e, x in zip(episodes, v, strict=True)])  # noqa: E731
        cat = lambda name: np.concatenate([getattr(e, name) for e in episodes])  # noqa: E731
        return cls(cat("qpos"), cat("action"), cat("target"), cat("bin"), cat("target_noisy"),
                   cat("bin_noisy"), rep(starts), rep(starts + [e.length - 1 for e in episodes]),
                   np.concatenate([s + e.grasp_since for s, e in zip(starts, episodes, strict=True)]),
                   tuple(e.seed for e in episodes),
                   valid=np.concatenate([np.ones(e.length, bool) if e.label_valid is None else e.label_valid
                                         for e in episodes]))

    def __len__(self) -> int:
        return len(self.action)

    def velocity(self, g: np.ndarray, n: np.ndarray | int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(x_g - x_{g-n}) / (n dt) of the joint states and the window n dt, per sample.

        The window is cut at the episode start; at the first step (no earlier state) the
        velocity is 0 over a window of dt (episodes start at rest).
        """
        g = np.asarray(g)
        src = np.maximum(g - np.asarray(n), self.ep_start[g])
        steps = g - src
        window = np.maximum(steps, 1) * self.dt_s
        return (self.qpos[g] - self.qpos[src]) / window[:, None], window

    def clean_obs(self, g: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Observation vectors with ground-truth objects at global steps g, velocity over one
        step: (B, OBS_DIM)."""
        g = np.arange(len(self))[g]
        v, w = self.velocity(g, 1)
        return features(self.qpos[g], v, w, self.target[g], self.bin[g, :2], self.tcp[g], self.target_v[g])

    def chunks(self, g: np.ndarray, k: int) -> np.ndarray:
        """Actions g .. g + k - 1 of each sample's episode, padded with its last action: (B, k, 7).

        The padding is the correct label: demonstrations end holding still.
        """
        idx = np.minimum(np.asarray(g)[:, None] + np.arange(k)[None], self.ep_end[g][:, None])
        return self.action[idx]

    def observations(self, g: np.ndarray, rng: np.random.Generator | None,
                     cfg: AugmentConfig) -> np.ndarray:
        """Observation vectors (B, OBS_DIM) at global steps g, objects perturbed and velocity windows
        drawn as in ``cfg`` (``rng`` None: clean, one-step velocity)."""
        if rng is None:
            return self.clean_obs(g)
        g = np.asarray(g)
        B, k = len(g), cfg.max_window_steps
        long_n = np.where(rng.random(B) < 0.5, k, rng.integers(2, k + 1, B))
        n = np.where(rng.random(B) < cfg.p_long_window, long_n, 1)
        v, w = self.velocity(g, n)
        target, bin_xy, target_v = augment_objects(self, g, rng, cfg)
        return features(self.qpos[g], v, w, target, bin_xy, self.tcp[g], target_v)


def augment_objects(data: DemoArrays, g: np.ndarray, rng: np.random.Generator,
                    cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Perceived (target (B, 3), bin x, y (B, 2), target velocity x, y (B, 2)) at global steps
    g (B,); never NaN.

    See :class:`~fdl_robot.policy.act.config.AugmentConfig` for the model.
    """
    g = np.asarray(g)
    B = len(g)
    start, grasp = data.ep_start[g], data.grasp[g]
    u = rng.random(B)
    clean = u < cfg.p_clean
    recorded = (u >= cfg.p_clean) & (u < cfg.p_clean + cfg.p_recorded)

    # synthetic: delay, freeze after the grasp, bias, noise
    src = np.maximum(g - rng.integers(0, cfg.max_delay_steps + 1, B), start)
    freeze = (rng.random(B) < cfg.p_freeze) & (g > grasp)
    if freeze.any():
        lo, hi = grasp[freeze], g[freeze]
        src[freeze] = lo + (rng.random(freeze.sum()) * (hi - lo + 1)).astype(int)
    target = (data.target[src] + rng.normal(0.0, 1.0, (B, 3)) * np.asarray(cfg.target_bias_std_m)
              + rng.normal(0.0, cfg.target_noise_std_m, (B, 3)))
    bin_xy = (data.bin[g, :2] + rng.normal(0.0, cfg.bin_bias_std_m, (B, 2))
              + rng.normal(0.0, cfg.bin_noise_std_m, (B, 2)))

    # the recorded perception stream (2 mm bias, 15 Hz hold, noise, dropouts filled)
    rec = np.maximum(g - rng.integers(0, 4, B), start)
    target[recorded] = data.target_noisy[rec[recorded]]
    bin_xy[recorded] = (data.bin_noisy[g[recorded], :2]
                        + rng.normal(0.0, cfg.recorded_bin_bias_std_m, (recorded.sum(), 2)))
    target[clean] = data.target[g[clean]]
    bin_xy[clean] = data.bin[g[clean], :2]

    # the target's velocity, as a tracker reports it: the true one at the input's (delayed) step
    # plus noise; a frozen (occluded) input carries none; 0 where it would not be significant
    v_src = np.where(recorded, rec, src)
    target_v = data.target_v[v_src] + rng.normal(0.0, cfg.target_velocity_noise_std_m_s, (B, 2))
    target_v[freeze & ~recorded & ~clean] = 0.0
    still = np.linalg.norm(target_v, axis=1) < cfg.target_velocity_min_m_s
    target_v[still] = 0.0
    target_v[clean] = data.target_v[g[clean]]
    return target, bin_xy, target_v

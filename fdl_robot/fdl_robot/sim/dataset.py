"""Demonstration datasets: scripted-expert episodes in the ACT HDF5 layout.

One file per episode, ``<out_dir>/episode_<i>.hdf5`` (i = 0 .. N-1), readable by
the original ACT loader (``/observations/qpos``, ``/observations/qvel``,
``/observations/images/<cam>``, ``/action``) plus our object-state keys.  T is the
number of control steps (50 Hz); row t holds the observation at step t and the
action the expert took from it.  See ``sim/README.md`` for the full table.

    /action                               (T, 7) float64  joint targets [rad] + gripper command [0 open, 1 closed]
    /observations/qpos                    (T, 7) float64  joint positions [rad] + gripper closure [0..1]
    /observations/qvel                    (T, 7) float64  joint velocities [rad/s] + closure rate [1/s]
    /observations/time_s                  (T,)   float64  simulated time [s]
    /observations/tcp_pose                (T, 7) float64  TCP xyz [m] + quaternion xyzw, base_link
    /observations/objects/<name>          (T, 3) float64  true position [m], base_link
    /observations/objects_quat/<name>     (T, 4) float64  true orientation (x, y, z, w)
    /observations/objects_noisy/<name>    (T, 3) float64  as perception would report it; NaN = no detection
    /observations/images/<cam>            (T, H, W, 3) uint8   optional (off by default)
    /observations/depth/<cam>             (T, H, W) uint16     optional, millimetres, 0 = invalid
    /cameras/<cam>/K                      (3, 3)  intrinsics at the recorded size
    /cameras/<cam>/T_base_cam             (4, 4)  true optical-frame pose (scene camera; at t=0 for moving cameras)
    /cameras/<cam>/T_base_cam_nominal     (4, 4)  calibrated pose (scene camera only)

Root attributes: ``sim`` (True), ``seed``, ``success``, ``dt`` (control period, s),
``physics_dt``, ``expert_done_step``, ``retries``, ``joint_names``,
``object_names``, ``camera_names``, ``gripper_convention``, ``noise`` (JSON).

The perturbed positions model what the perception stack (detector + depth
lifting + extrinsics) would give the policy, see :class:`PerceptionNoise`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from fdl_robot import __version__
from fdl_robot.outputs import write_json, writing
from fdl_robot.sim import scene
from fdl_robot.sim.camera import depth_m_to_mm_uint16
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
from fdl_robot.sim.expert import ExpertConfig, ScriptedExpert, run_expert_episode

__all__ = ["PerceptionNoise", "PerceptionNoiseModel", "RecordedEpisode", "record_episode", "record_demos",
           "load_episode", "GRIPPER_CONVENTION"]

GRIPPER_CONVENTION = ("qpos[6]: normalised finger closure, 0 = open (85 mm), 1 = pads touching; "
                      "action[6]: gripper position command on the same scale (0 open, 1 closed)")


@dataclass(frozen=True)
class PerceptionNoise:
    """Error model of perceived object positions (defaults: a calibrated RGB-D camera at ~0.8 m).

    p_noisy = T_base_cam_nominal T_cam_base_true p_true     (extrinsic error: the
              + b_obj                                         episode's camera jitter)
              + R_base_cam n,  n ~ N(0, diag(sigma_cam^2))    (per detection, optical
                                                              axes: depth is noisiest)
    with b_obj ~ N(0, bias_std^2 I) fixed per object and episode.  Detections come
    at ``update_rate_hz`` and are held (zero-order) between camera frames; each is
    dropped (NaN) with probability ``dropout_prob``.
    """

    bias_std_m: float = 0.002
    noise_std_cam_m: tuple[float, float, float] = (0.0015, 0.0015, 0.004)
    dropout_prob: float = 0.03
    update_rate_hz: float = 15.0
    use_extrinsic_error: bool = True


class PerceptionNoiseModel:
    """Stateful sampler of :class:`PerceptionNoise` for one episode (own RNG, no global state)."""

    def __init__(self, noise: PerceptionNoise, env: PickPlaceEnv, seed: int):
        self.noise = noise
        self.rng = np.random.default_rng([seed, 0x5EED])  # independent of the env's stream
        if noise.use_extrinsic_error:
            self.T_error = env.T_base_cam_nominal @ env.T_base_cam.inverse()
        else:
            self.T_error = None
        self.R_base_cam = env.T_base_cam_nominal.rotation
        self.bias: dict[str, np.ndarray] = {}
        self.held: dict[str, np.ndarray] = {}
        self.next_update_s = 0.0

    def __call__(self, positions_m: dict[str, np.ndarray], time_s: float) -> dict[str, np.ndarray]:
        """Perceived positions for the true ``positions_m`` at simulated ``time_s``."""
        if time_s + 1e-9 >= self.next_update_s:
            rate = self.noise.update_rate_hz
            self.next_update_s = (np.floor(time_s * rate + 1e-6) + 1.0) / rate
            for name, p in positions_m.items():
                if name not in self.bias:
                    self.bias[name] = self.rng.normal(0.0, self.noise.bias_std_m, 3)
                p_seen = self.T_error.apply(p) if self.T_error is not None else np.array(p, dtype=np.float64)
                n_cam = self.rng.normal(0.0, self.noise.noise_std_cam_m)
                p_seen = p_seen + self.bias[name] + self.R_base_cam @ n_cam
                if self.rng.random() < self.noise.dropout_prob:
                    p_seen = np.full(3, np.nan)
                self.held[name] = p_seen
        return {name: self.held[name].copy() for name in positions_m}


@dataclass
class RecordedEpisode:
    """In-memory episode, written by :meth:`save`."""

    seed: int
    qpos: list[np.ndarray] = field(default_factory=list)
    qvel: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    tcp_pose: list[np.ndarray] = field(default_factory=list)
    objects: dict[str, list[np.ndarray]] = field(default_factory=dict)
    objects_quat: dict[str, list[np.ndarray]] = field(default_factory=dict)
    objects_noisy: dict[str, list[np.ndarray]] = field(default_factory=dict)
    images: dict[str, list[np.ndarray]] = field(default_factory=dict)
    depth: dict[str, list[np.ndarray]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: Per step: is ``action`` a valid label (``policy.act.record``'s expert lapses); empty = every step.
    label_valid: list[bool] = field(default_factory=list)

    def save(self, path: str | Path, compression: str | None = "gzip") -> None:
        """Write the ACT-layout HDF5 file (images/depth gzip-compressed per frame);
        :class:`fdl_robot.outputs.OutputError` if it cannot be written."""
        if self.label_valid and len(self.label_valid) != len(self.action):
            raise ValueError(f"label_valid has {len(self.label_valid)} steps, action {len(self.action)}")
        with writing(path, "episode"), h5py.File(path, "w") as f:
            for key, value in self.attrs.items():
                f.attrs[key] = value
            f.create_dataset("action", data=np.asarray(self.action))
            f.create_dataset("label_valid", data=np.asarray(self.label_valid or [True] * len(self.action), bool))
            obs = f.create_group("observations")
            obs.create_dataset("qpos", data=np.asarray(self.qpos))
            obs.create_dataset("qvel", data=np.asarray(self.qvel))
            obs.create_dataset("time_s", data=np.asarray(self.time_s))
            obs.create_dataset("tcp_pose", data=np.asarray(self.tcp_pose))
            for group, series in (("objects", self.objects), ("objects_quat", self.objects_quat),
                                  ("objects_noisy", self.objects_noisy)):
                g = obs.create_group(group)
                for name, rows in series.items():
                    g.create_dataset(name, data=np.asarray(rows))
            for group, series in (("images", self.images), ("depth", self.depth)):
                if series:
                    g = obs.create_group(group)
                    for cam, frames in series.items():
                        arr = np.asarray(frames)
                        g.create_dataset(cam, data=arr, chunks=(1,) + arr.shape[1:], compression=compression)
            cams = f.create_group("cameras")
            for cam, values in self.cameras.items():
                g = cams.create_group(cam)
                for key, value in values.items():
                    g.create_dataset(key, data=value)


def record_episode(env: PickPlaceEnv, expert: ScriptedExpert, seed: int, episode_steps: int,
                   noise: PerceptionNoise | None = None, camera_names: tuple[str, ...] = (),
                   record_depth: bool = False, tail_steps: int | None = None) -> RecordedEpisode:
    """Run the expert for exactly ``episode_steps`` control steps and record everything.

    With ``tail_steps`` the episode ends ``tail_steps`` after the expert is done instead
    (at most ``episode_steps``). Images (and depth) of ``camera_names`` are rendered at
    every control step at the env's configured image size.
    """
    noise = noise if noise is not None else PerceptionNoise()
    ep = RecordedEpisode(seed=seed)
    perceiver: list[PerceptionNoiseModel] = []  # created after reset (needs the episode's camera pose)

    def on_step(obs: dict[str, Any], action: np.ndarray) -> None:
        if not perceiver:
            perceiver.append(PerceptionNoiseModel(noise, env, seed))
        ep.qpos.append(np.concatenate([obs["qpos"], [obs["gripper"]]]))
        ep.qvel.append(np.concatenate([obs["qvel"], [obs["gripper_vel"]]]))
        ep.action.append(np.asarray(action, dtype=np.float64).copy())
        ep.time_s.append(obs["time_s"])
        ep.tcp_pose.append(np.concatenate([obs["tcp"].position_m, obs["tcp"].quat_xyzw]))
        true_positions = {n: pose.position_m for n, pose in obs["objects"].items()}
        for name, pose in obs["objects"].items():
            ep.objects.setdefault(name, []).append(pose.position_m)
            ep.objects_quat.setdefault(name, []).append(pose.quat_xyzw)
        for name, p in perceiver[0](true_positions, obs["time_s"]).items():
            ep.objects_noisy.setdefault(name, []).append(p)
        for cam in camera_names:
            if record_depth:
                rgb, depth_m = env.render_rgbd(cam)
                ep.depth.setdefault(cam, []).append(depth_m_to_mm_uint16(depth_m))
            else:
                rgb = env.render_rgb(cam)
            ep.images.setdefault(cam, []).append(rgb)

    result = run_expert_episode(env, expert, seed, max_steps=episode_steps, run_to_max_steps=tail_steps is None,
                                settle_steps=tail_steps or 0, on_step=on_step)
    cams = tuple(dict.fromkeys((env.config.camera_name,) + tuple(camera_names)))
    for cam in cams:
        ep.cameras[cam] = {"K": env.camera_intrinsics(cam).K}
        if cam == env.config.camera_name:
            ep.cameras[cam]["T_base_cam"] = env.T_base_cam.as_matrix()
            ep.cameras[cam]["T_base_cam_nominal"] = env.T_base_cam_nominal.as_matrix()
    ep.attrs = {
        "sim": True,
        "seed": seed,
        "success": bool(result.success),
        "dt": env.control_dt_s,
        "physics_dt": env.physics_dt_s,
        "episode_steps": episode_steps,
        "expert_done_step": -1 if result.expert_done_step is None else result.expert_done_step,
        "retries": result.retries,
        "replans": result.replans,
        "perturbation": env.perturbation.kind,
        "perturbation_fired_s": -1.0 if env.perturbation.fired_s is None else env.perturbation.fired_s,
        "grasps": env.perturbation.grasps,
        "joint_names": json.dumps(list(scene.ARM_JOINT_NAMES) + ["gripper"]),
        "object_names": json.dumps(list(ep.objects)),
        "camera_names": json.dumps(list(camera_names)),
        "image_size_wh": json.dumps([env.config.image_width, env.config.image_height]),
        "gripper_convention": GRIPPER_CONVENTION,
        "frame": "base_link (x forward, y left, z up), metres, quaternions xyzw",
        "noise": json.dumps(asdict(noise)),
        "generator": f"fdl_robot {__version__} sim.dataset.record_demos",
    }
    return ep


def record_demos(n_episodes: int, out_path: str | Path, seed0: int = 0, episode_steps: int = 450,
                 env_config: PickPlaceConfig | None = None, expert_config: ExpertConfig | None = None,
                 noise: PerceptionNoise | None = None, camera_names: tuple[str, ...] = (),
                 record_depth: bool = False, keep_failures: bool = False, max_attempts: int | None = None,
                 progress: bool = True) -> list[dict[str, Any]]:
    """Record ``n_episodes`` expert demonstrations to ``out_path/episode_<i>.hdf5``.

    Seeds are tried in order from ``seed0``; unless ``keep_failures``, failed
    episodes are discarded and the next seed is tried (at most ``max_attempts``
    seeds, default 2 n + 10).  Also writes ``out_path/dataset_info.json``.
    Returns one summary dict per saved episode.
    """
    out_dir = Path(out_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = PickPlaceEnv(env_config)
    expert = ScriptedExpert(env.model, expert_config)
    max_attempts = max_attempts if max_attempts is not None else 2 * n_episodes + 10
    saved: list[dict[str, Any]] = []
    attempts = failures = 0
    bar = tqdm(total=n_episodes, desc="recording", unit="ep", disable=not progress)
    try:
        while len(saved) < n_episodes and attempts < max_attempts:
            seed = seed0 + attempts
            attempts += 1
            ep = record_episode(env, expert, seed, episode_steps, noise, camera_names, record_depth)
            if not ep.attrs["success"]:
                failures += 1
                if not keep_failures:
                    bar.set_postfix(failed=failures)
                    continue
            path = out_dir / f"episode_{len(saved)}.hdf5"
            ep.save(path)
            saved.append({"file": path.name, "seed": seed, "success": ep.attrs["success"],
                          "expert_done_step": ep.attrs["expert_done_step"]})
            bar.update(1)
            bar.set_postfix(failed=failures)
    finally:
        bar.close()
        env.close()
    info = {
        "episodes": saved,
        "n_saved": len(saved),
        "seeds_tried": attempts,
        "failures": failures,
        "episode_steps": episode_steps,
        "dt": env.control_dt_s,
        "camera_names": list(camera_names),
        "noise": asdict(noise if noise is not None else PerceptionNoise()),
    }
    write_json(out_dir / "dataset_info.json", info, "dataset info")
    if len(saved) < n_episodes:
        raise RuntimeError(f"only {len(saved)} of {n_episodes} successful episodes in {attempts} seeds")
    return saved


def load_episode(path: str | Path) -> dict[str, Any]:
    """Read an episode file into nested dicts of numpy arrays (attrs under ``'attrs'``)."""

    def read(group: h5py.Group) -> dict[str, Any]:
        return {k: (read(v) if isinstance(v, h5py.Group) else v[()]) for k, v in group.items()}

    with h5py.File(path, "r") as f:
        out = read(f)
        out["attrs"] = dict(f.attrs)
    return out

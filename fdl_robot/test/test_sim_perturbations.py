"""Scene perturbations (sim.perturbations): what each kind does, per seed, and that the expert recovers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fdl_robot.policy.act.record import PERTURBATION_MIX, parse_mix, perturbation_of
from fdl_robot.sim import scene
from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
from fdl_robot.sim.expert import ExpertConfig, ScriptedExpert, run_expert_episode
from fdl_robot.sim.perturbations import MIXED, PERTURBATIONS, PerturbationConfig


@pytest.fixture(scope="module")
def env():
    e = PickPlaceEnv(PickPlaceConfig(image_width=64, image_height=48, max_episode_steps=0))
    yield e
    e.close()


def _cube(env) -> np.ndarray:
    return env.object_pose(scene.TARGET_NAME).position_m.copy()


def _run_until_fired(env, seed: int, kind: str, max_steps: int = 600) -> ScriptedExpert:
    """Reset with ``kind`` and let the expert work until the perturbation fires."""
    expert = ScriptedExpert(env.model)
    obs = env.reset(seed, perturbation=kind)
    for _ in range(max_steps):
        obs, *_ = env.step(expert.act(obs))
        if env.perturbation.fired_s is not None:
            return expert
    raise AssertionError(f"{kind} never fired in {max_steps} steps (seed {seed})")


def test_unknown_kind_is_refused_with_the_list():
    with pytest.raises(ValueError, match="none, shift, drop, bin, conveyor, mixed"):
        PickPlaceConfig(perturbation="push")
    with pytest.raises(ValueError, match="shift_distance_m"):
        PerturbationConfig(shift_distance_m=(0.2, 0.1))


def test_the_episode_draws_do_not_depend_on_the_kind(env):
    """Objects, bin and arm at reset are the same whatever the perturbation (its own seed stream)."""
    ref = None
    for kind in PERTURBATIONS:
        obs = env.reset(7, perturbation=kind)
        state = np.concatenate([obs["qpos"]] + [p.position_m for p in obs["objects"].values()])
        ref = state if ref is None else ref
        np.testing.assert_array_equal(state, ref)


def test_parameters_are_drawn_per_seed(env):
    env.reset(11, perturbation="shift")
    a = dict(env.perturbation.params)
    env.reset(12, perturbation="shift")
    b = dict(env.perturbation.params)
    env.reset(11, perturbation="shift")
    assert env.perturbation.params == a != b
    lo, hi = PerturbationConfig().shift_distance_m
    assert lo <= a["distance_m"] <= hi


def test_shift_slides_the_cube_on_the_table_by_the_drawn_distance(env):
    _run_until_fired(env, 21, "shift")
    p = env.perturbation
    start = _cube(env)
    speeds = []
    for _ in range(round((p.config.shift_duration_s + 0.1) / env.physics_dt_s)):
        env.physics_step(1)
        speeds.append(np.linalg.norm(env.object_velocity(scene.TARGET_NAME)[0]))
    moved = _cube(env) - start
    h = p.params["heading_rad"]
    assert np.linalg.norm(moved[:2]) == pytest.approx(p.params["distance_m"], abs=0.01)
    assert math.atan2(moved[1], moved[0]) == pytest.approx(h, abs=0.1)
    assert abs(moved[2]) < 0.003                                     # slid, not lifted
    d, T = p.params["distance_m"], p.config.shift_duration_s
    assert max(speeds) <= 1.875 * d / T * 1.05                      # the min-jerk peak
    lo, hi = env.object_region_m
    assert np.all(_cube(env)[:2] >= lo - 1e-3) and np.all(_cube(env)[:2] <= hi + 1e-3)


def test_drop_opens_the_gripper_and_the_cube_lands_on_the_table_outside_the_bin(env):
    _run_until_fired(env, 23, "drop")
    p = env.perturbation
    assert p.gripper_fault
    commanded = env.action_targets()[6]
    env.physics_step(round(0.1 / env.physics_dt_s))
    assert env.action_targets()[6] == commanded == pytest.approx(1.0)      # the command is kept ...
    assert env.gripper_closure < 0.3                                        # ... but not obeyed
    env.physics_step(round(1.5 / env.physics_dt_s))
    assert not p.gripper_fault
    cube = _cube(env)
    assert cube[2] < scene.CUBE_HALF_M + 0.01                                # on the table
    bin_xy = env.object_pose(scene.BIN_NAME).position_m[:2]
    assert np.linalg.norm(cube[:2] - bin_xy) > scene.BIN_INNER_HALF_M + scene.CUBE_HALF_M
    assert not env.success()


def test_bin_moves_by_the_drawn_distance(env):
    env.reset(25, perturbation="bin")
    bin0 = env.object_pose(scene.BIN_NAME).position_m.copy()
    _run_until_fired(env, 25, "bin")
    p = env.perturbation
    env.physics_step(round((p.config.bin_duration_s + 0.05) / env.physics_dt_s))
    moved = env.object_pose(scene.BIN_NAME).position_m - bin0
    assert np.linalg.norm(moved) == pytest.approx(p.params["distance_m"], abs=0.01)
    cfg = p.config
    x, y = env.object_pose(scene.BIN_NAME).position_m[:2]
    assert cfg.bin_region_x_m[0] - 1e-6 <= x <= cfg.bin_region_x_m[1] + 1e-6
    assert cfg.bin_region_y_m[0] - 1e-6 <= y <= cfg.bin_region_y_m[1] + 1e-6


def test_conveyor_moves_every_cube_with_one_velocity(env):
    env.reset(27, perturbation="conveyor")
    p = env.perturbation
    names = env.cube_names
    start = {n: env.object_pose(n).position_m.copy() for n in names}
    env.physics_step(round(0.5 / env.physics_dt_s))
    h, v = p.params["heading_rad"], p.params["speed_m_s"]
    for n in names:
        moved = env.object_pose(n).position_m - start[n]
        assert np.linalg.norm(moved[:2]) == pytest.approx(0.5 * v, rel=0.05), n
        assert math.atan2(moved[1], moved[0]) == pytest.approx(h, abs=0.05), n
    lo, hi = PerturbationConfig().conveyor_speed_m_s
    assert lo <= v <= hi


def test_conveyor_stops_at_the_end_of_the_belt(env):
    env.reset(27, perturbation="conveyor")
    env.set_object_pose(scene.TARGET_NAME, [0.9, -0.5, scene.CUBE_HALF_M])     # off the belt
    before = _cube(env)
    env.physics_step(round(0.5 / env.physics_dt_s))
    assert np.linalg.norm(_cube(env) - before) < 1e-3


def test_mixed_draws_shift_drop_or_bin_per_seed(env):
    kinds = []
    for seed in range(30):
        env.reset(seed, perturbation="mixed")
        kinds.append(env.perturbation.kind)
    assert set(kinds) == set(MIXED)


@pytest.mark.parametrize("kind", [k for k in PERTURBATIONS if k not in ("none", "mixed")])
def test_expert_recovers_from_each_perturbation(kind):
    env = PickPlaceEnv(PickPlaceConfig(image_width=64, image_height=48, max_episode_steps=0, perturbation=kind))
    expert = ScriptedExpert(env.model, ExpertConfig(align_yaw=False))
    try:
        for seed in (31, 32):
            r = run_expert_episode(env, expert, seed, max_steps=1000)
            assert env.perturbation.fired_s is not None, (kind, seed)
            assert r.success, (kind, seed, r)
            if kind in ("shift", "drop", "bin"):
                assert r.replans + r.retries >= 1, (kind, seed, r)       # it reacted
            if kind == "drop":
                assert env.perturbation.grasps == 2, (kind, seed)        # one re-grasp
    finally:
        env.close()


def test_recorder_mix_is_drawn_per_seed():
    kinds = [perturbation_of(s, PERTURBATION_MIX) for s in range(400)]
    assert kinds == [perturbation_of(s, PERTURBATION_MIX) for s in range(400)]
    counts = {k: kinds.count(k) for k, _ in PERTURBATION_MIX}
    for k, w in PERTURBATION_MIX:
        assert abs(counts[k] / 400 - w) < 0.07, counts
    assert parse_mix("none:1,drop:3") == (("none", 1.0), ("drop", 3.0))
    with pytest.raises(ValueError, match="perturbation must be one of"):
        parse_mix("none:1,push:1")
    with pytest.raises(ValueError, match="> 0"):
        parse_mix("none:0")


@pytest.mark.parametrize("kind", ["shift", "conveyor"])
def test_recorder_lapse_masks_the_steps_planned_from_where_the_cube_was(tmp_path, kind):
    import h5py

    from fdl_robot.policy.act.record import RecorderConfig, record

    cfg = RecorderConfig(perturbations=((kind, 1.0),), lapse_frac=1.0, lapse_s=(1.0, 1.2))
    info = record(2, tmp_path / "lapsed", seed0=40, cfg=cfg, progress=False)
    for row in info["episodes"]:
        with h5py.File(tmp_path / "lapsed" / row["file"], "r") as f:
            valid, t = f["label_valid"][()], f["observations/time_s"][()]
            tcp, cube = f["observations/tcp_pose"][:, :3], f["observations/objects/red_cube"][()]
            fired_s, lapse_s = f.attrs["perturbation_fired_s"], f.attrs["expert_lapse_s"]
        assert 1.0 <= lapse_s <= 1.2 and row["masked_steps"] == int((~valid).sum()) > 10
        masked = np.flatnonzero(~valid)
        assert t[masked[0]] >= fired_s and t[masked[-1]] < fired_s + lapse_s + 1e-9
        # during the lapse the arm went for the cube's old place: at its end the TCP is
        # farther from the cube than at any later step before the grasp
        end = masked[-1]
        gap = np.linalg.norm(tcp[:, :2] - cube[:, :2], axis=1)
        assert gap[end] > 0.02 and gap[end + 50:end + 150].min() < 0.01   # ... and it recovered
    attentive = record(1, tmp_path / "attentive", seed0=40, cfg=RecorderConfig(perturbations=((kind, 1.0),),
                                                                               lapse_frac=0.0), progress=False)
    assert attentive["episodes"][0]["masked_steps"] == 0 and attentive["episodes"][0]["lapse_s"] == 0.0


def test_recorder_lapse_onset_starts_it_later_and_it_ends_above_the_cube(tmp_path):
    import h5py

    from fdl_robot.policy.act.record import RecorderConfig, record

    cfg = RecorderConfig(perturbations=(("conveyor", 1.0),), lapse_frac=1.0, lapse_s=(1.4, 1.5),
                         lapse_onset_s=(1.5, 2.0))
    info = record(2, tmp_path, seed0=30000, cfg=cfg, progress=False)
    for row in info["episodes"]:
        with h5py.File(tmp_path / row["file"], "r") as f:
            valid, t = f["label_valid"][()], f["observations/time_s"][()]
            tcp_z, cube_z = f["observations/tcp_pose"][:, 2], f["observations/objects/red_cube"][:, 2]
            onset_s = f.attrs["expert_lapse_onset_s"]
        masked = np.flatnonzero(~valid)
        assert 1.5 <= onset_s <= 2.0 and len(masked) > 5
        assert t[masked[0]] >= onset_s                      # the conveyor's perturbation fires at 0
        assert tcp_z[masked].min() - cube_z[masked].max() > 0.04   # replanned before going low
        assert row["replans"] >= 1 and row["retries"] == 0

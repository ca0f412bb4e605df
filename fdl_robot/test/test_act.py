"""ACT: model shapes and loss, normaliser, checkpoints, the Policy behaviour, augmentation, closed loop."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fdl_robot.core import kinematics as kin  # noqa: E402
from fdl_robot.policy.act.config import ACTConfig, AugmentConfig  # noqa: E402
from fdl_robot.policy.act import train as act_train  # noqa: E402
from fdl_robot.policy.act.model import EMBEDDING_PARAMETERS, ACTModel, act_loss, kl_divergence  # noqa: E402
from fdl_robot.policy.act.policy import (SHIPPED_MODEL_PATH, ACTPolicy, load_checkpoint,  # noqa: E402
                                         save_checkpoint)
from fdl_robot.policy.act.processor import (OBS_DIM, OBS_FEATURES, DemoArrays, DemoDataError, Episode,  # noqa: E402
                                            Normalizer, grasp_since, features, forward_fill, observation_vector)
from fdl_robot.policy.interface import Policy, PolicyObservation  # noqa: E402
from fdl_robot.policy.runner import PolicyRunner, limits_from_params, make_policy  # noqa: E402
from fdl_robot.ros.parameters import defaults  # noqa: E402

TINY = ACTConfig(d_model=32, n_heads=4, dim_feedforward=64, n_encoder_layers=2, n_vae_encoder_layers=1,
                 latent_dim=8, chunk_size=10, dropout=0.0)
P = defaults("policy_node")
LIMITS = limits_from_params(P)
HOME7 = np.append(kin.HOME_QPOS_RAD, 0.0)
CUBE = np.array([0.5, -0.1, 0.02])
BIN = np.array([0.45, 0.35, 0.0])


def tiny_normalizer() -> Normalizer:
    rng = np.random.default_rng(0)
    obs = features(HOME7 + rng.normal(0, 0.3, (200, 7)), rng.normal(0, 0.5, (200, 7)),
                   rng.uniform(0.02, 0.5, 200), CUBE + rng.normal(0, 0.05, (200, 3)),
                   BIN[:2] + rng.normal(0, 0.03, (200, 2)))
    act = HOME7 + rng.normal(0, 0.3, (200, 7))
    return Normalizer.fit(obs, act)


def tiny_policy(seed: int = 0, **kw) -> ACTPolicy:
    torch.manual_seed(seed)
    return ACTPolicy(ACTModel(TINY), tiny_normalizer(), **kw)


def obs(q7=HOME7, target=CUBE, t=0.0, bin_p=BIN):
    return PolicyObservation(q7[:6], q7[6], target, bin_p, t)


# --- model ------------------------------------------------------------------------------------

def test_shapes_in_training_and_inference():
    model = ACTModel(TINY)
    o, a = torch.randn(5, OBS_DIM), torch.randn(5, TINY.chunk_size, 7)
    a_hat, mu, logvar = model(o, a)
    assert a_hat.shape == (5, 10, 7) and mu.shape == logvar.shape == (5, 8)
    a_hat, mu, logvar = model.eval()(o)
    assert a_hat.shape == (5, 10, 7) and mu is None and logvar is None
    inference_only = ACTModel(TINY, with_vae_encoder=False)
    assert inference_only(o)[0].shape == (5, 10, 7)
    with pytest.raises(RuntimeError, match="without its CVAE encoder"):
        inference_only(o, a)


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    zeros = torch.zeros(3, 8)
    assert torch.all(kl_divergence(zeros, zeros) == 0)
    # mu = 1, sigma = 1: 1/2 per dimension; mu = 0, sigma^2 = e: (e - 1 - 1) / 2 per dimension
    assert torch.allclose(kl_divergence(torch.ones(2, 4), torch.zeros(2, 4)), torch.full((2,), 2.0))
    assert torch.allclose(kl_divergence(torch.zeros(1, 1), torch.ones(1, 1)),
                          torch.tensor([(np.e - 2.0) / 2]))
    a = torch.randn(2, 10, 7)
    parts = act_loss(a + 0.5, a, zeros[:2], zeros[:2], kl_weight=10.0)
    assert parts["kl"].item() == 0.0 and parts["loss"].item() == pytest.approx(0.5)
    parts = act_loss(a, a, torch.ones(2, 8), zeros[:2], kl_weight=10.0)
    assert parts["loss"].item() == pytest.approx(10.0 * 4.0)


def test_a_tiny_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    cfg = replace(TINY, kl_weight=1.0)
    model = ACTModel(cfg)
    o = torch.randn(16, OBS_DIM)
    a = torch.cumsum(torch.randn(16, 1, 7).expand(16, 10, 7) * 0.1, dim=1) + torch.randn(16, 1, 7)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(120):
        a_hat, mu, logvar = model(o, a)
        parts = act_loss(a_hat, a, mu, logvar, kl_weight=cfg.kl_weight)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        first = parts["l1"].item() if first is None else first
    model.eval()
    with torch.no_grad():
        l1_prior = (model(o)[0] - a).abs().mean().item()    # as at inference: z = 0
    assert parts["l1"].item() < first / 5
    assert l1_prior < first / 3



def test_weight_decay_applies_to_the_weight_matrices_only():
    model = ACTModel(TINY)
    decay, no_decay = model.param_groups(1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(map(id, decay["params"] + no_decay["params"])) == sorted(names)     # each once
    assert all(p.ndim >= 2 and names[id(p)] not in EMBEDDING_PARAMETERS for p in decay["params"])
    assert set(EMBEDDING_PARAMETERS) <= {names[id(p)] for p in no_decay["params"]}


# --- the config -------------------------------------------------------------------------------

def test_act_config_validates_itself_on_construction():
    shipped = torch.load(SHIPPED_MODEL_PATH, map_location="cpu", weights_only=True)["config"]
    assert ACTConfig.from_dict(shipped).to_dict() == shipped                     # the shipped one is valid
    for kwargs, message in [({"d_model": 30}, "divisible by n_heads"),
                            ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
                            ({"chunk_size": 0}, "chunk_size must be >= 1"), ({"n_heads": 0}, "n_heads must be >= 1"),
                            ({"chunk_size": 30}, "chunk_size 30 must be <= augment.max_window_steps 25"),
                            ({"lr_min": 1e-2}, "lr_min 0.01 must be <= lr"), ({"dt_s": 0.0}, "dt_s must be > 0"),
                            ({"val_fraction": 1.0}, "val_fraction"), ({"augment": {}}, "AugmentConfig")]:
        with pytest.raises(ValueError, match=message):
            ACTConfig(**kwargs)
    with pytest.raises(ValueError, match="d_model 30 must be divisible.*dropout must be"):   # every rule named
        ACTConfig(d_model=30, dropout=-0.1)
    with pytest.raises(ValueError, match="divisible"):
        replace(ACTConfig(), n_heads=7)                                          # replace() builds anew
    for kwargs, message in [({"p_freeze": 1.5}, "p_freeze must be in"), ({"bin_noise_std_m": -1.0}, "bin_noise_std_m"),
                            ({"max_window_steps": 1}, "max_window_steps must be >= 2"),
                            ({"target_bias_std_m": (0.1, 0.1)}, "3 values")]:
        with pytest.raises(ValueError, match=message):
            AugmentConfig(**kwargs)


def test_training_command_line_is_derived_from_the_config_fields():
    parser = act_train._parser()
    by_dest = {}
    for action in parser._actions:
        by_dest.setdefault(action.dest, []).append(action)
    for cls in (ACTConfig, AugmentConfig):
        for f in fields(cls):
            if f.name in act_train.FIXED_FIELDS or f.name == "augment":
                assert f.name not in by_dest
                continue
            action = by_dest[f.name][0]
            assert "--" + f.name.replace("_", "-") in action.option_strings
            assert action.default == getattr(cls(), f.name) and action.help.startswith(f.metadata["help"])
    args = parser.parse_args(["--data", "d"])
    assert act_train.config_from_args(args) == ACTConfig()
    old_names = ["--data", "d", "--heads", "2", "--ff", "8", "--enc-layers", "1", "--dec-layers", "2",
                 "--vae-layers", "3", "--absolute-actions", "--p-freeze", "0.5",
                 "--target-bias-std-m", "0", "0", "0.01"]
    assert act_train.config_from_args(parser.parse_args(old_names)) == replace(
        ACTConfig(), n_heads=2, dim_feedforward=8, n_encoder_layers=1, n_decoder_layers=2, n_vae_encoder_layers=3,
        relative_actions=False, augment=AugmentConfig(p_freeze=0.5, target_bias_std_m=(0.0, 0.0, 0.01)))
    assert act_train.config_from_args(parser.parse_args(["--data", "d", "--no-relative-actions", "--lr-min", "0"])) \
        == replace(ACTConfig(), relative_actions=False, lr_min=0.0)
    with pytest.raises(SystemExit):                                 # an invalid config is a usage error
        act_train.main(["--data", "d", "--d-model", "30"])


# --- normaliser and checkpoints ---------------------------------------------------------------

def test_normalizer_round_trip_statistics_and_floor():
    rng = np.random.default_rng(1)
    o = rng.normal(3.0, 2.0, (500, 20))
    o[:, 19] = 0.25                                           # a constant feature
    a = rng.normal(-1.0, 0.5, (500, 7))
    norm = Normalizer.fit(o, a, std_floor=1e-3)
    on = norm.normalize_obs(o)
    np.testing.assert_allclose(on[:, :19].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(on[:, :19].std(0), 1, atol=1e-12)
    assert norm.obs_std[19] == 1e-3 and np.all(on[:, 19] == 0)
    np.testing.assert_allclose(norm.unnormalize_action(norm.normalize_action(a)), a, atol=1e-12)
    again = Normalizer.from_dict(norm.to_dict())
    for k in ("obs_mean", "obs_std", "action_mean", "action_std"):
        np.testing.assert_array_equal(getattr(again, k), getattr(norm, k))


@pytest.mark.parametrize("inference_only", [True, False])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, inference_only):
    policy = tiny_policy()
    path = tmp_path / "act.pt"
    save_checkpoint(path, policy.model, policy.normalizer,
                    inference_only=inference_only, meta={"note": "test"})
    model, norm, meta = load_checkpoint(path)
    assert meta == {"note": "test"} and (model.vae is None) == inference_only
    for k in ("obs_mean", "obs_std", "action_mean", "action_std"):      # stored with the weights
        np.testing.assert_array_equal(getattr(norm, k), getattr(policy.normalizer, k))
    loaded = ACTPolicy.load(path)
    for o in (obs(), obs(HOME7 + 0.1, CUBE + 0.03)):
        np.testing.assert_array_equal(loaded.predict_chunk(o), policy.predict_chunk(o))


def test_policy_threads_apply_to_the_forward_pass_only(monkeypatch):
    """threads=1 runs the model with one torch thread and restores the process's setting."""
    seen = []
    policy = tiny_policy(threads=1)
    forward = policy.model.forward
    monkeypatch.setattr(policy.model, "forward", lambda *a, **k: (seen.append(torch.get_num_threads()),
                                                                forward(*a, **k))[1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        reference = tiny_policy(threads=0).predict_chunk(obs())
        np.testing.assert_allclose(policy.predict_chunk(obs()), reference, atol=1e-5)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        tiny_policy(threads=-1)


def test_load_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an fdl_robot ACT checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        ACTPolicy.load(tmp_path / "missing.pt")


# --- the Policy -------------------------------------------------------------------------------

def test_observation_vector_layout():
    vel = np.arange(7.0)
    v = observation_vector(obs(HOME7, CUBE, bin_p=(0.4, 0.3, 0.07)), vel, 0.5)
    tcp = kin.forward_kinematics(HOME7[:6])[:3, 3]
    np.testing.assert_allclose(tcp, [0.492, 0.133, 0.353], atol=1e-3)     # home (core.kinematics)
    assert v.shape == (len(OBS_FEATURES),) == (30,)
    np.testing.assert_allclose(v, np.concatenate([HOME7, tcp, vel, [0.5], CUBE, CUBE - tcp, [0.0, 0.0],
                                                  [0.4, 0.3], [0.4, 0.3] - tcp[:2]]), atol=1e-12)   # bin z not used
    moving = PolicyObservation(HOME7[:6], HOME7[6], CUBE, (0.4, 0.3, 0.07), 0.0, target_v_base_m_s=(0.05, -0.02, 0.3))
    np.testing.assert_array_equal(observation_vector(moving, vel, 0.5)[18:26][6:], [0.05, -0.02])   # vz not used
    with pytest.raises(ValueError, match="target"):
        observation_vector(obs(target=None), vel, 0.02)


def test_features_from_the_urdf_equal_the_dh_reference_for_the_shipped_policy():
    """The p_tcp features (URDF model) are the DH chain's the shipped policy was trained on; same chunks."""
    rng = np.random.default_rng(15)
    n = 400
    q7 = np.concatenate([HOME7 + rng.normal(0, 0.4, (n // 2, 7)),
                         np.c_[rng.uniform(-2 * np.pi, 2 * np.pi, (n // 2, 6)), rng.uniform(0, 1, n // 2)]])
    args = (rng.normal(0, 0.5, (n, 7)), np.full(n, 0.02), CUBE + rng.normal(0, 0.05, (n, 3)),
            BIN[:2] + rng.normal(0, 0.03, (n, 2)))
    urdf = features(q7, *args)
    dh = features(q7, *args, tcp=kin.tcp_position(q7[:, :6]))
    np.testing.assert_allclose(urdf, dh, rtol=0, atol=1e-6)
    data = DemoArrays.from_episodes([synthetic_episode(T=30)])
    np.testing.assert_allclose(data.tcp, kin.tcp_position(data.qpos[:, :6]), rtol=0, atol=1e-6)
    policy = ACTPolicy.load(SHIPPED_MODEL_PATH)
    np.testing.assert_allclose(policy.predict_vectors(urdf[:50]), policy.predict_vectors(dh[:50]), rtol=0, atol=1e-6)


def test_policy_velocity_from_consecutive_observations():
    policy = tiny_policy()
    v, w = policy.velocity(obs(HOME7, t=1.0))
    assert w == 0.02 and np.all(v == 0)                                   # fresh: at rest
    policy.predict_chunk(obs(HOME7, t=1.0))
    q = HOME7 + 0.01
    v, w = policy.velocity(obs(q, t=1.02))
    assert w == pytest.approx(0.02) and np.allclose(v, 0.5)
    policy.predict_chunk(obs(q, None, t=1.02))                             # a hold call counts too
    v, w = policy.velocity(obs(q + 0.1, t=1.52))                           # chunked execution: k dt
    assert w == pytest.approx(0.5) and np.allclose(v, 0.2)
    policy.predict_chunk(obs(q, t=1.02))                                   # the same measurement again
    v, w = policy.velocity(obs(q, t=1.02))
    assert w == pytest.approx(0.02) and np.allclose(v, 0.5)
    v, w = policy.velocity(obs(q + 0.1, t=1.6))                            # too old: at rest
    assert w == 0.02 and np.all(v == 0)
    policy.reset()
    v, w = policy.velocity(obs(q, t=1.04))
    assert w == 0.02 and np.all(v == 0)


def test_policy_implements_the_interface_and_holds_without_target():
    policy = tiny_policy()
    assert isinstance(policy, Policy) and policy.chunk_size == 10 and policy.dt_s == 0.02
    q = HOME7 + np.array([0.1, -0.2, 0.05, 0.0, 0.1, -0.1, 0.6])
    chunk = policy.predict_chunk(obs(q, None))
    assert policy.mode == "hold"
    np.testing.assert_array_equal(chunk, np.tile(q, (10, 1)))
    runner = PolicyRunner(policy, LIMITS, "ensemble")                    # and no motion through the runner
    for i in range(5):
        out = runner.step(obs(q, None, t=0.02 * i), 0.02 * i)
        np.testing.assert_allclose(out.command, q, rtol=0, atol=1e-12)
    chunk = policy.predict_chunk(obs(q, CUBE))
    assert policy.mode == "act" and chunk.shape == (10, 7) and not np.array_equal(chunk[0], q)


def test_target_memory_is_opt_in_and_expires():
    policy = tiny_policy(target_memory_s=0.5)
    policy.predict_chunk(obs(target=CUBE, t=1.0))
    with_target = policy.predict_chunk(obs(target=CUBE, t=1.2))
    remembered = policy.predict_chunk(obs(target=None, t=1.4))
    assert policy.mode == "memory"
    np.testing.assert_array_equal(remembered, with_target)
    policy.predict_chunk(obs(target=None, t=1.8))
    assert policy.mode == "hold"
    policy.reset()
    policy.predict_chunk(obs(target=None, t=1.81))
    assert policy.mode == "hold"


def test_policy_never_outputs_nan_on_noisy_inputs():
    policy = tiny_policy()
    rng = np.random.default_rng(2)
    modes = []
    for scale in (0.01, 0.1, 1.0, 1e3, 1e30):
        q = HOME7 + rng.normal(0, scale, 7)
        chunk = policy.predict_chunk(obs(q, CUBE + rng.normal(0, scale, 3), bin_p=BIN + rng.normal(0, scale, 3)))
        assert chunk.shape == (10, 7) and np.all(np.isfinite(chunk))
        if policy.mode == "act":      # else a hold at the (absurd) state itself
            assert np.all((chunk[:, 6] >= 0) & (chunk[:, 6] <= 1))
        modes.append(policy.mode)
    assert modes[:3] == ["act"] * 3
    with pytest.raises(ValueError):                   # NaN cannot even be expressed as an observation
        obs(target=(np.nan, 0.0, 0.0))


# --- data and augmentation --------------------------------------------------------------------

def synthetic_episode(T=60, grasp=20, seed=0, release=None) -> Episode:
    t = np.arange(T)[:, None]
    target = np.where(t < grasp + 5, CUBE, CUBE + [0, 0, 0.01] * (t - grasp - 4))
    noisy = target + 0.002
    noisy[::7] = np.nan                                    # dropouts
    action = np.tile(HOME7, (T, 1)) + 0.01 * t
    action[grasp:release, 6] = 1.0
    if release is not None:
        action[release:, 6] = 0.0
    return Episode(seed, action - 0.005, action, target, np.tile(BIN, (T, 1)), forward_fill(noisy),
                   forward_fill(np.tile(BIN, (T, 1))), grasp_since(action[:, 6] > 0.5))


def test_forward_fill_replaces_nan_rows_by_the_last_valid_one():
    x = np.array([[np.nan] * 3, [1.0, 2, 3], [np.nan] * 3, [4.0, 5, 6], [np.nan, 0, 0]])
    np.testing.assert_array_equal(forward_fill(x), [[1, 2, 3], [1, 2, 3], [1, 2, 3], [4, 5, 6], [4, 5, 6]])
    with pytest.raises(ValueError):
        forward_fill(np.full((2, 3), np.nan))


def test_demo_arrays_velocity_stays_within_the_episode():
    eps = [synthetic_episode(T=30), synthetic_episode(T=40, seed=1)]
    data = DemoArrays.from_episodes(eps)
    v, w = data.velocity(np.array([0, 5, 30, 33]), np.array([1, 3, 5, 2]))
    np.testing.assert_allclose(w, [0.02, 0.06, 0.02, 0.04])               # cut at episode starts
    np.testing.assert_allclose(v[0], 0)
    np.testing.assert_allclose(v[1], (eps[0].qpos[5] - eps[0].qpos[2]) / 0.06)
    np.testing.assert_allclose(v[2], 0)
    np.testing.assert_allclose(v[3], (eps[1].qpos[3] - eps[1].qpos[1]) / 0.04)


def test_training_samples_only_steps_with_a_valid_label(tmp_path):
    from dataclasses import replace

    from fdl_robot.policy.act.train import TrainingData, ValidationSet

    lapsed = replace(synthetic_episode(T=40, seed=1), label_valid=np.arange(40) >= 15)   # 15 masked steps
    data = DemoArrays.from_episodes([synthetic_episode(T=30), lapsed])
    np.testing.assert_array_equal(data.sample_steps, np.r_[0:30, 45:70])
    with pytest.raises(DemoDataError, match="no step with a valid label"):
        DemoArrays.from_episodes([replace(lapsed, label_valid=np.zeros(40, bool))])
    # through the files: the recorder writes label_valid, the trainer samples around it
    from fdl_robot.sim.dataset import RecordedEpisode

    for i, (seed, valid) in enumerate([(3, np.arange(40) % 2 == 0), (4, np.ones(40, bool))]):
        e = synthetic_episode(T=40, seed=seed)
        RecordedEpisode(seed, qpos=list(e.qpos), qvel=list(np.zeros((40, 7))), action=list(e.action),
                        time_s=list(0.02 * np.arange(40)), tcp_pose=list(np.zeros((40, 7))),
                        objects={"red_cube": list(e.target), "bin": list(e.bin)},
                        objects_noisy={"red_cube": list(e.target_noisy), "bin": list(e.bin_noisy)},
                        attrs={"seed": seed, "success": True},
                        label_valid=list(valid)).save(tmp_path / f"episode_{i}.hdf5")
    cfg = ACTConfig(val_fraction=0.5, seed=0, chunk_size=5, augment=ACTConfig().augment)
    data = TrainingData.load(cfg, tmp_path)
    assert set(data.train.sample_steps) | set(data.val.sample_steps) >= set(range(0, 40, 2))
    steps = data.train.sample_steps if data.train.seeds == (3,) else data.val.sample_steps
    np.testing.assert_array_equal(steps, np.arange(0, 40, 2))
    assert len(ValidationSet.draw(data)) == len(data.val.sample_steps[::3])
    with pytest.raises(DemoDataError, match="same seed"):
        TrainingData.load(cfg, [tmp_path, tmp_path])


def test_demo_arrays_chunks_pad_within_each_episode():
    eps = [synthetic_episode(T=30), synthetic_episode(T=40, seed=1)]
    data = DemoArrays.from_episodes(eps)
    assert len(data) == 70 and data.seeds == (0, 1)
    c = data.chunks(np.array([25, 30]), k=10)
    np.testing.assert_array_equal(c[0, :5], eps[0].action[25:30])
    np.testing.assert_array_equal(c[0, 5:], np.tile(eps[0].action[-1], (5, 1)))   # padded, not episode 1
    np.testing.assert_array_equal(c[1], eps[1].action[:10])


def test_augmentation_is_finite_and_follows_its_model():
    data = DemoArrays.from_episodes([synthetic_episode(T=60, grasp=20)])
    rng = np.random.default_rng(3)
    g = rng.integers(0, 60, 4000)
    o = data.observations(g, rng, AugmentConfig())
    assert np.all(np.isfinite(o))
    np.testing.assert_array_equal(o[:, :10], data.clean_obs(g)[:, :10])   # proprioception untouched
    clean = data.observations(g, rng, AugmentConfig(p_clean=1.0, p_long_window=0.0))
    np.testing.assert_array_equal(clean, data.clean_obs(g))
    # frozen target, no delay, bias or noise: after the grasp the input is a position of the
    # cube between the grasp and now, never a future one
    frozen = AugmentConfig(p_clean=0.0, p_recorded=0.0, max_delay_steps=0, p_freeze=1.0,
                           target_bias_std_m=(0.0, 0.0, 0.0), target_noise_std_m=0.0)
    o = data.observations(g, rng, frozen)
    after = g > 20
    z_in, z_true = o[after, 20], data.target[g[after], 2]
    assert np.all(z_in <= z_true + 1e-12) and np.any(z_in < z_true - 1e-3)
    np.testing.assert_array_equal(o[~after, 18:21], data.target[g[~after]])
    # once the gripper is commanded open again (a drop, a release), the target is never frozen
    released = DemoArrays.from_episodes([synthetic_episode(T=60, grasp=20, release=40)])
    o = released.observations(g, rng, frozen)
    np.testing.assert_array_equal(o[g >= 40, 18:21], released.target[g[g >= 40]])
    assert np.any(o[(g > 20) & (g < 40), 20] < released.target[g[(g > 20) & (g < 40)], 2] - 1e-3)
    # bias + noise have the configured spread
    noisy = AugmentConfig(p_clean=0.0, p_recorded=0.0, max_delay_steps=0, p_freeze=0.0)
    err = data.observations(g, rng, noisy)[:, 18:21] - data.target[g]
    expected = np.sqrt(np.asarray(noisy.target_bias_std_m) ** 2 + noisy.target_noise_std_m ** 2)
    np.testing.assert_allclose(err.std(0), expected, rtol=0.1)


def test_importing_the_policy_interface_runner_and_act_package_does_not_import_torch():
    code = ("import sys\nimport fdl_robot.policy.interface, fdl_robot.policy.runner, fdl_robot.policy.act\n"
            "import fdl_robot.policy.act.processor, fdl_robot.policy.act.config\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the shipped model ------------------------------------------------------------------------

def test_make_policy_loads_the_shipped_act_model():
    assert SHIPPED_MODEL_PATH.is_file() and SHIPPED_MODEL_PATH.stat().st_size < 10e6
    policy = make_policy("act", dt_s=0.02, model_path="")
    assert isinstance(policy, ACTPolicy) and isinstance(policy, Policy)
    chunk = policy.predict_chunk(obs())
    assert chunk.shape == (policy.chunk_size, 7) and np.all(np.isfinite(chunk))
    with pytest.raises(ValueError, match="trained at dt"):
        make_policy("act", dt_s=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5000, 5001])
def test_shipped_model_solves_unseen_episodes_in_closed_loop(seed):
    from fdl_robot.eval.sim_act import run_episode
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

    torch.set_num_threads(1)
    policy = make_policy("act", dt_s=0.02)
    with PickPlaceEnv(PickPlaceConfig(image_width=64, image_height=48, max_episode_steps=0)) as env:
        outcome = run_episode(env, PolicyRunner(policy, LIMITS, "ensemble"), seed, "gt", max_steps=600)
    assert outcome.success and not outcome.cube_dropped and outcome.time_to_success_s < 10.0


def test_target_velocity_is_the_cubes_and_is_perceived_as_a_tracker_gives_it():
    data = DemoArrays.from_episodes([synthetic_episode(T=60, grasp=20), synthetic_episode(T=40, seed=1)])
    # (p_g - p_{g-1}) / dt within each episode; the synthetic cube rises 1 cm per step after grasp + 4
    np.testing.assert_allclose(data.target_v, 0.0)                       # it moves only in z
    moving = synthetic_episode(T=40)
    moving.target[:, 0] += 0.002 * np.arange(40)                          # 0.1 m/s along x
    data = DemoArrays.from_episodes([moving, synthetic_episode(T=30, seed=1)])
    np.testing.assert_allclose(data.target_v[1:40, 0], 0.1)
    assert data.target_v[0, 0] == 0.0 and data.target_v[40, 0] == 0.0    # episode starts: no earlier step
    rng = np.random.default_rng(5)
    g = rng.integers(0, 40, 3000)
    clean = data.observations(g, rng, AugmentConfig(p_clean=1.0, p_long_window=0.0))
    np.testing.assert_allclose(clean[:, 24:26], data.target_v[g])
    frozen = AugmentConfig(p_clean=0.0, p_recorded=0.0, p_freeze=1.0)
    o = data.observations(g, rng, frozen)
    closed = g > 20
    np.testing.assert_array_equal(o[closed, 24:26], 0.0)                   # a frozen input has no velocity
    noisy = data.observations(g, rng, AugmentConfig(p_clean=0.0, p_recorded=0.0, p_freeze=0.0))
    err = noisy[g > 10, 24] - 0.1                                          # past the longest delay
    assert abs(err.mean()) < 0.003 and 0.015 < err.std() < 0.025           # 0.02 m/s of noise
    still = DemoArrays.from_episodes([synthetic_episode(T=40)])
    o = still.observations(g, rng, AugmentConfig(p_clean=0.0, p_recorded=0.0, p_freeze=0.0))
    assert np.mean(o[:, 24:26] == 0.0) > 0.6                               # below 3 cm/s: given as 0


def test_tracked_inputs_are_the_trackers_target_track_as_policy_node_selects_it():
    """``--inputs tracked``: the perceived detections go through MultiObjectTracker at their 15 Hz
    frames; the target is its selected red_cube track (delayed, predicted only with a significant
    velocity) and follows a cube on the belt; a still scene never gets a velocity."""
    from fdl_robot.eval.sim_act import ObjectInputs
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

    with PickPlaceEnv(PickPlaceConfig(image_width=64, image_height=48, max_episode_steps=0)) as env:
        for perturbation in ("none", "conveyor"):
            obs = env.reset(5003, perturbation=perturbation)
            feed = ObjectInputs("tracked", env, 5003)
            hold = np.r_[obs["qpos"], obs["gripper"]]
            errors, velocities = [], []
            for k in range(100):
                target, bin_p, v = feed(obs)
                if k >= 25:
                    errors.append(np.linalg.norm(target - obs["objects"]["red_cube"].position_m))
                    velocities.append(v)
                obs, *_ = env.step(hold)
            labels = {t.label for t in feed.tracker.confirmed_tracks()}
            assert labels == {"red_cube", "bin"}
            # perceived, not the truth (mm of noise and bias), and still on the cube
            assert 0.0005 < np.median(errors) < 0.02, (perturbation, np.median(errors))
            if perturbation == "none":
                assert all(v is None for v in velocities)

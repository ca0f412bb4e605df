"""policy.interface, policy.scripted and policy.runner without ROS."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fdl_robot.core import kinematics as kin
from fdl_robot.core.safety import JointLimits
from fdl_robot.core.tracking import TrackState
from fdl_robot.policy.interface import Policy, PolicyObservation
from fdl_robot.policy.inputs import select_target
from fdl_robot.policy.runner import PolicyRunner, limits_from_params, make_policy
from fdl_robot.policy.scripted import ScriptedPolicy, joint_space_chunk
from fdl_robot.ros.parameters import defaults

P = defaults("policy_node")
LIMITS = limits_from_params(P)
DT = 0.02
HOME7 = np.append(kin.HOME_QPOS_RAD, 0.0)
BIN = (0.55, 0.25, 0.0)
CUBE = np.array([0.5, -0.1, 0.02])


def obs(q7, target=None, t=0.0):
    return PolicyObservation(q7[:6], q7[6], target, BIN, t)


def test_observation_validates_and_converts():
    o = obs(HOME7, CUBE)
    assert o.has_target and o.joint_state.shape == (7,) and o.qpos_rad.dtype == np.float64
    assert not obs(HOME7).has_target
    with pytest.raises(ValueError, match="qpos_rad"):
        PolicyObservation(np.zeros(5), 0.0, None, BIN, 0.0)
    with pytest.raises(ValueError, match="target_p_base_m"):
        PolicyObservation(np.zeros(6), 0.0, (np.nan, 0, 0), BIN, 0.0)
    with pytest.raises(ValueError, match="gripper"):
        PolicyObservation(np.zeros(6), np.inf, None, BIN, 0.0)


def test_scripted_policy_implements_the_interface():
    policy = make_policy("scripted", dt_s=DT)
    assert isinstance(policy, Policy) and policy.dt_s == DT
    chunk = policy.predict_chunk(obs(HOME7, CUBE))
    assert chunk.shape == (policy.chunk_size, 7) and np.all(np.isfinite(chunk))


def test_make_policy_explains_a_missing_act_checkpoint_and_rejects_unknown_names():
    with pytest.raises(FileNotFoundError, match="ACT checkpoint not found"):
        make_policy("act", dt_s=DT, model_path="/nonexistent/act.pt")
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("random", dt_s=DT)


def test_joint_space_chunk_is_a_synchronised_straight_line():
    v = np.array([1.0, 0.5])
    c = joint_space_chunk([0.0, 0.0], [0.1, 0.1], v, dt_s=0.1, k=5)
    # T = max(0.1 / 1, 0.1 / 0.5) = 0.2 s: half way after one step, there after two
    np.testing.assert_allclose(c, [[0.05, 0.05], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1]])
    np.testing.assert_allclose(joint_space_chunk([1.0], [1.0], [1.0], 0.1, 3), [[1.0]] * 3)


def test_scripted_goal_is_the_pregrasp_pose_or_home():
    policy = ScriptedPolicy(dt_s=DT)
    goal = policy.goal(obs(HOME7, CUBE))
    assert policy.mode == "target" and goal[6] == 0.0            # open to grasp
    T = kin.forward_kinematics(goal[:6])
    np.testing.assert_allclose(T[:3, 3], CUBE + [0, 0, 0.10], atol=1e-3)
    assert T[2, 2] < -0.999
    holding = HOME7.copy()
    holding[6] = 0.8
    goal = policy.goal(obs(holding))                               # no target: home, gripper kept
    assert policy.mode == "home"
    np.testing.assert_allclose(goal, np.append(kin.HOME_QPOS_RAD, 0.8))
    goal = policy.goal(obs(HOME7, (2.0, 0.0, 0.1)))                # unreachable: home
    assert policy.mode == "unreachable"
    np.testing.assert_allclose(goal[:6], kin.HOME_QPOS_RAD)


def test_scripted_goal_takes_the_nearest_equivalent_angle():
    q = HOME7.copy()
    q[5] = 2 * np.pi - 0.1                                         # wrist 3 one turn around
    goal = ScriptedPolicy(dt_s=DT).goal(obs(q))
    assert goal[5] == pytest.approx(2 * np.pi)                     # not back to 0


@pytest.mark.parametrize("mode", ["ensemble", "chunk"])
def test_runner_reaches_the_pregrasp_pose_within_limits(mode):
    runner = PolicyRunner(ScriptedPolicy(dt_s=DT), LIMITS, mode)
    q, t = HOME7.copy(), 0.0
    for _ in range(250):                                           # 5 s of a perfect robot
        out = runner.step(obs(q, CUBE, t), t)
        assert np.all(np.abs(out.command - q) <= LIMITS.max_velocity_rad_s * DT + 1e-12)
        assert LIMITS.contains(out.trajectory).all()
        steps = np.diff(out.trajectory, axis=0)
        assert np.all(np.abs(steps) <= LIMITS.max_velocity_rad_s * DT + 1e-12)
        q, t = out.command, t + DT
    np.testing.assert_allclose(kin.tcp_position(q[:6]), CUBE + [0, 0, 0.10], atol=2e-3)


def test_chunk_mode_queries_once_per_chunk_and_ensemble_every_step():
    for mode, expected in [("chunk", 3), ("ensemble", 50)]:
        runner = PolicyRunner(ScriptedPolicy(chunk_size=20, dt_s=DT), LIMITS, mode)
        queries = sum(runner.step(obs(HOME7, CUBE), i * DT).queried for i in range(50))
        assert queries == expected, mode


class _Constant:
    """A test policy: every chunk is `value` everywhere, and counts its calls."""

    chunk_size, dt_s = 4, DT

    def __init__(self):
        self.value, self.calls, self.resets = HOME7.copy(), 0, 0

    def reset(self):
        self.resets += 1

    def predict_chunk(self, o):
        self.calls += 1
        return np.tile(self.value, (self.chunk_size, 1))


def test_ensemble_weights_the_oldest_chunk_most():
    policy = _Constant()
    runner = PolicyRunner(policy, LIMITS, "ensemble", ensemble_m=0.5)
    runner.step(obs(HOME7), 0.0)                                   # chunk A (value HOME7)
    policy.value = HOME7 + np.r_[0.01, np.zeros(6)]
    out = runner.step(obs(HOME7), DT)                              # chunk B
    w = np.exp(-0.5 * np.arange(2))
    expected = HOME7[0] + 0.01 * w[1] / w.sum()                    # (1 * a_A + e^-0.5 * a_B) / sum
    assert out.policy_target[0] == pytest.approx(expected)


def test_runner_restarts_after_a_long_gap_or_a_clock_jump():
    policy = _Constant()
    runner = PolicyRunner(policy, LIMITS, "chunk")
    runner.step(obs(HOME7), 0.0)
    runner.step(obs(HOME7), 2 * DT)                                # a missed tick: next row
    runner.step(obs(HOME7), 3 * DT)
    runner.step(obs(HOME7), 4 * DT)
    assert policy.calls == 1
    runner.step(obs(HOME7), 5 * DT)                                # 4 rows used: new chunk
    assert policy.calls == 2
    runner.step(obs(HOME7), 1.0)                                   # long gap: fresh chunk
    assert policy.calls == 3
    runner.step(obs(HOME7), 0.5)                                   # time went back: fresh chunk
    assert policy.calls == 4
    runner.reset()
    assert policy.resets == 2                                      # construction + reset


def test_remaining_points_follow_the_newest_chunk():
    policy = _Constant()
    policy.predict_chunk = lambda o: HOME7 + np.arange(4)[:, None] * 0.001
    runner = PolicyRunner(policy, LIMITS, "chunk")
    out = runner.step(obs(HOME7), 0.0)
    np.testing.assert_allclose(out.trajectory, HOME7 + np.arange(4)[:, None] * 0.001)
    out = runner.step(obs(HOME7), DT)
    np.testing.assert_allclose(out.trajectory, HOME7 + np.arange(1, 4)[:, None] * 0.001)
    runner = PolicyRunner(policy, LIMITS, "ensemble")
    runner.step(obs(HOME7), 0.0)
    out = runner.step(obs(HOME7), DT)
    assert out.trajectory.shape == (4, 7)          # this step's ensemble + newest rows 1..3


def test_runner_rejects_bad_configuration_and_bad_chunks():
    with pytest.raises(ValueError, match="chunk_execution"):
        PolicyRunner(_Constant(), LIMITS, "stream")
    with pytest.raises(ValueError, match="7 joints"):
        PolicyRunner(_Constant(), JointLimits([0], [1], [1], [1]))
    policy = _Constant()
    policy.predict_chunk = lambda o: np.zeros((4, 6))
    with pytest.raises(ValueError, match="shape"):
        PolicyRunner(policy, LIMITS).step(obs(HOME7), 0.0)
    with pytest.raises(ValueError):
        PolicyRunner(_Constant(), LIMITS, "ensemble", ensemble_m=np.nan)


def test_non_finite_policy_output_is_a_hold():
    policy = _Constant()
    policy.value = np.full(7, np.nan)
    out = PolicyRunner(policy, LIMITS, "chunk").step(obs(HOME7), 0.0)
    assert out.safety.rejected
    np.testing.assert_array_equal(out.command, HOME7)
    np.testing.assert_array_equal(out.trajectory, HOME7[None])
    policy.value = HOME7 + 0.01
    out = PolicyRunner(policy, LIMITS, "ensemble").step(obs(HOME7), 0.0)
    assert not out.safety.rejected and out.queried


def _track(id, cls, state, hits, tsu=0.0):
    return SimpleNamespace(id=id, class_name=cls, state=state, hits=hits, time_since_update_s=tsu)


def test_select_target_prefers_confirmed_tracks_with_most_hits():
    tracks = [_track(1, "red_cube", TrackState.CONFIRMED, 5), _track(2, "red_cube", TrackState.CONFIRMED, 9),
              _track(3, "blue_cube", TrackState.CONFIRMED, 50), _track(4, "red_cube", 0, 99),
              _track(5, "red_cube", TrackState.LOST, 30, tsu=1.0)]
    assert select_target(tracks, "red_cube", max_lost_s=0.3).id == 2
    assert select_target(tracks, "red_cube", max_lost_s=2.0).id == 5     # recent enough now
    assert select_target(tracks, "green_cube", 0.3) is None
    assert select_target([], "red_cube", 0.3) is None
    tie = [_track(7, "red_cube", TrackState.CONFIRMED, 5), _track(6, "red_cube", TrackState.CONFIRMED, 5)]
    assert select_target(tie, "red_cube", 0.3).id == 6


def test_track_state_constants_match_the_message():
    Track = pytest.importorskip("fdl_robot_interfaces.msg").Track
    assert (Track.CONFIRMED, Track.LOST) == (TrackState.CONFIRMED, TrackState.LOST)

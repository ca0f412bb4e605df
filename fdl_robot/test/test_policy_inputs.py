"""policy.inputs without ROS: joint-state validation, target and bin choice, freshness."""
import numpy as np
import pytest

from fdl_robot.core.robot import JOINT_NAMES
from fdl_robot.core.tracking import TrackState
from fdl_robot.policy.inputs import InputError, PolicyInputs, PolicyInputsConfig, StepKind, TrackedObject

Q = np.linspace(-1.0, 0.5, 7)


def track(id_, cls="red_cube", state=TrackState.CONFIRMED, hits=5, since_s=0.0, p=(0.5, 0.0, 0.02)):
    return TrackedObject(id_, state, cls, hits, since_s, np.array(p, dtype=float))


def ready(config=None, now_s=10.0, tracks=()):
    inputs = PolicyInputs(config or PolicyInputsConfig())
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=1, now_s=now_s)
    inputs.add_tracks(list(tracks), "base_link", "stamp-A", now_s)
    return inputs


def test_a_bad_joint_state_makes_the_state_invalid_until_a_good_one():
    inputs = ready()
    assert inputs.step(10.0).kind is StepKind.ACT
    with pytest.raises(InputError):
        inputs.add_joint_state(list(JOINT_NAMES), [np.inf] * 7, stamp_ns=2, now_s=10.01)
    step = inputs.step(10.02)
    assert step.kind is StepKind.HOLD and step.stale == JOINT_NAMES    # each non-finite joint, by name
    assert np.array_equal(step.q_hold, Q)
    assert inputs.step(10.04).kind is StepKind.STALE
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=3, now_s=10.05)
    step = inputs.step(10.06)
    assert step.kind is StepKind.ACT and step.recovered


def test_out_of_order_joint_state_is_rejected_until_reset_or_a_jump_back():
    inputs = ready()
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=2_000_000_000, now_s=10.0)
    with pytest.raises(InputError, match="< previous") as err:      # late by 0.5 s: out of order
        inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=1_500_000_000, now_s=10.1)
    assert err.value.reason == "joint_states out of order"
    inputs.reset()
    assert not inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=1_500_000_000, now_s=10.1)
    # back by more than a second (a bag played again): a new time base, no reset needed
    assert inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=100, now_s=10.2)
    assert inputs.step(10.2).kind is StepKind.ACT


def test_joints_from_two_publishers_are_merged_and_each_must_be_fresh():
    """The arm from joint_state_broadcaster (alphabetical order), the gripper from its driver."""
    inputs = PolicyInputs()
    arm = sorted(JOINT_NAMES[:6])
    arm_q = [Q[JOINT_NAMES.index(n)] for n in arm]
    inputs.add_joint_state(arm, arm_q, stamp_ns=1, now_s=10.0)
    step = inputs.step(10.0)
    assert step.kind is StepKind.WAIT and step.stale == (JOINT_NAMES[6],)      # says which is missing
    inputs.add_joint_state([JOINT_NAMES[6], "other_joint"], [Q[6], 5.0], stamp_ns=1, now_s=10.0)
    inputs.add_tracks([], "base_link", "stamp-A", 10.0)
    assert np.array_equal(inputs.q, Q) and inputs.step(10.0).kind is StepKind.ACT
    for t in (10.2, 10.4, 10.6):                 # the arm keeps coming, the gripper driver died
        inputs.add_joint_state(arm, arm_q, stamp_ns=round(t * 1e9), now_s=t)
        inputs.add_tracks([], "base_link", "stamp-A", t)
    step = inputs.step(10.6)
    assert step.kind is StepKind.HOLD and step.stale == (JOINT_NAMES[6],)


def test_wait_without_joint_states_and_hold_once_when_tracks_go_stale():
    inputs = PolicyInputs()
    assert inputs.step(0.0).kind is StepKind.WAIT
    inputs = ready(now_s=10.0)
    assert inputs.step(10.5).kind is StepKind.ACT                       # |age| <= timeout
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=2, now_s=10.6)
    step = inputs.step(10.6)
    assert step.kind is StepKind.HOLD and step.stale == ("tracks",)


def test_stale_tracks_only_mean_no_target_without_require_tracks():
    config = PolicyInputsConfig(require_tracks=False, input_timeout_s=0.5)
    inputs = ready(config, tracks=[track(1)])
    assert inputs.step(10.0).observation.has_target
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=2, now_s=11.0)
    step = inputs.step(11.0)
    assert step.kind is StepKind.ACT and not step.observation.has_target and step.source_stamp is None


def test_target_is_the_most_hit_eligible_track_and_carries_its_stamp():
    tracks = [track(1, hits=3), track(2, hits=9, state=TrackState.LOST, since_s=0.5),
              track(3, hits=7, p=(0.4, 0.1, 0.02)), track(4, cls="cube", hits=20),
              track(5, hits=30, state=TrackState.TENTATIVE)]
    step = ready(tracks=tracks).step(10.0)
    assert np.allclose(step.observation.target_p_base_m, (0.4, 0.1, 0.02))
    assert step.source_stamp == "stamp-A"
    assert np.allclose(step.observation.joint_state, Q)


def test_bin_from_its_confirmed_track_until_reset():
    inputs = ready(tracks=[track(7, cls="bin", p=(0.5, 0.3, 0.0))])
    assert np.allclose(inputs.step(10.0).observation.bin_p_base_m, (0.5, 0.3, 0.0))
    inputs.add_tracks([], "base_link", "stamp-B", 10.1)                  # the bin stays where it was
    assert np.allclose(inputs.step(10.1).observation.bin_p_base_m, (0.5, 0.3, 0.0))
    inputs.reset()
    assert np.allclose(inputs.step(10.1).observation.bin_p_base_m, PolicyInputsConfig().bin_position)


def test_bad_tracks_are_rejected_and_an_unknown_class_reported_once():
    inputs = ready()
    with pytest.raises(InputError, match="frame 'map'"):
        inputs.add_tracks([track(1)], "map", "s", 10.0)
    with pytest.raises(InputError, match="non-finite"):
        inputs.add_tracks([track(1, p=(np.nan, 0, 0))], "base_link", "s", 10.0)
    assert inputs.add_tracks([track(1, cls="cube")], "", "s", 10.0) is True
    assert inputs.add_tracks([track(1, cls="cube")], "", "s", 10.1) is False
    assert inputs.set_target_class("cube") and inputs.target is None
    inputs.add_tracks([track(1, cls="cube")], "", "s", 10.2)
    assert inputs.target is not None and not inputs.set_target_class("cube")


def test_the_observation_carries_the_joint_states_measurement_time_not_the_steps():
    """The policy's velocity is a finite difference over measurement times: steps that come
    early or late (a loaded machine, event-driven commands) must not distort it."""
    inputs = ready()
    inputs.add_joint_state(JOINT_NAMES, np.zeros(7), 10_020_000_000, 10.03)
    for now_s in (10.031, 10.047, 10.049):
        assert inputs.step(now_s).observation.stamp_s == pytest.approx(10.02)


def moving(v, P_vv=1e-4, P_pp=1e-5, P_pv=2e-5):
    """A track moving with velocity ``v`` (m/s) and a diagonal state covariance."""
    P = np.zeros((6, 6))
    P[:3, :3], P[3:, 3:] = P_pp * np.eye(3), P_vv * np.eye(3)
    P[:3, 3:] = P[3:, :3] = P_pv * np.eye(3)
    return TrackedObject(1, TrackState.CONFIRMED, "red_cube", 5, 0.0, (0.5, 0.0, 0.02), tuple(v), P)


def test_the_target_is_predicted_to_the_command_time_from_its_stamp():
    inputs = PolicyInputs(PolicyInputsConfig())
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=1, now_s=10.0)
    inputs.add_tracks([moving((0.08, 0.0, 0.0))], "base_link", "stamp", now_s=10.0, stamp_s=9.95)
    obs = inputs.step(10.01).observation                    # 60 ms after the image
    h = 0.06
    np.testing.assert_allclose(obs.target_p_base_m, [0.5 + 0.08 * h, 0.0, 0.02], atol=1e-12)
    # Sigma = P_pp + h (P_pv + P_vp) + h^2 P_vv
    np.testing.assert_allclose(obs.target_covariance_m2, (1e-5 + 2 * h * 2e-5 + h * h * 1e-4) * np.eye(3))


def test_no_prediction_for_an_insignificant_velocity_or_when_switched_off():
    # 5 mm/s with sigma_v 10 mm/s per axis: d^2 = 0.25 < 11.3, so the position is used as it is
    for config, v in ((PolicyInputsConfig(), 0.005), (PolicyInputsConfig(target_prediction=False), 0.5)):
        inputs = PolicyInputs(config)
        inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=1, now_s=10.0)
        inputs.add_tracks([moving((v, 0.0, 0.0))], "base_link", "stamp", now_s=10.0, stamp_s=9.9)
        obs = inputs.step(10.0).observation
        np.testing.assert_array_equal(obs.target_p_base_m, [0.5, 0.0, 0.02])
        np.testing.assert_array_equal(obs.target_covariance_m2, 1e-5 * np.eye(3))


def test_the_prediction_horizon_is_capped():
    inputs = PolicyInputs(PolicyInputsConfig(target_prediction_max_s=0.1))
    inputs.add_joint_state(list(JOINT_NAMES), Q.tolist(), stamp_ns=1, now_s=10.0)
    inputs.add_tracks([moving((0.5, 0.0, 0.0))], "base_link", "stamp", now_s=10.0, stamp_s=9.0)   # 1 s old
    np.testing.assert_allclose(inputs.step(10.0).observation.target_p_base_m, [0.55, 0.0, 0.02])
    with pytest.raises(ValueError, match="target_prediction_max_s"):
        PolicyInputsConfig(target_prediction_max_s=-1.0)

"""core.safety: position box, rate limit, tracking-error bound, non-finite hold, trajectories,
watchdog."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fdl_robot.core.safety import (JointLimits, SafetyLayer, Watchdog, clip_to_limits,
                                   limit_tracking_error, limit_trajectory, limit_velocity)

LIMITS = JointLimits(lower_rad=[-1.0, -2.0, 0.0], upper_rad=[1.0, 2.0, 1.0],
                     max_velocity_rad_s=[1.0, 2.0, 5.0], max_tracking_error_rad=[0.1, 0.2, 0.5])
DT = 0.02
finite = st.floats(-10, 10, allow_nan=False)


def test_limits_validate_their_input():
    with pytest.raises(ValueError, match="one entry per joint"):
        JointLimits([0, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="one entry per joint"):
        JointLimits([0, 0], [1, 1], [1, 1], [1])
    with pytest.raises(ValueError, match="lower limit above"):
        JointLimits([0, 2], [1, 1], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="velocities must be positive"):
        JointLimits([0, 0], [1, 1], [1, 0], [1, 1])
    with pytest.raises(ValueError, match="tracking errors must be positive"):
        JointLimits([0, 0], [1, 1], [1, 1], [1, -1])
    with pytest.raises(ValueError, match="finite"):
        JointLimits([0, -np.inf], [1, 1], [1, 1], [1, 1])


def test_clip_to_limits_is_the_box():
    np.testing.assert_array_equal(clip_to_limits([-5.0, 0.5, 3.0], LIMITS), [-1.0, 0.5, 1.0])
    batch = clip_to_limits(np.array([[2.0, -3.0, 0.5], [0.0, 0.0, -1.0]]), LIMITS)
    np.testing.assert_array_equal(batch, [[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])


def test_limit_velocity_moves_at_most_vmax_dt_toward_the_target():
    q_prev = np.zeros(3)
    q = limit_velocity([1.0, -1.0, 0.01], q_prev, LIMITS.max_velocity_rad_s, DT)
    # joint 0: 1 rad/s * 0.02 s; joint 1: 2 rad/s * 0.02 s; joint 2: within 5 * 0.02 = 0.1
    np.testing.assert_allclose(q, [0.02, -0.04, 0.01])
    with pytest.raises(ValueError):
        limit_velocity(q, q_prev, LIMITS.max_velocity_rad_s, 0.0)


def test_safety_filter_stages_and_flags():
    layer = SafetyLayer(LIMITS)
    r = layer.filter([5.0, 0.01, 0.5], [0.99, 0.0, 0.5], DT)
    # joint 0: clipped to 1.0, then 0.99 -> 1.0 is within 0.02: reaches the limit exactly
    np.testing.assert_allclose(r.q_cmd_rad, [1.0, 0.01, 0.5])
    assert not r.rejected and r.position_clipped.tolist() == [True, False, False]
    assert not r.velocity_limited.any() and r.modified
    r = layer.filter([0.0, 1.0, 0.5], [0.0, 0.0, 0.5], DT)
    assert r.velocity_limited.tolist() == [False, True, False]
    assert not layer.filter([0.0, 0.0, 0.5], [0.0, 0.0, 0.5], DT).modified


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_target_is_a_hold_at_the_measured_position(bad):
    q_meas = np.array([0.3, -0.2, 0.1])
    for q_cmd_prev in (None, q_meas + 0.05):
        r = SafetyLayer(LIMITS).filter([0.0, bad, 0.0], q_meas, DT, q_cmd_prev)
        assert r.rejected and r.modified
        np.testing.assert_array_equal(r.q_cmd_rad, q_meas)


def test_filter_refuses_a_non_finite_previous_position_and_wrong_sizes():
    layer = SafetyLayer(LIMITS)
    with pytest.raises(ValueError, match="cannot hold"):
        layer.filter([0, 0, 0], [0, np.nan, 0], DT)
    with pytest.raises(ValueError, match="expected 3 joints"):
        layer.filter([0, 0], [0, 0, 0], DT)
    with pytest.raises(ValueError, match="previous command 2"):
        layer.filter([0, 0, 0], [0, 0, 0], DT, [0, 0])


def test_rate_limit_is_relative_to_the_previous_command():
    """A servo lagging its command by 0.05 rad still gets commands v_max dt apart."""
    layer = SafetyLayer(LIMITS)
    q_meas = np.zeros(3)
    q_cmd_prev = np.array([0.05, 0.0, 0.0])
    r = layer.filter([1.0, 0.0, 0.0], q_meas, DT, q_cmd_prev)
    np.testing.assert_allclose(r.q_cmd_rad, [0.07, 0.0, 0.0])     # 0.05 + 1 rad/s * 0.02 s
    assert r.velocity_limited.tolist() == [True, False, False] and not r.tracking_limited.any()
    # without a previous command (first step, after a hold) the reference is q_meas
    np.testing.assert_allclose(layer.filter([1.0, 0.0, 0.0], q_meas, DT).q_cmd_rad, [0.02, 0, 0])
    # a non-finite previous command is ignored the same way
    np.testing.assert_allclose(layer.filter([1.0, 0.0, 0.0], q_meas, DT, [np.nan, 0, 0]).q_cmd_rad,
                               [0.02, 0, 0])


def test_a_previous_command_far_from_the_robot_is_not_a_reference():
    """After a reset or teleport the rate limit restarts from the measured position."""
    layer = SafetyLayer(LIMITS)
    q_meas = np.zeros(3)
    far = np.array([0.5, 0.0, 0.0])                               # 0.5 > e_max = 0.1 (joint 0)
    r = layer.filter(far, q_meas, DT, far)
    np.testing.assert_allclose(r.q_cmd_rad, [0.02, 0.0, 0.0])     # v_max dt from q_meas
    assert not r.tracking_limited.any()


def test_a_blocked_joint_is_never_commanded_further_than_e_max_from_where_it_is():
    layer = SafetyLayer(LIMITS)
    q_meas = np.zeros(3)                                          # the joints do not move
    q_cmd = None
    for _ in range(100):
        r = layer.filter([1.0, 2.0, 1.0], q_meas, DT, q_cmd)
        q_cmd = r.q_cmd_rad
    np.testing.assert_allclose(q_cmd, LIMITS.max_tracking_error_rad)
    assert r.tracking_limited.all() and r.modified
    np.testing.assert_allclose(limit_tracking_error([1.0, -1.0, 0.1], q_meas, [0.1, 0.2, 0.5]),
                               [0.1, -0.2, 0.1])


def test_previous_position_outside_the_box_moves_back_at_bounded_speed():
    r = SafetyLayer(LIMITS).filter([0.0, 0.0, 0.5], [1.5, 0.0, 0.5], DT)
    np.testing.assert_allclose(r.q_cmd_rad, [1.48, 0.0, 0.5])   # no jump to 1.0


@settings(max_examples=200, deadline=None)
@given(target=arrays(np.float64, 3, elements=finite), prev=arrays(np.float64, 3, elements=finite),
       meas_offset=arrays(np.float64, 3, elements=st.floats(-0.3, 0.3)), dt=st.floats(1e-3, 0.1))
def test_filter_properties(target, prev, meas_offset, dt):
    """|q_cmd - q_ref| <= v_max dt while the tracking bound does not bind (q_ref = q_cmd_prev
    when it is within e_max of q_meas, else q_meas);
    |q_cmd - q_meas| <= e_max; inside the box when q_cmd_prev and q_meas are; a no-op when
    the target is allowed."""
    layer = SafetyLayer(LIMITS)
    prev_in = clip_to_limits(prev, LIMITS)
    meas_in = clip_to_limits(prev_in + meas_offset, LIMITS)
    r = layer.filter(target, meas_in, dt, prev_in)
    q = r.q_cmd_rad
    bound = ~r.tracking_limited
    ref = prev_in if np.all(np.abs(prev_in - meas_in) <= LIMITS.max_tracking_error_rad) else meas_in
    assert np.all(np.abs(q - ref)[bound] <= (LIMITS.max_velocity_rad_s * dt + 1e-12)[bound])
    assert np.all(np.abs(q - meas_in) <= LIMITS.max_tracking_error_rad + 1e-12)
    assert LIMITS.contains(q)
    q_out = layer.filter(target, prev, dt).q_cmd_rad            # no previous command: from q_meas
    assert np.all(np.abs(q_out - prev) <= np.minimum(LIMITS.max_velocity_rad_s * dt,
                                                     LIMITS.max_tracking_error_rad) + 1e-12)
    # a target already in the box and within reach passes unchanged
    reachable = prev_in + np.clip(target, -1, 1) * 0.5 * LIMITS.max_velocity_rad_s * dt
    reachable = clip_to_limits(reachable, LIMITS)
    r = layer.filter(reachable, prev_in, dt)
    np.testing.assert_allclose(r.q_cmd_rad, reachable)
    assert not r.modified


@settings(max_examples=100, deadline=None)
@given(targets=arrays(np.float64, (8, 3), elements=finite),
       start=arrays(np.float64, 3, elements=finite))
def test_limit_trajectory_bounds_every_step(targets, start):
    start = clip_to_limits(start, LIMITS)
    out = limit_trajectory(targets, start, LIMITS, DT)
    steps = np.diff(np.vstack([start, out]), axis=0)
    assert np.all(np.abs(steps) <= LIMITS.max_velocity_rad_s * DT + 1e-12)
    assert np.all(LIMITS.contains(out))


def test_limit_trajectory_holds_on_non_finite_rows_and_converges():
    targets = np.array([[0.5, 0.0, 0.5]] * 30 + [[np.nan, 0.0, 0.0]] + [[0.5, 0.0, 0.5]] * 30)
    out = limit_trajectory(targets, np.zeros(3), LIMITS, DT)
    np.testing.assert_array_equal(out[30], out[29])           # the NaN row holds
    np.testing.assert_allclose(out[-1], [0.5, 0.0, 0.5])      # 0.5 rad at 0.02 rad/step: reached
    np.testing.assert_allclose(out[:25, 0], 0.02 * np.arange(1, 26))
    with pytest.raises(ValueError, match="finite"):
        limit_trajectory(targets, [np.nan, 0, 0], LIMITS, DT)


def test_watchdog_freshness_is_a_pure_function_of_the_times():
    wd = Watchdog(timeout_s=0.5)
    s = wd.check(10.0, {"joint_states": 9.8, "tracks": 9.4})
    assert not s.ok and s.stale == ("tracks",)
    assert s.ages_s == pytest.approx({"joint_states": 0.2, "tracks": 0.6})
    assert wd.check(10.0, {"joint_states": 9.5}).ok                   # exactly the timeout
    assert wd.check(10.0, {"joint_states": None}).stale == ("joint_states",)   # never received
    assert wd.check(10.0, {"joint_states": 11.0}).stale == ("joint_states",)   # clock jumped back
    assert wd.check(10.0, {"joint_states": 10.1}).ok                  # small skew is fine
    invalid = wd.check(10.0, {"joint_states": 9.9}, valid={"joint_states": False})
    assert invalid.stale == ("joint_states",)
    with pytest.raises(ValueError):
        Watchdog(timeout_s=0.0)


def test_watchdog_reports_each_stale_episode_once():
    wd = Watchdog(timeout_s=0.5)
    seen = []
    for now, last in [(0.0, 0.0), (0.1, 0.1), (0.7, 0.1), (0.8, 0.1), (0.9, 0.85), (1.0, 0.95),
                      (2.0, 0.95), (2.1, 0.95)]:
        s = wd.update(now, {"joint_states": last})
        seen.append((s.ok, s.entered, s.recovered))
    assert seen == [(True, False, False), (True, False, False), (False, True, False),
                    (False, False, False), (True, False, True), (True, False, False),
                    (False, True, False), (False, False, False)]
    first = Watchdog(timeout_s=0.5).update(0.0, {"joint_states": None})
    assert first.entered                                  # starting stale is an episode too
    wd.reset()
    assert wd.update(3.0, {"joint_states": 0.0}).entered

"""Teleoperation library (no ROS): Joy mapping, twist limits, integration, workspace box, IK,
the safety layer, input freshness and the hold logic (fdl_robot.teleop)."""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.core.kinematics import HOME_QPOS_RAD, rotation_exp, rotation_log
from fdl_robot.core.safety import SafetyConfig
from fdl_robot.policy.inputs import InputError, StepKind
from fdl_robot.policy.joint_states import JointStateMerger
from fdl_robot.core.robot import ARM_JOINT_NAMES, GRIPPER_JOINT_NAME, JOINT_NAMES
from fdl_robot.teleop.cartesian import (CartesianController, Teleop, TeleopConfig, clamp_to_workspace,
                                        integrate_pose, limit_twist, twist_in_base)
from fdl_robot.teleop.joy import JoyMapping, apply_deadzone, joy_to_command

CONFIG = TeleopConfig()
DT = CONFIG.dt_s
LIMITS = SafetyConfig().limits()            # policy_node's limits
HOME7 = np.append(HOME_QPOS_RAD, 0.0)


def pad(axes=None, buttons=None):
    """A 6-axis, 11-button Joy message (the default mapping's pad) with the given entries set."""
    a, b = [0.0] * 6, [0] * 11
    for i, v in (axes or {}).items():
        a[i] = v
    for i in buttons or ():
        b[i] = 1
    return a, b


# --- Joy mapping -------------------------------------------------------------------------------

def test_deadzone_is_zero_inside_and_continuous_up_to_full_scale():
    np.testing.assert_allclose(apply_deadzone([0.0, 0.05, 0.1, 0.55, 1.0, -1.0, -0.1001], 0.1),
                               [0.0, 0.0, 0.0, 0.5, 1.0, -1.0, -0.0001 / 0.9], atol=1e-12)
    np.testing.assert_allclose(apply_deadzone([0.3, -0.7], 0.0), [0.3, -0.7])


def test_joy_axes_map_to_the_twist_with_scales_turbo_and_the_deadman():
    m = JoyMapping()
    axes, buttons = pad({1: 1.0, 0: -0.55, 3: 0.05, 2: 1.0}, [m.enable_button])
    cmd = joy_to_command(axes, buttons, m)
    # left stick up = +x (0.1 m/s), left stick right (-0.55) = -y; right stick: z in the deadzone, yaw
    np.testing.assert_allclose(cmd.twist, [0.1, -0.05, 0.0, 0.0, 0.0, 0.5], atol=1e-12)
    assert cmd.enabled and cmd.gripper is None
    turbo = joy_to_command(*pad({1: 1.0}, [m.enable_button, m.turbo_button]), m)
    assert turbo.twist[0] == pytest.approx(0.1 * m.turbo_factor)
    released = joy_to_command(*pad({1: 1.0}), m)
    assert not released.enabled                          # deadman not held
    free = joy_to_command(*pad({1: 1.0}), JoyMapping(require_enable_button=False))
    assert free.enabled


def test_gripper_buttons_request_close_open_or_nothing():
    m = JoyMapping()
    assert joy_to_command(*pad(buttons=[m.gripper_close_button]), m).gripper == 1.0
    assert joy_to_command(*pad(buttons=[m.gripper_open_button]), m).gripper == 0.0
    assert joy_to_command(*pad(buttons=[m.gripper_close_button, m.gripper_open_button]), m).gripper is None
    assert joy_to_command(*pad(), m).gripper is None
    assert joy_to_command(*pad(buttons=[0]), JoyMapping(gripper_close_button=-1)).gripper is None


def test_joy_with_nan_or_too_few_axes_is_refused_and_bad_mappings_fail_at_construction():
    with pytest.raises(ValueError, match="non-finite"):
        joy_to_command([0.0, float("nan"), 0, 0, 0, 0], [0] * 11)
    with pytest.raises(ValueError, match="2 axes, the mapping reads axis 3"):
        joy_to_command([0.0, 0.0], [0] * 11)
    joy_to_command([0.0, 0.0], [], JoyMapping(axis_linear=(1, 0, -1), axis_angular=(-1, -1, -1)))  # fits
    with pytest.raises(ValueError, match="deadzone"):
        JoyMapping(deadzone=1.0)
    with pytest.raises(ValueError, match="require_enable_button"):
        JoyMapping(enable_button=-1)
    with pytest.raises(ValueError, match="3 entries"):
        JoyMapping(axis_linear=(1, 0))


# --- pure Cartesian functions ------------------------------------------------------------------

def test_twist_limits_keep_the_direction():
    t = limit_twist([3.0, 4.0, 0.0, 0.0, 0.0, -2.0], 0.25, 1.0)
    np.testing.assert_allclose(t, [0.15, 0.2, 0.0, 0.0, 0.0, -1.0])
    slow = [0.01, 0.0, 0.02, 0.1, 0.0, 0.0]
    np.testing.assert_array_equal(limit_twist(slow, 0.25, 1.0), slow)


def test_integration_moves_the_position_and_turns_about_base_axes():
    R0 = rotation_exp([np.pi, 0.0, 0.0])                # tool pointing down
    p, R = integrate_pose([0.5, 0.1, 0.3], R0, [0.1, 0.0, -0.2, 0.0, 0.0, 0.5], 0.02)
    np.testing.assert_allclose(p, [0.502, 0.1, 0.296])
    np.testing.assert_allclose(R, rotation_exp([0, 0, 0.01]) @ R0, atol=1e-15)
    # a tool-frame twist is the base twist [R v; R w]: tool z (pointing down) = -z_base
    tb = twist_in_base([0.0, 0.0, 0.1, 0.0, 0.0, 0.3], R0, "tool")
    np.testing.assert_allclose(tb, [0.0, 0.0, -0.1, 0.0, 0.0, -0.3], atol=1e-15)
    with pytest.raises(ValueError, match="twist frame"):
        twist_in_base(np.zeros(6), R0, "world")


def test_workspace_clamp():
    np.testing.assert_array_equal(clamp_to_workspace([0.9, -0.5, 0.3], [0.2, -0.45, 0.015], [0.8, 0.55, 0.55]),
                                  [0.8, -0.45, 0.3])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="twist_frame"):
        TeleopConfig(twist_frame="world")
    with pytest.raises(ValueError, match="workspace"):
        TeleopConfig(workspace_min_m=(0.9, 0.0, 0.0))
    with pytest.raises(ValueError, match="command_timeout_s"):
        TeleopConfig(command_timeout_s=0.0)


# --- the controller: IK and the safety layer ------------------------------------------------

def drive(controller: CartesianController, q: np.ndarray, twist, steps: int, gripper=None):
    """A perfect position servo: the measured state is the last command."""
    outs = []
    for _ in range(steps):
        out = controller.step(q, twist, gripper)
        outs.append(out)
        q = out.command
    return q, outs


def test_a_twist_moves_the_tcp_by_v_t_and_the_ik_reaches_each_target():
    c = CartesianController(CONFIG, LIMITS)
    p0, R0 = c.tcp_pose(HOME_QPOS_RAD)
    q, outs = drive(c, HOME7, [0.05, -0.1, 0.02, 0.0, 0.0, 0.0], 50)     # 1 s
    p1, R1 = c.tcp_pose(q[:6])
    np.testing.assert_allclose(p1 - p0, [0.05, -0.1, 0.02], atol=1e-3)
    assert np.linalg.norm(rotation_log(R1 @ R0.T)) < 2e-3                 # no angular command: no turn
    for out in outs:                                                     # every step's IK hit its target
        p, R = c.tcp_pose(out.command[:6])
        assert out.ik.converged and not out.rebased
        assert np.linalg.norm(p - out.target_p) < CONFIG.ik_position_tolerance_m
        assert np.linalg.norm(rotation_log(R @ out.target_R.T)) < CONFIG.ik_orientation_tolerance_rad
    # a yaw rate in base axes turns the tool about the vertical, the TCP's position stays
    q2, _ = drive(c, q, [0.0, 0.0, 0.0, 0.0, 0.0, 0.5], 25)                # 0.5 s at 0.5 rad/s
    p2, R2 = c.tcp_pose(q2[:6])
    np.testing.assert_allclose(rotation_log(R2 @ R1.T), [0.0, 0.0, 0.25], atol=2e-3)
    np.testing.assert_allclose(p2, p1, atol=5e-4)


def test_a_zero_twist_reproduces_the_command_exactly():
    c = CartesianController(CONFIG, LIMITS)
    q, _ = drive(c, HOME7, [0.1, 0.0, 0.0, 0.0, 0.0, 0.0], 10)
    q_still, outs = drive(c, q, np.zeros(6), 100)
    assert all(np.array_equal(o.command, q) for o in outs)                # no drift


def test_commands_obey_the_safety_layer_and_the_target_does_not_wind_up():
    slow = SafetyConfig(max_velocity_rad_s=(0.05,) * 6 + (5.0,)).limits()
    c = CartesianController(CONFIG, slow)
    q, outs = drive(c, HOME7, [10.0, 0.0, 0.0, 0.0, 0.0, 0.0], 50)       # far beyond every limit
    prev = HOME7
    for out in outs:
        assert np.all(np.abs(out.command - prev) <= slow.max_velocity_rad_s * DT + 1e-12)
        assert np.all(np.abs(out.command - prev) <= slow.max_tracking_error_rad + 1e-12)
        assert out.rebased                                                # the joints' speed, not the TCP's
        prev = out.command
    # the TCP moved at most 0.25 m/s (the Cartesian limit) and less (the joint limit)
    moved = np.linalg.norm(c.tcp_pose(q[:6])[0] - c.tcp_pose(HOME_QPOS_RAD)[0])
    assert 0.0 < moved < CONFIG.max_linear_speed_m_s * 1.0
    # stick released: the arm stops at once, no backlog of motion to catch up
    q_stop, outs = drive(c, q, np.zeros(6), 20)
    np.testing.assert_allclose(q_stop, q, atol=1e-9)


def test_the_workspace_box_stops_the_tcp():
    c = CartesianController(CONFIG, LIMITS)
    q, outs = drive(c, HOME7, [0.0, 0.0, -0.25, 0.0, 0.0, 0.0], 150)     # 3 s down: 0.75 m asked
    z = c.tcp_pose(q[:6])[0][2]
    assert abs(z - CONFIG.workspace_min_m[2]) < 2 * CONFIG.ik_position_tolerance_m
    assert outs[-1].clamped and not outs[0].clamped


def test_the_gripper_request_goes_through_the_rate_limit():
    c = CartesianController(CONFIG, LIMITS)
    q, outs = drive(c, HOME7, np.zeros(6), 15, gripper=1.0)
    closures = [o.command[6] for o in outs]
    np.testing.assert_allclose(np.diff([0.0, *closures]), np.minimum(np.diff([0.0, *closures]), 5.0 * DT))
    assert closures[0] == pytest.approx(5.0 * DT) and closures[-1] == 1.0
    np.testing.assert_array_equal(q[:6], HOME7[:6])                       # the arm did not move


# --- Teleop: inputs, freshness, holds ---------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 100.0


def make_teleop(**config):
    return Teleop(TeleopConfig(**config), LIMITS, JointStateMerger(ARM_JOINT_NAMES, GRIPPER_JOINT_NAME))


def state(teleop: Teleop, t: float, q=HOME7) -> None:
    teleop.add_joint_state(JOINT_NAMES, list(q), round(t * 1e9), t)


def test_nothing_before_joint_states_and_nothing_before_a_command():
    tp = make_teleop()
    tp.add_twist([0.1, 0, 0], [0, 0, 0], 0.0)
    assert tp.step(0.0).kind is StepKind.WAIT
    state(tp, 0.5)
    tp.add_twist([0.1, 0, 0], [0, 0, 0], 0.5)
    assert tp.step(0.5).kind is StepKind.ACT
    fresh = make_teleop()
    state(fresh, 0.0)
    step = fresh.step(0.0)
    assert step.kind is StepKind.STALE and step.stale == ("joy stale", "cmd_vel stale")


def test_a_stale_twist_holds_once_then_nothing_and_resumes_from_the_measured_pose():
    tp = make_teleop()
    t = 0.0
    for _ in range(10):
        state(tp, t)
        tp.add_twist([0.1, 0, 0], [0, 0, 0], t)
        step = tp.step(t)
        assert step.kind is StepKind.ACT and step.source == "cmd_vel"
        t += DT
    kinds = []
    while t < 0.2 + CONFIG.command_timeout_s + 3 * DT:                   # the twist stops
        state(tp, t)
        kinds.append(tp.step(t))
        t += DT
    assert [s.kind for s in kinds].count(StepKind.HOLD) == 1
    hold = next(s for s in kinds if s.kind is StepKind.HOLD)
    np.testing.assert_array_equal(hold.q_hold, HOME7)                     # the measured position
    assert "cmd_vel stale" in hold.stale
    assert kinds[-1].kind is StepKind.STALE
    # within the timeout it still acted (with the last twist), after it held
    elapsed = [s.kind for s in kinds]
    assert elapsed.index(StepKind.HOLD) <= round(CONFIG.command_timeout_s / DT) + 1
    tp.add_twist([0.0, 0.0, 0.0], [0, 0, 0], t)
    step = tp.step(t)
    assert step.kind is StepKind.ACT and step.recovered
    np.testing.assert_allclose(step.command, HOME7, atol=1e-12)          # restarts where the arm is


def test_the_deadman_gates_the_joystick_and_the_joystick_wins_over_cmd_vel():
    tp = make_teleop()
    m = tp.joy_mapping
    state(tp, 0.0)
    tp.add_joy(*pad({1: 1.0}, [m.enable_button]), 0.0)
    tp.add_twist([0.0, 0.1, 0.0], [0, 0, 0], 0.0)
    step = tp.step(0.0)
    assert step.source == "joy" and step.output.target_p[0] > tp.controller.tcp_pose(HOME_QPOS_RAD)[0][0]
    tp.add_joy(*pad({1: 1.0}), DT)                                        # deadman released
    step = tp.step(DT)
    assert step.source == "cmd_vel"                                       # the fresh twist takes over
    tp.twist_arrival_s = None                                             # ... and without it:
    step = tp.step(2 * DT)
    assert step.kind is StepKind.HOLD and "deadman released" in step.stale
    assert tp.step(3 * DT).kind is StepKind.STALE


def test_stale_joint_states_hold_once_even_with_a_fresh_command():
    tp = make_teleop()
    state(tp, 0.0)
    t = 0.0
    kinds = []
    while t < CONFIG.input_timeout_s + 0.1:
        tp.add_twist([0.05, 0, 0], [0, 0, 0], t)
        kinds.append(tp.step(t).kind)
        t += DT
    assert kinds[0] is StepKind.ACT
    assert kinds.count(StepKind.HOLD) == 1 and kinds[-1] is StepKind.STALE


def test_invalid_inputs_are_rejected_and_do_not_refresh():
    tp = make_teleop()
    state(tp, 0.0)
    with pytest.raises(InputError) as err:
        tp.add_twist([float("nan"), 0, 0], [0, 0, 0], 0.0)
    assert err.value.reason == "bad cmd_vel"
    with pytest.raises(InputError) as err:
        tp.add_twist([0, 0, 0], [0, float("inf"), 0], 0.0)
    with pytest.raises(InputError) as err:
        tp.add_joy([float("nan")] * 6, [0] * 11, 0.0)
    assert err.value.reason == "bad joy"
    assert tp.step(0.0).kind is StepKind.STALE                           # neither counted as fresh
    with pytest.raises(InputError):
        tp.add_joint_state(JOINT_NAMES, [float("nan")] * 7, 1, 0.0)


def test_a_gripper_press_while_idle_moves_the_gripper_then_holds():
    tp = make_teleop()
    m = tp.joy_mapping
    t, q = 0.0, HOME7.copy()
    tp.add_joy(*pad(buttons=[m.gripper_close_button]), t)                 # no deadman
    steps = []
    for _ in range(30):
        state(tp, t, q)
        step = tp.step(t)
        steps.append(step)
        if step.kind is StepKind.ACT:
            q = step.command                                              # a perfect servo
        t += DT
    acting = [s for s in steps if s.kind is StepKind.ACT]
    assert all(s.source == "gripper" for s in acting) and acting[-1].command[6] == pytest.approx(1.0)
    assert all(np.array_equal(s.command[:6], HOME7[:6]) for s in acting)
    assert [s.kind for s in steps].count(StepKind.HOLD) == 1              # reached: one hold, then quiet
    assert steps[-1].kind is StepKind.STALE


"""teleop_node with real rclpy pub/sub and synthetic messages: a probe plays the robot (JointState,
a perfect servo echoing the commands back) and the operator (Joy, Twist), and records the arm's and
the gripper's commands."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import JointState, Joy  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from fdl_robot.core import kinematics as kin  # noqa: E402
from fdl_robot.core.robot_model import ur5e_gripper  # noqa: E402
from fdl_robot.ros.parameter_check import ParameterError  # noqa: E402
from fdl_robot.ros.parameters import defaults  # noqa: E402
from fdl_robot.ros.teleop_node import TeleopNode  # noqa: E402

pytestmark = pytest.mark.ros

P = defaults("teleop_node")
NAMES = P["arm_joint_names"] + [P["gripper_joint"]]
DT = 1.0 / P["control_rate_hz"]
VMAX = np.array(P["max_velocity_rad_s"])
TIMEOUT_S = P["command_timeout_s"]
HOME7 = np.append(kin.HOME_QPOS_RAD, 0.0)
ENABLE, CLOSE = P["joy_enable_button"], P["joy_gripper_close_button"]


def tcp(q) -> np.ndarray:
    return ur5e_gripper().frame_pose(np.asarray(q[:6]), "tcp")[:3, 3]


def is_hold(msg: JointTrajectory) -> bool:
    return len(msg.points) == 1 and list(msg.points[0].velocities) == [0.0] * len(msg.joint_names)


class Operator:
    """The probe: robot (joint states at 100 Hz, a perfect servo) and operator (Joy, Twist)."""

    def __init__(self, ros: RosHarness, params: dict | None = None, stamped: bool = False):
        self.ros = ros
        self.node = ros.add(TeleopNode, {"cmd_vel_stamped": stamped, **(params or {})})
        self.js_pub = ros.publisher(JointState, "joint_states")
        self.joy_pub = ros.publisher(Joy, "joy")
        self.twist_pub = ros.publisher(TwistStamped if stamped else Twist, "cmd_vel")
        self.commands: list[JointTrajectory] = ros.collect(JointTrajectory, P["arm_trajectory_topic"])
        self.gripper: list[JointTrajectory] = ros.collect(JointTrajectory, P["gripper_trajectory_topic"])
        for pub in (self.js_pub, self.joy_pub, self.twist_pub):
            ros.wait_for_subscribers(pub)
        self.q = HOME7.copy()
        self.arrivals: list[float] = []           # (probe's) time each arm command arrived

    def joy(self, axes=None, buttons=()) -> Joy:
        msg = Joy(axes=[0.0] * 6, buttons=[0] * 11)
        for i, v in (axes or {}).items():
            msg.axes[i] = float(v)
        for i in buttons:
            msg.buttons[i] = 1
        return msg

    def run(self, seconds: float, joy: Joy | None = None, twist=None, echo: bool = True) -> None:
        """Joint states at 100 Hz; Joy and/or Twist at 50 Hz, for ``seconds``."""
        end = time.monotonic() + seconds
        next_js = next_cmd = time.monotonic()
        seen = len(self.commands)
        while time.monotonic() < end:
            now = time.monotonic()
            while seen < len(self.commands):
                self.arrivals.append(now)
                seen += 1
            if echo and self.commands:
                self.q[:6] = self.commands[-1].points[0].positions
                if self.gripper:
                    self.q[6] = self.gripper[-1].points[0].positions[0]
            if now >= next_js:
                msg = JointState(name=NAMES, position=[float(v) for v in self.q])
                msg.header.stamp = self.ros.probe.get_clock().now().to_msg()
                self.js_pub.publish(msg)
                next_js = now + 0.01
            if now >= next_cmd:
                if joy is not None:
                    self.joy_pub.publish(joy)
                if twist is not None:
                    self.twist_pub.publish(twist)
                next_cmd = now + 0.02
            self.ros.executor.spin_once(timeout_sec=0.002)


def twist_msg(v=(0.0, 0.0, 0.0), w=(0.0, 0.0, 0.0)) -> Twist:
    msg = Twist()
    msg.linear.x, msg.linear.y, msg.linear.z = (float(x) for x in v)
    msg.angular.x, msg.angular.y, msg.angular.z = (float(x) for x in w)
    return msg


def test_a_twist_moves_the_tcp_in_its_direction_within_the_safety_limits():
    with RosHarness() as ros:
        op = Operator(ros)
        op.run(0.3)                                       # joint states alone: nothing is commanded
        assert op.commands == []
        start = tcp(op.q)
        op.run(1.5, twist=twist_msg(v=(0.0, 0.08, -0.04)))
        moved = tcp(op.q) - start
        assert len(op.commands) >= 0.5 * 1.5 / DT
        direction = np.array([0.0, 0.08, -0.04]) / np.linalg.norm([0.0, 0.08, -0.04])
        assert moved @ direction > 0.05                                       # ~0.13 m at full rate
        assert np.linalg.norm(moved - (moved @ direction) * direction) < 0.005  # and along it
        arm = np.array([m.points[0].positions for m in op.commands])
        assert all(list(m.joint_names) == P["arm_joint_names"] and not is_hold(m) for m in op.commands)
        assert np.all(np.abs(np.diff(arm, axis=0)) <= VMAX[:6] * DT + 1e-9)  # the safety layer's rate limit
        for m in op.commands + op.gripper:                # one point, due dt after the controller takes it
            assert (m.header.stamp.sec, m.header.stamp.nanosec) == (0, 0) and len(m.points) == 1
            assert m.points[0].time_from_start.nanosec == round(DT * 1e9)
        assert op.node.counters["ok cmd_vel"] > 0


def test_stamped_twists_in_the_tool_frame_and_foreign_frames_are_rejected():
    with RosHarness() as ros:
        op = Operator(ros, stamped=True)
        msg = TwistStamped()
        msg.header.frame_id = P["tcp_frame"]
        msg.twist.linear.z = 0.05                         # tool z points down at home
        start = tcp(op.q)
        op.run(1.0, twist=msg)
        assert tcp(op.q)[2] - start[2] < -0.02
        bad = TwistStamped()
        bad.header.frame_id = "world"
        bad.twist.linear.x = 0.05
        n, x = len(op.commands), tcp(op.q)[0]
        op.run(TIMEOUT_S + 0.4, twist=bad)
        assert op.node.counters["bad cmd_vel"] > 10
        after = op.commands[n:]                           # the last good twist until it goes stale, a hold
        assert len(after) <= TIMEOUT_S / DT + 3 and [is_hold(m) for m in after].count(True) == 1
        assert is_hold(after[-1]) and abs(tcp(op.q)[0] - x) < 1e-3      # never along the rejected x


def test_joy_stopping_holds_within_the_timeout_and_then_nothing():
    with RosHarness() as ros:
        op = Operator(ros)
        op.run(0.8, joy=op.joy({1: 1.0}, [ENABLE]))       # left stick up: +x
        assert len(op.commands) > 10 and not any(is_hold(m) for m in op.commands)
        assert tcp(op.q)[0] - tcp(HOME7)[0] > 0.03
        stopped = time.monotonic()
        n = len(op.commands)
        op.run(TIMEOUT_S + 0.5)                           # Joy stops; joint states go on
        after = op.commands[n:]
        holds = [i for i, m in enumerate(after) if is_hold(m)]
        assert len(holds) == 1 and holds[0] == len(after) - 1     # one hold, the last message
        assert op.arrivals[n + holds[0]] - stopped <= TIMEOUT_S + 4 * DT + 0.1
        np.testing.assert_allclose(after[-1].points[0].positions, op.q[:6], atol=1e-9)  # where the arm is
        assert op.node.counters["holds"] == 1


def test_a_released_deadman_holds_even_while_joy_keeps_coming():
    with RosHarness() as ros:
        op = Operator(ros)
        op.run(0.5, joy=op.joy({0: 1.0}, [ENABLE]))       # left stick left: +y
        n = len(op.commands)
        q_before = op.q.copy()
        op.run(0.6, joy=op.joy({0: 1.0}))                 # stick still pushed, deadman released
        after = op.commands[n:]
        assert 1 <= len(after) <= 2 and is_hold(after[-1])   # (a step in flight), then the hold
        assert np.max(np.abs(op.q - q_before)) < VMAX.max() * DT + 1e-9
        assert tcp(q_before)[1] - tcp(HOME7)[1] > 0.015   # it had moved while enabled


def test_the_gripper_button_sends_gripper_commands_to_closed():
    with RosHarness() as ros:
        op = Operator(ros)
        op.run(0.8, joy=op.joy(buttons=[CLOSE]))          # no deadman needed for the gripper
        closures = [m.points[0].positions[0] for m in op.gripper]
        assert list(op.gripper[-1].joint_names) == [P["gripper_joint"]]
        assert closures[-1] == pytest.approx(P["gripper_closed_position"])
        assert np.all(np.diff(closures) <= VMAX[6] * DT + 1e-9) and np.all(np.diff(closures) >= -1e-12)
        arm = np.array([m.points[0].positions for m in op.commands])
        np.testing.assert_allclose(arm, np.broadcast_to(HOME7[:6], arm.shape), atol=1e-9)   # arm stays


def test_nan_messages_are_rejected_counted_and_move_nothing():
    with RosHarness() as ros:
        op = Operator(ros)
        nan_joy = op.joy({1: float("nan")}, [ENABLE])
        op.run(0.5, joy=nan_joy, twist=twist_msg(v=(float("inf"), 0.0, 0.0)))
        assert op.commands == [] and op.gripper == []
        assert op.node.counters["bad joy"] > 5 and op.node.counters["bad cmd_vel"] > 5


def test_stale_joint_states_hold_once_and_a_typo_or_bad_value_fails_at_start():
    with RosHarness() as ros:
        op = Operator(ros, {"input_timeout_s": 0.2})
        op.run(0.5, twist=twist_msg(v=(0.05, 0.0, 0.0)))
        n = len(op.commands)
        end = time.monotonic() + 0.6
        while time.monotonic() < end:                     # the robot goes silent, the operator does not
            op.twist_pub.publish(twist_msg(v=(0.05, 0.0, 0.0)))
            ros.spin_for(0.02)
        after = op.commands[n:]
        assert sum(is_hold(m) for m in after) == 1 and is_hold(after[-1])
        with pytest.raises(ParameterError, match="joy_deadzon"):
            ros.add(TeleopNode, {"joy_deadzon": 0.2})
        with pytest.raises(ValueError, match="^teleop_node: twist_frame must be one of"):
            ros.add(TeleopNode, {"twist_frame": "world"})


def test_the_operator_twist_follows_the_plan_and_corrects_towards_it():
    from fdl_robot.core.kinematics import rotation_exp
    from fdl_robot.eval.ros_teleop_expert import operator_twist

    R = rotation_exp([np.pi, 0.0, 0.0])
    plan_prev, plan = (np.array([0.5, 0.0, 0.2]), R), (np.array([0.502, 0.0, 0.2]), rotation_exp([0, 0, 0.01]) @ R)
    on_plan = operator_twist(plan, plan_prev, plan, 0.02, gain=4.0)         # feed-forward only
    np.testing.assert_allclose(on_plan, [0.1, 0.0, 0.0, 0.0, 0.0, 0.5], atol=1e-9)
    behind = operator_twist(plan, None, (plan[0] - [0.0, 0.01, 0.0], plan[1]), 0.02, gain=4.0)
    np.testing.assert_allclose(behind, [0.0, 0.04, 0.0, 0.0, 0.0, 0.0], atol=1e-9)   # k_p * error


@pytest.mark.slow
def test_the_expert_picks_and_places_as_a_teleoperator_through_teleop_node(tmp_path, capsys):
    """End to end in the simulator: expert -> cmd_vel + joy -> teleop_node -> JointTrajectory -> sim_node."""
    from fdl_robot.eval import ros_teleop_expert

    strip = tmp_path / "strip.png"
    code = ros_teleop_expert.main(["--episodes", "1", "--seed0", "3", "--width", "160", "--height", "120",
                                   "--no-shadows", "--real-time-factor", "2", "--strip", str(strip)])
    out = capsys.readouterr().out
    assert "as a teleoperator (cmd_vel + joy -> teleop_node): 1/1 = 100.0 %" in out, out
    assert code == 0 and strip.stat().st_size > 1000

"""policy_node with real rclpy pub/sub: commands, safety limits, watchdog holds, services,
command timing.

A probe node plays the robot (JointState, optionally echoing the commands back as a
perfect position-controlled arm) and the tracker (TrackArray), and records the
JointTrajectory commands.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
import rclpy.time  # noqa: E402
from fdl_robot_interfaces.msg import Track, TrackArray  # noqa: E402
from fdl_robot_interfaces.srv import SetTargetClass  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from fdl_robot.core import kinematics as kin  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from fdl_robot.ros.conversions import stamp_to_ns  # noqa: E402
from fdl_robot.ros.interfaces import PROFILES  # noqa: E402
from fdl_robot.ros.parameters import defaults  # noqa: E402
from fdl_robot.ros.policy_node import PolicyNode  # noqa: E402

pytestmark = pytest.mark.ros

P = defaults("policy_node")
NAMES = P["arm_joint_names"] + [P["gripper_joint"]]     # joint states: arm, then gripper
ARM = NAMES[:6]
LOWER, UPPER = np.array(P["joint_lower_rad"]), np.array(P["joint_upper_rad"])
VMAX = np.array(P["max_velocity_rad_s"])
EMAX = np.array(P["max_tracking_error_rad"])
DT = 1.0 / P["control_rate_hz"]
TOL = P["command_interval_tolerance_s"]
TIMEOUT_S = 0.3
HOME7 = np.append(kin.HOME_QPOS_RAD, 0.0)
CUBE = np.array([0.5, -0.1, 0.02])
PREGRASP = CUBE + [0.0, 0.0, 0.10]


class Cell:
    """The probe's robot and tracker: publishes state and tracks, collects commands."""

    def __init__(self, ros: RosHarness, params: dict | None = None, node_class=PolicyNode):
        self.ros = ros
        self.node = ros.add(node_class, {"input_timeout_s": TIMEOUT_S, "policy": "scripted", **(params or {})})
        self.js_pub = ros.publisher(JointState, "joint_states")
        self.tracks_pub = ros.publisher(TrackArray, "tracks")
        # the arm's commands (six joints) and the gripper's, on their own controllers' topics
        self.commands: list[JointTrajectory] = ros.collect(JointTrajectory, P["arm_trajectory_topic"])
        self.gripper_commands: list[JointTrajectory] = ros.collect(JointTrajectory,
                                                                   P["gripper_trajectory_topic"])
        ros.wait_for_subscribers(self.js_pub)
        ros.wait_for_subscribers(self.tracks_pub)
        self.q = HOME7.copy()
        self.tracks_stamps: list = []

    def now(self):
        return self.ros.probe.get_clock().now()

    def publish_state(self, q=None, names=NAMES) -> None:
        msg = JointState(name=list(names) + ["some_other_joint"])
        msg.header.stamp = self.now().to_msg()
        msg.position = [float(v) for v in (self.q if q is None else q)] + [0.0]
        self.js_pub.publish(msg)

    def publish_tracks(self, classes=("red_cube",), position=CUBE) -> None:
        msg = TrackArray()
        msg.header.frame_id = "base_link"
        msg.header.stamp = self.now().to_msg()
        for i, name in enumerate(classes):
            t = Track(id=i + 1, state=Track.CONFIRMED, class_name=name, hits=10 + i, score=0.9)
            t.position.x, t.position.y, t.position.z = (float(v) for v in position)
            msg.tracks.append(t)
        self.tracks_stamps.append(msg.header.stamp)
        self.tracks_pub.publish(msg)

    def run(self, seconds: float, state=True, tracks=True, classes=("red_cube",), echo=False):
        """Play the cell for `seconds`: joint states at 100 Hz, tracks at 20 Hz."""
        end = time.monotonic() + seconds
        next_js = next_tr = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            if echo and self.commands and self.commands[-1].points:
                self.q[:6] = self.commands[-1].points[0].positions        # a perfect servo
                if self.gripper_commands:
                    self.q[6] = self.gripper_commands[-1].points[0].positions[0]
            if state and now >= next_js:
                self.publish_state()
                next_js = now + 0.01
            if tracks and now >= next_tr:
                self.publish_tracks(classes)
                next_tr = now + 0.05
            self.ros.executor.spin_once(timeout_sec=0.002)

    def run_camera(self, seconds: float, camera_hz: float = 15.0, phase_s: float = 0.002) -> None:
        """Like the simulator at real time: tracks published on a 20 ms step grid (steps at
        phase_s + k dt, system time; the first step after each 1 / camera_hz), joint states
        every step."""
        t0 = DT * math.ceil(time.time() / DT) + phase_s % DT
        frames = iter(t0 + DT * math.ceil(round(k / camera_hz / DT, 9)) for k in range(10**6))
        next_tr, next_js = next(frames), t0
        end = time.time() + seconds
        while time.time() < end:
            now = time.time()
            if now >= next_js:
                self.publish_state()
                next_js += DT
            if now >= next_tr:
                self.publish_tracks()
                next_tr = next(frames)
            self.ros.executor.spin_once(timeout_sec=0.0005)

    def call(self, srv_type, name: str, request):
        client = self.ros.probe.create_client(srv_type, f"{self.ros.namespace}/policy_node/{name}")
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(request)
        assert self.ros.spin_until(future.done, timeout_s=5.0)
        return future.result()


def is_hold(msg: JointTrajectory) -> bool:
    return len(msg.points) == 1 and list(msg.points[0].velocities) == [0.0] * len(msg.joint_names)


def tfs(point) -> float:
    return point.time_from_start.sec + point.time_from_start.nanosec * 1e-9


def decision_s(msg: JointTrajectory) -> float:
    """When the node decided a command: point 0 is due at decision + dt (module doc)."""
    return stamp_to_ns(msg.header.stamp) * 1e-9 + tfs(msg.points[0]) - DT


class ArrivalsPolicyNode(PolicyNode):
    """policy_node that notes when (node clock) each track array's callback ran."""

    def __init__(self, **kwargs):
        self.arrivals: dict[int, float] = {}
        super().__init__(**kwargs)

    def on_tracks(self, msg):
        self.arrivals.setdefault(stamp_to_ns(msg.header.stamp), self.now_s())
        super().on_tracks(msg)


def pacing_waits(cell: Cell) -> np.ndarray:
    """Per track array: first decision that used it - its arrival at the node, seconds."""
    first: dict[int, float] = {}
    for msg in cell.commands:
        first.setdefault(stamp_to_ns(msg.header.stamp), decision_s(msg))
    return np.array([first[ns] - t for ns, t in cell.node.arrivals.items() if ns in first])


@pytest.mark.parametrize("timing", ["on_tracks", "fixed"])
def test_commands_at_rate_within_limits_toward_the_target(timing):
    with RosHarness() as ros:
        # a generous timeout: this test is about commands, and a loaded CI machine can stall
        # the probe's single-threaded loop past 0.3 s (CI saw one legitimate watchdog hold)
        cell = Cell(ros, {"input_timeout_s": 1.0, "command_timing": timing})
        assert cell.node.command_timing == timing
        cell.run(0.3)                       # let the inputs become fresh
        cell.commands.clear()
        t0 = time.monotonic()
        cell.run(1.0)                       # robot standing still at home
        rate = len(cell.commands) / (time.monotonic() - t0)
        assert 0.5 * P["control_rate_hz"] <= rate <= 1.2 * P["control_rate_hz"], rate
        tracks_ns = {stamp_to_ns(s) for s in cell.tracks_stamps}
        previous = None
        for msg in cell.commands:
            assert list(msg.joint_names) == ARM and not is_hold(msg)       # the arm's joints only
            pts = np.array([p.positions for p in msg.points])
            assert pts.shape[1] == 6 and len(pts) >= 1
            assert np.all((pts >= LOWER[:6] - 1e-9) & (pts <= UPPER[:6] + 1e-9))
            # rate limited command to command and point to point; never further than
            # e_max from the (motionless) robot
            if previous is not None:
                assert np.all(np.abs(pts[0] - previous) <= VMAX[:6] * DT + 1e-9)
            assert np.all(np.abs(np.diff(pts, axis=0)) <= VMAX[:6] * DT + 1e-9)
            assert np.all(np.abs(pts[0] - HOME7[:6]) <= EMAX[:6] + 1e-9)
            previous = pts[0]
            # header.stamp is the source image stamp of the tracks; points due at now + (j+1) dt
            assert stamp_to_ns(msg.header.stamp) in tracks_ns
            times = np.array([tfs(p) for p in msg.points])
            assert DT - 1e-9 <= times[0] <= DT + 0.2
            np.testing.assert_allclose(np.diff(times), DT, atol=1e-6)
        gripper = cell.gripper_commands[-1]                  # the gripper on its own controller
        assert list(gripper.joint_names) == [P["gripper_joint"]]
        assert len(cell.gripper_commands) >= len(cell.commands) - 2

        start = np.linalg.norm(kin.tcp_position(HOME7[:6]) - PREGRASP)
        cell.run(2.0, echo=True)            # a perfect servo follows the commands
        end = np.linalg.norm(kin.tcp_position(cell.q[:6]) - PREGRASP)
        assert start > 0.3 and end < 0.05, (start, end)
        assert cell.node.runner.policy.mode == "target"
        assert cell.node.counters["holds"] == 0


def test_no_tracks_then_stale_joint_states_hold_once_at_the_last_position():
    with RosHarness() as ros:
        cell = Cell(ros)
        cell.run(0.5, tracks=False)         # perception silent: one hold, no motion
        assert len(cell.commands) == 1 and is_hold(cell.commands[0])
        np.testing.assert_allclose(cell.commands[0].points[0].positions, HOME7[:6])

        cell.run(0.4)                       # tracks arrive: commands resume
        assert len(cell.commands) > 5 and not is_hold(cell.commands[-1])
        last_state = cell.q.copy()
        cell.q = HOME7 + 0.05               # published only if the state keeps coming
        n = len(cell.commands)
        cell.run(1.0, state=False)          # joint states stop
        after = cell.commands[n:]
        holds = [m for m in after if is_hold(m)]
        assert len(holds) == 1 and is_hold(after[-1])       # one hold, then silence
        np.testing.assert_allclose(holds[0].points[0].positions, last_state[:6])
        assert len(after) <= TIMEOUT_S / DT + 3             # commands only until the timeout
        assert cell.node.holding

        n = len(cell.commands)
        cell.run(0.3)                       # joint states return: recover
        assert len(cell.commands) - n > 5 and not cell.node.holding
        assert cell.node.counters["holds"] == 2


def test_invalid_joint_states_are_rejected_counted_and_never_move_the_arm():
    with RosHarness() as ros:
        cell = Cell(ros)
        for _ in range(10):                 # a loaded machine may take longer to start
            cell.run(0.3)
            if len(cell.commands) > 3:
                break
        good = cell.q.copy()
        n = len(cell.commands)
        assert n > 3

        bad = cell.q.copy()
        bad[1] = np.nan
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            cell.publish_state(bad)
            cell.publish_tracks()
            ros.spin_for(0.02)
        assert cell.node.counters["bad joint_states"] >= 5
        after = cell.commands[n:]
        first_hold = next(i for i, m in enumerate(after) if is_hold(m))
        assert first_hold <= 3 and len(after) == first_hold + 1   # nothing after the hold
        np.testing.assert_allclose(after[first_hold].points[0].positions, good[:6])
        for msg in cell.commands:                 # nothing ever contained the NaN
            assert np.all(np.isfinite([p.positions for p in msg.points]))

        short = JointState(name=NAMES, position=[0.0] * 3)      # names and positions disagree
        cell.js_pub.publish(short)
        ros.spin_until(lambda: cell.node.counters["bad joint_states"] >= 6, 2.0)
        ok = cell.node.counters["ok joint_states"]
        late = JointState(name=NAMES, position=[float(v) for v in HOME7])
        last_ns = max(cell.node.inputs.joints.stamp_ns)
        late.header.stamp = rclpy.time.Time(nanoseconds=last_ns - 500_000_000).to_msg()   # 0.5 s late
        cell.js_pub.publish(late)
        assert ros.spin_until(lambda: cell.node.counters["joint_states out of order"] == 1, 2.0)
        assert cell.node.counters["ok joint_states"] == ok
        old = JointState(name=NAMES, position=[float(v) for v in HOME7])
        old.header.stamp.sec = 1        # far older: time jumped back (a bag played again)
        cell.js_pub.publish(old)
        assert ros.spin_until(lambda: cell.node.counters["new time base"] == 1, 2.0)
        assert cell.node.counters["ok joint_states"] == ok + 1


def test_unknown_class_means_no_target_until_set_target_class():
    with RosHarness() as ros:
        cell = Cell(ros)
        cell.q = HOME7.copy()
        cell.q[0] += 0.2                    # away from home, so "go home" is motion
        cell.run(0.6, classes=("blue_cube",))
        node = cell.node
        assert node.counters["unknown target class"] == 1          # warned once, not per message
        assert node.target is None and node.runner.policy.mode == "home"
        tracks_ns = {stamp_to_ns(s) for s in cell.tracks_stamps}
        last = cell.commands[-1]
        assert stamp_to_ns(last.header.stamp) not in tracks_ns     # no target: stamped now
        assert last.points[0].positions[0] < cell.q[0]             # heading home

        res = cell.call(SetTargetClass, "set_target_class",
                        SetTargetClass.Request(class_name="blue_cube"))
        assert res.success and "blue_cube" in res.message
        assert node.get_parameter("target_class").value == "blue_cube"
        cell.run(0.3, classes=("blue_cube",))
        assert node.target is not None and node.runner.policy.mode == "target"
        tracks_ns = {stamp_to_ns(s) for s in cell.tracks_stamps}
        assert stamp_to_ns(cell.commands[-1].header.stamp) in tracks_ns

        res = cell.call(SetTargetClass, "set_target_class", SetTargetClass.Request(class_name=""))
        assert not res.success
        res = cell.call(Trigger, "reset", Trigger.Request())
        assert res.success
        n = len(cell.commands)
        cell.run(0.2, classes=("blue_cube",))
        assert len(cell.commands) > n                               # runs on after a reset


def test_on_tracks_acts_on_fresh_tracks_at_once_and_keeps_the_50hz_stream():
    """Tracks on the simulator's 20 ms grid at 15 Hz, published 1 ms after the node's first
    timer tick (the worst phase for a fixed timer). Measured over 10 s, arrival -> decision:
    fixed p50 16.5-17 ms; on_tracks p50 1.1, p99 1.8 ms on an idle machine (twice the
    timer's lateness: a late grid command opens the next window late, and the window's own
    timer fires late), 5 ms on one loaded by a closed loop. Decisions (point 0 is due at
    decision + dt) are never closer than dt - tau and, but for a loaded machine's stalls,
    within dt +- tau (idle: 16.5..24.2 ms)."""
    waits = {}
    for timing in ("on_tracks", "fixed"):
        with RosHarness() as ros:
            cell = Cell(ros, {"input_timeout_s": 1.0, "command_timing": timing}, ArrivalsPolicyNode)
            phase_s = time.time() + cell.node.timer.time_until_next_call() * 1e-9 + 0.001
            cell.run_camera(0.5, phase_s=phase_s)
            cell.commands.clear()
            cell.node.arrivals.clear()
            cell.run_camera(3.0, phase_s=phase_s)
            decisions = np.array([decision_s(m) for m in cell.commands])
            intervals = np.diff(decisions)
            assert len(decisions) == pytest.approx(3.0 / DT, rel=0.1)
            assert cell.node.counters["holds"] == 0
            waits[timing] = pacing_waits(cell)
            assert len(waits[timing]) >= 0.9 * len(cell.node.arrivals) >= 0.9 * 3.0 * 15
        if timing == "on_tracks":
            assert intervals.min() >= DT - TOL - 1e-6, intervals.min()
            assert np.mean(np.abs(intervals - DT) <= TOL + 0.001) >= 0.85, np.sort(intervals)[[0, -1]]
    p50 = {k: float(np.median(w)) for k, w in waits.items()}
    assert p50["fixed"] >= 0.010 and p50["on_tracks"] <= p50["fixed"] / 2, p50


def test_on_tracks_falls_back_to_the_fixed_timer_on_simulated_time():
    with RosHarness() as ros:
        node = ros.add(PolicyNode, {"policy": "scripted", "use_sim_time": True})
        assert node.command_timing == "fixed" and node.pacer is None


def test_position_interfaces_and_a_gripper_in_its_native_units():
    """Arm to a forward_command_controller, gripper (a finger joint in metres, on its own
    driver's joint states) to another, as the ros2_control profile wires them."""
    from std_msgs.msg import Float64MultiArray

    itf = PROFILES["ros2_control"].interface
    params = {"input_timeout_s": 1.0, "policy": "scripted", "arm_command_interface": "position",
              "gripper_joint": itf.gripper_joint, "gripper_closed_position": itf.gripper_closed_position,
              "gripper_command_interface": "position", "gripper_joint_states_topic": "gripper/joint_states"}
    with RosHarness() as ros:
        node = ros.add(PolicyNode, params)
        arm_state = ros.publisher(JointState, "joint_states")
        gripper_state = ros.publisher(JointState, "gripper/joint_states")
        tracks = ros.publisher(TrackArray, "tracks")
        arm_cmds = ros.collect(Float64MultiArray, P["arm_position_topic"])
        gripper_cmds = ros.collect(Float64MultiArray, P["gripper_position_topic"])
        for pub in (arm_state, gripper_state, tracks):
            ros.wait_for_subscribers(pub)

        def publish(gripper=True):
            stamp = ros.probe.get_clock().now().to_msg()
            arm_state.publish(JointState(name=ARM, position=[float(v) for v in HOME7[:6]], header=Header(stamp=stamp)))
            if gripper:
                gripper_state.publish(JointState(name=[itf.gripper_joint], position=[0.01],   # 1 cm of 4
                                                 header=Header(stamp=stamp)))
            msg = TrackArray(header=Header(stamp=stamp, frame_id="base_link"))
            t = Track(id=1, state=Track.CONFIRMED, class_name="red_cube", hits=10, score=0.9)
            t.position.x, t.position.y, t.position.z = (float(v) for v in CUBE)
            msg.tracks.append(t)
            tracks.publish(msg)

        for _ in range(20):                          # no gripper state: nothing moves
            publish(gripper=False)
            ros.spin_for(0.02)
        assert not arm_cmds and not gripper_cmds and node.counters["waiting for joint_states"] > 0
        for _ in range(30):
            publish()
            ros.spin_for(0.02)
        assert len(arm_cmds) > 10 and len(gripper_cmds) > 10
        assert all(len(m.data) == 6 and np.all(np.isfinite(m.data)) for m in arm_cmds)
        assert np.all(np.abs(np.array(arm_cmds[0].data) - HOME7[:6]) <= EMAX[:6] + 1e-9)
        assert node.q[6] == pytest.approx(0.25)      # the policy sees closure 0.25
        x = [m.data[0] for m in gripper_cmds]        # and commands metres, within the stops
        assert all(len(m.data) == 1 for m in gripper_cmds) and 0.0 <= min(x) <= max(x) <= 0.04


def test_construction_errors_are_clear():
    with RosHarness() as ros:
        with pytest.raises(FileNotFoundError, match="ACT checkpoint not found"):
            ros.add(PolicyNode, {"policy": "act", "model_path": "/nonexistent/act.pt"})
        with pytest.raises(ValueError, match="limits"):
            ros.add(PolicyNode, {"max_velocity_rad_s": [1.0, 1.0]})
        with pytest.raises(ValueError, match="command timing must be one of"):
            ros.add(PolicyNode, {"policy": "scripted", "command_timing": "sometimes"})
        with pytest.raises(ValueError, match="dt/2"):
            ros.add(PolicyNode, {"policy": "scripted", "command_interval_tolerance_s": 0.015})


def test_tracks_carry_velocity_and_state_covariance_to_the_inputs():
    """The Track message's velocity and covariance blocks become the (6, 6) covariance of [p; v]."""
    from fdl_robot.ros.policy_node import tracked_objects

    P = np.arange(36, dtype=float).reshape(6, 6)
    P = P + P.T + 100 * np.eye(6)                             # symmetric
    t = Track(id=3, state=1, class_name="red_cube", hits=4)
    t.position.x, t.velocity.x = 0.5, 0.08
    t.position_covariance, t.velocity_covariance = P[:3, :3].reshape(-1), P[3:, 3:].reshape(-1)
    t.position_velocity_covariance = P[:3, 3:].reshape(-1)
    (obj,) = tracked_objects(TrackArray(tracks=[t]))
    assert obj.v_base_m_s == (0.08, 0.0, 0.0)
    np.testing.assert_array_equal(obj.covariance, P)
    (old,) = tracked_objects(TrackArray(tracks=[Track(id=1, state=1, class_name="red_cube")]))
    assert old.covariance is None                              # a publisher without velocity covariance

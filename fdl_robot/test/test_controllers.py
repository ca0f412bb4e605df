"""The controller contracts sim_node plays (sim.controllers), trajectory sampling, the
gripper's native scale and the joint-state merger, without ROS."""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.core.gripper import GripperScale
from fdl_robot.core.robot import ARM_JOINT_NAMES
from fdl_robot.core.trajectory import sample_linear
from fdl_robot.policy.joint_states import JointStateError, JointStateMerger
from fdl_robot.sim.controllers import CommandRejected, ForwardController, TrajectoryController, TrajectoryPoint

ARM = list(ARM_JOINT_NAMES)
MS = 1_000_000


def points(rows, times_ms, **extra):
    return [TrajectoryPoint(tuple(r), t * MS, **extra) for r, t in zip(rows, times_ms, strict=True)]


def test_sample_linear_interpolates_between_knots_and_holds_the_ends():
    q = sample_linear(np.array([0, 10, 20]), np.array([[0.0], [1.0], [3.0]]), [-5, 0, 5, 10, 15, 20, 25])
    np.testing.assert_allclose(q.ravel(), [0, 0, 0.5, 1, 2, 3, 3])


def test_jtc_rejects_what_ros2_control_rejects():
    jtc = TrajectoryController(ARM)
    q = [0.1] * 6
    cases = {
        "Joints on incoming trajectory don't match": (ARM + ["gripper_joint"], points([q + [0]], [20])),
        "doesn't match the controller's joints": (ARM[:5] + ["gripper_joint"], points([q], [20])),
        "Empty joint names": ([], points([q], [20])),
        "Empty trajectory": (ARM, []),
        "positions": (ARM, points([q[:3]], [20])),
        "not strictly increasing": (ARM, points([q, q], [20, 20])),
        "not zero": (ARM, [TrajectoryPoint(tuple(q), 20 * MS, velocities=(0.1,) * 6)]),
        "effort": (ARM, [TrajectoryPoint(tuple(q), 20 * MS, effort=(1.0,) * 6)]),
        "Non-finite": (ARM, points([[np.nan] + q[1:]], [20])),
    }
    for reason, (names, pts) in cases.items():
        with pytest.raises(CommandRejected, match=reason):
            jtc.validate(names, pts, stamp_ns=0, now_ns=1000 * MS)
    with pytest.raises(CommandRejected, match="ends in the past"):
        jtc.validate(ARM, points([q], [20]), stamp_ns=900 * MS, now_ns=1000 * MS)
    # a zero stamp never ends in the past; joints in any order; a zero velocity at the end is fine
    cmd = jtc.validate(ARM[::-1], [TrajectoryPoint(tuple(range(6)), 20 * MS, velocities=(0.0,) * 6)],
                       stamp_ns=0, now_ns=1000 * MS)
    np.testing.assert_array_equal(cmd.positions[0], [5, 4, 3, 2, 1, 0])


def test_jtc_starts_from_the_measured_state_interpolates_and_replaces():
    jtc = TrajectoryController(["j"])
    assert jtc.update(0, np.array([0.0])) is None                     # nothing commanded yet
    jtc.take(jtc.validate(["j"], points([[1.0], [3.0]], [20, 40]), stamp_ns=0, now_ns=0))
    measured = np.array([0.5])
    got = [jtc.update(t * MS, measured)[0] for t in (100, 110, 120, 130, 140, 200)]
    np.testing.assert_allclose(got, [0.5, 0.75, 1.0, 2.0, 3.0, 3.0])   # start knot = measured state
    # a new message replaces the running trajectory, from the state at that update
    jtc.take(jtc.validate(["j"], points([[0.0]], [20]), stamp_ns=0, now_ns=0))
    np.testing.assert_allclose([jtc.update(t * MS, np.array([2.9]))[0] for t in (300, 310, 320)],
                               [2.9, 1.45, 0.0])
    # a stamp in the past whose end is still ahead starts mid-trajectory
    jtc.take(jtc.validate(["j"], points([[0.0], [10.0]], [20, 120]), stamp_ns=400 * MS, now_ns=470 * MS))
    assert jtc.update(470 * MS, np.array([0.0]))[0] == pytest.approx(5.0)


def test_forward_controller_takes_exactly_one_finite_value_per_joint():
    fwd = ForwardController(ARM)
    with pytest.raises(CommandRejected, match="does not match number of interfaces"):
        fwd.validate([0.0] * 7)
    with pytest.raises(CommandRejected, match="Non-finite"):
        fwd.validate([np.inf] + [0.0] * 5)
    fwd.take(fwd.validate(range(6)))
    np.testing.assert_array_equal(fwd.update(0, None), range(6))


def test_gripper_scale_maps_native_units_to_closure_both_ways():
    robotiq = GripperScale(0.0, 0.7929)                     # knuckle angle, rad
    assert robotiq.to_closure(0.7929) == pytest.approx(1.0)
    assert robotiq.to_native(0.5) == pytest.approx(0.39645)
    gap = GripperScale(0.085, 0.0)                          # a jaw gap in metres shrinks as it closes
    assert gap.to_closure(0.0425) == pytest.approx(0.5) and gap.to_native(1.5) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="equal"):
        GripperScale(0.1, 0.1)


def test_merger_takes_several_publishers_and_keeps_freshness_per_joint():
    merger = JointStateMerger(ARM, "finger", GripperScale(0.0, 0.04))
    assert merger.positions() is None and merger.missing == (*ARM, "finger")
    merger.add(sorted(ARM), [float(i) for i, _ in enumerate(sorted(ARM))], stamp_ns=10, arrival_s=1.0)
    assert merger.missing == ("finger",)
    merger.add(["finger", "unused"], [0.02, 7.0], stamp_ns=12, arrival_s=1.1)
    q = merger.positions()
    assert q[-1] == pytest.approx(0.5)                                  # 2 cm of 4 cm: half closed
    assert q[ARM.index(sorted(ARM)[0])] == 0.0
    arrivals = merger.arrivals()
    assert arrivals["finger"] == 1.1 and arrivals[ARM[0]] == 1.0
    assert merger.arm_stamp_ns() == 10
    with pytest.raises(JointStateError, match="< previous"):            # late by 9 ns
        merger.add(["finger"], [0.0], stamp_ns=3, arrival_s=1.2)
    with pytest.raises(JointStateError, match="non-finite"):
        merger.add(["finger"], [np.nan], stamp_ns=20, arrival_s=1.2)
    assert not merger.validity()["finger"] and merger.validity()[ARM[0]]
    # a jump back by more than a second: a new time base for every joint
    big = 5_000_000_000
    merger.add(ARM, [0.0] * 6, stamp_ns=big, arrival_s=2.0)
    update = merger.add(ARM, [0.0] * 6, stamp_ns=big - 2_000_000_000, arrival_s=2.1)
    assert update.new_time_base and update.joints == tuple(ARM)
    merger.add(["finger"], [0.0], stamp_ns=big - 1_900_000_000, arrival_s=2.2)   # accepted

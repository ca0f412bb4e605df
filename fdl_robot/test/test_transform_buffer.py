"""The stamped transform and joint buffers of core: interpolation, SLERP, stamps out of
range, exact hits, time jumping backwards, capacity."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from fdl_robot.core.geometry import Transform
from fdl_robot.core.joint_buffer import JointBuffer
from fdl_robot.core.timebase import StampOrder
from fdl_robot.core.transform_buffer import StampHistory, StampUnavailable, TransformBuffer, slerp

MS = 1_000_000
S = 1_000_000_000


def _rot(axis, angle_rad):
    return Rotation.from_rotvec(np.asarray(axis, float) / np.linalg.norm(axis) * angle_rad)


def _T(rotation: Rotation, t) -> Transform:
    return Transform.from_quaternion(rotation.as_quat(), t)


# --- SLERP -------------------------------------------------------------------------------

def test_slerp_midpoint_of_two_rotations_about_one_axis_is_the_half_angle():
    q0 = _rot([0, 0, 1], 0.2).as_quat()
    q1 = _rot([0, 0, 1], 1.4).as_quat()
    mid = slerp(q0, q1, 0.5)
    assert Rotation.from_quat(mid).magnitude() == pytest.approx(0.8, abs=1e-12)
    assert np.allclose(Rotation.from_quat(mid).as_rotvec(), [0, 0, 0.8], atol=1e-12)
    quarter = slerp(q0, q1, 0.25)
    assert np.allclose(Rotation.from_quat(quarter).as_rotvec(), [0, 0, 0.5], atol=1e-12)


def test_slerp_equals_scipy_for_random_pairs_and_fractions():
    rng = np.random.default_rng(3)
    R = Rotation.random(40, random_state=rng)
    s = rng.uniform(0, 1, 20)
    for i in range(0, 40, 2):
        ours = Rotation.from_quat(slerp(R[i].as_quat(), R[i + 1].as_quat(), s))
        ref = Slerp([0.0, 1.0], R[i:i + 2])(s)
        assert np.all((ours.inv() * ref).magnitude() < 1e-9)


def test_slerp_takes_the_short_arc_whatever_the_quaternion_signs():
    q0 = _rot([1, 0, 0], 0.1).as_quat()
    q1 = _rot([1, 0, 0], 0.5).as_quat()
    for a, b in ((q0, q1), (-q0, q1), (q0, -q1), (-q0, -q1)):
        mid = Rotation.from_quat(slerp(a, b, 0.5))
        assert (mid.inv() * _rot([1, 0, 0], 0.3)).magnitude() < 1e-12
    # across +-pi: from 170 deg to -170 deg about z the short way passes 180 deg, not 0
    mid = Rotation.from_quat(slerp(_rot([0, 0, 1], np.radians(170)).as_quat(),
                                   _rot([0, 0, 1], np.radians(-170)).as_quat(), 0.5))
    assert mid.magnitude() == pytest.approx(np.pi, abs=1e-9)


def test_slerp_of_equal_rotations_and_the_endpoints():
    q = _rot([1, 2, 3], 0.7).as_quat()
    assert np.allclose(slerp(q, q, 0.3), q)
    q1 = _rot([0, 1, 0], -0.4).as_quat()
    assert np.allclose(slerp(q, q1, 0.0), q) and np.allclose(slerp(q, q1, 1.0), q1)
    assert np.linalg.norm(slerp(q, q1, 0.37)) == pytest.approx(1.0)


# --- the transform buffer ----------------------------------------------------------------

def test_lookup_between_samples_interpolates_translation_linearly_and_rotation_by_slerp():
    buf = TransformBuffer("base_link", "cam")
    R0, R1 = _rot([0, 1, 0], 0.0), _rot([0, 1, 0], 0.6)
    buf.add(1 * S, _T(R0, [0.0, 0.0, 1.0]))
    buf.add(1 * S + 100 * MS, _T(R1, [0.2, -0.1, 1.0]).as_matrix())     # a 4x4 is taken too
    T = buf.lookup(1 * S + 25 * MS)
    assert np.allclose(T.translation, [0.05, -0.025, 1.0], atol=1e-12)
    assert np.allclose(Rotation.from_matrix(T.rotation).as_rotvec(), [0, 0.15, 0], atol=1e-12)


def test_exact_hits_return_the_sample_itself():
    buf = TransformBuffer("a", "b")
    rng = np.random.default_rng(0)
    samples = [_T(Rotation.random(random_state=rng), rng.normal(size=3)) for _ in range(5)]
    for k, T in enumerate(samples):
        buf.add(k * 10 * MS, T)
    for k, T in enumerate(samples):
        got = buf.lookup(k * 10 * MS)
        assert np.allclose(got.as_matrix(), T.as_matrix(), atol=1e-12)


def test_stamps_before_the_oldest_or_past_the_newest_are_rejected_not_answered_with_the_latest():
    buf = TransformBuffer("base_link", "cam", tolerance_s=0.005)
    buf.add(10 * S, _T(_rot([0, 0, 1], 0.0), [0, 0, 0]))
    buf.add(10 * S + 20 * MS, _T(_rot([0, 0, 1], 0.2), [1, 0, 0]))
    with pytest.raises(StampUnavailable, match=r"base_link -> cam: stamp 1\.0 ms before the oldest"):
        buf.lookup(10 * S - 1 * MS)
    with pytest.raises(StampUnavailable, match=r"stamp 6\.0 ms past the newest sample \(tolerance 5\.0 ms\)"):
        buf.lookup(10 * S + 26 * MS)
    # within the tolerance past the newest: the newest sample, held
    assert np.allclose(buf.lookup(10 * S + 24 * MS).translation, [1, 0, 0])
    with pytest.raises(StampUnavailable, match="no samples yet"):
        TransformBuffer("a", "b").lookup(0)


def test_a_gap_larger_than_max_gap_is_rejected():
    buf = TransformBuffer("a", "b", max_gap_s=0.05)
    buf.add(0, Transform.identity())
    buf.add(40 * MS, Transform.identity())
    buf.add(200 * MS, Transform.identity())
    buf.lookup(20 * MS)
    with pytest.raises(StampUnavailable, match=r"160\.0 ms apart \(max gap 50\.0 ms\)"):
        buf.lookup(100 * MS)


def test_time_jumping_backwards_out_of_order_is_rejected_a_new_time_base_clears():
    buf = TransformBuffer("a", "b")
    for k in range(30):
        assert buf.add(100 * S + k * 100 * MS, _T(_rot([0, 0, 1], 0.01 * k), [k, 0, 0])) is StampOrder.IN_ORDER
    newest = 100 * S + 29 * 100 * MS
    # a late sample (0.5 s back) and a duplicate: rejected, counted, the buffer unchanged
    assert buf.add(newest - 500 * MS, Transform.identity()) is StampOrder.OUT_OF_ORDER
    assert buf.add(newest, Transform.identity()) is StampOrder.OUT_OF_ORDER
    assert buf.history.out_of_order == 2 and len(buf) == 30
    assert np.allclose(buf.lookup(newest - 500 * MS).translation, [24, 0, 0])
    # 5 s back: a bag played again; the old time line is gone
    assert buf.add(newest - 5 * S, _T(_rot([0, 0, 1], 0.0), [-1, 0, 0])) is StampOrder.NEW_BASE
    assert buf.history.new_time_bases == 1 and len(buf) == 1
    assert np.allclose(buf.lookup(newest - 5 * S).translation, [-1, 0, 0])
    with pytest.raises(StampUnavailable, match="before the oldest"):
        buf.lookup(newest - 5 * S - 1)


def test_capacity_is_the_history_duration_behind_the_newest():
    h = StampHistory(history_s=1.0)
    for k in range(501):                                 # 5 s at 100 Hz
        h.add(k * 10 * MS, [float(k)])
    assert h.newest_ns == 5 * S and h.oldest_ns == 4 * S and len(h) == 101
    with pytest.raises(StampUnavailable, match="before the oldest"):
        h.interpolate(4 * S - 10 * MS)
    assert h.interpolate(4 * S + 5 * MS)[0] == pytest.approx(400.5)


def test_bad_samples_and_parameters_are_refused():
    h = StampHistory()
    with pytest.raises(ValueError, match="not finite"):
        h.add(0, [np.nan])
    h.add(0, [1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        h.add(1, [1.0])
    with pytest.raises(ValueError):
        StampHistory(history_s=0)
    with pytest.raises(ValueError):
        StampHistory(tolerance_s=-1)


# --- the joint buffer ----------------------------------------------------------------------

def test_joint_buffer_interpolates_each_joint_from_its_own_messages():
    buf = JointBuffer(["a", "b", "c"])
    # the arm's publisher names a and b (in its own order); another names c, at other stamps
    buf.add(["b", "a", "unused"], [2.0, 1.0, 99.0], 0)
    buf.add(["b", "a"], [4.0, 0.0], 20 * MS)
    buf.add(["c"], [0.01], 5 * MS)
    buf.add(["c"], [0.03], 15 * MS)
    assert np.allclose(buf.positions_at(10 * MS), [0.5, 3.0, 0.02])
    with pytest.raises(StampUnavailable, match="joint c: stamp 5.0 ms past the newest"):
        buf.positions_at(20 * MS)
    with pytest.raises(StampUnavailable, match="joint c: stamp 1.0 ms before the oldest"):
        buf.positions_at(4 * MS)


def test_joint_buffer_rejects_bad_messages_whole_and_counts_stamp_order():
    buf = JointBuffer(["a", "b"], history_s=1.0)
    with pytest.raises(ValueError, match="non-finite position for \\['b'\\]"):
        buf.add(["a", "b"], [0.0, np.inf], 0)
    with pytest.raises(ValueError, match="2 joint names but 1 positions"):
        buf.add(["a", "b"], [0.0], 0)
    with pytest.raises(ValueError, match="duplicate"):
        buf.add(["a", "a"], [0.0, 1.0], 0)
    assert len(buf.histories["a"]) == 0
    with pytest.raises(StampUnavailable, match="joint a: no samples yet"):
        buf.positions_at(0)
    buf.add(["a", "b"], [0.0, 0.0], 10 * S)
    assert buf.add(["a", "b"], [1.0, 1.0], 10 * S - 1) == {"a": StampOrder.OUT_OF_ORDER,
                                                            "b": StampOrder.OUT_OF_ORDER}
    assert buf.out_of_order == 2
    assert set(buf.add(["a", "b"], [5.0, 6.0], 2 * S).values()) == {StampOrder.NEW_BASE}
    assert buf.new_time_bases == 2 and np.allclose(buf.positions_at(2 * S), [5.0, 6.0])
    with pytest.raises(ValueError, match="distinct"):
        JointBuffer(["a", "a"])

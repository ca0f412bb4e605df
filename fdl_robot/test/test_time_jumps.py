"""Time jumping back (a bag played again or with --loop, a restarted simulator) is a new time base.

:mod:`fdl_robot.core.timebase` is the one rule: a stamp at most 1 s before the last one is
a late message (rejected), more than 1 s before it a new time line. Here: the tracker
starts over and then gives exactly the first pass's tracks, the localizer's stamp
synchroniser drops the old line's queued messages, a camera stamps on the new line, and
rclpy timers keep firing on a /clock that jumped back. The nodes on the regression bag
played twice: ``test_replay_regression.py``.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from fdl_robot.core.timebase import TIME_JUMP_S
from fdl_robot.core.tracking import MultiObjectTracker, OutOfOrderStamp
from fdl_robot.perception.sources import capture_stamp_ns
from fdl_robot.ros.sync import StampSynchronizer

S = 1_000_000_000


def _pass(tracker, t0_s: float, frames: int = 30):
    """Two cubes, one sliding along x at 0.15 m/s, at 15 Hz from ``t0_s`` (2 s): the tracks of
    each frame and the tracker's ``last_time_jump_s`` after each."""
    out, jumps = [], []
    for k in range(frames):
        z = np.array([[0.45 + 0.01 * k, 0.05, 0.02], [0.55, -0.08, 0.02]])
        tracks = tracker.update(z, t0_s + k / 15, labels=["red_cube", "cube"])
        out.append([(tr.id, str(tr.state), tr.hits, tuple(tr.state_mean)) for tr in tracks])
        jumps.append(tracker.last_time_jump_s)
    return out, jumps


def test_tracker_takes_a_second_pass_as_a_new_time_base_and_repeats_the_first():
    trk = MultiObjectTracker()
    first, jumps = _pass(trk, 10.0)
    assert jumps == [None] * 30 and [t[0] for t in first[-1]] == [1, 2]
    second, jumps = _pass(trk, 10.0)                  # the bag played again: 1.93 s back
    assert jumps[0] == pytest.approx(29 / 15) and jumps[1:] == [None] * 29
    assert second == first                            # exactly: ids from 1, same filters


def test_late_stamp_raises_out_of_order_and_leaves_the_tracker_unchanged():
    trk = MultiObjectTracker()
    _pass(trk, 10.0)
    before = trk.tracks()
    assert trk.update(np.zeros((0, 3)), trk.stamp_s)[0].id == 1       # the same stamp again: in order
    last = trk.stamp_s
    late = last - 0.99 * TIME_JUMP_S
    with pytest.raises(OutOfOrderStamp, match="out-of-order"):
        trk.update([[0.5, 0.0, 0.0]], late)
    with pytest.raises(ValueError, match="out-of-order"):      # an OutOfOrderStamp is a ValueError
        trk.predict(late)
    with pytest.raises(ValueError, match="positions must have shape"):   # a bad update after a jump ...
        trk.update([[0.5, 0.0]], last - 5.0)
    assert trk.stamp_s == last and [t.id for t in trk.tracks()] == [t.id for t in before]   # ... changes nothing
    assert trk.predict(last - 1.01 * TIME_JUMP_S) == [] and trk.last_time_jump_s == pytest.approx(1.01)


def test_synchroniser_drops_the_old_time_line_at_a_jump_back():
    dropped, jumps = [], []
    sync = StampSynchronizer(2, tolerance_ns=1_000_000, on_drop=lambda i, s: dropped.append((i, s)),
                             on_new_base=lambda i, s, n: jumps.append((i, s, n)))
    # the end of a first play: frames at 7.2, 7.3 and 7.4 s; the detector (input 0) skipped 7.3 and 7.4
    assert sync.add(1, 7_200_000_000, "d7.2") is None
    assert sync.add(0, 7_200_000_000, "n7.2") == ("n7.2", "d7.2")
    for stamp in (7_300_000_000, 7_400_000_000):
        assert sync.add(1, stamp, f"d{stamp / S:.1f}") is None
    assert sync.pending() == [0, 2]
    # the second play: depth first, then the detections of the same frame
    assert sync.add(1, 0, "d0") is None
    assert jumps == [(1, 0, 2)] and sync.stale_dropped == 2 and sync.pending() == [0, 1]
    assert sync.add(0, 0, "n0") == ("n0", "d0")
    assert jumps == [(1, 0, 2), (0, 0, 0)] and dropped == [] and sync.new_time_bases == 2
    # the second play reaches 7.3 s: the first play's depth at 7.3 s is gone, not matched
    assert sync.add(0, 7_300_000_000, "n7.3 again") is None and sync.pending() == [1, 0]


def test_synchroniser_lagging_input_is_no_jump():
    """Detections 0.8 s behind depth (a slow detector) never look like a jump back."""
    sync = StampSynchronizer(2, tolerance_ns=0, queue_size=30)
    matched = []
    for k in range(40):
        sync.add(1, k * 66_000_000, f"d{k}")
        if k >= 12:
            got = sync.add(0, (k - 12) * 66_000_000, f"n{k - 12}")
            matched.append(got)
    assert sync.new_time_bases == 0 and sync.dropped == 0
    assert matched == [(f"n{k}", f"d{k}") for k in range(28)]


def test_camera_stamps_follow_a_clock_that_jumped_back():
    last = 100 * S
    assert capture_stamp_ns(0.0, False, last - S // 2, 0.0, last) == last + 1       # 0.5 s back: kept in order
    assert capture_stamp_ns(0.0, False, 3 * S, 0.0, last) == 3 * S                  # 97 s back: the new line
    wall = 1000.0
    assert capture_stamp_ns(wall - 0.2, True, 3 * S, wall, last) == 3 * S - S // 5   # live, 0.2 s old
    assert capture_stamp_ns(0.0, True, last + S, wall, last) == last + 1            # a bogus capture time


@pytest.mark.ros
def test_timers_and_camera_node_survive_the_clock_jumping_back():
    """use_sim_time, /clock at 100 s then back to 1 s: camera_node's timer keeps firing and it
    stamps its frames on the new time line (rcl resets a timer when its clock jumps back)."""
    pytest.importorskip("rclpy")
    from ros_harness import RosHarness
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from fdl_robot.core.camera import PinholeCamera
    from fdl_robot.perception.sources import Frame
    from fdl_robot.ros.base import SENSOR_QOS
    from fdl_robot.ros.camera_node import CameraNode
    from fdl_robot.ros.conversions import ns_to_stamp, stamp_to_ns

    class FileSource:                          # a recording: frames stamped with the node's clock
        live = False

        def read(self, timeout_s=None):
            return Frame(np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 500, np.uint16),
                         PinholeCamera(8.0, 8.0, 3.5, 3.5, 8, 8), stamp_s=0.0)

        def close(self):
            pass

    with RosHarness() as ros:
        ros.add(CameraNode, {"fps": 20.0, "use_sim_time": True}, source=FileSource())
        clock = ros.publisher(Clock, "/clock")
        colour = ros.collect(Image, "camera/color/image_raw", SENSOR_QOS)
        ros.wait_for_subscribers(clock)

        def run_clock(t0_ns: int, seconds: float) -> None:
            t = t0_ns
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                clock.publish(Clock(clock=ns_to_stamp(t)))
                ros.spin_for(0.01)
                t += 10_000_000

        run_clock(100 * S, 1.0)
        before = len(colour)
        assert before >= 5 and stamp_to_ns(colour[-1].header.stamp) >= 100 * S
        run_clock(1 * S, 1.0)
        after = [stamp_to_ns(m.header.stamp) for m in colour[before:]]
        assert len(after) >= 5, f"{len(after)} frames after the jump: the timer stopped"
        assert all(S <= s < 3 * S for s in after[1:]), after      # on the new line (the first may be in flight)
        assert after[1:] == sorted(after[1:])

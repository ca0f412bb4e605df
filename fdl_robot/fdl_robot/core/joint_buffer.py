"""Joint positions by stamp, per joint: q(t) interpolated at a message's stamp.

A camera on the arm sees from T_base_cam(t) = FK(q(t)) T_flange_cam, so q is needed at the
image stamp t, which falls between joint-state messages. Joint states arrive as
sensor_msgs/JointState messages naming any subset of the joints in any order (an arm's
joint_state_broadcaster, a gripper's driver), so each joint j keeps its own history of
samples (t_k, q_j,k) (:class:`~fdl_robot.core.transform_buffer.StampHistory`: bounded,
time-ordered, out-of-order samples rejected, a jump back in time clearing it) and::

    q_j(t) = (1 - s) q_j,k + s q_j,k+1,   s = (t - t_k) / (t_k+1 - t_k),   t_k <= t <= t_k+1

per joint, in radians (revolute) or metres (prismatic), with the history's rejections: a
stamp before a joint's oldest sample, more than the tolerance past its newest, or (with
``max_gap_s``) between samples too far apart raises
:class:`~fdl_robot.core.transform_buffer.StampUnavailable` naming the joint. Linear
interpolation of an angle assumes consecutive samples differ by much less than pi, true of
joint states at tens of Hz or more and of limited joints, whose positions do not wrap.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fdl_robot.core.timebase import TIME_JUMP_S, StampOrder
from fdl_robot.core.transform_buffer import StampHistory, StampUnavailable

__all__ = ["JointBuffer"]


class JointBuffer:
    """Per-joint histories of ``joint_names``; :meth:`positions_at` gives q (n,) in that order.

    The other arguments are :class:`~fdl_robot.core.transform_buffer.StampHistory`'s,
    the same for every joint.
    """

    def __init__(self, joint_names: Sequence[str], history_s: float = 10.0, tolerance_s: float = 0.0,
                 max_gap_s: float | None = None, jump_s: float = TIME_JUMP_S):
        self.joint_names: tuple[str, ...] = tuple(joint_names)
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint names must be distinct and not empty, got {list(self.joint_names)}")
        self.histories = {n: StampHistory(history_s, tolerance_s, max_gap_s, jump_s) for n in self.joint_names}

    def add(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int) -> dict[str, StampOrder]:
        """Take one JointState's (names, positions) at ``stamp_ns``: {joint: its stamp's order}
        for the joints of ours it names (others are ignored; OUT_OF_ORDER ones not stored).

        Raises ValueError, storing nothing, when names and positions differ in length, a
        name repeats, or a position of ours is not finite.
        """
        if len(names) != len(positions):
            raise ValueError(f"{len(names)} joint names but {len(positions)} positions")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate joint names in {list(names)}")
        ours = [(n, float(x)) for n, x in zip(names, positions, strict=True) if n in self.histories]
        bad = [n for n, x in ours if not np.isfinite(x)]
        if bad:
            raise ValueError(f"non-finite position for {bad}")
        return {n: self.histories[n].add(stamp_ns, x) for n, x in ours}

    def positions_at(self, stamp_ns: int) -> np.ndarray:
        """q (n,) at ``stamp_ns``, each joint interpolated in its own history (module doc)."""
        q = np.empty(len(self.joint_names))
        for i, name in enumerate(self.joint_names):
            try:
                q[i] = self.histories[name].interpolate(stamp_ns)
            except StampUnavailable as exc:
                raise StampUnavailable(f"joint {name}: {exc.reason}") from None
        return q

    @property
    def out_of_order(self) -> int:
        """Samples rejected as out of order, over all joints."""
        return sum(h.out_of_order for h in self.histories.values())

    @property
    def new_time_bases(self) -> int:
        """Samples that started a new time base, over all joints."""
        return sum(h.new_time_bases for h in self.histories.values())

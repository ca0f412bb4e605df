"""Joint states as real robots publish them: several publishers, merged by name, per joint.

On a real cell no single message carries every joint the policy needs. ros2_control's
joint_state_broadcaster publishes the arm (six UR joints, in the order of its hardware
interfaces, not necessarily the chain order), the gripper's driver publishes its own
joint, often on the same ``/joint_states`` topic, each at its own rate. The policy's state
is therefore assembled per joint:

* a message may carry any subset of the joints, in any order, with names the policy does
  not use (ignored);
* each joint keeps its own last position, stamp and arrival time, so freshness is per joint
  (a dead gripper driver makes the gripper stale, not the arm);
* the gripper's native position (metres or radians) becomes the closure fraction through
  :class:`~fdl_robot.core.gripper.GripperScale`.

Order per joint (:func:`fdl_robot.core.timebase.classify_stamp`): a message whose stamp is
older than a joint's last one is rejected as out of order, unless time jumped back by more
than the jump threshold (a bag played again, a restarted driver or simulator): that starts
a new time base, reported to the caller (:attr:`Update.new_time_base`), which restarts the
policy. A message with a non-finite position of a used joint, or whose names and positions
disagree in length, is rejected whole; the non-finite joints (all the joints it names, when the
lengths disagree) stay *invalid* until a good sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fdl_robot.core.gripper import GripperScale
from fdl_robot.core.timebase import StampOrder, classify_stamp

__all__ = ["JointStateError", "Update", "JointStateMerger"]


class JointStateError(ValueError):
    """A rejected joint-state message; ``reason`` is the short key callers count it under."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Update:
    """What one accepted message changed: the used joints it carried, and whether its stamp
    started a new time base."""

    joints: tuple[str, ...]
    new_time_base: bool = False


class JointStateMerger:
    """Latest position, stamp and arrival of each used joint, from any number of messages.

    ``arm_joints``: the arm's joint names in the policy's order; ``gripper_joint``: the
    gripper's native joint name; ``gripper``: its native-to-closure map. :meth:`positions`
    is the policy's vector q = [arm (rad), closure] once every joint has been seen.
    """

    def __init__(self, arm_joints: Sequence[str], gripper_joint: str,
                 gripper: GripperScale | None = None):
        self.joint_names: tuple[str, ...] = (*arm_joints, gripper_joint)
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint names must be distinct, got {list(self.joint_names)}")
        self.n_arm = len(arm_joints)
        self.gripper = gripper or GripperScale()
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        n = len(self.joint_names)
        self.position = np.full(n, np.nan)               # arm rad, gripper closure
        self.stamp_ns: list[int | None] = [None] * n
        self.arrival_s: list[float | None] = [None] * n
        self.valid = np.zeros(n, dtype=bool)

    def reset(self) -> None:
        """Accept any stamp next (a new time base); positions and arrivals are kept."""
        self.stamp_ns = [None] * len(self.joint_names)

    def add(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int,
            arrival_s: float) -> Update:
        """Take one JointState's (names, positions) stamped ``stamp_ns``, received at
        ``arrival_s`` (caller's clock); JointStateError if it is rejected."""
        if len(positions) != len(names):          # a broken publisher: distrust what it names
            self.valid[[self._index[n] for n in names if n in self._index]] = False
            raise JointStateError("bad joint_states", f"{len(names)} names but {len(positions)} positions")
        used = [(self._index[n], float(x)) for n, x in zip(names, positions, strict=True) if n in self._index]
        if not used:       # not ours (another robot's, a typo in the names): it proves nothing
            raise JointStateError("bad joint_states", f"none of the joints {list(self.joint_names)} in {list(names)}")
        rows = [i for i, _ in used]
        if len(set(rows)) != len(rows):
            raise JointStateError("bad joint_states", f"duplicate joint names in {list(names)}")
        values = np.array([x for _, x in used])
        if not np.all(np.isfinite(values)):
            bad_rows = [i for i, x in used if not np.isfinite(x)]
            self.valid[bad_rows] = False
            bad = [self.joint_names[i] for i in bad_rows]
            raise JointStateError("bad joint_states", f"non-finite position for {bad}")
        orders = {classify_stamp(stamp_ns, self.stamp_ns[i]) for i in rows}
        if StampOrder.OUT_OF_ORDER in orders:
            last = max(self.stamp_ns[i] for i in rows if self.stamp_ns[i] is not None)
            raise JointStateError("joint_states out of order", f"stamp {stamp_ns} ns < previous {last} ns")
        new_base = StampOrder.NEW_BASE in orders
        if new_base:                 # the other joints' stamps are on the old time line too
            self.reset()
        is_gripper = np.array(rows) == self.n_arm
        values[is_gripper] = self.gripper.to_closure(values[is_gripper])
        self.position[rows] = values
        self.valid[rows] = True
        for i in rows:
            self.stamp_ns[i], self.arrival_s[i] = stamp_ns, arrival_s
        return Update(tuple(self.joint_names[i] for i in rows), new_base)

    # --- the merged state -----------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every joint has been received at least once."""
        return all(t is not None for t in self.arrival_s)

    @property
    def missing(self) -> tuple[str, ...]:
        """Joints never received."""
        return tuple(n for n, t in zip(self.joint_names, self.arrival_s, strict=True) if t is None)

    def positions(self) -> np.ndarray | None:
        """q (n_arm + 1,): the arm's last positions (rad) and the gripper closure, or None
        while a joint has never been received."""
        return self.position.copy() if self.complete else None

    def arrivals(self) -> dict[str, float | None]:
        """Arrival time of each joint's last valid sample (None: never), for the watchdog."""
        return dict(zip(self.joint_names, self.arrival_s, strict=True))

    def validity(self) -> dict[str, bool]:
        return dict(zip(self.joint_names, self.valid.tolist(), strict=True))

    def arm_stamp_ns(self) -> int | None:
        """Measurement time of the arm state: the oldest stamp among the arm joints."""
        stamps = self.stamp_ns[:self.n_arm]
        return None if any(s is None for s in stamps) else min(stamps)

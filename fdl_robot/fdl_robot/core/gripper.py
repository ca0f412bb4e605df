"""The gripper's native position and the closure fraction the stack reasons in.

Every joint vector of fdl_robot carries the gripper as its *closure* c (0 = open .. 1 =
closed, :mod:`fdl_robot.core.robot`). A real gripper reports and takes its own units: metres
of finger travel or of jaw gap, or the angle of a knuckle joint in radians (a Robotiq 2F-85:
0 rad open .. 0.8 rad closed). The map between the two is affine, fixed by the native
positions at open and closed::

    c = (x - x_open) / (x_closed - x_open)          x = x_open + c (x_closed - x_open)

``x_closed < x_open`` is allowed (a jaw *gap* in metres shrinks as the gripper closes).
Closure is clipped to [0, 1] in :meth:`GripperScale.to_native` (never command beyond the
stops); :meth:`GripperScale.to_closure` does not clip, so a sensor beyond its calibrated
range shows as c < 0 or c > 1; ``to_native(c, clip=False)`` reports a measured closure in
native units as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GripperScale"]


@dataclass(frozen=True)
class GripperScale:
    """Affine map between native gripper position x (m or rad) and closure c in [0, 1]."""

    open_position: float = 0.0      # x_open, native units
    closed_position: float = 1.0    # x_closed, native units

    def __post_init__(self):
        if not (np.isfinite(self.open_position) and np.isfinite(self.closed_position)):
            raise ValueError(f"gripper open/closed positions must be finite, got "
                             f"{self.open_position}, {self.closed_position}")
        if self.open_position == self.closed_position:
            raise ValueError(f"gripper open and closed positions are equal ({self.open_position})")

    @property
    def span(self) -> float:
        """x_closed - x_open, native units per unit closure."""
        return self.closed_position - self.open_position

    def to_closure(self, x):
        """Closure c of native position(s) ``x`` (not clipped)."""
        return (np.asarray(x, dtype=np.float64) - self.open_position) / self.span

    def to_native(self, c, clip: bool = True):
        """Native position(s) of closure ``c``, clipped to the open..closed range unless
        ``clip`` is False (a measured state, not a command)."""
        c = np.asarray(c, dtype=np.float64)
        return self.open_position + (np.clip(c, 0.0, 1.0) if clip else c) * self.span

"""A gamepad's sensor_msgs/Joy -> a TCP velocity command and a gripper request: pure functions.

The conventions are teleop_twist_joy's (an axis index per velocity component, -1 = unused, a
scale per component, an enable (deadman) button and a turbo button), with the velocity's six
components stated as one vector and a dead zone added::

    twist = [v_x, v_y, v_z, w_x, w_y, w_z]          (m/s, rad/s; REP-103 units)
    v_i   = scale_linear_i  * k * dz(axes[axis_linear_i])
    w_i   = scale_angular_i * k * dz(axes[axis_angular_i])      (i = x, y, z = roll, pitch, yaw)
    k     = turbo_factor while the turbo button is held, else 1

The frame of the twist is the teleop controller's ``twist_frame`` (``teleop.cartesian``); the
mapping only scales axes. The dead zone rescales so that the command is continuous and reaches
the full scale at full deflection::

    dz(a) = sign(a) (|a| - d) / (1 - d)   if |a| > d,   else 0          (d = deadzone in [0, 1))

(``ros2 run joy joy_node`` has its own ``deadzone``, 0.05 by default; ours removes the drift of
a worn stick that the driver's lets through.)

Enable: with ``require_enable_button`` the twist is ``enabled`` only while ``enable_button``
is held (a deadman: releasing it stops the arm); without it, every Joy message is enabled.

Gripper: while ``gripper_close_button`` is held the request is closure 1 (closed), while
``gripper_open_button`` is held 0 (open); both or neither held: no request (the controller
keeps the last one). The request is independent of the deadman: a button press is an explicit
discrete act, and the gripper's own speed limit (the safety layer) still applies.

Default indices: ros2 ``joy``'s ``game_controller_node`` (SDL GameController layout, sticks
+1 up / left): axes 0 left stick x, 1 left stick y, 2 right stick x, 3 right stick y; buttons
0 A, 1 B, 9 left shoulder, 10 right shoulder. So: left stick = TCP x/y, right stick up/down
= z, right stick left/right = yaw, hold LB to move (RB: turbo), A closes, B opens. Other
pads number differently: check with ``ros2 topic echo /joy`` and set the indices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["JoyMapping", "JoyCommand", "apply_deadzone", "joy_to_command"]


def _ints(*values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class JoyMapping:
    """Axis and button indices of a gamepad and their scales (module docstring)."""

    axis_linear: tuple[int, int, int] = _ints(1, 0, 3)            # x, y, z (-1 = unused)
    scale_linear_m_s: tuple[float, float, float] = (0.1, 0.1, 0.1)
    axis_angular: tuple[int, int, int] = _ints(-1, -1, 2)         # roll, pitch, yaw
    scale_angular_rad_s: tuple[float, float, float] = (0.5, 0.5, 0.5)
    deadzone: float = 0.1
    enable_button: int = 9
    require_enable_button: bool = True
    turbo_button: int = 10                                        # -1 = none
    turbo_factor: float = 2.0
    gripper_close_button: int = 0                                 # -1 = none
    gripper_open_button: int = 1                                  # -1 = none

    def __post_init__(self):
        for name in ("axis_linear", "scale_linear_m_s", "axis_angular", "scale_angular_rad_s"):
            if len(getattr(self, name)) != 3:
                raise ValueError(f"joy {name} must have 3 entries, got {list(getattr(self, name))}")
        if not all(np.isfinite(self.scale_linear_m_s)) or not all(np.isfinite(self.scale_angular_rad_s)):
            raise ValueError("joy scales must be finite")
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError(f"joy deadzone must be in [0, 1), got {self.deadzone}")
        if not (np.isfinite(self.turbo_factor) and self.turbo_factor > 0):
            raise ValueError(f"joy turbo_factor must be positive, got {self.turbo_factor}")
        if self.require_enable_button and self.enable_button < 0:
            raise ValueError("joy require_enable_button needs an enable_button >= 0")
        indices = (*self.axis_linear, *self.axis_angular, self.enable_button, self.turbo_button,
                   self.gripper_close_button, self.gripper_open_button)
        if any(i < -1 for i in indices):
            raise ValueError(f"joy axis and button indices must be >= 0 (or -1 = unused), got {list(indices)}")


@dataclass(frozen=True)
class JoyCommand:
    """One Joy message mapped: ``twist`` (6,) [v; w] in m/s, rad/s; ``enabled`` (the deadman
    is held, or none is required); ``gripper``: the requested closure (1 closed, 0 open) or None."""

    twist: np.ndarray
    enabled: bool
    gripper: float | None


def apply_deadzone(a: np.ndarray, deadzone: float) -> np.ndarray:
    """dz(a) = sign(a) (|a| - d) / (1 - d) where |a| > d, else 0 (elementwise)."""
    a = np.asarray(a, dtype=np.float64)
    return np.sign(a) * np.maximum(np.abs(a) - deadzone, 0.0) / (1.0 - deadzone)


def _pressed(buttons: Sequence[int], index: int) -> bool:
    return 0 <= index < len(buttons) and bool(buttons[index])


def joy_to_command(axes: Sequence[float], buttons: Sequence[int], mapping: JoyMapping | None = None) -> JoyCommand:
    """Map one Joy message (module docstring). ValueError for a non-finite axis, or a message
    with fewer axes than a configured index needs (a different pad: the mapping would read
    garbage, so the whole message is refused)."""
    mapping = mapping or JoyMapping()
    a = np.asarray(axes, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"non-finite joy axes {a.tolist()}")
    used = [i for i in (*mapping.axis_linear, *mapping.axis_angular) if i >= 0]
    if used and max(used) >= a.size:
        raise ValueError(f"joy message has {a.size} axes, the mapping reads axis {max(used)}")
    k = mapping.turbo_factor if _pressed(buttons, mapping.turbo_button) else 1.0
    values = apply_deadzone(a, mapping.deadzone)
    twist = np.zeros(6)
    for j, (index, scale) in enumerate(zip((*mapping.axis_linear, *mapping.axis_angular),
                                           (*mapping.scale_linear_m_s, *mapping.scale_angular_rad_s), strict=True)):
        if index >= 0:
            twist[j] = scale * k * values[index]
    enabled = _pressed(buttons, mapping.enable_button) if mapping.require_enable_button else True
    close = _pressed(buttons, mapping.gripper_close_button)
    open_ = _pressed(buttons, mapping.gripper_open_button)
    gripper = 1.0 if close and not open_ else 0.0 if open_ and not close else None
    return JoyCommand(twist, enabled, gripper)

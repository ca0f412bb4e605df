"""The ros2_control controllers sim_node plays, held to their contracts (no ROS import).

A simulator that accepts what no controller would proves nothing about the real wiring, so
sim_node takes commands exactly as these controllers of ros2_controllers do (Humble ..
Rolling; rules read from ``joint_trajectory_controller.cpp``, ``trajectory.cpp``,
``forward_controllers_base.cpp`` and the gripper action controllers):

:class:`TrajectoryController` (joint_trajectory_controller, ``~/joint_trajectory``)
    A message is rejected, whole, when its joints are not exactly the controller's
    (``allow_partial_joints_goal`` false: "Joints on incoming trajectory don't match the
    controller joints."; "Incoming joint X doesn't match the controller's joints."), has no
    joint names or no points, a point's positions (or non-empty velocities /
    accelerations) do not match the joint count, an effort field is set, ``time_from_start``
    is not strictly increasing after point 0, the last point's velocity is not zero
    (``allow_nonzero_velocity_at_trajectory_end`` false), or a non-zero ``header.stamp`` +
    the last ``time_from_start`` lies in the past. We also reject non-finite positions
    (JTC does not check). An accepted message replaces the running trajectory; at the
    next update the controller takes the *measured* state as the start knot (t_start, q)
    (``state_before_traj_msg``; ``interpolate_from_desired_state`` starts from the last
    command instead) and samples :func:`fdl_robot.core.trajectory.sample_linear`; a zero
    stamp means "start now", at that update. After the last point it holds it.

:class:`ForwardController` (forward_command_controller, ``~/commands``)
    ``Float64MultiArray`` data of exactly one value per joint, finite (Jazzy drops
    non-finite ones), applied as they are until the next message.

Before any command both hold the state they started in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fdl_robot.core.trajectory import sample_linear

__all__ = ["CommandRejected", "TrajectoryPoint", "JointCommand", "TrajectoryController",
           "ForwardController"]


class CommandRejected(ValueError):
    """A command the controller refuses, with the controller's reason."""


@dataclass(frozen=True)
class TrajectoryPoint:
    """One JointTrajectoryPoint as plain values (``time_from_start_ns``: integer ns)."""

    positions: Sequence[float]
    time_from_start_ns: int
    velocities: Sequence[float] = ()
    accelerations: Sequence[float] = ()
    effort: Sequence[float] = ()


@dataclass(frozen=True)
class JointCommand:
    """A validated trajectory in the controller's joint order: point j is due at
    ``stamp_ns`` (0 = the update that starts it) + ``offsets_ns[j]``, at ``positions[j]``."""

    offsets_ns: np.ndarray      # (m,) time_from_start, strictly increasing after point 0
    positions: np.ndarray       # (m, n) finite
    stamp_ns: int               # header.stamp, 0 = start at the next update


class TrajectoryController:
    """A JointTrajectoryController for ``joints`` (module docstring)."""

    def __init__(self, joints: Sequence[str], interpolate_from_desired_state: bool = False):
        self.joints = tuple(joints)
        self.interpolate_from_desired_state = interpolate_from_desired_state
        self._pending: JointCommand | None = None     # accepted, not started yet
        self._knots_ns: np.ndarray | None = None      # running trajectory, start knot first
        self._positions: np.ndarray | None = None
        self._last_target: np.ndarray | None = None

    def reset(self) -> None:
        """Drop every trajectory (a new episode: hold where the robot is)."""
        self._pending = self._knots_ns = self._positions = self._last_target = None

    def validate(self, names: Sequence[str], points: Sequence[TrajectoryPoint], stamp_ns: int,
                 now_ns: int) -> JointCommand:
        """The command of a JointTrajectory, or CommandRejected with the controller's reason."""
        self._check_joints(names)
        self._check_points(names, points)
        offsets = np.array([p.time_from_start_ns for p in points], dtype=np.int64)
        if stamp_ns != 0 and stamp_ns + int(offsets[-1]) < now_ns:
            raise CommandRejected(f"Received trajectory with non-zero start time ({stamp_ns * 1e-9:f}) that "
                                  f"ends in the past ({(stamp_ns + int(offsets[-1])) * 1e-9:f})")
        columns = [list(names).index(name) for name in self.joints]
        positions = np.asarray([p.positions for p in points], dtype=np.float64)[:, columns]
        if not np.all(np.isfinite(positions)):
            raise CommandRejected("Non-finite position (NaN or inf) in the trajectory.")
        return JointCommand(offsets, positions, int(stamp_ns))

    def _check_joints(self, names: Sequence[str]) -> None:
        n = len(self.joints)
        if not names:
            raise CommandRejected("Empty joint names on incoming trajectory.")
        if len(names) != n:
            raise CommandRejected(f"Joints on incoming trajectory don't match the controller joints "
                                  f"(got {list(names)}, controller has {list(self.joints)}).")
        for name in names:
            if name not in self.joints:
                raise CommandRejected(f"Incoming joint {name} doesn't match the controller's joints.")
        if len(set(names)) != len(names):
            raise CommandRejected(f"Duplicate joint names {list(names)}.")

    def _check_points(self, names: Sequence[str], points: Sequence[TrajectoryPoint]) -> None:
        n = len(self.joints)
        if not points:
            raise CommandRejected("Empty trajectory received.")
        for j, p in enumerate(points):
            for field in ("positions", "velocities", "accelerations"):
                size = len(getattr(p, field))
                if (field == "positions" or size) and size != n:
                    raise CommandRejected(f"Mismatch between joint_names size ({n}) and {field} ({size}) "
                                          f"at point #{j}.")
            if len(p.effort):
                raise CommandRejected("Trajectories with effort fields are currently not supported.")
        offsets = np.array([p.time_from_start_ns for p in points], dtype=np.int64)
        bad = np.flatnonzero(np.diff(offsets) <= 0)
        if len(bad):
            i = int(bad[0])
            raise CommandRejected(f"Time between points {i} and {i + 1} is not strictly increasing, it is "
                                  f"{offsets[i] * 1e-9:f} and {offsets[i + 1] * 1e-9:f} respectively")
        last_v = np.asarray(points[-1].velocities, dtype=np.float64)
        if len(last_v) and np.any(np.abs(last_v) > np.finfo(np.float32).eps):
            k = int(np.flatnonzero(np.abs(last_v) > np.finfo(np.float32).eps)[0])
            raise CommandRejected(f"Velocity of last trajectory point of joint {names[k]} is not zero: "
                                  f"{last_v[k]:.15f}")

    def take(self, command: JointCommand) -> None:
        """Replace the running trajectory; it starts at the next :meth:`update`."""
        self._pending = command

    def update(self, now_ns: int, q_measured: np.ndarray) -> np.ndarray | None:
        """The position reference at ``now_ns`` (n,), or None before any command."""
        if self._pending is not None:
            cmd, self._pending = self._pending, None
            start_ns = cmd.stamp_ns or now_ns
            q_start = (self._last_target if self.interpolate_from_desired_state and self._last_target is not None
                       else np.asarray(q_measured, dtype=np.float64))
            self._knots_ns = np.concatenate([[now_ns], start_ns + cmd.offsets_ns])
            self._positions = np.vstack([q_start[None], cmd.positions])
            if self._knots_ns[1] < now_ns:        # a past stamp: start mid-trajectory
                self._knots_ns[0] = self._knots_ns[1]
        if self._knots_ns is None:
            return None
        self._last_target = sample_linear(self._knots_ns, self._positions, now_ns)[0]
        return self._last_target


class ForwardController:
    """A forward_command_controller for ``joints``: the last valid command, as it is."""

    def __init__(self, joints: Sequence[str]):
        self.joints = tuple(joints)
        self.command: np.ndarray | None = None

    def reset(self) -> None:
        self.command = None

    def validate(self, data: Sequence[float]) -> np.ndarray:
        values = np.asarray(data, dtype=np.float64)
        if values.shape != (len(self.joints),):
            raise CommandRejected(f"command size ({values.size}) does not match number of interfaces "
                                  f"({len(self.joints)})")
        if not np.all(np.isfinite(values)):
            raise CommandRejected("Non-finite value received. Dropping message")
        return values

    def take(self, values: np.ndarray) -> None:
        self.command = values

    def update(self, _now_ns: int, _q_measured: np.ndarray) -> np.ndarray | None:
        return self.command

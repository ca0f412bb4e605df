"""Cartesian teleoperation: a TCP velocity -> a TCP target -> IK -> the safety layer -> joints.

Pure numpy (no ROS, no clock): ``teleop_node`` parses Joy / Twist / JointState messages into
the plain values below, calls :meth:`Teleop.step` once per control period and publishes what
it returns, exactly as ``policy_node`` does with :class:`~fdl_robot.policy.runner.PolicyRunner`
(the same command vector, the same :class:`~fdl_robot.core.safety.SafetyLayer` and limits,
the same publishers). A test or a recorder can drive the same object without a ROS graph.

Velocity command
----------------
``twist = [v; w]`` (6,): the TCP's linear velocity v (m/s) and angular velocity w (rad/s,
about the TCP's origin), REP-103 units. ``twist_frame`` says in which axes:

* ``base`` (default): base_link's axes (x forward, y left, z up), what a spacemouse or a
  gamepad operator standing at the robot expects; MoveIt Servo's "planning frame" convention;
* ``tool``: the TCP frame's axes (z = approach), what a wrist-camera view suggests.

Each part is limited in norm, keeping its direction: ``v <- v min(1, v_max / |v|)``, ``w``
likewise with ``w_max`` (``max_linear_speed_m_s``, ``max_angular_speed_rad_s``).

Integration (once per control period dt = 1 / control_rate_hz; a late tick is not made up,
so under load the TCP moves slower, never faster). With v, w in base axes::

    p*_{k+1} = clamp_box(p*_k + v dt)                 workspace box, base_link, metres
    R*_{k+1} = exp([w dt]x) R*_k                     (tool axes: R*_k exp([w_tool dt]x), the same)

The box (``workspace_min_m``, ``workspace_max_m``) limits the TCP position only; orientation
is free (the joint limits still bound it).

Joints: ``solve_ik(p*, R*)`` (:mod:`fdl_robot.core.kinematics`, DLS on the URDF's ``tcp`` frame)
warm-started at the previous command (so the IK stays on the arm's branch and a zero twist
reproduces the previous command exactly), the gripper's closure appended, then
``SafetyLayer.filter`` with policy_node's limits (position box, rate limit v_max dt relative
to the previous command, tracking error e_max relative to the measured state).

No wind-up: when the IK does not reach p*, R* (outside the reachable set, a singularity) or
the safety layer changes an arm joint, the target is reset to the pose actually commanded,
``(p*, R*) = FK(q_cmd)``. The target therefore never runs ahead of the arm: pushing the stick
against a limit and letting go does not leave a backlog of motion to catch up.

Inputs and freshness (:class:`Teleop`)
--------------------------------------
* Joint states: merged by name (:class:`~fdl_robot.policy.joint_states.JointStateMerger`),
  fresh when received within ``input_timeout_s`` (a :class:`~fdl_robot.core.safety.Watchdog`).
* ``joy`` (:mod:`fdl_robot.teleop.joy`) and ``cmd_vel`` (a twist): fresh when received within
  ``command_timeout_s``. The motion source is the joystick while it is fresh and enabled (its
  deadman held), else cmd_vel while it is fresh, else none. A message with NaN or inf is
  rejected (:class:`~fdl_robot.policy.inputs.InputError`) and does not refresh its source.
* Gripper: the last request (a Joy button, or :meth:`Teleop.set_gripper`) is kept until the
  next one.

The control step (:class:`~fdl_robot.policy.inputs.StepKind`, as policy_node's):

* ``WAIT``: a joint never received: nothing to command;
* ``HOLD``: the joint states just went stale or invalid, or the motion source just went away
  (joystick and cmd_vel both stale, deadman released): command ONE hold at the measured
  position (zero velocity, the gripper at its last command), then
* ``STALE``: publish nothing until a motion source (or a new gripper request) is back;
* ``ACT``: a motion source, or a gripper request not yet reached: the command of this step.

A step that resumes after a hold (or the first one) starts the target at the *measured* TCP
pose and rate-limits from the measured joints: no jump to an old target, no drift while held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fdl_robot.core.kinematics import TCP_FRAME, IkResult, rotation_exp, solve_ik
from fdl_robot.core.robot import CONTROL_RATE_HZ, N_ARM_JOINTS
from fdl_robot.core.safety import JointLimits, SafetyLayer, SafetyResult, Watchdog
from fdl_robot.policy.inputs import InputError, StepKind, add_joint_state
from fdl_robot.policy.joint_states import JointStateMerger
from fdl_robot.teleop.joy import JoyCommand, JoyMapping, joy_to_command

__all__ = ["TWIST_FRAMES", "TeleopConfig", "limit_twist", "twist_in_base", "integrate_pose",
           "clamp_to_workspace", "CartesianOutput", "CartesianController", "TeleopStep", "Teleop"]

TWIST_FRAMES = ("base", "tool")
#: Motion sources, in priority order.
JOY, CMD_VEL = "joy", "cmd_vel"
#: A gripper request counts as reached within this closure.
_GRIPPER_REACHED = 1e-6


@dataclass(frozen=True)
class TeleopConfig:
    """Rates, limits, workspace and timeouts of Cartesian teleoperation; defaults are teleop_node's.

    The workspace box holds the simulated cell's table region (cubes at x 0.35-0.60, y
    -0.25-0.10, bin at x 0.38-0.55, y 0.30-0.40; home TCP at (0.49, 0.13, 0.35)) with the
    fingertips above the table (TCP z >= 0.015 m).
    """

    control_rate_hz: float = CONTROL_RATE_HZ
    twist_frame: str = "base"
    max_linear_speed_m_s: float = 0.25
    max_angular_speed_rad_s: float = 1.0
    workspace_min_m: tuple[float, float, float] = (0.2, -0.45, 0.015)
    workspace_max_m: tuple[float, float, float] = (0.8, 0.55, 0.55)
    command_timeout_s: float = 0.25
    input_timeout_s: float = 0.5
    tcp_frame: str = TCP_FRAME
    ik_max_iterations: int = 20
    ik_position_tolerance_m: float = 1e-4
    ik_orientation_tolerance_rad: float = 1e-3

    def __post_init__(self):
        if self.twist_frame not in TWIST_FRAMES:
            raise ValueError(f"twist_frame must be one of {list(TWIST_FRAMES)}, got '{self.twist_frame}'")
        positive = {"control_rate_hz": self.control_rate_hz, "max_linear_speed_m_s": self.max_linear_speed_m_s,
                    "max_angular_speed_rad_s": self.max_angular_speed_rad_s,
                    "command_timeout_s": self.command_timeout_s, "input_timeout_s": self.input_timeout_s,
                    "ik_position_tolerance_m": self.ik_position_tolerance_m,
                    "ik_orientation_tolerance_rad": self.ik_orientation_tolerance_rad}
        for name, value in positive.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive and finite, got {value}")
        if self.ik_max_iterations < 1:
            raise ValueError(f"ik_max_iterations must be >= 1, got {self.ik_max_iterations}")
        lo, hi = np.asarray(self.workspace_min_m, float), np.asarray(self.workspace_max_m, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo) & np.isfinite(hi)) or np.any(lo > hi):
            raise ValueError(f"workspace_min_m and workspace_max_m must be 3 finite numbers each, min <= max; got "
                             f"{list(self.workspace_min_m)} and {list(self.workspace_max_m)}")

    @property
    def dt_s(self) -> float:
        return 1.0 / self.control_rate_hz


# --- pure functions -----------------------------------------------------------------------

def limit_twist(twist: np.ndarray, max_linear_m_s: float, max_angular_rad_s: float) -> np.ndarray:
    """[v; w] with |v| <= max_linear and |w| <= max_angular, each scaled along its direction."""
    t = np.asarray(twist, dtype=np.float64).reshape(6).copy()
    for part, limit in ((slice(0, 3), max_linear_m_s), (slice(3, 6), max_angular_rad_s)):
        norm = float(np.linalg.norm(t[part]))
        if norm > limit:
            t[part] *= limit / norm
    return t


def twist_in_base(twist: np.ndarray, R_base_tcp: np.ndarray, frame: str) -> np.ndarray:
    """The twist in base axes: itself (``base``) or [R v; R w] (``tool``: given in TCP axes)."""
    t = np.asarray(twist, dtype=np.float64).reshape(6)
    if frame == "base":
        return t.copy()
    if frame == "tool":
        return np.concatenate([R_base_tcp @ t[:3], R_base_tcp @ t[3:]])
    raise ValueError(f"twist frame must be one of {list(TWIST_FRAMES)}, got '{frame}'")


def integrate_pose(p: np.ndarray, R: np.ndarray, twist_base: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(p + v dt, exp([w dt]x) R) for a twist [v; w] in base axes (module docstring)."""
    t = np.asarray(twist_base, dtype=np.float64).reshape(6)
    return np.asarray(p, dtype=np.float64) + t[:3] * dt_s, rotation_exp(t[3:] * dt_s) @ np.asarray(R, dtype=np.float64)


def clamp_to_workspace(p: np.ndarray, lower_m: Sequence[float], upper_m: Sequence[float]) -> np.ndarray:
    """The position clipped into the box [lower, upper] (elementwise, metres)."""
    return np.clip(np.asarray(p, dtype=np.float64), np.asarray(lower_m, float), np.asarray(upper_m, float))


# --- the controller -----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class CartesianOutput:
    """One step: ``command`` (7,) after the safety layer; ``target_p``/``target_R``: the TCP
    target integrated this step (before the no-wind-up reset); ``ik``; ``safety``; ``clamped``:
    the workspace box changed the target; ``rebased``: the target was reset to FK(command)."""

    command: np.ndarray
    target_p: np.ndarray
    target_R: np.ndarray
    ik: IkResult
    safety: SafetyResult
    clamped: bool
    rebased: bool


class CartesianController:
    """Twist -> joint command, one control step at a time (module docstring)."""

    def __init__(self, config: TeleopConfig, limits: JointLimits, model=None):
        """``model``: the arm's :class:`~fdl_robot.core.robot_model.RobotModel` (default the
        simulated UR5e's URDF); ``limits``: 6 arm joints + the gripper, as policy_node's."""
        if limits.n != N_ARM_JOINTS + 1:
            raise ValueError(f"limits must cover {N_ARM_JOINTS + 1} joints (6 arm + gripper), got {limits.n}")
        if model is None:
            from fdl_robot.core.robot_model import ur5e_gripper

            model = ur5e_gripper()
        self.config, self.model = config, model
        self.safety = SafetyLayer(limits)
        model.frame_pose(np.zeros(model.n_joints), config.tcp_frame)       # an unknown frame fails here
        self.reset()

    def reset(self) -> None:
        """Forget the target and the last command: the next step starts at the measured pose."""
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.last_command: np.ndarray | None = None

    def tcp_pose(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p, R) of the TCP frame in base_link at arm joints q_arm (6,)."""
        T = self.model.frame_pose(np.asarray(q_arm, dtype=np.float64), self.config.tcp_frame)
        return T[:3, 3].copy(), T[:3, :3].copy()

    def step(self, q_meas: np.ndarray, twist: np.ndarray, gripper: float | None = None,
             frame: str | None = None) -> CartesianOutput:
        """This step's command (7,) for the measured joints ``q_meas`` (7,: arm rad + closure),
        a twist [v; w] in ``frame`` axes ('base' or 'tool'; None: ``twist_frame``) and the
        gripper's requested closure (None: keep the last command's, or the measured one at the
        start)."""
        c = self.config
        q_meas = np.asarray(q_meas, dtype=np.float64).reshape(N_ARM_JOINTS + 1)
        q_start = self.last_command if self.last_command is not None else q_meas
        if self.target is None:
            self.target = self.tcp_pose(q_meas[:N_ARM_JOINTS])
        p, R = self.target
        t = limit_twist(twist_in_base(twist, R, frame or c.twist_frame), c.max_linear_speed_m_s,
                        c.max_angular_speed_rad_s)
        p_new, R_new = integrate_pose(p, R, t, c.dt_s)
        p_box = clamp_to_workspace(p_new, c.workspace_min_m, c.workspace_max_m)
        ik = solve_ik(p_box, R_new, q_start[:N_ARM_JOINTS], model=self.model, frame=c.tcp_frame,
                      max_iterations=c.ik_max_iterations, position_tolerance_m=c.ik_position_tolerance_m,
                      orientation_tolerance_rad=c.ik_orientation_tolerance_rad)
        closure = q_start[N_ARM_JOINTS] if gripper is None else float(gripper)
        result = self.safety.filter(np.append(ik.q_rad, closure), q_meas, c.dt_s, self.last_command)
        self.last_command = result.q_cmd_rad
        arm_changed = result.rejected or bool(
            (result.position_clipped | result.velocity_limited | result.tracking_limited)[:N_ARM_JOINTS].any())
        rebased = arm_changed or not ik.converged
        self.target = self.tcp_pose(result.q_cmd_rad[:N_ARM_JOINTS]) if rebased else (p_box, R_new)
        return CartesianOutput(result.q_cmd_rad, p_box, R_new, ik, result,
                               bool(np.any(p_box != p_new)), rebased)


# --- inputs, freshness, the control step --------------------------------------------------

@dataclass(frozen=True)
class TeleopStep:
    """What one control step does (module docstring). ``command`` (7,) (ACT); ``q_hold`` (7,),
    the measured joints (HOLD); ``source``: 'joy', 'cmd_vel', 'gripper' (a gripper request
    alone) or None; ``stale``: why there is no motion (inputs by name, or 'deadman released');
    ``recovered``: this ACT step resumes after a hold; ``output``: the controller's details (ACT)."""

    kind: StepKind
    command: np.ndarray | None = None
    q_hold: np.ndarray | None = None
    source: str | None = None
    stale: tuple[str, ...] = ()
    recovered: bool = False
    output: CartesianOutput | None = None


class Teleop:
    """The latest operator and robot inputs, their freshness, and the controller's step."""

    def __init__(self, config: TeleopConfig, limits: JointLimits, joints: JointStateMerger,
                 joy_mapping: JoyMapping | None = None, model=None):
        self.config, self.joy_mapping, self.joints = config, joy_mapping or JoyMapping(), joints
        self.controller = CartesianController(config, limits, model)
        self.joint_watchdog = Watchdog(config.input_timeout_s)
        self.command_watchdog = Watchdog(config.command_timeout_s)
        self.joy: JoyCommand | None = None
        self.joy_arrival_s: float | None = None
        self.twist: np.ndarray | None = None
        self.twist_frame: str = config.twist_frame
        self.twist_arrival_s: float | None = None
        self.gripper_request: float | None = None
        self.active = False                 # commanding (the last step was ACT)

    def reset(self) -> None:
        """New episode: forget the operator's inputs, the gripper request and the target."""
        self.joy = self.twist = self.joy_arrival_s = self.twist_arrival_s = None
        self.gripper_request = None
        self.active = False
        self.controller.reset()
        self.joint_watchdog.reset()
        self.joints.reset()

    @property
    def q(self) -> np.ndarray | None:
        return self.joints.positions()

    # --- inputs -------------------------------------------------------------------------

    def add_joint_state(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int, now_s: float) -> bool:
        """As :meth:`PolicyInputs.add_joint_state`: InputError if rejected; True on a new time
        base (the target and the last command are then forgotten)."""
        new_time_base = add_joint_state(self.joints, names, positions, stamp_ns, now_s)
        if new_time_base:
            self.joint_watchdog.reset()
            self.controller.reset()
        return new_time_base

    def add_joy(self, axes: Sequence[float], buttons: Sequence[int], now_s: float) -> JoyCommand:
        """Take a Joy message received at ``now_s``; InputError ('bad joy') if rejected."""
        try:
            command = joy_to_command(axes, buttons, self.joy_mapping)
        except ValueError as exc:
            raise InputError("bad joy", str(exc)) from None
        self.joy, self.joy_arrival_s = command, now_s
        if command.gripper is not None:
            self.gripper_request = command.gripper
        return command

    def add_twist(self, linear: Sequence[float], angular: Sequence[float], now_s: float,
                  frame: str | None = None) -> None:
        """Take a twist (m/s, rad/s in ``frame`` axes, 'base' or 'tool'; None: ``twist_frame``)
        received at ``now_s``; InputError ('bad cmd_vel') if any component is NaN or inf."""
        twist = np.asarray([*linear, *angular], dtype=np.float64)
        if twist.shape != (6,) or not np.all(np.isfinite(twist)):
            raise InputError("bad cmd_vel", f"non-finite twist {twist.tolist()}")
        if frame is not None and frame not in TWIST_FRAMES:
            raise ValueError(f"twist frame must be one of {list(TWIST_FRAMES)}, got '{frame}'")
        self.twist, self.twist_arrival_s = twist, now_s
        self.twist_frame = frame or self.config.twist_frame

    def set_gripper(self, closure: float) -> None:
        """Request a gripper closure in [0, 1] (a service, a script)."""
        if not (np.isfinite(closure) and 0.0 <= closure <= 1.0):
            raise ValueError(f"gripper closure must be in [0, 1], got {closure}")
        self.gripper_request = float(closure)

    # --- the control step ---------------------------------------------------------------

    def motion(self, now_s: float) -> tuple[str | None, np.ndarray | None, str, tuple[str, ...]]:
        """(source, twist, its frame, why not): the joystick if fresh and enabled, else cmd_vel
        if fresh, else (None, None, '', the reasons)."""
        fresh = self.command_watchdog.check(now_s, {JOY: self.joy_arrival_s, CMD_VEL: self.twist_arrival_s})
        joy_fresh, twist_fresh = JOY not in fresh.stale, CMD_VEL not in fresh.stale
        if joy_fresh and self.joy.enabled:
            return JOY, self.joy.twist, self.config.twist_frame, ()
        if twist_fresh:
            return CMD_VEL, self.twist, self.twist_frame, ()
        why = tuple(f"{name} stale" for name, ok in ((JOY, joy_fresh), (CMD_VEL, twist_fresh)) if not ok)
        return None, None, "", (("deadman released",) if joy_fresh else ()) + why

    def _gripper_pending(self) -> bool:
        if self.gripper_request is None:
            return False
        last = self.controller.last_command
        current = last[N_ARM_JOINTS] if last is not None else self.q[N_ARM_JOINTS]
        return abs(current - self.gripper_request) > _GRIPPER_REACHED

    def step(self, now_s: float) -> TeleopStep:
        """Decide and compute this control step at ``now_s`` (module docstring)."""
        q = self.q
        if q is None:
            return TeleopStep(StepKind.WAIT, stale=self.joints.missing)
        status = self.joint_watchdog.update(now_s, self.joints.arrivals(), valid=self.joints.validity())
        if not status.ok:
            return self._stop(q, status.stale, force=status.entered)
        source, twist, frame, why = self.motion(now_s)
        if source is None and self._gripper_pending():
            source, twist, frame = "gripper", np.zeros(6), self.config.twist_frame
        if source is None:
            return self._stop(q, why)
        recovered = not self.active
        if recovered:
            self.controller.reset()             # start at the measured pose
        self.active = True
        out = self.controller.step(q, twist, self.gripper_request, frame)
        return TeleopStep(StepKind.ACT, command=out.command, source=source, recovered=recovered, output=out)

    def _stop(self, q: np.ndarray, why: tuple[str, ...], force: bool = False) -> TeleopStep:
        """One HOLD when commanding stops (or ``force``: the joints just went stale), then STALE."""
        hold = self.active or force
        self.active = False
        self.controller.reset()
        return TeleopStep(StepKind.HOLD if hold else StepKind.STALE, q_hold=q, stale=why)

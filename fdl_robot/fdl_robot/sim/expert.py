"""Scripted pick-and-place expert: Cartesian waypoints, min-jerk timing, DLS IK.

The expert reads the same observation a policy gets (ground-truth object poses
included) and emits the same action: absolute joint targets (6, rad) + gripper
command (0 open, 1 closed).  From the first observation it plans tool-centre-point
(TCP) waypoints in base_link, all with the tool pointing straight down::

    approach  start pose          -> above the cube (pregrasp_height_m)   gripper open
    descend                       -> cube centre (+ grasp_offset_m)       open
    close     hold                                                        closed
    lift                          -> carry height                         closed
    carry                         -> above the bin centre                 closed
    lower                         -> release height (cube above the rim)  closed
    release   hold                                                        open
    retreat                       -> retreat height                       open

The gripper yaw is the cube's yaw modulo 90 deg closest to the arm's natural yaw
at that place (so wrist 3 turns at most 45 deg); the fingers then close on two
opposite faces.  Each segment follows a minimum-jerk profile in position,

    p(t) = p0 + (p1 - p0) s(t/T),   s(x) = 10x^3 - 15x^4 + 6x^5,

(peak speed 1.875 |p1 - p0| / T) and the geodesic R(t) = R0 exp(s log(R0^T R1))
in orientation; T is chosen so that the peak TCP speed and yaw rate stay under
their limits.  Every control step the TCP target is converted to joints by
damped-least-squares IK warm-started at the previous command, and the joint
command is rate-limited to ``max_joint_speed_rad_s``.

During lift, carry and lower the expert checks at every step that the cube has not
fallen below the fingers, and at each segment's end that it is between them; if not (a
missed or lost grasp), it opens and replans from the
cube's current pose, at most ``max_retries`` times.  Nothing is attached magically: the
cube is held by friction only.

Objects that move (``sim.perturbations``).  Each waypoint is tied to the object it is
planned from: the grasp waypoints to the cube, the place waypoints to the bin.  Until
the close starts (the cube) or the release starts (the bin), every waypoint tied to an
object is moved by that object's displacement since the plan, plus its velocity times
``lead_s`` (pursuit: a cube on a conveyor is met where it will be).  An object moving
faster than ``replan_speed_m_s`` (pushed, thrown, a bin carried away) is not chased:
the expert holds its pose until the object moves slower than ``settle_speed_m_s``, then
replans the rest of the task from where it is (``replans`` counts them).  Velocities are
finite differences of the observed positions.

Kinematics: forward kinematics and IK (:func:`fdl_robot.core.kinematics.solve_ik`) run
on the arm's URDF model (:func:`fdl_robot.core.robot_model.ur5e_gripper`, frame ``tcp``)
in base_link. The MuJoCo world frame is base_link and the MJCF arm is the same chain
(``sim/scene.py``; the constructor checks the model's ``tcp`` site against the URDF), so
observation poses are used directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import mujoco
import numpy as np

from fdl_robot.core import kinematics
from fdl_robot.core.kinematics import TCP_FRAME, down_rotation, rotation_exp, rotation_log
from fdl_robot.core.robot import ARM_JOINT_NAMES, CONTROL_DT_S
from fdl_robot.core.robot_model import RobotModel, ur5e_gripper
from fdl_robot.sim import scene

__all__ = ["ExpertConfig", "Segment", "ScriptedExpert", "EpisodeResult", "run_expert_episode", "min_jerk",
           "min_jerk_rate",
           "check_model_matches_core_chain"]


def min_jerk(x: float) -> float:
    """Minimum-jerk time scaling s(x) = 10x^3 - 15x^4 + 6x^5 on x in [0, 1] (clipped)."""
    x = min(max(x, 0.0), 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


def min_jerk_rate(x: float) -> float:
    """ds/dx = 30 x^2 (1 - x)^2 of :func:`min_jerk` (0 outside [0, 1]); divide by T for ds/dt."""
    if not 0.0 < x < 1.0:
        return 0.0
    return 30.0 * x * x * (1.0 - x) ** 2


def _wrap(angle_rad: float) -> float:
    """Angle wrapped to (-pi, pi]."""
    return float(np.pi - (np.pi - angle_rad) % (2.0 * np.pi))


def _yaw_of(R: np.ndarray) -> float:
    """Yaw of a frame's x axis about world z: atan2(R_10, R_00)."""
    return float(np.arctan2(R[1, 0], R[0, 0]))


@dataclass(frozen=True)
class ExpertConfig:
    """Heights are TCP z in base_link [m] unless stated; speeds are peak values."""

    max_speed_m_s: float = 0.5
    descend_speed_m_s: float = 0.18
    lift_speed_m_s: float = 0.3
    max_yaw_rate_rad_s: float = 1.5
    min_segment_s: float = 0.25
    pregrasp_height_m: float = 0.10  # above the cube centre
    grasp_offset_m: float = 0.005  # TCP above the cube centre at grasp
    carry_height_m: float = 0.18
    release_height_m: float = 0.13  # cube bottom 3 cm above the 8 cm rim
    retreat_height_m: float = 0.28
    close_duration_s: float = 0.5
    open_duration_s: float = 0.4
    max_joint_speed_rad_s: float = 2.0
    #: The grasp is held when the cube centre is within this distance of the TCP.
    hold_tolerance_m: float = 0.03
    max_retries: int = 3
    #: An object the plan follows moving faster than this is a disturbance: hold, then replan.
    replan_speed_m_s: float = 0.15
    #: ... once it moves slower than this (above the conveyor's 8 cm/s).
    settle_speed_m_s: float = 0.10
    #: Pursuit lead: waypoints tied to a slowly moving object go where it will be this much later.
    lead_s: float = 0.15
    #: IK tolerances and iteration cap per control step (warm-started at the previous command).
    ik_position_tolerance_m: float = 2e-4
    ik_orientation_tolerance_rad: float = 2e-3
    ik_max_iterations: int = 50
    #: Turn the gripper to the cube's yaw (mod 90 deg).  False grasps at the arm's
    #: natural yaw and lets the closing fingers square the cube up, i.e. what a
    #: policy that only sees the cube's position (not its yaw) can do.
    align_yaw: bool = True


#: The objects a waypoint can be tied to (module doc, "Objects that move").
CUBE, BIN = "cube", "bin"
#: Phases during which the cube's (bin's) displacement still moves the waypoints tied to it.
_FOLLOW_PHASES = {CUBE: ("reopen", "back_off", "approach", "descend"),
                  BIN: ("reopen", "back_off", "approach", "descend", "close", "lift", "carry", "lower")}


@dataclass(frozen=True, eq=False)
class Segment:
    """One TCP motion: min-jerk from (p0, R0) to (p1, R1) over ``duration_s`` with a fixed gripper command.

    ``tied`` names the object (``CUBE``, ``BIN`` or None) each end point was planned from:
    :meth:`sample` moves that end by the object's offset.
    """

    name: str
    p0: np.ndarray
    R0: np.ndarray
    p1: np.ndarray
    R1: np.ndarray
    duration_s: float
    gripper: float
    check_hold: bool = False
    tied: tuple[str | None, str | None] = (None, None)

    def sample(self, t_s: float, offsets: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """TCP target (p (3,), R (3, 3)) at ``t_s`` seconds into the segment, each end moved by
        ``offsets[tied]`` (m, base_link) where given."""
        s = min_jerk(t_s / self.duration_s) if self.duration_s > 0 else 1.0
        a, b = self.end_points(offsets)
        p = a + s * (b - a)
        R = self.R0 @ rotation_exp(s * rotation_log(self.R0.T @ self.R1))
        return p, R

    def end_points(self, offsets: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(p0, p1) moved by the offsets of the objects they are tied to."""
        offsets = offsets or {}
        zero = np.zeros(3)
        return (self.p0 + offsets.get(self.tied[0], zero) if self.tied[0] else self.p0,
                self.p1 + offsets.get(self.tied[1], zero) if self.tied[1] else self.p1)


def check_model_matches_core_chain(model: mujoco.MjModel, atol_m: float = 1e-6,
                                   robot: RobotModel | None = None) -> None:
    """Raise ValueError unless ``model``'s ``tcp`` site follows the URDF's ``tcp`` (at home and q = 0).

    ``robot`` is the URDF model the expert plans with (default :func:`ur5e_gripper`).
    """
    robot = ur5e_gripper() if robot is None else robot
    data = mujoco.MjData(model)
    qpos_adr = [model.joint(name).qposadr[0] for name in ARM_JOINT_NAMES]
    for q in (kinematics.HOME_QPOS_RAD, np.zeros(len(ARM_JOINT_NAMES))):
        data.qpos[qpos_adr] = q
        mujoco.mj_kinematics(model, data)
        error_m = float(np.linalg.norm(data.site(scene.TCP_SITE).xpos - robot.frame_pose(q, TCP_FRAME)[:3, 3]))
        if error_m > atol_m:
            raise ValueError(f"the model's {scene.TCP_SITE!r} site is {error_m:.2e} m off the URDF's "
                             f"{TCP_FRAME!r} frame")


class ScriptedExpert:
    """The waypoint expert; call :meth:`reset` per episode and :meth:`act` per control step.

    ``model``, if given, is the MuJoCo model the actions will drive; it is checked to carry
    the kinematic chain the expert plans with (:func:`check_model_matches_core_chain`).
    ``robot`` is that chain, the arm's URDF model (default :func:`ur5e_gripper`): FK of its
    ``tcp`` frame and the IK.
    """

    def __init__(self, model: mujoco.MjModel | None = None, config: ExpertConfig | None = None,
                 robot: RobotModel | None = None):
        self.config = config if config is not None else ExpertConfig()
        self.robot = ur5e_gripper() if robot is None else robot
        if model is not None:
            check_model_matches_core_chain(model, robot=self.robot)
        self.reset()

    def reset(self) -> None:
        """Forget the plan; the next :meth:`act` plans from its observation."""
        self._segments: list[Segment] = []
        self._t_plan_s = 0.0
        self._index = 0
        self._q_cmd: np.ndarray | None = None
        self._t_last_s: float | None = None
        self.retries = 0
        self.replans = 0
        self.ik_failures = 0
        self._planned: dict[str, np.ndarray] = {}        # object positions the plan was made from
        self._offsets: dict[str, np.ndarray] = {}        # their displacement since (+ lead)
        self._seen: dict[str, np.ndarray] = {}           # last observed positions
        self._velocity: dict[str, np.ndarray] = {}       # and velocities (m/s)
        self._disturbed = False
        self._hold_pose: tuple[np.ndarray, np.ndarray] | None = None
        self._last_target: tuple[np.ndarray, np.ndarray] | None = None
        self._last_gripper = 0.0

    # -------------------------------------------------------------- queries
    @property
    def phase(self) -> str:
        """Name of the current segment ('done' after the retreat)."""
        return self._segments[self._index].name if self._index < len(self._segments) else "done"

    @property
    def tcp_target(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(p (3,), R (3, 3), gripper): the TCP pose in base_link and the gripper command the last
        :meth:`act` aimed at (before IK and the joint-speed limit); None before the first."""
        if self._last_target is None:
            return None
        return self._last_target[0].copy(), self._last_target[1].copy(), float(self._last_gripper)

    @property
    def done(self) -> bool:
        """True once the retreat segment is finished (or the retries ran out)."""
        return bool(self._segments) and self._index >= len(self._segments)

    # ---------------------------------------------------------------- policy
    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """Action (7,) = [joint targets (6, rad), gripper (0 open / 1 closed)] for ``obs``."""
        t = float(obs["time_s"])
        self._observe(obs, t)
        if self._q_cmd is None:
            self._q_cmd = np.asarray(obs["qpos"], dtype=np.float64).copy()
            p, R = self._tcp_pose(self._q_cmd)
            self._last_target = (p, R)
            self._plan_pick_and_place(obs, p, R, t, opening=False)
        self._follow_objects()

        self._react_to_disturbance(obs, t)
        self._advance(obs, t)
        (p_des, R_des), gripper = self._target(t)
        self._last_target, self._last_gripper = (p_des, R_des), gripper

        c = self.config
        result = kinematics.solve_ik(p_des, R_des, self._q_cmd, model=self.robot, frame=TCP_FRAME,
                                     position_tolerance_m=c.ik_position_tolerance_m,
                                     orientation_tolerance_rad=c.ik_orientation_tolerance_rad,
                                     max_iterations=c.ik_max_iterations)
        if not result.converged:
            self.ik_failures += 1
        dt = CONTROL_DT_S if self._t_last_s is None else max(t - self._t_last_s, 1e-3)
        max_dq = self.config.max_joint_speed_rad_s * dt
        self._q_cmd = self._q_cmd + np.clip(result.q_rad - self._q_cmd, -max_dq, max_dq)
        self._t_last_s = t
        return np.concatenate([self._q_cmd, [gripper]])

    def _react_to_disturbance(self, obs: dict[str, Any], t: float) -> None:
        """A followed object moving fast: hold still until it settles, then replan from here."""
        if self._disturbed or self._followed_speed() > self.config.replan_speed_m_s:
            if not self._disturbed:
                self._disturbed, self._hold_pose = True, self._last_target
            if self._followed_speed() < self.config.settle_speed_m_s:
                self._disturbed = False
                self.replans += 1
                self._replan(obs, *self._hold_pose, t)
                self._follow_objects()

    def _advance(self, obs: dict[str, Any], t: float) -> None:
        """Advance through finished segments, checking the grasp where asked (retry or give up)."""
        while not self._disturbed and self._index < len(self._segments):
            seg = self._segments[self._index]
            ended = t - self._t_plan_s >= seg.duration_s - 1e-9
            if seg.check_hold and not self._holding(obs, at_rest=ended):
                if self.retries < self.config.max_retries:
                    self.retries += 1
                    p, R = seg.sample(min(t - self._t_plan_s, seg.duration_s), self._offsets)
                    self._plan_pick_and_place(obs, p, R, t, opening=True)
                    self._follow_objects()
                    continue
                self._segments = self._segments[: self._index]  # give up: stop here
                break
            if not ended:
                break
            self._t_plan_s += seg.duration_s
            self._index += 1

    def _target(self, t: float) -> tuple[tuple[np.ndarray, np.ndarray], float]:
        """((p_des, R_des), gripper): the TCP target and gripper command at ``t``."""
        if self._disturbed:
            return self._hold_pose, self._last_gripper
        if self._index < len(self._segments):
            seg = self._segments[self._index]
            return seg.sample(t - self._t_plan_s, self._offsets), seg.gripper
        last = self._segments[-1] if self._segments else None          # done: hold the last pose
        if last is None:
            return self._tcp_pose(self._q_cmd), 0.0
        return (last.end_points(self._offsets)[1], last.R1), last.gripper

    # --------------------------------------------------------------- planning
    def _tcp_pose(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose (p_base (3,), R_base_tcp (3, 3)) at arm joints ``q_rad`` (6,)."""
        T = self.robot.frame_pose(q_rad, TCP_FRAME)
        return T[:3, 3].copy(), T[:3, :3].copy()

    def _observe(self, obs: dict[str, Any], t: float) -> None:
        """Positions and finite-difference speeds (m/s) of the cube and the bin."""
        dt = None if self._t_last_s is None else t - self._t_last_s
        for key, name in ((CUBE, scene.TARGET_NAME), (BIN, scene.BIN_NAME)):
            p = np.asarray(obs["objects"][name].position_m, dtype=np.float64)
            if dt is not None and dt > 0 and key in self._seen:
                self._velocity[key] = (p - self._seen[key]) / dt
            self._seen[key] = p

    def _follow_objects(self) -> None:
        """Offsets of the objects still followed in this phase (module doc); others frozen."""
        phase = self.phase
        for key in (CUBE, BIN):
            if phase in _FOLLOW_PHASES[key] and key in self._planned:
                offset = self._seen[key] - self._planned[key]
                v = self._velocity.get(key, np.zeros(3))
                if np.linalg.norm(v) <= self.config.settle_speed_m_s:      # pursuit lead, horizontal
                    offset = offset + self.config.lead_s * np.array([v[0], v[1], 0.0])
                self._offsets[key] = offset

    def _speed(self, key: str) -> float:
        """Observed speed (m/s) of the cube or the bin at the last step."""
        return float(np.linalg.norm(self._velocity.get(key, np.zeros(3))))

    def _followed_speed(self) -> float:
        """Speed (m/s) of the fastest object whose displacement moves the current waypoints."""
        phase = self.phase
        return max((self._speed(k) for k in (CUBE, BIN) if phase in _FOLLOW_PHASES[k]), default=0.0)

    def _replan(self, obs: dict[str, Any], p0: np.ndarray, R0: np.ndarray, t_s: float) -> None:
        """The rest of the task from TCP pose (p0, R0): the whole pick if the cube is not yet
        closed on, else the place."""
        if self.phase in _FOLLOW_PHASES[CUBE]:
            self._plan_pick_and_place(obs, p0, R0, t_s, opening=False)
        else:
            self._plan_place(obs, p0, R0, t_s)

    def _holding(self, obs: dict[str, Any], at_rest: bool = True) -> bool:
        """The cube between the fingers: within ``hold_tolerance_m`` of the TCP at a segment's
        end; while the TCP moves, only not fallen below it by more than twice that (object
        poses may arrive later than joint states, e.g. at a camera's rate through ROS, and
        lag a moving TCP)."""
        cube = obs["objects"][scene.TARGET_NAME].position_m
        p_tcp, _ = self._tcp_pose(np.asarray(obs["qpos"], dtype=np.float64))
        if at_rest:
            return bool(np.linalg.norm(cube - p_tcp) < self.config.hold_tolerance_m)
        return bool(p_tcp[2] - cube[2] < 2.0 * self.config.hold_tolerance_m)

    def _duration(self, p0: np.ndarray, p1: np.ndarray, R0: np.ndarray, R1: np.ndarray, speed_m_s: float) -> float:
        """Segment time so that the min-jerk peak speed 1.875 d / T stays under the limits."""
        dist = float(np.linalg.norm(p1 - p0))
        angle = float(np.linalg.norm(rotation_log(R0.T @ R1)))
        return max(self.config.min_segment_s, 1.875 * dist / speed_m_s, 1.875 * angle / self.config.max_yaw_rate_rad_s)

    def _grasp_yaw(self, cube_yaw_rad: float, p_cube: np.ndarray, p_ref: np.ndarray, yaw_ref: float) -> float:
        """cube yaw + k pi/2 closest to the arm's natural yaw at the cube.

        The natural yaw follows the base rotation: yaw_ref + (atan2(y, x) at the
        cube - atan2(y, x) at the reference TCP position).
        """
        natural = yaw_ref + _wrap(np.arctan2(p_cube[1], p_cube[0]) - np.arctan2(p_ref[1], p_ref[0]))
        if not self.config.align_yaw:
            return float(natural)
        k = np.round((natural - cube_yaw_rad) / (np.pi / 2))
        return float(cube_yaw_rad + k * np.pi / 2)

    def _plan_pick_and_place(self, obs: dict[str, Any], p0: np.ndarray, R0: np.ndarray, t_s: float,
                             opening: bool) -> None:
        """Replace the plan by a full pick-and-place from TCP pose (p0, R0) at time t_s.

        ``opening``: a failed grasp, let go first. From below the pregrasp height the TCP
        first backs off straight up.
        """
        c = self.config
        cube = obs["objects"][scene.TARGET_NAME]
        p_cube = cube.position_m
        yaw_grasp = self._grasp_yaw(cube.yaw_rad, p_cube, p0, _yaw_of(R0))
        R_grasp = down_rotation(yaw_grasp)
        above_cube = np.array([p_cube[0], p_cube[1], p_cube[2] + c.pregrasp_height_m])
        at_cube = np.array([p_cube[0], p_cube[1], p_cube[2] + c.grasp_offset_m])
        lifted = np.array([p_cube[0], p_cube[1], c.carry_height_m])

        segments: list[Segment] = []
        if opening:  # a failed grasp: let go
            segments.append(Segment("reopen", p0, R0, p0, R0, c.open_duration_s, 0.0))
        if opening or p0[2] < above_cube[2] - 0.01:                    # back off upwards first
            up = np.array([p0[0], p0[1], max(p0[2], above_cube[2])])
            segments.append(self._move("back_off", p0, R0, up, R0, 0.0, c.max_speed_m_s))
        pa, Ra = (segments[-1].p1, segments[-1].R1) if segments else (p0, R0)
        segments.append(self._move("approach", pa, Ra, above_cube, R_grasp, 0.0, c.max_speed_m_s,
                                   tied=(None, CUBE)))
        segments.append(self._move("descend", above_cube, R_grasp, at_cube, R_grasp, 0.0, c.descend_speed_m_s,
                                   tied=(CUBE, CUBE)))
        segments.append(Segment("close", at_cube, R_grasp, at_cube, R_grasp, c.close_duration_s, 1.0,
                                tied=(CUBE, CUBE)))
        segments.append(self._move("lift", at_cube, R_grasp, lifted, R_grasp, 1.0, c.lift_speed_m_s,
                                   check_hold=True, tied=(CUBE, CUBE)))
        self._segments = segments + self._place_segments(obs, lifted, R_grasp, p_cube, tied_start=CUBE)
        self._start_plan(obs, t_s)

    def _plan_place(self, obs: dict[str, Any], p0: np.ndarray, R0: np.ndarray, t_s: float) -> None:
        """Replace the plan by the place from TCP pose (p0, R0), the cube in hand, at time t_s."""
        self._segments = self._place_segments(obs, p0, R0, p0, tied_start=None)
        self._start_plan(obs, t_s)

    def _place_segments(self, obs: dict[str, Any], p0: np.ndarray, R0: np.ndarray, p_from: np.ndarray,
                        tied_start: str | None) -> list[Segment]:
        """carry, lower, release, retreat from (p0, R0); ``p_from`` is where the cube was taken
        (the base turns from there towards the bin, the wrist kept still)."""
        c = self.config
        p_bin = obs["objects"][scene.BIN_NAME].position_m
        yaw_place = _yaw_of(R0) + _wrap(np.arctan2(p_bin[1], p_bin[0]) - np.arctan2(p_from[1], p_from[0]))
        R_place = down_rotation(yaw_place)
        above_bin = np.array([p_bin[0], p_bin[1], c.carry_height_m])
        release = np.array([p_bin[0], p_bin[1], c.release_height_m])
        retreat = np.array([p_bin[0], p_bin[1], c.retreat_height_m])
        return [
            self._move("carry", p0, R0, above_bin, R_place, 1.0, c.max_speed_m_s, check_hold=True,
                       tied=(tied_start, BIN)),
            self._move("lower", above_bin, R_place, release, R_place, 1.0, c.lift_speed_m_s, check_hold=True,
                       tied=(BIN, BIN)),
            Segment("release", release, R_place, release, R_place, c.open_duration_s, 0.0, tied=(BIN, BIN)),
            self._move("retreat", release, R_place, retreat, R_place, 0.0, c.max_speed_m_s, tied=(BIN, BIN)),
        ]

    def _move(self, name: str, p0: np.ndarray, R0: np.ndarray, p1: np.ndarray, R1: np.ndarray, gripper: float,
              speed_m_s: float, check_hold: bool = False,
              tied: tuple[str | None, str | None] = (None, None)) -> Segment:
        """A min-jerk segment timed by :meth:`_duration`."""
        return Segment(name, p0, R0, p1, R1, self._duration(p0, p1, R0, R1, speed_m_s), gripper, check_hold, tied)

    def _start_plan(self, obs: dict[str, Any], t_s: float) -> None:
        """The new plan starts at ``t_s``, planned from the objects' positions now (no offsets)."""
        self._index = 0
        self._t_plan_s = t_s
        self._planned = {CUBE: np.asarray(obs["objects"][scene.TARGET_NAME].position_m, np.float64).copy(),
                         BIN: np.asarray(obs["objects"][scene.BIN_NAME].position_m, np.float64).copy()}
        self._offsets = {}


@dataclass(frozen=True)
class EpisodeResult:
    """Outcome of one expert episode."""

    seed: int
    success: bool
    steps: int
    duration_s: float
    expert_done_step: int | None
    retries: int
    ik_failures: int
    replans: int = 0


def run_expert_episode(env: Any, expert: ScriptedExpert, seed: int, max_steps: int | None = None,
                       settle_steps: int = 25, run_to_max_steps: bool = False,
                       on_step: Callable[[dict[str, Any], np.ndarray], None] | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and run ``expert`` until done (+ ``settle_steps``) or ``max_steps``.

    With ``run_to_max_steps`` every episode lasts exactly ``max_steps`` (the expert
    holds its last pose once done), as fixed-length ACT datasets need.

    ``on_step(obs, action)`` is called before every ``env.step(action)`` with the
    observation the action was computed from (what a dataset records).  Success is
    ``env.success()`` at the end (the cube resting in the bin).
    """
    max_steps = max_steps or env.config.max_episode_steps or 1000
    obs = env.reset(seed)
    expert.reset()
    done_step = None
    steps = 0
    while steps < max_steps:
        action = expert.act(obs)
        if on_step is not None:
            on_step(obs, action)
        obs, _, terminated, _, _ = env.step(action)
        steps += 1
        if expert.done and done_step is None:
            done_step = steps
        if terminated or (not run_to_max_steps and done_step is not None and steps >= done_step + settle_steps):
            break
    return EpisodeResult(seed=seed, success=env.success(), steps=steps, duration_s=steps * env.control_dt_s,
                         expert_done_step=done_step, retries=expert.retries, ik_failures=expert.ik_failures,
                         replans=expert.replans)

"""Damped-least-squares IK on a RobotModel, SO(3) log/exp, and the UR5e DH reference chain.

Frames
------
``base_link`` (REP-103: x forward, y left, z up, metres) is the robot's base, as in the
simulator (the MuJoCo world frame). ``tool0`` is the flange frame after joint 6 (z =
approach direction); the tool centre point (TCP) is the URDF frame ``tcp``, 0.135 m along
tool0's z between the gripper pads (``TCP_OFFSET_M``; the simulator's ``tcp`` site).

Kinematic model
---------------
The stack's kinematics come from the robot's URDF through
:class:`fdl_robot.core.robot_model.RobotModel` (``ur5e_gripper()`` for the simulated arm,
``fdl_robot.description.UR5E_URDF``). The IK below takes any RobotModel and a frame.

Reference: UR5e standard DH
---------------------------
The hand-written Denavit-Hartenberg chain kept here is the reference the URDF is checked
against (tests: FK and Jacobian equal to 1e-6), not what the stack computes with. With the
standard DH convention, link i contributes::

    A_i(q_i) = Rz(q_i) Tz(d_i) Tx(a_i) Rx(alpha_i)

        = [[cos q, -sin q cos al,  sin q sin al, a cos q],
           [sin q,  cos q cos al, -cos q sin al, a sin q],
           [0,      sin al,        cos al,       d      ],
           [0,      0,             0,            1      ]]

    T_base_tool0(q) = A_1 A_2 ... A_6,     T_base_tcp = T_base_tool0 Tz(tcp_offset)

UR5e (metres, radians):  d = (0.1625, 0, 0, 0.1333, 0.0997, 0.0996),
a = (0, -0.425, -0.3922, 0, 0, 0),  alpha = (pi/2, 0, 0, pi/2, -pi/2, 0).

Geometric Jacobian (DH reference): joint i rotates about z_{i-1}, the z axis of frame i-1
(frame 0 = base), through its origin o_{i-1}. For the TCP position p::

    J_v[:, i] = z_{i-1} x (p - o_{i-1}),     J_w[:, i] = z_{i-1}          (base axes)

so that [p_dot; omega] = [J_v; J_w] q_dot.

Rotations
---------
The SO(3) exp of a rotation vector r = angle * k (|k| = 1) is Rodrigues' formula and the
log is its inverse, with angle in [0, pi]::

    exp(r) = I + sin(angle) [k]x + (1 - cos(angle)) [k]x^2,     log(exp(r)) = r

"Tool pointing down" with yaw psi is R_base_tcp = Rz(psi) diag(1, -1, -1): approach
axis (tool z) = -z_base, tool x = (cos psi, sin psi, 0).

Inverse kinematics
------------------
The task is a position p* of a frame of the model (default ``tcp``) and either a full
orientation R* (6 constraints) or only an approach axis pointing down, a* = -z_base (5
constraints; the yaw about the vertical is left free). With the model's pose T(q) =
T_base_frame(q) = (R(q), p(q)) and Jacobian J(q) = [J_v; J_w] (base axes), the errors are::

    e_p = p* - p(q)
    e_r = log(R* R(q)^T)                                                (orientation R*)
    e_r = theta (a x a*) / |a x a*|,  theta = atan2(|a x a*|, a . a*)   (free yaw)

where a(q) is the frame's z axis; both e_r are rotation vectors (axis * angle).

A Gauss-Newton step with Levenberg-Marquardt damping lambda on the stacked error
e = [e_p; w e_r] and Jacobian J = [J_v; w J_w] is::

    dq = J^T (J J^T + lambda^2 I)^-1 e                                       (DLS)

scaled down so that max_i |dq_i| <= max_step_rad, then q is clipped to the joint limits
(the URDF's unless given); the iteration stops when |e_p| and |e_r| are both under their
tolerances. Damping bounds |dq| at singularities; with free yaw the minimum-norm step
leaves the wrist's yaw where the start configuration had it, so warm starts keep the IK
branch (elbow up, wrist down).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fdl_robot.core.geometry import matrix_to_quaternion

if TYPE_CHECKING:
    from fdl_robot.core.robot_model import RobotModel

__all__ = ["UR5E_DH", "TCP_OFFSET_M", "TCP_FRAME", "HOME_QPOS_RAD", "UR5E_LIMITS_RAD", "dh_transform",
           "link_frames", "forward_kinematics", "tcp_position", "geometric_jacobian", "DhReference", "down_rotation",
           "rotation_log", "rotation_exp", "IkResult", "solve_ik", "solve_ik_pointing_down"]

#: UR5e standard DH parameters (d_i, a_i, alpha_i) in metres and radians.
UR5E_DH: np.ndarray = np.array([
    [0.1625, 0.0, np.pi / 2],
    [0.0, -0.425, 0.0],
    [0.0, -0.3922, 0.0],
    [0.1333, 0.0, np.pi / 2],
    [0.0997, 0.0, -np.pi / 2],
    [0.0996, 0.0, 0.0],
])
#: tool0 -> TCP along tool0's z: the simulator gripper's ``tcp`` site, metres (the DH reference's).
TCP_OFFSET_M = 0.135
#: The TCP's frame in the URDF (``fdl_robot.description.UR5E_URDF``): TCP_OFFSET_M along tool0's z.
TCP_FRAME = "tcp"
#: Home: elbow up, tool pointing straight down, TCP at (0.492, 0.133, 0.353) m in
#: base_link (the simulator's ``HOME_QPOS_RAD``).
HOME_QPOS_RAD: np.ndarray = np.array([np.pi, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])
#: Joint position range of the UR5e (elbow +-pi, the others +-2 pi), radians: the URDF's (a test checks).
UR5E_LIMITS_RAD: np.ndarray = np.array([[-2 * np.pi, 2 * np.pi]] * 2 + [[-np.pi, np.pi]]
                                       + [[-2 * np.pi, 2 * np.pi]] * 3)


def dh_transform(q_rad: np.ndarray, d: np.ndarray, a: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A(q) = Rz(q) Tz(d) Tx(a) Rx(alpha); inputs broadcast to (...), output (..., 4, 4)."""
    q, d, a, alpha = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (q_rad, d, a, alpha)))
    cq, sq, ca, sa = np.cos(q), np.sin(q), np.cos(alpha), np.sin(alpha)
    A = np.zeros(q.shape + (4, 4))
    A[..., 0, 0], A[..., 0, 1], A[..., 0, 2], A[..., 0, 3] = cq, -sq * ca, sq * sa, a * cq
    A[..., 1, 0], A[..., 1, 1], A[..., 1, 2], A[..., 1, 3] = sq, cq * ca, -cq * sa, a * sq
    A[..., 2, 1], A[..., 2, 2], A[..., 2, 3] = sa, ca, d
    A[..., 3, 3] = 1.0
    return A


def link_frames(q_rad: np.ndarray, tcp_offset_m: float = TCP_OFFSET_M,
                dh: np.ndarray = UR5E_DH) -> np.ndarray:
    """T_base_i for i = 0..6 and the TCP: (..., 8, 4, 4); [0] = I, [6] = tool0, [7] = TCP."""
    q = np.asarray(q_rad, dtype=np.float64)
    if q.shape[-1] != len(dh):
        raise ValueError(f"expected {len(dh)} joint angles, got shape {q.shape}")
    A = dh_transform(q, dh[:, 0], dh[:, 1], dh[:, 2])           # (..., 6, 4, 4)
    frames = np.empty(q.shape[:-1] + (len(dh) + 2, 4, 4))
    frames[..., 0, :, :] = np.eye(4)
    for i in range(len(dh)):
        frames[..., i + 1, :, :] = frames[..., i, :, :] @ A[..., i, :, :]
    tool = np.eye(4)
    tool[2, 3] = tcp_offset_m
    frames[..., -1, :, :] = frames[..., -2, :, :] @ tool
    return frames


def forward_kinematics(q_rad: np.ndarray, tcp_offset_m: float = TCP_OFFSET_M,
                       dh: np.ndarray = UR5E_DH) -> np.ndarray:
    """T_base_tcp (..., 4, 4) for joint angles (..., 6); tcp_offset_m=0 gives T_base_tool0."""
    return link_frames(q_rad, tcp_offset_m, dh)[..., -1, :, :]


def tcp_position(q_rad: np.ndarray, tcp_offset_m: float = TCP_OFFSET_M) -> np.ndarray:
    """p_base_tcp (..., 3), metres."""
    return forward_kinematics(q_rad, tcp_offset_m)[..., :3, 3]


def geometric_jacobian(q_rad: np.ndarray, tcp_offset_m: float = TCP_OFFSET_M,
                       dh: np.ndarray = UR5E_DH) -> np.ndarray:
    """[J_v; J_w] (6, 6) of the TCP in base axes.

    J_v[:, i] = z_{i-1} x (p - o_{i-1}),  J_w[:, i] = z_{i-1}.
    """
    return _jacobian_of_frames(link_frames(np.asarray(q_rad, dtype=np.float64).reshape(-1), tcp_offset_m, dh))


def _jacobian_of_frames(frames: np.ndarray) -> np.ndarray:
    """[J_v; J_w] (6, 6) from one configuration's :func:`link_frames` (8, 4, 4)."""
    z = frames[:-2, :3, 2]                      # (6, 3) joint axes z_0..z_5
    o = frames[:-2, :3, 3]                      # (6, 3) joint origins
    p = frames[-1, :3, 3]
    return np.vstack([np.cross(z, p - o).T, z.T])


class DhReference:
    """The UR5e DH reference behind RobotModel's query interface: a check, not the stack's model.

    ``frame_pose``/``jacobian`` of the frames ``tool0`` and ``tcp`` (``tcp_offset_m`` along
    tool0's z) from :func:`forward_kinematics` and :func:`geometric_jacobian`, so that the
    IK and the expert can be run on the reference chain and compared with the URDF's.
    """

    base_frame = "base_link"
    tool_frame = "tool0"
    joint_names = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                   "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")
    n_joints = 6

    def __init__(self, tcp_offset_m: float = TCP_OFFSET_M):
        self._offsets = {"tool0": 0.0, TCP_FRAME: float(tcp_offset_m)}

    @property
    def position_limits(self) -> np.ndarray:
        return UR5E_LIMITS_RAD.copy()

    def frame_pose(self, q_rad: np.ndarray, frame: str | None = None) -> np.ndarray:
        return forward_kinematics(q_rad, self._offset(frame))

    def jacobian(self, q_rad: np.ndarray, frame: str | None = None) -> np.ndarray:
        return geometric_jacobian(q_rad, self._offset(frame))

    def _offset(self, frame: str | None) -> float:
        try:
            return self._offsets[self.tool_frame if frame is None else frame]
        except KeyError:
            raise ValueError(f"the DH reference has the frames {sorted(self._offsets)}, not {frame!r}") from None


def down_rotation(yaw_rad: float) -> np.ndarray:
    """R_base_tcp pointing straight down with yaw: Rz(yaw) diag(1, -1, -1).

    Tool z (approach) = -z_base; tool x = (cos yaw, sin yaw, 0); the fingers close along
    tool y = (sin yaw, -cos yaw, 0).
    """
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def rotation_log(R: np.ndarray) -> np.ndarray:
    """SO(3) log: the rotation vector r = angle * axis (3,) of a rotation matrix, angle in [0, pi].

    Through the unit quaternion (x, y, z, w) = (sin(angle/2) axis, cos(angle/2)) with w >= 0:
    angle = 2 atan2(|v|, w), axis = v / |v|; well conditioned for every angle, r = 0 for I.
    """
    q = matrix_to_quaternion(R)
    v, w = q[:3], q[3]
    s = np.linalg.norm(v)
    if s < 1e-12:
        return 2.0 * v                           # first order: r = 2 v for tiny angles
    return (2.0 * np.arctan2(s, w) / s) * v


def rotation_exp(r: np.ndarray) -> np.ndarray:
    """SO(3) exp: the rotation matrix (3, 3) of a rotation vector r = angle * axis (Rodrigues).

    R = I + sin(a) [k]x + (1 - cos(a)) [k]x^2 with a = |r|, k = r / a; I for r = 0.
    """
    r = np.asarray(r, dtype=np.float64)
    a = np.linalg.norm(r)
    if a < 1e-12:
        return np.eye(3)
    k = r / a
    Kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(a) * Kx + (1.0 - np.cos(a)) * (Kx @ Kx)


def _pointing_error(a: np.ndarray, a_star: np.ndarray, fallback_axis: np.ndarray) -> np.ndarray:
    """Rotation vector of the smallest rotation turning unit axis a onto a*.

    axis = (a x a*) / |a x a*|, angle = atan2(|a x a*|, a . a*) in [0, pi]; when a and a*
    are (anti)parallel the axis is undefined and ``fallback_axis`` (unit, normal to a) is used.
    """
    c = np.cross(a, a_star)
    s = np.linalg.norm(c)
    angle = np.arctan2(s, np.dot(a, a_star))
    return angle * (c / s if s > 1e-9 else fallback_axis)


def _pose_error(T_base_tcp: np.ndarray, p_star: np.ndarray,
                R_star: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(e_p, e_r) in base axes: p* - p, and log(R* R^T) or, for R* = None, the pointing error."""
    e_p = p_star - T_base_tcp[:3, 3]
    if R_star is None:
        e_r = _pointing_error(T_base_tcp[:3, 2], np.array([0.0, 0.0, -1.0]), T_base_tcp[:3, 0])
    else:
        e_r = rotation_log(R_star @ T_base_tcp[:3, :3].T)
    return e_p, e_r


@dataclass(frozen=True, eq=False)
class IkResult:
    """Joint solution ``q_rad`` (n,), whether the tolerances were met, and the final errors."""

    q_rad: np.ndarray
    converged: bool
    position_error_m: float
    orientation_error_rad: float
    iterations: int


def _default_model() -> "RobotModel":
    from fdl_robot.core.robot_model import ur5e_gripper

    return ur5e_gripper()


def solve_ik(p_target_m: np.ndarray, R_target: np.ndarray | None, q_init_rad: np.ndarray, *,
             model: "RobotModel | None" = None, frame: str = TCP_FRAME, damping: float = 0.05,
             orientation_weight: float = 0.3, max_step_rad: float = 0.25, position_tolerance_m: float = 1e-4,
             orientation_tolerance_rad: float = 1e-3, max_iterations: int = 100,
             limits_rad: np.ndarray | None = None) -> IkResult:
    """DLS IK for ``frame`` of ``model`` at ``p_target_m`` with orientation ``R_target`` (R_base_frame).

    ``model`` defaults to the simulated UR5e (:func:`fdl_robot.core.robot_model.ur5e_gripper`),
    ``frame`` to its TCP, ``limits_rad`` (n, 2) to the model's URDF limits. ``R_target=None``
    asks only for the approach axis (the frame's z) straight down (yaw free). Iterates from
    ``q_init_rad``: warm-started near the answer (the current joints) it stays on the same
    branch; an unreachable target ends at the closest reachable pose with ``converged=False``
    after ``max_iterations`` steps. See the module docstring for the equations.
    """
    model = _default_model() if model is None else model
    n = model.n_joints
    limits = model.position_limits if limits_rad is None else np.asarray(limits_rad, dtype=np.float64).reshape(n, 2)
    p_star = np.asarray(p_target_m, dtype=np.float64).reshape(3)
    q = np.asarray(q_init_rad, dtype=np.float64).reshape(n).copy()
    R_star = None if R_target is None else np.asarray(R_target, dtype=np.float64).reshape(3, 3)
    if not (np.all(np.isfinite(p_star)) and np.all(np.isfinite(q))
            and (R_star is None or np.all(np.isfinite(R_star)))):
        raise ValueError("IK target and start must be finite")
    lam2, w = damping ** 2, orientation_weight
    e_p_norm = e_r_norm = np.inf
    for it in range(max_iterations + 1):
        e_p, e_r = _pose_error(model.frame_pose(q, frame), p_star, R_star)
        e_p_norm, e_r_norm = float(np.linalg.norm(e_p)), float(np.linalg.norm(e_r))
        done = e_p_norm < position_tolerance_m and e_r_norm < orientation_tolerance_rad
        if done or it == max_iterations:
            break
        J = model.jacobian(q, frame)
        J[3:] *= w
        e = np.concatenate([e_p, w * e_r])
        dq = J.T @ np.linalg.solve(J @ J.T + lam2 * np.eye(6), e)
        scale = np.max(np.abs(dq)) / max_step_rad
        if scale > 1.0:
            dq /= scale
        q = np.clip(q + dq, limits[:, 0], limits[:, 1])
    converged = e_p_norm < position_tolerance_m and e_r_norm < orientation_tolerance_rad
    return IkResult(q, converged, e_p_norm, e_r_norm, it)


def solve_ik_pointing_down(p_target_m: np.ndarray, q_init_rad: np.ndarray, *, yaw_rad: float | None = None,
                           **options: Any) -> IkResult:
    """:func:`solve_ik` with the tool pointing down: R* = ``down_rotation(yaw_rad)``, or yaw free if None.

    ``options`` are :func:`solve_ik`'s keyword arguments (tolerances, damping, limits, ...).
    """
    R_target = None if yaw_rad is None else down_rotation(yaw_rad)
    return solve_ik(p_target_m, R_target, q_init_rad, **options)

"""Damped-least-squares inverse kinematics on MuJoCo's site Jacobian.

For a site (the TCP) with pose (p(q), R(q)) in the world frame and a desired pose
(p*, R*), one Gauss-Newton step with Levenberg-Marquardt damping is::

    e  = [ p* - p ;  w_rot * log(R* R^T) ]                      (6,)  world axes
    J  = [ J_p ; w_rot * J_r ]                                   (6, n) from mj_jacSite
    dq = J^T (J J^T + lambda^2 I)^-1 e                                           (DLS)

``log(R* R^T)`` is the rotation vector (axis * angle) that turns the current
orientation into the desired one, expressed in world axes -- the same axes as the
rotational Jacobian ``J_r`` (d omega = J_r dq).  The damping lambda bounds |dq| near
singularities at the price of slower convergence there.  Steps are clipped to
``max_step_rad`` and joints to their limits.

The solver works on its own scratch ``MjData`` (kinematics only: ``mj_kinematics``
and ``mj_comPos``, which ``mj_jac`` needs), so it never disturbs a running
simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from fdl_robot.core.geometry import matrix_to_quaternion

__all__ = ["rotation_log", "rotation_exp", "top_down_rotation", "IkResult", "DlsIk"]


def rotation_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector r = angle * axis of a rotation matrix (the SO(3) log), (3,).

    Through the quaternion (x, y, z, w), w >= 0: angle = 2 atan2(|v|, w) in [0, pi],
    axis = v / |v|; exact for all angles, r = 0 for the identity.
    """
    q = matrix_to_quaternion(R)
    v, w = q[:3], q[3]
    s = np.linalg.norm(v)
    if s < 1e-12:
        return 2.0 * v  # first order: r = 2 v for tiny angles
    return (2.0 * np.arctan2(s, w) / s) * v


def rotation_exp(r: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector r = angle * axis (Rodrigues, the SO(3) exp).

    R = I + sin(a) [k]x + (1 - cos(a)) [k]x^2 with a = |r|, k = r / a.
    """
    r = np.asarray(r, dtype=np.float64)
    a = np.linalg.norm(r)
    if a < 1e-12:
        return np.eye(3)
    k = r / a
    Kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(a) * Kx + (1.0 - np.cos(a)) * (Kx @ Kx)


@dataclass(frozen=True, eq=False)
class IkResult:
    """Joint solution ``q_rad`` (n,), whether it met the tolerances, and the final errors."""

    q_rad: np.ndarray
    converged: bool
    position_error_m: float
    rotation_error_rad: float
    iterations: int


class DlsIk:
    """Damped-least-squares IK of one site over a set of hinge joints of a model."""

    def __init__(self, model: mujoco.MjModel, site_name: str, joint_names: tuple[str, ...],
                 damping: float = 0.05, rotation_weight: float = 0.3, max_step_rad: float = 0.25,
                 position_tolerance_m: float = 2e-4, rotation_tolerance_rad: float = 2e-3,
                 max_iterations: int = 50):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site_name)
        if self.site_id < 0:
            raise ValueError(f"no site named {site_name!r}")
        joints = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in joint_names]
        self.qpos_adr = model.jnt_qposadr[joints].copy()
        self.dof_adr = model.jnt_dofadr[joints].copy()
        self.limits_rad = model.jnt_range[joints].copy()
        self.damping = damping
        self.rotation_weight = rotation_weight
        self.max_step_rad = max_step_rad
        self.position_tolerance_m = position_tolerance_m
        self.rotation_tolerance_rad = rotation_tolerance_rad
        self.max_iterations = max_iterations
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site pose (p_world (3,), R_world (3, 3)) at joint angles ``q_rad``."""
        self.data.qpos[self.qpos_adr] = q_rad
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site_id].copy(), self.data.site_xmat[self.site_id].reshape(3, 3).copy()

    def solve(self, p_des: np.ndarray, R_des: np.ndarray, q_init_rad: np.ndarray) -> IkResult:
        """Iterate DLS steps from ``q_init_rad`` towards the desired site pose.

        Warm-started from a nearby solution (e.g. the previous control step's) it
        converges in a few iterations and stays on the same IK branch (elbow up,
        wrist down for this arm).
        """
        m, d = self.model, self.data
        q = np.array(q_init_rad, dtype=np.float64)
        lam2 = self.damping ** 2
        e_pos = e_rot = np.inf
        for it in range(self.max_iterations + 1):
            d.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(m, d)
            p = d.site_xpos[self.site_id]
            R = d.site_xmat[self.site_id].reshape(3, 3)
            dp = p_des - p
            dr = rotation_log(R_des @ R.T)
            e_pos, e_rot = float(np.linalg.norm(dp)), float(np.linalg.norm(dr))
            if (e_pos < self.position_tolerance_m and e_rot < self.rotation_tolerance_rad) or it == self.max_iterations:
                break
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site_id)
            J = np.vstack([self._jacp[:, self.dof_adr], self.rotation_weight * self._jacr[:, self.dof_adr]])
            e = np.concatenate([dp, self.rotation_weight * dr])
            dq = J.T @ np.linalg.solve(J @ J.T + lam2 * np.eye(6), e)
            scale = np.max(np.abs(dq)) / self.max_step_rad
            if scale > 1.0:
                dq /= scale
            q = np.clip(q + dq, self.limits_rad[:, 0], self.limits_rad[:, 1])
        converged = e_pos < self.position_tolerance_m and e_rot < self.rotation_tolerance_rad
        return IkResult(q, converged, e_pos, e_rot, it)


def top_down_rotation(yaw_rad: float) -> np.ndarray:
    """R_world_tcp of a tool pointing straight down with yaw ``yaw_rad``.

    R = Rz(yaw) diag(1, -1, -1): tool z (approach) = -z world, tool x =
    (cos yaw, sin yaw, 0), and the fingers close along tool y = -(-sin yaw, cos yaw, 0).
    """
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


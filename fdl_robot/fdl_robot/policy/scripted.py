"""ScriptedPolicy: reach above the target, or go home. A test stand-in for ACT.

Not the pick-and-place expert (``sim/expert.py`` is); a minimal policy behind the
:class:`~fdl_robot.policy.interface.Policy` interface that moves the arm sensibly without
weights, so nodes and the ROS graph can be tested end to end (``policy: scripted``).

Goal (7,) = [q_goal (6, rad), gripper]:

* with a target at p (base_link): q_goal = IK(p + [0, 0, pregrasp_height_m], tool pointing
  down) on the arm's URDF model (``core.robot_model``, TCP frame ``tcp``), warm-started
  at the previous goal (else at home, the elbow-up / wrist-down branch); gripper 0 (open).
* without a target, or when the IK does not converge (unreachable): q_goal = home, and
  the gripper stays where it is (a policy that lost its target does not drop things).

Each revolute joint of the goal is moved by a multiple of 2 pi to the equivalent angle
nearest the current one when that stays inside the joint range (no full turns of a
wrist for nothing).

Chunk: a straight line in joint space from the current state q_0 to the goal, all
joints arriving together at the policy's speed v (per joint)::

    T   = max_j |q_goal,j - q_0,j| / v_j                    (time to goal, s)
    q_i = q_0 + min(1, (i + 1) dt / T) (q_goal - q_0),       i = 0 .. k-1

so no joint exceeds v_j; v is set below the safety layer's limits so the safety layer
only intervenes on faults.
"""
from __future__ import annotations

import numpy as np

from fdl_robot.core import kinematics
from fdl_robot.core.robot import CONTROL_DT_S
from fdl_robot.core.robot_model import RobotModel, ur5e_gripper
from fdl_robot.policy.interface import ACTION_DIM, PolicyObservation

__all__ = ["ScriptedPolicy", "joint_space_chunk"]

#: Default policy speeds: 0.6 rad/s per arm joint, 2 /s for the gripper (open..closed in 0.5 s).
DEFAULT_VELOCITY = np.array([0.6] * 6 + [2.0])


def joint_space_chunk(q_start: np.ndarray, q_goal: np.ndarray, velocity: np.ndarray,
                      dt_s: float, k: int) -> np.ndarray:
    """q_i = q_0 + min(1, (i + 1) dt / T) (q_goal - q_0), T = max_j |dq_j| / v_j; (k, n)."""
    q0 = np.asarray(q_start, dtype=np.float64)
    dq = np.asarray(q_goal, dtype=np.float64) - q0
    T = float(np.max(np.abs(dq) / np.asarray(velocity, dtype=np.float64)))
    t = (np.arange(k) + 1) * dt_s
    s = np.ones(k) if T <= 0 else np.minimum(1.0, t / T)
    return q0 + s[:, None] * dq


class ScriptedPolicy:
    """Reach to a pre-grasp pose above the target, gripper open; home without a target.

    ``model`` (default: the simulated UR5e's URDF) gives the IK its kinematics and, unless
    ``joint_limits_rad`` (6, 2) is given, the joint limits; ``tcp_frame`` is the frame
    placed above the target.
    """

    def __init__(self, chunk_size: int = 20, dt_s: float = CONTROL_DT_S,
                 velocity: np.ndarray = DEFAULT_VELOCITY, pregrasp_height_m: float = 0.10,
                 home_qpos_rad: np.ndarray = kinematics.HOME_QPOS_RAD,
                 model: RobotModel | None = None, tcp_frame: str = kinematics.TCP_FRAME,
                 joint_limits_rad: np.ndarray | None = None):
        if chunk_size < 1 or not dt_s > 0:
            raise ValueError(f"need chunk_size >= 1 and dt_s > 0, got {chunk_size}, {dt_s}")
        self.chunk_size = int(chunk_size)
        self.dt_s = float(dt_s)
        self.velocity = np.broadcast_to(np.asarray(velocity, dtype=np.float64),
                                        (ACTION_DIM,)).copy()
        if np.any(self.velocity <= 0):
            raise ValueError("policy velocities must be positive")
        self.pregrasp_height_m = float(pregrasp_height_m)
        self.home_qpos_rad = np.asarray(home_qpos_rad, dtype=np.float64).reshape(6)
        self.model = ur5e_gripper() if model is None else model
        self.tcp_frame = str(tcp_frame)
        limits = self.model.position_limits if joint_limits_rad is None else joint_limits_rad
        self.joint_limits_rad = np.asarray(limits, dtype=np.float64).reshape(6, 2)
        #: What the last chunk aimed at: 'target', 'home' or 'unreachable' (went home).
        self.mode = "home"
        self.reset()

    def reset(self) -> None:
        self._ik_seed: np.ndarray | None = None
        self.mode = "home"

    def goal(self, obs: PolicyObservation) -> np.ndarray:
        """The (7,) joint goal for this observation (see the module docstring)."""
        q_now = obs.qpos_rad
        if obs.has_target:
            p = obs.target_p_base_m + np.array([0.0, 0.0, self.pregrasp_height_m])
            seed = self.home_qpos_rad if self._ik_seed is None else self._ik_seed
            ik = kinematics.solve_ik_pointing_down(p, seed, model=self.model, frame=self.tcp_frame,
                                                   limits_rad=self.joint_limits_rad)
            if ik.converged:
                self._ik_seed = ik.q_rad
                self.mode = "target"
                return np.append(self._nearest_equivalent(ik.q_rad, q_now), 0.0)
            self.mode = "unreachable"
        else:
            self.mode = "home"
        return np.append(self._nearest_equivalent(self.home_qpos_rad, q_now), obs.gripper)

    def predict_chunk(self, obs: PolicyObservation) -> np.ndarray:
        return joint_space_chunk(obs.joint_state, self.goal(obs), self.velocity, self.dt_s,
                                 self.chunk_size)

    def _nearest_equivalent(self, q_goal: np.ndarray, q_now: np.ndarray) -> np.ndarray:
        """q_goal + 2 pi n_j, n_j = round((q_now - q_goal) / 2 pi), where that is within limits."""
        shifted = q_goal + 2.0 * np.pi * np.round((q_now - q_goal) / (2.0 * np.pi))
        lo, hi = self.joint_limits_rad[:, 0], self.joint_limits_rad[:, 1]
        return np.where((shifted >= lo) & (shifted <= hi), shifted, q_goal)

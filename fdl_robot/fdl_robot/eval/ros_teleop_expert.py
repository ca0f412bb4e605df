"""The scripted expert as a teleoperator: TCP velocities on cmd_vel and gripper buttons on joy.

    python -m fdl_robot.eval.ros_teleop_expert --episodes 10 --strip outputs/ros_teleop_expert_strip.png

It stands in for a human at a gamepad or a spacemouse, so the teleoperation path is exercised
end to end in the simulator: one process, one executor, three nodes talking through topics,

    sim_node ── joint_states, sim/ground_truth ──► teleop_operator ── cmd_vel (Twist), joy (Joy) ──►
    teleop_node ── joint_trajectory_controller/..., gripper_controller/... ──► sim_node

``teleop_operator`` (:class:`TeleopExpertDriver`) runs :class:`~fdl_robot.sim.expert.ScriptedExpert`
on the same observations as :mod:`fdl_robot.eval.ros_expert` but never sends joints: it sends the
velocity of the expert's planned TCP pose (p*, R*) (its :attr:`~ScriptedExpert.tcp_target`, before
IK), as an operator watching the arm would, with a proportional correction towards the plan::

    v = (p*_k - p*_{k-1}) / dt_k + k_p (p*_k - p_meas)                     base_link, m/s
    w = log(R*_k R*_{k-1}^T) / dt_k + k_p log(R*_k R_meas^T)               base_link, rad/s

(p_meas, R_meas: FK of the measured joints; dt_k: the joint states' stamp difference; the first
term is the plan's own velocity, the second removes what the teleop's IK residuals and limits
leave behind) and the gripper as the gamepad's close or open button, held while the plan wants
the gripper closed or open. Its deadman is never pressed, so the arm moves by cmd_vel alone.
teleop_node turns both into the arm's and the gripper's commands through its IK and safety
layer, exactly as for a human.

The expert is slowed to teleoperation speeds (:data:`TELEOP_EXPERT`: 0.2 m/s, 0.8 rad/s peak,
under teleop_node's 0.25 m/s and 1 rad/s limits), so its episodes are longer than
``ros_expert``'s (``--max-sim-s`` 25 s). teleop_node runs on the simulated clock; it is reset
(``teleop_node/reset``) with the simulator between episodes.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Joy

from fdl_robot.core.kinematics import TCP_FRAME, rotation_log
from fdl_robot.eval.base import EvalConfig
from fdl_robot.eval.ros_expert import ExpertDriver, run_main
from fdl_robot.ros.interfaces import RobotInterface
from fdl_robot.ros.parameters import defaults
from fdl_robot.sim.expert import ExpertConfig

__all__ = ["TELEOP_EXPERT", "TELEOP_EVAL", "TeleopExpertDriver", "operator_twist", "main"]

#: The expert at teleoperation speeds (module docstring).
TELEOP_EXPERT = ExpertConfig(max_speed_m_s=0.2, lift_speed_m_s=0.2, max_yaw_rate_rad_s=0.8)
TELEOP_EVAL = EvalConfig(seed0=1000, max_sim_s=25.0)
_TELEOP = defaults("teleop_node")
#: Gain of the correction towards the plan, 1/s (a time constant of 0.25 s, well above the
#: 20 ms control period: the loop through teleop_node's integrator stays far from oscillating).
CORRECTION_GAIN = 4.0


def operator_twist(target: tuple[np.ndarray, np.ndarray], previous: tuple[np.ndarray, np.ndarray] | None,
                   measured: tuple[np.ndarray, np.ndarray], dt_s: float, gain: float = CORRECTION_GAIN) -> np.ndarray:
    """[v; w] (6,) in base axes from the plan's pose now and at the previous step (None: no
    feed-forward) and the measured TCP pose (module docstring)."""
    (p, R), (p_meas, R_meas) = target, measured
    v = gain * (p - p_meas)
    w = gain * rotation_log(R @ R_meas.T)
    if previous is not None and dt_s > 0:
        v = v + (p - previous[0]) / dt_s
        w = w + rotation_log(R @ previous[1].T) / dt_s
    return np.concatenate([v, w])


class TeleopExpertDriver(ExpertDriver):
    """``expert`` fed by joint_states + sim/ground_truth, commanding by cmd_vel and joy."""

    def setup_commands(self, interface: RobotInterface) -> None:
        from fdl_robot.core.robot_model import ur5e_gripper

        self.model = ur5e_gripper()
        self.twist_pub = self.create_publisher(Twist, _TELEOP["cmd_vel_topic"], 10)
        self.joy_pub = self.create_publisher(Joy, _TELEOP["joy_topic"], 10)
        self.n_buttons = 1 + max(_TELEOP["joy_gripper_close_button"], _TELEOP["joy_gripper_open_button"],
                                 _TELEOP["joy_enable_button"])
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self._previous_ns: int | None = None

    def begin(self, start_ns: int, record: bool) -> None:
        super().begin(start_ns, record)
        self._previous = self._previous_ns = None

    def send(self, action: np.ndarray, q: np.ndarray, t_ns: int) -> None:
        p, R, gripper = self.expert.tcp_target
        T = self.model.frame_pose(q[:6], TCP_FRAME)
        dt_s = 0.0 if self._previous_ns is None else (t_ns - self._previous_ns) * 1e-9
        twist = operator_twist((p, R), self._previous, (T[:3, 3], T[:3, :3]), dt_s)
        self._previous, self._previous_ns = (p, R), t_ns
        msg = Twist()
        msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z = twist.tolist()
        self.twist_pub.publish(msg)
        buttons = [0] * self.n_buttons
        buttons[_TELEOP["joy_gripper_close_button" if gripper >= 0.5 else "joy_gripper_open_button"]] = 1
        self.joy_pub.publish(Joy(axes=[0.0] * 6, buttons=buttons))     # sticks centred, deadman released


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(argv, description=__doc__.splitlines()[0], defaults=TELEOP_EVAL, teleop=True,
                    strip="outputs/ros_teleop_expert_strip.png")


def make_expert() -> Any:
    from fdl_robot.sim.expert import ScriptedExpert

    return ScriptedExpert(config=TELEOP_EXPERT)


if __name__ == "__main__":
    sys.exit(main())

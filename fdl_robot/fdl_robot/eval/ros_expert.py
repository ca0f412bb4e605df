"""The scripted expert doing pick-and-place through ROS topics, against sim_node.

    python -m fdl_robot.eval.ros_expert --episodes 100 --strip outputs/ros_expert_strip.png

One process, one executor, two nodes talking only through topics and a service:

* ``sim_node`` (:class:`~fdl_robot.ros.sim_node.SimNode`, its own simulation thread)
  publishes ``joint_states``, the camera topics, ``sim/ground_truth``, ``sim/success`` and
  ``/clock`` and executes ``joint_trajectory_controller/joint_trajectory``;
* ``expert_driver`` (:class:`ExpertDriver`) runs a :class:`~fdl_robot.sim.expert.ScriptedExpert`
  on what it hears: every JointState (the arm joints and gripper closure, stamp = sim time)
  plus the latest ground-truth MarkerArray gives the expert's observation, and its action
  goes back as a one-point JointTrajectory due one control period after the state's stamp.

Episode i uses seed ``seed0 + i`` (the sim's ``~/reset`` service between episodes). An
episode ends :data:`SETTLE_NS` of sim time after the expert is done (as ``fdl_sim evaluate``)
or after ``--max-sim-s``; its outcome is the next ``sim/success`` message. The strip shows
the first episode's ``camera/color/image_raw`` frames, one per ``--strip-period-s``.

The sim runs in real time by default, as on a robot. ``--real-time-factor 0`` runs it as
fast as it can, but then the sim does not wait for the expert: on a busy machine the
expert acts on states a few control steps old and its commands arrive late (unlike
``fdl_sim evaluate``, where expert and physics alternate exactly), which can cost a grasp.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.robot import CONTROL_DT_S
from fdl_robot.eval.base import EvalConfig, add_arguments, from_arguments
from fdl_robot.eval.media import caption, write_strip
from fdl_robot.eval.sim_expert import EXPERT_EVAL
from fdl_robot.eval.stats import SuccessSummary
from fdl_robot.outputs import IMAGE, check_args, exit_on_error
from fdl_robot.ros.base import SENSOR_QOS
from fdl_robot.ros.conversions import image_to_rgb, stamp_to_ns
from fdl_robot.ros.interfaces import RobotInterface

__all__ = ["ExpertDriver", "RosExpertEvaluator", "RosExpertReport", "main"]

LATEST = QoSProfile(depth=1)        # reliable, keep only the newest: never act on a backlog
CONTROL_DT_NS = round(CONTROL_DT_S * 1e9)
#: Sim time between the expert being done and its outcome: 25 control steps, as the
#: settling steps of ``run_expert_episode`` in ``fdl_sim evaluate``.
SETTLE_NS = 25 * CONTROL_DT_NS


class ExpertDriver(Node):
    """``expert`` fed by joint_states + sim/ground_truth, commanding by JointTrajectory."""

    def __init__(self, expert: Any, strip_period_s: float = 1.0, interface: RobotInterface | None = None,
                 **kwargs):
        """``interface``: the robot's wiring (default: the simulated cell's)."""
        from fdl_robot.policy.joint_states import JointStateMerger

        super().__init__("expert_driver", **kwargs)
        self.expert = expert
        self.strip_period_ns = round(strip_period_s * 1e9)
        interface = interface or RobotInterface()
        self.joints = JointStateMerger(interface.arm_joint_names, interface.gripper_joint,
                                       interface.gripper_scale())
        self.setup_commands(interface)
        for topic in interface.joint_states_topics:
            self.create_subscription(JointState, topic, self.on_joint_state, QoSProfile(depth=10))
        self.create_subscription(MarkerArray, "sim/ground_truth", self.on_truth, LATEST)
        self.create_subscription(Bool, "sim/success", self.on_success, 10)
        self.create_subscription(Image, "camera/color/image_raw", self.on_color, SENSOR_QOS)
        self.begin(0, record=False)

    def begin(self, start_ns: int, record: bool) -> None:
        """Start an episode whose messages are stamped after ``start_ns``."""
        self.expert.reset()
        self.start_ns, self.record = start_ns, record
        self.objects: dict | None = None
        self.last_ns = start_ns
        self.done_ns: int | None = None
        self.success: bool | None = None
        self.next_frame_ns = start_ns
        self.frames: list[np.ndarray] = []          # captioned RGB
        self.commands = 0

    def on_truth(self, msg: MarkerArray) -> None:
        from fdl_robot.sim.env import ObjectPose

        if not msg.markers or stamp_to_ns(msg.markers[0].header.stamp) <= self.start_ns:
            return                                     # the previous episode's objects
        self.objects = {
            m.ns: ObjectPose(np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]),
                             np.array([m.pose.orientation.x, m.pose.orientation.y,
                                       m.pose.orientation.z, m.pose.orientation.w]))
            for m in msg.markers}

    def on_joint_state(self, msg: JointState) -> None:
        t_ns = stamp_to_ns(msg.header.stamp)
        if t_ns <= self.start_ns:
            return
        try:
            update = self.joints.add(msg.name, msg.position, t_ns, t_ns * 1e-9)
        except ValueError:
            return
        q = self.joints.positions()
        # act once per control step: on the arm's message, once every joint is known
        if self.objects is None or q is None or self.joints.joint_names[0] not in update.joints:
            return
        obs = {"qpos": q[:6], "gripper": q[6], "objects": self.objects, "time_s": t_ns * 1e-9}
        self.send(self.expert.act(obs), q, t_ns)
        self.commands += 1
        self.last_ns = t_ns
        if self.expert.done and self.done_ns is None:
            self.done_ns = t_ns

    def setup_commands(self, interface: RobotInterface) -> None:
        """Where the expert's actions go: the arm's and the gripper's controllers."""
        from fdl_robot.ros.commands import CommandPublisher

        self.commander = CommandPublisher(self, interface)

    def send(self, action: np.ndarray, q: np.ndarray, t_ns: int) -> None:
        """Send the expert's ``action`` (7,), computed from joints ``q`` (7,) stamped ``t_ns``."""
        # stamp 0: "start now", due one control period after the controller takes it
        self.commander.publish(np.asarray(action)[None], Time(), [CONTROL_DT_NS * 1e-9])

    def on_success(self, msg: Bool) -> None:
        if self.done_ns is not None and self.last_ns >= self.done_ns + SETTLE_NS:
            if self.success is None:
                self.success = bool(msg.data)

    def on_color(self, msg: Image) -> None:
        t_ns = stamp_to_ns(msg.header.stamp)
        if self.record and t_ns > self.start_ns and t_ns >= self.next_frame_ns:
            self.next_frame_ns = t_ns + self.strip_period_ns
            self.frames.append(caption(image_to_rgb(msg), f"{(t_ns - self.start_ns) * 1e-9:.1f}s "
                                                          f"{self.expert.phase if self.commands else 'start'}"))


@dataclass(frozen=True)
class RosExpertReport:
    summary: SuccessSummary
    sim_s: float
    wall_s: float
    camera: str                      # "WxH at R Hz"
    how: str = "through ROS topics"

    def lines(self) -> list[str]:
        s = self.summary
        return [f"expert {self.how}: {s}, failed seeds {list(s.failed_seeds)}",
                f"simulated {self.sim_s:.0f} s in {self.wall_s:.0f} s wall (real-time factor "
                f"{self.sim_s / self.wall_s:.2f}, camera {self.camera})"]


class RosExpertEvaluator:
    """Runs an expert against a sim_node of the given camera and pacing (module docstring)."""

    def __init__(self, config: EvalConfig = EXPERT_EVAL, width: int = 320, height: int = 240,
                 camera_rate_hz: float = 15.0, real_time_factor: float = 1.0, shadows: bool = True,
                 strip: Path | None = None, strip_period_s: float = 0.8, progress=print, teleop: bool = False):
        """``teleop``: the expert drives as a teleoperator through a teleop_node
        (:mod:`fdl_robot.eval.ros_teleop_expert`) instead of sending joint commands."""
        self.config, self.teleop = config, teleop
        self.sim_args = ["--ros-args", "-p", f"seed:={config.seed0}", "-p", f"width:={width}",
                         "-p", f"height:={height}", "-p", f"camera_rate_hz:={camera_rate_hz}",
                         "-p", f"real_time_factor:={real_time_factor}",
                         "-p", f"shadows:={'true' if shadows else 'false'}",
                         "-p", "publish_clock:=true"]   # simulated-time stamps: any real-time factor
        self.camera = f"{width}x{height} at {camera_rate_hz:g} Hz"
        self.strip, self.strip_period_s, self.progress = strip, strip_period_s, progress

    def run(self, expert: Any) -> RosExpertReport:
        from fdl_robot.ros.sim_node import SimNode

        context = rclpy.Context()
        rclpy.init(context=context)
        namespace = "/sim_expert_demo"
        sim = SimNode(context=context, namespace=namespace, cli_args=self.sim_args)
        nodes = [sim]
        driver_class = ExpertDriver
        if self.teleop:
            from fdl_robot.eval.ros_teleop_expert import TeleopExpertDriver
            from fdl_robot.ros.teleop_node import TeleopNode

            driver_class = TeleopExpertDriver
            nodes.append(TeleopNode(context=context, namespace=namespace,
                                    cli_args=["--ros-args", "-p", "use_sim_time:=true"]))
        driver = driver_class(expert, strip_period_s=self.strip_period_s, context=context, namespace=namespace)
        nodes.append(driver)
        executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            executor.add_node(node)
        resets = [driver.create_client(Trigger, f"{namespace}/{node.get_name()}/reset") for node in nodes[:-1]]
        seeds, successes, durations = [], [], []
        t0 = time.monotonic()
        sim_s = 0.0
        try:
            for i in range(self.config.episodes):
                for reset in resets if i > 0 else ():    # the sim, then the teleop_node
                    future = reset.call_async(Trigger.Request())
                    executor.spin_until_future_complete(future, timeout_sec=30)
                    if not (future.done() and future.result().success):
                        raise RuntimeError(f"{reset.srv_name} failed: {future.result()}")
                seed, start_ns = sim.seed, sim.now_ns
                driver.begin(start_ns, record=(i == 0))
                limit_ns = start_ns + round(self.config.max_sim_s * 1e9)
                while driver.success is None and sim.now_ns < limit_ns:
                    executor.spin_once(timeout_sec=0.05)
                sim_s += (sim.now_ns - start_ns) * 1e-9
                seeds.append(seed)
                successes.append(bool(driver.success))
                durations.append((driver.done_ns or sim.now_ns) * 1e-9 - start_ns * 1e-9)
                self._episode_done(i, seed, successes, durations[-1], driver)
        finally:
            wall_s = time.monotonic() - t0
            executor.shutdown()
            for node in reversed(nodes):
                node.destroy_node()
            rclpy.shutdown(context=context)
        how = "as a teleoperator (cmd_vel + joy -> teleop_node)" if self.teleop else "through ROS topics"
        return RosExpertReport(SuccessSummary.of(seeds, successes, durations), sim_s, wall_s, self.camera, how)

    def _episode_done(self, i: int, seed: int, successes: list[bool], done_s: float, driver: ExpertDriver) -> None:
        self.progress(f"episode {i:3d} seed {seed}: {'success' if successes[-1] else 'FAILED '} "
                      f"(expert done at {done_s:.1f} s, {driver.expert.retries} retries, "
                      f"{driver.commands} commands, phase {driver.expert.phase}) "
                      f"{sum(successes)}/{len(successes)}")
        if i == 0 and driver.frames and self.strip:
            write_strip(driver.frames, self.strip)
            self.progress(f"image strip of seed {seed} from the camera topic: {self.strip}")


@exit_on_error
def run_main(argv: Sequence[str] | None, description: str, defaults: EvalConfig, teleop: bool, strip: str) -> int:
    """The command line of this module and of :mod:`fdl_robot.eval.ros_teleop_expert` (``teleop``)."""
    from fdl_robot.sim.expert import ScriptedExpert

    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    add_arguments(parser, defaults, "seconds", seed0_help="seeds seed0 .. seed0 + N - 1")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--camera-rate-hz", type=float, default=15.0)
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="sim_node real_time_factor (0 = as fast as possible; see the module doc)")
    parser.add_argument("--no-shadows", action="store_true")
    parser.add_argument("--strip", type=Path, default=Path(strip))
    parser.add_argument("--strip-period-s", type=float, default=0.8)
    args = parser.parse_args(argv)
    check_args(parser, args, {"--strip": IMAGE})
    evaluator = RosExpertEvaluator(from_arguments(args, defaults), args.width, args.height,
                                   args.camera_rate_hz, args.real_time_factor, not args.no_shadows,
                                   args.strip, args.strip_period_s, progress=lambda s: print(s, flush=True),
                                   teleop=teleop)
    if teleop:
        from fdl_robot.eval.ros_teleop_expert import make_expert

        expert = make_expert()
    else:
        expert = ScriptedExpert()
    report = evaluator.run(expert)
    print("\n".join(report.lines()))
    return 0 if report.summary.successes == report.summary.episodes else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(argv, __doc__.splitlines()[0], EXPERT_EVAL, teleop=False, strip="outputs/ros_expert_strip.png")


if __name__ == "__main__":
    sys.exit(main())

"""The scripted expert doing pick-and-place through ROS topics, against sim_node.

    python -m fdl_robot.ros.sim_expert_demo --episodes 100 --strip outputs/ros_expert_strip.png

One process, one executor, two nodes talking only through topics and a service:

* ``sim_node`` (:class:`~fdl_robot.ros.sim_node.SimNode`, its own simulation thread)
  publishes ``joint_states``, the camera topics, ``sim/ground_truth``, ``sim/success`` and
  ``/clock`` and executes ``joint_trajectory_controller/joint_trajectory``;
* ``expert_driver`` (below) runs :class:`~fdl_robot.sim.expert.ScriptedExpert` on what it
  hears: every JointState (the arm joints and gripper closure, stamp = sim time) plus the
  latest ground-truth MarkerArray gives the expert's observation, and its action goes back
  as a one-point JointTrajectory due one control period after the state's stamp.

Episode i uses seed ``seed0 + i`` (the sim's ``~/reset`` service between episodes). An
episode ends 0.5 s of sim time after the expert is done (as ``fdl_sim evaluate``) or after
``--max-sim-s``; its outcome is the next ``sim/success`` message. The strip shows the
first episode's ``camera/color/image_raw`` frames, one per ``--strip-period-s``.

The sim runs in real time by default, as on a robot: 100 episodes take about 12 minutes.
``--real-time-factor 0`` runs it as fast as it can (about 1.5x real time here at 320x240),
but then the sim does not wait for the expert: on a busy machine the expert acts on states
a few control steps old and its commands arrive late (unlike ``fdl_sim evaluate``, where
expert and physics alternate exactly), which can cost a grasp.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from builtin_interfaces.msg import Duration  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from fdl_robot.ros.base import SENSOR_QOS  # noqa: E402
from fdl_robot.ros.conversions import image_to_rgb, stamp_to_ns  # noqa: E402
from fdl_robot.ros.parameters import JOINT_STATES_TOPIC, TRAJECTORY_TOPIC  # noqa: E402

LATEST = QoSProfile(depth=1)        # reliable, keep only the newest: never act on a backlog
CONTROL_DT_NS = 20_000_000
SETTLE_NS = 500_000_000


class ExpertDriver(Node):
    """ScriptedExpert fed by joint_states + sim/ground_truth, commanding by JointTrajectory."""

    def __init__(self, strip_period_s: float = 1.0, **kwargs):
        super().__init__("expert_driver", **kwargs)
        from fdl_robot.sim.expert import ScriptedExpert

        self.expert = ScriptedExpert()
        self.strip_period_ns = round(strip_period_s * 1e9)
        self.pub = self.create_publisher(JointTrajectory, TRAJECTORY_TOPIC, 10)
        self.create_subscription(JointState, JOINT_STATES_TOPIC, self.on_joint_state, LATEST)
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
        self.frames: list[tuple[np.ndarray, str]] = []
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
        if t_ns <= self.start_ns or self.objects is None:
            return
        q = np.asarray(msg.position, dtype=np.float64)
        obs = {"qpos": q[:6], "gripper": q[6], "objects": self.objects, "time_s": t_ns * 1e-9}
        action = self.expert.act(obs)
        cmd = JointTrajectory(joint_names=list(msg.name))
        cmd.header.stamp = msg.header.stamp
        cmd.points = [JointTrajectoryPoint(positions=action.tolist(),
                                           time_from_start=Duration(nanosec=CONTROL_DT_NS))]
        self.pub.publish(cmd)
        self.commands += 1
        self.last_ns = t_ns
        if self.expert.done and self.done_ns is None:
            self.done_ns = t_ns

    def on_success(self, msg: Bool) -> None:
        if self.done_ns is not None and self.last_ns >= self.done_ns + SETTLE_NS:
            if self.success is None:
                self.success = bool(msg.data)

    def on_color(self, msg: Image) -> None:
        t_ns = stamp_to_ns(msg.header.stamp)
        if self.record and t_ns > self.start_ns and t_ns >= self.next_frame_ns:
            self.next_frame_ns = t_ns + self.strip_period_ns
            self.frames.append((image_to_rgb(msg), f"{(t_ns - self.start_ns) * 1e-9:.1f}s "
                                                   f"{self.expert.phase if self.commands else 'start'}"))


def save_strip(frames: list[tuple[np.ndarray, str]], path: Path, cols: int = 4) -> None:
    import cv2

    tiles = []
    for rgb, label in frames:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(img)
    rows = [np.hstack(tiles[j:j + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[j:j + cols])))
            for j in range(0, len(tiles), cols)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))


def main(argv: Sequence[str] | None = None) -> int:
    from fdl_robot.ros.sim_node import SimNode
    from fdl_robot.sim.cli import wilson_interval

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed0", type=int, default=1000, help="seeds seed0 .. seed0 + N - 1")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--camera-rate-hz", type=float, default=15.0)
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="sim_node real_time_factor (0 = as fast as possible; see the module doc)")
    parser.add_argument("--no-shadows", action="store_true")
    parser.add_argument("--max-sim-s", type=float, default=12.0, help="episode time limit (sim)")
    parser.add_argument("--strip", type=Path, default=Path("outputs/ros_expert_strip.png"))
    parser.add_argument("--strip-period-s", type=float, default=0.8)
    args = parser.parse_args(argv)

    context = rclpy.Context()
    rclpy.init(context=context)
    namespace = "/sim_expert_demo"
    sim = SimNode(context=context, namespace=namespace, cli_args=[
        "--ros-args", "-p", f"seed:={args.seed0}", "-p", f"width:={args.width}",
        "-p", f"height:={args.height}", "-p", f"camera_rate_hz:={args.camera_rate_hz}",
        "-p", f"real_time_factor:={args.real_time_factor}",
        "-p", f"shadows:={'false' if args.no_shadows else 'true'}", "-p", "publish_clock:=false"])
    driver = ExpertDriver(strip_period_s=args.strip_period_s, context=context, namespace=namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sim)
    executor.add_node(driver)
    reset = driver.create_client(Trigger, f"{namespace}/sim_node/reset")
    results: list[tuple[int, bool, float]] = []
    t0 = time.monotonic()
    sim_s = 0.0
    try:
        for i in range(args.episodes):
            if i > 0:
                future = reset.call_async(Trigger.Request())
                executor.spin_until_future_complete(future, timeout_sec=30)
                if not (future.done() and future.result().success):
                    raise RuntimeError(f"sim_node reset failed: {future.result()}")
            seed, start_ns = sim.seed, sim.now_ns
            driver.begin(start_ns, record=(i == 0))
            limit_ns = start_ns + round(args.max_sim_s * 1e9)
            while driver.success is None and sim.now_ns < limit_ns:
                executor.spin_once(timeout_sec=0.05)
            ok = bool(driver.success)
            sim_s += (sim.now_ns - start_ns) * 1e-9
            results.append((seed, ok, (driver.done_ns or sim.now_ns) * 1e-9 - start_ns * 1e-9))
            k = sum(r[1] for r in results)
            print(f"episode {i:3d} seed {seed}: {'success' if ok else 'FAILED '} "
                  f"(expert done at {results[-1][2]:.1f} s, {driver.expert.retries} retries, "
                  f"{driver.commands} commands, phase {driver.expert.phase}) "
                  f"{k}/{len(results)}", flush=True)
            if i == 0 and driver.frames and args.strip:
                save_strip(driver.frames, args.strip)
                print(f"image strip of seed {seed} from the camera topic: {args.strip}")
    finally:
        wall_s = time.monotonic() - t0
        executor.shutdown()
        driver.destroy_node()
        sim.destroy_node()
        rclpy.shutdown(context=context)
    n, k = len(results), sum(r[1] for r in results)
    lo, hi = wilson_interval(k, n)
    print(f"expert through ROS topics: {k}/{n} = {100 * k / max(n, 1):.1f} % "
          f"(95 % Wilson CI {100 * lo:.1f}-{100 * hi:.1f} %), failed seeds "
          f"{[r[0] for r in results if not r[1]]}")
    print(f"simulated {sim_s:.0f} s in {wall_s:.0f} s wall (real-time factor {sim_s / wall_s:.2f}, "
          f"camera {args.width}x{args.height} at {args.camera_rate_hz:g} Hz)")
    return 0 if k == n else 1


if __name__ == "__main__":
    sys.exit(main())

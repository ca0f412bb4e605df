#!/usr/bin/env python3
"""Regenerate the regression bag: one scripted-expert episode of the simulated cell.

    MUJOCO_GL=egl .venv/bin/python scripts/make_regression_bag.py            # the shipped bag
    MUJOCO_GL=egl .venv/bin/python scripts/make_regression_bag.py --out /tmp/ep --seed 30001

writes a rosbag2 bag (mcap, zstd chunks; see ``fdl_robot.bags``) with what ``sim_node``
publishes during an episode, built directly from ``PickPlaceEnv`` renders so that it
is deterministic (no executor, no dropped frames): its messages are equal across runs on
one machine (not its bytes: rclpy's CDR buffers carry uninitialised padding). Messages are
written as a subscriber receives them (:func:`fdl_robot.bags.cdr.serialize`: rclpy's
``serialize_message`` returns 4-8 bytes too many for a JointState without efforts, which
``rosbags`` rejects). Time is
simulated time (the first control step is 0.02 s), as sim_node stamps it; every message
is logged at its header stamp. Topics (sim_node's names and types):

* ``/camera/color/image_raw`` (rgb8), ``/camera/aligned_depth_to_color/image_raw``
  (16UC1 mm, 0 = invalid), ``/camera/color/camera_info``: one frame every
  1 / ``--fps`` s of simulated time, rendered at the next 50 Hz control step (as
  sim_node does), written camera_info, depth, colour;
* ``/joint_states`` at 50 Hz;
* ``/sim/ground_truth`` (``visualization_msgs/MarkerArray``, base_link, ns = object name,
  cube centre / bin floor centre) with each frame;
* ``/sim/ground_truth/boxes`` (``fdl_robot_interfaces/Detection2DArray``) with each frame:
  the detector's labels of that frame, made as the detector's training labels are
  (:func:`fdl_robot.sim.detection_dataset.label_objects`: amodal box clipped to the
  visible pixels, objects less than 15 % visible left out), classes red_cube / cube /
  bin, score = visible fraction, boxes in pixel-edge coordinates.

metadata.yaml's ``custom_data`` records the seed, the image size and rate, the command,
and the episode's true and nominal (calibrated) camera poses ``T_base_cam`` as
"x y z qx qy qz qw".
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "fdl_robot" / "test" / "data" / "sim_episode"
DEFAULT_SEED = 30_000            # disjoint from ACT demos (0..), evaluations (1000.., 5000..),
                                 # detector training (10000..) and validation (20000..)
TOPICS = {
    "color": "/camera/color/image_raw",
    "depth": "/camera/aligned_depth_to_color/image_raw",
    "info": "/camera/color/camera_info",
    "joints": "/joint_states",
    "truth": "/sim/ground_truth",
    "boxes": "/sim/ground_truth/boxes",
}
FRAME_ID = "camera_color_optical_frame"
BASE_FRAME = "base_link"
_MARKER_SIZE_M = {"bin": (0.18, 0.18, 0.005)}   # as sim_node: the bin's floor; cubes 4 cm
_MARKER_RGBA = {"red_cube": (1.0, 0.0, 0.0, 1.0), "bin": (0.1, 0.3, 1.0, 0.6)}


def _pose_text(T) -> str:
    """A Transform as "x y z qx qy qz qw" (metres, unit quaternion)."""
    return " ".join(f"{v:.9f}" for v in (*T.translation, *T.as_quaternion()))


def ground_truth_markers(env, stamp):
    """The MarkerArray sim_node publishes with a frame (see sim_node's docstring)."""
    from visualization_msgs.msg import Marker, MarkerArray

    markers = []
    for name in env.object_names:
        pose = env.object_pose(name)
        m = Marker(ns=name, id=0, type=Marker.CUBE, action=Marker.ADD)
        m.header.stamp, m.header.frame_id = stamp, BASE_FRAME
        m.pose.position.x, m.pose.position.y, m.pose.position.z = pose.position_m.tolist()
        (m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
         m.pose.orientation.w) = pose.quat_xyzw.tolist()
        m.scale.x, m.scale.y, m.scale.z = _MARKER_SIZE_M.get(name, (0.04, 0.04, 0.04))
        m.color.r, m.color.g, m.color.b, m.color.a = _MARKER_RGBA.get(name, (0.6, 0.6, 0.6, 1.0))
        m.lifetime.sec = 1
        markers.append(m)
    return MarkerArray(markers=markers)


def ground_truth_boxes(labels, stamp, width: int, height: int):
    from fdl_robot_interfaces.msg import Detection2D, Detection2DArray

    from fdl_robot.sim.detection_dataset import CLASS_NAMES

    msg = Detection2DArray(image_width=width, image_height=height)
    msg.header.stamp, msg.header.frame_id = stamp, FRAME_ID
    for lab in labels:
        x0, y0, x1, y1 = (float(v) for v in lab.box_xyxy)
        msg.detections.append(Detection2D(class_id=int(lab.class_id), class_name=CLASS_NAMES[lab.class_id],
                                          score=float(lab.visibility), x_min=x0, y_min=y0, x_max=x1, y_max=y1))
    return msg


def make_bag(out: Path, seed: int = DEFAULT_SEED, width: int = 320, height: int = 240,
             fps: float = 15.0, max_seconds: float = 8.0, settle_steps: int = 10,
             command: str = "") -> dict:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from sensor_msgs.msg import JointState

    from fdl_robot.bags.cdr import serialize
    from fdl_robot.bags.recorder import open_writer
    from fdl_robot.bags.typestore import typestore
    from fdl_robot.ros.conversions import camera_to_camera_info, depth_to_image, ns_to_stamp, rgb_to_image
    from fdl_robot.ros.sim_node import JOINT_NAMES
    from fdl_robot.sim.camera import depth_m_to_mm_uint16
    from fdl_robot.sim.detection_dataset import label_objects
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv
    from fdl_robot.sim.expert import ScriptedExpert

    inf = QosTime(9223372036, 854775807)

    def offered(reliable: bool) -> list:
        """What discovery reports for sim_node's publishers (history/depth unknown)."""
        return [Qos(QosHistory.UNKNOWN, 0,
                    QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
                    QosDurability.VOLATILE, inf, inf, QosLiveliness.AUTOMATIC, inf, False)]

    env = PickPlaceEnv(PickPlaceConfig(image_width=width, image_height=height))
    expert = ScriptedExpert(env.model)
    obs = env.reset(seed)
    expert.reset()
    custom = {"generator": "scripts/make_regression_bag.py", "command": command, "seed": str(seed),
              "image_size": f"{width}x{height}", "camera_rate_hz": f"{fps:g}",
              "objects": " ".join(env.object_names),
              "T_base_cam_true": _pose_text(env.T_base_cam),
              "T_base_cam_nominal": _pose_text(env.T_base_cam_nominal)}
    if out.exists():
        shutil.rmtree(out)
    writer = open_writer(out, custom_data=custom)
    store = typestore()
    conns = {}
    for key, msgtype, reliable in (("info", "sensor_msgs/msg/CameraInfo", True),
                                   ("depth", "sensor_msgs/msg/Image", False),
                                   ("color", "sensor_msgs/msg/Image", False),
                                   ("joints", "sensor_msgs/msg/JointState", True),
                                   ("truth", "visualization_msgs/msg/MarkerArray", True),
                                   ("boxes", "fdl_robot_interfaces/msg/Detection2DArray", True)):
        conns[key] = writer.add_connection(TOPICS[key], msgtype, typestore=store,
                                           offered_qos_profiles=offered(reliable))

    def write(key, t_ns, msg):
        writer.write(conns[key], t_ns, serialize(msg, store))

    period_ns = round(1e9 / fps)
    next_frame_ns = 0
    frames = steps = 0
    done_step = None
    max_steps = round(max_seconds / env.control_dt_s)
    try:
        while steps < max_steps:
            obs, *_ = env.step(expert.act(obs))
            steps += 1
            if expert.done and done_step is None:
                done_step = steps
            t_ns = round(env.time_s * 1e9)
            stamp = ns_to_stamp(t_ns)
            q = env.observation()
            joints = JointState(name=list(JOINT_NAMES), position=[*q["qpos"].tolist(), q["gripper"]],
                                velocity=[*q["qvel"].tolist(), q["gripper_vel"]])
            joints.header.stamp = stamp
            write("joints", t_ns, joints)
            if t_ns >= next_frame_ns:
                next_frame_ns += period_ns * max(1, -(-(t_ns - next_frame_ns) // period_ns))
                rgb, depth_m = env.render_rgbd()
                labels = label_objects(env, env.render_segmentation())
                write("truth", t_ns, ground_truth_markers(env, stamp))
                write("boxes", t_ns, ground_truth_boxes(labels, stamp, width, height))
                write("info", t_ns, camera_to_camera_info(env.camera, stamp, FRAME_ID))
                write("depth", t_ns, depth_to_image(depth_m_to_mm_uint16(depth_m), stamp, FRAME_ID))
                write("color", t_ns, rgb_to_image(rgb, stamp, FRAME_ID))
                frames += 1
            if done_step is not None and steps >= done_step + settle_steps:
                break
    finally:
        writer.close()
        env.close()
    return {"frames": frames, "steps": steps, "seconds": steps * env.control_dt_s,
            "success": bool(env.success()), "objects": env.object_names}


def main(argv: list[str] | None = None) -> int:
    from fdl_robot.outputs import DIRECTORY, check_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"bag directory (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    check_args(parser, args, {"--out": DIRECTORY})       # replaced whole if it exists
    command = "python scripts/make_regression_bag.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = make_bag(args.out, args.seed, args.width, args.height, args.fps, args.max_seconds,
                      command=command.strip())
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{args.out}: {result['frames']} frames, {result['seconds']:.2f} s, success={result['success']}, "
          f"objects {' '.join(result['objects'])}, {size / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "fdl_robot"))
    sys.exit(main())

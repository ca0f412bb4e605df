"""Every ROS parameter of every fdl_robot node, declared once, with its description.

This table is the single place parameters are defined. ``config/fdl_robot.yaml`` (the file
users edit, in ``ros__parameters`` form), the README's parameter table and the launch
files are generated from or checked against it by ``python -m fdl_robot.ros.parameters``
and by ``test/test_parameters.py``, so node code, YAML, launch file and README cannot
disagree on a default.

    python -m fdl_robot.ros.parameters --yaml      # print the YAML of all defaults
    python -m fdl_robot.ros.parameters --markdown  # print the README table
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

# Joint order of every joint vector in the stack (UR naming), gripper last.
ARM_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
              "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
GRIPPER_JOINT = "gripper_joint"

# Topics (realsense-ros names for the camera; ros2_control's JointTrajectoryController).
COLOR_TOPIC = "camera/color/image_raw"
CAMERA_INFO_TOPIC = "camera/color/camera_info"
DEPTH_TOPIC = "camera/aligned_depth_to_color/image_raw"
DETECTIONS_TOPIC = "detections"
OBJECTS_TOPIC = "objects"
TRACKS_TOPIC = "tracks"
JOINT_STATES_TOPIC = "joint_states"
TRAJECTORY_TOPIC = "joint_trajectory_controller/joint_trajectory"


@dataclass(frozen=True)
class Param:
    """One ROS parameter: name, default (its type is the parameter's type), description."""

    name: str
    default: Any
    description: str


NODE_PARAMETERS: dict[str, tuple[Param, ...]] = {
    "camera_node": (
        Param("source", "realsense", "Camera source: 'realsense' (device or recording), 'video' "
              "(OpenCV file or webcam, colour only) or one added with sources.register_source."),
        Param("realsense_bag", "", "RealSense recording to play instead of a live device: .db3 "
              "(what librealsense 2.59 records) or ROS 1 .bag ('' = live device)."),
        Param("realsense_serial", "", "Serial number of the RealSense device ('' = first found)."),
        Param("align_depth", True, "Register depth to colour with rs.align (skipped when the "
              "streams already share size and intrinsics)."),
        Param("video_uri", "0", "OpenCV capture: a webcam index ('0') or a video file path."),
        Param("video_hfov_deg", 53.13, "Assumed horizontal field of view of a video source "
              "(uncalibrated): fx = fy = (W/2)/tan(hfov/2), principal point at the centre."),
        Param("loop", True, "Restart a recording or video file at its end (else publish its "
              "frames once and stop)."),
        Param("width", 640, "Image width in pixels (live camera or webcam; files keep their size)."),
        Param("height", 480, "Image height in pixels (live camera or webcam; files keep their size)."),
        Param("fps", 15.0, "Frame rate in Hz of the camera and of publishing (files play at it)."),
        Param("frame_id", "camera_color_optical_frame", "Optical frame of the colour and "
              "aligned depth images (z forward, x right, y down)."),
        Param("color_topic", COLOR_TOPIC, "Colour image topic (rgb8)."),
        Param("depth_topic", DEPTH_TOPIC, "Aligned depth topic (16UC1, millimetres, 0 = invalid)."),
        Param("camera_info_topic", CAMERA_INFO_TOPIC, "CameraInfo topic of the colour camera."),
    ),
    "sim_node": (
        Param("seed", 0, "Seed of the first episode; each ~/reset starts the next episode with "
              "the next seed (seed + 1, seed + 2, ...)."),
        Param("width", 640, "Image width in pixels of the simulated scene camera."),
        Param("height", 480, "Image height in pixels of the simulated scene camera."),
        Param("camera_rate_hz", 15.0, "Camera frame rate in Hz of simulated time (frames are "
              "rendered at 50 Hz control steps, so intervals are multiples of 20 ms that "
              "average to this rate)."),
        Param("real_time_factor", 1.0, "Simulated seconds per wall-clock second (1.0 = real "
              "time, 0 = as fast as possible); a machine too slow for it runs the sim slower."),
        Param("shadows", True, "Render shadows (about half the rendering speed on a CPU)."),
        Param("frame_id", "camera_color_optical_frame", "Optical frame of the colour and "
              "aligned depth images (z forward, x right, y down)."),
        Param("base_frame", "base_link", "Frame of the ground-truth poses (the robot base; "
              "the simulator's world frame)."),
        Param("color_topic", COLOR_TOPIC, "Colour image topic (rgb8)."),
        Param("depth_topic", DEPTH_TOPIC, "Aligned depth topic (16UC1, millimetres, 0 = invalid)."),
        Param("camera_info_topic", CAMERA_INFO_TOPIC, "CameraInfo topic of the colour camera."),
        Param("joint_states_topic", JOINT_STATES_TOPIC, "Output JointState topic (6 arm joints "
              "in rad + gripper_joint closure, 0 = open .. 1 = closed)."),
        Param("trajectory_topic", TRAJECTORY_TOPIC, "Input JointTrajectory topic (the commands)."),
        Param("ground_truth_topic", "sim/ground_truth", "Ground-truth object poses (MarkerArray "
              "in base_frame, ns = object name), for evaluation only."),
        Param("success_topic", "sim/success", "std_msgs/Bool: the red cube rests in the bin."),
        Param("publish_clock", True, "Publish the simulated time on clock_topic (run the other "
              "nodes with use_sim_time:=true)."),
        Param("clock_topic", "/clock", "rosgraph_msgs/Clock topic of the simulated time."),
    ),
    "detector_node": (
        Param("backend", "ultralytics", "Detector backend: 'ultralytics' (YOLO / RT-DETR .pt), "
              "'onnx' (a YOLO ONNX export on ONNX Runtime, decoded by fdl_robot.core), 'detr' "
              "(Hugging Face checkpoint directory) or 'color' (HSV colour blobs, no weights)."),
        Param("model_path", "", "Weights file or checkpoint directory ('' = the shipped model: "
              "models/detector/best.pt, best.onnx for 'onnx')."),
        Param("image_size", 320, "Inference size in pixels (longest side)."),
        Param("score_threshold", 0.25, "Minimum detection confidence."),
        Param("iou_threshold", 0.5, "NMS IoU threshold (YOLO backends)."),
        Param("max_detections", 50, "Maximum detections per image."),
        Param("device", "cpu", "Torch device."),
        Param("publish_debug_image", False, "Publish an annotated image on debug_image_topic."),
        Param("image_topic", COLOR_TOPIC, "Input colour image topic."),
        Param("detections_topic", DETECTIONS_TOPIC, "Output Detection2DArray topic."),
        Param("debug_image_topic", "detections/image", "Annotated image topic."),
    ),
    "localizer_node": (
        Param("detections_topic", DETECTIONS_TOPIC, "Input Detection2DArray topic."),
        Param("depth_topic", DEPTH_TOPIC, "Aligned depth image topic (16UC1 mm or 32FC1 m)."),
        Param("camera_info_topic", CAMERA_INFO_TOPIC, "CameraInfo of the image the detections "
              "came from."),
        Param("objects_topic", OBJECTS_TOPIC, "Output Object3DArray topic (in target_frame)."),
        Param("target_frame", "base_link", "Frame of the published objects."),
        Param("camera_xyz", [1.0, 0.05, 0.6], "Extrinsics T_base_cam, translation: optical "
              "frame origin in target_frame, metres (hand-eye calibration; the default is the "
              "simulated cell's calibrated camera)."),
        Param("camera_quat_xyzw", [-0.655554, -0.655554, 0.265045, 0.265045], "Extrinsics "
              "T_base_cam, rotation of the optical frame in target_frame, quaternion (x, y, z, w)."),
        Param("depth_scale_m", 0.001, "Metres per unit of a 16UC1 depth image."),
        Param("depth_window", 0.5, "Fraction of the box (around its centre) whose valid depth "
              "pixels give the median depth."),
        Param("min_depth_m", 0.1, "Depths below this are invalid."),
        Param("max_depth_m", 4.0, "Depths above this are invalid."),
        Param("center_offset_m", 0.02, "Distance from the visible surface to the object centre "
              "along the viewing ray (half the cube size), metres."),
        Param("pixel_sigma_px", 2.0, "Std of the box-centre pixel position, for the covariance."),
        Param("depth_sigma_m", 0.005, "Std of the depth at 1 m; grows with depth squared."),
        Param("sync_tolerance_s", 0.002, "Detections, depth and camera_info match when their "
              "stamps differ by at most this."),
        Param("sync_queue_size", 30, "Messages kept per input while waiting for a match."),
    ),
    "tracker_node": (
        Param("objects_topic", OBJECTS_TOPIC, "Input Object3DArray topic."),
        Param("tracks_topic", TRACKS_TOPIC, "Output TrackArray topic."),
        Param("markers_topic", "tracks/markers", "MarkerArray topic for RViz."),
        Param("gating", "mahalanobis", "Association gate: 'mahalanobis' (chi-square gate at "
              "gate_probability) or 'euclidean' (max_distance_m)."),
        Param("gate_probability", 0.99, "Probability mass inside the Mahalanobis gate."),
        Param("max_distance_m", 0.1, "Euclidean gate, and a hard cap in Mahalanobis mode, metres."),
        Param("measurement_std_m", 0.01, "Measurement noise std when an object carries no "
              "covariance, metres."),
        Param("process_noise_q", 0.1, "White-noise acceleration spectral density q, m^2/s^3."),
        Param("n_init", 3, "Consecutive hits to confirm a track."),
        Param("max_age_s", 1.0, "Seconds a confirmed track coasts unmatched before deletion."),
        Param("publish_tentative", False, "Also publish tentative tracks."),
    ),
    "policy_node": (
        Param("policy", "act", "Policy: 'act' (the shipped ACT model, or model_path) or 'scripted' (reach "
              "above the target, a test stand-in)."),
        Param("model_path", "", "ACT checkpoint ('' = the shipped model)."),
        Param("policy_threads", 1, "torch threads for each ACT forward pass (0 = torch's "
              "default, one per core); the process's setting is restored after each pass."),
        Param("target_class", "red_cube", "Class the policy picks (service ~/set_target_class)."),
        Param("bin_position", [0.55, 0.25, 0.0], "Bin position in base_link, metres, until a "
              "track of bin_class is seen (and again after ~/reset)."),
        Param("bin_class", "bin", "Class of the tracked bin: the position of its most-hit CONFIRMED "
              "track replaces bin_position ('' = always use bin_position)."),
        Param("control_rate_hz", 50.0, "Rate of JointTrajectory commands."),
        Param("chunk_execution", "ensemble", "'ensemble' (temporal ensembling every step) or "
              "'chunk' (execute each chunk open loop)."),
        Param("ensemble_m", 0.01, "Temporal ensembling weight decay m, w_i = exp(-m i)."),
        Param("joint_names", ARM_JOINTS + [GRIPPER_JOINT], "Joint order of commands and states."),
        Param("joint_lower_rad", [-6.28, -6.28, -3.14, -6.28, -6.28, -6.28, 0.0],
              "Lower position limits (gripper: 0 = open)."),
        Param("joint_upper_rad", [6.28, 6.28, 3.14, 6.28, 6.28, 6.28, 1.0],
              "Upper position limits (gripper: 1 = closed)."),
        Param("max_velocity_rad_s", [1.5, 1.5, 1.5, 2.0, 2.0, 2.0, 5.0],
              "Velocity limit per joint: consecutive commands differ by at most this times "
              "the control period."),
        Param("max_tracking_error_rad", [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.5],
              "Largest distance of a command from the measured joint position, per joint "
              "(gripper: closure fraction)."),
        Param("input_timeout_s", 0.5, "Joint states or tracks older than this are stale: the "
              "watchdog commands a hold at the current position."),
        Param("require_tracks", True, "Hold while the tracks topic is stale too (perception "
              "down); false: stale tracks only mean no target."),
        Param("target_max_lost_s", 0.3, "A LOST track of the target class stays the target "
              "while unmatched for at most this, seconds."),
        Param("joint_states_topic", JOINT_STATES_TOPIC, "Input JointState topic."),
        Param("tracks_topic", TRACKS_TOPIC, "Input TrackArray topic."),
        Param("trajectory_topic", TRAJECTORY_TOPIC, "Output JointTrajectory topic."),
    ),
}


def defaults(node_name: str) -> dict[str, Any]:
    return {p.name: p.default for p in NODE_PARAMETERS[node_name]}


def declare(node, node_name: str) -> dict[str, Any]:
    """Declare all parameters of ``node_name`` on an rclpy node; return their values."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for p in NODE_PARAMETERS[node_name]:
        node.declare_parameter(p.name, p.default, ParameterDescriptor(description=p.description))
        values[p.name] = node.get_parameter(p.name).value
    return values


# --- generated artefacts --------------------------------------------------------------

def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return repr(value)


def to_yaml() -> str:
    lines = ["# Defaults of every fdl_robot node, in ros__parameters form.",
             "# Generated by `python -m fdl_robot.ros.parameters --yaml`; a test checks that this",
             "# file and the declarations in fdl_robot/ros/parameters.py agree.  Copy it to",
             "# make your own configuration and pass it with --params-file or config:=.",
             '# "/**/" matches the node in any namespace.']
    for node_name, params in NODE_PARAMETERS.items():
        lines += ["", f"/**/{node_name}:", "  ros__parameters:"]
        for p in params:
            lines.append(f"    {p.name}: {_yaml_value(p.default)}")
    return "\n".join(lines) + "\n"


def to_markdown() -> str:
    lines = ["| node | parameter | default | description |", "|---|---|---|---|"]
    for node_name, params in NODE_PARAMETERS.items():
        for p in params:
            lines.append(f"| `{node_name}` | `{p.name}` | `{_yaml_value(p.default)}` | "
                         f"{p.description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--yaml", action="store_true", help="print config/fdl_robot.yaml")
    group.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    print(to_yaml() if args.yaml else to_markdown(), end="")


if __name__ == "__main__":
    main()

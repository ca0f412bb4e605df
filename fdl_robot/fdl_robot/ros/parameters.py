"""Every ROS parameter of every fdl_robot node, declared once, with its description.

This table is the single place parameters are declared. A parameter that configures the
library takes its default from the library's config dataclass (:func:`from_config`:
``DetectorConfig``, ``LiftingConfig``, ``TrackerConfig``, ``CameraConfig``,
``PolicyConfig``, ``PolicyInputsConfig``, ``PacingConfig``, ``SafetyConfig``, ``TeleopConfig``,
``JoyMapping``), and nodes build those configs from their parameter values by keyword
(:func:`build_config`), so a default lives in one place. ``config/fdl_robot.yaml`` (the file users edit, in
``ros__parameters`` form) and the README's parameter table are generated from this
table, and the launch files read it; ``test/test_graph.py`` fails when the YAML or the
README drift from it.

    python -m fdl_robot.ros.parameters --yaml      # print the YAML of all defaults
    python -m fdl_robot.ros.parameters --markdown  # print the README table
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.config import field_default, from_mapping
from fdl_robot.core.robot import ARM_JOINT_NAMES, BASE_FRAME, GRIPPER_JOINT_NAME
from fdl_robot.core.safety import SafetyConfig
from fdl_robot.core.tracking import TrackerConfig
from fdl_robot.perception.detector import DetectorConfig
from fdl_robot.perception.lifting import LiftingConfig
from fdl_robot.perception.sources import CameraConfig
from fdl_robot.policy.inputs import PolicyInputsConfig
from fdl_robot.policy.pacing import PacingConfig
from fdl_robot.policy.runner import PolicyConfig
from fdl_robot.ros.interfaces import RobotInterface
from fdl_robot.teleop.cartesian import TeleopConfig
from fdl_robot.teleop.joy import JoyMapping

# Joint order of every joint vector in the stack (core.robot), as ROS string arrays.
ARM_JOINTS = list(ARM_JOINT_NAMES)
GRIPPER_JOINT = GRIPPER_JOINT_NAME

# Topics (realsense-ros names for the camera; ros2_control's JointTrajectoryController).
COLOR_TOPIC = "camera/color/image_raw"
CAMERA_INFO_TOPIC = "camera/color/camera_info"
DEPTH_TOPIC = "camera/aligned_depth_to_color/image_raw"
DETECTIONS_TOPIC = "detections"
OBJECTS_TOPIC = "objects"
TRACKS_TOPIC = "tracks"
JOINT_STATES_TOPIC = RobotInterface.joint_states_topic        # the simulated cell's (ros.interfaces)
TRAJECTORY_TOPIC = RobotInterface.arm_trajectory_topic


C = TypeVar("C")


# Image QoS. A reliable publisher serves reliable and best-effort subscribers alike; a
# best-effort subscriber receives from reliable and best-effort publishers alike. So images
# are published reliable and subscribed best effort, and each works with the common tools:
# * RViz2's Image display subscribes reliable, volatile, keep last 5 (rclcpp::QoS(5) in
#   rviz_common's RosTopicDisplay; changeable under the display's Topic > QoS properties);
#   a best-effort publisher gets "incompatible QoS" and the display stays empty.
# * realsense-ros 4.x publishes images with SYSTEM_DEFAULT (``<stream>_qos``, constants.h
#   IMAGE_QOS): the DDS's own default, under Fast DDS reliable + transient local + keep last 1
#   (seen here), under Cyclone DDS reliable + volatile; ``color_qos:=SENSOR_DATA`` makes
#   them best effort. A best-effort subscriber receives either.
IMAGE_PUBLISHER_QOS = ("reliable", 5)        # reliability, keep-last depth
IMAGE_SUBSCRIBER_QOS = ("best_effort", 5)
NEWEST_IMAGE_QOS = ("best_effort", 1)       # a consumer that must work on the newest frame


@dataclass(frozen=True)
class Param:
    """One ROS parameter: name, default (its type is the parameter's type), description.

    ``config``/``field``: the library config field the parameter sets, if any.
    """

    name: str
    default: Any
    description: str
    config: type | None = None
    field: str | None = None


def _ros_value(value: Any) -> Any:
    """A config default as a ROS parameter value (tuples become lists)."""
    return [_ros_value(v) for v in value] if isinstance(value, (tuple, list)) else value


def from_config(config: type, name: str, description: str, field: str | None = None) -> Param:
    """A parameter that sets ``config.<field>`` (default: the same name), with its default."""
    field = field or name
    return Param(name, _ros_value(field_default(config, field)), description, config, field)


def image_qos_params(qos: tuple[str, int], endpoint: str, prefix: str = "image_qos") -> tuple[Param, Param]:
    """``<prefix>_reliability`` and ``<prefix>_depth`` of a node's image ``endpoint`` (e.g.
    "colour and depth image publishers"), defaults ``qos``; the node builds the profile with
    ``FdlNode.image_qos(prefix)``."""
    reliability, depth = qos
    if "publisher" in endpoint:
        why = ("'reliable' serves reliable subscribers (a default RViz2 Image display: reliable, keep "
               "last 5) and best-effort ones alike; 'best_effort' (qos_profile_sensor_data) leaves a "
               "reliable subscriber with nothing ('incompatible QoS').")
        history = "."
    else:
        why = ("'best_effort' receives from reliable and best-effort publishers alike (realsense-ros 4.x: "
               "SYSTEM_DEFAULT, under Fast DDS reliable + transient local; or SENSOR_DATA, best "
               "effort); 'reliable' receives nothing from a best-effort publisher.")
        history = ("; 1: always the newest frame (a detector that falls behind skips frames instead of "
                   "working through a queue of stale ones: detections were 180 ms old at p50 with 5)."
                   if depth == 1 else ".")
    return (Param(f"{prefix}_reliability", reliability, f"QoS reliability of the {endpoint}: {why}"),
            Param(f"{prefix}_depth", depth, f"QoS history depth (keep last N) of the {endpoint}{history}"))


def build_config(node_name: str, config: type[C], values: Mapping[str, Any]) -> C:
    """The ``config`` a node's parameter ``values`` describe: by keyword, from every
    parameter of ``node_name`` declared with :func:`from_config` for it."""
    fields = {p.field: values[p.name] for p in NODE_PARAMETERS[node_name]
              if p.config is config and p.name in values}
    return from_mapping(config, fields)


#: The wiring of arm and gripper (ros.interfaces.RobotInterface), declared alike by the nodes
#: that command (policy_node, teleop_node) and the node that plays the robot (sim_node); a robot
#: profile (config/profiles/*.yaml) sets them for all.
ROBOT_INTERFACE: tuple[Param, ...] = (
    from_config(RobotInterface, "arm_joint_names", "The arm's joints in chain order, as its controller and "
                "joint_state_broadcaster name them (commands list exactly these)."),
    from_config(RobotInterface, "gripper_joint", "The gripper's joint, as its driver names it in joint "
                "states and trajectory commands."),
    from_config(RobotInterface, "gripper_open_position", "The gripper joint's native position when open "
                "(closure 0): metres of travel or gap, or radians."),
    from_config(RobotInterface, "gripper_closed_position", "The gripper joint's native position when closed "
                "(closure 1), same units."),
    from_config(RobotInterface, "arm_command_interface", "'trajectory' (JointTrajectory to a "
                "JointTrajectoryController on arm_trajectory_topic) or 'position' (Float64MultiArray to a "
                "forward_command_controller on arm_position_topic, every control step): ros.interfaces."),
    from_config(RobotInterface, "arm_trajectory_topic", "The arm JTC's topic (ur_robot_driver: "
                "scaled_joint_trajectory_controller/joint_trajectory)."),
    from_config(RobotInterface, "arm_position_topic", "The arm forward_command_controller's topic."),
    from_config(RobotInterface, "gripper_command_interface", "'trajectory' (JointTrajectory of gripper_joint "
                "to a gripper JTC), 'position' (Float64MultiArray to a forward_command_controller) or 'action' "
                "(control_msgs/GripperCommand goals, GripperActionController and most gripper drivers)."),
    from_config(RobotInterface, "gripper_trajectory_topic", "The gripper JTC's topic ('trajectory')."),
    from_config(RobotInterface, "gripper_position_topic", "The gripper forward_command_controller's topic "
                "('position')."),
    from_config(RobotInterface, "gripper_action", "The GripperCommand action ('action')."),
    from_config(RobotInterface, "gripper_max_effort", "max_effort of GripperCommand goals, N (0 = the "
                "driver's own limit)."),
    from_config(RobotInterface, "gripper_goal_deadband", "'action': a new goal is sent when the commanded "
                "closure moves by more than this from the last goal."),
    from_config(RobotInterface, "joint_states_topic", "JointState topic of the arm (joint_state_broadcaster)."),
    from_config(RobotInterface, "gripper_joint_states_topic", "JointState topic of the gripper's driver "
                "(often joint_states too, from another publisher: merged by joint name)."),
)

#: The safety layer's limits (core.safety.SafetyConfig), declared alike by every node that commands
#: the arm (policy_node, teleop_node): one set of defaults, so both are limited the same way.
SAFETY_LIMITS: tuple[Param, ...] = (
    from_config(SafetyConfig, "joint_lower_rad", "Lower position limits (gripper: 0 = open)."),
    from_config(SafetyConfig, "joint_upper_rad", "Upper position limits (gripper: 1 = closed)."),
    from_config(SafetyConfig, "max_velocity_rad_s", "Velocity limit per joint: consecutive "
                "commands differ by at most this times the control period."),
    from_config(SafetyConfig, "max_tracking_error_rad", "Largest distance of a command from the "
                "measured joint position, per joint (gripper: closure fraction)."),
)

#: A camera's extrinsics, declared alike by localizer_node (which lifts with them) and
#: state_publisher_node (which publishes them on /tf_static): a fixed camera's T_base_cam, and
#: a camera on the arm's mount T_mount_cam (the simulated cell's nominal poses by default).
CAMERA_EXTRINSICS: tuple[Param, ...] = (
    Param("camera_xyz", [1.0, 0.05, 0.6], "Extrinsics T_base_cam of a fixed camera, translation: optical "
          "frame origin in the base frame (target_frame), metres (hand-eye calibration; the default is the "
          "simulated cell's calibrated scene camera)."),
    Param("camera_quat_xyzw", [-0.655554, -0.655554, 0.265045, 0.265045], "Extrinsics "
          "T_base_cam of a fixed camera, rotation of the optical frame in the base frame, quaternion (x, y, z, w)."),
    Param("camera_mount_frame", "tool0", "A camera on the arm: the URDF link it is mounted on."),
    Param("camera_mount_xyz", [0.06, 0.0, 0.07], "A camera on the arm: T_mount_cam (eye-in-hand "
          "calibration), translation of its optical frame in camera_mount_frame, metres (default: the "
          "simulated wrist camera's nominal mount)."),
    Param("camera_mount_quat_xyzw", [0.122788, -0.122788, -0.696364, 0.696364], "A camera on the arm: "
          "T_mount_cam, rotation of its optical frame in camera_mount_frame, quaternion (x, y, z, w)."),
)

NODE_PARAMETERS: dict[str, tuple[Param, ...]] = {
    "camera_node": (
        from_config(CameraConfig, "source", "Camera source: 'realsense' (device or recording), 'video' "
                    "(OpenCV file or webcam, colour only) or one added with sources.register_source."),
        from_config(CameraConfig, "realsense_bag", "RealSense recording to play instead of a live device: .db3 "
                    "(what librealsense 2.59 records) or ROS 1 .bag ('' = live device)."),
        from_config(CameraConfig, "realsense_serial", "Serial number of the RealSense device ('' = first found)."),
        from_config(CameraConfig, "align_depth", "Register depth to colour with rs.align (skipped when the "
                    "streams already share size and intrinsics)."),
        from_config(CameraConfig, "video_uri", "OpenCV capture: a webcam index ('0') or a video file path."),
        from_config(CameraConfig, "video_hfov_deg", "Assumed horizontal field of view of a video source "
                    "(uncalibrated): fx = fy = (W/2)/tan(hfov/2), principal point at the centre."),
        from_config(CameraConfig, "loop", "Restart a recording or video file at its end (else publish its "
                    "frames once and stop)."),
        from_config(CameraConfig, "width", "Image width in pixels (live camera or webcam; files keep their size)."),
        from_config(CameraConfig, "height", "Image height in pixels (live camera or webcam; files keep their size)."),
        from_config(CameraConfig, "fps", "Frame rate in Hz of the camera and of publishing (files play at it)."),
        Param("frame_id", "camera_color_optical_frame", "Optical frame of the colour and "
              "aligned depth images (z forward, x right, y down)."),
        Param("color_topic", COLOR_TOPIC, "Colour image topic (rgb8)."),
        Param("depth_topic", DEPTH_TOPIC, "Aligned depth topic (16UC1, millimetres, 0 = invalid)."),
        Param("camera_info_topic", CAMERA_INFO_TOPIC, "CameraInfo topic of the colour camera."),
        *image_qos_params(IMAGE_PUBLISHER_QOS, "colour and depth image publishers"),
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
        Param("shadow_map_px", 512, "Side of the shadow map in pixels (0 = the cell's 2048, what the "
              "datasets were rendered with; 512 renders a 320x240 frame ~2x faster on a CPU and changes it "
              "by 0.4/255 in the mean, at shadow edges only)."),
        Param("frame_id", "camera_color_optical_frame", "Optical frame of the colour and "
              "aligned depth images (z forward, x right, y down)."),
        Param("base_frame", BASE_FRAME, "Frame of the ground-truth poses (the robot base; "
              "the simulator's world frame)."),
        Param("color_topic", COLOR_TOPIC, "Colour image topic (rgb8)."),
        Param("depth_topic", DEPTH_TOPIC, "Aligned depth topic (16UC1, millimetres, 0 = invalid)."),
        Param("camera_info_topic", CAMERA_INFO_TOPIC, "CameraInfo topic of the colour camera."),
        *image_qos_params(IMAGE_PUBLISHER_QOS, "colour and depth image publishers"),
        *ROBOT_INTERFACE,
        Param("ground_truth_topic", "sim/ground_truth", "Ground-truth object poses (MarkerArray "
              "in base_frame, ns = object name), for evaluation only."),
        Param("success_topic", "sim/success", "std_msgs/Bool: the red cube rests in the bin."),
        Param("perturbation_topic", "sim/perturbation", "std_msgs/String, JSON: this episode's perturbation, "
              "its drawn parameters, when it fired (s since the reset) and the grasps so far; published when "
              "one of them changes, for evaluation only."),
        Param("publish_clock", False, "true: stamp every message with the simulated time and publish it "
              "on clock_topic (run the other nodes with use_sim_time:=true; needed for a real_time_factor "
              "other than 1). false: stamp with the wall clock, as camera and arm drivers do (the other "
              "nodes on the system clock; real_time_factor must be 1)."),
        Param("clock_topic", "/clock", "rosgraph_msgs/Clock topic of the simulated time."),
        Param("depth_model", "ideal", "Depth of both cameras: 'ideal' (the exact rendered z-depth) or "
              "'realsense' (a stereo camera's axial noise growing with z^2, holes at edges and in the "
              "occlusion shadow, minimum range, quantisation; seeded per frame: sim.depth_model)."),
        Param("perturbation", "none", "What changes the scene while the robot works, drawn per seed "
              "(sim.perturbations): 'none', 'shift' (the cube slides 5-15 cm during the reach), 'drop' (the "
              "cube knocked out of the gripper during the carry), 'bin' (the bin moved 5-12 cm), 'conveyor' "
              "(the cubes moving at 2-8 cm/s), 'mixed' (shift, drop or bin, drawn per seed)."),
        Param("wrist_camera", False, "Also render and publish the wrist camera (a RealSense D405 on tool0; "
              "a second render per frame, about as costly as the scene camera's)."),
        Param("wrist_width", 640, "Image width in pixels of the wrist camera."),
        Param("wrist_height", 480, "Image height in pixels of the wrist camera (vertical FOV 58 deg)."),
        Param("wrist_frame_id", "wrist_camera_color_optical_frame", "Optical frame of the wrist camera's "
              "colour and aligned depth images (its mount on tool0: PickPlaceEnv.T_flange_cam_nominal)."),
        Param("wrist_color_topic", "wrist_camera/" + COLOR_TOPIC, "Wrist camera colour image topic (rgb8)."),
        Param("wrist_depth_topic", "wrist_camera/" + DEPTH_TOPIC, "Wrist camera aligned depth topic: 16UC1 "
              "in 0.1 mm units, the D405's (a localizer for it needs depth_scale_m 0.0001), 0 = invalid."),
        Param("wrist_camera_info_topic", "wrist_camera/" + CAMERA_INFO_TOPIC, "CameraInfo topic of the wrist "
              "camera."),
    ),
    "detector_node": (
        from_config(DetectorConfig, "backend", "Detector backend: 'ultralytics' (YOLO / RT-DETR .pt), "
                    "'onnx' (a YOLO ONNX export on ONNX Runtime, decoded by fdl_robot.core), 'openvino' "
                    "(the same export compiled by OpenVINO for the CPU), 'detr' (the DETR family: our RT-DETR's ONNX "
                    "export on ONNX Runtime, its .pt through ultralytics, or a Hugging Face DETR checkpoint "
                    "directory) or 'color' (HSV colour blobs, no weights)."),
        from_config(DetectorConfig, "model_path", "Weights file or checkpoint directory ('' = the shipped model: "
                    "models/<shipped_model>/best.pt, best.onnx for 'onnx' and 'openvino', "
                    "models/<shipped_model>_detr/best.onnx for 'detr')."),
        from_config(DetectorConfig, "shipped_model", "The shipped detector model_path '' loads: 'detector' "
                    "(trained on the scene camera) or 'detector_wrist' (fine-tuned on scene and wrist-camera "
                    "frames; the wrist camera's chain uses it)."),
        from_config(DetectorConfig, "image_size", "Inference size in pixels (longest side; the ONNX backends "
                    "use the export's fixed input size)."),
        from_config(DetectorConfig, "score_threshold", "Minimum detection confidence."),
        from_config(DetectorConfig, "iou_threshold", "NMS IoU threshold (YOLO backends)."),
        from_config(DetectorConfig, "max_detections", "Maximum detections per image."),
        from_config(DetectorConfig, "device", "Torch device."),
        from_config(DetectorConfig, "threads", "Intra-op threads of the runtime (ONNX Runtime, OpenVINO, "
                    "torch; 0 = the runtime's default, one per core). Each competes for the cores "
                    "with the other nodes."),
        from_config(DetectorConfig, "precision", "Arithmetic of the 'openvino' backend: 'f32' or 'bf16' "
                    "(bfloat16 on AVX-512 BF16 / AMX units; faster, boxes differ from f32 by about a "
                    "pixel). The other backends compute in f32."),
        Param("publish_debug_image", False, "Publish an annotated image on debug_image_topic."),
        Param("image_topic", COLOR_TOPIC, "Input colour image topic."),
        Param("detections_topic", DETECTIONS_TOPIC, "Output Detection2DArray topic."),
        Param("debug_image_topic", "detections/image", "Annotated image topic."),
        *image_qos_params(NEWEST_IMAGE_QOS, "colour image subscription (image_topic)"),
        *image_qos_params(IMAGE_PUBLISHER_QOS, "annotated image publisher (debug_image_topic)",
                          prefix="debug_image_qos"),
    ),
    "localizer_node": (
        Param("detections_topic", DETECTIONS_TOPIC, "Input Detection2DArray topic."),
        Param("depth_topic", DEPTH_TOPIC, "Aligned depth image topic (16UC1 mm or 32FC1 m)."),
        *image_qos_params(IMAGE_SUBSCRIBER_QOS, "depth image subscription (depth_topic)"),
        Param("camera_info_topic", CAMERA_INFO_TOPIC, "CameraInfo of the image the detections "
              "came from."),
        Param("objects_topic", OBJECTS_TOPIC, "Output Object3DArray topic (in target_frame)."),
        Param("target_frame", BASE_FRAME, "Frame of the published objects."),
        Param("transform_source", "fixed", "Where T_target_cam comes from, looked up at the image stamp "
              "(perception.extrinsics): 'fixed' (camera_xyz, camera_quat_xyzw), 'arm' (a camera on the arm: "
              "FK(q(t)) T_mount_cam with q interpolated at the stamp from joint_states_topic) or 'tf' (tf2_ros "
              "on a ROS 2 install: /tf and /tf_static, lookup at the stamp). A frame without a transform at its "
              "stamp is counted and dropped ('transform unavailable'), never lifted with another instant's."),
        *CAMERA_EXTRINSICS,
        Param("urdf_path", "", "'arm': the robot's URDF, for FK from target_frame to camera_mount_frame "
              "('' = the simulated UR5e + gripper, fdl_robot.description.UR5E_URDF)."),
        Param("joint_states_topic", JOINT_STATES_TOPIC, "'arm': JointState topic of the arm joints (any "
              "subset and order per message; other names are ignored)."),
        Param("transform_history_s", 10.0, "'arm': seconds of joint states kept (the joint buffer); "
              "'tf': the tf2 buffer's cache time. Frames older than this are rejected."),
        Param("transform_tolerance_s", 0.0, "'arm': an image stamp at most this far past the newest joint "
              "state is answered with the newest (error up to speed x tolerance); later ones are rejected. "
              "0 = as tf2: never past the newest."),
        Param("transform_max_gap_s", 0.1, "'arm': reject an image stamp between two joint states further "
              "apart than this (a stalled joint-state stream; 0 = no limit)."),
        Param("depth_scale_m", 0.001, "Metres per unit of a 16UC1 depth image (realsense-ros: 0.001; the "
              "simulated wrist camera, a D405: 0.0001)."),
        from_config(LiftingConfig, "depth_window", "Fraction of the box (around its centre) whose valid depth "
                    "pixels give the median depth."),
        from_config(LiftingConfig, "min_depth_m", "Depths below this are invalid."),
        from_config(LiftingConfig, "max_depth_m", "Depths above this are invalid."),
        from_config(LiftingConfig, "center_offset_m", "Distance from the visible surface to the object centre "
                    "along the viewing ray (half the cube size), metres."),
        from_config(LiftingConfig, "pixel_sigma_px", "Std of the box-centre pixel position, for the covariance."),
        from_config(LiftingConfig, "depth_sigma_m", "Std of the depth at 1 m; grows with depth squared."),
        Param("sync_tolerance_s", 0.002, "Detections, depth and camera_info match when their "
              "stamps differ by at most this."),
        Param("sync_queue_size", 30, "Messages kept per input while waiting for a match."),
    ),
    "state_publisher_node": (
        Param("urdf_path", "", "The robot's URDF ('' = the simulated UR5e + gripper, "
              "fdl_robot.description.UR5E_URDF), published on robot_description_topic."),
        Param("base_frame", BASE_FRAME, "The robot's base link, parent of the fixed camera's frame."),
        Param("robot_description_topic", "robot_description", "std_msgs/String topic of the URDF (transient "
              "local, as robot_state_publisher)."),
        Param("static_camera_frame", "camera_color_optical_frame", "The fixed camera's optical frame, published "
              "on /tf_static as base_frame -> it from camera_xyz / camera_quat_xyzw ('' = none, e.g. when the "
              "camera driver publishes its own frames)."),
        Param("arm_camera_frame", "wrist_camera_color_optical_frame", "The camera on the arm's optical frame, "
              "published on /tf_static as camera_mount_frame -> it from camera_mount_xyz / "
              "camera_mount_quat_xyzw ('' = none)."),
        *CAMERA_EXTRINSICS,
        *(p for p in ROBOT_INTERFACE if p.name in ("gripper_joint", "gripper_open_position",
                                                   "gripper_closed_position", "joint_states_topic",
                                                   "gripper_joint_states_topic")),
        Param("gripper_urdf_joint", "left_finger_joint", "The URDF joint that gripper_joint's closure drives, "
              "from its lower (open) to its upper (closed) limit, when gripper_joint is not a URDF joint "
              "itself ('' = none)."),
    ),
    "tracker_node": (
        Param("objects_topic", OBJECTS_TOPIC, "Input Object3DArray topic."),
        Param("tracks_topic", TRACKS_TOPIC, "Output TrackArray topic."),
        Param("markers_topic", "tracks/markers", "MarkerArray topic for RViz."),
        from_config(TrackerConfig, "gating", "Association gate: 'mahalanobis' (chi-square gate at "
                    "gate_probability) or 'euclidean' (max_distance_m)."),
        from_config(TrackerConfig, "gate_probability", "Probability mass inside the Mahalanobis gate."),
        from_config(TrackerConfig, "max_distance_m", "Euclidean gate, and a hard cap in Mahalanobis mode, of a track "
                    "at rest, metres; it grows by 0.2 s times the track's speed, up to tentative_max_distance_m."),
        from_config(TrackerConfig, "tentative_max_distance_m", "The same cap for tentative tracks (velocity still "
                    "unknown), metres."),
        from_config(TrackerConfig, "measurement_std_m", "Measurement noise std when an object carries no "
                    "covariance, metres."),
        from_config(TrackerConfig, "process_noise_q", "White-noise acceleration spectral densities q, m^2/s^3, "
                    "one per motion model of the IMM (at rest, smooth, manoeuvre); one value: a single "
                    "constant-velocity Kalman filter."),
        from_config(TrackerConfig, "mode_switch_time_s", "Mean time the IMM's motion mode stays the same, seconds."),
        from_config(TrackerConfig, "n_init", "Consecutive hits to confirm a track."),
        from_config(TrackerConfig, "max_age_s", "Seconds a confirmed track coasts unmatched by updates that "
                    "could see it before deletion."),
        from_config(TrackerConfig, "max_position_std_m", "A track missed twice in a row in view is deleted once "
                    "its position sigma exceeds this, metres (.inf: only max_age_s deletes)."),
        from_config(TrackerConfig, "outage_s", "A gap longer than this between two inputs is a sensor outage: it "
                    "does not count towards max_age_s, seconds."),
        from_config(TrackerConfig, "late_tolerance_s", "An input up to this much older than the last one is "
                    "processed in stamp order (the recent inputs replayed), seconds; 0 rejects it."),
        Param("publish_tentative", False, "Also publish tentative tracks."),
        Param("use_camera_view", True, "Use each Object3DArray's view (what its camera could see): tracks "
              "outside it are predicted but not aged. false: every update sees every track."),
        Param("view_margin_px", 10.0, "A track whose object's image comes within this many pixels of the image "
              "border counts as unseen (a cut-off object may go undetected); negative widens the view."),
        Param("view_object_radius_m", 0.02, "Radius of a tracked object for the view test: its image radius "
              "(f r / z pixels) is added to view_margin_px."),
    ),
    "policy_node": (
        from_config(PolicyConfig, "policy", "Policy: 'act' (the shipped ACT model, or model_path) or 'scripted' (reach "
                    "above the target, a test stand-in)."),
        from_config(PolicyConfig, "model_path", "ACT checkpoint ('' = the shipped model)."),
        from_config(PolicyConfig, "policy_threads", "torch threads for each ACT forward pass (0 = torch's "
                    "default, one per core); the process's setting is restored after each pass."),
        from_config(PolicyInputsConfig, "target_class", "Class the policy picks (service ~/set_target_class)."),
        from_config(PolicyInputsConfig, "bin_position", "Bin position in base_link, metres, until a "
                    "track of bin_class is seen (and again after ~/reset)."),
        from_config(PolicyInputsConfig, "bin_class", "Class of the tracked bin: the position of its most-hit CONFIRMED "
                    "track replaces bin_position ('' = always use bin_position)."),
        from_config(PolicyConfig, "control_rate_hz", "Rate of JointTrajectory commands."),
        from_config(PolicyConfig, "trajectory_points", "Points per JointTrajectory: this step's command, then "
                    "the next points of the chunk (0 = the whole chunk). The arm holds the last point when "
                    "commands stop, so this bounds the motion after the last command to trajectory_points / "
                    "control_rate_hz seconds."),
        from_config(PacingConfig, "command_timing", "When commands go out: 'on_tracks' (as soon as fresh "
                    "tracks arrive if the interval bound allows, else as soon as it does; without "
                    "fresh tracks on a dt grid phased to their arrivals: policy.pacing) or 'fixed' (a "
                    "free-running timer every dt). With use_sim_time the node keeps 'fixed'.", field="timing"),
        from_config(PacingConfig, "command_interval_tolerance_s", "'on_tracks': every interval between "
                    "commands, as decided, lies within 1/control_rate_hz +- this, seconds (< half the "
                    "period; timer lateness, compute and transport add to it at the robot).",
                    field="tolerance_s"),
        from_config(PacingConfig, "command_phase_gain", "'on_tracks': gain of the estimate of the tracks' "
                    "arrival phase, 0 < g <= 1 (1 = the last arrival; smaller averages the latency "
                    "jitter over about 1/g frames).", field="phase_gain"),
        from_config(PolicyConfig, "chunk_execution", "'ensemble' (temporal ensembling every step) or "
                    "'chunk' (execute each chunk open loop)."),
        from_config(PolicyConfig, "ensemble_m", "Temporal ensembling weight decay m, w_i = exp(-m i)."),
        *SAFETY_LIMITS,
        from_config(PolicyInputsConfig, "input_timeout_s", "Joint states or tracks older than this are stale: the "
                    "watchdog commands a hold at the current position."),
        from_config(PolicyInputsConfig, "require_tracks", "Hold while the tracks topic is stale too (perception "
                    "down); false: stale tracks only mean no target."),
        from_config(PolicyInputsConfig, "base_frame", "Frame of the tracks (an empty frame_id is taken "
                    "to be this one; any other is rejected)."),
        from_config(PolicyInputsConfig, "target_max_lost_s", "A LOST track of the target class stays the target "
                    "while unmatched for at most this, seconds."),
        from_config(PolicyInputsConfig, "target_prediction", "Predict the target from its tracks' image stamp to "
                    "the command time with its velocity, when the velocity is significant (latency compensation, "
                    "policy.inputs)."),
        from_config(PolicyInputsConfig, "target_prediction_max_s", "Longest horizon of that prediction, seconds."),
        Param("tracks_topic", TRACKS_TOPIC, "Input TrackArray topic."),
        *ROBOT_INTERFACE,
    ),
    "teleop_node": (
        from_config(TeleopConfig, "control_rate_hz", "Rate of arm and gripper commands while the operator "
                    "commands motion (the same command messages as policy_node's)."),
        from_config(TeleopConfig, "twist_frame", "Axes of the velocity command (Joy and cmd_vel): 'base' "
                    "(base_frame's: x forward, y left, z up) or 'tool' (tcp_frame's: z = approach). The "
                    "linear part moves the TCP's origin, the angular part turns about it."),
        from_config(TeleopConfig, "max_linear_speed_m_s", "Largest TCP speed, m/s: a faster command is "
                    "scaled down along its direction."),
        from_config(TeleopConfig, "max_angular_speed_rad_s", "Largest TCP angular speed, rad/s (scaled "
                    "down likewise)."),
        from_config(TeleopConfig, "workspace_min_m", "Lower corner (x, y, z) of the box the TCP target "
                    "stays in, base_frame, metres."),
        from_config(TeleopConfig, "workspace_max_m", "Upper corner (x, y, z) of that box, metres."),
        from_config(TeleopConfig, "command_timeout_s", "Joy or cmd_vel older than this is stale: with "
                    "neither fresh (or the deadman released) the arm holds at its measured position. "
                    "Keep joy_node's autorepeat_rate above 1 / this."),
        from_config(TeleopConfig, "input_timeout_s", "Joint states older than this are stale: one hold, "
                    "then no command until they are fresh again."),
        Param("base_frame", BASE_FRAME, "The URDF's base link: the frame of the workspace box and of "
              "'base' twists; a TwistStamped in another frame than this or tcp_frame is rejected."),
        from_config(TeleopConfig, "tcp_frame", "The URDF frame that is moved (the TCP)."),
        Param("urdf_path", "", "The robot's URDF for FK and IK ('' = the simulated UR5e + gripper, "
              "fdl_robot.description.UR5E_URDF)."),
        from_config(TeleopConfig, "ik_max_iterations", "DLS IK iterations per control step (warm-started "
                    "at the previous command; one or two suffice at teleoperation speeds)."),
        from_config(JoyMapping, "joy_axis_linear", "Joy axes of the linear velocity x, y, z (-1 = unused; "
                    "default: ros2 joy's game_controller_node, left stick x/y, right stick up/down).",
                    field="axis_linear"),
        from_config(JoyMapping, "joy_scale_linear", "m/s at full deflection of each of those axes.",
                    field="scale_linear_m_s"),
        from_config(JoyMapping, "joy_axis_angular", "Joy axes of the angular velocity about x, y, z (roll, "
                    "pitch, yaw; -1 = unused; default: yaw on the right stick's left/right).", field="axis_angular"),
        from_config(JoyMapping, "joy_scale_angular", "rad/s at full deflection of each of those axes.",
                    field="scale_angular_rad_s"),
        from_config(JoyMapping, "joy_deadzone", "Stick dead zone d in [0, 1): |a| <= d gives 0, beyond it "
                    "(|a| - d) / (1 - d), continuous up to full scale.", field="deadzone"),
        from_config(JoyMapping, "joy_enable_button", "Deadman button: the joystick moves the arm only while "
                    "it is held (default: the left shoulder button).", field="enable_button"),
        from_config(JoyMapping, "joy_require_enable_button", "Require the deadman (false: every fresh Joy "
                    "message commands motion).", field="require_enable_button"),
        from_config(JoyMapping, "joy_turbo_button", "Button that multiplies the joystick's scales by "
                    "joy_turbo_factor while held (-1 = none).", field="turbo_button"),
        from_config(JoyMapping, "joy_turbo_factor", "Scale factor of the turbo button (the speed limits "
                    "still apply).", field="turbo_factor"),
        from_config(JoyMapping, "joy_gripper_close_button", "Button that closes the gripper (-1 = none); "
                    "the request holds until the open button.", field="gripper_close_button"),
        from_config(JoyMapping, "joy_gripper_open_button", "Button that opens the gripper (-1 = none).",
                    field="gripper_open_button"),
        Param("joy_topic", "joy", "Input sensor_msgs/Joy topic (ros2 joy's joy_node)."),
        Param("cmd_vel_topic", "cmd_vel", "Input velocity command topic (teleop_twist_keyboard, a spacemouse "
              "driver, a script)."),
        Param("cmd_vel_stamped", False, "cmd_vel carries geometry_msgs/TwistStamped (its frame_id: '' = "
              "twist_frame, base_frame or tcp_frame) instead of geometry_msgs/Twist."),
        *SAFETY_LIMITS,
        *ROBOT_INTERFACE,
    ),
}


def defaults(node_name: str) -> dict[str, Any]:
    return {p.name: p.default for p in NODE_PARAMETERS[node_name]}


def declare(node, node_name: str) -> dict[str, Any]:
    """Declare all parameters of ``node_name`` on an rclpy node; return their values.

    Each takes the value the node's parameter overrides give it (YAML files and ``-p``, as
    rclpy merged them), else its default, through :func:`parameter_check.typed_value`: an
    integer is taken where a double is declared, any other wrong type raises a one-line
    ``ParameterError``. (The sources themselves are checked before rcl reads them:
    :func:`parameter_check.check_sources`.)
    """
    from rcl_interfaces.msg import ParameterDescriptor

    from fdl_robot.ros.parameter_check import typed_value

    overrides = node._parameter_overrides     # rclpy: {name: Parameter} from this node's arguments
    values = {}
    for p in NODE_PARAMETERS[node_name]:
        value = typed_value(node_name, p, overrides[p.name].value) if p.name in overrides else p.default
        node.declare_parameter(p.name, value, ParameterDescriptor(description=p.description),
                               ignore_override=True)
        values[p.name] = node.get_parameter(p.name).value
    return values


def node_help(node_name: str, summary: str = "") -> str:
    """``<node> --help``: how to set parameters, and each one's type, default and description."""
    from fdl_robot.ros.parameter_check import ros_type

    lines = [f"usage: {node_name} [--ros-args [--params-file FILE] [-p NAME:=VALUE] ...]", ""]
    if summary:
        lines += [summary, ""]
    lines.append("parameters (YAML files and -p apply in order, the later wins):")
    for p in NODE_PARAMETERS[node_name]:
        lines.append(f"  {p.name} ({ros_type(p.default)}, default: {_yaml_value(p.default)})")
        lines.append(f"      {p.description}")
    return "\n".join(lines) + "\n"


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--yaml", action="store_true", help="print config/fdl_robot.yaml")
    group.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    print(to_yaml() if args.yaml else to_markdown(), end="")


if __name__ == "__main__":
    main()

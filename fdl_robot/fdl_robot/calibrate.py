"""Hand-eye calibration of a camera on or beside the arm, from a ChArUco board.

    fdl-robot-calibrate --sim --mode eye-to-hand       # the whole capture in the simulator
    fdl-robot-calibrate --sim --mode eye-in-hand
    fdl-robot-calibrate --bag PATH --mode eye-to-hand  # images + camera_info + joint states
    fdl-robot-calibrate --live --mode eye-in-hand      # a running graph: a frame when the arm rests
    fdl-robot-calibrate --print-board board.png        # the board to print

eye-to-hand: a fixed camera, the board on the flange; the answer is T_base_cam (the
localizer's ``camera_xyz`` / ``camera_quat_xyzw``). eye-in-hand: the camera on the flange,
the board fixed on the table; the answer is T_mount_cam (``camera_mount_frame``,
``camera_mount_xyz``, ``camera_mount_quat_xyzw``). The math, the methods and the checks of the
pose set are :mod:`fdl_robot.perception.handeye`'s.

Each image's joint state is the one at its stamp: in a bag or a live graph the joint states
are interpolated at the image stamp (:class:`fdl_robot.core.joint_buffer.JointBuffer`), and
only images taken after the arm has rested for ``--still-s`` are used (a moving arm smears
the image and makes the stamp matter), one per rest.

Outputs (``--output DIR``): ``extrinsics.yaml``, the parameters of localizer_node and
state_publisher_node (``--params-file`` for a graph); ``tf_static.yaml``, the transform for
/tf_static (parent, child, xyz, quat_xyzw); ``report.json``, every method's answer and
residuals. In the simulator the last line compares with the simulator's truth:
``calibration error: T mm, R deg``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fdl_robot.cli_format import HelpFormatter
from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.outputs import BAG, DIRECTORY, IMAGE, check_args, exit_on_error, write_image, write_json, write_text
from fdl_robot.perception import handeye
from fdl_robot.perception.charuco import DEFAULT_BOARD, BoardSpec, board_pose, detect_board
from fdl_robot.perception.handeye import EYE_IN_HAND, EYE_TO_HAND, MODES, DegeneratePoses, PoseSample

__all__ = ["Frame", "Captured", "TOPICS", "CAMERA_FRAMES", "pose_samples", "localizer_parameters",
           "tf_static", "extrinsics_yaml", "read_extrinsics", "tf_static_yaml", "write_bag", "read_bag", "at_rest",
           "still_frames",
           "method_table", "main"]

#: Default (image, camera_info) topics per mode: the scene camera's and the wrist camera's (sim_node's,
#: realsense-ros names: camera/color/..., wrist_camera/camera/color/...).
TOPICS = {EYE_TO_HAND: ("/camera/color/image_raw", "/camera/color/camera_info"),
          EYE_IN_HAND: ("/wrist_camera/camera/color/image_raw", "/wrist_camera/camera/color/camera_info")}
#: The optical frames state_publisher_node publishes (static_camera_frame, arm_camera_frame).
CAMERA_FRAMES = {EYE_TO_HAND: "camera_color_optical_frame", EYE_IN_HAND: "wrist_camera_color_optical_frame"}
JOINT_STATES = "/joint_states"
#: At rest: no joint moved more than this over the rest window, radians.
STILL_TOLERANCE_RAD = 1e-3
#: A new pose: some joint moved at least this far from the last image used, radians.
MIN_MOVE_RAD = 0.01


@dataclass
class Frame:
    """An image for the calibration: stamp (ns), RGB (H, W, 3) uint8, arm joints q (n,) at the
    stamp in the robot model's joint order."""

    stamp_ns: int
    rgb: np.ndarray
    q_rad: np.ndarray
    label: str = ""


@dataclass
class Captured:
    """Frames and the camera that took them (intrinsics, optical frame id)."""

    frames: list[Frame]
    camera: PinholeCamera
    camera_frame: str = ""


# ----------------------------------------------------------------------------- solving
def pose_samples(frames: Sequence[Frame], camera: PinholeCamera, spec: BoardSpec,
                 flange_pose) -> tuple[list[PoseSample], list[str]]:
    """Detect the board in every frame: (samples, one line per frame without a usable board).

    ``flange_pose``: q (n,) -> T_base_flange (the robot's FK to the mount frame).
    """
    import cv2

    detector = cv2.aruco.CharucoDetector(spec.board())
    samples, rejected = [], []
    for k, f in enumerate(frames):
        label = f.label or f"image {k}"
        obs, why = detect_board(f.rgb, spec, detector=detector)
        if obs is None:
            rejected.append(f"{label}: {why}")
            continue
        T_cam_board, _ = board_pose(obs, camera)
        samples.append(PoseSample(flange_pose(f.q_rad), T_cam_board, obs, label))
    return samples, rejected


def solve(frames: Sequence[Frame], camera: PinholeCamera, mode: str, spec: BoardSpec, flange_pose):
    """(calibration, samples, rejected lines); raises DegeneratePoses naming the rejected images."""
    samples, rejected = pose_samples(frames, camera, spec, flange_pose)
    if len(samples) < handeye.MIN_POSES:
        detail = "; ".join(rejected[:8]) + (" ..." if len(rejected) > 8 else "")
        raise DegeneratePoses(f"board not detected: usable in {len(samples)} of {len(frames)} images, need "
                              f"{handeye.MIN_POSES} ({spec.describe()}; is it the board in view?)"
                              f"{': ' if detail else ''}{detail}")
    return handeye.calibrate(samples, mode, camera), samples, rejected


# ----------------------------------------------------------------------------- outputs
def _round(values, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


def localizer_parameters(X: Transform, mode: str, mount_frame: str = "tool0") -> dict:
    """The localizer's parameters of the answer (names of fdl_robot.ros.parameters)."""
    if mode == EYE_TO_HAND:
        return {"transform_source": "fixed", "camera_xyz": _round(X.translation),
                "camera_quat_xyzw": _round(X.as_quaternion())}
    return {"transform_source": "arm", "camera_mount_frame": mount_frame, "camera_mount_xyz": _round(X.translation),
            "camera_mount_quat_xyzw": _round(X.as_quaternion())}


def tf_static(X: Transform, mode: str, parent_frame: str, camera_frame: str) -> dict:
    """The transform for /tf_static: parent, child, xyz (m), quat_xyzw (geometry_msgs/TransformStamped's
    header.frame_id, child_frame_id, transform.translation, transform.rotation)."""
    return {"parent": parent_frame, "child": camera_frame or CAMERA_FRAMES[mode], "xyz": _round(X.translation),
            "quat_xyzw": _round(X.as_quaternion())}


def extrinsics_yaml(X: Transform, mode: str, mount_frame: str, header: str) -> str:
    """A ROS 2 parameters file for localizer_node (all of them) and state_publisher_node (the pose)."""
    params = localizer_parameters(X, mode, mount_frame)
    pose = {k: v for k, v in params.items() if k != "transform_source"}
    doc = {"localizer_node": {"ros__parameters": params}, "state_publisher_node": {"ros__parameters": pose}}
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + _yaml(doc)


def read_extrinsics(path: str | Path, node: str = "localizer_node") -> Transform:
    """The answer back from an extrinsics.yaml: T_base_cam (camera_xyz, camera_quat_xyzw) or, for a
    camera on the arm, T_mount_cam (camera_mount_xyz, camera_mount_quat_xyzw)."""
    import yaml

    params = yaml.safe_load(Path(path).read_text())[node]["ros__parameters"]
    prefix = "camera_mount" if params.get("transform_source") == "arm" else "camera"
    return Transform.from_quaternion(params[f"{prefix}_quat_xyzw"], params[f"{prefix}_xyz"])


def tf_static_yaml(X: Transform, mode: str, parent_frame: str, camera_frame: str, header: str) -> str:
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + _yaml(tf_static(X, mode, parent_frame, camera_frame))


def _yaml(doc: dict) -> str:
    """Block YAML, lists inline, no anchors and aliases (each value written out)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    return yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=None)


def method_table(cal: handeye.HandEyeCalibration, truth: Transform | None = None) -> str:
    """The methods compared: residuals (and the error against the truth, where known)."""
    head = "| method | reprojection RMS [px] | AX=XB RMS [mm] | AX=XB RMS [deg] | consistency RMS [mm] | [deg] |"
    sep = "|---|---|---|---|---|---|"
    if truth is not None:
        head += " error [mm] | error [deg] |"
        sep += "---|---|"
    lines = [head, sep]
    for r in cal.results:
        name = r.method + (" (selected)" if r is cal.best else "")
        if r.error:
            lines.append(f"| {name} | failed: {r.error} | | | | |" + (" | |" if truth is not None else ""))
            continue
        row = (f"| {name} | {r.reprojection_rms_px:.3f} | {r.axxb_rms_mm:.2f} | {r.axxb_rms_deg:.3f} | "
               f"{_rms(r.consistency_mm):.2f} | {_rms(r.consistency_deg):.3f} |")
        if truth is not None:
            e_t, e_r = handeye.transform_error(r.X, truth)
            row += f" {e_t:.2f} | {e_r:.3f} |"
        lines.append(row)
    return "\n".join(lines)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else float("nan")


def pose_table(cal: handeye.HandEyeCalibration, samples: Sequence[PoseSample]) -> str:
    """Per pose residuals of the selected answer."""
    b = cal.best
    lines = ["| pose | corners | reprojection [px] | consistency [mm] | [deg] |", "|---|---|---|---|---|"]
    for k, s in enumerate(samples):
        lines.append(f"| {s.label or k} | {len(s.observation.ids)} | {b.reprojection_px[k]:.3f} | "
                     f"{b.consistency_mm[k]:.2f} | {b.consistency_deg[k]:.3f} |")
    return "\n".join(lines)


def report(cal: handeye.HandEyeCalibration, samples: Sequence[PoseSample], rejected: list[str],
           truth: Transform | None, source: dict) -> dict:
    def pose(T):
        return {"xyz": _round(T.translation), "quat_xyzw": _round(T.as_quaternion())}

    methods = []
    for r in cal.results:
        row = {"method": r.method, "error": r.error or None}
        if not r.error:
            row.update({"X": pose(r.X), "Z": pose(r.Z), "reprojection_rms_px": round(r.reprojection_rms_px, 4),
                        "axxb_rms_mm": round(r.axxb_rms_mm, 3), "axxb_rms_deg": round(r.axxb_rms_deg, 4),
                        "consistency_rms_mm": round(_rms(r.consistency_mm), 3),
                        "consistency_rms_deg": round(_rms(r.consistency_deg), 4)})
            if truth is not None:
                e_t, e_r = handeye.transform_error(r.X, truth)
                row.update({"error_mm": round(e_t, 3), "error_deg": round(e_r, 4)})
        methods.append(row)
    out = {"mode": cal.mode, "source": source, "selected": cal.best.method, "X": pose(cal.best.X),
           "Z": pose(cal.best.Z), "poses": cal.stats.__dict__, "methods": methods, "rejected_images": rejected,
           "per_pose": [{"label": s.label, "corners": int(len(s.observation.ids)),
                         "reprojection_px": round(float(cal.best.reprojection_px[k]), 4),
                         "consistency_mm": round(float(cal.best.consistency_mm[k]), 3),
                         "consistency_deg": round(float(cal.best.consistency_deg[k]), 4)}
                        for k, s in enumerate(samples)]}
    if truth is not None:
        e_t, e_r = handeye.transform_error(cal.best.X, truth)
        out["truth"] = pose(truth)
        out["calibration_error"] = {"mm": round(e_t, 3), "deg": round(e_r, 4)}
    return out


# ----------------------------------------------------------------------------- bags
def write_bag(path: str | Path, frames: Sequence[Frame], camera: PinholeCamera, joint_names: Sequence[str],
              joint_stamps_ns: np.ndarray, joint_positions: np.ndarray, mode: str, camera_frame: str = "") -> Path:
    """A rosbag2 (mcap) of a capture: /joint_states at every sample, image + camera_info per frame."""
    from sensor_msgs.msg import JointState

    from fdl_robot.bags.cdr import serialize
    from fdl_robot.bags.recorder import open_writer
    from fdl_robot.bags.typestore import typestore
    from fdl_robot.ros.conversions import camera_to_camera_info, ns_to_stamp, rgb_to_image

    store = typestore()
    image_topic, info_topic = TOPICS[mode]
    frame_id = camera_frame or CAMERA_FRAMES[mode]
    writer = open_writer(Path(path), custom_data={"fdl_robot_calibration": mode})
    try:
        c_img = writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=store)
        c_info = writer.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=store)
        c_js = writer.add_connection(JOINT_STATES, "sensor_msgs/msg/JointState", typestore=store)
        events = [(int(t), 0, k) for k, t in enumerate(joint_stamps_ns)] + \
                 [(int(f.stamp_ns), 1, k) for k, f in enumerate(frames)]
        for t, kind, k in sorted(events):
            stamp = ns_to_stamp(t)
            if kind == 0:
                msg = JointState(name=list(joint_names), position=[float(x) for x in joint_positions[k]])
                msg.header.stamp = stamp
                writer.write(c_js, t, serialize(msg, store))
            else:
                writer.write(c_img, t, serialize(rgb_to_image(frames[k].rgb, stamp, frame_id), store))
                writer.write(c_info, t, serialize(camera_to_camera_info(camera, stamp, frame_id), store))
    finally:
        writer.close()
    return Path(path)


def _topic_match(topic: str, wanted: str) -> bool:
    return topic.lstrip("/") == wanted.lstrip("/")


def at_rest(buffer, stamp_ns: int, still_s: float, still_tolerance_rad: float = STILL_TOLERANCE_RAD):
    """(q at the stamp, '') if every joint stayed within ``still_tolerance_rad`` of it over
    [t - still_s, t] (6 samples of the interpolated joint states), else (None, why)."""
    from fdl_robot.core.transform_buffer import StampUnavailable

    try:
        q = buffer.positions_at(int(stamp_ns))
        span = [buffer.positions_at(int(stamp_ns - s * 1e9)) for s in np.linspace(0.0, still_s, 6)[1:]]
    except StampUnavailable as exc:
        return None, f"no joint state at the stamp: {exc.reason}"
    moved = max(float(np.max(np.abs(p - q))) for p in span)
    if moved > still_tolerance_rad:
        return None, f"the arm moved {moved * 1e3:.1f} mrad in the {still_s:g} s before it"
    return q, ""


def still_frames(stamps_ns: Sequence[int], buffer, still_s: float, still_tolerance_rad: float = STILL_TOLERANCE_RAD,
                 min_move_rad: float = MIN_MOVE_RAD) -> list[tuple[int, np.ndarray | None, str]]:
    """(index, q at the stamp, '') of the images taken after the arm rested ``still_s``
    (:func:`at_rest`), one per rest, and (index, None, why) of those taken while it moved or
    without joint states. A new rest starts once a joint moved ``min_move_rad`` from the last
    image used."""
    out = []
    q_last = None
    for k, t in enumerate(stamps_ns):
        q, why = at_rest(buffer, t, still_s, still_tolerance_rad)
        if q is None:
            out.append((k, None, why))
        elif q_last is None or np.max(np.abs(q - q_last)) >= min_move_rad:
            out.append((k, q, ""))
            q_last = q
    return out


def read_bag(path: str | Path, mode: str, joint_names: Sequence[str], image_topic: str = "",
             camera_info_topic: str = "", joint_states_topic: str = JOINT_STATES, still_s: float = 0.2,
             progress: bool = True) -> tuple[Captured, list[str]]:
    """The frames of a bag: images at rest with q interpolated at their stamps (header stamps).

    Returns (captured, notes): notes name images left out for a reason (no joint state at the stamp).
    """
    from tqdm import tqdm

    from fdl_robot.bags.reader import read_messages
    from fdl_robot.core.joint_buffer import JointBuffer
    from fdl_robot.ros.conversions import camera_info_to_camera, image_to_rgb, stamp_to_ns

    image_topic = image_topic or TOPICS[mode][0]
    camera_info_topic = camera_info_topic or TOPICS[mode][1]
    buffer = JointBuffer(joint_names, history_s=1e9)
    images, camera, frame_id = [], None, ""
    seen = set()
    for topic, _, msg in tqdm(read_messages(path), desc="reading bag", unit="msg", disable=not progress):
        seen.add(topic)
        if _topic_match(topic, joint_states_topic):
            buffer.add(list(msg.name), list(msg.position), stamp_to_ns(msg.header.stamp))
        elif _topic_match(topic, camera_info_topic) and camera is None:
            camera = camera_info_to_camera(msg)
        elif _topic_match(topic, image_topic):
            images.append((stamp_to_ns(msg.header.stamp), msg))
            frame_id = frame_id or msg.header.frame_id
    missing = [t for t in (image_topic, camera_info_topic, joint_states_topic)
               if not any(_topic_match(s, t) for s in seen)]
    if missing:
        raise ValueError(f"{path}: no messages on {', '.join(missing)} (topics in the bag: {sorted(seen)}); "
                         "name them with --image-topic, --camera-info-topic, --joint-states-topic")
    frames, notes = [], []
    for k, q, why in still_frames([t for t, _ in images], buffer, still_s):
        if q is None:
            notes.append(f"image {k}: {why}")
            continue
        t, msg = images[k]
        frames.append(Frame(t, image_to_rgb(msg), q, f"image {k} (t={t * 1e-9:.3f} s)"))
    return Captured(frames, camera, frame_id), notes


# ----------------------------------------------------------------------------- the command
def _board_from_args(args) -> BoardSpec:
    try:
        nx, ny = (int(v) for v in args.board.lower().split("x"))
    except ValueError:
        raise SystemExit(f"fdl-robot-calibrate: --board must be COLSxROWS (squares), got {args.board!r}") from None
    return BoardSpec(nx, ny, args.square_mm * 1e-3, args.marker_mm * 1e-3, args.dictionary)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fdl-robot-calibrate", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sim", action="store_true", help="capture in the simulator (the board is added to the cell)")
    src.add_argument("--bag", type=Path, help="a rosbag2 with images, camera_info and joint states")
    src.add_argument("--live", action="store_true", help="subscribe to a running graph")
    src.add_argument("--print-board", type=Path, metavar="IMAGE", help="write the board image to print and exit")
    p.add_argument("--mode", choices=MODES, default=EYE_TO_HAND,
                   help="eye-to-hand: fixed camera, board on the flange; eye-in-hand: camera on the flange")
    p.add_argument("--output", type=Path, default=None, help="output directory (default: outputs/calibration/MODE)")
    g = p.add_argument_group("board")
    g.add_argument("--board", default=f"{DEFAULT_BOARD.squares_x}x{DEFAULT_BOARD.squares_y}", help="squares COLSxROWS")
    g.add_argument("--square-mm", type=float, default=DEFAULT_BOARD.square_m * 1e3)
    g.add_argument("--marker-mm", type=float, default=DEFAULT_BOARD.marker_m * 1e3)
    g.add_argument("--dictionary", default=DEFAULT_BOARD.dictionary, help="ArUco dictionary (OpenCV name)")
    g.add_argument("--print-dpi", type=float, default=300.0, help="--print-board: resolution for true scale")
    r = p.add_argument_group("robot")
    r.add_argument("--urdf", default="", help="the robot's URDF ('' = the simulated UR5e + gripper)")
    r.add_argument("--base-frame", default="base_link")
    r.add_argument("--mount-frame", default="tool0", help="the link the camera (eye-in-hand) or board "
                   "(eye-to-hand) is mounted on")
    r.add_argument("--camera-frame", default="", help="the camera's optical frame in tf_static.yaml ('' = the "
                   "camera_info's frame_id, else camera_color_optical_frame / wrist_camera_color_optical_frame)")
    s = p.add_argument_group("simulator (--sim)")
    s.add_argument("--poses", type=int, default=18, help="poses to capture (--sim, --live)")
    s.add_argument("--seed", type=int, default=0, help="episode (camera jitter, lights) and pose-plan seed")
    s.add_argument("--pixel-noise", type=float, default=2.0, help="std of the Gaussian image noise, 8-bit levels")
    s.add_argument("--width", type=int, default=640)
    s.add_argument("--height", type=int, default=480)
    s.add_argument("--record-bag", type=Path, default=None, help="also write the capture as a rosbag2")
    b = p.add_argument_group("bag and live input")
    b.add_argument("--image-topic", default="", help="'' = /camera/color/image_raw (eye-to-hand) or "
                   "/wrist_camera/camera/color/image_raw (eye-in-hand)")
    b.add_argument("--camera-info-topic", default="", help="'' = the image topic's camera_info")
    b.add_argument("--joint-states-topic", default=JOINT_STATES)
    b.add_argument("--still-s", type=float, default=0.2, help="use an image once the arm has rested this long")
    p.add_argument("--save-images", type=Path, default=None, help="write every image with its detected corners here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _sim_capture(args, spec: BoardSpec, mode: str):
    from fdl_robot.sim import calibration as simcal

    env = simcal.make_env(mode, spec, args.width, args.height, seed=args.seed)
    try:
        rng = np.random.default_rng(args.seed)
        poses = simcal.plan_poses(env, mode, args.poses, rng, spec)
        cap = simcal.capture(env, mode, poses, rng, pixel_noise=args.pixel_noise, progress=not args.quiet)
        truth = simcal.true_extrinsics(env, mode)
        nominal = simcal.nominal_extrinsics(env, mode)
    finally:
        env.close()
    frames = [Frame(f.stamp_ns, f.rgb, f.q_rad, f"pose {k}") for k, f in enumerate(cap.frames)]
    return cap, Captured(frames, cap.camera, CAMERA_FRAMES[mode]), truth, nominal


def _capture(args, spec: BoardSpec, mode: str, robot):
    """(captured, truth, nominal, notes, source) of --sim, --bag or --live."""
    if args.sim:
        cap, captured, truth, nominal = _sim_capture(args, spec, mode)
        if args.record_bag:
            write_bag(args.record_bag, captured.frames, cap.camera, cap.joint_names, cap.joint_stamps_ns,
                      cap.joint_positions, mode)
            print(f"written: {args.record_bag}")
        source = {"sim": True, "seed": args.seed, "poses": args.poses, "pixel_noise": args.pixel_noise}
        return captured, truth, nominal, cap.notes, source
    if args.bag:
        captured, notes = read_bag(args.bag, mode, robot.joint_names, args.image_topic, args.camera_info_topic,
                                   args.joint_states_topic, args.still_s, progress=not args.quiet)
        return captured, None, None, notes, {"bag": str(args.bag)}
    from fdl_robot.ros.calibration_capture import live_capture

    captured = live_capture(robot.joint_names, args.image_topic or TOPICS[mode][0],
                            args.camera_info_topic or TOPICS[mode][1], args.joint_states_topic,
                            args.poses, args.still_s, progress=not args.quiet)
    return captured, None, None, [], {"live": True}


def _save_images(directory: Path, frames: Sequence[Frame], samples: Sequence[PoseSample], spec: BoardSpec) -> None:
    from fdl_robot.perception.charuco import draw_observation

    by_label = {s.label: s for s in samples}
    for k, f in enumerate(frames):
        s = by_label.get(f.label or f"image {k}")
        img = draw_observation(f.rgb, s.observation if s else None, spec)
        write_image(directory / f"frame_{k:03d}.png", img[:, :, ::-1])


def _print_board(args, spec: BoardSpec) -> int:
    px = int(round(spec.square_m / 0.0254 * args.print_dpi))
    write_image(args.print_board, spec.image(px, px // 2), "board image")
    print(f"written: {args.print_board} ({spec.describe()}; print at {args.print_dpi:g} dpi for "
          f"{spec.square_m * 1e3:g} mm squares, then measure them)")
    return 0


@exit_on_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    mode = args.mode
    if args.output is None:
        args.output = Path("outputs/calibration") / mode.replace("-", "_")
    check_args(parser, args, {"--output": DIRECTORY, "--record-bag": BAG, "--print-board": IMAGE,
                              "--save-images": DIRECTORY})
    spec = _board_from_args(args)
    if args.print_board:
        return _print_board(args, spec)
    if not (args.sim or args.bag or args.live):
        parser.error("give one of --sim, --bag PATH, --live or --print-board IMAGE")

    from fdl_robot.core.robot_model import RobotModel
    from fdl_robot.description import UR5E_URDF

    robot = RobotModel.from_urdf(args.urdf or UR5E_URDF, base_frame=args.base_frame, tool_frame=args.mount_frame)

    def flange_pose(q):
        return Transform.from_matrix(robot.frame_pose(np.asarray(q, float)))

    captured, truth, nominal, notes, source = _capture(args, spec, mode, robot)
    if captured.camera is None:
        raise SystemExit("fdl-robot-calibrate: no camera_info: the intrinsics are unknown")
    for line in notes:
        print(f"note: {line}")
    try:
        cal, samples, rejected = solve(captured.frames, captured.camera, mode, spec, flange_pose)
    except DegeneratePoses as exc:
        print(f"fdl-robot-calibrate: {exc}", file=sys.stderr)
        return 2
    if args.save_images:
        _save_images(args.save_images, captured.frames, samples, spec)
    for line in rejected:
        print(f"no board: {line}")
    _write_and_print(args, mode, cal, samples, rejected, truth, nominal, source, spec,
                     args.camera_frame or captured.camera_frame or CAMERA_FRAMES[mode])
    return 0


def _write_and_print(args, mode, cal, samples, rejected, truth, nominal, source, spec, camera_frame) -> None:
    X = cal.best.X
    parent = args.mount_frame if mode == EYE_IN_HAND else args.base_frame
    what = "T_base_cam" if mode == EYE_TO_HAND else f"T_{args.mount_frame}_cam"
    header = (f"fdl-robot-calibrate --mode {mode}: {what} ({parent} -> {camera_frame}), method {cal.best.method}, "
              f"{cal.stats.describe()}, reprojection RMS {cal.best.reprojection_rms_px:.3f} px")
    print(f"\n{spec.describe()}; {cal.stats.describe()}\n")
    print(method_table(cal, truth))
    print()
    print(pose_table(cal, samples))
    out = args.output
    write_text(out / "extrinsics.yaml", extrinsics_yaml(X, mode, args.mount_frame, header), "extrinsics")
    write_text(out / "tf_static.yaml", tf_static_yaml(X, mode, parent, camera_frame, header), "tf_static")
    write_json(out / "report.json", report(cal, samples, rejected, truth, source), "report")
    q = X.as_quaternion()
    print(f"\n{what} = xyz {np.round(X.translation, 6).tolist()} m, quat_xyzw {np.round(q, 6).tolist()}"
          f"  ({cal.best.method})")
    print(f"written: {out / 'extrinsics.yaml'} (--params-file), {out / 'tf_static.yaml'}, {out / 'report.json'}")
    if truth is not None:
        if nominal is not None:
            n_t, n_r = handeye.transform_error(nominal, truth)
            print(f"nominal pose error (before calibrating): {n_t:.2f} mm, {n_r:.3f} deg")
        e_t, e_r = handeye.transform_error(X, truth)
        print(f"calibration error: {e_t:.2f} mm, {e_r:.3f} deg")


if __name__ == "__main__":
    raise SystemExit(main())

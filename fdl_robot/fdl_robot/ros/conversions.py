"""Message <-> numpy conversions for the nodes (no cv_bridge on PyPI, so we own these).

Every function either returns well-formed arrays or raises :class:`InvalidInput` with a
message a robotics engineer can act on (wrong encoding, size mismatch, NaN, missing
calibration). Nodes catch ``InvalidInput``, count it, warn (throttled) and publish nothing.

Conventions
-----------
* Stamps: ``builtin_interfaces/Time`` <-> float seconds (``stamp_to_s``/``s_to_stamp``);
  nanosecond-exact integer keys via ``stamp_to_ns`` for synchronisation.
* Images (REP-118 / realsense-ros): colour ``rgb8`` or ``bgr8`` (HxWx3 uint8, converted
  to RGB); depth ``16UC1`` (uint16 millimetres, 0 = invalid) or ``32FC1`` (float32
  metres, NaN/inf/0 = invalid), returned as float32 metres with NaN where invalid.
* Boxes: XYXY pixels of the source image.
* Camera views (``Object3DArray.view``): ``fdl_robot_interfaces/CameraView`` <->
  :class:`fdl_robot.core.visibility.CameraView`; width 0 is "view unknown" (None).
"""
from __future__ import annotations

import sys

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import CameraInfo, Image

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.visibility import CameraView
from fdl_robot.perception.detector import Detections


class InvalidInput(ValueError):
    """A message that cannot be used; the text says why."""


# --- time -------------------------------------------------------------------------------

def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_to_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def ns_to_stamp(t_ns: int) -> Time:
    sec, nanosec = divmod(int(t_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def s_to_stamp(t_s: float) -> Time:
    return ns_to_stamp(round(t_s * 1e9))


def s_to_duration(t_s: float) -> Duration:
    """Seconds -> builtin_interfaces/Duration (rounded to the nanosecond); ``stamp_to_ns``
    reads a Duration back (same fields)."""
    sec, nanosec = divmod(round(t_s * 1e9), 1_000_000_000)
    return Duration(sec=int(sec), nanosec=int(nanosec))


# --- images -----------------------------------------------------------------------------

_COLOR_ENCODINGS = {"rgb8": False, "bgr8": True}   # encoding -> needs BGR->RGB swap
_DEPTH_ENCODINGS = {"16UC1": np.dtype("<u2"), "mono16": np.dtype("<u2"), "32FC1": np.dtype("<f4")}


def _image_array(msg: Image, dtype: np.dtype, channels: int) -> np.ndarray:
    """View ``msg.data`` as (H, W[, C]) honouring ``step`` (row padding) and endianness."""
    h, w = int(msg.height), int(msg.width)
    if h == 0 or w == 0:
        raise InvalidInput(f"image is empty ({w}x{h})")
    row_bytes = w * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise InvalidInput(f"image step {msg.step} < width*channels*bytes = {row_bytes}")
    try:
        data = np.frombuffer(msg.data, dtype=np.uint8)      # bytes, array.array('B'), ...
    except TypeError:
        data = np.asarray(msg.data, dtype=np.uint8)         # a plain list of ints
    if data.size != h * msg.step:
        raise InvalidInput(f"image data has {data.size} bytes, expected height*step = {h * msg.step}")
    rows = data.reshape(h, msg.step)[:, :row_bytes]
    if msg.is_bigendian != (sys.byteorder == "big") and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(dtype).reshape((h, w, channels) if channels > 1 else (h, w))
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> HxWx3 uint8 RGB."""
    if msg.encoding not in _COLOR_ENCODINGS:
        raise InvalidInput(f"colour image encoding '{msg.encoding}' is not supported; "
                           f"expected one of {sorted(_COLOR_ENCODINGS)}")
    rgb = _image_array(msg, np.dtype(np.uint8), 3)
    return np.ascontiguousarray(rgb[..., ::-1]) if _COLOR_ENCODINGS[msg.encoding] else rgb


def image_to_depth_m(msg: Image, depth_scale_m: float = 0.001) -> np.ndarray:
    """sensor_msgs/Image depth -> HxW float32 metres along the optical axis, NaN = invalid.

    ``16UC1``/``mono16``: z_m = value * depth_scale_m (realsense: 1 unit = 1 mm), 0 invalid.
    ``32FC1``: metres already (REP-118); 0, negative, NaN and inf invalid.
    """
    if msg.encoding not in _DEPTH_ENCODINGS:
        raise InvalidInput(f"depth image encoding '{msg.encoding}' is not supported; "
                           f"expected one of {sorted(_DEPTH_ENCODINGS)}")
    raw = _image_array(msg, _DEPTH_ENCODINGS[msg.encoding], 1)
    depth = raw.astype(np.float32) * (np.float32(depth_scale_m) if raw.dtype.kind == "u" else 1)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def rgb_to_image(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """HxWx3 uint8 RGB -> sensor_msgs/Image rgb8 (other dtypes are refused, not cast)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidInput(f"expected HxWx3 uint8 RGB, got shape {rgb.shape} {rgb.dtype}")
    rgb = np.ascontiguousarray(rgb)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0,
                step=rgb.shape[1] * 3)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.data = rgb.tobytes()
    return msg


def depth_to_image(depth: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """HxW uint16 millimetres -> 16UC1, or HxW float32 metres -> 32FC1."""
    depth = np.ascontiguousarray(depth)
    if depth.ndim != 2:
        raise InvalidInput(f"expected an HxW depth image, got shape {depth.shape}")
    kind = (depth.dtype.kind, depth.dtype.itemsize)      # either byte order
    if kind == ("u", 2):
        encoding = "16UC1"
    elif kind == ("f", 4):
        encoding = "32FC1"
    else:
        raise InvalidInput(f"depth must be uint16 (mm) or float32 (m), got {depth.dtype}")
    depth = depth.astype(depth.dtype.newbyteorder("<"), copy=False)
    msg = Image(height=depth.shape[0], width=depth.shape[1], encoding=encoding, is_bigendian=0,
                step=depth.shape[1] * depth.dtype.itemsize)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.data = depth.tobytes()
    return msg


# --- camera calibration -----------------------------------------------------------------

def camera_info_to_camera(msg: CameraInfo) -> PinholeCamera:
    """sensor_msgs/CameraInfo -> PinholeCamera (K, size, plumb_bob distortion).

    An all-zero K (an uncalibrated driver) or a non-positive focal length is rejected.
    """
    k = np.asarray(msg.k, dtype=float)
    if not np.all(np.isfinite(k)) or k[0] <= 0 or k[4] <= 0:
        raise InvalidInput(f"camera_info K is not a calibration (fx={k[0]}, fy={k[4]}); "
                           "is the camera calibrated?")
    d = np.asarray(msg.d, dtype=float)
    model = msg.distortion_model or "plumb_bob"
    if d.size and np.any(d != 0) and model not in ("plumb_bob", "rational_polynomial"):
        raise InvalidInput(f"distortion model '{model}' is not supported (plumb_bob only)")
    try:
        return PinholeCamera.from_camera_info(k, int(msg.width), int(msg.height),
                                              d=d if d.size else None, distortion_model=model)
    except ValueError as exc:
        raise InvalidInput(f"camera_info rejected: {exc}") from exc


def camera_to_camera_info(camera: PinholeCamera, stamp: Time, frame_id: str) -> CameraInfo:
    """PinholeCamera -> sensor_msgs/CameraInfo (R = I, P = [K | 0]; plumb_bob, or
    rational_polynomial for 8 distortion coefficients)."""
    dist = getattr(camera, "dist", None)
    msg = CameraInfo(width=int(camera.width), height=int(camera.height),
                     distortion_model="rational_polynomial" if dist is not None and len(dist) == 8
                     else "plumb_bob")
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    K = camera.K
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([K, np.zeros((3, 1))]).reshape(-1).tolist()
    msg.d = (np.zeros(5) if dist is None else np.asarray(dist, float)).tolist()
    return msg


# --- detections -------------------------------------------------------------------------

def detections_from_msg(msg) -> Detections:
    """fdl_robot_interfaces/Detection2DArray -> Detections (rejects NaN or inverted boxes)."""
    n = len(msg.detections)
    boxes = np.array([[d.x_min, d.y_min, d.x_max, d.y_max] for d in msg.detections],
                     dtype=float).reshape(n, 4)
    scores = np.array([d.score for d in msg.detections], dtype=float)
    if not np.all(np.isfinite(boxes)) or not np.all(np.isfinite(scores)):
        raise InvalidInput("detection with NaN/inf box or score")
    if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
        raise InvalidInput("detection box with x_max < x_min or y_max < y_min")
    return Detections(boxes, scores, np.array([d.class_id for d in msg.detections], dtype=int),
                      tuple(d.class_name for d in msg.detections))


def detections_to_msg(det: Detections, header, image_width: int, image_height: int):
    from fdl_robot_interfaces.msg import Detection2D, Detection2DArray

    msg = Detection2DArray(header=header, image_width=int(image_width),
                           image_height=int(image_height))
    msg.detections = [
        Detection2D(class_id=int(c), class_name=name, score=float(s), x_min=float(b[0]),
                    y_min=float(b[1]), x_max=float(b[2]), y_max=float(b[3]))
        for b, s, c, name in zip(det.boxes_xyxy, det.scores, det.class_ids, det.class_names, strict=True)
    ]
    return msg


# --- transforms (/tf, /tf_static, tf2 lookups) ----------------------------------------------

def transform_to_msg(T: Transform, stamp: Time, parent_frame: str, child_frame: str):
    """T_parent_child -> geometry_msgs/TransformStamped (header.frame_id = parent, as tf2)."""
    msg = TransformStamped()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, parent_frame, child_frame
    tr, rot = msg.transform.translation, msg.transform.rotation
    tr.x, tr.y, tr.z = (float(v) for v in T.translation)
    rot.x, rot.y, rot.z, rot.w = (float(v) for v in T.as_quaternion())
    return msg


def transform_from_msg(msg) -> Transform:
    """geometry_msgs/Transform (or the .transform of a TransformStamped) -> T_parent_child."""
    msg = getattr(msg, "transform", msg)
    tr, rot = msg.translation, msg.rotation
    try:
        return Transform.from_quaternion([rot.x, rot.y, rot.z, rot.w], [tr.x, tr.y, tr.z])
    except ValueError as exc:
        raise InvalidInput(f"bad transform: {exc}") from None


# --- camera views (Object3DArray.view) ----------------------------------------------------

def camera_view_to_msg(camera: PinholeCamera, T_base_cam: Transform, frame_id: str, min_depth_m: float,
                       max_depth_m: float):
    """fdl_robot_interfaces/CameraView of a camera (K, size) posed at ``T_base_cam`` (optical
    frame -> the Object3DArray's frame at its stamp), measuring depths in [min, max] m."""
    from fdl_robot_interfaces.msg import CameraView

    msg = CameraView(frame_id=frame_id, width=int(camera.width), height=int(camera.height),
                     k=camera.K.reshape(-1).tolist(), min_depth_m=float(min_depth_m),
                     max_depth_m=float(max_depth_m))
    p, q = msg.camera_pose.position, msg.camera_pose.orientation
    p.x, p.y, p.z = (float(v) for v in T_base_cam.translation)
    q.x, q.y, q.z, q.w = (float(v) for v in T_base_cam.as_quaternion())
    return msg


def camera_view_from_msg(msg) -> CameraView | None:
    """fdl_robot_interfaces/CameraView -> core CameraView, or None for width 0 ("view unknown").

    Rejects (InvalidInput) a size with one side 0, a K that is not a calibration, a
    non-finite pose, a quaternion whose squared norm is more than 0.01 from 1 (tf2's
    tolerance), and a depth range that is not 0 <= min < max.
    """
    if msg.width == 0:
        return None
    pose = msg.camera_pose
    xyz = np.array([pose.position.x, pose.position.y, pose.position.z])
    q = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(q))):
        raise InvalidInput(f"view of '{msg.frame_id}': camera_pose has NaN/inf")
    if abs(float(q @ q) - 1.0) > 0.01:
        raise InvalidInput(f"view of '{msg.frame_id}': camera_pose quaternion {q.tolist()} is not normalised")
    try:
        camera = PinholeCamera.from_camera_info(msg.k, int(msg.width), int(msg.height))
        return CameraView(camera, Transform.from_quaternion(q, xyz), msg.min_depth_m, msg.max_depth_m,
                          frame_id=msg.frame_id)
    except ValueError as exc:
        raise InvalidInput(f"view of '{msg.frame_id}' rejected: {exc}") from exc

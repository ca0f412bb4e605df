"""Write a RealSense recording without a camera: pyrealsense2's software device + recorder.

``write_synthetic_bag`` builds a ``rs.software_device`` with a depth sensor ("Stereo
Module", z16) and a colour sensor ("RGB Camera", rgb8) whose streams carry the given
intrinsics, registers the depth-to-colour extrinsics (identity: the synthetic depth is
taken in the colour camera's frame), wraps the device in an ``rs.recorder`` and injects
every frame as a ``rs.software_video_frame``.  The result is an ordinary librealsense
recording: ``RealSenseSource(bag_path=...)`` plays it back through librealsense's
playback device with the same intrinsics, depth scale (the depth sensor's read-only
``depth_units`` option, also set on every depth frame), extrinsics and frame
timestamps.

Facts about pyrealsense2 2.59 this relies on (checked in ``test/test_sources.py``):

* The recorder writes ROS 2 ``.db3`` (sqlite) files and refuses other extensions
  ("Output file must have .db3 extension"); older releases wrote ROS 1 ``.bag`` files.
* Frames are recorded losslessly (random colour noise and depth come back bit-exact,
  although the recorder names its topics ``.../image/data/compressed``).
* The recording is complete once the recorder and its sensors are released.
* A recording's time line (what real-time playback follows) is the wall-clock time at
  which frames were written, not the frame timestamps, so frames are written at the
  pace of ``fps`` unless ``realtime=False`` (then a real-time player sees all frames at
  once; ``RealSenseSource`` plays in non-real-time mode and does not care).
"""
from __future__ import annotations

import gc
import os
import time
from typing import Iterable

import numpy as np

from fdl_robot.core.camera import PinholeCamera

__all__ = ["write_synthetic_bag"]

DEVICE_NAME = "fdl_robot synthetic RealSense"
DEVICE_SERIAL = "000000000000"


def _rs_intrinsics(rs, camera: PinholeCamera, what: str):
    if camera.width is None or camera.height is None:
        raise ValueError(f"the {what} camera needs width and height")
    intr = rs.intrinsics()
    intr.width, intr.height = int(camera.width), int(camera.height)
    intr.fx, intr.fy, intr.ppx, intr.ppy = camera.fx, camera.fy, camera.cx, camera.cy
    dist = list(camera.dist or ())
    if len(dist) not in (0, 4, 5):
        raise ValueError(f"the {what} camera has {len(dist)} distortion coefficients; a "
                         "RealSense stream stores Brown-Conrady (k1, k2, p1, p2, k3)")
    intr.model = rs.distortion.brown_conrady
    intr.coeffs = (dist + [0.0] * 5)[:5]
    return intr


def _video_stream(rs, stream, uid: int, fmt, bpp: int, intr, fps: int):
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = stream, 0, uid
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = intr.width, intr.height, fps, bpp, fmt
    vs.intrinsics = intr
    return vs


def _checked_frame(i: int, rgb: np.ndarray, depth: np.ndarray, color_intr, depth_intr):
    """Frame i as contiguous arrays; ValueError if an image does not match its camera."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    depth = np.ascontiguousarray(depth)
    if rgb.shape != (color_intr.height, color_intr.width, 3):
        raise ValueError(f"frame {i}: rgb has shape {rgb.shape}, the colour camera is "
                         f"{color_intr.width}x{color_intr.height}")
    if depth.dtype != np.uint16 or depth.shape != (depth_intr.height, depth_intr.width):
        raise ValueError(f"frame {i}: depth must be uint16 of shape "
                         f"{(depth_intr.height, depth_intr.width)}, got {depth.dtype} {depth.shape}")
    return rgb, depth


def write_synthetic_bag(path: str | os.PathLike, frames: Iterable[tuple[np.ndarray, np.ndarray]],
                        intrinsics: PinholeCamera, fps: int = 30, depth_units_m: float = 0.001,
                        depth_intrinsics: PinholeCamera | None = None,
                        realtime: bool = True) -> str:
    """Record ``frames`` as a RealSense file at ``path`` (``.db3`` with pyrealsense2 2.59).

    ``frames`` yields ``(rgb, depth)`` pairs: rgb HxWx3 uint8 (RGB) of the colour camera
    ``intrinsics`` (its width and height, distortion as Brown-Conrady), depth a uint16
    image in units of ``depth_units_m`` metres (0.001: millimetres, 0 = no data) of the
    depth camera ``depth_intrinsics`` (default: the colour camera, i.e. already
    aligned; give another size or intrinsics to exercise ``rs.align``).  Frame i gets
    frame number i and timestamp i * 1000 / fps ms.  Returns the path.

    Raises ValueError when an image does not match its camera or when pyrealsense2
    refuses the file name.
    """
    import pyrealsense2 as rs

    path = os.fspath(path)
    fps = int(fps)
    depth_intrinsics = depth_intrinsics or intrinsics
    color_intr = _rs_intrinsics(rs, intrinsics, "colour")
    depth_intr = _rs_intrinsics(rs, depth_intrinsics, "depth")
    if os.path.exists(path):
        os.remove(path)                     # the recorder would append to an existing db3

    device = rs.software_device()
    device.register_info(rs.camera_info.name, DEVICE_NAME)
    device.register_info(rs.camera_info.serial_number, DEVICE_SERIAL)
    depth_sensor = device.add_sensor("Stereo Module")
    color_sensor = device.add_sensor("RGB Camera")
    depth_profile = depth_sensor.add_video_stream(
        _video_stream(rs, rs.stream.depth, 0, rs.format.z16, 2, depth_intr, fps), True)
    color_profile = color_sensor.add_video_stream(
        _video_stream(rs, rs.stream.color, 1, rs.format.rgb8, 3, color_intr, fps), True)
    depth_sensor.add_read_only_option(rs.option.depth_units, float(depth_units_m))
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
    depth_profile.register_extrinsics_to(color_profile, identity)

    try:
        recorder = rs.recorder(path, device)
    except RuntimeError as exc:
        raise ValueError(f"pyrealsense2 cannot record to {path!r}: {exc}") from exc
    # Streaming through the recorder's sensors is what gets recorded; frames are
    # injected into the software sensors underneath.
    recording_sensors = recorder.query_sensors()
    for sensor in recording_sensors:
        sensor.open(sensor.get_stream_profiles()[0])
        sensor.start(lambda frame: None)
    try:
        t0 = time.monotonic()
        for i, (rgb, depth) in enumerate(frames):
            rgb, depth = _checked_frame(i, rgb, depth, color_intr, depth_intr)
            timestamp_ms = i * 1000.0 / fps
            if realtime:
                time.sleep(max(0.0, t0 + timestamp_ms / 1000.0 - time.monotonic()))
            for sensor, profile, pixels, bpp in ((depth_sensor, depth_profile, depth, 2),
                                                 (color_sensor, color_profile, rgb, 3)):
                frame = rs.software_video_frame()
                frame.pixels = pixels
                frame.bpp = bpp
                frame.stride = pixels.shape[1] * bpp
                frame.timestamp = timestamp_ms
                frame.domain = rs.timestamp_domain.hardware_clock
                frame.frame_number = i
                frame.profile = profile.as_video_stream_profile()
                if bpp == 2:
                    frame.depth_units = float(depth_units_m)
                sensor.on_video_frame(frame)
    finally:
        for sensor in recording_sensors:
            sensor.stop()
            sensor.close()
        # The file is finalised when the recorder is destroyed.
        del recording_sensors, recorder, depth_sensor, color_sensor, device
        gc.collect()
    return path

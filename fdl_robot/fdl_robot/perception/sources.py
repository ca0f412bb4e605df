"""Camera frame sources: a RealSense device or recording, and an OpenCV video or webcam.

A source hands out :class:`Frame` objects, one colour image with (optionally) the depth
image registered to it, the intrinsics of the colour camera and a capture time. It knows
nothing about ROS: ``fdl_robot.ros.camera_node`` publishes its frames, tests and scripts
use it directly, and the simulator plugs its own source in through
:func:`register_source`.

The protocol
------------
``read(timeout_s=None) -> Frame | None`` returns the next frame, or None when none
arrived within the timeout (try again later); it raises :class:`EndOfStream` once a
file source that does not loop has played its last frame, and :class:`SourceError` when
the device or file fails.  ``close()`` releases the device; sources are context managers.
``live`` tells how to read ``Frame.stamp_s``:

* live (a camera): capture time in seconds on the host's wall clock (``time.time()``);
* not live (a file): the recorded time in seconds since the first frame of the file,
  increasing across loops (each pass continues where the last ended).

Images follow realsense-ros: colour HxWx3 uint8 in RGB order; depth HxW uint16 in
millimetres along the optical axis, 0 = no data, registered ("aligned") to the colour
image, so one :class:`~fdl_robot.core.camera.PinholeCamera` (the colour camera's)
describes both.

RealSense with pyrealsense2 2.59 (verified here, see ``test/test_sources.py``)
---------------------------------------------------------------------------
* Recordings: librealsense 2.59 records ROS 2 ``.db3`` files
  (:mod:`fdl_robot.perception.realsense_bag` writes synthetic ones).  Older ROS 1
  ``.bag`` recordings are deprecated; librealsense says it still plays them (no .bag
  was at hand to check) and ``rs.context().convert_bag_to_db3(bag, db3)`` converts them.
* Playback runs in non-real-time mode, so no frame is dropped and the reader sets the
  pace (``camera_node`` reads at its ``fps``): a frame callback that waits holds the
  playback back.  The playback is paused while its sensors start: started one after
  the other, the first sensor would otherwise play the file to its end before the
  second one listens.  Control calls (pause, resume) wait for the playback thread, so
  no callback may wait for the reader while the reader makes one (see ``_put``).
* ``rs.pipeline`` is not used for playback: however it was started (real-time or not,
  paused, seeked back), its syncer lost the first frameset(s) of a file in most runs,
  or let depth run ahead of colour, because it emits the first depth and colour frames
  separately before it has seen both streams.  The sensors stream instead into a small
  pairing step of our own (a depth and a colour frame are a pair when their timestamps
  differ by at most half a colour frame period; the older of a mismatched pair is
  dropped) and each pair becomes a frameset for ``rs.align``.  Live cameras go the
  same way, so the tested code is the code that runs on a robot.
* ``rs.align(rs.stream.color)`` needs the depth-to-colour extrinsics (a live device has
  them; a recording stores them).  It is skipped when depth and colour already share
  size and intrinsics and the extrinsics are the identity: aligning such streams would
  change nothing but rs.align's forward mapping leaves a few percent of hole pixels.
* Depth units come from each depth frame (``get_units()``, the depth sensor's depth
  scale) and are converted to millimetres (:func:`depth_to_mm`); the D400 default is
  exactly 1 mm, the D405 uses 0.1 mm.
"""
from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.config import from_mapping
from fdl_robot.core.timebase import StampOrder, classify_stamp

__all__ = [
    "Frame", "FrameSource", "SourceError", "EndOfStream", "RealSenseSource", "VideoSource",
    "depth_to_mm", "guess_intrinsics", "capture_stamp_ns", "register_source", "make_source",
    "available_sources", "DEFAULT_HFOV_DEG", "CameraConfig",
]

#: Seconds a playback must have reported its end, with nothing left to read, to be over.
_END_GRACE_S = 0.1

#: Assumed horizontal field of view of an uncalibrated camera, degrees (fx ~ image width).
DEFAULT_HFOV_DEG = 53.13


class SourceError(RuntimeError):
    """The device or file cannot be opened or read; the text says what to do."""


class EndOfStream(Exception):
    """A file source that does not loop has delivered its last frame."""


@dataclass(frozen=True)
class CameraConfig:
    """The settings of the built-in sources; the defaults are camera_node's.

    ``source`` names the factory (:func:`make_source`); ``realsense_*`` and ``align_depth``
    configure :class:`RealSenseSource`, ``video_*`` :class:`VideoSource`; ``width`` x
    ``height`` pixels at ``fps`` Hz is the mode asked of a live camera (files keep theirs);
    ``loop`` restarts a file at its end.
    """

    source: str = "realsense"
    realsense_bag: str = ""
    realsense_serial: str = ""
    align_depth: bool = True
    video_uri: str = "0"
    video_hfov_deg: float = DEFAULT_HFOV_DEG
    loop: bool = True
    width: int = 640
    height: int = 480
    fps: float = 15.0


_CAMERA = CameraConfig()


@dataclass(frozen=True)
class Frame:
    """One colour image, the depth registered to it, its camera and its capture time.

    ``rgb`` HxWx3 uint8 (RGB); ``depth_mm`` HxW uint16 millimetres (0 = invalid), same
    size as ``rgb``, or None for colour-only sources; ``camera`` the colour camera's
    intrinsics; ``stamp_s`` the capture time (see the module docstring); ``index`` the
    number of the frame since the source opened (0, 1, ...; it keeps counting across
    loops).
    """

    rgb: np.ndarray
    depth_mm: np.ndarray | None
    camera: PinholeCamera
    stamp_s: float
    index: int = 0


@runtime_checkable
class FrameSource(Protocol):
    """What ``camera_node`` needs from a source (see the module docstring)."""

    live: bool

    def read(self, timeout_s: float | None = None) -> Frame | None: ...

    def close(self) -> None: ...


class _Source:
    """Context-manager support shared by the sources."""

    live: bool = False

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- pure helpers -----------------------------------------------------------------------

def depth_to_mm(raw: np.ndarray, units_m: float) -> np.ndarray:
    """Depth image in sensor units -> uint16 millimetres (0 stays 0 = no data).

    ``units_m`` is the size of one unit in metres (a RealSense depth scale: 0.001 on the
    D400 series, 0.0001 on the D405).  Values are rounded to the nearest millimetre and
    clipped to 65535 mm; a raw value that rounds to 0 mm becomes 0 (no data).  With
    units of exactly 1 mm (to float32 precision) the image is returned as is (a copy).
    """
    if not (math.isfinite(units_m) and units_m > 0):
        raise ValueError(f"depth units must be a positive number of metres, got {units_m}")
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise ValueError(f"expected an HxW depth image, got shape {raw.shape}")
    if abs(units_m * 1000.0 - 1.0) < 1e-6:
        return raw.astype(np.uint16, copy=True)
    mm = np.rint(raw.astype(np.float64) * (units_m * 1000.0))
    return np.clip(mm, 0, 65535).astype(np.uint16)


def guess_intrinsics(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> PinholeCamera:
    """Intrinsics of an uncalibrated camera from an assumed horizontal field of view.

    fx = fy = (W / 2) / tan(hfov / 2) (square pixels), principal point at the image
    centre ((W - 1) / 2, (H - 1) / 2 in pixel-centre coordinates), no distortion.  The
    default hfov 53.13 deg (2 atan(1/2)) gives fx ~ W, a middle-of-the-road webcam.
    Good enough to run the pipeline; 3-D positions are only as right as the guess.
    """
    if not 0 < hfov_deg < 180:
        raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return PinholeCamera(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)


def capture_stamp_ns(frame_stamp_s: float, live: bool, clock_now_ns: int, wall_now_s: float,
                     last_stamp_ns: int | None = None) -> int:
    """The ROS time (ns) to stamp a frame with, on a clock that reads ``clock_now_ns`` now.

    Live frames carry their wall-clock capture time, so they are stamped with the
    clock's time at capture: now minus the frame's age (``wall_now_s - frame_stamp_s``,
    never negative), which also holds on a simulated clock.  Frames played from a file
    are stamped with the clock's now: their recorded times lie in the past and repeat
    when the file loops.  Stamps never go backwards on one time line: a stamp not after
    ``last_stamp_ns`` becomes ``last_stamp_ns + 1`` (also for a live frame with a bogus,
    ancient capture time), unless the clock itself jumped back, to more than
    ``TIME_JUMP_S`` before ``last_stamp_ns`` (:mod:`fdl_robot.core.timebase`;
    ``use_sim_time`` with a bag played again or a restarted simulator): then the frame is
    stamped on the new time line as it is.
    """
    stamp = int(clock_now_ns)
    if live:
        stamp -= max(0, round((wall_now_s - frame_stamp_s) * 1e9))
    new_base = classify_stamp(int(clock_now_ns), last_stamp_ns) is StampOrder.NEW_BASE
    if last_stamp_ns is not None and stamp <= last_stamp_ns and not new_base:
        stamp = last_stamp_ns + 1
    return stamp


# --- RealSense --------------------------------------------------------------------------

def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SourceError("the realsense source needs pyrealsense2 (pip install pyrealsense2; "
                          "on Debian also apt install libusb-1.0-0)") from exc
    return rs


def _camera_from_rs_intrinsics(rs, intr) -> PinholeCamera:
    """pyrealsense2 intrinsics -> PinholeCamera (distortion as ROS plumb_bob).

    The Brown-Conrady family (brown_conrady, modified_ and inverse_brown_conrady) keeps
    its 5 coefficients in OpenCV order (k1, k2, p1, p2, k3) and becomes plumb_bob, as in
    realsense-ros; fisheye models cannot be described by a PinholeCamera.
    """
    coeffs = [float(c) for c in intr.coeffs][:5]
    brown = {rs.distortion.brown_conrady, rs.distortion.modified_brown_conrady,
             rs.distortion.inverse_brown_conrady, rs.distortion.none}
    if intr.model not in brown and any(coeffs):
        raise SourceError(f"colour distortion model {intr.model} is not supported "
                          "(plumb_bob / Brown-Conrady only)")
    return PinholeCamera(float(intr.fx), float(intr.fy), float(intr.ppx), float(intr.ppy),
                         int(intr.width), int(intr.height), coeffs if any(coeffs) else None)


def _rgb_from_rs(rs, frame) -> np.ndarray:
    """A pyrealsense2 colour frame -> HxWx3 uint8 RGB (a copy)."""
    fmt = frame.get_profile().format()
    data = np.asanyarray(frame.get_data())
    if fmt == rs.format.rgb8:
        return data.copy()
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(data[..., ::-1])
    if fmt == rs.format.rgba8:
        return np.ascontiguousarray(data[..., :3])
    if fmt == rs.format.bgra8:
        return np.ascontiguousarray(data[..., 2::-1])
    if fmt == rs.format.yuyv:
        import cv2
        h, w = frame.get_height(), frame.get_width()
        return cv2.cvtColor(data.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUYV)
    raise SourceError(f"colour format {fmt} is not supported (rgb8, bgr8, rgba8, bgra8, yuyv)")


class RealSenseSource(_Source):
    """Colour and aligned depth from a RealSense camera or a RealSense recording.

    ``bag_path`` plays a recording (``.db3`` as written by librealsense 2.59, or a ROS 1
    ``.bag``) at the pace of the reader, restarting at its end when ``loop``; otherwise
    the camera with serial number ``serial`` ('' = the first one found) streams depth
    (z16) and colour (rgb8) at ``width`` x ``height`` and ``fps``.  A recording plays
    its recorded streams, whatever ``width``, ``height`` and ``fps`` say.  ``align``
    registers depth to colour with ``rs.align`` when the streams need it (see the
    module docstring); with ``align=False`` the depth must already be registered.

    Raises :class:`SourceError` when no camera is found, the serial is unknown or the
    requested mode is not offered, FileNotFoundError when ``bag_path`` does not exist.
    """

    def __init__(self, serial: str = _CAMERA.realsense_serial, bag_path: str = _CAMERA.realsense_bag,
                 width: int = _CAMERA.width, height: int = _CAMERA.height, fps: float = _CAMERA.fps,
                 loop: bool = _CAMERA.loop, align: bool = _CAMERA.align_depth, queue_size: int = 2):
        self._rs = _rs()
        self.serial, self.bag_path = str(serial), str(bag_path)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.loop, self.align = bool(loop), bool(align)
        self.live = not self.bag_path
        self.dropped = 0                 # frames that found no partner or no room
        self.camera: PinholeCamera | None = None
        self._index = 0
        self._queue_size = max(1, int(queue_size))
        self._pairs: deque = deque()       # (colour, depth) pairs waiting for read()
        self._cond = threading.Condition()  # guards _pairs, _pending, _closed, _controlling
        self._closed = False
        self._controlling = False          # the reader is inside a playback control call
        self._ended = threading.Event()   # the playback reached the end of the file
        self._sensors: list = []
        self._pending: dict = {}
        self._ctx = self._device = self._playback = None
        self._aligner = None
        self._composer = None
        self._to_compose: tuple = ()
        self._loop_offset_s = 0.0
        self._first_ts_ms: float | None = None
        self._last_ts_ms: float | None = None
        if not self.live and not os.path.isfile(self.bag_path):
            raise FileNotFoundError(f"RealSense recording not found: {self.bag_path!r}")
        self._start()

    # -- streaming -----------------------------------------------------------------------

    def _start(self) -> None:
        rs = self._rs
        self._ctx = rs.context()
        if self.live:
            device, depth_profile, color_profile = self._open_device()
            playback = None
        else:
            try:
                playback = self._ctx.load_device(self.bag_path)
            except RuntimeError as exc:
                raise SourceError(f"cannot play {self.bag_path!r} as a RealSense recording: {exc}") from exc
            playback.set_real_time(False)          # no drops; the reader sets the pace
            playback.set_status_changed_callback(self._on_status)
            device = playback
            depth_profile = self._find_profile(device, rs.stream.depth)
            color_profile = self._find_profile(device, rs.stream.color)
            if color_profile is None:
                raise SourceError(f"{self.bag_path!r} has no colour stream")
        self._device, self._playback = device, playback
        self._color_profile, self._depth_profile = color_profile, depth_profile
        color_vsp = color_profile.as_video_stream_profile()
        self.camera = _camera_from_rs_intrinsics(rs, color_vsp.get_intrinsics())
        self._pair_tolerance_ms = 500.0 / max(color_vsp.fps(), 1)
        self._aligner = None
        if depth_profile is not None and self.align and self._needs_alignment(depth_profile, color_profile):
            self._aligner = rs.align(rs.stream.color)
            self._composer = rs.processing_block(self._compose)
            self._composed = rs.frame_queue(1, keep_frames=True)
            self._composer.start(self._composed)
        self._pending = {}
        self._ended.clear()
        self._ended_at: float | None = None
        by_sensor: dict = {}
        for profile in (depth_profile, color_profile):
            if profile is not None:
                sensor = self._sensor_of(device, profile)
                by_sensor.setdefault(id(sensor), (sensor, []))[1].append(profile)
        with self._control():
            if playback is not None:
                playback.pause()   # start every sensor before the file starts playing
            self._sensors = []
            for sensor, profiles in by_sensor.values():
                sensor.open(profiles)
                sensor.start(self._on_frame)
                self._sensors.append(sensor)
            if playback is not None:
                playback.resume()

    @contextmanager
    def _control(self):
        """Mark a stretch of librealsense control calls (see :meth:`_put`)."""
        with self._cond:
            self._controlling = True
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._controlling = False

    def _open_device(self):
        rs = self._rs
        devices = list(self._ctx.query_devices())
        if not devices:
            raise SourceError("no RealSense device found: connect one (and install the udev "
                              "rules), or play a recording with realsense_bag")
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if self.serial and self.serial not in serials:
            raise SourceError(f"no RealSense device with serial {self.serial!r}; found {serials}")
        device = devices[serials.index(self.serial) if self.serial else 0]
        fps = int(round(self.fps))
        depth = self._find_profile(device, rs.stream.depth, rs.format.z16, fps)
        color = self._find_profile(device, rs.stream.color, rs.format.rgb8, fps)
        for name, profile, stream in (("depth z16", depth, rs.stream.depth),
                                      ("colour rgb8", color, rs.stream.color)):
            if profile is None:
                offered = sorted({f"{p.as_video_stream_profile().width()}x"
                                  f"{p.as_video_stream_profile().height()}@{p.fps()}"
                                  for s in device.query_sensors() for p in s.get_stream_profiles()
                                  if p.stream_type() == stream and p.is_video_stream_profile()})
                raise SourceError(f"device {device.get_info(rs.camera_info.serial_number)} offers "
                                  f"no {name} stream at {self.width}x{self.height}@{fps}; "
                                  f"offered: {offered}")
        return device, depth, color

    def _find_profile(self, device, stream, fmt=None, fps=None):
        """The first video profile of ``stream`` (matching format, size and fps if given)."""
        for sensor in device.query_sensors():
            for p in sensor.get_stream_profiles():
                if p.stream_type() != stream or not p.is_video_stream_profile():
                    continue
                if fmt is not None:
                    v = p.as_video_stream_profile()
                    if (p.format(), v.width(), v.height(), p.fps()) != (fmt, self.width, self.height, fps):
                        continue
                return p
        return None

    @staticmethod
    def _sensor_of(device, profile):
        for sensor in device.query_sensors():
            if any(p.unique_id() == profile.unique_id() for p in sensor.get_stream_profiles()):
                return sensor
        raise SourceError(f"no sensor streams {profile}")  # pragma: no cover

    def _needs_alignment(self, depth_profile, color_profile) -> bool:
        """False when depth is already registered to colour (same geometry, identity pose)."""
        di = depth_profile.as_video_stream_profile().get_intrinsics()
        ci = color_profile.as_video_stream_profile().get_intrinsics()
        same = ((di.width, di.height) == (ci.width, ci.height)
                and np.allclose([di.fx, di.fy, di.ppx, di.ppy], [ci.fx, ci.fy, ci.ppx, ci.ppy]))
        if not same:
            return True
        try:
            ext = depth_profile.get_extrinsics_to(color_profile)
        except RuntimeError:
            return True
        return not (np.allclose(np.reshape(ext.rotation, (3, 3)), np.eye(3))
                    and np.allclose(ext.translation, 0.0))

    def _stop(self) -> None:
        """Stop the sensors and release the device and its threads."""
        with self._control():
            if self._playback is not None:
                try:
                    self._playback.pause()
                except RuntimeError:
                    pass
            for sensor in self._sensors:
                for call in (sensor.stop, sensor.close):
                    try:
                        call()
                    except RuntimeError:
                        pass
        self._sensors = []
        self._pending = {}
        self._playback = self._device = self._ctx = None
        gc.collect()   # librealsense joins its threads when the last reference goes

    # -- callbacks (librealsense threads) ------------------------------------------------

    def _on_status(self, status) -> None:
        if status == self._rs.playback_status.stopped:
            self._ended.set()

    def _on_frame(self, frame) -> None:
        """Pair depth and colour frames by timestamp; queue each pair for ``read``."""
        if self._closed:
            return
        frame.keep()                       # it outlives this callback
        rs = self._rs
        arrival_s = time.time()
        stream = frame.get_profile().stream_type()
        with self._cond:
            self._pending[stream] = (frame, arrival_s)
            color, depth = self._pending.get(rs.stream.color), self._pending.get(rs.stream.depth)
            if color is None or (self._depth_profile is not None and depth is None):
                return
            if depth is not None:
                dt = color[0].get_timestamp() - depth[0].get_timestamp()
                if abs(dt) > self._pair_tolerance_ms:   # the older one will never match
                    del self._pending[rs.stream.depth if dt > 0 else rs.stream.color]
                    self.dropped += 1
                    return
            self._pending.clear()
            self._put((color, depth))

    def _put(self, pair) -> None:
        """Queue a pair (the caller holds ``_cond``).

        Live: the newest pairs are kept, the oldest dropped.  A file: the callback waits
        for room, which holds the non-real-time playback back, so nothing is lost.  It
        never waits while the reader is inside a playback control call (pause, resume):
        librealsense runs those on the thread that is waiting here, so they would
        deadlock; the queue then briefly grows instead.
        """
        if self.live:
            while len(self._pairs) >= self._queue_size:
                self._pairs.popleft()
                self.dropped += 1
        else:
            while (len(self._pairs) >= self._queue_size and not self._closed
                   and not self._controlling):
                self._cond.wait(0.05)
            if self._closed:
                return
        self._pairs.append(pair)
        self._cond.notify_all()

    def _compose(self, _frame, source) -> None:
        source.frame_ready(source.allocate_composite_frame(list(self._to_compose)))

    # -- reading -------------------------------------------------------------------------

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The next frame, None after ``timeout_s`` (default 1 s) without one.

        Raises EndOfStream at the end of a recording that does not loop.
        """
        if self._closed:
            raise SourceError("the source is closed")
        deadline = time.monotonic() + (1.0 if timeout_s is None else max(0.0, timeout_s))
        while True:
            with self._cond:
                if not self._pairs:
                    self._cond.wait(0.005)
                pair = self._pairs.popleft() if self._pairs else None
                self._cond.notify_all()
            if pair is None:
                now = time.monotonic()
                if self._ended.is_set():
                    # The status may come just before the last pair is queued: give it time.
                    if self._ended_at is None:
                        self._ended_at = now
                    if now - self._ended_at > _END_GRACE_S:
                        if not self.loop:
                            raise EndOfStream(f"end of {self.bag_path}")
                        self._restart_playback()
                        continue
                if now >= deadline:
                    return None
                continue
            return self._frame_from(pair)

    def _restart_playback(self) -> None:
        """Play the recording again; its times continue after the previous pass."""
        self._stop()
        if self._first_ts_ms is not None and self._last_ts_ms is not None:
            self._loop_offset_s += (self._last_ts_ms - self._first_ts_ms) / 1000.0 \
                + 1.0 / max(self._color_profile.fps(), 1)
        self._first_ts_ms = None
        self._start()

    def _frame_from(self, pair) -> Frame:
        rs = self._rs
        (color, arrival_s), depth = pair
        depth_frame = None if depth is None else depth[0]
        if self._aligner is not None and depth_frame is not None:
            self._to_compose = (depth_frame, color)
            self._composer.invoke(color)
            frameset = self._composed.wait_for_frame(1000).as_frameset()
            aligned = self._aligner.process(frameset)
            depth_frame, color = aligned.get_depth_frame(), aligned.get_color_frame()
        rgb = _rgb_from_rs(rs, color)
        depth_mm = None
        if depth_frame is not None:
            depth_mm = depth_to_mm(np.asanyarray(depth_frame.get_data()),
                                   depth_frame.as_depth_frame().get_units())
        ts_ms = color.get_timestamp()
        if self.live:
            domain = color.get_frame_timestamp_domain()
            wall = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
            stamp_s = ts_ms / 1000.0 if domain in wall else arrival_s
        else:
            if self._first_ts_ms is None:
                self._first_ts_ms = ts_ms
            self._last_ts_ms = ts_ms
            stamp_s = self._loop_offset_s + (ts_ms - self._first_ts_ms) / 1000.0
        frame = Frame(rgb=rgb, depth_mm=depth_mm, camera=self.camera, stamp_s=stamp_s,
                      index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        """Stop streaming and release the device (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True            # callbacks waiting for room give up
            self._pairs.clear()
            self._cond.notify_all()
        self._stop()


# --- OpenCV video and webcams -----------------------------------------------------------

class VideoSource(_Source):
    """Colour frames from an OpenCV capture: a webcam index ('0') or a video file.

    Colour only (``Frame.depth_mm`` is None).  A webcam is asked for ``width`` x
    ``height`` at ``fps`` (drivers may choose another mode; the frames' own size wins);
    a file plays at its own size, restarting at its end when ``loop``.  A webcam has no
    calibration, so the intrinsics are a guess (:func:`guess_intrinsics`, horizontal
    field of view ``hfov_deg``) and the source says so in ``intrinsics_note``.
    """

    def __init__(self, uri: str = _CAMERA.video_uri, width: int = _CAMERA.width,
                 height: int = _CAMERA.height, fps: float = _CAMERA.fps, loop: bool = _CAMERA.loop,
                 hfov_deg: float = _CAMERA.video_hfov_deg):
        import cv2

        self._cv2 = cv2
        self.uri, self.loop, self.hfov_deg = str(uri), bool(loop), float(hfov_deg)
        self.live = self.uri.isdigit()
        if self.live:
            self._cap = cv2.VideoCapture(int(self.uri))
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
            self._cap.set(cv2.CAP_PROP_FPS, float(fps))
        else:
            if not os.path.isfile(self.uri):
                raise FileNotFoundError(f"video file not found: {self.uri!r}")
            self._cap = cv2.VideoCapture(self.uri)
        if not self._cap.isOpened():
            raise SourceError(f"OpenCV cannot open {'webcam' if self.live else 'video'} {self.uri!r}")
        file_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._period_s = 1.0 / (file_fps if file_fps and file_fps > 0 else float(fps))
        self.camera: PinholeCamera | None = None
        self.intrinsics_note = ""
        self._index = 0
        self._pass_index = 0               # frames read in the current pass of a file
        self._loop_offset_s = 0.0
        self._last_t_s = 0.0

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The next frame (OpenCV blocks until it has one; ``timeout_s`` is not used)."""
        cv2 = self._cv2
        ok, bgr = self._cap.read()
        if not ok and not self.live:
            if not self.loop:
                raise EndOfStream(f"end of {self.uri}")
            if self._pass_index == 0:
                raise SourceError(f"video {self.uri!r} has no readable frame")
            self._loop_offset_s += self._last_t_s + self._period_s
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._pass_index = 0
            ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise SourceError(f"no frame from {'webcam' if self.live else 'video'} {self.uri!r}")
        if self.live:
            stamp_s = time.time()
        else:
            pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            t = pos_ms / 1000.0 if pos_ms > 0 or self._pass_index == 0 else -1.0
            if t <= self._last_t_s and self._pass_index > 0:   # backend without timestamps
                t = self._pass_index * self._period_s
            self._last_t_s = t
            stamp_s = self._loop_offset_s + t
        self._pass_index += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        if self.camera is None or (self.camera.width, self.camera.height) != (w, h):
            self.camera = guess_intrinsics(w, h, self.hfov_deg)
            self.intrinsics_note = (
                f"intrinsics of {self.uri!r} are a guess (no calibration): fx = fy = "
                f"{self.camera.fx:.1f} px for an assumed {self.hfov_deg:.1f} deg horizontal "
                f"field of view, principal point at the image centre ({w}x{h})")
        frame = Frame(rgb=rgb, depth_mm=None, camera=self.camera, stamp_s=stamp_s, index=self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        """Release the capture (idempotent)."""
        self._cap.release()


# --- the registry of sources ------------------------------------------------------------

SourceFactory = Callable[[Mapping[str, Any]], FrameSource]


def _realsense_from_params(p: Mapping[str, Any]) -> RealSenseSource:
    c = from_mapping(CameraConfig, p)
    return RealSenseSource(serial=c.realsense_serial, bag_path=c.realsense_bag, width=c.width,
                           height=c.height, fps=c.fps, loop=c.loop, align=c.align_depth)


def _video_from_params(p: Mapping[str, Any]) -> VideoSource:
    c = from_mapping(CameraConfig, p)
    return VideoSource(uri=c.video_uri, width=c.width, height=c.height, fps=c.fps, loop=c.loop,
                       hfov_deg=c.video_hfov_deg)


_FACTORIES: dict[str, SourceFactory] = {
    "realsense": _realsense_from_params,
    "video": _video_from_params,
}

_NOT_YET = {"sim": "the simulator publishes its own camera: run sim_node (fdl-robot run --graph sim), or "
                   "register one with fdl_robot.perception.sources.register_source('sim', factory)"}


def register_source(name: str, factory: SourceFactory) -> None:
    """Make ``make_source`` build ``factory(params)`` for ``source: name``.

    ``params`` are the camera_node parameters (a mapping name -> value); the factory
    returns a :class:`FrameSource`.  Registering a name again replaces its factory.
    """
    _FACTORIES[str(name)] = factory


def available_sources() -> list[str]:
    """Names ``make_source`` accepts."""
    return sorted(_FACTORIES)


def make_source(params: Mapping[str, Any]) -> FrameSource:
    """Build the source named by ``params['source']`` from the camera_node parameters."""
    name = str(params.get("source", _CAMERA.source))
    if name not in _FACTORIES:
        raise SourceError(_NOT_YET.get(name, f"unknown camera source {name!r}; "
                                             f"available: {available_sources()}"))
    return _FACTORIES[name](params)

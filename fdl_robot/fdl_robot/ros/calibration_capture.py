"""Calibration frames from a running graph (``fdl-robot-calibrate --live``).

Subscribes to the colour image, its camera_info and the joint states; keeps the joint states
in a :class:`~fdl_robot.core.joint_buffer.JointBuffer` and takes an image when the arm has
rested for ``still_s`` before its stamp and stands at a new pose (some joint moved
:data:`~fdl_robot.calibrate.MIN_MOVE_RAD` since the last image taken), or on Enter (at rest,
even at the same pose). An image newer than the newest joint state waits (up to
``wait_s``) for the joint states to catch up: its q is interpolated at its own stamp, never
taken from the latest joint state. Move the arm (teach pendant, MoveIt, a script) through
15-20 poses; ``q`` + Enter or Ctrl-C ends the capture early.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from fdl_robot.calibrate import MIN_MOVE_RAD, Captured, Frame, at_rest
from fdl_robot.core.joint_buffer import JointBuffer

__all__ = ["LiveCapture", "live_capture"]


class LiveCapture:
    """The capture logic on a node: call :meth:`process` periodically (a timer does)."""

    def __init__(self, node, joint_names, image_topic: str, camera_info_topic: str, joint_states_topic: str,
                 still_s: float = 0.2, wait_s: float = 1.0, history_s: float = 10.0):
        from sensor_msgs.msg import CameraInfo, Image, JointState

        from fdl_robot.ros.base import SENSOR_QOS

        self.node, self.still_s, self.wait_s = node, float(still_s), float(wait_s)
        self.buffer = JointBuffer(joint_names, history_s=history_s)
        self.frames: list[Frame] = []
        self.camera = None
        self.camera_frame = ""
        self.requested = threading.Event()
        self.notes: list[str] = []
        self._pending: deque = deque(maxlen=4)
        self._q_last: np.ndarray | None = None
        node.create_subscription(Image, image_topic, self.on_image, SENSOR_QOS)
        node.create_subscription(CameraInfo, camera_info_topic, self.on_camera_info, 10)
        node.create_subscription(JointState, joint_states_topic, self.on_joint_states, SENSOR_QOS)

    def on_camera_info(self, msg) -> None:
        from fdl_robot.ros.conversions import InvalidInput, camera_info_to_camera

        if self.camera is None:
            try:
                self.camera = camera_info_to_camera(msg)
                self.camera_frame = msg.header.frame_id
            except InvalidInput as exc:
                self.notes.append(f"camera_info rejected: {exc}")

    def on_joint_states(self, msg) -> None:
        from fdl_robot.ros.conversions import stamp_to_ns

        try:
            self.buffer.add(list(msg.name), list(msg.position), stamp_to_ns(msg.header.stamp))
        except ValueError as exc:
            self.notes.append(f"joint state rejected: {exc}")

    def on_image(self, msg) -> None:
        from fdl_robot.ros.conversions import stamp_to_ns

        self._pending.append((stamp_to_ns(msg.header.stamp), msg, time.monotonic()))

    def process(self, now_s: float | None = None) -> Frame | None:
        """Look at the waiting images (oldest first); returns the frame taken, if any.

        ``now_s``: the monotonic clock (the receipt times of the images are on it).
        """
        from fdl_robot.ros.conversions import InvalidInput, image_to_rgb

        now_s = time.monotonic() if now_s is None else now_s
        while self._pending:
            t, msg, received_s = self._pending[0]
            q, why = at_rest(self.buffer, t, self.still_s)
            if q is None and "past the newest" in why and now_s - received_s < self.wait_s:
                return None                              # the joint states for t are still to come
            self._pending.popleft()
            if q is None:
                continue
            new_pose = self._q_last is None or np.max(np.abs(q - self._q_last)) >= MIN_MOVE_RAD
            if not (new_pose or self.requested.is_set()):
                continue
            try:
                rgb = image_to_rgb(msg)
            except InvalidInput as exc:
                self.notes.append(f"image rejected: {exc}")
                continue
            self.requested.clear()
            self._q_last = q
            frame = Frame(t, rgb, q, f"image {len(self.frames)} (t={t * 1e-9:.3f} s)")
            self.frames.append(frame)
            return frame
        return None


def live_capture(joint_names, image_topic: str, camera_info_topic: str, joint_states_topic: str, n_poses: int,
                 still_s: float = 0.2, progress: bool = True) -> Captured:
    """Run a node until ``n_poses`` frames were taken (or ``q`` + Enter, or Ctrl-C)."""
    import sys

    import rclpy
    from tqdm import tqdm

    rclpy.init()
    node = rclpy.create_node("fdl_robot_calibrate")
    cap = LiveCapture(node, joint_names, image_topic, camera_info_topic, joint_states_topic, still_s)
    stop = threading.Event()

    def read_keys():
        for line in sys.stdin:
            if line.strip().lower() == "q":
                stop.set()
                return
            cap.requested.set()

    threading.Thread(target=read_keys, daemon=True).start()
    print(f"capturing from {image_topic} when the arm rests {still_s:g} s at a new pose (Enter: take the next "
          "image at rest, q + Enter: stop)")
    bar = tqdm(total=n_poses, desc="capturing", unit="pose", disable=not progress)
    node.create_timer(0.05, lambda: bar.update(1) if cap.process() else None)
    try:
        while rclpy.ok() and not stop.is_set() and len(cap.frames) < n_poses:
            rclpy.spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    for line in cap.notes[:10]:
        print(f"note: {line}")
    return Captured(cap.frames, cap.camera, cap.camera_frame)

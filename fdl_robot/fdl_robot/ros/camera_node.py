"""camera_node: a camera source -> colour image, aligned depth and CameraInfo.

    ros2 run fdl_robot camera_node --ros-args --params-file config/fdl_robot.yaml
    ros2 run fdl_robot camera_node --ros-args -p source:=realsense -p realsense_bag:=run.db3
    ros2 run fdl_robot camera_node --ros-args -p source:=video -p video_uri:=0

The ``source`` parameter picks a :mod:`fdl_robot.perception.sources` source: ``realsense``
(a live camera, or a recording given by ``realsense_bag``) or ``video`` (an OpenCV file
or webcam, colour only); other sources plug in with
:func:`~fdl_robot.perception.sources.register_source` (the simulator runs as ``sim_node``).

A timer at ``fps`` reads one frame and publishes, with one header (stamp and
``frame_id``) for all three so consumers can match them exactly:

* ``color_topic``: ``sensor_msgs/Image`` rgb8;
* ``depth_topic``: ``sensor_msgs/Image`` 16UC1, millimetres, 0 = no data, registered to
  the colour image (not published by colour-only sources);
* ``camera_info_topic``: ``sensor_msgs/CameraInfo`` of the colour camera (plumb_bob).

Stamps: a live camera's frame is stamped with the ROS time at which it was captured
(:func:`~fdl_robot.perception.sources.capture_stamp_ns`); a file is stamped with the
ROS time at which it is read, so stamps keep increasing when it loops.

QoS: images are published with the parameters ``image_qos_reliability`` (default
reliable) and ``image_qos_depth`` (keep last 5); camera_info is reliable (depth 10). A
reliable publisher serves reliable subscribers (a default RViz2 Image display) and
best-effort ones (fdl_robot's own, ``qos_profile_sensor_data``) alike, as realsense-ros
4.x's reliable images do.

At the end of a recording or video file that does not loop, the node logs it once and
stops publishing (``finished`` becomes True). A failing read is counted and warned
about (throttled) and the node carries on.
"""
from __future__ import annotations

import math
import time

from sensor_msgs.msg import CameraInfo, Image

from fdl_robot.perception.sources import (EndOfStream, Frame, FrameSource, capture_stamp_ns, make_source)
from fdl_robot.ros.base import RELIABLE_QOS, FdlNode
from fdl_robot.ros.conversions import (InvalidInput, camera_to_camera_info, depth_to_image,
                                       ns_to_stamp, rgb_to_image)

__all__ = ["CameraNode", "main"]


class CameraNode(FdlNode):
    """Publishes the frames of a camera source (see the module docstring).

    ``source`` replaces the one the parameters describe (tests, embedding); the node
    closes whichever source it holds when destroyed.  Raises SourceError (or
    FileNotFoundError) when the configured source cannot be opened.
    """

    def __init__(self, source: FrameSource | None = None, **kwargs):
        super().__init__("camera_node", **kwargs)
        p = self.params
        self.source: FrameSource | None = None
        try:
            if p["fps"] <= 0:
                raise ValueError(f"fps must be positive, got {p['fps']}")
            self.source = source if source is not None else make_source(p)
        except BaseException:
            super().destroy_node()
            raise
        try:
            image_qos = self.image_qos()
        except ValueError:
            self.destroy_node()
            raise
        self.finished = False
        self._last_stamp_ns: int | None = None
        self._period_s = 1.0 / p["fps"]
        self.color_pub = self.create_publisher(Image, p["color_topic"], image_qos)
        self.depth_pub = self.create_publisher(Image, p["depth_topic"], image_qos)
        self.info_pub = self.create_publisher(CameraInfo, p["camera_info_topic"], RELIABLE_QOS)
        self.timer = self.create_timer(self._period_s, self.on_timer)
        kind = "live" if self.source.live else "file"
        self.get_logger().info(f"source '{p['source']}' ({kind}) at {p['fps']:g} Hz -> "
                               f"{p['color_topic']}, {p['depth_topic']}, {p['camera_info_topic']}")

    def on_timer(self) -> None:
        """Read one frame and publish it (or count why not)."""
        if self.finished or not self.context.ok():    # done, or shutting down (Ctrl-C)
            return
        frame = self._read()
        if frame is None:
            return
        try:
            messages = self._to_messages(frame)
        except InvalidInput as exc:
            self.reject("bad frame", str(exc))
            return
        try:
            for pub, msg in zip((self.color_pub, self.depth_pub, self.info_pub), messages, strict=True):
                if msg is not None:
                    pub.publish(msg)
        except Exception:  # noqa: BLE001 - the context went away mid-callback (Ctrl-C)
            if self.context.ok():
                raise
            return
        self.counters["ok frames"] += 1

    def _read(self) -> Frame | None:
        """The next frame, or None (end of a file, a read error, nothing yet: counted)."""
        try:
            frame = self.source.read(timeout_s=self._period_s)
        except EndOfStream as exc:
            self.finished = True
            self.timer.cancel()
            self.get_logger().info(f"{exc}: stopped publishing (loop is false)")
            return None
        except Exception as exc:  # noqa: BLE001 - a driver may raise anything; keep going
            self.reject("read error", f"{type(exc).__name__}: {exc}")
            return None
        if frame is None:
            self.counters["no frame"] += 1
            return None
        note = getattr(self.source, "intrinsics_note", "")
        if note and not self.counters["ok frames"]:
            self.get_logger().warning(note)
        if self.source.live and not math.isfinite(frame.stamp_s):   # would raise in the stamp
            self.reject("bad frame", f"non-finite capture time {frame.stamp_s}")
            return None
        return frame

    def _to_messages(self, frame: Frame) -> tuple[Image, Image | None, CameraInfo]:
        """Colour, depth (None for colour-only sources) and CameraInfo, with one header."""
        self._last_stamp_ns = capture_stamp_ns(frame.stamp_s, self.source.live,
                                               self.get_clock().now().nanoseconds, time.time(),
                                               self._last_stamp_ns)
        stamp, frame_id = ns_to_stamp(self._last_stamp_ns), self.params["frame_id"]
        if frame.depth_mm is not None and frame.depth_mm.shape != frame.rgb.shape[:2]:
            raise InvalidInput(f"depth {frame.depth_mm.shape} and colour {frame.rgb.shape[:2]} "
                               "differ in size: the source did not align them")
        color = rgb_to_image(frame.rgb, stamp, frame_id)
        depth = None if frame.depth_mm is None else depth_to_image(frame.depth_mm, stamp, frame_id)
        return color, depth, camera_to_camera_info(frame.camera, stamp, frame_id)

    def destroy_node(self):
        if self.source is not None:
            self.source.close()
        return super().destroy_node()


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(CameraNode)(args)


if __name__ == "__main__":
    main()

"""detector_node: colour image -> fdl_robot_interfaces/Detection2DArray.

    ros2 run fdl_robot detector_node --ros-args --params-file config/fdl_robot.yaml

Subscribes ``image_topic`` (rgb8/bgr8; QoS ``image_qos_*``, default best effort, keep last
1: it receives from reliable and best-effort publishers and always works on the newest
frame, never through a backlog); publishes ``detections_topic`` with the source image's
header (stamp and frame_id) and, when ``publish_debug_image`` is set, an annotated image
(``debug_image_qos_*``, default reliable, keep last 5: a default RViz2 Image display shows
it). The node keeps no state from frame to frame, so time jumping back (a bag played
again) needs nothing here. The backend (ultralytics, onnx, openvino, detr or color) is built by
:func:`fdl_robot.perception.detector.make_detector` from the node's
:class:`~fdl_robot.perception.detector.DetectorConfig` parameters; a test can pass its own.
"""
from __future__ import annotations

from fdl_robot_interfaces.msg import Detection2DArray
from sensor_msgs.msg import Image

from fdl_robot.perception.detector import Detector, DetectorConfig, make_detector, model_path_of
from fdl_robot.ros import parameters
from fdl_robot.ros.base import RELIABLE_QOS, FdlNode
from fdl_robot.ros.conversions import (InvalidInput, detections_to_msg, image_to_rgb,
                                       rgb_to_image)


class DetectorNode(FdlNode):
    def __init__(self, detector: Detector | None = None, **kwargs):
        super().__init__("detector_node", **kwargs)
        p = self.params
        image_qos, debug_qos = self.image_qos(), self.image_qos("debug_image_qos")
        self.detector = detector
        if detector is None:
            config = parameters.build_config("detector_node", DetectorConfig, p)
            self.detector = make_detector(config)
            self.get_logger().info(f"{config.backend} detector, weights {model_path_of(config) or '(none)'}: "
                                   f"{self.resolve_topic_name(p['image_topic'])} -> "
                                   f"{self.resolve_topic_name(p['detections_topic'])}")
        self.pub = self.create_publisher(Detection2DArray, p["detections_topic"], RELIABLE_QOS)
        self.debug_pub = (self.create_publisher(Image, p["debug_image_topic"], debug_qos)
                          if p["publish_debug_image"] else None)
        self.create_subscription(Image, p["image_topic"], self.on_image, image_qos)

    def on_image(self, msg: Image) -> None:
        try:
            rgb = image_to_rgb(msg)
        except InvalidInput as exc:
            self.reject("bad image", str(exc))
            return
        try:
            det = self.detector.detect(rgb)
        except Exception as exc:  # noqa: BLE001 - cv2/torch/onnxruntime errors must not kill the node
            self.reject("detector error", f"{type(exc).__name__}: {exc}")
            return
        self.counters["ok images"] += 1
        self.pub.publish(detections_to_msg(det, msg.header, msg.width, msg.height))
        if self.debug_pub is not None:
            from fdl_robot.perception.annotate import draw_detections

            self.debug_pub.publish(rgb_to_image(draw_detections(rgb, det), msg.header.stamp,
                                                msg.header.frame_id))


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(DetectorNode)(args)


if __name__ == "__main__":
    main()

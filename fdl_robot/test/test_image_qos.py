"""Image QoS that default tools see: our publishers serve a reliable subscriber, our subscribers
take a reliable publisher, with real rclpy pub/sub.

A default RViz2 Image display subscribes reliable, volatile, keep last 5 (``RVIZ_IMAGE``);
realsense-ros 4.x publishes images with SYSTEM_DEFAULT (``REALSENSE_IMAGES``: under Fast DDS
reliable and transient local); a camera on ``qos_profile_sensor_data`` is best effort. The
defaults (parameters ``image_qos_reliability`` / ``image_qos_depth``) must work with all
three; the old best-effort publishers (``image_qos_reliability:=best_effort``) leave the
reliable subscriber with nothing, which shows the check can fail.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray  # noqa: E402
from rclpy.qos import (DurabilityPolicy, QoSProfile, ReliabilityPolicy,  # noqa: E402
                       qos_profile_sensor_data, qos_profile_system_default)
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from fdl_robot.core.camera import PinholeCamera  # noqa: E402
from fdl_robot.perception.sources import Frame  # noqa: E402
from fdl_robot.ros.camera_node import CameraNode  # noqa: E402
from fdl_robot.ros.conversions import (camera_to_camera_info, depth_to_image, ns_to_stamp,  # noqa: E402
                                       rgb_to_image)
from fdl_robot.ros.detector_node import DetectorNode  # noqa: E402
from fdl_robot.ros.localizer_node import LocalizerNode  # noqa: E402

pytestmark = [pytest.mark.ros,
              # rclpy reports an incompatible QoS offer through a deprecated logger call
              pytest.mark.filterwarnings("ignore:Deprecated in favor of:DeprecationWarning")]

RVIZ_IMAGE = QoSProfile(depth=5)                       # rclcpp::QoS(5): reliable, volatile
REALSENSE_IMAGES = qos_profile_system_default           # realsense-ros 4.x IMAGE_QOS
PUBLISHERS = {"reliable": QoSProfile(depth=10), "realsense-ros default": REALSENSE_IMAGES,
              "sensor data (best effort)": qos_profile_sensor_data}
CAMERA = PinholeCamera(40.0, 40.0, 15.5, 11.5, 32, 24)
COLOR, DEPTH = "camera/color/image_raw", "camera/aligned_depth_to_color/image_raw"


class StillSource:
    """A recording that shows one red square on a 32x24 table at 0.5 m."""

    live = False

    def read(self, timeout_s=None):
        rgb = np.zeros((24, 32, 3), np.uint8)
        rgb[8:16, 12:20] = (220, 20, 20)
        return Frame(rgb, np.full((24, 32), 500, np.uint16), CAMERA, stamp_s=0.0)

    def close(self):
        pass


def _offered(ros, topic: str) -> set:
    return {i.qos_profile.reliability for i in ros.probe.get_publishers_info_by_topic(f"{ros.namespace}/{topic}")}


@pytest.mark.parametrize("reliability", ["default", "best_effort"])
def test_camera_node_images_reach_a_reliable_subscriber(reliability):
    params = {"fps": 30.0} | ({} if reliability == "default" else {"image_qos_reliability": reliability})
    with RosHarness() as ros:
        ros.add(CameraNode, params, source=StillSource())
        reliable = {t: ros.collect(Image, t, RVIZ_IMAGE) for t in (COLOR, DEPTH)}
        best_effort = ros.collect(Image, COLOR, qos_profile_sensor_data)
        assert ros.spin_until(lambda: len(best_effort) >= 5, timeout_s=10)
        ros.spin_for(0.3)
        if reliability == "default":
            assert _offered(ros, COLOR) == _offered(ros, DEPTH) == {ReliabilityPolicy.RELIABLE}
            assert all(len(v) >= 5 for v in reliable.values()), {t: len(v) for t, v in reliable.items()}
        else:                                      # what the stack published before: RViz sees nothing
            assert _offered(ros, COLOR) == {ReliabilityPolicy.BEST_EFFORT}
            assert reliable[COLOR] == [] and reliable[DEPTH] == []


def test_sim_node_images_reach_a_reliable_subscriber():
    pytest.importorskip("mujoco")
    from fdl_robot.ros.sim_node import SimNode

    with RosHarness() as ros:
        ros.add(SimNode, {"width": 160, "height": 120, "shadows": False, "publish_clock": True,
                          "real_time_factor": 2.0})
        reliable = {t: ros.collect(Image, t, RVIZ_IMAGE) for t in (COLOR, DEPTH)}
        assert ros.spin_until(lambda: all(len(v) >= 3 for v in reliable.values()), timeout_s=20), \
            {t: len(v) for t, v in reliable.items()}
        assert _offered(ros, COLOR) == _offered(ros, DEPTH) == {ReliabilityPolicy.RELIABLE}


def test_detector_annotated_image_reaches_a_reliable_subscriber():
    with RosHarness() as ros:
        ros.add(DetectorNode, {"backend": "color", "publish_debug_image": True})
        images = ros.publisher(Image, COLOR)
        annotated = ros.collect(Image, "detections/image", RVIZ_IMAGE)
        ros.wait_for_subscribers(images)
        assert ros.spin_until(lambda: ros.probe.count_subscribers(f"{ros.namespace}/detections/image") >= 1)
        for k in range(3):
            images.publish(rgb_to_image(StillSource().read().rgb, ns_to_stamp(k * 10**8), "cam"))
            ros.spin_for(0.1)
        assert ros.spin_until(lambda: len(annotated) >= 1), "no annotated image on a reliable subscription"


@pytest.mark.parametrize("publisher", list(PUBLISHERS))
def test_detector_and_localizer_take_images_of_every_common_publisher(publisher):
    """A reliable publisher, realsense-ros's default and a best-effort one all reach the default
    (best-effort) subscriptions: each frame is detected and lifted."""
    qos = PUBLISHERS[publisher]
    with RosHarness() as ros:
        detector = ros.add(DetectorNode, {"backend": "color"})
        localizer = ros.add(LocalizerNode)
        colour, depth = ros.publisher(Image, COLOR, qos), ros.publisher(Image, DEPTH, qos)
        info = ros.publisher(CameraInfo, "camera/color/camera_info")
        detections = ros.collect(Detection2DArray, "detections")
        objects = ros.collect(Object3DArray, "objects")
        for pub in (colour, depth, info):
            ros.wait_for_subscribers(pub)
        frame = StillSource().read()
        for k in range(1, 4):
            stamp = ns_to_stamp(k * 10**8)
            info.publish(camera_to_camera_info(CAMERA, stamp, "cam"))
            depth.publish(depth_to_image(frame.depth_mm, stamp, "cam"))
            colour.publish(rgb_to_image(frame.rgb, stamp, "cam"))
            assert ros.spin_until(lambda n=k: len(objects) >= n), (publisher, len(detections), dict(localizer.counters))
        assert detector.counters["ok images"] == 3 and localizer.counters["ok frames"] == 3
        assert all(len(d.detections) == 1 for d in detections)


def test_a_reliable_subscription_misses_a_best_effort_camera():
    """Why the subscriptions default to best effort: set to reliable, a best-effort camera
    (qos_profile_sensor_data, or realsense-ros with color_qos:=SENSOR_DATA) reaches nothing."""
    with RosHarness() as ros:
        detector = ros.add(DetectorNode, {"backend": "color", "image_qos_reliability": "reliable"})
        colour = ros.publisher(Image, COLOR, qos_profile_sensor_data)
        ros.spin_for(1.0)
        assert colour.get_subscription_count() == 0                     # incompatible: never matched
        colour.publish(rgb_to_image(StillSource().read().rgb, ns_to_stamp(1), "cam"))
        ros.spin_for(0.3)
        assert detector.counters["ok images"] == 0


def test_a_bad_image_qos_parameter_names_node_and_parameter():
    with RosHarness() as ros:
        with pytest.raises(ValueError, match="^localizer_node: image_qos_reliability must be one of "
                                             r"\['reliable', 'best_effort'\], got 'relaible'$"):
            ros.add(LocalizerNode, {"image_qos_reliability": "relaible"})
        with pytest.raises(ValueError, match="^detector_node: debug_image_qos_depth must be >= 1, got 0$"):
            ros.add(DetectorNode, {"backend": "color", "debug_image_qos_depth": 0})


def test_the_image_qos_profile_is_keep_last_volatile():
    from fdl_robot.ros.base import image_qos
    from fdl_robot.ros.parameters import defaults

    qos = image_qos(defaults("detector_node"))
    assert (qos.reliability, qos.depth, qos.durability) == (ReliabilityPolicy.BEST_EFFORT, 1,
                                                            DurabilityPolicy.VOLATILE)
    qos = image_qos(defaults("sim_node"))
    assert (qos.reliability, qos.depth) == (ReliabilityPolicy.RELIABLE, 5)

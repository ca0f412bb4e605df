"""The whole perception-to-command graph, started from the YAML in one process.

The runner builds detector, localizer, tracker and policy nodes exactly as
``fdl-robot run --graph perception`` does (same YAML, same --params-file mechanism);
a probe plays the camera and the arm: synthetic RGB-D frames with a red cube at a known
base_link position and /joint_states. Every stage must publish, and the JointTrajectory
must carry the source image stamp of the frame it was computed from.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")
from fdl_robot_interfaces.msg import Detection2DArray, Object3DArray, TrackArray  # noqa: E402
from ros_harness import RosHarness  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from test_perception_nodes import EXTRINSICS, RED, frame_messages  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from fdl_robot.ros import parameters  # noqa: E402
from fdl_robot.ros.base import SENSOR_QOS  # noqa: E402
from fdl_robot.ros.conversions import stamp_to_ns  # noqa: E402
from fdl_robot.ros.graph import LaunchArguments  # noqa: E402
from fdl_robot.ros.runner import build_nodes  # noqa: E402

pytestmark = pytest.mark.ros
HOME = [0.0, -1.57, 1.57, -1.57, -1.57, 0.0, 0.0]


def test_one_process_graph_carries_frames_to_joint_commands(tmp_path):
    config = yaml.safe_load(parameters.to_yaml())
    config["/**/localizer_node"]["ros__parameters"].update(EXTRINSICS)
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump(config))

    with RosHarness() as ros:
        nodes = build_nodes("perception", LaunchArguments(config=str(path), namespace=ros.namespace),
                            context=ros.context)
        for node in nodes:
            ros.executor.add_node(node)
            ros.nodes.append(node)
        assert [n.get_name() for n in nodes] == ["detector_node", "localizer_node", "tracker_node",
                                                  "policy_node"]
        image_pub = ros.publisher(Image, "camera/color/image_raw", SENSOR_QOS)
        depth_pub = ros.publisher(Image, "camera/aligned_depth_to_color/image_raw", SENSOR_QOS)
        info_pub = ros.publisher(CameraInfo, "camera/color/camera_info")
        joints_pub = ros.publisher(JointState, "joint_states")
        seen = {name: ros.collect(t, topic) for name, t, topic in [
            ("detections", Detection2DArray, "detections"), ("objects", Object3DArray, "objects"),
            ("tracks", TrackArray, "tracks"),
            ("commands", JointTrajectory, "joint_trajectory_controller/joint_trajectory")]}
        for pub in (image_pub, depth_pub, info_pub, joints_pub):
            ros.wait_for_subscribers(pub)

        image_stamps = []
        for k in range(6):                                   # 6 frames at 15 Hz
            stamp_ns = 20_000_000_000 + k * 66_666_667
            image, depth, info, _ = frame_messages(stamp_ns, cubes=(RED,))
            joints = JointState(name=parameters.ARM_JOINTS + [parameters.GRIPPER_JOINT], position=HOME)
            joints.header.stamp = ros.probe.get_clock().now().to_msg()
            joints_pub.publish(joints)
            info_pub.publish(info)
            depth_pub.publish(depth)
            image_pub.publish(image)
            image_stamps.append(stamp_ns)
            assert ros.spin_until(lambda: len(seen["tracks"]) == k + 1, timeout_s=10), f"frame {k} lost"

        def stamped():
            return [m for m in seen["commands"] if stamp_to_ns(m.header.stamp) in image_stamps]

        assert ros.spin_until(stamped, timeout_s=5), "no command stamped with a source image"
        for name in ("detections", "objects", "tracks"):
            assert [stamp_to_ns(m.header.stamp) for m in seen[name]] == image_stamps, name
        (track,) = seen["tracks"][-1].tracks
        assert track.class_name == "red_cube" and track.state == track.CONFIRMED
        np.testing.assert_allclose([track.position.x, track.position.y, track.position.z], RED.p_base,
                                   atol=0.005)
        command = stamped()[-1]
        assert list(command.joint_names) == parameters.ARM_JOINTS          # the arm's controller: its joints only
        assert command.points and all(np.all(np.isfinite(p.positions)) for p in command.points)

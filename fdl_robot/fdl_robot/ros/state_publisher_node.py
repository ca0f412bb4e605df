"""state_publisher_node: the robot's and the cameras' frames on /tf and /tf_static, as robot_state_publisher.

    ros2 run fdl_robot state_publisher_node --ros-args --params-file config/fdl_robot.yaml

What RViz, Foxglove and tf2 listeners expect (tf2_msgs/TFMessage, T_parent_child per
geometry_msgs/TransformStamped, header.frame_id = parent):

* ``/tf_static`` (reliable, transient local, keep last 1, as tf2's StaticTransformBroadcaster:
  a late subscriber still gets it), once at start: every fixed joint of the URDF
  (:meth:`~fdl_robot.core.robot_model.RobotModel.fixed_link_transforms`), the fixed camera
  ``base_frame -> static_camera_frame`` (``camera_xyz``, ``camera_quat_xyzw``) and the camera
  on the arm ``camera_mount_frame -> arm_camera_frame`` (``camera_mount_*``), the same
  extrinsics the localizer lifts with; '' for a camera frame leaves that camera out.
* ``/tf`` (reliable, volatile, keep last 100, as tf2's TransformBroadcaster): for every
  JointState, the transforms of the moving URDF joints it names (and of the joints that mimic
  them), stamped with the JointState's stamp
  (:meth:`~fdl_robot.core.robot_model.RobotModel.link_transforms`), like robot_state_publisher;
  several publishers (arm, gripper) each move their own joints. A name that is not a URDF
  joint is ignored, except ``gripper_joint``: its native position becomes the closure c
  (``gripper_open_position`` .. ``gripper_closed_position``) and drives ``gripper_urdf_joint``
  to lower + c (upper - lower) of that joint's URDF limits (the simulated gripper's fingers).
* ``robot_description`` (std_msgs/String, reliable, transient local): the URDF text, as
  robot_state_publisher publishes it, for RViz's RobotModel display.

A malformed JointState (names and positions of different lengths, a non-finite position of a
used joint) is counted and warned about, and publishes nothing.

On a real camera driver that publishes its own frames (realsense-ros: ``camera_link -> ...
-> camera_color_optical_frame``) set ``static_camera_frame`` to '' and publish the hand-eye
calibration to the driver's root frame instead: tf2 allows one parent per frame.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from fdl_robot.core.geometry import Transform
from fdl_robot.core.gripper import GripperScale
from fdl_robot.core.robot_model import RobotModel
from fdl_robot.ros.base import FdlNode
from fdl_robot.ros.conversions import transform_to_msg

#: tf2_ros StaticTransformBroadcaster's QoS (and robot_state_publisher's robot_description).
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: tf2_ros TransformBroadcaster's QoS (DynamicBroadcasterQoS).
TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)


def moving_joints(urdf_xml: str) -> dict[str, dict]:
    """{joint: {"child", "lower", "upper", "mimic"}} of the URDF's non-fixed joints."""
    joints = {}
    for j in ET.fromstring(urdf_xml).iter("joint"):
        if j.get("type") == "fixed":
            continue
        limit, mimic = j.find("limit"), j.find("mimic")
        joints[j.get("name")] = {
            "child": j.find("child").get("link"),
            "lower": float(limit.get("lower", 0.0)) if limit is not None else 0.0,
            "upper": float(limit.get("upper", 0.0)) if limit is not None else 0.0,
            "mimic": mimic.get("joint") if mimic is not None else None}
    return joints


class StatePublisherNode(FdlNode):
    def __init__(self, **kwargs):
        super().__init__("state_publisher_node", **kwargs)
        p = self.params
        from fdl_robot.description import UR5E_URDF

        self.urdf_xml = Path(p["urdf_path"] or UR5E_URDF).read_text()
        # any link at the arm's end splits q into the arm's joints and the others; link_transforms covers the tree
        self.model = RobotModel.from_urdf(self.urdf_xml, base_frame=p["base_frame"],
                                          tool_frame=p["camera_mount_frame"])
        self.joints = moving_joints(self.urdf_xml)
        self.gripper_joint, self.gripper_urdf_joint = p["gripper_joint"], p["gripper_urdf_joint"]
        if self.gripper_urdf_joint and self.gripper_urdf_joint not in self.joints:
            raise ValueError(f"state_publisher_node: gripper_urdf_joint '{self.gripper_urdf_joint}' is not a moving "
                             f"joint of the URDF; those are {sorted(self.joints)}")
        self.gripper = GripperScale(p["gripper_open_position"], p["gripper_closed_position"])
        self.arm_index = {n: i for i, n in enumerate(self.model.joint_names)}
        self.q_arm = np.zeros(self.model.n_joints)         # the latest position of each arm joint
        self.other: dict[str, float] = {}                  # and of the other URDF joints (fingers)

        self.tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED_QOS)
        self.description_pub = self.create_publisher(String, p["robot_description_topic"], LATCHED_QOS)
        self.description_pub.publish(String(data=self.urdf_xml))
        static = self.static_transforms()
        self.static_pub.publish(TFMessage(transforms=static))
        topics = sorted({p["joint_states_topic"], p["gripper_joint_states_topic"]})
        for topic in topics:
            self.create_subscription(JointState, topic, self.on_joint_state, 10)
        self.get_logger().info(f"/tf_static: {len(static)} frames; /tf: {len(self.joints)} moving joints from "
                               f"{', '.join(topics)}; robot_description: {self.model!r}")

    def static_transforms(self) -> list:
        """The URDF's fixed joints and the cameras' extrinsics, stamped now (as tf2 does)."""
        p, stamp = self.params, self.get_clock().now().to_msg()
        edges = [(parent, child, Transform.from_matrix(T)) for parent, child, T in self.model.fixed_link_transforms()]
        if p["static_camera_frame"]:
            edges.append((p["base_frame"], p["static_camera_frame"],
                          Transform.from_quaternion(p["camera_quat_xyzw"], p["camera_xyz"])))
        if p["arm_camera_frame"]:
            edges.append((p["camera_mount_frame"], p["arm_camera_frame"],
                          Transform.from_quaternion(p["camera_mount_quat_xyzw"], p["camera_mount_xyz"])))
        return [transform_to_msg(T, stamp, parent, child) for parent, child, T in edges]

    def _positions(self, msg: JointState) -> dict[str, float]:
        """{URDF joint: position} of the joints ``msg`` names (the gripper mapped); ValueError if malformed."""
        if len(msg.name) != len(msg.position):
            raise ValueError(f"{len(msg.name)} names but {len(msg.position)} positions")
        out = {}
        for name, x in zip(msg.name, msg.position, strict=True):
            if name == self.gripper_joint and name not in self.joints and self.gripper_urdf_joint:
                j = self.joints[self.gripper_urdf_joint]
                c = float(self.gripper.to_closure(np.array([x]))[0])
                name, x = self.gripper_urdf_joint, j["lower"] + c * (j["upper"] - j["lower"])
            if name not in self.joints or self.joints[name]["mimic"] is not None:
                continue
            if not np.isfinite(x):
                raise ValueError(f"non-finite position for {name}")
            out[name] = float(x)
        return out

    def on_joint_state(self, msg: JointState) -> None:
        try:
            positions = self._positions(msg)
        except ValueError as exc:
            self.reject("bad joint_states", str(exc))
            return
        if not positions:
            return
        for name, x in positions.items():
            if name in self.arm_index:
                self.q_arm[self.arm_index[name]] = x
            else:
                self.other[name] = x
        moved = {self.joints[n]["child"] for n, j in self.joints.items()
                 if n in positions or j["mimic"] in positions}
        try:
            transforms = self.model.link_transforms(self.q_arm, self.other)
        except ValueError as exc:              # e.g. a continuous joint off the arm's chain
            self.reject("bad joint_states", str(exc))
            return
        self.tf_pub.publish(TFMessage(transforms=[
            transform_to_msg(Transform.from_matrix(T), msg.header.stamp, parent, child)
            for parent, child, T in transforms if child in moved]))
        self.counters["ok joint_states"] += 1


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(StatePublisherNode)(args)


if __name__ == "__main__":
    main()

"""localizer_node: detections + aligned depth + camera_info -> 3D objects in base_link.

    ros2 run fdl_robot localizer_node --ros-args --params-file config/fdl_robot.yaml

Detections and depth are matched by header stamp (both carry the colour image's stamp;
:class:`~fdl_robot.ros.sync.StampSynchronizer`); camera_info is calibration and the
latest valid one is used (its size must match the depth image). Stamp order
(:mod:`fdl_robot.core.timebase`): a frame up to 1 s older than the last published one is
rejected as out of order; one more than 1 s older starts a new time base (a bag played
again or with ``--loop``, a restarted simulator), logged once and counted ("new time
base"), and the synchroniser drops what it still held of the old time line. The math is in
:func:`fdl_robot.perception.lifting.lift_detections`. Output header: the source image
stamp and ``target_frame``. Bad input is counted and warned about, never published.
Detections while no depth image has ever arrived (a colour-only source) are reported once,
naming the depth topic, then only counted.

Transforms (``transform_source``, :mod:`fdl_robot.perception.extrinsics`): T_target_cam is
looked up at the image stamp, from fixed extrinsics, from the arm's joint states (a camera on
the arm: joint states on ``joint_states_topic`` fill a joint buffer, q is interpolated at the
stamp and put through the URDF's FK), or from tf2. A frame with no transform at its stamp
(before the buffer, past its newest sample by more than the tolerance, across a gap, an
unknown frame) is counted and warned about as "transform unavailable: <reason>" and dropped;
it is never lifted with the newest transform instead.

Each output carries ``view`` (CameraView.msg): the camera_info, the T_base_cam used for
the frame and the depth range, so that the tracker knows what the camera could see.
"""
from __future__ import annotations

import numpy as np
from fdl_robot_interfaces.msg import Detection2DArray, Object3D, Object3DArray
from sensor_msgs.msg import CameraInfo, Image, JointState

from fdl_robot.core.geometry import Transform
from fdl_robot.core.timebase import StampOrder, classify_stamp
from fdl_robot.perception.extrinsics import (ArmCameraExtrinsics, StaticExtrinsics, Tf2Extrinsics,
                                             TransformUnavailable)
from fdl_robot.perception.lifting import LiftingConfig, lift_detections
from fdl_robot.ros import parameters
from fdl_robot.ros.base import NEW_TIME_BASE, RELIABLE_QOS, FdlNode
from fdl_robot.ros.conversions import (InvalidInput, camera_info_to_camera, camera_view_to_msg,
                                       detections_from_msg, image_to_depth_m, stamp_to_ns)
from fdl_robot.ros.sync import StampSynchronizer


class LocalizerNode(FdlNode):
    def __init__(self, **kwargs):
        super().__init__("localizer_node", **kwargs)
        p = self.params
        self.extrinsics = self.transform_source()
        self.config = parameters.build_config("localizer_node", LiftingConfig, p)
        self.camera = None
        self.last_stamp_ns: int | None = None   # stamp of the last published frame
        self.depth_received = False              # has any depth image arrived since start?
        self.sync = StampSynchronizer(2, round(p["sync_tolerance_s"] * 1e9), p["sync_queue_size"],
                                      on_drop=self.on_unmatched, on_new_base=self.on_sync_new_base)
        self.pub = self.create_publisher(Object3DArray, p["objects_topic"], RELIABLE_QOS)
        self.create_subscription(CameraInfo, p["camera_info_topic"], self.on_camera_info, RELIABLE_QOS)
        self.create_subscription(Detection2DArray, p["detections_topic"],
                                 lambda m: self.on_input(0, m), RELIABLE_QOS)
        self.depth_sub = self.create_subscription(Image, p["depth_topic"], lambda m: self.on_input(1, m),
                                                  self.image_qos())

    def transform_source(self):
        """The T_target_cam source that ``transform_source`` names (perception.extrinsics)."""
        p, kind = self.params, self.params["transform_source"]
        if kind == "fixed":
            return StaticExtrinsics(p["target_frame"], None, p["camera_xyz"], p["camera_quat_xyzw"])
        if kind == "tf":
            return Tf2Extrinsics(self, cache_time_s=p["transform_history_s"])
        if kind != "arm":
            raise ValueError(f"localizer_node: transform_source must be 'fixed', 'arm' or 'tf', got '{kind}'")
        from fdl_robot.core.robot_model import RobotModel
        from fdl_robot.description import UR5E_URDF

        model = RobotModel.from_urdf(p["urdf_path"] or UR5E_URDF, base_frame=p["target_frame"],
                                     tool_frame=p["camera_mount_frame"])
        T_mount_cam = Transform.from_quaternion(p["camera_mount_quat_xyzw"], p["camera_mount_xyz"])
        source = ArmCameraExtrinsics.from_model(
            model, p["camera_mount_frame"], T_mount_cam, history_s=p["transform_history_s"],
            tolerance_s=p["transform_tolerance_s"], max_gap_s=p["transform_max_gap_s"] or None)
        self.create_subscription(JointState, p["joint_states_topic"], self.on_joint_state, RELIABLE_QOS)
        self.get_logger().info(f"camera on the arm: {p['target_frame']} -> {p['camera_mount_frame']} through "
                               f"joints {list(model.joint_names)}, at each image stamp")
        return source

    def on_joint_state(self, msg: JointState) -> None:
        """A joint state into the arm source's buffer (transform_source 'arm')."""
        try:
            orders = self.extrinsics.add_joint_state(msg.name, msg.position, stamp_to_ns(msg.header.stamp))
        except ValueError as exc:
            self.reject("bad joint_states", str(exc))
            return
        if StampOrder.OUT_OF_ORDER in orders.values():
            self.reject("joint_states out of order", f"stamp {stamp_to_ns(msg.header.stamp)} ns")
        if StampOrder.NEW_BASE in orders.values():
            self.get_logger().info("joint state stamps jumped back: the joint buffer starts over")

    def on_unmatched(self, index: int, _stamp_ns: int) -> None:
        """A message the synchroniser dropped. Detections while no depth image has ever
        arrived mean a source without depth (a colour-only camera): said once, then counted."""
        if index == 0 and not self.depth_received:
            self.counters["detections without depth"] += 1
            if self.counters["detections without depth"] == 1:
                self.get_logger().error(
                    f"no depth image on {self.depth_sub.topic_name} (detections keep arriving): objects need "
                    "aligned depth, which a colour-only source such as camera_node source:=video does not "
                    "publish; detections are dropped until depth arrives")
            return
        self.reject("unmatched " + ("detections" if index == 0 else "depth"))

    def on_sync_new_base(self, _index: int, _stamp_ns: int, discarded: int) -> None:
        """An input's stamps jumped back: the queued messages of the old time line are gone."""
        if discarded:
            self.counters["stale after time jump"] += discarded

    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.camera = camera_info_to_camera(msg)
        except InvalidInput as exc:
            self.reject("bad camera_info", str(exc))

    def on_input(self, index: int, msg) -> None:
        self.depth_received = self.depth_received or index == 1
        matched = self.sync.add(index, stamp_to_ns(msg.header.stamp), msg)
        if matched is not None:
            self.localize(*matched)

    def localize(self, det_msg: Detection2DArray, depth_msg: Image) -> None:
        stamp_ns = stamp_to_ns(det_msg.header.stamp)
        order = classify_stamp(stamp_ns, self.last_stamp_ns)
        if order is StampOrder.OUT_OF_ORDER:
            self.reject("out-of-order stamp", f"{stamp_ns} after {self.last_stamp_ns} ns")
            return
        if order is StampOrder.NEW_BASE:          # a bag played again, a restarted simulator
            self.get_logger().info(f"time jumped back {(self.last_stamp_ns - stamp_ns) * 1e-9:.3f} s: "
                                   "a new time base")
            self.counters[NEW_TIME_BASE] += 1
        if self.camera is None:
            self.reject("missing camera_info", "no valid CameraInfo received yet")
            return
        try:
            det = detections_from_msg(det_msg)
            depth = image_to_depth_m(depth_msg, self.params["depth_scale_m"])
            if (det_msg.image_width, det_msg.image_height) not in ((0, 0), (depth.shape[1], depth.shape[0])):
                raise InvalidInput(f"detections are for a {det_msg.image_width}x{det_msg.image_height}"
                                   f" image but depth is {depth.shape[1]}x{depth.shape[0]}")
            T_base_cam = self.extrinsics.lookup(self.params["target_frame"], depth_msg.header.frame_id, stamp_ns)
            objects = lift_detections(det.boxes_xyxy, depth, self.camera, T_base_cam, self.config)
        except TransformUnavailable as exc:
            self.reject("transform unavailable", exc.reason)
            return
        except (InvalidInput, ValueError, LookupError) as exc:
            self.reject("bad input", str(exc))
            return
        if len(objects.invalid):
            self.reject("no valid depth", f"{len(objects.invalid)} of {len(det)} boxes")
        self.last_stamp_ns = stamp_ns
        out = Object3DArray()
        out.header.stamp = det_msg.header.stamp
        out.header.frame_id = self.params["target_frame"]
        out.view = camera_view_to_msg(self.camera, T_base_cam, depth_msg.header.frame_id,
                                      self.config.min_depth_m, self.config.max_depth_m)
        for row, i in enumerate(objects.index):
            d = det_msg.detections[i]
            o = Object3D(class_id=d.class_id, class_name=d.class_name, score=d.score, detection=d,
                         depth_m=float(objects.depth_m[row]))
            o.position.x, o.position.y, o.position.z = (float(v) for v in objects.p_base[row])
            o.size.x, o.size.y, o.size.z = (float(v) for v in objects.size_m[row])
            o.position_covariance = objects.covariance_base[row].reshape(-1).astype(np.float64)
            out.objects.append(o)
        self.counters["ok frames"] += 1
        self.pub.publish(out)


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(LocalizerNode)(args)


if __name__ == "__main__":
    main()

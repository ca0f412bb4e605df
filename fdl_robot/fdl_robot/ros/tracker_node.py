"""tracker_node: 3D objects -> tracks (constant-velocity Kalman + Hungarian) and RViz markers.

    ros2 run fdl_robot tracker_node --ros-args --params-file config/fdl_robot.yaml

dt comes from the source image stamps carried in the Object3DArray headers; a stamp up
to 1 s older than the last one (out of order) or a change of frame is rejected (counted,
warned, not published). A stamp more than 1 s older is a new time base (a bag played
again or with ``--loop``, a restarted simulator; :mod:`fdl_robot.core.timebase`): the
tracker starts over as after ``~/reset``, logs it once and counts it ("new time base").
Every input array, also an empty one, advances the tracker so that unmatched tracks age
and die, except those its ``view`` says the camera could not see (outside the image shrunk by
``view_margin_px`` and the image radius of ``view_object_radius_m``, or out of its depth
range: :mod:`fdl_robot.core.visibility`): they are
predicted but not aged, so several cameras, or one that moves, can feed one tracker. A
``view`` of width 0 (a producer that does not fill it in) or ``use_camera_view: false``: every
track counts as seen by every update. Service ``~/reset`` (std_srvs/Trigger) forgets all tracks.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from fdl_robot_interfaces.msg import Object3DArray, Track, TrackArray
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from fdl_robot.core.tracking import MultiObjectTracker, OutOfOrderStamp, TrackerConfig, TrackState
from fdl_robot.ros import parameters
from fdl_robot.ros.base import NEW_TIME_BASE, RELIABLE_QOS, FdlNode
from fdl_robot.ros.conversions import InvalidInput, camera_view_from_msg, stamp_to_s


class TrackerNode(FdlNode):
    def __init__(self, **kwargs):
        super().__init__("tracker_node", **kwargs)
        p = self.params
        self.tracker = MultiObjectTracker(parameters.build_config("tracker_node", TrackerConfig, p))
        self.frame_id: str | None = None
        self.pub = self.create_publisher(TrackArray, p["tracks_topic"], RELIABLE_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, p["markers_topic"], RELIABLE_QOS)
        self.create_subscription(Object3DArray, p["objects_topic"], self.on_objects, RELIABLE_QOS)
        self.create_service(Trigger, "~/reset", self.on_reset)

    def on_reset(self, _request, response):
        self.tracker.reset()
        self.frame_id = None
        response.success, response.message = True, "tracker reset"
        return response

    def on_objects(self, msg: Object3DArray) -> None:
        if self.frame_id not in (None, msg.header.frame_id):
            self.reject("frame changed", f"'{msg.header.frame_id}' after '{self.frame_id}'; "
                        "call ~/reset to switch frames")
            return
        n = len(msg.objects)
        positions = np.array([[o.position.x, o.position.y, o.position.z] for o in msg.objects],
                             dtype=float).reshape(n, 3)
        covariances = np.array([o.position_covariance for o in msg.objects], dtype=float).reshape(n, 3, 3)
        unset = ~covariances.reshape(n, 9).any(axis=1)   # a producer without covariances: default R
        covariances[unset] = self.tracker.config.measurement_std_m ** 2 * np.eye(3)
        labels = [(o.class_id, o.class_name) for o in msg.objects]
        scores = np.array([o.score for o in msg.objects], dtype=float)
        try:
            view = camera_view_from_msg(msg.view) if self.params["use_camera_view"] else None
        except InvalidInput as exc:
            self.reject("bad view", str(exc))
            return
        observable = None if view is None else partial(view.sees, margin_px=self.params["view_margin_px"],
                                                       radius_m=self.params["view_object_radius_m"])
        try:
            tracks = self.tracker.update(positions, stamp_to_s(msg.header.stamp), labels=labels,
                                         scores=scores, covariances=covariances, observable=observable)
        except OutOfOrderStamp as exc:
            self.reject("out-of-order stamp", str(exc))
            return
        except ValueError as exc:                  # bad shapes, covariances
            self.reject("bad objects", str(exc))
            return
        if self.tracker.last_time_jump_s is not None:
            self.counters[NEW_TIME_BASE] += 1
            self.get_logger().info(f"time jumped back {self.tracker.last_time_jump_s:.3f} s: a new time "
                                   "base; tracks forgotten, ids restart at 1")
        if self.tracker.last_num_dropped:
            self.reject("non-finite object", f"{self.tracker.last_num_dropped} dropped")
        self.frame_id = msg.header.frame_id
        if not self.params["publish_tentative"]:
            tracks = [t for t in tracks if t.state != TrackState.TENTATIVE]
        self.counters["ok frames"] += 1
        self.pub.publish(self.to_msg(tracks, msg.header))
        self.marker_pub.publish(self.to_markers(tracks, msg.header))

    @staticmethod
    def to_msg(tracks, header) -> TrackArray:
        out = TrackArray(header=header)
        for t in tracks:
            class_id, class_name = t.label if t.label is not None else (-1, "")
            m = Track(id=t.id, state=int(t.state), class_id=int(class_id), class_name=class_name,
                      score=float(t.score or 0.0), hits=t.hits, age_s=t.age_s,
                      time_since_update_s=t.time_since_update_s)
            m.position.x, m.position.y, m.position.z = (float(v) for v in t.position)
            m.velocity.x, m.velocity.y, m.velocity.z = (float(v) for v in t.velocity)
            P = np.asarray(t.state_covariance, dtype=np.float64)
            m.position_covariance = P[:3, :3].reshape(-1)
            m.velocity_covariance = P[3:, 3:].reshape(-1)
            m.position_velocity_covariance = P[:3, 3:].reshape(-1)
            out.tracks.append(m)
        return out

    @staticmethod
    def to_markers(tracks, header) -> MarkerArray:
        """A sphere and an id label per track; DELETEALL first so dead tracks vanish."""
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        for t in tracks:
            sphere = Marker(header=header, ns="tracks", id=t.id, type=Marker.SPHERE, action=Marker.ADD)
            sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z = (
                float(v) for v in t.position)
            sphere.pose.orientation.w = 1.0
            sphere.scale.x = sphere.scale.y = sphere.scale.z = 0.05
            sphere.color.r, sphere.color.g, sphere.color.a = (
                (0.1, 0.9, 0.9) if t.state == TrackState.CONFIRMED else (0.9, 0.6, 0.5))
            text = Marker(header=header, ns="track_ids", id=t.id, type=Marker.TEXT_VIEW_FACING,
                          action=Marker.ADD, text=f"{t.id} {t.label[1] if t.label else ''}")
            text.pose.position.x, text.pose.position.y = sphere.pose.position.x, sphere.pose.position.y
            text.pose.position.z = sphere.pose.position.z + 0.05
            text.pose.orientation.w = 1.0
            text.scale.z = 0.03
            text.color.r = text.color.g = text.color.b = text.color.a = 1.0
            markers += [sphere, text]
        return MarkerArray(markers=markers)


def main(args=None) -> None:
    from fdl_robot.ros.runner import node_main

    node_main(TrackerNode)(args)


if __name__ == "__main__":
    main()

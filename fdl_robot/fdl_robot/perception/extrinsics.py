"""Where camera-to-robot transforms come from: fixed, a camera on the arm, or tf2.

A transform source answers ``lookup(target_frame, source_frame, stamp_ns) -> Transform``
with T_target_source (p_target = T.apply(p_source)) valid at ``stamp_ns``, the image's
capture stamp (integer nanoseconds), or raises :class:`TransformUnavailable` with a
one-line reason. It never answers with the latest transform instead: on a moving camera
that maps the image with the pose of another instant (at 0.5 m/s, 40 ms of processing
latency puts every object 2 cm off).

Sources
-------
:class:`StaticExtrinsics`
    one hand-eye calibration T_base_cam (xyz + quaternion x, y, z, w) of a rigidly mounted
    camera, the same at every stamp.
:class:`ArmCameraExtrinsics`
    a camera on the arm (eye-in-hand)::

        T_base_cam(t) = FK(q(t)) T_mount_cam

    with FK: q -> T_base_mount (4x4) the arm's forward kinematics to the link the camera is
    mounted on (``tool0``, the flange; :meth:`fdl_robot.core.robot_model.RobotModel.frame_pose`),
    T_mount_cam the hand-eye calibration of the mount, and q(t) interpolated at the stamp
    from a :class:`~fdl_robot.core.joint_buffer.JointBuffer` of joint states (per joint,
    linear between the two samples around t; rejected before the oldest sample, more than
    its tolerance past the newest, or across a gap larger than its ``max_gap_s``).
:class:`Tf2Extrinsics`
    tf2 on a real ROS 2 install: ``tf2_ros.Buffer.lookup_transform`` at the stamp with a
    zero timeout (tf2 interpolates between its samples and refuses to extrapolate), fed by
    a ``tf2_ros.TransformListener`` (``/tf``, ``/tf_static``). tf2_ros is not on PyPI; it
    is imported when this source is built, with a clear error where it is missing.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from fdl_robot.core.geometry import Transform
from fdl_robot.core.joint_buffer import JointBuffer
from fdl_robot.core.timebase import StampOrder
from fdl_robot.core.transform_buffer import StampUnavailable

__all__ = ["TransformUnavailable", "TransformSource", "StaticExtrinsics", "ArmCameraExtrinsics",
           "Tf2Extrinsics"]


class TransformUnavailable(StampUnavailable):
    """No transform at the stamp; ``reason`` is the one-line explanation (a LookupError)."""


class TransformSource(Protocol):
    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> Transform:
        """T_target_source at ``stamp_ns``; raises :class:`TransformUnavailable`."""


def _check_frames(target_frame: str, source_frame: str, own_target: str, own_source: str | None) -> None:
    if target_frame != own_target:
        raise TransformUnavailable(f"no transform to '{target_frame}' (only to '{own_target}')")
    if own_source is not None and source_frame != own_source:
        raise TransformUnavailable(f"no transform from '{source_frame}' (only from '{own_source}')")


class StaticExtrinsics:
    """A fixed T_target_source, e.g. T_base_cam of a calibrated, rigidly mounted camera.

    ``source_frame`` None accepts any source frame name.
    """

    def __init__(self, target_frame: str, source_frame: str | None, xyz, quat_xyzw):
        self.target_frame = target_frame
        self.source_frame = source_frame
        self.T_target_source = Transform.from_quaternion(quat_xyzw, xyz)

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> Transform:
        _check_frames(target_frame, source_frame, self.target_frame, self.source_frame)
        return self.T_target_source


class ArmCameraExtrinsics:
    """T_base_cam(t) = FK(q(t)) T_mount_cam of a camera on the arm (module doc).

    ``fk``: q (n,) -> T_base_mount (4, 4), e.g. ``lambda q: model.frame_pose(q, "tool0")``;
    ``joints``: the buffer q(t) is read from (its ``joint_names`` are FK's order), fed with
    :meth:`add_joint_state`; ``T_mount_cam``: the camera's optical frame in the mount frame.
    ``source_frame`` None accepts any camera frame name.
    """

    def __init__(self, fk: Callable[[np.ndarray], np.ndarray], joints: JointBuffer, T_mount_cam: Transform,
                 base_frame: str = "base_link", source_frame: str | None = None):
        self.fk = fk
        self.joints = joints
        self.T_mount_cam = T_mount_cam
        self.target_frame = base_frame
        self.source_frame = source_frame

    @classmethod
    def from_model(cls, model: Any, mount_frame: str, T_mount_cam: Transform, source_frame: str | None = None,
                   **buffer_args) -> "ArmCameraExtrinsics":
        """On a :class:`~fdl_robot.core.robot_model.RobotModel`: FK to ``mount_frame``, a joint
        buffer of the model's arm joints (``buffer_args``: JointBuffer's history_s,
        tolerance_s, max_gap_s)."""
        model.frame_pose(np.zeros(model.n_joints), mount_frame)      # an unknown frame fails here
        return cls(lambda q: model.frame_pose(q, mount_frame), JointBuffer(model.joint_names, **buffer_args),
                   T_mount_cam, model.base_frame, source_frame)

    def add_joint_state(self, names: Sequence[str], positions: Sequence[float], stamp_ns: int
                        ) -> dict[str, StampOrder]:
        """One JointState into the buffer (:meth:`JointBuffer.add`; ValueError if malformed)."""
        return self.joints.add(names, positions, stamp_ns)

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> Transform:
        _check_frames(target_frame, source_frame, self.target_frame, self.source_frame)
        try:
            q = self.joints.positions_at(stamp_ns)
        except StampUnavailable as exc:
            raise TransformUnavailable(exc.reason) from None
        return Transform.from_matrix(self.fk(q)) @ self.T_mount_cam


def import_tf2_ros():
    """The tf2_ros module, or ImportError saying where to get it."""
    try:
        import tf2_ros
    except ImportError as exc:
        raise ImportError(
            "transform_source 'tf' needs tf2_ros, which is not on PyPI: use a ROS 2 install "
            "(apt install ros-$ROS_DISTRO-tf2-ros, then source /opt/ros/$ROS_DISTRO/setup.bash), "
            f"or transform_source 'fixed' / 'arm' ({exc})") from None
    return tf2_ros


class Tf2Extrinsics:
    """tf2 lookups at the stamp, zero timeout, on an rclpy ``node`` (module doc).

    ``cache_time_s``: how much history the tf2 buffer keeps (tf2's default is 10 s).
    """

    def __init__(self, node, cache_time_s: float = 10.0):
        tf2_ros = import_tf2_ros()
        from rclpy.duration import Duration

        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer(cache_time=Duration(nanoseconds=round(cache_time_s * 1e9)))
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int) -> Transform:
        from rclpy.duration import Duration
        from rclpy.time import Time

        from fdl_robot.ros.conversions import transform_from_msg

        try:
            msg = self.buffer.lookup_transform(target_frame, source_frame, Time(nanoseconds=int(stamp_ns)),
                                               timeout=Duration(nanoseconds=0))
        except self._tf2.TransformException as exc:
            raise TransformUnavailable(" ".join(str(exc).split()) or type(exc).__name__) from None
        return transform_from_msg(msg)

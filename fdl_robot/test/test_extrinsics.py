"""Transform sources (perception.extrinsics): fixed, a camera on the arm, tf2.

The arm source is checked against forward kinematics written independently (the UR5e DH
table; for a Franka Panda from example-robot-data, Franka's modified DH table), at stamps
between joint states, and for its rejections. tf2_ros is not on PyPI: Tf2Extrinsics is
checked against a stand-in module with tf2_ros's names (what it calls, what it converts),
and for its error where tf2_ros is missing.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from test_robot_model import example_robot_urdf, franka_modified_dh_fk

from fdl_robot.core.geometry import Transform
from fdl_robot.core.joint_buffer import JointBuffer
from fdl_robot.core.kinematics import forward_kinematics
from fdl_robot.core.robot_model import RobotModel, ur5e_gripper
from fdl_robot.perception.extrinsics import (ArmCameraExtrinsics, StaticExtrinsics, Tf2Extrinsics,
                                             TransformUnavailable, import_tf2_ros)

MS = 1_000_000
T_MOUNT_CAM = Transform.from_rpy(0.1, -0.2, 1.4, t=(0.05, 0.0, 0.03))


def test_static_extrinsics_answer_every_stamp_and_refuse_other_frames():
    src = StaticExtrinsics("base_link", "cam", [1.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0])
    for stamp in (0, 10**18):
        assert np.allclose(src.lookup("base_link", "cam", stamp).translation, [1.0, 0.0, 0.5])
    with pytest.raises(TransformUnavailable, match="no transform to 'world' \\(only to 'base_link'\\)"):
        src.lookup("world", "cam", 0)
    with pytest.raises(LookupError, match="no transform from 'other'"):
        src.lookup("base_link", "other", 0)


def _feed(src, names, q_of_t, stamps_ns):
    for t in stamps_ns:
        src.add_joint_state(names, q_of_t(t), t)


def test_arm_camera_is_fk_at_the_interpolated_joints_times_the_mount():
    rng = np.random.default_rng(7)
    qa, qb = rng.uniform(-2, 2, 6), rng.uniform(-2, 2, 6)
    model = ur5e_gripper()
    src = ArmCameraExtrinsics.from_model(model, "tool0", T_MOUNT_CAM)
    names = list(model.joint_names)[::-1]                    # any order of names
    _feed(src, names, lambda t: (qa if t == 0 else qb)[::-1], [0, 20 * MS])
    q_mid = 0.75 * qa + 0.25 * qb                             # 5 ms of 20
    dh = Transform.from_matrix(forward_kinematics(q_mid, tcp_offset_m=0.0)) @ T_MOUNT_CAM
    got = src.lookup("base_link", "wrist_camera_color_optical_frame", 5 * MS)
    np.testing.assert_allclose(got.as_matrix(), dh.as_matrix(), atol=1e-9)
    # the same with a plain FK callable (the DH table) instead of the URDF model
    plain = ArmCameraExtrinsics(lambda q: forward_kinematics(q, tcp_offset_m=0.0), JointBuffer(model.joint_names),
                                T_MOUNT_CAM)
    _feed(plain, model.joint_names, lambda t: qa if t == 0 else qb, [0, 20 * MS])
    np.testing.assert_allclose(plain.lookup("base_link", "cam", 5 * MS).as_matrix(), dh.as_matrix(), atol=1e-9)


def test_arm_camera_rejections_carry_the_reason():
    model = ur5e_gripper()
    src = ArmCameraExtrinsics.from_model(model, "tool0", T_MOUNT_CAM, tolerance_s=0.002, max_gap_s=0.05)
    with pytest.raises(TransformUnavailable, match="joint shoulder_pan_joint: no samples yet"):
        src.lookup("base_link", "cam", 0)
    _feed(src, model.joint_names, lambda t: np.zeros(6), [0, 10 * MS, 100 * MS])
    with pytest.raises(TransformUnavailable, match="stamp 3.0 ms past the newest sample"):
        src.lookup("base_link", "cam", 103 * MS)
    with pytest.raises(TransformUnavailable, match="90.0 ms apart"):
        src.lookup("base_link", "cam", 50 * MS)
    with pytest.raises(TransformUnavailable, match="before the oldest"):
        src.lookup("base_link", "cam", -1)
    with pytest.raises(TransformUnavailable, match="no transform to 'world'"):
        src.lookup("world", "cam", 5 * MS)
    # a joint missing from the stream (another robot's names): no transform, not a guess
    partial = ArmCameraExtrinsics.from_model(model, "tool0", T_MOUNT_CAM)
    _feed(partial, model.joint_names[:5], lambda t: np.zeros(5), [0, 10 * MS])
    with pytest.raises(TransformUnavailable, match="joint wrist_3_joint: no samples yet"):
        partial.lookup("base_link", "cam", 5 * MS)
    with pytest.raises(ValueError, match="no link 'camera_plate'"):
        ArmCameraExtrinsics.from_model(model, "camera_plate", T_MOUNT_CAM)


def test_a_camera_on_another_arm_a_franka_panda():
    """What a user with another arm changes: the URDF, its base and mount frames."""
    panda = RobotModel.from_urdf(example_robot_urdf("panda_description/urdf/panda.urdf"),
                                 base_frame="panda_link0", tool_frame="panda_link8")
    src = ArmCameraExtrinsics.from_model(panda, "panda_link8", T_MOUNT_CAM)
    rng = np.random.default_rng(1)
    lim = panda.position_limits
    qs = rng.uniform(lim[:, 0], lim[:, 1], (2, 7))
    _feed(src, panda.joint_names, lambda t: qs[t // (10 * MS)], [0, 10 * MS])
    q = 0.4 * qs[0] + 0.6 * qs[1]
    expected = Transform.from_matrix(franka_modified_dh_fk(q)) @ T_MOUNT_CAM
    np.testing.assert_allclose(src.lookup("panda_link0", "cam", 6 * MS).as_matrix(), expected.as_matrix(), atol=1e-9)


# --- tf2 ----------------------------------------------------------------------------------

class _StandInTf2:
    """A module with tf2_ros's names: Buffer records its lookups and answers from a table."""

    class TransformException(Exception):
        pass

    class ExtrapolationException(TransformException):
        pass

    def __init__(self, transforms):
        outer = self
        self.calls: list = []

        class Buffer:
            def __init__(self, cache_time=None):
                outer.cache_time = cache_time

            def lookup_transform(self, target, source, time, timeout=None):
                outer.calls.append((target, source, time.nanoseconds, timeout.nanoseconds))
                if (target, source) not in transforms:
                    raise outer.ExtrapolationException(
                        "Lookup would require extrapolation into the future.\n Requested time 1.5")
                return transforms[(target, source)]

        class TransformListener:
            def __init__(self, buffer, node):
                outer.listener_args = (buffer, node)

        self.module = types.ModuleType("tf2_ros")
        self.module.Buffer, self.module.TransformListener = Buffer, TransformListener
        self.module.TransformException = self.TransformException


def test_tf2_source_looks_up_at_the_stamp_with_zero_timeout(monkeypatch):
    pytest.importorskip("rclpy")
    from fdl_robot.ros.conversions import ns_to_stamp, transform_to_msg

    T = Transform.from_rpy(0.3, 0.2, -1.0, t=(0.4, -0.1, 0.7))
    tf2 = _StandInTf2({("base_link", "cam"): transform_to_msg(T, ns_to_stamp(5), "base_link", "cam")})
    monkeypatch.setitem(sys.modules, "tf2_ros", tf2.module)
    node = object()
    src = Tf2Extrinsics(node, cache_time_s=4.0)
    assert tf2.cache_time.nanoseconds == 4_000_000_000 and tf2.listener_args[1] is node
    got = src.lookup("base_link", "cam", 1_234_567_890)
    np.testing.assert_allclose(got.as_matrix(), T.as_matrix(), atol=1e-12)
    assert tf2.calls == [("base_link", "cam", 1_234_567_890, 0)]
    with pytest.raises(TransformUnavailable, match="^Lookup would require extrapolation into the future. "
                                                   "Requested time 1.5$"):
        src.lookup("base_link", "other", 0)


def test_tf2_source_without_tf2_ros_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2_ros", None)          # import tf2_ros -> ImportError
    with pytest.raises(ImportError, match="needs tf2_ros, which is not on PyPI: use a ROS 2 install"):
        import_tf2_ros()
    with pytest.raises(ImportError, match="tf2_ros"):
        Tf2Extrinsics(object())


def test_the_default_camera_mount_is_the_simulated_wrist_cameras_nominal_mount():
    """localizer_node / state_publisher_node's camera_mount_* defaults = the sim's wrist camera on tool0."""
    from fdl_robot.ros import parameters
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

    env = PickPlaceEnv(PickPlaceConfig(preload_torchvision=False))
    try:
        if hasattr(env, "T_flange_cam_nominal"):
            nominal = env.T_flange_cam_nominal
            nominal = nominal() if callable(nominal) else nominal
        else:
            q = env.observation()["qpos"][:6]
            nominal = (Transform.from_matrix(ur5e_gripper().frame_pose(q, "tool0")).inverse()
                       @ env.camera_extrinsics("wrist_cam"))
    finally:
        env.close()
    for node in ("localizer_node", "state_publisher_node"):
        d = parameters.defaults(node)
        assert d["camera_mount_frame"] == "tool0"
        T = Transform.from_quaternion(d["camera_mount_quat_xyzw"], d["camera_mount_xyz"])
        np.testing.assert_allclose(T.as_matrix(), nominal.as_matrix(), atol=1e-5)

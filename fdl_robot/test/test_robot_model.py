"""core.robot_model: the URDF of the simulated UR5e against the DH reference and the MJCF; another arm."""
from __future__ import annotations

import importlib.metadata
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from fdl_robot.core import kinematics as kin
from fdl_robot.core.kinematics import rotation_log
from fdl_robot.core.robot import ARM_JOINT_NAMES
from fdl_robot.core.robot_model import RobotModel, ur5e_gripper
from fdl_robot.description import UR5E_URDF

RNG = np.random.default_rng(15)


@pytest.fixture(scope="module")
def ur5e() -> RobotModel:
    return ur5e_gripper()


def rotation_error_rad(R_a: np.ndarray, R_b: np.ndarray) -> float:
    return float(np.linalg.norm(rotation_log(R_a @ R_b.T)))


def assert_poses_equal(T_a: np.ndarray, T_b: np.ndarray, atol_m: float = 1e-6, atol_rad: float = 1e-6) -> None:
    for a, b in zip(T_a.reshape(-1, 4, 4), T_b.reshape(-1, 4, 4), strict=True):
        np.testing.assert_allclose(a[:3, 3], b[:3, 3], rtol=0, atol=atol_m)
        assert rotation_error_rad(a[:3, :3], b[:3, :3]) < atol_rad
        np.testing.assert_array_equal(a[3], [0, 0, 0, 1])


def finite_difference_jacobian(model, q: np.ndarray, frame: str, eps: float = 1e-6) -> np.ndarray:
    """[v; omega] columns from central differences of frame_pose: dp/dq_i and vee(dR/dq_i R^T)."""
    R = model.frame_pose(q, frame)[:3, :3]
    J = np.zeros((6, len(q)))
    for i in range(len(q)):
        dq = np.zeros(len(q))
        dq[i] = eps
        Tp, Tm = model.frame_pose(q + dq, frame), model.frame_pose(q - dq, frame)
        J[:3, i] = (Tp[:3, 3] - Tm[:3, 3]) / (2 * eps)
        W = (Tp[:3, :3] - Tm[:3, :3]) / (2 * eps) @ R.T
        J[3:, i] = [W[2, 1], W[0, 2], W[1, 0]]
    return J


# ------------------------------------------------------------------ the simulated UR5e

def test_urdf_names_the_stack_joints_and_frames(ur5e):
    assert ur5e.joint_names == ARM_JOINT_NAMES
    assert (ur5e.base_frame, ur5e.tool_frame) == ("base_link", "tool0")
    assert {"base_link", "base", "flange", "tool0", "tcp", "left_finger", "right_finger"} <= set(ur5e.frame_names)
    # the URDF's limits are the core's exactly (2 pi, pi written to 16 digits)
    np.testing.assert_array_equal(ur5e.position_limits, kin.UR5E_LIMITS_RAD)


def test_fk_equals_the_dh_reference_at_tool0_and_tcp(ur5e):
    """Batch and single q, over the whole joint range: 1e-6 m, 1e-6 rad (measured: ~1e-15)."""
    qs = RNG.uniform(kin.UR5E_LIMITS_RAD[:, 0], kin.UR5E_LIMITS_RAD[:, 1], size=(500, 6))
    for frame, offset in (("tool0", 0.0), ("tcp", kin.TCP_OFFSET_M)):
        T_urdf = ur5e.frame_pose(qs, frame)
        assert T_urdf.shape == (500, 4, 4)
        assert_poses_equal(T_urdf, kin.forward_kinematics(qs, tcp_offset_m=offset))
        assert_poses_equal(ur5e.frame_pose(qs[0], frame), kin.forward_kinematics(qs[0], tcp_offset_m=offset))
    np.testing.assert_array_equal(ur5e.frame_pose(qs[:3]), ur5e.frame_pose(qs[:3], "tool0"))   # default frame
    # home: TCP above the workspace, approach axis straight down
    T_home = ur5e.frame_pose(kin.HOME_QPOS_RAD, "tcp")
    np.testing.assert_allclose(T_home[:3, 3], [0.4919, 0.1333, 0.3529], atol=1e-4)
    np.testing.assert_allclose(T_home[:3, 2], [0, 0, -1], atol=1e-12)


def test_ros_industrial_end_frames(ur5e):
    """flange's x and tool0's z are the approach direction, both at tool0's origin; tcp 0.135 m along it."""
    for q in RNG.uniform(-3, 3, size=(5, 6)):
        flange, tool0, tcp = (ur5e.frame_pose(q, f) for f in ("flange", "tool0", "tcp"))
        np.testing.assert_allclose(flange[:3, 0], tool0[:3, 2], atol=1e-12)
        np.testing.assert_allclose(flange[:3, 3], tool0[:3, 3], atol=1e-12)
        np.testing.assert_allclose(tcp[:3, 3], tool0[:3, 3] + 0.135 * tool0[:3, 2], atol=1e-12)
        np.testing.assert_allclose(tcp[:3, :3], tool0[:3, :3], atol=1e-12)
    np.testing.assert_allclose(ur5e.frame_pose(np.zeros(6), "base"), np.eye(4), atol=1e-12)


def test_jacobian_equals_the_dh_reference_and_finite_differences(ur5e):
    for q in RNG.uniform(-3, 3, size=(10, 6)):
        J = ur5e.jacobian(q, "tcp")
        assert J.shape == (6, 6)
        np.testing.assert_allclose(J, kin.geometric_jacobian(q), atol=1e-9)
        np.testing.assert_allclose(J, finite_difference_jacobian(ur5e, q, "tcp"), atol=1e-7)
        np.testing.assert_allclose(ur5e.jacobian(q), finite_difference_jacobian(ur5e, q, "tool0"), atol=1e-7)
        # a frame inside the chain: the joints after it do not move it
        J3 = ur5e.jacobian(q, "forearm_link")
        np.testing.assert_allclose(J3[:, 3:], 0.0, atol=1e-15)
        np.testing.assert_allclose(J3, finite_difference_jacobian(ur5e, q, "forearm_link"), atol=1e-7)
    qs = RNG.uniform(-3, 3, size=(4, 6))
    np.testing.assert_allclose(ur5e.jacobian(qs, "tcp"), [ur5e.jacobian(q, "tcp") for q in qs], atol=1e-15)


def test_mujoco_bodies_and_tcp_site_are_at_the_urdf_frames(ur5e):
    """The simulator's ground truth: every arm body, tool0, the fingers and the tcp site."""
    mujoco = pytest.importorskip("mujoco")
    from fdl_robot.sim import scene

    model = scene.load_model()
    data = mujoco.MjData(model)
    arm = [model.joint(n).qposadr[0] for n in ARM_JOINT_NAMES]
    fingers = [model.joint(n).qposadr[0] for n in scene.FINGER_JOINT_NAMES]
    bodies = ("shoulder_link", "upper_arm_link", "forearm_link", "wrist_1_link", "wrist_2_link", "wrist_3_link",
              "tool0")

    def mujoco_pose(xpos, xmat):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = np.asarray(xmat).reshape(3, 3), xpos
        return T

    for q in RNG.uniform(-np.pi, np.pi, size=(20, 6)):
        closure_m = RNG.uniform(0, scene.GRIPPER_MAX_CLOSURE_M)
        data.qpos[arm], data.qpos[fingers] = q, closure_m
        mujoco.mj_kinematics(model, data)
        for name in bodies:
            b = model.body(name).id
            assert_poses_equal(mujoco_pose(data.xpos[b], data.xmat[b]), ur5e.frame_pose(q, name))
        site = model.site(scene.TCP_SITE).id
        assert_poses_equal(mujoco_pose(data.site_xpos[site], data.site_xmat[site]), ur5e.frame_pose(q, "tcp"))
        # fingers: tool0 . T_gripper_finger(closure) (link_transforms), right mimicking left
        edges = {child: T for _, child, T in ur5e.link_transforms(q, {"left_finger_joint": closure_m})}
        for finger in ("left_finger", "right_finger"):
            b = model.body(finger).id
            assert_poses_equal(mujoco_pose(data.xpos[b], data.xmat[b]), ur5e.frame_pose(q, "tool0") @ edges[finger])


def test_urdf_inertias_limits_and_axes_are_the_mjcf_ones():
    pytest.importorskip("mujoco")
    from fdl_robot.sim import scene

    model = scene.load_model()
    root = ET.parse(UR5E_URDF).getroot()
    mjcf_body = {"gripper_base_link": "tool0"}           # the MJCF's tool0 body carries the gripper
    links = [link for link in root.iter("link") if link.find("inertial") is not None]
    assert len(links) == 9
    for link in links:
        b = model.body(mjcf_body.get(link.get("name"), link.get("name"))).id
        inertial = link.find("inertial")
        assert float(inertial.find("mass").get("value")) == pytest.approx(model.body_mass[b], rel=1e-9)
        np.testing.assert_allclose([float(v) for v in inertial.find("origin").get("xyz").split()],
                                   model.body_ipos[b], atol=1e-12)
        inertia = inertial.find("inertia")
        np.testing.assert_allclose([float(inertia.get(k)) for k in ("ixx", "iyy", "izz")], model.body_inertia[b],
                                   rtol=1e-9)
        assert all(float(inertia.get(k)) == 0.0 for k in ("ixy", "ixz", "iyz"))
        np.testing.assert_allclose(model.body_iquat[b], [1, 0, 0, 0], atol=1e-12)     # principal axes = link axes
    for joint in root.iter("joint"):
        if joint.get("type") == "fixed":
            continue
        j = model.joint(joint.get("name")).id
        limit = joint.find("limit")
        # the MJCF states its ranges to 4 decimals
        np.testing.assert_allclose([float(limit.get("lower")), float(limit.get("upper"))], model.jnt_range[j],
                                   atol=5e-5)
        np.testing.assert_allclose([float(v) for v in joint.find("axis").get("xyz").split()], model.jnt_axis[j])
    for name, actuator in zip(ARM_JOINT_NAMES, scene.ARM_ACTUATOR_NAMES, strict=True):
        effort = float(root.find(f"joint[@name='{name}']/limit").get("effort"))
        assert effort == pytest.approx(model.actuator_forcerange[model.actuator(actuator).id][1])


def test_link_transforms_compose_to_the_fk(ur5e):
    """The /tf tree (moving + fixed edges) chains from base_link to every frame's frame_pose."""
    q = RNG.uniform(-3, 3, size=6)
    moving, fixed = ur5e.link_transforms(q), ur5e.fixed_link_transforms()
    assert [child for _, child, _ in moving] == ["shoulder_link", "upper_arm_link", "forearm_link", "wrist_1_link",
                                                  "wrist_2_link", "wrist_3_link", "left_finger", "right_finger"]
    assert {(p, c) for p, c, _ in fixed} == {("base_link", "base"), ("wrist_3_link", "flange"),
                                            ("flange", "tool0"), ("tool0", "gripper_base_link"), ("tool0", "tcp")}
    parent_of = {child: (parent, T) for parent, child, T in moving + fixed}
    for frame in ("wrist_2_link", "tool0", "tcp", "gripper_base_link", "left_finger"):
        T, link = np.eye(4), frame
        while link != "base_link":
            parent, T_parent_link = parent_of[link]
            T, link = T_parent_link @ T, parent
        np.testing.assert_allclose(T, ur5e.frame_pose(q, frame), atol=1e-12)
    # fixed edges do not depend on q; finger positions move only the fingers, in opposite directions
    edges = {c: T for _, c, T in ur5e.link_transforms(q, {"left_finger_joint": 0.02})}
    np.testing.assert_allclose(edges["left_finger"][:3, 3], [0, 0.0485 - 0.02, 0.066], atol=1e-12)
    np.testing.assert_allclose(edges["right_finger"][:3, 3], [0, -0.0485 + 0.02, 0.066], atol=1e-12)
    np.testing.assert_allclose(edges["wrist_3_link"], dict((c, T) for _, c, T in moving)["wrist_3_link"], atol=0)


def test_bad_inputs_raise_clear_errors(ur5e):
    with pytest.raises(ValueError, match="shape"):
        ur5e.frame_pose(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        ur5e.jacobian(np.full(6, np.nan))
    with pytest.raises(ValueError, match="no link 'nope'"):
        ur5e.frame_pose(np.zeros(6), "nope")
    with pytest.raises(ValueError, match="mimic|outside the arm"):
        ur5e.link_transforms(np.zeros(6), {"right_finger_joint": 0.01})     # it follows left_finger_joint
    with pytest.raises(ValueError, match="outside the arm"):
        ur5e.link_transforms(np.zeros(6), {"elbow_joint": 0.01})
    with pytest.raises(ValueError, match="one joint vector"):
        ur5e.link_transforms(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="missing"):
        RobotModel.from_urdf(UR5E_URDF, joint_names=ARM_JOINT_NAMES[:5])
    with pytest.raises(ValueError, match="moves with joint"):
        RobotModel.from_urdf(UR5E_URDF, base_frame="wrist_1_link")
    with pytest.raises(FileNotFoundError):
        RobotModel.from_urdf("/nonexistent/robot.urdf")
    with pytest.raises(ValueError, match="valid URDF"):
        RobotModel.from_urdf("<robot name='broken'><link name='a'/>")


def test_from_xml_text_and_a_joint_order_of_the_callers_choice(ur5e):
    """robot_description arrives as text; joint_states may list the joints in another order."""
    order = ARM_JOINT_NAMES[::-1]
    model = RobotModel.from_urdf(Path(UR5E_URDF).read_text(), tool_frame="tcp", joint_names=order)
    assert model.joint_names == order
    q = RNG.uniform(-3, 3, size=6)
    np.testing.assert_allclose(model.frame_pose(q[::-1]), ur5e.frame_pose(q, "tcp"), atol=1e-15)
    np.testing.assert_allclose(model.jacobian(q[::-1]), ur5e.jacobian(q, "tcp")[:, ::-1], atol=1e-15)


def test_copies_and_pickles_are_the_same_model(ur5e):
    """Rebuilt from the URDF text (a pickled pinocchio model with mimic joints crashes, pin 4.1.0)."""
    import copy
    import pickle

    q = RNG.uniform(-3, 3, size=6)
    for clone in (pickle.loads(pickle.dumps(ur5e)), copy.deepcopy(ur5e)):
        assert clone.joint_names == ur5e.joint_names and clone.tool_frame == ur5e.tool_frame
        np.testing.assert_array_equal(clone.frame_pose(q, "tcp"), ur5e.frame_pose(q, "tcp"))
        for (p1, c1, T1), (p2, c2, T2) in zip(clone.link_transforms(q, {"left_finger_joint": 0.01}),
                                              ur5e.link_transforms(q, {"left_finger_joint": 0.01}), strict=True):
            assert (p1, c1) == (p2, c2)
            np.testing.assert_array_equal(T1, T2)


def test_threads_share_a_model(ur5e):
    """Each thread has its own pinocchio workspace: concurrent calls give each their own answer."""
    qs = RNG.uniform(-3, 3, size=(4, 200, 6))
    expected = [ur5e.frame_pose(q, "tcp") for q in qs]
    results = [None] * len(qs)

    def work(i):
        results[i] = np.array([ur5e.frame_pose(q, "tcp") for q in qs[i]])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(qs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ another arm: Franka Panda

def example_robot_urdf(relative: str) -> Path:
    """A URDF of example-robot-data: inside its PyPI wheel (under cmeel.prefix/share), or its ROS package."""
    try:
        share = importlib.metadata.distribution("example-robot-data").locate_file(
            "cmeel.prefix/share/example-robot-data")
    except importlib.metadata.PackageNotFoundError:
        try:
            from ament_index_python.packages import get_package_share_directory
            share = get_package_share_directory("example-robot-data")
        except (ImportError, LookupError):              # ament's PackageNotFoundError is a KeyError
            pytest.skip("example-robot-data is not installed (requirements/requirements.txt pins it)")
    return Path(share) / "robots" / relative


def franka_modified_dh_fk(q: np.ndarray) -> np.ndarray:
    """T_link0_flange of the Panda from Franka's published modified (Craig) DH table.

    T = prod_i Rx(alpha_{i-1}) Tx(a_{i-1}) Rz(q_i) Tz(d_i), then the flange at d = 0.107.
    """
    a = [0, 0, 0, 0.0825, -0.0825, 0, 0.088, 0]
    d = [0.333, 0, 0.316, 0, 0.384, 0, 0, 0.107]
    alpha = [0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2, 0]
    T = np.eye(4)
    for i, theta in enumerate(np.append(q, 0.0)):
        ca, sa, ct, st = np.cos(alpha[i]), np.sin(alpha[i]), np.cos(theta), np.sin(theta)
        T = T @ np.array([[ct, -st, 0, a[i]], [st * ca, ct * ca, -sa, -d[i] * sa],
                          [st * sa, ct * sa, ca, d[i] * ca], [0, 0, 0, 1]])
    return T


@pytest.fixture(scope="module")
def panda() -> RobotModel:
    return RobotModel.from_urdf(example_robot_urdf("panda_description/urdf/panda.urdf"),
                                base_frame="panda_link0", tool_frame="panda_link8")


def test_panda_fk_equals_frankas_dh_table(panda):
    assert panda.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))   # the fingers are not arm joints
    lim = panda.position_limits
    assert lim.shape == (7, 2) and np.all(lim[:, 0] < lim[:, 1])
    for q in RNG.uniform(lim[:, 0], lim[:, 1], size=(50, 7)):
        assert_poses_equal(panda.frame_pose(q), franka_modified_dh_fk(q))
    # q = 0: the arm stands straight up, flange 0.088 m forward at 0.333 + 0.316 + 0.384 - 0.107 m
    np.testing.assert_allclose(panda.frame_pose(np.zeros(7)),
                               [[1, 0, 0, 0.088], [0, -1, 0, 0], [0, 0, -1, 0.926], [0, 0, 0, 1]], atol=1e-12)


def test_panda_jacobian_and_ik(panda):
    """A 7-dof arm through the same IK: its hand-TCP frame to a pose pointing down."""
    home = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])   # Franka's "ready" pose
    for q in home + RNG.uniform(-0.3, 0.3, size=(5, 7)):
        np.testing.assert_allclose(panda.jacobian(q, "panda_hand_tcp"),
                                   finite_difference_jacobian(panda, q, "panda_hand_tcp"), atol=1e-7)
    target = np.array([0.5, 0.1, 0.2])
    res = kin.solve_ik(target, kin.down_rotation(0.3), home, model=panda, frame="panda_hand_tcp")
    assert res.converged and res.q_rad.shape == (7,)
    T = panda.frame_pose(res.q_rad, "panda_hand_tcp")
    np.testing.assert_allclose(T[:3, 3], target, atol=1e-4)
    assert rotation_error_rad(T[:3, :3], kin.down_rotation(0.3)) < 1e-3
    assert np.all(res.q_rad >= panda.position_limits[:, 0]) and np.all(res.q_rad <= panda.position_limits[:, 1])

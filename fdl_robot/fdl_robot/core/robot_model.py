"""Kinematics of a serial arm read from its URDF (robot_description), through pinocchio.

The URDF is the one description of the robot: link frames, joint axes, limits. pinocchio
(``pin``) parses it and evaluates the kinematics in C++; this module states the frames and
the equations, fixes the order of the joint vector, and vectorises over batches.

Frames
------
``base_frame`` (default ``base_link``, REP-103: x forward, y left, z up, metres) is the frame
every pose and Jacobian is expressed in; it must be rigidly attached to the URDF's root (no
joint between them). ``tool_frame`` (default ``tool0``, ROS-Industrial: z = approach) is the
frame :meth:`RobotModel.frame_pose` and :meth:`RobotModel.jacobian` return when no other is
named; any link of the URDF (``tcp``, ``flange``, ``wrist_3_link``, ...) can be named.
``T_a_b`` maps points of frame b into frame a (:mod:`fdl_robot.core.geometry`).

Joint vector
------------
``q`` (n,) lists the arm joints -- the actuated joints on the path base_frame -> tool_frame --
in the order of ``joint_names`` (radians for revolute, metres for prismatic joints). Joints off
that path (a gripper's fingers) are held at 0 unless :meth:`RobotModel.link_transforms` is given
their positions; URDF ``<mimic>`` joints follow the joint they mimic.

Forward kinematics
------------------
A URDF joint j between parent link p(j) and child link c(j) places the child at::

    T_p_c(q_j) = M_j X_j(q_j)

where M_j is the joint's ``<origin xyz rpy>`` (T = Trans(xyz) Rz(yaw) Ry(pitch) Rx(roll)) and
X_j the joint motion about/along its unit ``<axis>`` u_j: a rotation exp(q_j [u_j]x) (revolute)
or a translation q_j u_j (prismatic); X_j = I for fixed joints. A link's pose is the product of
the joint placements from the root::

    T_root_link(q) = prod_{j on root -> link} M_j X_j(q_j),
    T_base_frame(q) = T_root_base^-1 T_root_frame(q)

Geometric Jacobian
------------------
The (6, n) Jacobian of a frame's origin o, in base axes (pinocchio's LOCAL_WORLD_ALIGNED
reference: the frame's origin, the base's axes), maps joint speeds to its linear and angular
velocity::

    [v_o; omega] = J(q) q_dot,
    J[:, j] = [u_j x (o - p_j); u_j]      revolute j (axis u_j through point p_j, base axes)
    J[:, j] = [u_j; 0]                     prismatic j
    J[:, j] = 0                            j not between the base and the frame

Cost (``benchmarks/bench_kinematics.py``, this 2-core machine): one pose ~20 us, one Jacobian
~30 us (1-2 us of it pinocchio's C++, the rest the Python call); a batch loops over pinocchio
calls at ~4 us per q (the DH chain's numpy broadcasting: ~4.5 us per q).
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pinocchio as pin

__all__ = ["RobotModel", "ur5e_gripper"]


class RobotModel:
    """Kinematics of a serial arm from its URDF, through pinocchio.

    Build with :meth:`from_urdf` (or from URDF text: ``RobotModel(xml, base_frame, tool_frame,
    joint_names)``). Immutable after construction: every method's result depends only on its
    arguments (each thread keeps its own pinocchio workspace); copies and pickles rebuild the
    model from the URDF text.
    """

    def __init__(self, urdf_xml: str, base_frame: str = "base_link", tool_frame: str = "tool0",
                 joint_names: Sequence[str] | None = None):
        self._init_args = (urdf_xml, base_frame, tool_frame, None if joint_names is None else tuple(joint_names))
        model = pin.buildModelFromXML(urdf_xml, mimic=True)
        self._model = model
        self.base_frame: str = base_frame
        self.tool_frame: str = tool_frame
        self._frame_ids = {f.name: i for i, f in enumerate(model.frames)
                           if f.type == pin.FrameType.BODY}
        base_id, tool_id = self._frame_id(base_frame), self._frame_id(tool_frame)
        if model.frames[base_id].parentJoint != 0:
            raise ValueError(f"base frame {base_frame!r} moves with joint "
                             f"{model.names[model.frames[base_id].parentJoint]!r}; it must be "
                             f"rigidly attached to the URDF's root")
        chain = [j for j in model.supports[model.frames[tool_id].parentJoint][1:]
                 if model.joints[j].nq > 0]                       # mimic joints have no q
        chain_names = tuple(model.names[j] for j in chain)
        if not chain:
            raise ValueError(f"no moving joint between {base_frame!r} and {tool_frame!r}")
        for j in chain:
            if model.joints[j].nv != 1:
                raise ValueError(f"joint {model.names[j]!r} ({model.joints[j].shortname()}) is not a "
                                 f"1-dof revolute, continuous or prismatic joint")
        names = chain_names if joint_names is None else tuple(joint_names)
        if sorted(names) != sorted(chain_names):
            missing = sorted(set(chain_names) - set(names))
            extra = sorted(set(names) - set(chain_names))
            raise ValueError(f"joint_names must be the joints between {base_frame!r} and {tool_frame!r} "
                             f"{chain_names} in any order; missing {missing}, not on the chain {extra}")
        #: The arm joints in the order of q.
        self.joint_names: tuple[str, ...] = names
        self._arm_joint_ids = [model.getJointId(n) for n in names]
        arm = [model.joints[j] for j in self._arm_joint_ids]
        self._idx_v = np.array([joint.idx_v for joint in arm])
        # where q_k goes in pinocchio's configuration: idx_q (nq = 1), or (cos, sin) at idx_q (continuous)
        self._k_1 = np.array([k for k, joint in enumerate(arm) if joint.nq == 1], dtype=int)
        self._idx_q_1 = np.array([joint.idx_q for joint in arm if joint.nq == 1], dtype=int)
        self._k_2 = np.array([k for k, joint in enumerate(arm) if joint.nq == 2], dtype=int)
        self._idx_q_2 = np.array([joint.idx_q for joint in arm if joint.nq == 2], dtype=int)
        n = len(arm)
        first = int(self._idx_q_1[0]) if len(self._idx_q_1) else 0
        in_order = (len(self._k_1) == n and np.array_equal(self._k_1, np.arange(n))
                    and np.array_equal(self._idx_q_1, np.arange(first, first + n)))
        self._q_slice = slice(first, first + n) if in_order else None     # the common case: a plain copy
        self._q_neutral = pin.neutral(model)
        # T_base_root (fixed); None when the base is the root (saves a product per pose)
        data = model.createData()
        pin.framesForwardKinematics(model, data, self._q_neutral)
        T_base_root = np.linalg.inv(data.oMf[base_id].homogeneous)
        self._T_base_root = None if np.array_equal(T_base_root, np.eye(4)) else T_base_root
        # the URDF tree: (parent link, child link, child frame id) per joint, moving and fixed
        self._moving, self._fixed = [], []
        for i, f in enumerate(model.frames):
            if f.type != pin.FrameType.BODY or f.parentFrame == i:
                continue
            joint_frame = model.frames[f.parentFrame]
            if joint_frame.type not in (pin.FrameType.JOINT, pin.FrameType.FIXED_JOINT) or f.parentFrame == 0:
                continue
            edge = (model.frames[joint_frame.parentFrame].name, f.name, joint_frame.parentFrame, i)
            (self._moving if joint_frame.type == pin.FrameType.JOINT else self._fixed).append(edge)
        self._other_joints = {model.names[j]: j for j in range(1, model.njoints)
                              if model.joints[j].nq > 0 and j not in self._arm_joint_ids}
        lo, hi = model.lowerPositionLimit, model.upperPositionLimit
        self._limits = np.array([[lo[joint.idx_q], hi[joint.idx_q]] if joint.nq == 1 else [-np.inf, np.inf]
                                 for joint in arm]).reshape(-1, 2)
        self._local = threading.local()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_urdf(cls, urdf_path_or_xml: str | Path, base_frame: str = "base_link", tool_frame: str = "tool0",
                  joint_names: Sequence[str] | None = None) -> "RobotModel":
        """Parse a URDF file (path) or URDF text (a string starting with ``<``).

        ``joint_names`` (default: the chain's order from the base) fixes the order of q; it must
        name exactly the actuated joints between ``base_frame`` and ``tool_frame``. Meshes are
        not loaded (kinematics only).
        """
        if isinstance(urdf_path_or_xml, str) and urdf_path_or_xml.lstrip().startswith("<"):
            text = urdf_path_or_xml
        else:
            path = Path(urdf_path_or_xml)
            if not path.is_file():
                raise FileNotFoundError(f"URDF {path} does not exist")
            text = path.read_text()
        return cls(text, base_frame, tool_frame, joint_names)

    # ------------------------------------------------------------------ queries
    @property
    def n_joints(self) -> int:
        """n, the length of q."""
        return len(self.joint_names)

    @property
    def position_limits(self) -> np.ndarray:
        """(n, 2) [lower, upper] of each arm joint from the URDF (rad or m; +-inf if continuous)."""
        return self._limits.copy()

    @property
    def frame_names(self) -> tuple[str, ...]:
        """Every link (frame) of the URDF, root first."""
        return tuple(self._frame_ids)

    def frame_pose(self, q_rad: np.ndarray, frame: str | None = None) -> np.ndarray:
        """T_base_frame: (4, 4) for q (n,), or (N, 4, 4) for q (N, n). ``frame`` None = tool_frame."""
        fid = self._frame_id(self.tool_frame if frame is None else frame)
        Q, single = self._q_batch(q_rad)
        model, data = self._model, self._data()
        out = np.empty((len(Q), 4, 4))
        for i, q in enumerate(Q):
            pin.forwardKinematics(model, data, q)
            out[i] = pin.updateFramePlacement(model, data, fid).homogeneous
        if self._T_base_root is not None:
            out = self._T_base_root @ out
        return out[0] if single else out

    def jacobian(self, q_rad: np.ndarray, frame: str | None = None) -> np.ndarray:
        """(6, n) geometric Jacobian [v; omega] of ``frame``'s origin in base axes, for q (n,).

        q (N, n) gives (N, 6, n).
        """
        fid = self._frame_id(self.tool_frame if frame is None else frame)
        Q, single = self._q_batch(q_rad)
        model, data = self._model, self._data()
        out = np.empty((len(Q), 6, self.n_joints))
        for i, q in enumerate(Q):
            J = pin.computeFrameJacobian(model, data, q, fid, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED)
            out[i] = J[:, self._idx_v]
        if self._T_base_root is not None:                 # root axes -> base axes
            R_base_root = self._T_base_root[:3, :3]
            out[:, :3], out[:, 3:] = R_base_root @ out[:, :3], R_base_root @ out[:, 3:]
        return out[0] if single else out

    def link_transforms(self, q_rad: np.ndarray, other_joints: Mapping[str, float] | None = None
                        ) -> list[tuple[str, str, np.ndarray]]:
        """(parent_link, child_link, T_parent_child (4, 4)) for every moving joint of the URDF.

        What robot_state_publisher sends on /tf. Arm joints from ``q_rad`` (n,); other joints
        (fingers) from ``other_joints`` {name: position}, else 0; mimic joints follow theirs.
        """
        Q, single = self._q_batch(q_rad)
        if not single:
            raise ValueError(f"link_transforms takes one joint vector ({self.n_joints},), got {np.shape(q_rad)}")
        q = Q[0]
        for name, value in (other_joints or {}).items():
            if name not in self._other_joints:
                raise ValueError(f"{name!r} is not a joint outside the arm with its own position; "
                                 f"those are {sorted(self._other_joints)}")
            if not np.isfinite(value):
                raise ValueError(f"joint {name!r} position is not finite: {value}")
            joint = self._model.joints[self._other_joints[name]]
            if joint.nq != 1:
                raise ValueError(f"joint {name!r} is continuous; give it as an arm joint")
            q[joint.idx_q] = float(value)
        data = self._data()
        pin.framesForwardKinematics(self._model, data, q)
        return [(parent, child, _relative(data.oMf[pid], data.oMf[cid]))
                for parent, child, pid, cid in self._moving]

    def fixed_link_transforms(self) -> list[tuple[str, str, np.ndarray]]:
        """(parent_link, child_link, T_parent_child (4, 4)) for every fixed joint (/tf_static)."""
        data = self._data()
        pin.framesForwardKinematics(self._model, data, self._q_neutral)
        return [(parent, child, _relative(data.oMf[pid], data.oMf[cid]))
                for parent, child, pid, cid in self._fixed]

    def __reduce__(self):
        # rebuilt from the URDF text: a pickled pin.Model with mimic joints crashes
        # forwardKinematics after loading (pin 4.1.0); the per-thread workspaces are not copied
        return (type(self), self._init_args)

    def __repr__(self) -> str:
        return (f"RobotModel({self._model.name!r}, {self.base_frame!r} -> {self.tool_frame!r}, "
                f"joints={self.joint_names})")

    # ------------------------------------------------------------------ internals
    def _frame_id(self, name: str) -> int:
        try:
            return self._frame_ids[name]
        except KeyError:
            raise ValueError(f"no link {name!r} in the URDF; its links are {sorted(self._frame_ids)}") from None

    def _data(self) -> pin.Data:
        """This thread's pinocchio workspace (scratch only: results never depend on it)."""
        data = getattr(self._local, "data", None)
        if data is None:
            data = self._local.data = self._model.createData()
        return data

    def _q_batch(self, q_rad: np.ndarray) -> tuple[np.ndarray, bool]:
        """(N, nq) pinocchio configurations for q (n,) or (N, n); whether q was a single vector."""
        q = np.asarray(q_rad, dtype=np.float64)
        n = self.n_joints
        if q.ndim not in (1, 2) or q.shape[-1] != n:
            raise ValueError(f"expected joint angles of shape ({n},) or (N, {n}) for {self.joint_names}, "
                             f"got {q.shape}")
        if not np.isfinite(q.sum()):                    # a NaN or inf anywhere makes the sum one
            raise ValueError("joint angles contain NaN or inf")
        Q = q.reshape(-1, n)
        out = self._q_neutral[None, :].copy() if len(Q) == 1 else np.repeat(self._q_neutral[None, :], len(Q), 0)
        if self._q_slice is not None:
            out[:, self._q_slice] = Q
        else:
            out[:, self._idx_q_1] = Q[:, self._k_1]
        if len(self._k_2):                              # continuous joints: (cos q, sin q)
            out[:, self._idx_q_2], out[:, self._idx_q_2 + 1] = np.cos(Q[:, self._k_2]), np.sin(Q[:, self._k_2])
        return out, q.ndim == 1


def _relative(T_root_parent: pin.SE3, T_root_child: pin.SE3) -> np.ndarray:
    """T_parent_child = T_root_parent^-1 T_root_child, (4, 4)."""
    return (T_root_parent.actInv(T_root_child)).homogeneous


@functools.cache
def ur5e_gripper() -> RobotModel:
    """The simulated UR5e + gripper (``fdl_robot.description.UR5E_URDF``): base_link -> tool0.

    q is ``core.robot.ARM_JOINT_NAMES``; the TCP is the frame ``tcp``. One shared instance.
    """
    from fdl_robot.core.robot import ARM_JOINT_NAMES
    from fdl_robot.description import UR5E_URDF

    return RobotModel.from_urdf(UR5E_URDF, "base_link", "tool0", ARM_JOINT_NAMES)

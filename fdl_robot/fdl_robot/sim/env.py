"""The pick-and-place environment: MuJoCo physics, randomised scenes, RGB-D rendering.

A gymnasium-style API without the gymnasium dependency::

    env = PickPlaceEnv(PickPlaceConfig(image_width=320, image_height=240))
    obs = env.reset(seed=3)
    obs, reward, terminated, truncated, info = env.step(action)
    rgb, depth_m = env.render_rgbd()            # HxWx3 uint8, HxW float32 (NaN = no return)
    p_base = env.T_base_cam.apply(env.camera.unproject(uv, depth))

Frames and units
----------------
Every pose is expressed in ``base_link`` (robot base on the table top; REP-103: x
forward, y left, z up), metres, quaternions (x, y, z, w).  Cameras use the ROS
optical frame (z forward, x right, y down); ``T_base_cam`` maps optical-frame points
into base_link, ``p_base = T_base_cam.apply(p_cam)``.

Timing
------
Physics at the MJCF's ``dt = 0.002 s`` (500 Hz), control at ``core.robot.CONTROL_DT_S``
(0.02 s, 50 Hz): one :meth:`step` holds the action for ``physics_substeps =
CONTROL_DT_S / dt = 10`` physics steps.

Action (7,)
-----------
``[q_1 .. q_6, g]``: absolute joint position targets in radians for the six arm
joints (``ARM_JOINT_NAMES``; clipped to the joint limits) and the gripper command
``g`` in [0, 1], 0 = fully open (85 mm), 1 = fully closed.  ``g`` is a position
target for the normalised finger closure, so intermediate values are partial
openings; on an object the fingers stop and squeeze with up to 60 N.

Observation (dict)
------------------
``qpos`` (6,) joint positions [rad], ``qvel`` (6,) [rad/s], ``gripper`` normalised
closure in [0, 1] (same scale as the command; ~0.53 on a 4 cm cube),
``gripper_opening_m`` pad distance [m], ``gripper_vel`` [1/s], ``tcp`` the tool
centre point pose, ``objects`` a dict ``name -> ObjectPose`` of ground truth for
``red_cube``, the active distractors ``distractor_k`` and ``bin`` (all in
base_link), and ``time_s`` the simulated time [s].

Randomisation (per seed, deterministic)
---------------------------------------
Cube and 1-3 distractor positions and yaws in the workspace, at least
``min_object_spacing_m`` apart; distractor colours (HSV hue never red-ish nor bin-
blue); small colour jitter of cube, bin and table; the bin's position and yaw;
light directions and intensities; a few-mm / sub-degree perturbation of the scene
camera pose (the true pose is :attr:`T_base_cam`, the calibrated pose the perception
stack is configured with is :attr:`T_base_cam_nominal`); the start posture.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
from numpy.typing import ArrayLike

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform, matrix_to_quaternion, quaternion_to_matrix
from fdl_robot.core.kinematics import rotation_exp
from fdl_robot.core.robot import CONTROL_DT_S
from fdl_robot.sim import scene
from fdl_robot.sim.camera import clean_depth_m, intrinsics_from_fovy, optical_pose_from_mujoco
from fdl_robot.sim.depth_model import D405, D435, StereoDepthSensor, apply_depth_model, check_depth_model, frame_rng
from fdl_robot.sim.perturbations import Perturbation, PerturbationConfig, check_perturbation

__all__ = ["CAMERA_SENSORS", "ObjectPose", "PickPlaceConfig", "PickPlaceEnv", "SEGMENTATION_BACKGROUND",
           "SEGMENTATION_ROBOT"]

#: Segmentation label of everything that is neither an object nor the robot.
SEGMENTATION_BACKGROUND = 0
#: Segmentation label of the arm and the gripper.
SEGMENTATION_ROBOT = 1

#: Hue intervals (HSV hue in [0, 1)) allowed for distractors: no reds/oranges/pinks
#: (hue near 0) and no blues near the bin's hue (~0.62).
_DISTRACTOR_HUE_INTERVALS = ((0.11, 0.52), (0.72, 0.85))
#: Point on the table the directional lights' axes pass through, base_link [m].
_LIGHT_AIM_POINT_M = np.array([0.45, 0.05, 0.0])
_LIGHT_DISTANCE_M = 2.0
#: The depth camera each MJCF camera stands for (its figures: ``sim.depth_model``): the scene
#: camera a RealSense D435, the wrist camera a D405 (16UC1 in 0.1 mm units).
CAMERA_SENSORS: dict[str, StereoDepthSensor] = {scene.SCENE_CAMERA: D435, scene.WRIST_CAMERA: D405}
#: Seed-sequence tag of the wrist camera's mount jitter: its own stream, so that adding it left
#: every other draw of reset() (and so every episode) as it was.
_WRIST_JITTER_STREAM = 0x3157


@dataclass(frozen=True, eq=False)
class ObjectPose:
    """A rigid-body pose in base_link: position [m] and orientation quaternion (x, y, z, w)."""

    position_m: np.ndarray
    quat_xyzw: np.ndarray

    def transform(self) -> Transform:
        """``T_base_obj``: maps object-frame points into base_link."""
        return Transform.from_quaternion(self.quat_xyzw, self.position_m)

    @property
    def yaw_rad(self) -> float:
        """Rotation about base z of the object's x axis, atan2(R_10, R_00), in (-pi, pi]."""
        R = quaternion_to_matrix(self.quat_xyzw)
        return float(np.arctan2(R[1, 0], R[0, 0]))


@dataclass(frozen=True)
class PickPlaceConfig:
    """Everything that defines an episode distribution; defaults are the benchmark cell."""

    image_width: int = 640
    image_height: int = 480
    camera_name: str = scene.SCENE_CAMERA
    #: Shadow mapping (realistic images; about half of the RGB render time under Mesa).
    shadows: bool = True
    #: Side of the shadow map in pixels; 0 = the cell's own (``quality/shadowsize`` in the XML,
    #: 2048, what the datasets were rendered with). On a CPU (Mesa llvmpipe) the shadow pass
    #: dominates a 320x240 frame: 512 renders about 2.3x faster than 2048 and changes a frame
    #: by 0.4/255 in the mean (only shadow edges; the 99th percentile pixel is unchanged).
    shadow_map_px: int = 0
    #: Load torchvision's compiled ops before the first GL context (see
    #: :func:`load_torchvision_ops_before_egl`), so that a detector in the same process may load
    #: them later. A process that never runs torchvision (sim_node on its own) skips it and
    #: starts rendering ~3 s sooner, ~300 MB lighter.
    preload_torchvision: bool = True
    #: Episode length limit in control steps (truncated afterwards); 0 = no limit.
    max_episode_steps: int = 600
    #: End the episode (terminated=True) as soon as success() holds.
    terminate_on_success: bool = False
    #: Depth of every camera: "ideal" (the render: exact z-depth) or "realsense" (a stereo
    #: camera's noise, holes and quantisation, ``sim.depth_model``; seeded per frame).
    depth_model: str = "ideal"
    #: What changes the scene while the robot works (``sim.perturbations``): "none", "shift"
    #: (the cube during the reach), "drop" (out of the gripper during the carry), "bin" (the
    #: bin moved), "conveyor" (the cubes moving at 2-8 cm/s). Drawn per seed.
    perturbation: str = "none"
    perturbation_config: PerturbationConfig = PerturbationConfig()

    def __post_init__(self):
        check_depth_model(self.depth_model)
        check_perturbation(self.perturbation)

    # ---- randomisation ----
    n_distractors: tuple[int, int] = (1, 3)  # inclusive range
    object_region_x_m: tuple[float, float] = (0.35, 0.60)
    object_region_y_m: tuple[float, float] = (-0.25, 0.10)
    #: Minimum centre distance between cubes (the open gripper spans 11 cm).
    min_object_spacing_m: float = 0.10
    bin_region_x_m: tuple[float, float] = (0.38, 0.55)
    bin_region_y_m: tuple[float, float] = (0.30, 0.40)
    bin_yaw_range_rad: float = 0.3
    #: Camera position jitter: normal, per-axis standard deviation, clipped at 2.5 sigma.
    camera_jitter_position_std_m: float = 0.002
    #: Camera rotation jitter: uniform angle in [0, max] about a random axis.
    camera_jitter_rotation_max_deg: float = 0.8
    #: The same for the wrist camera's mount on tool0 (T_flange_cam around T_flange_cam_nominal).
    wrist_camera_jitter_position_std_m: float = 0.002
    wrist_camera_jitter_rotation_max_deg: float = 0.8
    randomize_lighting: bool = True
    randomize_colors: bool = True
    #: Uniform jitter of the start posture around HOME_QPOS_RAD, radians.
    home_jitter_rad: float = 0.05


def _mj_quat_wxyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """MuJoCo quaternion (w, x, y, z) of a rotation matrix."""
    x, y, z, w = matrix_to_quaternion(R)
    return np.array([w, x, y, z])


def _optical_pose_in_body(cam_pos: np.ndarray, cam_quat_wxyz: np.ndarray) -> Transform:
    """``T_body_cam`` of a camera's optical frame from the model's ``cam_pos`` / ``cam_quat``."""
    R = np.empty(9)
    mujoco.mju_quat2Mat(R, np.asarray(cam_quat_wxyz, dtype=np.float64))
    return optical_pose_from_mujoco(cam_pos, R.reshape(3, 3))


def _rot_z(yaw_rad: float) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def load_torchvision_ops_before_egl() -> None:
    """Load torchvision's compiled ops, if installed, before the first OpenGL context.

    Loading them (ultralytics does, for NMS) after MuJoCo made an EGL context crashes the
    process with a segmentation fault (Mesa EGL + the CUDA build of torch/torchvision,
    seen with mujoco 4.0, torch 2.15, torchvision 0.29); the other order works. Detector
    and simulator share a process in the one-process ROS graph, so the simulator loads
    them first. Costs about a second once; nothing when torchvision is not installed.
    """
    try:
        import torchvision.ops  # noqa: F401
    except ImportError:
        pass


class PickPlaceEnv:
    """Pick the red cube and place it in the bin; see the module docstring for the spaces.

    The environment owns its ``MjModel`` (per-episode randomisation writes model
    fields: colours, lights, camera and bin poses) and its ``MjData``; renderers are
    created lazily per image size and freed by :meth:`close`.
    """

    def __init__(self, config: PickPlaceConfig | None = None, model: mujoco.MjModel | None = None):
        self.config = config if config is not None else PickPlaceConfig()
        #: ``model``: a variant of the cell's model (e.g. with a calibration board added by
        #: MjSpec, ``fdl_robot.perception.calibration_sim``); default: the cell itself.
        self.model = model if model is not None else scene.load_model()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.physics_dt_s: float = float(m.opt.timestep)
        #: Physics steps per control step: CONTROL_DT_S must be a whole number of them.
        self.physics_substeps: int = round(CONTROL_DT_S / self.physics_dt_s)
        if abs(self.physics_substeps * self.physics_dt_s - CONTROL_DT_S) > 1e-12:
            raise ValueError(f"control period {CONTROL_DT_S} s is not a multiple of the physics step "
                             f"{self.physics_dt_s} s")
        self.control_dt_s: float = CONTROL_DT_S

        def jid(name: str) -> int:
            return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)

        def bid(name: str) -> int:
            return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)

        arm_joints = [jid(n) for n in scene.ARM_JOINT_NAMES]
        finger_joints = [jid(n) for n in scene.FINGER_JOINT_NAMES]
        self._arm_qadr = m.jnt_qposadr[arm_joints].copy()
        self._arm_vadr = m.jnt_dofadr[arm_joints].copy()
        self._finger_qadr = m.jnt_qposadr[finger_joints].copy()
        self._finger_vadr = m.jnt_dofadr[finger_joints].copy()
        self.joint_limits_rad = m.jnt_range[arm_joints].copy()  # (6, 2)
        self._arm_act = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n)
                                  for n in scene.ARM_ACTUATOR_NAMES])
        self._gripper_act = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, scene.GRIPPER_ACTUATOR_NAME)

        self._cube_names = (scene.TARGET_NAME,) + scene.DISTRACTOR_NAMES
        self._body_id = {n: bid(n) for n in self._cube_names + (scene.BIN_NAME, scene.BASE_BODY)}
        self._free_qadr = {n: m.jnt_qposadr[m.body_jntadr[self._body_id[n]]] for n in self._cube_names}
        self._free_vadr = {n: m.jnt_dofadr[m.body_jntadr[self._body_id[n]]] for n in self._cube_names}
        self._cube_geom = {n: int(np.flatnonzero(m.geom_bodyid == self._body_id[n])[0]) for n in self._cube_names}
        self._bin_geoms = np.flatnonzero(m.geom_bodyid == self._body_id[scene.BIN_NAME])
        self._table_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table_top")
        self._tcp_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, scene.TCP_SITE)
        self._light_ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_LIGHT, n) for n in ("key", "fill")]

        # Robot geoms: the subtree of the first moving robot body.
        robot_root = bid(scene.ROBOT_ROOT_BODY)
        in_robot = np.zeros(m.nbody, dtype=bool)
        for b in range(m.nbody):  # bodies are topologically ordered: parents come first
            in_robot[b] = b == robot_root or (b > 0 and in_robot[m.body_parentid[b]])
        self._robot_geom_mask = in_robot[m.geom_bodyid]
        gripper_root = bid("tool0")
        in_gripper = np.zeros(m.nbody, dtype=bool)
        for b in range(m.nbody):
            in_gripper[b] = b == gripper_root or (b > 0 and in_gripper[m.body_parentid[b]])
        self._gripper_geom_mask = in_gripper[m.geom_bodyid]

        # Nominal (calibrated) values that the per-episode randomisation perturbs.
        self._nominal = {
            "geom_rgba": m.geom_rgba.copy(),
            "geom_size": m.geom_size.copy(),
            "cam_pos": m.cam_pos.copy(),
            "cam_quat": m.cam_quat.copy(),
            "light_dir": m.light_dir.copy(),
            "light_diffuse": m.light_diffuse.copy(),
            "headlight_ambient": m.vis.headlight.ambient.copy(),
            "geom_contype": m.geom_contype.copy(),
            "geom_conaffinity": m.geom_conaffinity.copy(),
            "geom_group": m.geom_group.copy(),
        }
        self.depth_far_m: float = float(m.vis.map.zfar * m.stat.extent)
        self.depth_near_m: float = float(m.vis.map.znear * m.stat.extent)

        # Segmentation labels: 0 background, 1 robot, 2.. one per object.
        self.segmentation_labels: dict[str, int] = {"background": SEGMENTATION_BACKGROUND,
                                                    "robot": SEGMENTATION_ROBOT}
        geom_label = np.full(m.ngeom, SEGMENTATION_BACKGROUND, dtype=np.int32)
        geom_label[self._robot_geom_mask] = SEGMENTATION_ROBOT
        for k, name in enumerate(self._cube_names + (scene.BIN_NAME, scene.MARKER_NAME)):
            self.segmentation_labels[name] = 2 + k
            geom_label[m.geom_bodyid == bid(name)] = 2 + k
        self._geom_label = geom_label
        self._marker_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "marker_geom")
        self._marker_mocap = m.body_mocapid[bid(scene.MARKER_NAME)]

        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._scene_option = mujoco.MjvOption()  # geom groups 0-2 visible: group 3 hides parked objects
        self.active_distractors: tuple[str, ...] = ()
        self.seed: int | None = None
        self.step_count = 0
        self._T_base_world = Transform.identity()
        self._T_world_cam_nominal = Transform.identity()
        self._T_flange_cam_nominal = Transform.identity()
        self._gripper_cmd = 0.0
        self.perturbation = Perturbation("none", self.config.perturbation_config)
        self.reset(seed=0)

    # ================================================================== episode
    def reset(self, seed: int | None = None, perturbation: str | None = None) -> dict[str, Any]:
        """Start a new episode; the same ``seed`` gives the identical episode.

        ``seed=None`` draws a fresh seed from OS entropy (stored in :attr:`seed`).
        ``perturbation``: this episode's kind (``sim.perturbations``) instead of the config's.
        """
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        cfg, m, d = self.config, self.model, self.data
        mujoco.mj_resetData(m, d)
        for key in ("geom_rgba", "geom_size", "cam_pos", "cam_quat", "light_dir", "light_diffuse",
                    "geom_contype", "geom_conaffinity", "geom_group"):
            getattr(m, key)[:] = self._nominal[key]
        m.vis.headlight.ambient[:] = self._nominal["headlight_ambient"]

        # --- objects: the target, 1-3 distractors, spacing by rejection sampling
        n_dis = int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))
        self.active_distractors = scene.DISTRACTOR_NAMES[:n_dis]
        xy = self._sample_spaced_xy(rng, 1 + n_dis)
        yaws = rng.uniform(-np.pi, np.pi, size=1 + n_dis)
        for name, p_xy, yaw in zip((scene.TARGET_NAME,) + self.active_distractors, xy, yaws, strict=True):
            self._set_free_pose(name, np.array([p_xy[0], p_xy[1], scene.CUBE_HALF_M]), _rot_z(yaw))
        for k, name in enumerate(scene.DISTRACTOR_NAMES[n_dis:]):  # parked, hidden, no contacts
            g = self._cube_geom[name]
            m.geom_contype[g] = m.geom_conaffinity[g] = 0
            m.geom_group[g] = 3
            self._set_free_pose(name, np.array([3.0 + 0.1 * k, 0.0, -5.0]), np.eye(3))

        # --- bin pose (a static body: its pose is a model field)
        bin_id = self._body_id[scene.BIN_NAME]
        m.body_pos[bin_id] = [rng.uniform(*cfg.bin_region_x_m), rng.uniform(*cfg.bin_region_y_m), 0.0]
        m.body_quat[bin_id] = _mj_quat_wxyz_from_matrix(
            _rot_z(rng.uniform(-cfg.bin_yaw_range_rad, cfg.bin_yaw_range_rad)))

        if cfg.randomize_colors:
            self._randomize_colors(rng, n_dis)
        if cfg.randomize_lighting:
            self._randomize_lighting(rng)
        # directional lights: MuJoCo centres the (orthographic) shadow map on the light's
        # axis through its position, so aim that axis at the workspace
        m.light_pos[self._light_ids] = _LIGHT_AIM_POINT_M - _LIGHT_DISTANCE_M * m.light_dir[self._light_ids]
        if m.cam_bodyid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, cfg.camera_name)] != 0:
            raise ValueError(f"camera_name must be a camera fixed in the world, got '{cfg.camera_name}'")
        self._T_world_cam_nominal = self._jitter_camera(
            rng, cfg.camera_name, cfg.camera_jitter_position_std_m, cfg.camera_jitter_rotation_max_deg)
        self._T_flange_cam_nominal = self._jitter_camera(
            np.random.default_rng([self.seed, _WRIST_JITTER_STREAM]), scene.WRIST_CAMERA,
            cfg.wrist_camera_jitter_position_std_m, cfg.wrist_camera_jitter_rotation_max_deg)

        # --- robot start posture: home plus jitter, gripper open, targets = posture
        q0 = scene.HOME_QPOS_RAD + rng.uniform(-cfg.home_jitter_rad, cfg.home_jitter_rad, size=6)
        d.qpos[self._arm_qadr] = q0
        d.ctrl[self._arm_act] = q0
        d.ctrl[self._gripper_act] = self._gripper_cmd = 0.0
        mujoco.mj_forward(m, d)

        base = self._body_id[scene.BASE_BODY]
        T_world_base = Transform(d.xmat[base].reshape(3, 3), d.xpos[base])
        self._T_base_world = T_world_base.inverse()
        self.step_count = 0
        self.perturbation = Perturbation.sample(cfg.perturbation if perturbation is None else perturbation, self,
                                                cfg.perturbation_config)
        return self.observation()

    def step(self, action: ArrayLike) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (7,) for one control step (``physics_substeps`` physics steps).

        Returns ``(obs, reward, terminated, truncated, info)``: reward 1.0 while
        :meth:`success` holds (else 0.0); ``terminated`` when the cube left the table
        (failure) or, with ``terminate_on_success``, on success; ``truncated`` after
        ``max_episode_steps``; ``info`` has ``success`` and ``cube_dropped``.
        """
        self.apply_action(action)
        self.physics_step(self.physics_substeps)
        self.step_count += 1
        success = self.success()
        dropped = bool(self.data.xpos[self._body_id[scene.TARGET_NAME]][2] < -0.05)
        terminated = dropped or (success and self.config.terminate_on_success)
        truncated = bool(self.config.max_episode_steps) and self.step_count >= self.config.max_episode_steps
        info = {"success": success, "cube_dropped": dropped, "step": self.step_count}
        return self.observation(), float(success), terminated, bool(truncated and not terminated), info

    def apply_action(self, action: ArrayLike) -> None:
        """Set the actuator targets from ``action`` (7,) without stepping (for ROS wrappers).

        Joint targets are clipped to the joint limits, the gripper command to [0, 1].
        """
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (7,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be 7 finite numbers (6 joint targets + gripper), got {a}")
        self.data.ctrl[self._arm_act] = np.clip(a[:6], self.joint_limits_rad[:, 0], self.joint_limits_rad[:, 1])
        self._gripper_cmd = float(np.clip(a[6], 0.0, 1.0)) * scene.GRIPPER_MAX_CLOSURE_M
        self.data.ctrl[self._gripper_act] = self._gripper_cmd

    def action_targets(self) -> np.ndarray:
        """The commanded actuator targets as an action (7,): arm rad, gripper closure."""
        return np.concatenate([self.data.ctrl[self._arm_act], [self._gripper_cmd / scene.GRIPPER_MAX_CLOSURE_M]])

    def physics_step(self, n_steps: int = 1) -> None:
        """Advance the physics by ``n_steps`` x 0.002 s holding the current targets.

        Before each step the episode's perturbation acts (``sim.perturbations``); while it
        holds the gripper open (a fault), the gripper's command is ignored.
        """
        m, d, perturbation = self.model, self.data, self.perturbation
        for _ in range(n_steps):
            perturbation.before_physics_step(self)
            d.ctrl[self._gripper_act] = 0.0 if perturbation.gripper_fault else self._gripper_cmd
            mujoco.mj_step(m, d)

    def set_object_pose(self, name: str, position_m: ArrayLike, quat_xyzw: ArrayLike = (0.0, 0.0, 0.0, 1.0)) -> None:
        """Teleport a free object (cube) to a pose in base_link, at rest (for tests and scenarios)."""
        T_world_obj = self._T_base_world.inverse() @ Transform.from_quaternion(quat_xyzw, position_m)
        self._set_free_pose(name, T_world_obj.translation, T_world_obj.rotation)
        mujoco.mj_forward(self.model, self.data)

    def drive_object(self, name: str, position_m: ArrayLike, velocity_m_s: ArrayLike) -> None:
        """Move a free object (cube) kinematically: its position [m] and linear velocity [m/s] in
        base_link, orientation kept, angular velocity zeroed (a slide, a conveyor)."""
        a, v = self._free_qadr[name], self._free_vadr[name]
        T_world_base = self._T_base_world.inverse()
        self.data.qpos[a:a + 3] = T_world_base.apply(np.asarray(position_m, np.float64))
        self.data.qvel[v:v + 3] = T_world_base.rotation @ np.asarray(velocity_m_s, np.float64)
        self.data.qvel[v + 3:v + 6] = 0.0

    def push_object(self, name: str, velocity_xy_m_s: ArrayLike) -> None:
        """Set a free object's horizontal velocity (base_link x, y, m/s), keeping its vertical one."""
        v = self._free_vadr[name]
        vel = np.r_[np.asarray(velocity_xy_m_s, np.float64), 0.0]
        R = self._T_base_world.inverse().rotation
        self.data.qvel[v:v + 3] = R @ vel + np.r_[0.0, 0.0, self.data.qvel[v + 2]]

    def move_bin(self, position_m: ArrayLike) -> None:
        """Put the (static) bin at a base_link position, its yaw kept."""
        self.model.body_pos[self._body_id[scene.BIN_NAME]] = self._T_base_world.inverse().apply(
            np.asarray(position_m, np.float64))

    def touches_gripper(self, name: str) -> bool:
        """True while the gripper (tool0 and the fingers) touches the named cube."""
        return self._touches_gripper(self._cube_geom[name])

    def cube_lifted(self, lift_m: float) -> bool:
        """True while the gripper touches the red cube and holds it ``lift_m`` above its resting height."""
        z = self.object_position(scene.TARGET_NAME)[2]
        return bool(z > scene.CUBE_HALF_M + lift_m and self.touches_gripper(scene.TARGET_NAME))

    @property
    def cube_names(self) -> tuple[str, ...]:
        """The cubes on the table this episode: the red cube and the active distractors."""
        return (scene.TARGET_NAME,) + self.active_distractors

    @property
    def object_region_m(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) corners (x, y) of the region the cubes are placed in, base_link [m]."""
        c = self.config
        return (np.array([c.object_region_x_m[0], c.object_region_y_m[0]]),
                np.array([c.object_region_x_m[1], c.object_region_y_m[1]]))

    @property
    def object_region_centre_m(self) -> np.ndarray:
        """Centre (x, y) of the object region, base_link [m]."""
        lo, hi = self.object_region_m
        return 0.5 * (lo + hi)

    def show_marker(self, position_m: ArrayLike | None, radius_m: float = 0.01) -> None:
        """Show a white sphere (no contacts) at ``position_m`` in base_link, or hide it (None).

        For checking camera models and visualising estimates; hidden again by reset().
        """
        if position_m is None:
            self.model.geom_group[self._marker_geom] = 5
            return
        self.model.geom_group[self._marker_geom] = 0
        self.model.geom_size[self._marker_geom, 0] = radius_m
        self.data.mocap_pos[self._marker_mocap] = self._T_base_world.inverse().apply(np.asarray(position_m, float))
        mujoco.mj_forward(self.model, self.data)

    # ============================================================= observation
    @property
    def time_s(self) -> float:
        """Simulated time since reset, seconds."""
        return float(self.data.time)

    @property
    def object_names(self) -> tuple[str, ...]:
        """Names of the objects with ground truth this episode: cube, active distractors, bin."""
        return self.cube_names + (scene.BIN_NAME,)

    def object_position(self, name: str) -> np.ndarray:
        """Ground-truth position (3,) of an object (or the bin) in base_link [m] (no orientation:
        cheap enough for every physics step)."""
        return self._T_base_world.apply(self.data.xpos[self._body_id[name]])

    def object_pose(self, name: str) -> ObjectPose:
        """Ground-truth pose of an object (or the bin) in base_link."""
        b = self._body_id[name]
        R_base = self._T_base_world.rotation @ self.data.xmat[b].reshape(3, 3)
        return ObjectPose(position_m=self.object_position(name), quat_xyzw=matrix_to_quaternion(R_base))

    def object_velocity(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(linear [m/s], angular [rad/s]) velocity of a free object, base_link axes."""
        v = self.data.qvel[self._free_vadr[name]:self._free_vadr[name] + 6]
        R_world_obj = self.data.xmat[self._body_id[name]].reshape(3, 3)
        R = self._T_base_world.rotation
        # free joint: linear velocity in world axes, angular velocity in body axes
        return R @ v[:3], R @ (R_world_obj @ v[3:])

    def tcp_pose(self) -> ObjectPose:
        """Pose of the tool centre point (between the pads) in base_link; z = approach."""
        R_base = self._T_base_world.rotation @ self.data.site_xmat[self._tcp_site].reshape(3, 3)
        return ObjectPose(self._T_base_world.apply(self.data.site_xpos[self._tcp_site]),
                          matrix_to_quaternion(R_base))

    @property
    def gripper_closure(self) -> float:
        """Mean finger closure normalised to [0, 1] (0 open, 1 pads touching)."""
        return float(np.mean(self.data.qpos[self._finger_qadr]) / scene.GRIPPER_MAX_CLOSURE_M)

    def observation(self) -> dict[str, Any]:
        """The observation dict (see the module docstring); arrays are copies."""
        d = self.data
        closure = self.gripper_closure
        return {
            "qpos": d.qpos[self._arm_qadr].copy(),
            "qvel": d.qvel[self._arm_vadr].copy(),
            "gripper": closure,
            "gripper_opening_m": scene.GRIPPER_OPEN_WIDTH_M * (1.0 - closure),
            "gripper_vel": float(np.mean(d.qvel[self._finger_vadr]) / scene.GRIPPER_MAX_CLOSURE_M),
            "tcp": self.tcp_pose(),
            "objects": {name: self.object_pose(name) for name in self.object_names},
            "time_s": float(d.time),
        }

    def joint_state(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(names, positions, velocities, efforts) of the 6 arm and 2 finger joints.

        Units: rad, rad/s, N m for the arm; m, m/s, N for the fingers (the fields of
        ``sensor_msgs/JointState``).  Efforts are the actuator generalised forces.
        """
        q_idx = np.concatenate([self._arm_qadr, self._finger_qadr])
        v_idx = np.concatenate([self._arm_vadr, self._finger_vadr])
        d = self.data
        return (list(scene.ARM_JOINT_NAMES + scene.FINGER_JOINT_NAMES), d.qpos[q_idx].copy(),
                d.qvel[v_idx].copy(), d.qfrc_actuator[v_idx].copy())

    # ================================================================= success
    def success(self) -> bool:
        """True when the red cube rests inside the bin and the gripper does not touch it.

        In the bin frame (p_bin = T_bin_base p_base) the cube centre must satisfy
        |x|, |y| < inner half-width - cube half-size + 5 mm and z below the rim; "at
        rest" is |v| < 5 cm/s and |omega| < 1 rad/s.
        """
        bin_pose = self.object_pose(scene.BIN_NAME).transform()
        p_bin = bin_pose.inverse().apply(self.object_pose(scene.TARGET_NAME).position_m)
        half = scene.BIN_INNER_HALF_M - scene.CUBE_HALF_M + 0.005
        inside = abs(p_bin[0]) < half and abs(p_bin[1]) < half and 0.0 < p_bin[2] < scene.BIN_WALL_TOP_M
        if not inside:
            return False
        v, w = self.object_velocity(scene.TARGET_NAME)
        at_rest = np.linalg.norm(v) < 0.05 and np.linalg.norm(w) < 1.0
        return bool(at_rest and not self._touches_gripper(self._cube_geom[scene.TARGET_NAME]))

    def _touches_gripper(self, geom_id: int) -> bool:
        n = self.data.ncon
        if n == 0:
            return False
        pairs = self.data.contact.geom[:n]
        other = np.where(pairs[:, 0] == geom_id, pairs[:, 1], np.where(pairs[:, 1] == geom_id, pairs[:, 0], -1))
        other = other[other >= 0]
        return bool(np.any(self._gripper_geom_mask[other]))

    # ================================================================= cameras
    @property
    def camera(self) -> PinholeCamera:
        """Intrinsics of the scene camera at the configured image size."""
        return self.camera_intrinsics(self.config.camera_name)

    def camera_intrinsics(self, camera_name: str, width: int | None = None,
                          height: int | None = None) -> PinholeCamera:
        """Pinhole intrinsics of a named camera (f = (H/2)/tan(fovy/2), c = ((W-1)/2, (H-1)/2))."""
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera_name)
        return intrinsics_from_fovy(float(self.model.cam_fovy[cam]), width or self.config.image_width,
                                    height or self.config.image_height)

    @property
    def T_base_cam(self) -> Transform:
        """True pose of the scene camera's optical frame in base_link (jitter included)."""
        return self.camera_extrinsics(self.config.camera_name)

    @property
    def T_base_cam_nominal(self) -> Transform:
        """Calibrated (un-jittered) scene camera pose: what the perception config holds."""
        return self._T_base_world @ self._T_world_cam_nominal

    @property
    def T_flange_cam(self) -> Transform:
        """True mount of the wrist camera: its optical frame in tool0 (the flange), jitter included.

        ``p_tool0 = T_flange_cam.apply(p_cam)``; ``camera_extrinsics(WRIST_CAMERA)`` = T_base_tool0(q) T_flange_cam.
        """
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, scene.WRIST_CAMERA)
        return _optical_pose_in_body(self.model.cam_pos[cam], self.model.cam_quat[cam])

    @property
    def T_flange_cam_nominal(self) -> Transform:
        """The wrist camera's nominal (un-jittered, as designed) mount in tool0: what a config holds."""
        return self._T_flange_cam_nominal

    def camera_extrinsics(self, camera_name: str) -> Transform:
        """``T_base_cam`` of any camera at the current state (the wrist camera moves)."""
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera_name)
        return self._T_base_world @ optical_pose_from_mujoco(self.data.cam_xpos[cam], self.data.cam_xmat[cam])

    def camera_extrinsics_nominal(self, camera_name: str) -> Transform:
        """``T_base_cam`` a configuration would compute: the scene camera's nominal pose, or for the
        wrist camera the arm's exact pose at the current state times the nominal mount,
        T_base_tool0(q) T_flange_cam_nominal."""
        if camera_name == self.config.camera_name:
            return self.T_base_cam_nominal
        if camera_name != scene.WRIST_CAMERA:
            raise ValueError(f"no nominal pose for camera '{camera_name}'")
        tool0 = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "tool0")
        T_world_tool0 = Transform(self.data.xmat[tool0].reshape(3, 3), self.data.xpos[tool0])
        return self._T_base_world @ T_world_tool0 @ self._T_flange_cam_nominal

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            if self.config.preload_torchvision:
                load_torchvision_ops_before_egl()
            if self.config.shadow_map_px:           # read by the renderer's context at creation
                self.model.vis.quality.shadowsize = self.config.shadow_map_px
            r = mujoco.Renderer(self.model, height=height, width=width)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.config.shadows
            self._renderers[key] = r
        return self._renderers[key]

    def _prepared_renderer(self, camera: str | None, width: int | None, height: int | None) -> mujoco.Renderer:
        r = self._renderer(width or self.config.image_width, height or self.config.image_height)
        r.update_scene(self.data, camera=camera or self.config.camera_name, scene_option=self._scene_option)
        return r

    def render_rgb(self, camera: str | None = None, width: int | None = None,
                   height: int | None = None) -> np.ndarray:
        """RGB image (H, W, 3) uint8 of a camera (default: the scene camera)."""
        return self._prepared_renderer(camera, width, height).render()

    def render_depth(self, camera: str | None = None, width: int | None = None,
                     height: int | None = None) -> np.ndarray:
        """Depth image (H, W) float32: z-depth along the optical axis in metres, NaN = no return.

        With ``config.depth_model == "realsense"`` the camera's stereo depth model
        (:data:`CAMERA_SENSORS`) is applied, seeded by (episode seed, camera, physics step).
        """
        return self._depth_pass(self._prepared_renderer(camera, width, height), camera, width, height)

    def render_rgbd(self, camera: str | None = None, width: int | None = None,
                    height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, depth (H, W) float32 metres, NaN = invalid), pixel-aligned."""
        r = self._prepared_renderer(camera, width, height)
        rgb = r.render()
        return rgb, self._depth_pass(r, camera, width, height)

    def depth_sensor(self, camera: str | None = None) -> StereoDepthSensor:
        """The depth camera a named camera stands for (its range, noise and depth unit)."""
        return CAMERA_SENSORS[camera or self.config.camera_name]

    def _depth_pass(self, r: mujoco.Renderer, camera: str | None, width: int | None,
                    height: int | None) -> np.ndarray:
        """The depth buffer of the prepared scene, without the shadow pass (depth has no shadows),
        through the configured depth model."""
        r.enable_depth_rendering()
        r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        try:
            depth = clean_depth_m(r.render(), self.depth_far_m)
        finally:
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.config.shadows
            r.disable_depth_rendering()
        if self.config.depth_model == "ideal":
            return depth
        name = camera or self.config.camera_name
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        frame = round(self.data.time / self.physics_dt_s)           # the physics step: one instant, one frame
        return apply_depth_model(depth, self.camera_intrinsics(name, width, height).fx, self.depth_sensor(name),
                                 frame_rng(self.seed, cam, frame))

    def render_segmentation(self, camera: str | None = None, width: int | None = None,
                            height: int | None = None) -> np.ndarray:
        """Per-pixel labels (H, W) int32, see :attr:`segmentation_labels`.

        0 background (table, floor), 1 robot, then one label per object name
        (``red_cube`` 2, ``distractor_0..2`` 3-5, ``bin`` 6, ``marker`` 7).
        """
        r = self._prepared_renderer(camera, width, height)
        r.enable_segmentation_rendering()
        try:
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        obj_id, obj_type = seg[..., 0], seg[..., 1]
        is_geom = (obj_type == int(mujoco.mjtObj.mjOBJ_GEOM)) & (obj_id >= 0)
        labels = np.full(obj_id.shape, SEGMENTATION_BACKGROUND, dtype=np.int32)
        labels[is_geom] = self._geom_label[obj_id[is_geom]]
        return labels

    def close(self) -> None:
        """Free the OpenGL contexts of the renderers (the env stays usable)."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __enter__(self) -> PickPlaceEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ========================================================== randomisation
    def _sample_spaced_xy(self, rng: np.random.Generator, n: int, max_tries: int = 1000) -> np.ndarray:
        """``n`` points uniform in the object region, pairwise >= min_object_spacing_m apart."""
        cfg = self.config
        lo, hi = self.object_region_m
        points: list[np.ndarray] = []
        for _ in range(max_tries):
            p = rng.uniform(lo, hi)
            if all(np.linalg.norm(p - q) >= cfg.min_object_spacing_m for q in points):
                points.append(p)
                if len(points) == n:
                    return np.array(points)
        raise RuntimeError(f"could not place {n} objects {cfg.min_object_spacing_m} m apart in the region")

    def _set_free_pose(self, name: str, p_world: np.ndarray, R_world: np.ndarray) -> None:
        a = self._free_qadr[name]
        self.data.qpos[a:a + 3] = p_world
        self.data.qpos[a + 3:a + 7] = _mj_quat_wxyz_from_matrix(R_world)
        self.data.qvel[self._free_vadr[name]:self._free_vadr[name] + 6] = 0.0

    def _randomize_colors(self, rng: np.random.Generator, n_distractors: int) -> None:
        m = self.model
        # red target: hue within +-0.015 of pure red, saturated
        h = rng.uniform(-0.015, 0.015) % 1.0
        m.geom_rgba[self._cube_geom[scene.TARGET_NAME], :3] = colorsys.hsv_to_rgb(
            h, rng.uniform(0.8, 1.0), rng.uniform(0.65, 0.95))
        # distractors: hue from the allowed intervals (never red-ish, never bin-blue)
        widths = np.array([b - a for a, b in _DISTRACTOR_HUE_INTERVALS])
        for name in scene.DISTRACTOR_NAMES[:n_distractors]:
            k = rng.choice(len(widths), p=widths / widths.sum())
            hue = rng.uniform(*_DISTRACTOR_HUE_INTERVALS[k])
            m.geom_rgba[self._cube_geom[name], :3] = colorsys.hsv_to_rgb(
                hue, rng.uniform(0.55, 1.0), rng.uniform(0.5, 0.95))
        # bin (blue) and table (light grey / beige): small jitter
        self.model.geom_rgba[self._bin_geoms, :3] = colorsys.hsv_to_rgb(
            rng.uniform(0.6, 0.64), rng.uniform(0.75, 0.95), rng.uniform(0.65, 0.9))
        base = self._nominal["geom_rgba"][self._table_geom, :3]
        m.geom_rgba[self._table_geom, :3] = np.clip(base * rng.uniform(0.85, 1.1) + rng.uniform(-0.03, 0.03, 3), 0, 1)

    def _randomize_lighting(self, rng: np.random.Generator) -> None:
        m = self.model
        key, fill = self._light_ids
        direction = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), -1.0])
        m.light_dir[key] = direction / np.linalg.norm(direction)
        m.light_diffuse[key] = rng.uniform(0.45, 0.85)
        m.light_diffuse[fill] = rng.uniform(0.1, 0.35)
        m.vis.headlight.ambient[:] = rng.uniform(0.2, 0.4)

    def _jitter_camera(self, rng: np.random.Generator, camera_name: str, position_std_m: float,
                       rotation_max_deg: float) -> Transform:
        """Perturb a camera in its body's frame: t += clip(N(0, s^2 I), 2.5 s), R <- R_delta R.

        Returns the nominal optical pose in that body (the world for the scene camera, tool0
        for the wrist camera).
        """
        m = self.model
        cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera_name)
        p_nom = self._nominal["cam_pos"][cam]
        R_nom = np.empty(9)
        mujoco.mju_quat2Mat(R_nom, self._nominal["cam_quat"][cam])
        R_nom = R_nom.reshape(3, 3)
        s = position_std_m
        dp = np.clip(rng.normal(0.0, s, 3), -2.5 * s, 2.5 * s) if s > 0 else np.zeros(3)
        axis = rng.normal(size=3)
        angle = np.deg2rad(rng.uniform(0.0, rotation_max_deg))
        m.cam_pos[cam] = p_nom + dp
        m.cam_quat[cam] = _mj_quat_wxyz_from_matrix(rotation_exp(angle * axis / np.linalg.norm(axis)) @ R_nom)
        return optical_pose_from_mujoco(p_nom, R_nom)

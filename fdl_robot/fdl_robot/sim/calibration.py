"""The simulated cell with a ChArUco board, and a hand-eye capture in it.

The board is added to the cell's model by ``mujoco.MjSpec`` only for a calibration, so the
normal scene, the datasets and the detector never see it:

* eye-to-hand (the fixed scene camera): a plate on the flange, ``tool0``, facing along
  tool0's z just beyond the finger tips (as if the gripper carried it);
* eye-in-hand (the wrist camera): a plate lying on the table beside the object region.

Board frame on the plate
------------------------
The board image is a 2D texture on a thin box; MuJoCo maps it onto the box's +z face with
image columns along +x and image rows along -y (checked in ``test_calibration.py`` by the
board pose that PnP finds). OpenCV's board frame (origin at the top-left corner, x right,
y down, z into the board) is then, in the plate's geom frame (size W x H, half thickness h)::

    T_geom_board = [diag(1, -1, -1), (-W/2, H/2, h)]

Capture
-------
:func:`plan_poses` draws target poses (board in front of the camera at 0.45-0.65 m, tilted
up to 35 deg about random axes and rolled +-40 deg; or the wrist camera 0.22-0.40 m from the
board, 50-85 deg above the table, aimed at it), planned with the *nominal* camera pose a
user would know, and reaches them by :func:`fdl_robot.core.kinematics.solve_ik` on tool0.
:func:`capture` drives the arm there through the physics (a smooth joint-space move, then a
short hold), renders an RGB image with Gaussian pixel noise and records the joint states of
every control step: the image's joint state is the one at its stamp.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.kinematics import TCP_OFFSET_M, link_frames, rotation_exp, solve_ik
from fdl_robot.core.robot_model import ur5e_gripper
from fdl_robot.perception.charuco import DEFAULT_BOARD, BoardSpec
from fdl_robot.perception.handeye import EYE_IN_HAND, EYE_TO_HAND, MODES
from fdl_robot.sim import scene
from fdl_robot.sim.camera import optical_pose_from_mujoco

__all__ = ["BOARD_GEOM", "FLANGE_BOARD_OFFSET_M", "TABLE_BOARD_XY_M", "CAMERA_OF_MODE", "SimFrame", "SimCapture",
           "board_model", "make_env", "T_geom_board", "true_extrinsics", "nominal_extrinsics", "plan_poses",
           "capture", "flange_pose"]

BOARD_GEOM = "calibration_board"
#: Plate face along tool0's z, metres: the finger tips end at 0.15 m.
FLANGE_BOARD_OFFSET_M = 0.165
#: Centre of the table board in base_link, metres: beside the object region (y >= -0.25)
#: and away from the bin (y >= 0.3).
TABLE_BOARD_XY_M = (0.45, -0.42)
_PLATE_HALF_THICKNESS_M = 0.002
#: White margin around the printed board, in squares.
_MARGIN_SQUARES = 0.5
_TEXTURE_PX_PER_SQUARE = 100
#: The camera calibrated in each mode.
CAMERA_OF_MODE = {EYE_TO_HAND: scene.SCENE_CAMERA, EYE_IN_HAND: scene.WRIST_CAMERA}


def _plate_half_size(spec: BoardSpec) -> tuple[float, float]:
    w, h = spec.size_m
    m = _MARGIN_SQUARES * spec.square_m
    return w / 2 + m, h / 2 + m


def T_geom_board(spec: BoardSpec = DEFAULT_BOARD) -> Transform:
    """OpenCV's board frame in the plate geom's frame (module docstring)."""
    w, h = spec.size_m
    return Transform(np.diag([1.0, -1.0, -1.0]), [-w / 2, h / 2, _PLATE_HALF_THICKNESS_M])


def board_model(mode: str, spec: BoardSpec = DEFAULT_BOARD) -> mujoco.MjModel:
    """The cell's model with the board plate of ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    mj = mujoco.MjSpec.from_file(str(scene.SCENE_XML_PATH))
    margin_px = int(round(_MARGIN_SQUARES * _TEXTURE_PX_PER_SQUARE))
    grey = spec.image(_TEXTURE_PX_PER_SQUARE, margin_px)
    rgb = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    tex = mj.add_texture(name="charuco", type=mujoco.mjtTexture.mjTEXTURE_2D, width=rgb.shape[1],
                         height=rgb.shape[0], nchannel=3)
    tex.data = rgb.tobytes()
    mat = mj.add_material(name="charuco", specular=0.1, shininess=0.1)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "charuco"
    sx, sy = _plate_half_size(spec)
    if mode == EYE_TO_HAND:
        parent, pos = mj.body("tool0"), [0.0, 0.0, FLANGE_BOARD_OFFSET_M - _PLATE_HALF_THICKNESS_M]
    else:
        parent, pos = mj.worldbody, [*TABLE_BOARD_XY_M, _PLATE_HALF_THICKNESS_M]
    parent.add_geom(name=BOARD_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[sx, sy, _PLATE_HALF_THICKNESS_M],
                    pos=pos, material="charuco", contype=0, conaffinity=0, density=0, group=0)
    return mj.compile()


def make_env(mode: str, spec: BoardSpec = DEFAULT_BOARD, width: int = 640, height: int = 480, seed: int = 0):
    """A PickPlaceEnv with the board of ``mode``, reset to ``seed`` (scene camera jitter etc.)."""
    from fdl_robot.sim.env import PickPlaceConfig, PickPlaceEnv

    env = PickPlaceEnv(PickPlaceConfig(image_width=width, image_height=height),
                       model=board_model(mode, spec))
    env.reset(seed=seed)
    return env


def flange_pose(q_rad: np.ndarray) -> Transform:
    """T_base_flange (tool0) of the arm's joint positions, by the robot's URDF kinematics."""
    return Transform.from_matrix(ur5e_gripper().frame_pose(np.asarray(q_rad, float), "tool0"))


def _env_value(env, name: str):
    value = getattr(env, name, None)
    return value() if callable(value) else value


def _mounted_wrist_camera(env) -> Transform:
    """T_flange_cam of the wrist camera from the model (its body is tool0)."""
    m = env.model
    cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, scene.WRIST_CAMERA)
    tool0 = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tool0")
    if m.cam_bodyid[cam] != tool0:
        raise ValueError(f"{scene.WRIST_CAMERA} is not mounted on tool0")
    R = np.empty(9)
    mujoco.mju_quat2Mat(R, m.cam_quat[cam])
    return optical_pose_from_mujoco(m.cam_pos[cam], R.reshape(3, 3))


def true_extrinsics(env, mode: str) -> Transform:
    """The simulator's truth of X: T_base_cam of the scene camera (eye-to-hand) or T_flange_cam
    of the wrist camera (eye-in-hand; ``env.T_flange_cam`` where the env has it)."""
    if mode == EYE_TO_HAND:
        return env.T_base_cam
    return _env_value(env, "T_flange_cam") or _mounted_wrist_camera(env)


def nominal_extrinsics(env, mode: str) -> Transform:
    """The pose a user configures before calibrating (what the plan uses)."""
    if mode == EYE_TO_HAND:
        return env.T_base_cam_nominal
    return _env_value(env, "T_flange_cam_nominal") or _mounted_wrist_camera(env)


def _look_rotation(z_axis: np.ndarray, x_hint: np.ndarray) -> np.ndarray:
    """Rotation whose z is ``z_axis`` and whose x is ``x_hint`` made orthogonal to it."""
    z = z_axis / np.linalg.norm(z_axis)
    x = x_hint - z * (x_hint @ z)
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def _random_perpendicular_rotation(rng: np.random.Generator, axis: np.ndarray, max_deg: float) -> np.ndarray:
    v = rng.normal(size=3)
    v -= axis * (v @ axis) / (axis @ axis)
    return rotation_exp(np.deg2rad(rng.uniform(0.0, max_deg)) * v / np.linalg.norm(v))


def _board_targets(mode: str, T_nominal: Transform, T_base_table_board: Transform, spec: BoardSpec,
                   rng: np.random.Generator) -> tuple[Transform, Transform]:
    """One random (T_base_cam, T_base_board) target of ``mode``."""
    w, h = spec.size_m
    centre_board = np.array([w / 2, h / 2, 0.0])
    if mode == EYE_TO_HAND:
        T_base_cam = T_nominal
        d = T_base_cam.rotation @ (rotation_exp(np.deg2rad(rng.uniform(-10, 10, 3)) * [1, 1, 0]) @ [0, 0, 1.0])
        centre = T_base_cam.translation + rng.uniform(0.45, 0.65) * d
        z_board = _random_perpendicular_rotation(rng, d, 35.0) @ d        # into the board: away from the camera
        x_hint = rotation_exp(np.deg2rad(rng.uniform(-40, 40)) * z_board) @ T_base_cam.rotation[:, 0]
        R = _look_rotation(z_board, x_hint)
        return T_base_cam, Transform(R, centre - R @ centre_board)
    board = T_base_table_board
    target = board.apply(centre_board) + np.r_[rng.uniform(-0.03, 0.03, 2), 0.0]
    toward_robot = np.arctan2(-target[1], -target[0])
    azimuth = toward_robot + np.deg2rad(rng.uniform(-100, 100))
    elevation = np.deg2rad(rng.uniform(50, 85))
    u = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    position = target + rng.uniform(0.22, 0.40) * u
    x_hint = rotation_exp(np.deg2rad(rng.uniform(-60, 60)) * u) @ np.cross([0, 0, 1.0], u)
    return Transform(_look_rotation(-u, x_hint), position), board


def _geom_pose(env, name: str) -> Transform:
    g = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, name)
    mujoco.mj_forward(env.model, env.data)
    return Transform(env.data.geom_xmat[g].reshape(3, 3), env.data.geom_xpos[g])


def plan_poses(env, mode: str, n_poses: int, rng: np.random.Generator, spec: BoardSpec = DEFAULT_BOARD,
               camera: PinholeCamera | None = None, max_tries: int = 400) -> list[np.ndarray]:
    """``n_poses`` joint configurations (6,) showing the whole board to the camera of ``mode``.

    Targets are drawn with :func:`_board_targets` from the *nominal* extrinsics; a target is
    kept when the IK on tool0 converges, every link origin and the board stay 5 cm above the
    table, and all board corners project 15 px inside the (nominal) image.
    """
    camera = camera or env.camera_intrinsics(CAMERA_OF_MODE[mode])
    T_nominal = nominal_extrinsics(env, mode)
    T_geom_b = T_geom_board(spec)
    if mode == EYE_TO_HAND:
        T_flange_board = Transform(None, [0.0, 0.0, FLANGE_BOARD_OFFSET_M - _PLATE_HALF_THICKNESS_M]) @ T_geom_b
        T_table_board = None
    else:
        T_table_board = _geom_pose(env, BOARD_GEOM) @ T_geom_b
    q = np.asarray(env.observation()["qpos"], float)
    poses: list[np.ndarray] = []
    for _ in range(max_tries):
        if len(poses) == n_poses:
            break
        T_base_cam, T_base_board = _board_targets(mode, T_nominal, T_table_board, spec, rng)
        if mode == EYE_TO_HAND:
            T_base_flange = T_base_board @ T_flange_board.inverse()
        else:
            T_base_flange = T_base_cam @ T_nominal.inverse()
        ik = solve_ik(T_base_flange.translation, T_base_flange.rotation, q, frame="tool0", max_iterations=300)
        if mode == EYE_IN_HAND:
            T_base_cam = flange_pose(ik.q_rad) @ T_nominal
        if ik.converged and _acceptable(ik.q_rad, T_base_cam, T_base_board, mode, camera, spec):
            poses.append(ik.q_rad)
            q = ik.q_rad
    if len(poses) < n_poses:
        raise RuntimeError(f"found only {len(poses)} of {n_poses} reachable poses showing the board in "
                           f"{max_tries} tries")
    return poses


def _acceptable(q: np.ndarray, T_base_cam: Transform, T_base_board: Transform, mode: str, camera: PinholeCamera,
                spec: BoardSpec, margin_px: float = 15.0) -> bool:
    """Links and TCP 5 cm above the table, the board too (on the flange) or on it, every board
    corner ``margin_px`` inside the image."""
    w, h = spec.size_m
    board_z = T_base_board.apply(np.array([[0, 0, 0], [w, 0, 0], [0, h, 0], [w, h, 0.0]]))[:, 2]
    if np.min(link_frames(q, tcp_offset_m=TCP_OFFSET_M)[1:, 2, 3]) < 0.05:
        return False
    if np.min(board_z) < (0.05 if mode == EYE_TO_HAND else -0.01):
        return False
    uv = camera.project(T_base_cam.inverse().apply(T_base_board.apply(spec.corners_board())))
    return bool(np.all(np.isfinite(uv)) and np.all(uv > margin_px) and np.all(uv[:, 0] < camera.width - margin_px)
                and np.all(uv[:, 1] < camera.height - margin_px))


@dataclass
class SimFrame:
    """One captured image: stamp (ns), RGB (H, W, 3) uint8, the arm's joints at the stamp (6,) rad."""

    stamp_ns: int
    rgb: np.ndarray
    q_rad: np.ndarray


@dataclass
class SimCapture:
    """A capture: the camera, its frames, the joint states of every control step (for a bag)."""

    mode: str
    camera: PinholeCamera
    frames: list[SimFrame]
    joint_stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    joint_positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))    # (M, 8): arm + fingers
    joint_names: tuple[str, ...] = ()
    #: Notes on poses not reached as planned.
    notes: list[str] = field(default_factory=list)


#: Stamp of the simulation's t = 0 in the capture (a bag needs positive stamps), ns.
STAMP_OFFSET_NS = 1_000_000_000


def capture(env, mode: str, poses: list[np.ndarray], rng: np.random.Generator, *, pixel_noise: float = 2.0,
            speed_rad_s: float = 0.8, hold_s: float = 0.6, progress: bool = True) -> SimCapture:
    """Move through ``poses`` in the physics and render one noisy RGB image at each.

    Between poses the targets follow a cosine profile at up to ``speed_rad_s``; after ``hold_s``
    of rest the image is rendered, its stamp is the simulated time and its joint state the
    arm's at that instant. ``pixel_noise``: standard deviation of the Gaussian noise added to
    every channel, 8-bit levels.
    """
    from tqdm import tqdm

    cam_name = CAMERA_OF_MODE[mode]
    camera = env.camera_intrinsics(cam_name)
    stamps, positions, frames, notes = [], [], [], []
    names, _, _, _ = env.joint_state()

    def log_state():
        _, q, _, _ = env.joint_state()
        stamps.append(STAMP_OFFSET_NS + round(env.time_s * 1e9))
        positions.append(q)

    hold_steps = max(1, round(hold_s / env.control_dt_s))
    for k, q_target in enumerate(tqdm(poses, desc=f"capturing ({mode})", unit="pose", disable=not progress)):
        q0 = np.asarray(env.observation()["qpos"], float)
        n = max(10, int(np.ceil(np.max(np.abs(q_target - q0)) / speed_rad_s / env.control_dt_s)))
        for s in range(1, n + hold_steps + 1):
            a = 0.5 - 0.5 * np.cos(np.pi * min(s / n, 1.0))
            env.step(np.r_[q0 + a * (q_target - q0), 0.0])
            log_state()
        obs = env.observation()
        q, speed = np.asarray(obs["qpos"], float), float(np.max(np.abs(obs["qvel"])))
        if speed > 0.01 or np.max(np.abs(q - q_target)) > 0.02:
            notes.append(f"pose {k}: the arm is {np.max(np.abs(q - q_target)):.3f} rad from its target and "
                           f"moving at {speed:.3f} rad/s (a contact?); captured anyway")
        rgb = env.render_rgb(camera=cam_name)
        if pixel_noise > 0:
            rgb = np.clip(rgb + rng.normal(0.0, pixel_noise, rgb.shape), 0, 255).round().astype(np.uint8)
        frames.append(SimFrame(stamps[-1], rgb, q))
    return SimCapture(mode, camera, frames, np.asarray(stamps, dtype=np.int64), np.asarray(positions),
                      tuple(names), notes)

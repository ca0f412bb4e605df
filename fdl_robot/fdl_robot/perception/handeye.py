"""Hand-eye calibration: where the camera is, from board poses seen at known robot poses.

Frames and data
---------------
At pose i the robot's forward kinematics at the image stamp give ``T_base_flange_i`` (the
flange, ``tool0``, in ``base_link``) and the board's corners give ``T_cam_board_i`` (the
board in the camera's optical frame, :mod:`fdl_robot.perception.charuco`). Two rigid
transforms are unknown and constant, X (the answer) and Z (where the board is):

============  =====================================  ===================  ==================
mode          set-up                                 X (the answer)       Z
============  =====================================  ===================  ==================
eye-in-hand   camera on the flange, board on table   ``T_flange_cam``     ``T_base_board``
eye-to-hand   camera fixed, board on the flange      ``T_base_cam``       ``T_flange_board``
============  =====================================  ===================  ==================

Both are one equation, with "hand" poses ``H_i = T_base_flange_i`` (eye-in-hand) or
``H_i = T_base_flange_i^-1 = T_flange_base_i`` (eye-to-hand) and ``C_i = T_cam_board_i``::

    eye-in-hand:  T_base_board  = T_base_flange_i  T_flange_cam  T_cam_board_i
    eye-to-hand:  T_flange_board = T_flange_base_i T_base_cam    T_cam_board_i
    i.e.          Z = H_i X C_i                      for every pose i.              (1)

AX = XB
-------
Eliminating Z between poses i and j (``H_i X C_i = H_j X C_j``) gives the hand-eye
equation of Tsai & Lenz / Shiu & Ahmad::

    A_ij X = X B_ij,     A_ij = H_j^-1 H_i,     B_ij = C_j C_i^-1                     (2)

eye-in-hand: ``A_ij = T_flange_j_flange_i`` (the flange's motion, in flange j) and
``B_ij = T_cam_j_cam_i`` (the camera's motion); eye-to-hand: ``A_ij = T_base_flange_j
T_flange_base_i`` (the flange's motion, in base_link) and ``B_ij`` the board's motion seen
by the camera. Split into rotation and translation::

    R_A R_X = R_X R_B              (so the rotation axis of A is R_X times that of B)
    (R_A - I) t_X = R_X t_B - t_A

The closed-form solvers are :mod:`fdl_robot.core.handeye`'s: TSAI, PARK, HORAUD, ANDREFF and
DANIILIDIS solve (2) from all pairs i < j; SHAH and LI solve (1) directly for X and Z, written
as ``A_i X = Z B_i`` with ``A_i = H_i`` and ``B_i = C_i^-1``. They are the methods of OpenCV's
``cv2.calibrateHandEye`` and ``cv2.calibrateRobotWorldHandEye``, whose Python bindings are
missing from the pinned OpenCV 5.0.0 wheels (opencv/opencv#29565, fixed after that release);
``test_handeye.py`` compares the two where OpenCV has them.

Finally :func:`refine` minimises the reprojection error of every board corner over X and Z
(Levenberg-Marquardt, started from the best closed-form answer): the corners are what was
measured, the closed forms weigh each pose's PnP estimate equally, whatever its depth noise.

Degenerate pose sets
--------------------
(2) fixes R_X only if the rotation axes of the motions A_ij are not all parallel (a rotation
about the common axis is unobservable), and t_X only if, in addition, the rotations are
large: (R_A - I) has singular values 2 sin(theta/2), 2 sin(theta/2) and 0 (along the axis),
so a translation error of the board poses is amplified by about 1 / (2 sin(theta/2)).
:func:`check_pose_set` rejects, with a message saying what to change:

* fewer than :data:`MIN_POSES` (3) poses: two motions are the least that can fix X;
* no motion larger than :data:`MIN_ROTATION_DEG` (10 deg): the amplification
  1 / (2 sin(theta/2)) is 5.7 at 10 deg, so a 0.5 mm board-pose error becomes ~3 mm;
* an axis spread below :data:`MIN_AXIS_SPREAD_DEG` (15 deg). The spread is
  2 atan(sqrt(lambda_2 / lambda_1)) of the eigenvalues of the scatter sum_ij w_ij a_ij a_ij^T
  of the unit axes a_ij (weights w = sin^2(theta_ij / 2), motions under 2 deg left out: their
  axes are noise), which is the angle between the axes for two motions. R_X about directions
  normal to the axes is fixed by the axes' differences, so the rotation noise of the board
  poses is amplified by about 1 / sin(spread): 3.9 at 15 deg, which turns the 0.05 deg of a
  good board pose into 0.2 deg, the accuracy we aim for.

Residuals
---------
Per pose: the reprojection error of the board corners through the chain,
``C_i = X^-1 H_i^-1 Z`` (pixels; this is what :func:`refine` minimises and what picks the
best method), and the consistency of (1), ``Z^-1 H_i X C_i`` (mm, deg). Over all pairs: the
AX = XB residual ``(A_ij X)^-1 X B_ij`` (mm, deg).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fdl_robot.core import handeye as solvers
from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.kinematics import rotation_exp, rotation_log
from fdl_robot.perception.charuco import BoardObservation

__all__ = ["MODES", "EYE_IN_HAND", "EYE_TO_HAND", "HAND_EYE_METHODS", "ROBOT_WORLD_METHODS", "MIN_POSES",
           "MIN_ROTATION_DEG", "MIN_AXIS_SPREAD_DEG", "DegeneratePoses", "PoseSample", "MotionStats",
           "MethodResult", "HandEyeCalibration", "hand_poses", "check_pose_set", "solve_hand_eye",
           "solve_robot_world", "mean_transform", "transform_error", "evaluate", "refine", "calibrate",
           "answer_frames"]

EYE_IN_HAND = "eye-in-hand"
EYE_TO_HAND = "eye-to-hand"
MODES = (EYE_IN_HAND, EYE_TO_HAND)

#: The AX = XB solvers (cv2.calibrateHandEye's methods).
HAND_EYE_METHODS = solvers.AXXB_METHODS
#: The AX = ZB solvers (cv2.calibrateRobotWorldHandEye's methods).
ROBOT_WORLD_METHODS = solvers.AXZB_METHODS
#: The row of :func:`refine` in the method table.
REFINED = "refined (LM on reprojection)"

MIN_POSES = 3
MIN_ROTATION_DEG = 10.0
MIN_AXIS_SPREAD_DEG = 15.0
#: Motions rotating less than this are left out of the axis spread (their axis is noise).
_AXIS_MIN_ANGLE_DEG = 2.0


class DegeneratePoses(ValueError):
    """A pose set from which X cannot be determined; the message says why and what to change."""


@dataclass(frozen=True)
class PoseSample:
    """One capture: the flange pose at the image stamp, the board pose and its corners."""

    T_base_flange: Transform
    T_cam_board: Transform
    observation: BoardObservation
    label: str = ""


def answer_frames(mode: str) -> tuple[str, str]:
    """(parent, child) of X in ``mode``: ("flange", "cam") or ("base", "cam")."""
    _check_mode(mode)
    return ("flange", "cam") if mode == EYE_IN_HAND else ("base", "cam")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def hand_poses(T_base_flange: Sequence[Transform], mode: str) -> list[Transform]:
    """H_i of (1): T_base_flange_i (eye-in-hand) or its inverse T_flange_base_i (eye-to-hand)."""
    _check_mode(mode)
    return list(T_base_flange) if mode == EYE_IN_HAND else [T.inverse() for T in T_base_flange]


def _angle_deg(R: np.ndarray) -> float:
    return float(np.rad2deg(np.linalg.norm(rotation_log(R))))


@dataclass(frozen=True)
class MotionStats:
    """How well a pose set constrains X: poses, motions (pairs), their largest rotation and
    the spread of their rotation axes (degrees), see the module docstring."""

    n_poses: int
    n_motions: int
    max_rotation_deg: float
    axis_spread_deg: float

    def describe(self) -> str:
        return (f"{self.n_poses} poses, {self.n_motions} motions, largest rotation {self.max_rotation_deg:.1f} deg, "
                f"rotation-axis spread {self.axis_spread_deg:.1f} deg")


def motion_stats(H: Sequence[Transform]) -> MotionStats:
    """Largest relative rotation and axis spread of the motions A_ij = H_j^-1 H_i, i < j."""
    n = len(H)
    scatter = np.zeros((3, 3))
    max_angle = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            r = rotation_log(H[j].rotation.T @ H[i].rotation)
            theta = float(np.linalg.norm(r))
            max_angle = max(max_angle, theta)
            if theta >= np.deg2rad(_AXIS_MIN_ANGLE_DEG):
                a = r / theta
                scatter += np.sin(theta / 2) ** 2 * np.outer(a, a)
    lam = np.sort(np.linalg.eigvalsh(scatter))[::-1]
    spread = 2.0 * np.arctan(np.sqrt(max(lam[1], 0.0) / lam[0])) if lam[0] > 0 else 0.0
    return MotionStats(n, n * (n - 1) // 2, float(np.rad2deg(max_angle)), float(np.rad2deg(spread)))


def check_pose_set(T_base_flange: Sequence[Transform], mode: str) -> MotionStats:
    """Raise :class:`DegeneratePoses` unless the poses can determine X (module docstring)."""
    n = len(T_base_flange)
    if n < MIN_POSES:
        raise DegeneratePoses(f"too few poses: {n}, need at least {MIN_POSES} (two motions with non-parallel "
                              "rotation axes); 15-20 diverse poses are recommended")
    stats = motion_stats(hand_poses(T_base_flange, mode))
    if stats.max_rotation_deg < MIN_ROTATION_DEG:
        raise DegeneratePoses(f"degenerate poses: the flange rotates by at most {stats.max_rotation_deg:.1f} deg "
                              f"between poses, need >= {MIN_ROTATION_DEG:g} deg (the camera's position is "
                              "unobservable under pure translation); tilt the flange 20-40 deg between poses")
    if stats.axis_spread_deg < MIN_AXIS_SPREAD_DEG:
        raise DegeneratePoses(f"degenerate poses: the rotation axes of the motions are nearly parallel (spread "
                              f"{stats.axis_spread_deg:.1f} deg < {MIN_AXIS_SPREAD_DEG:g} deg; a rotation about "
                              "their common axis is unobservable); rotate the flange about at least two "
                              "different axes, e.g. tilt it left-right and up-down, not only one joint")
    return stats


def _transform(T: np.ndarray) -> Transform:
    return Transform(T[:3, :3], T[:3, 3])


def solve_hand_eye(H: Sequence[Transform], C: Sequence[Transform], method: str) -> Transform:
    """X of (2) from all pairs i < j: A_ij = H_j^-1 H_i, B_ij = C_j C_i^-1."""
    Hm = np.array([T.as_matrix() for T in H])
    Cm = np.array([T.as_matrix() for T in C])
    i, j = np.triu_indices(len(H), k=1)
    A = np.linalg.inv(Hm[j]) @ Hm[i]
    B = Cm[j] @ np.linalg.inv(Cm[i])
    return _transform(solvers.solve_axxb(A, B, method))


def solve_robot_world(H: Sequence[Transform], C: Sequence[Transform], method: str) -> tuple[Transform, Transform]:
    """(X, Z) of (1) as A_i X = Z B_i with A_i = H_i, B_i = C_i^-1."""
    A = np.array([T.as_matrix() for T in H])
    B = np.array([T.inverse().as_matrix() for T in C])
    X, Z = solvers.solve_axzb(A, B, method)
    return _transform(X), _transform(Z)


def mean_transform(Ts: Sequence[Transform]) -> Transform:
    """Mean of rigid transforms: the chordal L2 mean rotation (the SO(3) projection of the sum
    of the matrices) and the mean translation."""
    R = solvers.nearest_rotation(sum(T.rotation for T in Ts))
    return Transform(R, np.mean([T.translation for T in Ts], axis=0))


def transform_error(T_est: Transform, T_true: Transform) -> tuple[float, float]:
    """(|t_est - t_true| in mm, angle of R_est^T R_true in degrees)."""
    return (float(np.linalg.norm(T_est.translation - T_true.translation) * 1e3),
            _angle_deg(T_est.rotation.T @ T_true.rotation))


@dataclass
class MethodResult:
    """One solver's answer and its residuals (see the module docstring)."""

    method: str
    X: Transform
    Z: Transform
    reprojection_px: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (N,) RMS per pose
    consistency_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))    # (N,) of (1)
    consistency_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    axxb_rms_mm: float = float("nan")
    axxb_rms_deg: float = float("nan")
    error: str = ""                                                             # why it failed

    @property
    def reprojection_rms_px(self) -> float:
        return float(np.sqrt(np.mean(self.reprojection_px ** 2))) if self.reprojection_px.size else float("inf")


def _corner_residuals(X: Transform, Z: Transform, H: Sequence[Transform], samples: Sequence[PoseSample],
                      camera: PinholeCamera) -> list[np.ndarray]:
    """Per pose, the (K_i, 2) pixel residuals of the corners through C_i = X^-1 H_i^-1 Z."""
    X_inv = X.inverse()
    out = []
    for Hi, s in zip(H, samples, strict=True):
        C = X_inv @ Hi.inverse() @ Z
        out.append(camera.project(C.apply(s.observation.p_board)) - s.observation.uv)
    return out


def evaluate(method: str, X: Transform, Z: Transform | None, samples: Sequence[PoseSample], mode: str,
             camera: PinholeCamera) -> MethodResult:
    """Residuals of an answer X (Z: the mean of H_i X C_i when None)."""
    H = hand_poses([s.T_base_flange for s in samples], mode)
    C = [s.T_cam_board for s in samples]
    Z_i = [Hi @ X @ Ci for Hi, Ci in zip(H, C, strict=True)]
    Z = Z if Z is not None else mean_transform(Z_i)
    dev = np.array([transform_error(Zi, Z) for Zi in Z_i])
    reproj = np.array([np.sqrt(np.mean(np.sum(r ** 2, axis=1))) for r in _corner_residuals(X, Z, H, samples, camera)])
    pair_t, pair_r = [], []
    for i in range(len(H)):
        for j in range(i + 1, len(H)):
            A = H[j].inverse() @ H[i]
            B = C[j] @ C[i].inverse()
            e_t, e_r = transform_error(A @ X, X @ B)
            pair_t.append(e_t)
            pair_r.append(e_r)
    return MethodResult(method, X, Z, reproj, dev[:, 0], dev[:, 1],
                        float(np.sqrt(np.mean(np.square(pair_t)))), float(np.sqrt(np.mean(np.square(pair_r)))))


def _perturbed(T: Transform, d: np.ndarray) -> Transform:
    """T exp(d): d = (rotation vector, translation) in T's own frame."""
    return T @ Transform(rotation_exp(d[:3]), d[3:])


def refine(X0: Transform, Z0: Transform, samples: Sequence[PoseSample], mode: str,
           camera: PinholeCamera) -> tuple[Transform, Transform]:
    """X, Z minimising the corners' reprojection error through C_i = X^-1 H_i^-1 Z, from (X0, Z0).

    Levenberg-Marquardt (``scipy.optimize.least_squares``) on 12 local parameters
    (X = X0 exp(dx), Z = Z0 exp(dz)); robot poses are taken as exact (joint encoders are far
    more precise than a board pose).
    """
    from scipy.optimize import least_squares

    H = hand_poses([s.T_base_flange for s in samples], mode)

    def residuals(p: np.ndarray) -> np.ndarray:
        return np.concatenate([r.ravel() for r in _corner_residuals(_perturbed(X0, p[:6]), _perturbed(Z0, p[6:]),
                                                                   H, samples, camera)])

    sol = least_squares(residuals, np.zeros(12), method="lm", x_scale="jac")
    return _perturbed(X0, sol.x[:6]), _perturbed(Z0, sol.x[6:])


@dataclass
class HandEyeCalibration:
    """Every method's result, the best one (lowest reprojection RMS), and the pose set's stats."""

    mode: str
    results: list[MethodResult]
    best: MethodResult
    stats: MotionStats


def calibrate(samples: Sequence[PoseSample], mode: str, camera: PinholeCamera, *,
              methods: Sequence[str] | None = None, refine_best: bool = True) -> HandEyeCalibration:
    """Check the pose set, run every closed-form method, refine the best, pick the lowest residual.

    ``methods``: names from :data:`HAND_EYE_METHODS` and :data:`ROBOT_WORLD_METHODS` (all
    when None). Raises :class:`DegeneratePoses`. A method that fails (singular system, NaN) gets
    a row with its ``error`` and is never the best.
    """
    _check_mode(mode)
    stats = check_pose_set([s.T_base_flange for s in samples], mode)
    H = hand_poses([s.T_base_flange for s in samples], mode)
    C = [s.T_cam_board for s in samples]
    results = []
    for name in methods or (*HAND_EYE_METHODS, *ROBOT_WORLD_METHODS):
        if name not in HAND_EYE_METHODS and name not in ROBOT_WORLD_METHODS:
            raise ValueError(f"unknown method {name!r}; known: {[*HAND_EYE_METHODS, *ROBOT_WORLD_METHODS]}")
        try:
            if name in HAND_EYE_METHODS:
                X, Z = solve_hand_eye(H, C, name), None
            else:
                X, Z = solve_robot_world(H, C, name)
            results.append(evaluate(name, X, Z, samples, mode, camera))
        except (ValueError, np.linalg.LinAlgError) as exc:
            results.append(MethodResult(name, Transform.identity(), Transform.identity(),
                                        error=str(exc).strip().splitlines()[-1][:120]))
    usable = [r for r in results if not r.error and np.isfinite(r.reprojection_rms_px)]
    if not usable:
        raise DegeneratePoses("every hand-eye method failed: " + "; ".join(f"{r.method}: {r.error}" for r in results))
    best = min(usable, key=lambda r: r.reprojection_rms_px)
    if refine_best:
        X, Z = refine(best.X, best.Z, samples, mode, camera)
        refined = evaluate(REFINED, X, Z, samples, mode, camera)
        results.append(refined)
        if refined.reprojection_rms_px < best.reprojection_rms_px:
            best = refined
    return HandEyeCalibration(mode, results, best, stats)

"""Hand-eye solvers and checks: known X recovered from synthetic poses, degenerate sets rejected."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fdl_robot.core import handeye as solvers
from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform
from fdl_robot.core.kinematics import rotation_exp
from fdl_robot.perception import handeye as he
from fdl_robot.perception.charuco import DEFAULT_BOARD, BoardObservation, board_pose

CAMERA = PinholeCamera(460.0, 460.0, 319.5, 239.5, 640, 480)


def random_transform(rng, max_deg: float, t_std: float) -> Transform:
    axis = rng.normal(size=3)
    return Transform(rotation_exp(np.deg2rad(rng.uniform(0, max_deg)) * axis / np.linalg.norm(axis)),
                     rng.normal(size=3) * t_std)


def synthetic_set(mode: str, rng, n: int = 16, pixel_std: float = 0.2, tilt_rad: float = 0.4):
    """X, Z and n samples: boards 0.5-0.7 m in front of the camera, corners with pixel noise."""
    X, Z = random_transform(rng, 170, 0.4), random_transform(rng, 170, 0.4)
    P = DEFAULT_BOARD.corners_board()
    samples = []
    for _ in range(n):
        C_true = Transform(rotation_exp(rng.normal(size=3) * tilt_rad) @ np.diag([1.0, -1.0, -1.0]),
                           [rng.normal(0, 0.04) - 0.12, rng.normal(0, 0.04) - 0.09, rng.uniform(0.5, 0.7)])
        H = Z @ C_true.inverse() @ X.inverse()                          # from Z = H X C
        T_base_flange = H if mode == he.EYE_IN_HAND else H.inverse()
        uv = CAMERA.project(C_true.apply(P)) + rng.normal(0, pixel_std, (len(P), 2))
        obs = BoardObservation(np.arange(len(P)), uv, P, 0)
        samples.append(he.PoseSample(T_base_flange, board_pose(obs, CAMERA)[0], obs))
    return X, Z, samples


def motions(X, rng, n=12):
    """Motion pairs (A, B) (K, 4, 4) of AX = XB for a known X, noise-free."""
    H = [random_transform(rng, 90, 0.3).as_matrix() for _ in range(n)]
    Z = random_transform(rng, 90, 0.3).as_matrix()
    C = [np.linalg.inv(X) @ np.linalg.inv(h) @ Z for h in H]
    i, j = np.triu_indices(n, 1)
    A = np.array([np.linalg.inv(H[b]) @ H[a] for a, b in zip(i, j, strict=True)])
    B = np.array([C[b] @ np.linalg.inv(C[a]) for a, b in zip(i, j, strict=True)])
    return A, B, np.array(H), np.array(C), Z


@pytest.mark.parametrize("method", solvers.AXXB_METHODS)
def test_axxb_solvers_are_exact_without_noise(method):
    rng = np.random.default_rng(3)
    X = random_transform(rng, 150, 0.3).as_matrix()
    A, B, _, _, _ = motions(X, rng)
    assert np.allclose(solvers.solve_axxb(A, B, method), X, atol=1e-9)


@pytest.mark.parametrize("method", solvers.AXZB_METHODS)
def test_axzb_solvers_are_exact_without_noise(method):
    rng = np.random.default_rng(4)
    X = random_transform(rng, 150, 0.3).as_matrix()
    _, _, H, C, Z = motions(X, rng)
    Xe, Ze = solvers.solve_axzb(H, np.linalg.inv(C), method)            # H_i X = Z C_i^-1
    assert np.allclose(Xe, X, atol=1e-9) and np.allclose(Ze, Z, atol=1e-9)


@pytest.mark.skipif(not hasattr(cv2, "calibrateHandEye"), reason="this OpenCV build lacks calibrateHandEye "
                    "(opencv/opencv#29565)")
@pytest.mark.parametrize("method", solvers.AXXB_METHODS)
def test_axxb_solvers_agree_with_opencv(method):
    rng = np.random.default_rng(5)
    X, _, samples = synthetic_set(he.EYE_IN_HAND, rng)
    H = [s.T_base_flange for s in samples]
    C = [s.T_cam_board for s in samples]
    R, t = cv2.calibrateHandEye([h.rotation for h in H], [h.translation for h in H], [c.rotation for c in C],
                                [c.translation for c in C], method=getattr(cv2, f"CALIB_HAND_EYE_{method}"))
    ours = he.solve_hand_eye(H, C, method)
    assert he.transform_error(ours, Transform(R, np.ravel(t))) < (0.5, 0.05)


@pytest.mark.parametrize("mode", he.MODES)
def test_calibration_recovers_a_known_X_from_noisy_corners(mode):
    rng = np.random.default_rng(11 if mode == he.EYE_IN_HAND else 12)
    X, Z, samples = synthetic_set(mode, rng, pixel_std=0.3)
    cal = he.calibrate(samples, mode, CAMERA)
    assert {r.method for r in cal.results} == {*he.HAND_EYE_METHODS, *he.ROBOT_WORLD_METHODS, he.REFINED}
    for r in cal.results:                                    # every closed form is close ...
        e_t, e_r = he.transform_error(r.X, X)
        assert not r.error and e_t < 5.0 and e_r < 0.5, (r.method, e_t, e_r)
    e_t, e_r = he.transform_error(cal.best.X, X)             # ... and the selected one within the target
    assert cal.best.method == he.REFINED and e_t < 1.0 and e_r < 0.1
    assert he.transform_error(cal.best.Z, Z)[0] < 2.0
    # the residual picks it: the refined answer reprojects best, near the corner noise (0.3 px per axis)
    assert cal.best.reprojection_rms_px == min(r.reprojection_rms_px for r in cal.results)
    assert 0.3 < cal.best.reprojection_rms_px < 0.5
    assert len(cal.best.reprojection_px) == len(samples) and np.all(cal.best.consistency_mm < 10)


def test_too_few_poses_are_rejected():
    rng = np.random.default_rng(1)
    _, _, samples = synthetic_set(he.EYE_TO_HAND, rng, n=2)
    with pytest.raises(he.DegeneratePoses, match="too few poses: 2, need at least 3"):
        he.calibrate(samples, he.EYE_TO_HAND, CAMERA)


def test_rotations_about_one_axis_are_rejected():
    """The flange turning only about its own z (joint 6): X's rotation about that axis is unobservable."""
    base = Transform.from_rpy(0.3, -0.2, 1.0, [0.4, 0.1, 0.3])
    poses = [base @ Transform(rotation_exp([0, 0, a]), [0.02 * k, 0, 0])
             for k, a in enumerate(np.deg2rad([0, 20, 45, 70, 100, 130]))]
    for mode in he.MODES:
        with pytest.raises(he.DegeneratePoses, match=r"rotation axes of the motions are nearly parallel \(spread "
                           r"0\.0 deg < 15 deg"):
            he.check_pose_set(poses, mode)
    # a second axis, tilted 30 deg, makes the set usable
    poses.append(base @ Transform(rotation_exp([np.deg2rad(30), 0, 0])))
    assert he.check_pose_set(poses, he.EYE_IN_HAND).axis_spread_deg > 15


def test_pure_translations_are_rejected():
    poses = [Transform.from_rpy(0.0, np.pi, 0.0, [0.4 + 0.05 * k, 0.1 * (k % 2), 0.3]) for k in range(6)]
    with pytest.raises(he.DegeneratePoses, match="rotates by at most 0.0 deg between poses, need >= 10 deg"):
        he.check_pose_set(poses, he.EYE_TO_HAND)


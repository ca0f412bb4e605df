"""From 2D detections and an aligned depth image to 3D objects in ``base_link``.

For each box with centre (u, v) and robust depth z (median of the valid depths in the
box's central window, :func:`fdl_robot.core.camera.boxes_depth`):

1. back-project the centre at the measured surface depth (seed eq. 29.3-29.5),
       p_surf_cam = z K^-1 [u, v, 1]^T
2. the camera sees the object's near surface; its centre lies ``center_offset_m``
   further along the viewing ray (half the cube size for a cube):
       p_cam = p_surf_cam + center_offset_m * p_surf_cam / ||p_surf_cam||
3. change frames: p_base = R_base_cam p_cam + t_base_cam
4. first-order covariance of p_cam from pixel noise sigma_px and depth noise
   sigma_z = depth_sigma_m * z^2 (stereo depth error grows with z^2):
       J = d p / d(u, v, z) = [[z/fx, 0, (u-cx)/fx], [0, z/fy, (v-cy)/fy], [0, 0, 1]]
       Sigma_cam = J diag(sigma_px^2, sigma_px^2, sigma_z^2) J^T
       Sigma_base = R_base_cam Sigma_cam R_base_cam^T
5. size estimate from the box: width_m = (x2 - x1) z / fx, height_m = (y2 - y1) z / fy.

Boxes whose depth is invalid or outside [min_depth_m, max_depth_m] are dropped and
reported in ``invalid`` (never lifted to a bogus point at depth 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fdl_robot.core.camera import PinholeCamera, lift_boxes
from fdl_robot.core.geometry import Transform


@dataclass(frozen=True)
class LiftingConfig:
    depth_window: float = 0.5          # fraction of the box around its centre
    min_depth_m: float = 0.1
    max_depth_m: float = 4.0
    pixel_sigma_px: float = 2.0
    depth_sigma_m: float = 0.005       # at z = 1 m; scales with z^2
    center_offset_m: float = 0.02      # visible surface -> object centre along the ray


@dataclass(frozen=True)
class Objects3D:
    """Lifted objects: ``index`` says which input detection each row came from."""

    index: np.ndarray            # (M,) indices into the detections
    p_base: np.ndarray           # (M, 3) metres, centre estimate in the target frame
    covariance_base: np.ndarray  # (M, 3, 3) m^2
    depth_m: np.ndarray          # (M,) surface depth used, metres along the optical axis
    size_m: np.ndarray           # (M, 3) width, height, 0 (unknown extent along the ray)
    invalid: np.ndarray          # indices of detections without a usable depth


def lift_detections(boxes_xyxy: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera,
                    T_base_cam: Transform, config: LiftingConfig = LiftingConfig()) -> Objects3D:
    """Lift XYXY boxes (pixels) with an aligned depth image (HxW metres) to ``base_link``."""
    boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
    p_surf, z = lift_boxes(camera, depth_m, boxes, config.depth_window, depth_scale=1.0)
    ok = np.isfinite(z) & (z >= config.min_depth_m) & (z <= config.max_depth_m)
    idx = np.flatnonzero(ok)
    boxes, z, p_surf = boxes[idx], z[idx], p_surf[idx]

    uv = (boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5       # pixel-centre convention, see lift_boxes
    ray = p_surf / np.linalg.norm(p_surf, axis=1, keepdims=True)
    p_cam = p_surf + config.center_offset_m * ray

    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    J = np.zeros((len(idx), 3, 3))
    J[:, 0, 0], J[:, 0, 2] = z / fx, (uv[:, 0] - cx) / fx
    J[:, 1, 1], J[:, 1, 2] = z / fy, (uv[:, 1] - cy) / fy
    J[:, 2, 2] = 1.0
    sigma_z = config.depth_sigma_m * z ** 2
    noise = np.zeros((len(idx), 3, 3))
    noise[:, 0, 0] = noise[:, 1, 1] = config.pixel_sigma_px ** 2
    noise[:, 2, 2] = sigma_z ** 2
    cov_cam = J @ noise @ J.transpose(0, 2, 1)
    R = T_base_cam.rotation
    cov_base = R @ cov_cam @ R.T

    size = np.zeros((len(idx), 3))
    size[:, 0] = (boxes[:, 2] - boxes[:, 0]) * z / fx
    size[:, 1] = (boxes[:, 3] - boxes[:, 1]) * z / fy
    return Objects3D(idx, T_base_cam.apply(p_cam), cov_base, z, size, np.flatnonzero(~ok))

"""MuJoCo camera <-> ROS camera conventions: intrinsics, optical frame, depth units.

Everything here was verified empirically against MuJoCo's renderer (see
``test/test_sim_camera.py`` and ``sim/README.md``).

Intrinsics
----------
MuJoCo renders a symmetric perspective frustum of vertical field of view ``fovy``.
With OpenCV / ROS pixel coordinates (the centre of the top-left pixel is (0, 0))::

    f_y = (H / 2) / tan(fovy / 2),    f_x = f_y   (square pixels)
    c_x = (W - 1) / 2,                c_y = (H - 1) / 2

The optical axis passes through the centre of the image, which lies *between*
pixels for even W, H -- hence (W - 1) / 2 and not W / 2 (a sphere rendered on the
axis has its pixel centroid at exactly (159.5, 119.5) in a 320x240 image).

Extrinsics
----------
A MuJoCo camera looks along its -z axis with +y up; the ROS optical frame looks
along +z with x right and y down (REP-103 ``*_optical_frame``).  The two differ by
a rotation of pi about x::

    R_world_optical = R_world_mjcam @ diag(1, -1, -1)

Depth
-----
``mujoco.Renderer`` in depth mode returns the linearised OpenGL depth buffer in
metres: the *z-depth* (distance along the optical axis, Z of eq. 29.5), not the
range along the ray.  Pixels with no surface closer than the far clipping plane
read exactly ``zfar = model.vis.map.zfar * model.stat.extent``; geometry closer than
``znear * extent`` is clipped away.  :func:`clean_depth_m` turns those into NaN
(REP-118: NaN = no return), and :func:`depth_m_to_mm_uint16` into 0 (the
realsense-ros ``16UC1`` convention: millimetres, 0 = invalid).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform

__all__ = [
    "R_MJCAM_OPTICAL",
    "intrinsics_from_fovy",
    "optical_pose_from_mujoco",
    "clean_depth_m",
    "depth_m_to_mm_uint16",
    "depth_m_to_units",
    "depth_mm_uint16_to_m",
]

#: Rotation taking optical-frame vectors (z forward, x right, y down) to MuJoCo
#: camera-frame vectors (looks along -z, y up): a rotation of pi about x.
R_MJCAM_OPTICAL = np.diag([1.0, -1.0, -1.0])


def intrinsics_from_fovy(fovy_deg: float, width: int, height: int) -> PinholeCamera:
    """Pinhole intrinsics of a MuJoCo camera rendered at ``width`` x ``height`` pixels.

    f_y = (H/2) / tan(fovy/2), f_x = f_y, c_x = (W-1)/2, c_y = (H-1)/2 (pixels).
    """
    fy_px = 0.5 * height / np.tan(0.5 * np.deg2rad(fovy_deg))
    return PinholeCamera(fx=fy_px, fy=fy_px, cx=0.5 * (width - 1), cy=0.5 * (height - 1),
                         width=width, height=height)


def optical_pose_from_mujoco(cam_xpos: ArrayLike, cam_xmat: ArrayLike) -> Transform:
    """``T_world_cam`` of the optical frame from MuJoCo's ``data.cam_xpos``/``cam_xmat``.

    p_world = R_world_mjcam diag(1, -1, -1) p_optical + t_world_cam.
    """
    R_world_mjcam = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3)
    return Transform(R_world_mjcam @ R_MJCAM_OPTICAL, np.asarray(cam_xpos, dtype=np.float64))


def clean_depth_m(depth_raw_m: np.ndarray, far_m: float) -> np.ndarray:
    """MuJoCo depth render (metres) -> float32 metres with NaN where nothing was hit.

    A pixel is invalid when its depth is at (or within 1e-4 relative of) the far
    clipping plane ``far_m``, or not positive.
    """
    depth = np.asarray(depth_raw_m, dtype=np.float32).copy()
    invalid = ~(depth > 0.0) | (depth >= np.float32(far_m * (1.0 - 1e-4)))
    depth[invalid] = np.nan
    return depth


def depth_m_to_units(depth_m: ArrayLike, depth_unit_m: float) -> np.ndarray:
    """float metres -> uint16 in units of ``depth_unit_m`` (realsense ``16UC1``), 0 = invalid.

    value = round(depth_m / depth_unit_m); NaN, inf, <= 0 and depths beyond 65535 units map to 0
    (a D405's 0.1 mm units hold up to 6.5535 m, millimetres up to 65.535 m).
    """
    d = np.asarray(depth_m, dtype=np.float64)
    units_per_m = 1.0 / depth_unit_m                      # 1000.0 and 10000.0 exactly
    valid = np.isfinite(d) & (d > 0.0) & (d <= 65535 / units_per_m)
    out = np.zeros(d.shape, dtype=np.uint16)
    out[valid] = np.rint(d[valid] * units_per_m).astype(np.uint16)
    return out


def depth_m_to_mm_uint16(depth_m: ArrayLike) -> np.ndarray:
    """float metres -> uint16 millimetres (realsense ``16UC1``), 0 = invalid.

    depth_mm = round(1000 depth_m); NaN, inf, <= 0 and depths beyond 65.535 m map to 0.
    """
    return depth_m_to_units(depth_m, 1e-3)


def depth_mm_uint16_to_m(depth_mm: ArrayLike) -> np.ndarray:
    """uint16 millimetres -> float32 metres, 0 (invalid) -> NaN."""
    d = np.asarray(depth_mm)
    out = d.astype(np.float32) * np.float32(1e-3)
    out[d == 0] = np.nan
    return out

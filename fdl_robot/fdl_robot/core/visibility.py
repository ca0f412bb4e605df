"""Could this camera have seen this point? The field of view of a pinhole camera.

Frames and units
----------------
``p_base`` (N, 3) are points in the frame of the camera pose, normally ``base_link``
(metres).  ``T_base_cam`` (:class:`~fdl_robot.core.geometry.Transform`) maps points of
the camera *optical* frame (z forward, x right, y down) into that frame at the image's
stamp.  Pixels follow :mod:`fdl_robot.core.camera`: pixel centres at integers, so a
``W x H`` image covers ``u in [-1/2, W - 1/2]``, ``v in [-1/2, H - 1/2]``.

The test
--------
A point is *in view* when its depth lies in the range the camera measures and it
projects into the image, shrunk on every side by a margin of ``m`` pixels plus the image
radius of an object of radius ``r`` (metres) at that depth::

    p_cam = T_base_cam^-1 p_base = R^T (p_base - t)           (x, y, z) = p_cam
    z_min <= z <= z_max          (and z > 0)
    u = fx x / z + cx,   v = fy y / z + cy                      (ideal pinhole of K)
    m_u = m + fx r / z,  m_v = m + fy r / z                      (pixels)
    -1/2 + m_u <= u <= W - 1/2 - m_u,   -1/2 + m_v <= v <= H - 1/2 - m_v

So with ``r`` the object's half size, the object lies wholly inside the image (to first
order): an object whose centre is nearer the border is partly cut off, and a detector may
well miss it.  ``m < 0`` accepts points up to ``-m`` pixels outside.

What it does not model
----------------------
* **Occlusion**: a point behind another object, the gripper or the table edge counts as
  in view.  The test is geometry of the frustum only.
* **Lens distortion**: the ideal pinhole of ``K`` is used even for a distorted camera.
  Far outside the image a distortion polynomial folds points back into it, so the
  undistorted projection is the safe test; near the border the margin absorbs the
  difference (a few pixels for the cameras we use).
* **The object's extent** beyond the sphere of radius ``r`` seen from its centre (the
  image radius ``f r / z`` ignores the perspective of a near, off-axis object).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fdl_robot.core.camera import PinholeCamera
from fdl_robot.core.geometry import Transform

__all__ = ["CameraView", "in_view"]


def _check_depth_range(min_depth_m: float, max_depth_m: float) -> tuple[float, float]:
    """The depth range as floats; ValueError unless 0 <= min < max, both finite."""
    lo, hi = float(min_depth_m), float(max_depth_m)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
        raise ValueError(f"depth range must satisfy 0 <= min < max (finite), got [{lo}, {hi}] m")
    return lo, hi


def in_view(p_base: ArrayLike, camera: PinholeCamera, T_base_cam: Transform, min_depth_m: float,
            max_depth_m: float, margin_px: float = 0.0, radius_m: float = 0.0) -> NDArray[np.bool_]:
    """Mask (N,) of the points ``p_base`` (N, 3) (m) that the camera could see (module doc).

    ``camera`` must have a width and height (pixels); ``T_base_cam`` is the camera's pose at
    the image stamp; depths ``z_cam`` in ``[min_depth_m, max_depth_m]`` (m) are measurable;
    ``margin_px`` shrinks (> 0) or grows (< 0) the image on every side, and so does the
    image radius ``f radius_m / z`` of an object of radius ``radius_m`` (m, >= 0).  Points
    with a non-finite coordinate are not in view.  Occlusion and distortion are not modelled.
    """
    if camera.width is None or camera.height is None:
        raise ValueError("in_view needs a camera with width and height")
    _check_depth_range(min_depth_m, max_depth_m)
    if not math.isfinite(margin_px):
        raise ValueError(f"margin_px must be finite, got {margin_px}")
    if not (math.isfinite(radius_m) and radius_m >= 0.0):
        raise ValueError(f"radius_m must be finite and >= 0, got {radius_m}")
    p = np.asarray(p_base, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"p_base must have shape (N, 3), got {p.shape}")
    finite = np.isfinite(p).all(axis=1)
    x, y, z = T_base_cam.inverse().apply(np.where(finite[:, None], p, 0.0)).T
    in_depth = finite & (z > 0.0) & (z >= min_depth_m) & (z <= max_depth_m)
    z_safe = np.where(in_depth, z, 1.0)
    u = camera.fx * x / z_safe + camera.cx
    v = camera.fy * y / z_safe + camera.cy
    m_u = margin_px + camera.fx * radius_m / z_safe
    m_v = margin_px + camera.fy * radius_m / z_safe
    return (in_depth & (u >= -0.5 + m_u) & (u <= camera.width - 0.5 - m_u)
            & (v >= -0.5 + m_v) & (v <= camera.height - 0.5 - m_v))


@dataclass(frozen=True)
class CameraView:
    """One camera's view at one image stamp: intrinsics and size, pose, depth range.

    ``view.sees(p_base, margin_px, radius_m)`` is :func:`in_view` with these; the tracker
    takes ``functools.partial(view.sees, margin_px=m, radius_m=r)`` as its ``observable``
    predicate.
    """

    camera: PinholeCamera
    """Intrinsics (pixels) with width and height."""
    T_base_cam: Transform
    """Optical frame -> the points' frame (normally base_link) at the image stamp."""
    min_depth_m: float
    """Nearest measurable depth along the optical axis (m)."""
    max_depth_m: float
    """Farthest measurable depth (m)."""
    frame_id: str = ""
    """Name of the optical frame (for messages and logs)."""

    def __post_init__(self) -> None:
        if self.camera.width is None or self.camera.height is None:
            raise ValueError("a CameraView needs a camera with width and height")
        lo, hi = _check_depth_range(self.min_depth_m, self.max_depth_m)
        object.__setattr__(self, "min_depth_m", lo)
        object.__setattr__(self, "max_depth_m", hi)

    def sees(self, p_base: ArrayLike, margin_px: float = 0.0, radius_m: float = 0.0) -> NDArray[np.bool_]:
        """Mask (N,) of the points ``p_base`` (N, 3) (m) in this view (:func:`in_view`)."""
        return in_view(p_base, self.camera, self.T_base_cam, self.min_depth_m, self.max_depth_m,
                       margin_px, radius_m)

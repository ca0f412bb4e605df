"""The pinhole camera: projection, back-projection with depth, and depth inside a box.

Frames and units
----------------
Points ``p_cam`` are in the camera *optical* frame (REP-103): z forward along the
optical axis, x right, y down, in metres.  Pixels ``uv`` = (u, v) are columns and rows
in the image, u right and v down, in the pixel coordinates of the intrinsic matrix::

        [fx  0 cx]
    K = [ 0 fy cy]                                                          (29.2)
        [ 0  0  1]

(fx, fy focal lengths and (cx, cy) principal point, in pixels; K is the row-major
``k`` of a ROS ``sensor_msgs/CameraInfo``).  Projection and its inverse for a point at
depth Z = d::

    u = fx X/Z + cx,   v = fy Y/Z + cy                     (project)
    X = (u - cx) d/fx,  Y = (v - cy) d/fy,  Z = d           (unproject, 29.3-29.5)

Lens distortion (optional) is OpenCV's / ROS's ``plumb_bob`` model, coefficients
(k1, k2, p1, p2, k3), applied to the normalised coordinates (X/Z, Y/Z); the
``rational_polynomial`` model (8 coefficients) is accepted too.  Distortion goes through
OpenCV, imported only when a camera actually has distortion.

Depth images follow realsense-ros and REP-118: ``uint16`` in millimetres (16UC1, 0 =
no data) or float32/float64 in metres (32FC1, NaN/inf/0 = no data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["PinholeCamera", "box_depth", "boxes_depth", "lift_boxes"]

#: Distortion models understood, with their numbers of coefficients.
DISTORTION_MODELS = {"plumb_bob": (4, 5), "rational_polynomial": (8,)}

#: Default scale of uint16 depth images: realsense-ros publishes millimetres.
UINT16_DEPTH_SCALE_M = 0.001


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("lens distortion needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def _rows(x: ArrayLike, width: int, name: str) -> tuple[np.ndarray, bool]:
    """``x`` as a float64 (N, width) array, and whether it was a single (width,) row."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (1, 2) or a.shape[-1] != width:
        raise ValueError(f"{name} must have shape ({width},) or (N, {width}), got {a.shape}")
    return a.reshape(-1, width), a.ndim == 1


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics fx, fy, cx, cy (pixels), optional image size and distortion.

    ``dist`` holds plumb_bob (k1, k2, p1, p2[, k3]) or rational_polynomial (8)
    coefficients; all-zero coefficients are stored as ``None`` (no distortion).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int | None = None
    height: int | None = None
    dist: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive (uncalibrated camera?), got fx={self.fx}, fy={self.fy}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                if int(value) != value or value <= 0:
                    raise ValueError(f"{name} must be a positive integer, got {value}")
                object.__setattr__(self, name, int(value))
        if self.dist is not None:
            d = np.asarray(self.dist, dtype=np.float64).ravel()
            if d.size not in (4, 5, 8) or not np.all(np.isfinite(d)):
                raise ValueError(f"dist must hold 4, 5 or 8 finite coefficients, got {self.dist}")
            object.__setattr__(self, "dist", tuple(d.tolist()) if np.any(d) else None)

    @classmethod
    def from_camera_info(cls, k: ArrayLike, width: int, height: int, d: ArrayLike | None = None,
                         distortion_model: str = "plumb_bob") -> PinholeCamera:
        """From the fields of a ``sensor_msgs/CameraInfo``: row-major 9-vector (or 3x3) K,
        image size in pixels, distortion coefficients ``d`` and ``distortion_model``.

        Raises ValueError for an uncalibrated camera (all-zero K), a K that is not of
        pinhole form (skew, last row not 0 0 1), or distortion in an unsupported model.
        """
        K = np.asarray(k, dtype=np.float64)
        if K.size != 9:
            raise ValueError(f"K must have 9 elements, got shape {K.shape}")
        K = K.reshape(3, 3)
        if not np.all(np.isfinite(K)):
            raise ValueError("K contains NaN or inf")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"K has fx={K[0, 0]}, fy={K[1, 1]}: the camera is not calibrated")
        if K[0, 1] != 0 or K[1, 0] != 0 or not np.array_equal(K[2], [0.0, 0.0, 1.0]):
            raise ValueError(f"K is not of the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]: {K.tolist()}")
        coeffs = np.zeros(0) if d is None else np.asarray(d, dtype=np.float64).ravel()
        if np.any(coeffs):
            if coeffs.size not in DISTORTION_MODELS.get(distortion_model, ()):
                raise ValueError(f"unsupported distortion model {distortion_model!r} with {coeffs.size} "
                                 f"coefficients; supported: {DISTORTION_MODELS}")
        else:
            coeffs = None
        return cls(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height, coeffs)

    @property
    def K(self) -> np.ndarray:
        """The 3x3 intrinsic matrix (29.2), a new float64 array."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def is_distorted(self) -> bool:
        """True when the camera has non-zero distortion coefficients."""
        return self.dist is not None

    def project(self, p_cam: ArrayLike) -> np.ndarray:
        """Pixels uv (N, 2) of points p_cam (N, 3) in metres; (3,) gives (2,).

        u = fx X/Z + cx, v = fy Y/Z + cy (after distortion of (X/Z, Y/Z) if any).
        Points with Z <= 0 (behind the camera) or NaN/inf coordinates give NaN pixels.
        """
        p, single = _rows(p_cam, 3, "p_cam")
        uv = np.full((len(p), 2), np.nan)
        front = np.all(np.isfinite(p), axis=1) & (p[:, 2] > 0)
        if np.any(front):
            X, Y, Z = p[front].T
            if self.dist is None:
                uv[front] = np.stack([self.fx * X / Z + self.cx, self.fy * Y / Z + self.cy], axis=-1)
            else:
                cv2 = _cv2()
                zero = np.zeros(3)
                projected, _ = cv2.projectPoints(p[front].reshape(-1, 1, 3), zero, zero, self.K,
                                                 np.asarray(self.dist))
                uv[front] = projected.reshape(-1, 2)
        return uv[0] if single else uv

    def unproject(self, uv: ArrayLike, depth_m: ArrayLike) -> np.ndarray:
        """Points p_cam (N, 3) in metres at pixels uv (N, 2) with depths Z = depth_m (N,).

        X = (u - cx) d/fx, Y = (v - cy) d/fy, Z = d (seed eq. 29.3-29.5); with distortion
        the pixels are first undistorted (OpenCV, iterated to 1e-12 px).  ``depth_m`` may
        be a scalar.  Rows whose depth is not a positive finite number, or whose pixel
        is NaN, are NaN.  A single (2,) pixel gives a (3,) point.
        """
        px, single = _rows(uv, 2, "uv")
        d = np.asarray(depth_m, dtype=np.float64)
        if d.ndim == 0:
            d = np.full(len(px), float(d))
        if d.shape != (len(px),):
            raise ValueError(f"depth_m must be a scalar or have shape ({len(px)},), got {d.shape}")
        valid = np.isfinite(d) & (d > 0) & np.all(np.isfinite(px), axis=1)
        xy = np.full((len(px), 2), np.nan)  # normalised image coordinates (X/Z, Y/Z)
        if self.dist is None:
            xy[valid] = (px[valid] - [self.cx, self.cy]) / [self.fx, self.fy]
        elif np.any(valid):
            cv2 = _cv2()
            xy[valid] = _undistort_points(cv2, px[valid], self.K, np.asarray(self.dist))
        p = np.column_stack([xy * d[:, None], np.where(valid, d, np.nan)])
        return p[0] if single else p

    def in_image(self, uv: ArrayLike) -> np.ndarray:
        """Boolean mask (N,) of pixels with 0 <= u < width and 0 <= v < height (NaN: False)."""
        if self.width is None or self.height is None:
            raise ValueError("in_image needs a camera with width and height")
        px, single = _rows(uv, 2, "uv")
        inside = (px[:, 0] >= 0) & (px[:, 0] < self.width) & (px[:, 1] >= 0) & (px[:, 1] < self.height)
        return inside[0] if single else inside


def _undistort_points(cv2: Any, uv: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Normalised undistorted coordinates (N, 2) of distorted pixels uv (N, 2)."""
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    src = uv.reshape(-1, 1, 2)
    identity = np.eye(3)
    if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4.x
        out = cv2.undistortPointsIter(src, K, dist, identity, identity, criteria)
    else:  # OpenCV 5 folded the criteria into undistortPoints
        out = cv2.undistortPoints(src, K, dist, R=identity, P=identity, criteria=criteria)
    return out.reshape(-1, 2)


# ------------------------------------------------------------------ depth in boxes
def _depth_metres_scale(depth_image: np.ndarray, depth_scale: float | None) -> float:
    """Metres per depth unit: given, or 0.001 for uint16 (mm), 1 for float (m)."""
    if depth_image.ndim != 2:
        raise ValueError(f"depth_image must be 2-D (H, W), got shape {depth_image.shape}")
    if depth_scale is not None:
        if not (math.isfinite(depth_scale) and depth_scale > 0):
            raise ValueError(f"depth_scale must be a positive number, got {depth_scale}")
        return float(depth_scale)
    if depth_image.dtype == np.uint16:
        return UINT16_DEPTH_SCALE_M
    if np.issubdtype(depth_image.dtype, np.floating):
        return 1.0
    raise ValueError(f"depth_image of dtype {depth_image.dtype}: pass depth_scale (metres per unit)")


def _central_window(box_xyxy: np.ndarray, window: float, height: int, width: int) -> tuple[slice, slice] | None:
    """Rows and columns of the pixels in the central ``window`` fraction of the box."""
    x1, y1, x2, y2 = box_xyxy
    half_w, half_h = window * (x2 - x1) / 2, window * (y2 - y1) / 2
    if not (half_w > 0 and half_h > 0):
        return None
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    c0, c1 = max(math.floor(cx - half_w), 0), min(math.ceil(cx + half_w), width)
    r0, r1 = max(math.floor(cy - half_h), 0), min(math.ceil(cy + half_h), height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _median_valid_depth(patch: np.ndarray, scale: float) -> float:
    """Median in metres of the valid (finite, > 0) depths of a patch; NaN if none."""
    values = patch[np.isfinite(patch) & (patch > 0)]
    return float(np.median(values.astype(np.float64)) * scale) if values.size else math.nan


def boxes_depth(depth_image: ArrayLike, boxes_xyxy: ArrayLike, window: float = 0.5,
                depth_scale: float | None = None) -> np.ndarray:
    """Robust depth in metres of each XYXY box, (N, 4) -> (N,), NaN where unknown.

    The depth of a box is the median of the valid pixels (finite and > 0; so 0, NaN,
    inf and negative values are ignored) inside the box's central window: a box of the
    same centre and ``window`` times its width and height (0 < window <= 1), clipped
    to the image.  The window keeps background at the box edges out, and the median
    outvotes whatever background or holes remain (any minority of outliers).
    Boxes outside the image, degenerate boxes and windows without a valid pixel give
    NaN.  ``depth_scale`` (metres per unit) defaults to 0.001 for uint16 images
    (millimetres) and 1 for float images (metres).

    The medians run over windows of different sizes, so this loops over the boxes.
    """
    depth = np.asarray(depth_image)
    scale = _depth_metres_scale(depth, depth_scale)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must have shape (N, 4), got {boxes.shape}")
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window}")
    out = np.full(len(boxes), np.nan)
    for n, box in enumerate(boxes):
        region = _central_window(box, window, *depth.shape) if np.all(np.isfinite(box)) else None
        if region is not None:
            out[n] = _median_valid_depth(depth[region], scale)
    return out


def box_depth(depth_image: ArrayLike, box_xyxy: ArrayLike, window: float = 0.5,
              depth_scale: float | None = None) -> float | None:
    """Robust depth in metres of one XYXY box (see :func:`boxes_depth`), or None.

    Never returns 0: a box without a valid depth pixel gives None.
    """
    box = np.asarray(box_xyxy, dtype=np.float64)
    if box.shape != (4,):
        raise ValueError(f"box_xyxy must have shape (4,), got {box.shape}")
    d = boxes_depth(depth_image, box[None], window, depth_scale)[0]
    return None if math.isnan(d) else float(d)


def lift_boxes(camera: PinholeCamera, depth_image: ArrayLike, boxes_xyxy: ArrayLike, window: float = 0.5,
               depth_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lift 2-D boxes to 3-D: the box centre back-projected at the box's robust depth.

    Boxes are in image-edge coordinates, the convention of detectors and COCO (pixel
    ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``), while the pinhole model puts pixel
    centres at integer ``uv`` (OpenCV, ROS CameraInfo). So the centre of box
    ``(x1, y1, x2, y2)`` is the point ``uv = ((x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5)``.

    Returns ``(p_cam, depth_m)``: (N, 3) points in the camera optical frame (metres)
    and (N,) depths; rows without a valid depth are NaN.  The point lies on the
    visible surface of the object.  The depth image must be registered (aligned) to
    the camera, so its size must match the camera's when the camera has one.
    """
    depth = np.asarray(depth_image)
    if camera.width is not None and camera.height is not None and depth.shape[:2] != (camera.height, camera.width):
        raise ValueError(f"depth image is {depth.shape[:2]} (H, W) but the camera is "
                         f"{(camera.height, camera.width)}: is the depth aligned to this camera?")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    depth_m = boxes_depth(depth, boxes, window, depth_scale)
    uv_centre = (boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5
    return camera.unproject(uv_centre, depth_m), depth_m

"""A RealSense-like stereo depth model: what a D4xx camera makes of a perfect z-depth image.

One concept: an active/passive stereo pair measures *disparity*. Its left imager is the
reference (the published depth's frame); the right imager sits ``B`` (the baseline) further
along the optical x axis (x right, y down, z forward). A point at z-depth ``z`` [m] appears
in the right image ``d`` pixels to the left of where the left imager sees it::

    d = f B / z                       (f: focal length [px], B [m], d [px])

Everything below follows from measuring ``d`` (not ``z``) with a small error and from which
points both imagers see. Applied to a rendered z-depth image ``z(u, v)`` (metres, NaN = no
return) of a camera with focal length ``f_img`` [px] at the rendered size, per frame:

1. **Axial noise.** The disparity is measured with an RMS error of ``s`` pixels of the stereo
   imagers (focal length ``f_s`` at their operating resolution)::

       d_meas = f_s B / z + s n(u, v),     z_meas = f_s B / d_meas

   so that, to first order (Intel's RMS formula, noise growing with the square of distance)::

       sigma_z = z^2 s / (f_s B)

   ``n`` is a zero-mean, unit-variance Gaussian field, white or correlated over
   ``noise_correlation_px`` rendered pixels (white noise blurred by a Gaussian of that sigma
   and divided by the kernel's L2 norm, so that its variance stays 1): the matching window
   of a real stereo matcher makes neighbouring errors alike, and a median over a box then
   averages fewer independent errors.
2. **Depth discontinuities and object edges.** A matching window that straddles two
   surfaces has no consistent disparity: a pixel whose ``(2 r + 1)^2`` neighbourhood
   (``r = edge_window_px``) spans more than ``edge_jump_px`` of disparity (``f_s B (1/z_min -
   1/z_max)``) is invalid, the band widened by ``edge_band_px`` and frayed by a ring of
   ``edge_ragged_px`` more in which each pixel is invalid with probability 1/2.
3. **Stereo occlusion (the shadow band).** A point the left imager sees but the right one
   does not has no match. In the rendered image the right imager sees pixel ``u`` at
   ``x_r = u - f_img B / z``; a z-buffer of the disparities along each row of the right
   image keeps the nearest surface per column, and pixel ``u`` is invalid when a nearer
   surface lands on its ``x_r``. This is a band on the **left** side of every foreground
   object, ``f_img B (1/z_fg - 1/z_bg)`` pixels wide; with ``left_border_band`` also the
   pixels whose ``x_r`` falls off the right imager (``x_r < 0``, the left image border).
4. **Range.** ``z_meas < min_depth_m`` (closer than the largest disparity the matcher
   searches) or ``> max_depth_m`` is invalid.
5. **Quantisation** to the depth unit ``q`` of the 16-bit output:
   ``z_out = q round(z_meas / q)``; invalid pixels are NaN here and 0 in the ``uint16``
   image (:func:`fdl_robot.sim.camera.depth_m_to_units`).

The randomness (noise field, frayed edges) comes from a generator seeded per frame,
:func:`frame_rng` ``(episode seed, camera, frame index)``: the same frame renders the same
depth bit for bit. ``"ideal"`` (:data:`DEPTH_MODELS`) leaves the render untouched.

Figures modelled (:data:`D435`, :data:`D405`)
---------------------------------------------
* Subpixel RMS ``s = 0.08`` px and the RMS formula above: Intel, A. Grunnet-Jepsen, J. Sweetser,
  J. Woodfill, "Tuning depth cameras for best performance" (dev.intelrealsense.com/docs/
  tuning-depth-cameras-for-best-performance), the theoretical depth RMS error
  ``z^2 subpixel / (f_px B)`` with ~0.08 px subpixel RMS on well-textured scenes (also the
  basis of rotors_simulator's D435 noise model, ``depth_noise_model.cpp``, which defaults to 0.1).
* D435: baseline 50 mm (D400 series datasheet; the figure also quoted in Intel's community
  forum "Why do the D435 has such a wide distance range", f = 1.93 mm, 3 um pixels, B = 50 mm);
  depth FOV 87 x 58 deg, so ``f_s = 240 / tan(29 deg) = 433`` px at 848 x 480 (a vertical 58 deg
  over 480 rows); minimum range ~0.11 m (Intel community, "the minimum depth scanning distance
  ... 0.11 m for D435"); depth unit 1 mm (librealsense's default for the D400 series).
* D405: baseline 18 mm; depth FOV 87 x 58 deg (librealsense issue #11427 quotes Intel's
  comparison chart: depth 84 x 58, RGB 87 x 58), so again ``f_s = 433`` px at 848 x 480 /
  640 x 480; ideal range 7-50 cm and Min-Z 70 mm at 848 x 480 (DigiKey's D405 notes, from the
  D400 datasheet's D401 table: 1280x720 100 mm, 848x480 70 mm, 640x360 55 mm); depth unit
  0.1 mm (librealsense PR #8946: ``default_depth_units = 0.0001f`` for the D405); colour from
  the left imager itself, so the aligned depth has the stereo pair's own left-border band.

Modelling choices that are ours, not datasheet figures: the noise correlation (1 px), the
edge criterion (1 px of disparity over a 3 x 3 window, 1 px band + 1 px frayed ring) and,
for the D435, placing the colour camera at the left imager (its aligned depth's shadows
then come from the stereo pair only; the real RGB sensor sits 15 mm beside it, and its
narrower colour FOV crops the left-border band, hence ``left_border_band=False``).
Not modelled: texture-dependent holes (the D405 has no projector: real textureless faces
lose depth), specular and dark surfaces, a per-unit calibration bias, temporal filtering.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["DEPTH_MODELS", "StereoDepthSensor", "D435", "D405", "frame_rng", "depth_sigma_m",
           "apply_depth_model", "edge_mask", "occlusion_mask", "check_depth_model"]

#: The selectable depth models: the render as is, or :func:`apply_depth_model`.
DEPTH_MODELS: tuple[str, ...] = ("ideal", "realsense")


@dataclass(frozen=True)
class StereoDepthSensor:
    """The figures of a stereo depth camera (see the module docstring for their sources)."""

    name: str
    baseline_m: float              # B, left (reference) to right imager along optical +x
    stereo_focal_px: float         # f_s of the stereo imagers at their operating resolution
    min_depth_m: float             # closer: no depth (beyond the disparity search range)
    max_depth_m: float             # farther: no depth
    depth_unit_m: float            # q, metres per unit of the uint16 image
    subpixel_rms_px: float = 0.08  # s, disparity RMS error in stereo pixels
    noise_correlation_px: float = 1.0   # Gaussian sigma of the noise field, rendered pixels (0 = white)
    edge_window_px: int = 1        # r: the disparity range is taken over (2r+1)^2 pixels
    edge_jump_px: float = 1.0      # disparity range (stereo px) above which a pixel is an edge
    edge_band_px: int = 1          # edges are widened by this many pixels
    edge_ragged_px: int = 1        # ... and frayed over this many more (each pixel invalid w.p. 1/2)
    left_border_band: bool = True  # the left image border the right imager does not see is invalid

    def __post_init__(self):
        if not (self.baseline_m > 0 and self.stereo_focal_px > 0 and self.depth_unit_m > 0
                and 0 < self.min_depth_m < self.max_depth_m and self.subpixel_rms_px >= 0):
            raise ValueError(f"invalid stereo sensor figures: {self}")


#: The scene camera: a RealSense D435 (colour camera at the left imager, see the docstring).
D435 = StereoDepthSensor("D435", baseline_m=0.050, stereo_focal_px=433.0, min_depth_m=0.11,
                         max_depth_m=10.0, depth_unit_m=0.001, left_border_band=False)
#: The wrist camera: a RealSense D405 (short range, colour from the left imager).
D405 = StereoDepthSensor("D405", baseline_m=0.018, stereo_focal_px=433.0, min_depth_m=0.07,
                         max_depth_m=6.5, depth_unit_m=0.0001, left_border_band=True)


def check_depth_model(name: str) -> str:
    """``name`` if it is one of :data:`DEPTH_MODELS`, else ValueError naming them."""
    if name not in DEPTH_MODELS:
        raise ValueError(f"depth model must be one of {', '.join(DEPTH_MODELS)}; got '{name}'")
    return name


def frame_rng(seed: int, camera_index: int, frame_index: int) -> np.random.Generator:
    """The generator of one frame: a function of (episode seed, camera, frame index) only."""
    return np.random.default_rng([0xDE9, int(seed), int(camera_index), int(frame_index)])


def depth_sigma_m(z_m: np.ndarray | float, sensor: StereoDepthSensor) -> np.ndarray:
    """First-order RMS of the measured depth [m] at z-depth ``z_m``: z^2 s / (f_s B)."""
    z = np.asarray(z_m, dtype=np.float64)
    return z * z * sensor.subpixel_rms_px / (sensor.stereo_focal_px * sensor.baseline_m)


def _unit_noise_field(shape: tuple[int, int], correlation_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian field, white or Gaussian-correlated (sigma in pixels)."""
    n = rng.standard_normal(shape, dtype=np.float32)
    if correlation_px <= 0:
        return n
    k = int(2 * np.ceil(3 * correlation_px) + 1)
    g = cv2.getGaussianKernel(k, correlation_px)           # (k, 1), sums to 1
    gain = float(np.sum(g * g))                            # L2^2 of the separable 2D kernel: gain^2
    blurred = cv2.sepFilter2D(n, -1, g, g, borderType=cv2.BORDER_REFLECT_101)
    return blurred / np.float32(gain)


def edge_mask(disparity_px: np.ndarray, sensor: StereoDepthSensor) -> np.ndarray:
    """Pixels whose (2r+1)^2 neighbourhood spans more than ``edge_jump_px`` of disparity.

    ``disparity_px`` is in stereo pixels (f_s B / z), 0 where nothing was hit (the far
    background: a jump to it is an edge too).
    """
    size = 2 * sensor.edge_window_px + 1
    kernel = np.ones((size, size), np.uint8)
    d = disparity_px.astype(np.float32)
    d_max = cv2.dilate(d, kernel, borderType=cv2.BORDER_REPLICATE)
    d_min = cv2.erode(d, kernel, borderType=cv2.BORDER_REPLICATE)
    return (d_max - d_min) > sensor.edge_jump_px


def occlusion_mask(disparity_px: np.ndarray, left_border: bool) -> np.ndarray:
    """Pixels of the left (reference) image that the right imager cannot see.

    ``disparity_px``: (H, W) disparity in rendered pixels, d = f_img B / z, 0 where nothing
    was hit (never occluded, never occludes). The right image column of pixel u is
    x_r = u - d(u); per row, a z-buffer keeps the largest disparity (nearest surface) landing
    on each column (on both neighbouring integer columns, so that a surface leaves no gaps),
    and u is occluded when a surface more than 0.5 px of disparity nearer covers its column.
    With ``left_border``, pixels whose x_r falls off the right image (x_r < -0.5) are too.
    """
    d = np.asarray(disparity_px, dtype=np.float32)
    h, w = d.shape
    valid = d > 0
    x_r = np.arange(w, dtype=np.float32)[None, :] - d
    row0 = (np.arange(h, dtype=np.int32) * (w + 2) + 1)[:, None]     # flat index of column 0 of each row
    left = np.clip(np.floor(x_r), -1, w).astype(np.int32) + row0     # columns -1 .. w kept in the buffer
    zbuf = np.zeros(h * (w + 2), np.float32)
    np.maximum.at(zbuf, left.ravel(), d.ravel())
    np.maximum.at(zbuf, np.minimum(left + 1, row0 + w).ravel(), d.ravel())
    own = np.clip(np.rint(x_r), -1, w).astype(np.int32) + row0
    occluded = valid & (zbuf[own] > d + 0.5)
    if left_border:
        occluded |= valid & (x_r < -0.5)
    return occluded


def apply_depth_model(depth_m: np.ndarray, focal_px: float, sensor: StereoDepthSensor,
                      rng: np.random.Generator) -> np.ndarray:
    """The depth image a RealSense-like ``sensor`` would publish for the rendered ``depth_m``.

    ``depth_m``: (H, W) z-depth [m] of a perfect render, NaN = no return; ``focal_px``: the
    rendered camera's focal length (f_img, for the occlusion geometry); ``rng``: the frame's
    generator (:func:`frame_rng`). Returns float32 metres, NaN = invalid, quantised to the
    sensor's depth unit (steps 1-5 of the module docstring).
    """
    z = np.asarray(depth_m, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"depth image must be (H, W), got shape {z.shape}")
    hit = np.isfinite(z) & (z > 0)
    fb_s = np.float32(sensor.stereo_focal_px * sensor.baseline_m)
    d_true = np.divide(fb_s, z, out=np.zeros(z.shape, np.float32), where=hit)      # stereo pixels
    # 1. axial noise, in disparity
    d_meas = d_true + np.float32(sensor.subpixel_rms_px) * _unit_noise_field(z.shape, sensor.noise_correlation_px,
                                                                               rng)
    ok = hit & (d_meas > 0)
    z_meas = np.divide(fb_s, d_meas, out=np.zeros(z.shape, np.float32), where=ok)
    # 2. discontinuities: the edge band, widened and frayed
    edges = edge_mask(d_true, sensor).astype(np.uint8)
    if sensor.edge_band_px > 0:
        edges = cv2.dilate(edges, np.ones((2 * sensor.edge_band_px + 1,) * 2, np.uint8))
    if sensor.edge_ragged_px > 0:
        ring_size = 2 * (sensor.edge_band_px + sensor.edge_ragged_px) + 1
        ring = cv2.dilate(edges, np.ones((ring_size, ring_size), np.uint8))
        edges = edges | (ring & (rng.random(z.shape, dtype=np.float32) < 0.5))
    # 3. stereo occlusion (true geometry, rendered pixels)
    shadow = occlusion_mask(d_true * np.float32(focal_px / sensor.stereo_focal_px), sensor.left_border_band)
    # 4. range, 5. quantisation
    ok &= (edges == 0) & ~shadow & (z_meas >= sensor.min_depth_m) & (z_meas <= sensor.max_depth_m)
    q = np.float32(sensor.depth_unit_m)
    return np.where(ok, np.rint(z_meas / q) * q, np.float32(np.nan)).astype(np.float32, copy=False)

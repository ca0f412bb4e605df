"""Pictures of an evaluation: captioned frames, image strips, videos.

Frames are RGB ``uint8`` arrays (H, W, 3), as the simulator renders and ``image_to_rgb``
returns them; the files are written whole or not at all, parent directories created, and a
failed write raises :class:`fdl_robot.outputs.OutputError` (check the paths before the run
with :func:`fdl_robot.outputs.check_args`: ``IMAGE`` for strips, ``VIDEO`` for videos).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fdl_robot.outputs import OutputError, write_image

__all__ = ["caption", "colorize_depth", "evenly_spaced", "write_strip", "write_video"]

WHITE = (255, 255, 255)


def caption(rgb: np.ndarray, text: str, origin_px: tuple[int, int] = (6, 18), scale: float = 0.5) -> np.ndarray:
    """A copy of ``rgb`` with ``text`` in white, its baseline starting at ``origin_px`` (u, v)."""
    import cv2

    img = np.ascontiguousarray(rgb.copy())
    cv2.putText(img, text, origin_px, cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)
    return img


def colorize_depth(depth_m: np.ndarray, near_m: float, far_m: float) -> np.ndarray:
    """A depth image (H, W) metres as RGB uint8: viridis, bright = near, invalid (NaN) black."""
    import cv2

    level = 255 * (1 - (np.asarray(depth_m, dtype=np.float64) - near_m) / (far_m - near_m))
    vis = cv2.applyColorMap(np.nan_to_num(level, nan=0).clip(0, 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    vis[~np.isfinite(depth_m)] = 0
    return cv2.cvtColor(vis, cv2.COLOR_BGR2RGB)


def evenly_spaced(items: Sequence, n: int) -> list:
    """``n`` items at evenly spaced indices from the first to the last (repeats if fewer)."""
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def write_strip(frames: Sequence[np.ndarray], path: Path, cols: int = 4) -> None:
    """Tile ``frames`` row by row, ``cols`` per row (the last row padded black), into an image
    file of the path's extension (OutputError if it cannot be written)."""
    import cv2

    tiles = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    write_image(path, np.vstack([np.hstack(tiles[j:j + cols]) for j in range(0, len(tiles), cols)]), "image strip")


def write_video(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    """``frames`` (all of one size, RGB uint8) as a browser-playable H.264 MP4 at ``fps``.

    H.264 High profile, yuv420p (what browsers decode; odd sizes are padded to even),
    ``+faststart`` (the index first, so it streams). Encoded by the ffmpeg of
    ``imageio-ffmpeg`` (OpenCV's ffmpeg has no H.264 encoder); raises OutputError with
    ffmpeg's message when encoding or writing fails, and never leaves a partial file behind.
    """
    import subprocess

    import imageio_ffmpeg

    if not frames:
        raise ValueError("no frames to write")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    h, w = frames[0].shape[:2]
    with contextlib.suppress(OSError):      # a failure to create it is ffmpeg's to report
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.mp4")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", "23", "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
           "-movflags", "+faststart", str(partial)]
    data = b"".join(np.ascontiguousarray(f, dtype=np.uint8).tobytes() for f in frames)
    result = subprocess.run(cmd, input=data, capture_output=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        reason = " ".join(result.stderr.decode(errors="replace").split()) or f"exit status {result.returncode}"
        raise OutputError(f"cannot write video {path}: ffmpeg: {reason}")
    try:
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write video {path}: {exc.strerror or exc}") from exc

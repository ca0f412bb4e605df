"""Pictures of an evaluation: captioned frames, image strips, videos.

Frames are RGB ``uint8`` arrays (H, W, 3), as the simulator renders and ``image_to_rgb``
returns them; the files are written through OpenCV (BGR), parent directories created.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["caption", "evenly_spaced", "write_strip", "write_video"]

WHITE = (255, 255, 255)


def caption(rgb: np.ndarray, text: str, origin_px: tuple[int, int] = (6, 18), scale: float = 0.5) -> np.ndarray:
    """A copy of ``rgb`` with ``text`` in white, its baseline starting at ``origin_px`` (u, v)."""
    import cv2

    img = np.ascontiguousarray(rgb.copy())
    cv2.putText(img, text, origin_px, cv2.FONT_HERSHEY_SIMPLEX, scale, WHITE, 1, cv2.LINE_AA)
    return img


def evenly_spaced(items: Sequence, n: int) -> list:
    """``n`` items at evenly spaced indices from the first to the last (repeats if fewer)."""
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def write_strip(frames: Sequence[np.ndarray], path: Path, cols: int = 4) -> None:
    """Tile ``frames`` row by row, ``cols`` per row (the last row padded black), into an image file."""
    import cv2

    tiles = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([np.hstack(tiles[j:j + cols]) for j in range(0, len(tiles), cols)]))


def write_video(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    """``frames`` (all of one size) as an MP4 (mp4v) at ``fps``."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()

"""A classical colour-blob detector: HSV thresholds + connected components (OpenCV).

Needs no weights, so the whole graph runs before (or without) a trained network, and it
is a baseline the learned detectors must beat. Each class is a hue interval (OpenCV hue
0-179; red wraps around 0) with minimum saturation and value; blobs smaller than
``min_area_px`` are ignored. Score = fill ratio of the blob in its box (a solid cube seen
at an angle fills most of its box).
"""
from __future__ import annotations

import numpy as np

from fdl_robot.perception.detector import Detections

# class name -> list of (hue_min, hue_max) intervals; saturation/value minimums shared.
DEFAULT_CLASSES: dict[str, list[tuple[int, int]]] = {
    "red_cube": [(0, 8), (172, 179)],
    "green_cube": [(45, 80)],
    "blue_cube": [(100, 130)],
    "yellow_cube": [(22, 35)],
}


class ColorDetector:
    def __init__(self, classes: dict[str, list[tuple[int, int]]] | None = None,
                 min_saturation: int = 120, min_value: int = 60, min_area_px: int = 20,
                 score_threshold: float = 0.25):
        self.classes = dict(classes or DEFAULT_CLASSES)
        self.class_names = tuple(self.classes)
        self.min_saturation, self.min_value = min_saturation, min_value
        self.min_area_px, self.score_threshold = min_area_px, score_threshold

    def detect(self, rgb: np.ndarray) -> Detections:
        import cv2

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        bright = (s >= self.min_saturation) & (v >= self.min_value)
        boxes, scores, ids = [], [], []
        for class_id, name in enumerate(self.class_names):
            mask = np.zeros(h.shape, bool)
            for lo, hi in self.classes[name]:
                mask |= (h >= lo) & (h <= hi)
            n, _, stats, _ = cv2.connectedComponentsWithStats((mask & bright).astype(np.uint8), 8)
            for x, y, w, hh, area in stats[1:]:
                fill = area / float(w * hh)
                if area >= self.min_area_px and fill >= self.score_threshold:
                    boxes.append([x, y, x + w, y + hh])   # image-edge coords, as lift_boxes
                    scores.append(fill)
                    ids.append(class_id)
        ids = np.asarray(ids, dtype=int)
        return Detections(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), ids,
                          tuple(self.class_names[i] for i in ids))

"""Annotated debug images: boxes, class names and scores drawn with OpenCV."""
from __future__ import annotations

import numpy as np

from fdl_robot.perception.detector import Detections

_PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]])


def draw_detections(rgb: np.ndarray, det: Detections, labels: list[str] | None = None) -> np.ndarray:
    """Return a copy of ``rgb`` with each box and "name score" (or ``labels[i]``) drawn."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    for i, (box, score, cid) in enumerate(zip(det.boxes_xyxy, det.scores, det.class_ids, strict=True)):
        color = tuple(int(c) for c in _PALETTE[int(cid) % len(_PALETTE)])
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        text = labels[i] if labels else f"{det.class_names[i]} {score:.2f}"
        cv2.putText(out, text, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1,
                    cv2.LINE_AA)
    return out

"""Detector backends behind one interface: RGB image in, :class:`Detections` out.

    detector = make_detector("ultralytics", "model.pt", image_size=320)
    det = detector.detect(rgb)          # HxWx3 uint8 RGB
    det.boxes_xyxy, det.scores, det.class_ids, det.class_names

Backends
--------
``ultralytics``  YOLO or RT-DETR weights (``.pt``) or their ONNX export (``.onnx``),
                 through the ultralytics predictor (letterbox, NMS inside).
``onnx``         An ultralytics YOLO ONNX export run by ONNX Runtime: letterbox with
                 OpenCV, decoding and class-aware NMS with :mod:`fdl_robot.core`
                 (:func:`~fdl_robot.core.decoding.yolov8_postprocess`); no torch needed.
``color``        HSV colour blobs (:mod:`fdl_robot.perception.color_detector`): no
                 weights; the baseline and the stand-in before a network is trained.
``detr``         A Hugging Face ``DetrForObjectDetection`` checkpoint directory,
                 post-processed by :func:`fdl_robot.core.decoding.detr_postprocess`
                 (no DETR weights ship yet: give ``model_path``).

:class:`DetectorConfig` holds every setting and its default (detector_node's parameters
are read from it); ``make_detector`` builds the backend it names.
Heavy libraries (torch, ultralytics, onnxruntime, transformers) are imported only when a
backend is built, so this module imports fast and without them.

Boxes are XYXY in image-edge coordinates of the input image (pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``), as ultralytics and COCO define them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


BACKENDS = ("ultralytics", "onnx", "detr", "color")


@dataclass(frozen=True)
class DetectorConfig:
    """What a detector is built from; the defaults are detector_node's.

    ``model_path`` '' means the shipped weights of the backend (:func:`default_model_path`).
    ``score_threshold`` is the minimum confidence, ``iou_threshold`` the NMS overlap of the
    YOLO backends, ``image_size`` the inference size in pixels (longest side).
    """

    backend: str = "ultralytics"
    model_path: str = ""
    image_size: int = 320
    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    max_detections: int = 50
    device: str = "cpu"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown detector backend '{self.backend}'; use one of {list(BACKENDS)}")
        if self.image_size <= 0 or self.max_detections <= 0:
            raise ValueError(f"image_size and max_detections must be positive, got "
                             f"{self.image_size} and {self.max_detections}")
        for name in ("score_threshold", "iou_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


_DEFAULT = DetectorConfig()


@dataclass(frozen=True)
class Detections:
    """Detections of one image: boxes (N, 4) XYXY pixels, scores (N,), class ids (N,)."""

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self):
        n = len(self.scores)
        if self.boxes_xyxy.shape != (n, 4) or self.class_ids.shape != (n,):
            raise ValueError(f"inconsistent detections: boxes {self.boxes_xyxy.shape}, "
                             f"scores {self.scores.shape}, class_ids {self.class_ids.shape}")
        if len(self.class_names) != n:
            raise ValueError(f"{len(self.class_names)} class names for {n} detections")

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def empty() -> "Detections":
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int), ())

    def select(self, mask: np.ndarray) -> "Detections":
        idx = np.flatnonzero(mask)
        return Detections(self.boxes_xyxy[idx], self.scores[idx], self.class_ids[idx],
                          tuple(self.class_names[i] for i in idx))


def default_model_dir() -> Path:
    """Directory of the shipped detector (``fdl_robot/models/detector``)."""
    return Path(__file__).resolve().parent.parent / "models" / "detector"


def default_model_path(backend: str = "ultralytics") -> str:
    """The shipped model of a backend (``best.pt``; ``best.onnx`` for 'onnx'), or '' if none."""
    name = {"ultralytics": "best.pt", "onnx": "best.onnx"}.get(backend)
    path = default_model_dir() / name if name else None
    return str(path) if path is not None and path.is_file() else ""


class Detector(Protocol):
    """What every backend provides."""

    class_names: tuple[str, ...]

    def detect(self, rgb: np.ndarray) -> Detections: ...


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")


class UltralyticsDetector:
    """YOLO / RT-DETR through ultralytics (``.pt`` weights or an ``.onnx`` export)."""

    def __init__(self, model_path: str | Path, image_size: int = _DEFAULT.image_size,
                 score_threshold: float = _DEFAULT.score_threshold,
                 iou_threshold: float = _DEFAULT.iou_threshold,
                 max_detections: int = _DEFAULT.max_detections, device: str = _DEFAULT.device):
        from ultralytics import RTDETR, YOLO

        path = Path(model_path)
        if not path.exists():
            raise FileNotFoundError(f"detector weights not found: {path}")
        self.model = RTDETR(str(path)) if "rtdetr" in path.name.lower() else YOLO(str(path), task="detect")
        self.kwargs = dict(imgsz=int(image_size), conf=float(score_threshold), iou=float(iou_threshold),
                           max_det=int(max_detections), device=device, verbose=False)
        names = self.model.names
        self.class_names = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)

    def detect(self, rgb: np.ndarray) -> Detections:
        _check_rgb(rgb)
        result = self.model.predict(rgb[..., ::-1], **self.kwargs)[0]   # ultralytics wants BGR
        boxes = result.boxes
        ids = boxes.cls.cpu().numpy().astype(int)
        names = tuple(self.class_names[i] if 0 <= i < len(self.class_names) else str(i) for i in ids)
        return Detections(boxes.xyxy.cpu().numpy().astype(float), boxes.conf.cpu().numpy().astype(float),
                          ids, names)


def letterbox(rgb: np.ndarray, size: int, pad_value: int = 114) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio, pad to ``size`` x ``size`` (ultralytics' LetterBox).

    Returns ``(image, r, (pad_x, pad_y))``: a point ``x`` of the original image (edge
    coordinates) is at ``x r + pad`` in the letterboxed one, so a box maps back as
    ``(box - pad) / r``.
    """
    import cv2

    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    img = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if (new_w, new_h) != (w, h) else rgb
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return img, r, (float(left), float(top))


class OnnxDetector:
    """YOLO (v8/11) exported to ONNX by ultralytics, run with ONNX Runtime on the CPU.

    Pre-processing: letterbox to the model's square input, RGB, /255, NCHW float32.
    Output (1, 4 + K, N): candidates (cx, cy, w, h) in input pixels and K class scores,
    decoded by :func:`fdl_robot.core.decoding.yolov8_postprocess` (best class, score
    threshold, class-aware NMS from :mod:`fdl_robot.core.boxes`), then mapped back to
    the image with ``(box - pad) / r`` and clipped.
    """

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 iou_threshold: float = _DEFAULT.iou_threshold,
                 max_detections: int = _DEFAULT.max_detections, threads: int = 0):
        import ast

        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        # no busy-waiting between ops: on a 2-core robot computer that shares its cores
        # with the other nodes, spinning threads steal time from them (and from us)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = int(inp.shape[2]) if isinstance(inp.shape[2], int) else 640
        meta = self.session.get_modelmeta().custom_metadata_map
        if "names" not in meta:
            raise ValueError(f"{path} has no 'names' metadata: export it with ultralytics "
                             "(model.export(format='onnx'))")
        names = ast.literal_eval(meta["names"])
        self.class_names = tuple(names[i] for i in sorted(names))
        self.score_threshold, self.iou_threshold = float(score_threshold), float(iou_threshold)
        self.max_detections = int(max_detections)

    def detect(self, rgb: np.ndarray) -> Detections:
        from fdl_robot.core.boxes import clip_boxes
        from fdl_robot.core.decoding import yolov8_postprocess

        _check_rgb(rgb)
        img, r, (px, py) = letterbox(rgb, self.size)
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        out = self.session.run(None, {self.input_name: x})[0]
        boxes, scores, ids = yolov8_postprocess(out, self.score_threshold, self.iou_threshold, self.max_detections)
        boxes = (np.asarray(boxes, float).reshape(-1, 4) - [px, py, px, py]) / r
        h, w = rgb.shape[:2]
        boxes = clip_boxes(boxes, w, h)
        ids = np.asarray(ids, dtype=int)
        return Detections(boxes, np.asarray(scores, float), ids, tuple(self.class_names[i] for i in ids))


class DetrDetector:
    """Hugging Face DETR from a local checkpoint directory; core.decoding post-processing."""

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 device: str = _DEFAULT.device, image_size: int = _DEFAULT.image_size):
        import torch
        from transformers import DetrForObjectDetection

        self.torch = torch
        self.model = DetrForObjectDetection.from_pretrained(str(model_path)).to(device).eval()
        self.device, self.image_size = device, int(image_size)
        self.score_threshold = float(score_threshold)
        id2label = self.model.config.id2label
        self.class_names = tuple(id2label[i] for i in sorted(id2label))
        self.mean = np.array([0.485, 0.456, 0.406], np.float32)       # ImageNet statistics
        self.std = np.array([0.229, 0.224, 0.225], np.float32)

    def detect(self, rgb: np.ndarray) -> Detections:
        import cv2

        from fdl_robot.core.decoding import detr_postprocess

        _check_rgb(rgb)
        h, w = rgb.shape[:2]
        scale = self.image_size / max(h, w)
        resized = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        x = (resized.astype(np.float32) / 255.0 - self.mean) / self.std
        pixels = self.torch.from_numpy(x.transpose(2, 0, 1)[None]).to(self.device)
        with self.torch.no_grad():
            out = self.model(pixel_values=pixels)
        boxes, scores, ids = detr_postprocess(out.logits[0].cpu().numpy().astype(np.float64),
                                              out.pred_boxes[0].cpu().numpy().astype(np.float64),
                                              (w, h), self.score_threshold)
        ids = np.asarray(ids, dtype=int)
        return Detections(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), ids,
                          tuple(self.class_names[i] for i in ids))


def make_detector(backend: str | DetectorConfig = _DEFAULT.backend, model_path: str | Path = "",
                  **settings) -> Detector:
    """Build the backend a :class:`DetectorConfig` names.

    ``make_detector(config)``, or ``make_detector(backend, model_path, **settings)`` with
    ``settings`` any other fields of DetectorConfig. An empty ``model_path`` resolves to
    the backend's shipped weights; FileNotFoundError if there are none.
    """
    config = backend if isinstance(backend, DetectorConfig) else DetectorConfig(
        backend=backend, model_path=str(model_path), **settings)
    if config.backend == "color":
        from fdl_robot.perception.color_detector import ColorDetector

        return ColorDetector()
    path = config.model_path or default_model_path(config.backend)
    if not path:
        raise FileNotFoundError(f"detector backend '{config.backend}': no model_path given and no "
                                f"shipped weights in {default_model_dir()}")
    if config.backend == "ultralytics":
        return UltralyticsDetector(path, config.image_size, config.score_threshold,
                                   config.iou_threshold, config.max_detections, config.device)
    if config.backend == "onnx":
        return OnnxDetector(path, config.score_threshold, config.iou_threshold,
                            config.max_detections)
    return DetrDetector(path, config.score_threshold, config.device, config.image_size)

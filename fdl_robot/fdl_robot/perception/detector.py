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
``openvino``     The same ONNX export, same pre-processing and decoding, compiled for the
                 CPU by Intel's OpenVINO runtime (latency hint; ``precision`` f32 or bf16).
``color``        HSV colour blobs (:mod:`fdl_robot.perception.color_detector`): no
                 weights; the baseline and the stand-in before a network is trained.
``detr``         The DETR family. By default our RT-DETR (``models/detector_detr``: the
                 YOLO11n backbone and neck with ultralytics' RT-DETR decoder, trained
                 here) as its ONNX export on ONNX Runtime, letterboxed like the ``onnx``
                 backend and decoded by :func:`fdl_robot.core.decoding.rtdetr_postprocess`
                 (no NMS: one query per object); a ``.pt`` of it runs through ultralytics;
                 a Hugging Face ``DetrForObjectDetection`` checkpoint directory runs
                 through transformers, post-processed by
                 :func:`fdl_robot.core.decoding.detr_postprocess`.

:class:`DetectorConfig` holds every setting and its default (detector_node's parameters
are read from it); ``make_detector`` builds the backend it names.
Heavy libraries (torch, ultralytics, onnxruntime, openvino, transformers) are imported only
when a backend is built, so this module imports fast and without them.

Threads: ``threads`` > 0 caps the runtime's intra-op threads (ONNX Runtime's
``intra_op_num_threads``, OpenVINO's ``INFERENCE_NUM_THREADS``, torch's
``set_num_threads`` for the torch backends); 0 leaves the runtime's default (one per
core). With a process per node on a 2-core computer every extra runtime thread competes
with the other nodes for the same cores.

Boxes are XYXY in image-edge coordinates of the input image (pixel ``(i, j)`` covers
``[i, i + 1) x [j, j + 1)``), as ultralytics and COCO define them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fdl_robot.outputs import SHIPPED_MODELS_DIR


BACKENDS = ("ultralytics", "onnx", "openvino", "detr", "color")
#: Inference precisions of the openvino backend: OpenVINO's ``INFERENCE_PRECISION_HINT``.
PRECISIONS = ("f32", "bf16")
#: The shipped detectors (directories of ``fdl_robot/models``): ``detector`` was trained on the
#: scene camera's frames, ``detector_wrist`` fine-tuned from it on scene and wrist-camera frames.
SHIPPED_DETECTORS = ("detector", "detector_wrist")
#: Detector families: YOLO (the ultralytics, onnx and openvino backends) and DETR (the detr
#: backend). A shipped detector's DETR-family weights live in ``models/<shipped_model>_detr``.
FAMILIES = ("yolo", "detr")


def _check_shipped_model(name: str) -> None:
    if name not in SHIPPED_DETECTORS:
        raise ValueError(f"unknown shipped_model '{name}'; use one of {list(SHIPPED_DETECTORS)}")


@dataclass(frozen=True)
class DetectorConfig:
    """What a detector is built from; the defaults are detector_node's.

    ``model_path`` '' means the backend's weights in the shipped model ``shipped_model``
    (one of :data:`SHIPPED_DETECTORS`; :func:`default_model_path`).
    ``score_threshold`` is the minimum confidence, ``iou_threshold`` the NMS overlap of the
    YOLO backends, ``image_size`` the inference size in pixels (longest side; the ONNX
    backends use their export's fixed input size). ``threads``: intra-op threads of the
    runtime (0 = its default). ``precision``: arithmetic of the openvino backend, ``"f32"``
    | ``"bf16"`` (bfloat16: f32's 8-bit exponent with an 8-bit mantissa, about 3 significant
    digits, run on AVX-512 BF16 / AMX units where the CPU has them); the other backends
    compute in f32 and ignore it.
    """

    backend: str = "ultralytics"
    model_path: str = ""
    shipped_model: str = "detector"
    image_size: int = 320
    score_threshold: float = 0.25
    iou_threshold: float = 0.5
    max_detections: int = 50
    device: str = "cpu"
    threads: int = 0
    precision: str = "f32"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown detector backend '{self.backend}'; use one of {list(BACKENDS)}")
        _check_shipped_model(self.shipped_model)
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{self.precision}'; use one of {list(PRECISIONS)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = the runtime's default), got {self.threads}")
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


def family_of(backend: str) -> str:
    """The detector family (one of :data:`FAMILIES`) whose weights a backend runs."""
    return "detr" if backend == "detr" else "yolo"


def default_model_dir(shipped_model: str = "detector", family: str = "yolo") -> Path:
    """Directory of a shipped detector: ``fdl_robot/models/<shipped_model>`` for the YOLO
    family, ``fdl_robot/models/<shipped_model>_detr`` for the DETR family."""
    _check_shipped_model(shipped_model)
    if family not in FAMILIES:
        raise ValueError(f"unknown detector family '{family}'; use one of {list(FAMILIES)}")
    return SHIPPED_MODELS_DIR / (shipped_model if family == "yolo" else f"{shipped_model}_detr")


def default_model_path(backend: str = "ultralytics", shipped_model: str = "detector") -> str:
    """A shipped detector's file for a backend (``best.pt``; ``best.onnx`` for 'onnx', 'openvino'
    and, in the DETR directory, 'detr'), or '' if none."""
    name = {"ultralytics": "best.pt", "onnx": "best.onnx", "openvino": "best.onnx", "detr": "best.onnx"}.get(backend)
    path = default_model_dir(shipped_model, family_of(backend)) / name if name else None
    return str(path) if path is not None and path.is_file() else ""


def model_path_of(config: DetectorConfig) -> str:
    """The weights a config loads: its ``model_path``, else its shipped model's file for the
    backend ('' if there is none; 'color' needs none)."""
    if config.backend == "color":
        return ""
    return config.model_path or default_model_path(config.backend, config.shipped_model)


class Detector(Protocol):
    """What every backend provides."""

    class_names: tuple[str, ...]

    def detect(self, rgb: np.ndarray) -> Detections: ...


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")


def _set_torch_threads(threads: int) -> None:
    """torch's intra-op threads for the whole process (torch has one pool per process), if > 0."""
    if threads > 0:
        import torch

        torch.set_num_threads(int(threads))


class UltralyticsDetector:
    """YOLO / RT-DETR through ultralytics (``.pt`` weights or an ``.onnx`` export)."""

    def __init__(self, model_path: str | Path, image_size: int = _DEFAULT.image_size,
                 score_threshold: float = _DEFAULT.score_threshold,
                 iou_threshold: float = _DEFAULT.iou_threshold,
                 max_detections: int = _DEFAULT.max_detections, device: str = _DEFAULT.device,
                 threads: int = _DEFAULT.threads):
        from ultralytics import RTDETR, YOLO

        path = Path(model_path)
        if not path.exists():
            raise FileNotFoundError(f"detector weights not found: {path}")
        _set_torch_threads(threads)
        self.model = RTDETR(str(path)) if is_rtdetr(path) else YOLO(str(path), task="detect")
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


def is_rtdetr(path: str | Path) -> bool:
    """Whether ultralytics weights (``.pt``) or their ONNX export hold an RT-DETR (its head is
    ``RTDETRDecoder``) rather than a YOLO; an ONNX export says so in its metadata."""
    path = Path(path)
    if path.suffix == ".onnx":
        return "RTDETRDecoder" in export_metadata(path).get("head", "")
    from ultralytics.nn.modules.head import RTDETRDecoder
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(path))
    return isinstance(model.model[-1], RTDETRDecoder)


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


def export_metadata(path: str | Path) -> dict[str, str]:
    """The metadata ultralytics writes into an ONNX export (``names``, ``head``, ``imgsz``, ...)."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def yolo_export_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names of an ultralytics ONNX export: its ``names`` metadata, ``{0: 'red_cube', ...}``."""
    import ast

    meta = export_metadata(path)
    if "names" not in meta:
        raise ValueError(f"{path} has no 'names' metadata: export it with ultralytics "
                         "(model.export(format='onnx'))")
    names = ast.literal_eval(meta["names"])
    return tuple(names[i] for i in sorted(names))


class YoloExportDetector:
    """YOLO (v8/11) exported to ONNX by ultralytics; the runtime is the subclass's :meth:`infer`.

    Pre-processing: letterbox to the model's square input of ``size`` pixels, RGB, /255,
    NCHW float32. Output (1, 4 + K, N): candidates (cx, cy, w, h) in input pixels and K
    class scores, decoded by :func:`fdl_robot.core.decoding.yolov8_postprocess` (best
    class, score threshold, class-aware NMS from :mod:`fdl_robot.core.boxes`), then mapped
    back to the image with ``(box - pad) / r`` and clipped.
    """

    size: int

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 iou_threshold: float = _DEFAULT.iou_threshold,
                 max_detections: int = _DEFAULT.max_detections):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        self.class_names = yolo_export_class_names(self.path)
        self.score_threshold, self.iou_threshold = float(score_threshold), float(iou_threshold)
        self.max_detections = int(max_detections)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Raw network output (1, 4 + K, N) of the input batch ``x`` (1, 3, size, size)."""
        raise NotImplementedError

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes XYXY in input pixels, scores and class ids of the raw output (YOLOv8/11 head)."""
        from fdl_robot.core.decoding import yolov8_postprocess

        return yolov8_postprocess(raw, self.score_threshold, self.iou_threshold, self.max_detections)

    def detect(self, rgb: np.ndarray) -> Detections:
        from fdl_robot.core.boxes import clip_boxes

        _check_rgb(rgb)
        img, r, (px, py) = letterbox(rgb, self.size)
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        boxes, scores, ids = self.decode(self.infer(x))
        boxes = (np.asarray(boxes, float).reshape(-1, 4) - [px, py, px, py]) / r
        h, w = rgb.shape[:2]
        boxes = clip_boxes(boxes, w, h)
        ids = np.asarray(ids, dtype=int)
        return Detections(boxes, np.asarray(scores, float), ids, tuple(self.class_names[i] for i in ids))


def _square_input_size(shape) -> int:
    """Side of a static (1, 3, S, S) input; 640 (ultralytics' default) if it is dynamic."""
    side = shape[2]
    return int(side) if isinstance(side, int) else 640


class OnnxDetector(YoloExportDetector):
    """A :class:`YoloExportDetector` run by ONNX Runtime on the CPU."""

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 iou_threshold: float = _DEFAULT.iou_threshold,
                 max_detections: int = _DEFAULT.max_detections, threads: int = _DEFAULT.threads):
        import onnxruntime as ort

        super().__init__(model_path, score_threshold, iou_threshold, max_detections)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        # no busy-waiting between ops: on a 2-core robot computer that shares its cores
        # with the other nodes, spinning threads steal time from them (and from us)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size = _square_input_size(inp.shape)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class OpenVinoDetector(YoloExportDetector):
    """A :class:`YoloExportDetector` compiled for the CPU by OpenVINO.

    Compiled with ``PERFORMANCE_HINT: LATENCY`` (one stream: each frame as fast as
    possible, not many frames in parallel), ``INFERENCE_NUM_THREADS`` = ``threads`` (0 =
    OpenVINO's default, one per physical core) and ``INFERENCE_PRECISION_HINT`` =
    ``precision``. The precision is always set: on a CPU with AVX-512 BF16 or AMX
    OpenVINO's own default is bf16, so an unset hint would not mean f32.
    ``ENABLE_CPU_PINNING`` is off: a thread pinned to one core cannot move to the other
    while the node that shares its core runs.
    """

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 iou_threshold: float = _DEFAULT.iou_threshold,
                 max_detections: int = _DEFAULT.max_detections, threads: int = _DEFAULT.threads,
                 precision: str = _DEFAULT.precision):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; use one of {list(PRECISIONS)}")
        super().__init__(model_path, score_threshold, iou_threshold, max_detections)
        core = ov.Core()
        model = core.read_model(str(self.path))
        properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                      "ENABLE_CPU_PINNING": False}
        if threads > 0:
            properties["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(model, "CPU", properties)
        self.request = self.compiled.create_infer_request()
        self.size = _square_input_size(list(model.input(0).get_partial_shape().to_shape()))
        self.precision = precision

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: x})
        return self.request.get_output_tensor(0).data.copy()


class RtDetrOnnxDetector(OnnxDetector):
    """Our RT-DETR (``models/detector_detr``) exported to ONNX by ultralytics, on ONNX Runtime.

    The same letterboxed (1, 3, size, size) input as :class:`OnnxDetector` (ultralytics trains
    and validates RT-DETR on letterboxed images). The export ends in the decoder's own top-k:
    output (1, Q, 6) rows (cx, cy, w, h, score, class id) with the box normalised to the
    square input and the score already a sigmoid, decoded by
    :func:`fdl_robot.core.decoding.rtdetr_postprocess` (score threshold, no NMS: the decoder's
    set prediction gives one query per object). ``iou_threshold`` is unused.
    """

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 max_detections: int = _DEFAULT.max_detections, threads: int = _DEFAULT.threads):
        super().__init__(model_path, score_threshold, _DEFAULT.iou_threshold, max_detections, threads)
        if not is_rtdetr(self.path):
            raise ValueError(f"{self.path} is not an RT-DETR export (its 'head' metadata is not RTDETRDecoder); "
                             "a YOLO export runs on the 'onnx' backend")

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from fdl_robot.core.decoding import rtdetr_postprocess

        return rtdetr_postprocess(raw, (self.size, self.size), self.score_threshold, self.max_detections)


class DetrDetector:
    """Hugging Face DETR from a local checkpoint directory; core.decoding post-processing."""

    def __init__(self, model_path: str | Path, score_threshold: float = _DEFAULT.score_threshold,
                 device: str = _DEFAULT.device, image_size: int = _DEFAULT.image_size,
                 threads: int = _DEFAULT.threads):
        import torch
        from transformers import DetrForObjectDetection

        _set_torch_threads(threads)
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
    the backend's shipped weights; FileNotFoundError if there are none, ValueError naming
    the backend and the path when the weights cannot be loaded (corrupt, wrong format).
    """
    config = backend if isinstance(backend, DetectorConfig) else DetectorConfig(
        backend=backend, model_path=str(model_path), **settings)
    if config.backend == "color":
        from fdl_robot.perception.color_detector import ColorDetector

        return ColorDetector()
    path = model_path_of(config)
    if not path:
        shipped_dir = default_model_dir(config.shipped_model, family_of(config.backend))
        raise FileNotFoundError(f"detector backend '{config.backend}': no model_path given and no "
                                f"shipped weights in {shipped_dir}")
    try:
        return _load_backend(config, path)
    except (FileNotFoundError, ImportError):
        raise
    except Exception as exc:  # noqa: BLE001 - torch, onnx, openvino and transformers raise anything
        detail = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot load the '{config.backend}' detector weights {path}: "
                         f"{type(exc).__name__}: {detail}") from exc


def _load_backend(config: DetectorConfig, path: str | Path) -> Detector:
    if config.backend == "ultralytics":
        return UltralyticsDetector(path, config.image_size, config.score_threshold,
                                   config.iou_threshold, config.max_detections, config.device,
                                   config.threads)
    if config.backend == "onnx":
        return OnnxDetector(path, config.score_threshold, config.iou_threshold,
                            config.max_detections, config.threads)
    if config.backend == "openvino":
        return OpenVinoDetector(path, config.score_threshold, config.iou_threshold,
                                config.max_detections, config.threads, config.precision)
    if Path(path).suffix == ".onnx":
        return RtDetrOnnxDetector(path, config.score_threshold, config.max_detections, config.threads)
    if Path(path).suffix == ".pt":
        return UltralyticsDetector(path, config.image_size, config.score_threshold, config.iou_threshold,
                                   config.max_detections, config.device, config.threads)
    return DetrDetector(path, config.score_threshold, config.device, config.image_size, config.threads)

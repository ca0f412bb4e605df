"""Detector backends for real: shipped YOLO and RT-DETR weights on sim frames, ONNX == PyTorch,
OpenVINO == ONNX Runtime (f32; bf16 measured), threads reach every runtime, Hugging Face DETR.

The shipped weights (``fdl_robot/models/detector/best.pt`` and ``best.onnx``, the RT-DETR's in
``models/detector_detr``) are made by ``fdl-robot-train-detector``; these tests use them as
they are, never train.
"""
from __future__ import annotations

import numpy as np
import pytest

from fdl_robot.core.assignment import hungarian
from fdl_robot.core.boxes import box_iou
from fdl_robot.perception.detector import (SHIPPED_DETECTORS, DetectorConfig, Detections, OnnxDetector,
                                           OpenVinoDetector, RtDetrOnnxDetector, UltralyticsDetector,
                                           default_model_dir, letterbox, make_detector)

SHIPPED_PT = default_model_dir() / "best.pt"
SHIPPED_ONNX = default_model_dir() / "best.onnx"
SHIPPED_DETR = default_model_dir("detector", "detr")
TEST_SEEDS = (20_500, 20_501, 20_502)        # validation range, beyond the 60 evaluated episodes


def _episode_frames(cameras: tuple[str, ...], per_episode: int) -> list:
    """Labelled frames of the TEST_SEEDS episodes from ``cameras``."""
    from fdl_robot.sim.detection_dataset import episode_frames
    from fdl_robot.sim.env import PickPlaceEnv
    from fdl_robot.sim.expert import ScriptedExpert

    env = PickPlaceEnv()
    expert = ScriptedExpert(env.model)
    frames = [f for seed in TEST_SEEDS for f in episode_frames(env, expert, seed, per_episode, cameras=cameras)]
    env.close()
    return frames


@pytest.fixture(scope="module")
def sim_frames():
    from fdl_robot.sim.scene import SCENE_CAMERA

    return _episode_frames((SCENE_CAMERA,), 2)


@pytest.fixture(scope="module")
def wrist_frames():
    """Wrist-camera (D405) frames of validation seeds beyond the evaluated ones."""
    from fdl_robot.sim.scene import WRIST_CAMERA

    return _episode_frames((WRIST_CAMERA,), 4)


@pytest.fixture(scope="module")
def yolo():
    return UltralyticsDetector(SHIPPED_PT, image_size=320)


def _pairs(a: np.ndarray, b: np.ndarray, min_iou: float = 0.5):
    if len(a) == 0 or len(b) == 0:
        return [], []
    rows, cols = hungarian(1.0 - box_iou(a, b), max_cost=1.0 - min_iou)
    return rows, cols


@pytest.mark.parametrize("directory", [*map(default_model_dir, SHIPPED_DETECTORS), SHIPPED_DETR],
                         ids=lambda d: d.name)
def test_shipped_weights_exist_with_their_record(directory):
    assert (directory / "best.pt").is_file() and (directory / "best.onnx").is_file()
    assert (directory / "best.pt").stat().st_size < 15e6
    for name in ("training.json", "metrics.json", "MODEL_CARD.md"):
        assert (directory / name).is_file(), name


def _clearly_visible_found(detector, frames, min_iou: float = 0.7) -> dict[str, list[float]]:
    """Assert each object at least 97 % visible is detected with its class at IoU >= ``min_iou``;
    return, per class name, the largest box-coordinate error (pixels) of each such object's best box."""
    errors: dict[str, list[float]] = {}
    for frame in frames:
        det = detector.detect(frame.rgb)
        assert set(det.class_names) <= {"red_cube", "cube", "bin"}
        for lb in frame.labels:
            if lb.visibility < 0.97:
                continue
            same = det.class_ids == lb.class_id
            assert same.any(), f"{lb.name} (seed {frame.seed}, step {frame.step}) not detected"
            iou = box_iou(lb.box_xyxy[None], det.boxes_xyxy[same])[0]
            assert iou.max() >= min_iou, f"{lb.name} (seed {frame.seed}, step {frame.step}): IoU {iou.max():.2f}"
            errors.setdefault(lb.name, []).append(float(np.abs(det.boxes_xyxy[same][iou.argmax()] - lb.box_xyxy).max()))
    return errors


def test_shipped_yolo_finds_every_clearly_visible_cube(yolo, sim_frames):
    """Each object at least 97 % visible is detected with its class at IoU >= 0.7."""
    assert sum(map(len, _clearly_visible_found(yolo, sim_frames).values())) >= 10


@pytest.fixture(scope="module")
def detr():
    """The detr backend as detector_node builds it by default: '' = the shipped RT-DETR's ONNX export."""
    return make_detector(DetectorConfig(backend="detr"))


def test_detr_backend_loads_the_shipped_rtdetr_by_default(detr):
    assert isinstance(detr, RtDetrOnnxDetector) and detr.path == SHIPPED_DETR / "best.onnx" and detr.size == 320
    assert detr.class_names == ("red_cube", "cube", "bin")
    assert len(detr.detect(np.zeros((480, 640, 3), np.uint8))) == 0      # nothing in a black image
    with pytest.raises(FileNotFoundError, match="no shipped weights in .*detector_wrist_detr"):
        make_detector(DetectorConfig(backend="detr", shipped_model="detector_wrist"))   # no DETR for the wrist
    with pytest.raises(ValueError, match="not an RT-DETR export"):
        make_detector("detr", SHIPPED_ONNX)                                 # YOLO's export: the onnx backend's


def test_shipped_detr_finds_every_clearly_visible_cube(detr, sim_frames):
    """Each object at least 97 % visible is detected with its class at IoU >= 0.5 (YOLO: 0.7; the
    shipped RT-DETR is below its targets, its MODEL_CARD says how far: one clearly visible cube of
    these frames gets a 0.54 box), and the red cube's box, when fully visible, within 4 px of its
    label (640 x 480 image; 2 px of the 320 px network input; measured 1.1-1.4 px)."""
    errors = _clearly_visible_found(detr, sim_frames, min_iou=0.5)
    red = errors.get("red_cube", [])
    print(f"\nRT-DETR: {sum(map(len, errors.values()))} clearly visible objects found; red cube box "
          f"error max {max(red, default=float('nan')):.2f} px over {len(red)}")
    assert sum(map(len, errors.values())) >= 10 and len(red) >= 2
    assert max(red) <= 4.0


def test_shipped_detr_onnx_matches_pytorch(detr, sim_frames):
    """The shipped best.pt through ultralytics' RT-DETR predictor and its ONNX export through ours
    (core.decoding.rtdetr_postprocess): same detections, boxes within 1 px, same classes, scores
    within 0.02. On frames letterboxed to 320 x 320 (ultralytics' RT-DETR predictor stretches an
    image to the square; ultralytics trains and validates it letterboxed, as our backend runs it)."""
    torch_detr = UltralyticsDetector(SHIPPED_DETR / "best.pt", image_size=320, score_threshold=0.25)
    assert type(torch_detr.model).__name__ == "RTDETR" and torch_detr.class_names == detr.class_names
    n = 0
    for frame in sim_frames:
        square, _, _ = letterbox(frame.rgb, 320)
        a = _agreement(torch_detr.detect(square), detr.detect(square))
        assert a["paired"] == a["reference"] and a["class_mismatches"] == 0
        assert a["box_px"].max() <= 1.0 and a["score"].max() <= 0.02
        n += a["paired"]
    assert n >= 12


def test_shipped_wrist_detector_finds_what_the_wrist_camera_sees_clearly(wrist_frames):
    """The wrist camera's detector (detector_wrist, ONNX as detector_node runs it) finds each object
    at least 97 % visible in wrist frames with its class at IoU >= 0.6; the scene detector does not
    (its misses are why the wrist detector exists)."""
    wrist = make_detector(DetectorConfig(backend="onnx", shipped_model="detector_wrist"))
    scene = make_detector(DetectorConfig(backend="onnx"))
    checked, found = 0, {"wrist": 0, "scene": 0}
    for frame in wrist_frames:
        for name, det in (("wrist", wrist.detect(frame.rgb)), ("scene", scene.detect(frame.rgb))):
            for lb in frame.labels:
                if lb.visibility < 0.97:
                    continue
                same = det.class_ids == lb.class_id
                hit = same.any() and box_iou(lb.box_xyxy[None], det.boxes_xyxy[same]).max() >= 0.6
                found[name] += hit
                checked += name == "wrist"
    assert checked >= 10
    assert found["wrist"] == checked, f"wrist detector found {found['wrist']} of {checked} clearly visible objects"
    assert found["scene"] < checked


def test_onnx_matches_pytorch(yolo, sim_frames):
    """Same images: same detections, boxes within 1 px, same classes, scores within 0.02.

    The images are the frames letterboxed to the network's 320 x 320 input, so both paths
    see identical pixels (ultralytics pads a .pt model's input only to a multiple of 32,
    the static ONNX export to the full square: a different input, not a different model).
    """
    onnx = OnnxDetector(SHIPPED_ONNX, score_threshold=0.25, iou_threshold=0.5)
    assert onnx.class_names == yolo.class_names
    n = 0
    for frame in sim_frames:
        square, _, _ = letterbox(frame.rgb, 320)
        a, b = yolo.detect(square), onnx.detect(square)
        confident = a.scores > 0.35          # away from the threshold, where ties could flip
        rows, cols = _pairs(a.boxes_xyxy[confident], b.boxes_xyxy, 0.5)
        assert len(rows) == int(confident.sum())
        idx = np.flatnonzero(confident)[rows]
        np.testing.assert_array_equal(a.class_ids[idx], b.class_ids[cols])
        assert np.abs(a.boxes_xyxy[idx] - b.boxes_xyxy[cols]).max() <= 1.0
        assert np.abs(a.scores[idx] - b.scores[cols]).max() <= 0.02
        n += len(rows)
    assert n >= 12


def test_make_detector_onnx_backend():
    det = make_detector("onnx", SHIPPED_ONNX, score_threshold=0.5)
    assert isinstance(det, OnnxDetector) and det.size == 320
    out = det.detect(np.zeros((240, 320, 3), np.uint8))
    assert isinstance(out, Detections) and len(out) == 0      # nothing in a black image
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        det.detect(np.zeros((240, 320), np.uint8))
    with pytest.raises(FileNotFoundError):
        make_detector("onnx", "/nonexistent.onnx")


def test_shipped_model_chooses_the_weights_an_empty_model_path_loads(tmp_path, monkeypatch):
    import fdl_robot.perception.detector as detector

    with pytest.raises(ValueError, match="unknown shipped_model 'wrist'.*detector_wrist"):
        DetectorConfig(shipped_model="wrist")
    monkeypatch.setattr(detector, "SHIPPED_MODELS_DIR", tmp_path)
    (tmp_path / "detector_wrist").mkdir()
    (tmp_path / "detector_wrist" / "best.onnx").write_bytes(SHIPPED_ONNX.read_bytes())
    assert detector.default_model_path("onnx", "detector_wrist") == str(tmp_path / "detector_wrist" / "best.onnx")
    assert detector.default_model_path("onnx") == ""                    # no tmp_path/detector
    det = make_detector(DetectorConfig(backend="onnx", shipped_model="detector_wrist"))
    assert isinstance(det, OnnxDetector)
    with pytest.raises(FileNotFoundError, match="no shipped weights in .*detector_wrist"):
        make_detector(DetectorConfig(backend="ultralytics", shipped_model="detector_wrist"))   # no best.pt


def _agreement(reference: Detections, other: Detections, min_score: float = 0.35) -> dict:
    """Pair the reference's confident detections with the other's (IoU >= 0.5): counts,
    class mismatches and the largest box-coordinate / score differences of each pair."""
    confident = reference.scores > min_score          # away from the threshold, where ties could flip
    rows, cols = _pairs(reference.boxes_xyxy[confident], other.boxes_xyxy, 0.5)
    idx = np.flatnonzero(confident)[rows]
    return {"reference": int(confident.sum()), "paired": len(rows),
            "class_mismatches": int(np.sum(reference.class_ids[idx] != other.class_ids[cols])),
            "box_px": np.abs(reference.boxes_xyxy[idx] - other.boxes_xyxy[cols]).max(axis=1),
            "score": np.abs(reference.scores[idx] - other.scores[cols])}


def _agreement_over(frames, reference, other) -> dict:
    per_frame = [_agreement(reference.detect(f.rgb), other.detect(f.rgb)) for f in frames]
    return {"reference": sum(a["reference"] for a in per_frame), "paired": sum(a["paired"] for a in per_frame),
            "class_mismatches": sum(a["class_mismatches"] for a in per_frame),
            "box_px": np.concatenate([a["box_px"] for a in per_frame]),
            "score": np.concatenate([a["score"] for a in per_frame])}


@pytest.fixture(scope="module")
def onnx_runtime():
    return OnnxDetector(SHIPPED_ONNX, score_threshold=0.25, iou_threshold=0.5)


def test_openvino_f32_matches_onnx_runtime(onnx_runtime, sim_frames):
    """Same export, same pre-processing and decoding: boxes within 1 px, classes identical."""
    ov = make_detector("openvino", precision="f32", score_threshold=0.25, iou_threshold=0.5)
    assert ov.class_names == onnx_runtime.class_names and ov.size == onnx_runtime.size == 320
    a = _agreement_over(sim_frames, onnx_runtime, ov)
    print(f"\nopenvino f32 vs ONNX Runtime: {a['paired']}/{a['reference']} paired, "
          f"{a['class_mismatches']} class mismatches, box max {a['box_px'].max():.2e} px, "
          f"score max {a['score'].max():.2e}")
    assert a["paired"] == a["reference"] >= 12 and a["class_mismatches"] == 0
    assert a["box_px"].max() <= 1.0 and a["score"].max() <= 1e-3


def test_openvino_bf16_agreement_with_onnx_runtime(onnx_runtime, sim_frames):
    """bf16 (8-bit mantissa: relative rounding 2^-9 ~ 0.2 % at each layer) moves boxes a little.

    Bound: p95 of the largest coordinate difference per box <= 1 px and max <= 3 px in the
    640 x 480 image, i.e. 1.5 px of the 320 px network input (1 input px = 2 image px);
    scores within 0.02 (the ONNX-vs-PyTorch bound); classes identical. Measured while
    writing this on 314 confident boxes of 80 frames (seeds 20510-20529): median 0.15,
    p95 0.41, max 2.0 px, scores max 0.008. What bf16 costs in mAP and 3D error is
    measured by fdl-robot-eval-detector, not here.
    """
    import openvino

    ov = OpenVinoDetector(SHIPPED_ONNX, score_threshold=0.25, iou_threshold=0.5, precision="bf16")
    if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 arithmetic (AVX-512 BF16 / AMX): OpenVINO would run f32")
    assert str(ov.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"
    a = _agreement_over(sim_frames, onnx_runtime, ov)
    p50, p95 = np.percentile(a["box_px"], [50, 95])
    print(f"\nopenvino bf16 vs ONNX Runtime: {a['paired']}/{a['reference']} paired, "
          f"{a['class_mismatches']} class mismatches, box px median {p50:.3f} p95 {p95:.3f} "
          f"max {a['box_px'].max():.3f}, score max {a['score'].max():.4f}")
    assert a["paired"] == a["reference"] >= 12 and a["class_mismatches"] == 0
    assert p95 <= 1.0 and a["box_px"].max() <= 3.0 and a["score"].max() <= 0.02
    assert a["box_px"].max() > 1e-3            # bf16 really ran: f32 agrees to ~1e-4 px


def test_make_detector_openvino_backend():
    """'' = the shipped best.onnx, compiled with the latency hint, the threads and the precision."""
    det = make_detector("openvino", threads=1, score_threshold=0.5)
    assert isinstance(det, OpenVinoDetector) and det.path == SHIPPED_ONNX and det.size == 320
    props = {k: str(det.compiled.get_property(k)) for k in
             ("PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "ENABLE_CPU_PINNING")}
    assert props == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": "1",
                     "INFERENCE_PRECISION_HINT": "<Type: 'float32'>", "ENABLE_CPU_PINNING": "False"}
    assert len(det.detect(np.zeros((240, 320, 3), np.uint8))) == 0      # nothing in a black image
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        det.detect(np.zeros((240, 320), np.uint8))
    with pytest.raises(FileNotFoundError):
        make_detector("openvino", "/nonexistent.onnx")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        make_detector("openvino", precision="fp16")


def test_threads_reach_onnx_runtime_and_torch():
    """threads > 0 caps ONNX Runtime's intra-op pool and torch's (process-wide); negative is refused."""
    torch = pytest.importorskip("torch")
    assert make_detector("onnx", threads=1).session.get_session_options().intra_op_num_threads == 1
    assert make_detector("onnx").session.get_session_options().intra_op_num_threads == 0   # runtime default
    before = torch.get_num_threads()
    try:
        make_detector("ultralytics", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        DetectorConfig(threads=-1)


def test_letterbox_maps_points_back():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[100:140, 300:380] = 255
    img, r, (px, py) = letterbox(rgb, 320)
    assert img.shape == (320, 320, 3) and r == 0.5 and (px, py) == (0.0, 40.0)
    ys, xs = np.nonzero(img[..., 0] > 127)
    box = (np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) - [px, py, px, py]) / r
    np.testing.assert_allclose(box, [300, 100, 380, 140], atol=2.0)
    assert np.all(img[:40] == 114) and np.all(img[280:] == 114)


def test_detr_backend_tiny_random_model_roundtrip(tmp_path):
    """A small random DETR saved to disk, loaded by the backend; decoding agrees with HF's."""
    torch = pytest.importorskip("torch")
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig

    torch.manual_seed(0)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1],
                            out_features=["stage4"], layer_type="basic")
    names = {0: "red_cube", 1: "cube", 2: "bin"}
    config = DetrConfig(backbone_config=backbone, use_timm_backbone=False, use_pretrained_backbone=False,
                        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=12,
                        num_labels=3, id2label=names, label2id={v: k for k, v in names.items()})
    DetrForObjectDetection(config).eval().save_pretrained(tmp_path)

    det = make_detector("detr", tmp_path, image_size=320, score_threshold=0.0)
    assert det.class_names == ("red_cube", "cube", "bin")
    rgb = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    out = det.detect(rgb)
    assert len(out) == 12                         # threshold 0: every query, none dropped
    assert np.all((out.boxes_xyxy[:, 2:] >= out.boxes_xyxy[:, :2]))

    # reference: the model's raw output through Hugging Face's own post-processing
    x = (rgb.astype(np.float32) / 255.0 - det.mean) / det.std
    with torch.no_grad():
        raw = det.model(pixel_values=torch.from_numpy(x.transpose(2, 0, 1)[None]))
    ref = DetrImageProcessor().post_process_object_detection(raw, threshold=0.0, target_sizes=[(240, 320)])[0]
    order_ours, order_ref = np.argsort(-out.scores), np.argsort(-ref["scores"].numpy())
    np.testing.assert_allclose(out.scores[order_ours], ref["scores"].numpy()[order_ref], atol=1e-5)
    np.testing.assert_array_equal(out.class_ids[order_ours], ref["labels"].numpy()[order_ref])
    np.testing.assert_allclose(out.boxes_xyxy[order_ours], ref["boxes"].numpy()[order_ref], atol=1e-3)


@pytest.mark.ros
@pytest.mark.parametrize("params", [{"backend": "ultralytics"}, {"backend": "onnx"},
                                    {"backend": "openvino", "precision": "bf16", "threads": 1},
                                    {"backend": "detr"}],
                         ids=["ultralytics", "onnx", "openvino-bf16", "detr"])
def test_detector_node_with_shipped_weights_detects_the_sim_cubes(sim_frames, params):
    """The node's defaults ('' model_path = the shipped model) on a rendered sim frame;
    threads and precision reach the backend through the node's parameters."""
    from fdl_robot_interfaces.msg import Detection2DArray
    from sensor_msgs.msg import Image

    from fdl_robot.ros.conversions import ns_to_stamp, rgb_to_image
    from fdl_robot.ros.detector_node import DetectorNode
    from ros_harness import RosHarness

    frame = sim_frames[0]
    with RosHarness() as ros:
        node = ros.add(DetectorNode, params)
        if params["backend"] == "openvino":
            import openvino

            compiled = node.detector.compiled
            assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
            # bf16 reaches OpenVINO; a CPU without bf16 arithmetic (no AVX-512 BF16 / AMX) runs f32
            has_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            expected = "<Type: 'bfloat16'>" if has_bf16 else "<Type: 'float32'>"
            assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == expected
        images = ros.publisher(Image, "camera/color/image_raw")
        out = ros.collect(Detection2DArray, "detections")
        ros.wait_for_subscribers(images)
        images.publish(rgb_to_image(frame.rgb, ns_to_stamp(7_000_000_001), "camera_color_optical_frame"))
        assert ros.spin_until(lambda: out, timeout_s=20)
    got = {}
    for d in out[0].detections:
        got.setdefault(d.class_name, []).append([d.x_min, d.y_min, d.x_max, d.y_max])
    red = next(lb for lb in frame.labels if lb.name == "red_cube")
    assert box_iou(red.box_xyxy[None], np.array(got["red_cube"])).max() >= 0.7
    assert "bin" in got


@pytest.mark.slow
def test_ultralytics_backend_loads_rtdetr_weights(tmp_path):
    """RT-DETR (ultralytics, randomly initialised: none is trained here) saved and loaded by path."""
    from ultralytics import RTDETR
    from ultralytics.nn.tasks import RTDETRDetectionModel

    model = RTDETR("rtdetr-l.yaml")
    model.model = RTDETRDetectionModel("rtdetr-l.yaml", nc=3, verbose=False)
    model.model.names = {0: "red_cube", 1: "cube", 2: "bin"}
    model.save(tmp_path / "rtdetr_random.pt")
    det = make_detector("ultralytics", tmp_path / "rtdetr_random.pt", image_size=320, score_threshold=0.0,
                        max_detections=7)
    assert type(det.model).__name__ == "RTDETR" and det.class_names == ("red_cube", "cube", "bin")
    out = det.detect(np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert 0 < len(out) <= 7 and set(out.class_names) <= {"red_cube", "cube", "bin"}
    assert np.all(out.boxes_xyxy[:, 2:] >= out.boxes_xyxy[:, :2])
    assert np.all((out.boxes_xyxy >= 0) & (out.boxes_xyxy <= [320, 240, 320, 240]))


def _fake_model(tmp_path, calls: dict):
    """A stand-in for ultralytics' YOLO / RTDETR: records the model and train()'s arguments in
    ``calls`` and "trains" by writing a best.pt."""
    import types

    class FakeModel:
        def __init__(self, model, task=None):
            calls["model"] = model

        def train(self, **kwargs):
            calls.update(kwargs)
            save_dir = tmp_path / "run"
            (save_dir / "weights").mkdir(parents=True)
            (save_dir / "weights" / "best.pt").write_bytes(b"weights")
            self.trainer = types.SimpleNamespace(save_dir=save_dir)

    return FakeModel


@pytest.mark.parametrize("model, fine_tune", [("yolo11n.yaml", False), ("ours/best.pt", True)])
def test_training_loads_a_pt_to_fine_tune_and_passes_the_optimizer(tmp_path, monkeypatch, model, fine_tune):
    """ultralytics ignores a .pt's weights when pretrained=False (session 3's "fine-tune"
    trained from scratch): the trainer must ask for them, and only for a .pt."""
    import sys
    import types

    from fdl_robot.perception import train_detector

    calls = {}
    monkeypatch.setitem(sys.modules, "ultralytics", types.SimpleNamespace(YOLO=_fake_model(tmp_path, calls)))
    summary = train_detector.train(tmp_path / "data.yaml", tmp_path / "out", model=model, hours=0.01,
                                   optimizer="AdamW", lr0=5e-4, run_dir=tmp_path / "runs")
    assert calls["pretrained"] is fine_tune and summary["fine_tune"] is fine_tune
    assert calls["optimizer"] == "AdamW" and calls["lr0"] == 5e-4
    assert (tmp_path / "out" / "best.pt").read_bytes() == b"weights"


def test_detr_yaml_keeps_yolo11n_layers_so_the_shipped_yolo_initialises_them(tmp_path):
    """compose_detr_yaml: layers 0-22 are yolo11n's, the last an RTDETRDecoder with the spec's
    settings; every tensor of the shipped YOLO but its Detect head (layer 23) fits."""
    import yaml
    from ultralytics.nn.tasks import RTDETRDetectionModel, load_checkpoint

    from fdl_robot.perception.train_detector import DETR_SPEC, compose_detr_yaml, transferred_layers

    composed = compose_detr_yaml(DETR_SPEC, tmp_path / "rtdetr_yolo11n.yaml")
    decoder = RTDETRDetectionModel(str(composed), nc=3, verbose=False).model[-1]
    spec = yaml.safe_load(DETR_SPEC.read_text())["decoder"]
    assert type(decoder).__name__ == "RTDETRDecoder" and decoder.nc == 3
    assert (decoder.hidden_dim, decoder.num_queries, decoder.nhead, decoder.num_decoder_layers) == (
        spec["hidden_dim"], spec["queries"], spec["heads"], spec["layers"])
    moved = transferred_layers(composed, SHIPPED_PT, nc=3)
    yolo = load_checkpoint(str(SHIPPED_PT))[0].state_dict()
    assert moved["tensors"] == sum(not k.startswith("model.23.") for k in yolo) > 300
    assert moved["layers"] == [0, 22] and moved["layer_count"] == 17     # 6 of 23 have no weights


def test_training_the_detr_family_composes_its_yaml_and_starts_from_the_shipped_yolo(tmp_path, monkeypatch):
    """--family detr: RTDETR on the composed yaml, pretrained = the shipped YOLO's best.pt (so its
    layers 0-22 transfer), the family's AdamW defaults, no 0.1 bias warm-up rate."""

    import ultralytics

    from fdl_robot.perception import train_detector

    calls = {}
    monkeypatch.setattr(ultralytics, "RTDETR", _fake_model(tmp_path, calls), raising=False)
    (tmp_path / "data.yaml").write_text("names: {0: red_cube, 1: cube, 2: bin}\n")
    summary = train_detector.train(tmp_path / "data.yaml", tmp_path / "out", family="detr", hours=0.01,
                                   run_dir=tmp_path / "runs")
    assert calls["model"] == str(tmp_path / "out" / "rtdetr_yolo11n.yaml")
    assert calls["pretrained"] == str(SHIPPED_PT) and summary["init_transfer"]["layers"] == [0, 22]
    assert (calls["optimizer"], calls["lr0"], calls["warmup_bias_lr"]) == ("AdamW", 2e-4, 0.0)
    assert calls["name"] == "detr" and summary["family"] == "detr" and not summary["fine_tune"]

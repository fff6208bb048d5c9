"""The built-in YOLO-family person detector: output layouts, letterbox mapping, NMS, use in the Pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from whmr_core.runtime.detector import YoloPersonDetector, letterbox, nms
from whmr_core.runtime.engines import EngineError


def fake_yolo(path: Path, raw: np.ndarray, size: int = 64) -> Path:
    """An ONNX model that returns ``raw`` for any (1,3,size,size) image (the input is used, times 0)."""
    const = helper.make_node("Constant", [], ["raw"], value=numpy_helper.from_array(raw.astype(np.float32)))
    mean = helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0)
    zero = helper.make_node("Constant", [], ["z"], value=numpy_helper.from_array(np.float32(0.0)))
    mul = helper.make_node("Mul", ["m", "z"], ["mz"])
    add = helper.make_node("Add", ["raw", "mz"], ["output0"])
    graph = helper.make_graph(
        [const, mean, zero, mul, add], "fake",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(raw.shape))],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def v8_output(dets: list[tuple[float, float, float, float, int, float]], classes: int = 3) -> np.ndarray:
    """(1, 4 + classes, anchors) with one anchor per (cx, cy, w, h, class, score) plus empty anchors."""
    out = np.zeros((1, 4 + classes, 8), np.float32)
    for k, (cx, cy, w, h, cls, score) in enumerate(dets):
        out[0, :4, k] = (cx, cy, w, h)
        out[0, 4 + cls, k] = score
    return out


def test_letterbox_maps_a_wide_image_into_the_middle():
    img = np.zeros((64, 128, 3), np.uint8)
    canvas, scale, (px, py) = letterbox(img, 64)
    assert canvas.shape == (64, 64, 3) and scale == 0.5 and (px, py) == (0.0, 16.0)
    assert (canvas[:16] == 114).all() and (canvas[16:48] == 0).all()


def test_v8_layout_boxes_back_in_image_pixels_with_nms(tmp_path):
    raw = v8_output([
        (32, 32, 16, 16, 0, 0.9),   # person
        (33, 32, 16, 16, 0, 0.8),   # same person, suppressed
        (10, 30, 8, 8, 1, 0.95),    # another class: ignored
        (50, 30, 8, 8, 0, 0.1),     # below the threshold
    ])  # fmt: skip
    det = YoloPersonDetector(fake_yolo(tmp_path / "v8.onnx", raw), score_threshold=0.3)
    boxes, scores = det(np.zeros((64, 128, 3), np.uint8))
    # Letterbox: scale 0.5, 16 px pad on top -> (32, 32, 16, 16) is (48, 16, 80, 48) in the image.
    np.testing.assert_allclose(boxes, [[48.0, 16.0, 80.0, 48.0]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)


def test_v5_layout_uses_objectness(tmp_path):
    raw = np.zeros((1, 12, 7), np.float32)  # (anchors, 5 + 2 classes); real models have anchors >> columns
    raw[0, 0] = (32, 32, 16, 16, 0.5, 0.9, 0.1)  # 0.45 person
    raw[0, 1] = (20, 20, 8, 8, 0.2, 0.9, 0.0)  # 0.18: dropped
    det = YoloPersonDetector(fake_yolo(tmp_path / "v5.onnx", raw), score_threshold=0.3)
    boxes, scores = det(np.zeros((64, 64, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[24.0, 24.0, 40.0, 40.0]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.45], atol=1e-6)


def test_nms_keeps_separate_people():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5).tolist() == [1, 2]


def test_bad_detector_files(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        YoloPersonDetector(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(EngineError, match=r"bad\.onnx"):
        YoloPersonDetector(bad)


def test_pipeline_uses_the_detector_when_no_detections_are_given(tmp_path):
    from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody

    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.frames import Frame
    from whmr_core.runtime.pipeline import Pipeline

    raw = v8_output([(32, 32, 24, 40, 0, 0.9)])
    path = fake_yolo(tmp_path / "det.onnx", raw)
    engine = FakeEngine((64, 64), focal=80.0)
    engine.bodies = [SeenBody(np.array([0.0, 0.0, 4.0]))]
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(detector_model=str(path)))
    result = pipe.process(Frame(image=np.zeros((64, 64, 3), np.uint8), stamp_ns=1))
    assert result.box_source == "detector"
    (person,) = result.persons
    np.testing.assert_allclose(person.box_xyxy, [20.0, 12.0, 44.0, 52.0], atol=1e-4)

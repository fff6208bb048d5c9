"""Built-in person detector: a YOLO-family ONNX model file the user gives, run with ONNX Runtime.

whmr ships no detector weights (none are installable offline here); point ``pipeline.detector_model`` at an
exported YOLO model (e.g. ``yolo export model=yolov8n.pt format=onnx``). Both common output layouts are read:
YOLOv8/11 ``(1, 4 + classes, anchors)`` with class scores, and YOLOv5/7 ``(1, anchors, 5 + classes)`` with an
objectness column. Boxes are centre/size in the letterboxed input; they are mapped back to image pixels and
thinned by non-maximum suppression.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from whmr_core.runtime.engines import EngineError
from whmr_core.tracking import iou_matrix

__all__ = ["YoloPersonDetector", "letterbox", "nms"]

PAD_VALUE = 114  # the grey YOLO's training letterbox uses


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio into a size x size canvas: (canvas, scale, (pad_x, pad_y))."""
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = round(w * scale), round(h * scale)
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    px, py = (size - nw) / 2, (size - nh) / 2
    x0, y0 = round(px - 0.1), round(py - 0.1)  # the top-left side takes the smaller half of odd pads
    canvas[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, scale, (float(x0), float(y0))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes (N,4 xyxy) kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class YoloPersonDetector:
    """``detector(image RGB uint8) -> (boxes (N,4) xyxy pixels, scores (N,))`` for the person class."""

    def __init__(
        self,
        path: str | Path,
        *,
        score_threshold: float = 0.35,
        iou_threshold: float = 0.5,
        person_class: int = 0,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise EngineError(f"{self.path}: detector model not found")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types
            raise EngineError(f"{self.path}: not a loadable ONNX detector ({exc})") from exc
        inp = self.session.get_inputs()[0]
        shape = inp.shape
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise EngineError(f"{self.path}: expected a (1, 3, S, S) image input, got {shape}")
        self.input_name = inp.name
        self.size = int(shape[2]) if isinstance(shape[2], int) else 640
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self.person_class = person_class

    def _decode(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw output -> (centre/size boxes (N,4), person scores (N,)) in letterbox pixels."""
        a = np.asarray(out, dtype=np.float32)
        if a.ndim == 3:
            a = a[0]
        if a.ndim != 2:
            raise EngineError(f"{self.path}: unexpected detector output shape {np.shape(out)}")
        if a.shape[0] < a.shape[1]:  # YOLOv8/11: (4 + classes, anchors); real models have anchors >> classes
            a = a.T
            return a[:, :4], a[:, 4 + self.person_class]
        # YOLOv5/7: (anchors, 5 + classes): objectness times the class score.
        return a[:, :4], a[:, 4] * a[:, 5 + self.person_class]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        canvas, scale, (px, py) = letterbox(image, self.size)
        blob = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        (out, *_) = self.session.run(None, {self.input_name: blob})
        cxcywh, scores = self._decode(out)
        keep = scores >= self.score_threshold
        cxcywh, scores = cxcywh[keep], scores[keep]
        if not len(scores):
            return np.zeros((0, 4)), np.zeros(0)
        cx, cy, w, h = cxcywh.T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float64)
        boxes = (boxes - [px, py, px, py]) / scale  # letterbox -> image pixels
        idx = nms(boxes, scores.astype(np.float64), self.iou_threshold)
        return boxes[idx], scores[idx].astype(np.float64)

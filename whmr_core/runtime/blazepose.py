"""The shipped person detector: MediaPipe's BlazePose pose detector, run on the LiteRT interpreter.

The model (``whmr_core/assets/detector/pose_detection.tflite``, from the mediapipe 0.10.14 wheel, Apache-2.0;
see the LICENCE beside it) is a single-shot detector over 2254 anchors on a 224x224 letterboxed RGB input in
[-1, 1]. Per anchor it predicts the face box and four alignment keypoints: 0 the mid-hip centre, 1 a point
whose distance from the hip centre is the radius of a circle around the whole body and whose direction is the
body's "up", 2 the mid-shoulder centre, 3 the same for the upper body. MediaPipe itself never uses the face
box for the body: it crops a rotated square of side 2 r around the hip centre for its landmark model. whmr
needs tight upright person boxes like a detector's (the network was trained on such boxes), so
:func:`person_boxes` builds them from the hip centre, the two circles and the face box.

``ai_edge_litert`` is imported only here, so the rest of whmr never needs it (and never imports mediapipe).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from whmr_core.runtime.engines import EngineError
from whmr_core.runtime.ssd import AnchorOptions, Letterbox, RawDetections, decode, ssd_anchors, weighted_nms

__all__ = [
    "MODEL_PATH",
    "MODEL_SHA256",
    "POSE_ANCHORS",
    "BlazePoseDetector",
    "PoseDetection",
    "person_boxes",
    "tiles",
]

MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "detector" / "pose_detection.tflite"
MODEL_SHA256 = "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"  # mediapipe 0.10.14's file
INPUT_SIZE = 224
NUM_KEYPOINTS = 4
# MediaPipe's pose_detection_cpu graph: SsdAnchorsCalculator options, then the decoder and NMS settings.
POSE_ANCHORS = AnchorOptions(
    input_size=INPUT_SIZE, strides=(8, 16, 32, 32, 32), min_scale=0.1484375, max_scale=0.75
)
NMS_IOU = 0.3  # on the face boxes, WEIGHTED
# Body widths relative to the circle radii (body shape, not fitted per image): shoulders with hanging arms
# span about one upper-body radius, the hips and legs about 0.7 full-body radii.
UPPER_HALF_WIDTH = 0.5  # x upper-body radius, across the upper-body axis at the shoulders
LOWER_HALF_WIDTH = 0.35  # x full-body radius, across the body axis at the hips and the feet
MAX_TILES = 8  # detector passes per image at most (3 for 16:9, 7 for 4:1): bounded time on any image


@dataclass(frozen=True)
class PoseDetection:
    """One person, in image pixels (integer pixel centres)."""

    box_xyxy: np.ndarray  # (4,) whmr's person box (see person_boxes)
    score: float
    face_box_xyxy: np.ndarray  # (4,) what the network's box regresses
    hip_centre: np.ndarray  # (2,)
    body_radius: float  # full-body circle radius, pixels
    up: np.ndarray  # (2,) unit vector from the hip centre towards the head
    shoulder_centre: np.ndarray  # (2,)
    keypoints: np.ndarray  # (4, 2) the raw alignment keypoints


def person_boxes(face_boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(N, 4) upright person boxes from face boxes (N, 4) and alignment keypoints (N, 4, 2), any units.

    The body outline is modelled from the two circles: the head end at the full-body scale point (the
    circle reaches the top of the head), the feet its mirror image through the hip centre; the shoulders
    ``UPPER_HALF_WIDTH`` upper-body radii to each side of the shoulder centre (across the upper-body axis),
    hips and feet ``LOWER_HALF_WIDTH`` full-body radii to each side. The box bounds these points and the
    face box. A body bent at the hips (the feet are then not the mirror of the head) gets a box that
    reaches too far on the side the body leans away from."""
    kp = np.asarray(keypoints, dtype=np.float64)
    hip, top, shoulder, upper = kp[:, 0], kp[:, 1], kp[:, 2], kp[:, 3]

    def axis(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = b - a
        r = np.linalg.norm(d, axis=1, keepdims=True)
        u = d / np.maximum(r, 1e-12)
        return r, np.stack([-u[:, 1], u[:, 0]], axis=1)  # radius, unit vector across the axis

    r, across = axis(hip, top)
    ru, across_u = axis(shoulder, upper)
    feet = 2 * hip - top
    side_u = UPPER_HALF_WIDTH * ru * across_u
    side = LOWER_HALF_WIDTH * r * across
    face = np.asarray(face_boxes, dtype=np.float64)
    pts = np.stack(
        [top, shoulder + side_u, shoulder - side_u, hip + side, hip - side, feet + side, feet - side,
         face[:, :2], face[:, 2:]], axis=1,
    )  # fmt: skip
    return np.concatenate([pts.min(1), pts.max(1)], axis=1)


def tiles(
    width: int, height: int, min_aspect: float = 1.5, max_tiles: int = MAX_TILES
) -> list[tuple[int, int, int]]:
    """Regions to run the detector on, as (x0, y0, side); side 0 is the whole image.

    The whole image up to 3:2; beyond, squares of the short side's size along the long side,
    evenly spaced with at least half a square's overlap (someone cut by one square is whole in the next).
    Never more than ``max_tiles``: for a longer image (a 20000x1 one would take 39,999 squares) the
    squares grow along the long side until that many cover it (the slice then ends at the image's edge
    across, a letterboxed strip)."""
    short, long_ = min(width, height), max(width, height)
    if long_ <= min_aspect * short:
        return [(0, 0, 0)]
    # n = ceil((long - side) / (side / 2)) + 1 <= max_tiles  <=>  side >= 2 long / (max_tiles + 1)
    side = max(short, math.ceil(2 * long_ / (max_tiles + 1)))
    n = max(2, math.ceil((long_ - side) / (side / 2)) + 1)
    out = []
    for k in range(n):
        start = round(k * (long_ - side) / (n - 1))
        out.append((start, 0, side) if width >= height else (0, start, side))
    return out


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class BlazePoseDetector:
    """``detector(image RGB uint8) -> (boxes (N,4) xyxy pixels, scores (N,))``; ``detect``: the details."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        score_threshold: float = 0.5,
        max_persons: int = 16,
        threads: int | None = 2,
    ) -> None:
        self.path = Path(path) if path else MODEL_PATH
        if not self.path.is_file():
            raise EngineError(f"{self.path}: BlazePose detector model not found")
        if path is None and _file_sha256(self.path) != MODEL_SHA256:
            raise EngineError(f"{self.path}: checksum mismatch (a damaged copy of the shipped detector)")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise EngineError(
                "the BlazePose detector needs ai-edge-litert (pip install ai-edge-litert)"
            ) from e
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EngineError(f"{self.path}: not a loadable TFLite model ({e})") from e
        (inp,) = self.interpreter.get_input_details()
        outs = self.interpreter.get_output_details()
        if tuple(inp["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3) or len(outs) != 2:
            raise EngineError(f"{self.path}: not the BlazePose detector (input {tuple(inp['shape'])})")
        self.anchors = ssd_anchors(POSE_ANCHORS)
        by_width = {int(o["shape"][-1]): o["index"] for o in outs}
        if set(by_width) != {4 + 2 * NUM_KEYPOINTS, 1} or any(
            o["shape"][1] != len(self.anchors) for o in outs
        ):
            raise EngineError(f"{self.path}: outputs {[tuple(o['shape']) for o in outs]} are not BlazePose's")
        self._input, self._boxes_out, self._scores_out = inp["index"], by_width[12], by_width[1]
        self.score_threshold, self.max_persons = score_threshold, max_persons

    def _tensor(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        h, w = image.shape[:2]
        lb = Letterbox.fit(w, h, INPUT_SIZE)
        shrink = lb.nw < w
        resized = cv2.resize(
            image, (lb.nw, lb.nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)  # MediaPipe's BORDER_ZERO padding
        canvas[lb.y0 : lb.y0 + lb.nh, lb.x0 : lb.x0 + lb.nw] = resized
        return (canvas.astype(np.float32) / 127.5 - 1.0)[None], lb

    def raw(self, image: np.ndarray) -> tuple[RawDetections, Letterbox]:
        """Candidates after weighted NMS, in normalised input coordinates, and the letterbox."""
        tensor, lb = self._tensor(image)
        self.interpreter.set_tensor(self._input, tensor)
        self.interpreter.invoke()
        boxes = self.interpreter.get_tensor(self._boxes_out)[0]
        scores = self.interpreter.get_tensor(self._scores_out)[0]
        cand = decode(boxes, scores, self.anchors, scale=INPUT_SIZE, num_keypoints=NUM_KEYPOINTS,
                      min_score=self.score_threshold)  # fmt: skip
        return weighted_nms(cand, NMS_IOU, self.max_persons), lb

    def _in_pixels(self, image: np.ndarray) -> RawDetections:
        """One network pass over ``image``: detections with face boxes and keypoints in its pixels."""
        dets, lb = self.raw(image)
        face = lb.to_image(dets.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return RawDetections(face, lb.to_image(dets.keypoints), dets.scores)

    def detect(self, image: np.ndarray) -> list[PoseDetection]:
        """Every person: the whole image, or square tiles along the long side merged by weighted NMS.

        The network is trained for the one prominent person of a letterboxed square: beside a more
        prominent one, a second person often scores below threshold, and in a wide photo everyone is
        small. Tiles of the short side's size see each upright person whole and larger."""
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) RGB uint8, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        parts = []
        for x0, y0, side in tiles(w, h):
            d = self._in_pixels(img[y0 : y0 + side, x0 : x0 + side] if side else img)
            at = np.array([x0, y0], dtype=np.float64)
            parts.append(RawDetections(d.boxes + np.tile(at, 2), d.keypoints + at, d.scores))
        merged = RawDetections(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )
        dets = weighted_nms(merged, NMS_IOU, self.max_persons) if len(parts) > 1 else merged
        boxes = person_boxes(dets.boxes, dets.keypoints)
        out = []
        for i in range(len(dets)):
            kp = dets.keypoints[i]
            d = kp[1] - kp[0]
            r = float(np.linalg.norm(d))
            out.append(
                PoseDetection(
                    box_xyxy=boxes[i],
                    score=float(dets.scores[i]),
                    face_box_xyxy=dets.boxes[i],
                    hip_centre=kp[0],
                    body_radius=r,
                    up=d / max(r, 1e-12),
                    shoulder_centre=kp[2],
                    keypoints=kp,
                )
            )
        return out

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dets = self.detect(image)
        boxes = np.array([d.box_xyxy for d in dets]).reshape(-1, 4)
        return boxes, np.array([d.score for d in dets], dtype=np.float64)

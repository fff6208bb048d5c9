"""MoveNet on ONNX Runtime: MultiPose finds everyone (boxes + COCO-17 keypoints), Thunder refines one person's
keypoints on a crop. The shipped files and their checks: ``pose_models``.

MultiPose (up to 6 people per run) takes an int32 (1, H, W, 3) RGB image with H, W multiples of 32 and returns
(1, 6, 56): per person 17 x (y, x, score) then (ymin, xmin, ymax, xmax, score), normalised to that input. The
image is letterboxed (resized so its longer side is ``side``, padded bottom/right). Wide or tall images, and
people too small at one scale, are covered by running more than one ``side`` and merging the persons by box
overlap. Thunder takes a (1, 256, 256, 3) int32 crop and returns (1, 1, 17, 3), the same (y, x, score).

Box rule: the body network crops a square around the person's box (``box_scale`` context), so the box must
cover the whole visible person. MoveNet's own box hugs the keypoints (joint centres): feet below the ankles,
the head above the eyes and hands past the wrists lie outside it. ``person_box`` extends the box of the
confident keypoints by those body parts, in units of the person's torso size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from whmr_core.runtime.detector import nms
from whmr_core.runtime.pose_models import load_pose_session

__all__ = [
    "BlazePoseWorld",
    "MultiPoseDetector",
    "PoseSet",
    "ThunderKeypoints",
    "exposure_normalised",
    "person_box",
]

KEYPOINT_SCORE = 0.3  # a keypoint at or above this counts as seen (MoveNet's own demos use 0.3)
THUNDER_SIZE = 256
CROP_SCALE = 1.25  # Thunder's crop side around a person box (its training crops have ~25 % context)
# How far the body reaches past its outermost keypoints, in torso lengths (shoulder centre to hip centre,
# ~0.5 m on an adult): the skull top ~0.35 above the eyes, soles ~0.12 below the ankles, fingertips
# ~0.2 past the wrists.
HEAD_TOP = 0.35
FEET = 0.12
HANDS = 0.2


@dataclass(frozen=True)
class PoseSet:
    """Persons in image pixels: boxes (N, 4) x1 y1 x2 y2, scores (N,), keypoints (N, 17, 3) x, y, score."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    @classmethod
    def empty(cls) -> PoseSet:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 17, 3)))


DARK = 100  # an image whose bright end (99.5th percentile) is below this is brightened for the pose models
BRIGHT_TARGET = 230


def exposure_normalised(image: np.ndarray) -> np.ndarray:
    """The image, brightened when it is dark (a gain that puts its 99.5th percentile at ``BRIGHT_TARGET``).

    MoveNet was trained on well-exposed photos and finds nobody in a dark frame (a low-light data set's
    frame with values 0-4 of 255) that it finds after this gain. Bright images are returned as they are."""
    bright = float(np.percentile(image[::4, ::4], 99.5))
    if bright >= DARK:
        return image
    return cv2.convertScaleAbs(image, alpha=BRIGHT_TARGET / max(bright, 1.0))


def _torso(kp: np.ndarray, seen: np.ndarray) -> float | None:
    """Shoulder-centre to hip-centre distance from whichever side points are seen; None if neither pair."""
    sh = [k for k in (5, 6) if seen[k]]
    hp = [k for k in (11, 12) if seen[k]]
    if sh and hp:
        return float(np.linalg.norm(kp[sh, :2].mean(0) - kp[hp, :2].mean(0)))
    return None


def person_box(
    kp: np.ndarray, model_box: np.ndarray | None = None, threshold: float = KEYPOINT_SCORE
) -> np.ndarray:
    """The box of the whole visible person from COCO-17 keypoints (17, 3) x, y, score (and the model's own
    box, which it always contains). Without a torso the keypoints' extent sets the scale."""
    seen = kp[:, 2] >= threshold
    pts = kp[seen, :2]
    if not len(pts):
        if model_box is None:
            raise ValueError("person_box: no keypoint seen and no box given")
        return np.asarray(model_box, np.float64).copy()
    x1, y1 = pts.min(0)
    x2, y2 = pts.max(0)
    scale = _torso(kp, seen)
    if scale is None:
        scale = 0.5 * max(x2 - x1, y2 - y1, 1.0)
    # Extend in the image's up direction where the extreme point is a head, foot or hand point: the
    # body is most often upright; a lying person gets a little more room on the sides instead.
    head = seen[:5]
    top_is_head = head.any() and kp[:5][head, 1].min() <= y1 + 1e-6
    pad_top = HEAD_TOP * scale if top_is_head else HANDS * scale
    feet = seen[15:17]
    bottom_is_feet = feet.any() and kp[15:17][feet, 1].max() >= y2 - 1e-6
    pad_bottom = FEET * scale if bottom_is_feet else HANDS * scale
    pad_side = HANDS * scale
    box = np.array([x1 - pad_side, y1 - pad_top, x2 + pad_side, y2 + pad_bottom])
    if model_box is not None:
        mb = np.asarray(model_box, np.float64)
        box = np.array([min(box[0], mb[0]), min(box[1], mb[1]), max(box[2], mb[2]), max(box[3], mb[3])])
    return box


class MultiPoseDetector:
    """``detect(image) -> PoseSet``; ``__call__(image) -> (boxes, scores, keypoints)`` for the box policy."""

    def __init__(
        self,
        score_threshold: float = 0.2,
        sides: tuple[int, ...] = (256,),
        max_persons: int = 12,
        merge_iou: float = 0.5,
        threads: int | None = None,
    ) -> None:
        if not sides or any(s < 32 or s % 32 for s in sides):
            raise ValueError(f"MultiPose input sides must be multiples of 32 (>= 32), got {sides}")
        self.session = load_pose_session("movenet-multipose", threads)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.sides = tuple(sides)
        self.max_persons = max_persons
        self.merge_iou = merge_iou

    def _run(self, image: np.ndarray, side: int) -> PoseSet:
        h, w = image.shape[:2]
        s = side / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        pw, ph = -(-nw // 32) * 32, -(-nh // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(
            image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        )
        out = self.session.run(None, {self.input_name: canvas[None].astype(np.int32)})[0][0]
        out = out[out[:, 55] >= self.score_threshold]
        if not len(out):
            return PoseSet.empty()
        # Normalised (y, x) of the padded input -> pixels of the original image (pixel centres at integers:
        # normalised 0 is the padded input's left edge, -0.5 in pixel-centre coordinates).
        sx, sy = pw / (nw / w), ph / (nh / h)
        kp = out[:, :51].reshape(-1, 17, 3)
        keypoints = np.stack([kp[..., 1] * sx - 0.5, kp[..., 0] * sy - 0.5, kp[..., 2]], axis=-1)
        model_boxes = np.stack(
            [out[:, 52] * sx - 0.5, out[:, 51] * sy - 0.5, out[:, 54] * sx - 0.5, out[:, 53] * sy - 0.5],
            axis=1,
        )
        boxes = np.stack([person_box(k, b) for k, b in zip(keypoints, model_boxes, strict=True)])
        return PoseSet(boxes.astype(np.float64), out[:, 55].astype(np.float64), keypoints.astype(np.float64))

    def detect(self, image: np.ndarray) -> PoseSet:
        image = exposure_normalised(image)
        sets = [self._run(image, side) for side in self.sides]
        boxes = np.concatenate([p.boxes for p in sets])
        scores = np.concatenate([p.scores for p in sets])
        keypoints = np.concatenate([p.keypoints for p in sets])
        # Persons found at several scales: the best-scoring one of each overlapping group is kept.
        keep = nms(boxes, scores, self.merge_iou)[: self.max_persons]
        if not len(keep):
            return PoseSet.empty()
        return PoseSet(boxes[keep], scores[keep], keypoints[keep])

    def __call__(self, image: np.ndarray):
        p = self.detect(image)
        return p.boxes, p.scores, p.keypoints


def _square_crop(image: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A ``size`` x ``size`` crop of side ``CROP_SCALE`` x the box's longer side around its centre (black
    outside the image), its top-left edge in image pixels and its side in image pixels."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = CROP_SCALE * max(box[2] - box[0], box[3] - box[1], 1.0)
    a = size / side  # crop pixels per image pixel
    corner = np.array([cx - side / 2, cy - side / 2])
    # Pixel centres at integers: the image point ``corner`` is the crop's edge, -0.5.
    M = np.array([[a, 0, -a * corner[0] - 0.5], [0, a, -a * corner[1] - 0.5]])
    crop = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return crop, corner, side


class ThunderKeypoints:
    """``__call__(image, boxes (N, 4)) -> (N, 17, 3)`` COCO-17 keypoints (x, y, score) in image pixels, one
    Thunder run per person on a square crop of side ``CROP_SCALE`` x the box's longer side."""

    def __init__(self, threads: int | None = None) -> None:
        self.session = load_pose_session("movenet-thunder", threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        out = np.zeros((len(boxes), 17, 3))
        if len(boxes):
            image = exposure_normalised(image)
        for i, b in enumerate(boxes):
            crop, corner, side = _square_crop(image, b, THUNDER_SIZE)
            kp = self.session.run(None, {self.input_name: crop[None].astype(np.int32)})[0].reshape(17, 3)
            # Normalised crop (y, x): 0 and 1 are the crop's edges.
            out[i, :, 0] = corner[0] + kp[:, 1] * side
            out[i, :, 1] = corner[1] + kp[:, 0] * side
            out[i, :, 2] = kp[:, 2]
        return out


# BlazePose's 33 landmarks at the COCO-17 points (nose, eyes, ears, shoulders ... ankles).
BLAZEPOSE_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
BLAZEPOSE_SIZE = 256


class BlazePoseWorld:
    """``__call__(image, boxes (N, 4)) -> (points (N, 17, 3), scores (N, 17))``: BlazePose full's 3D world
    landmarks at the COCO-17 points, metres, hip-centred, in the axes of an upright crop (x right, y down,
    z away from the camera: the camera's axes up to perspective), with their visibility in [0, 1]; one run
    per person on a square crop (as Thunder's). The fit uses them against depth ambiguity and mirroring."""

    def __init__(self, threads: int | None = None) -> None:
        self.session = load_pose_session("blazepose-full", threads)
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        self.outputs = [names[2], names[3], names[4]]  # landmarks (39 x 5), pose flag, world (39 x 3)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        points, scores = np.zeros((len(boxes), 17, 3)), np.zeros((len(boxes), 17))
        if len(boxes):
            image = exposure_normalised(image)
        for i, b in enumerate(boxes):
            crop, _, _ = _square_crop(image, b, BLAZEPOSE_SIZE)
            x = (crop.astype(np.float32) / 255.0)[None]
            landmarks, flag, world = self.session.run(self.outputs, {self.input_name: x})
            lm = landmarks.reshape(39, 5)[list(BLAZEPOSE_COCO17)]
            visibility = 1.0 / (1.0 + np.exp(-lm[:, 3]))
            points[i] = world.reshape(39, 3)[list(BLAZEPOSE_COCO17)]
            scores[i] = visibility * float(np.clip(flag.reshape(-1)[0], 0.0, 1.0))
        return points, scores

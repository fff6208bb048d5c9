"""NanoDet's COCO person boxes on ONNX Runtime: a second box source beside MoveNet MultiPose in crowds.

MultiPose returns at most 6 people per run, so a dense crowd saturates it and its crowd tiles; NanoDet (a
one-stage COCO detector, the npm release's ``nanodet``, shipped in ``pose_models``) has no such cap. Where
``whmr image`` runs the crowd tiles, it runs NanoDet on them too and adds the people NanoDet finds that no
MultiPose person covers, with Thunder's keypoints on their box (``MultiPoseDetector(crowd_boxes=True)``).

The graph takes a float32 (1, 3, 416, 416) image (BGR, each channel minus NanoDet's mean over its deviation,
the image stretched to the square) and returns, per stride 8, 16 and 32 (grids of 52, 26 and 13 cells, row
by row), the 80 COCO classes' sigmoid scores (1, cells, 80) and its box as 4 x 11 logits (1, cells, 44): the
distance from the cell's centre to the box's left, top, right and bottom edge is a distribution over 0..10
strides (generalised focal loss: the expected bin, times the stride).
"""

from __future__ import annotations

import cv2
import numpy as np

from whmr_core.runtime.detector import nms
from whmr_core.runtime.movenet import DUPLICATE_OKS, KEYPOINT_SCORE, PoseSet, keypoint_similarity, person_box
from whmr_core.runtime.pose_models import load_pose_session
from whmr_core.tracking import iou_matrix

__all__ = ["NanoDetPersons", "add_uncovered", "decode_gfl", "nanodet_input"]

NANODET_SIZE = 416
STRIDES = (8, 16, 32)
REG_BINS = 11  # distances of 0..10 strides
PERSON = 0  # COCO's class 0
# NanoDet's training normalisation (BGR). Raw /255 input scored the tune photos' people lower and missed two
# (OCHuman's second person, an MPII runner) that this finds.
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)
SCORE = 0.4  # person score kept (measured on the tune photos and mosaics: 0.3 adds false alarms, 0.5 misses)
NMS_IOU = 0.5


def nanodet_input(image: np.ndarray, size: int = NANODET_SIZE) -> np.ndarray:
    """(1, 3, size, size) float32 network input of an RGB uint8 image (stretched to the square)."""
    h, w = image.shape[:2]
    x = cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
    )
    x = (x[..., ::-1].astype(np.float32) - MEAN_BGR) / STD_BGR
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def decode_gfl(
    scores: list[np.ndarray], distances: list[np.ndarray], size: int = NANODET_SIZE, strides=STRIDES
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (M, 4) x1 y1 x2 y2 in input pixels (edges: a cell of stride s spans s pixels, centre at
    (col + 0.5) s) and their class scores (M, C), all cells of all strides in order.

    ``scores[k]``: (cells_k, C) of stride ``strides[k]``; ``distances[k]``: (cells_k, 4 * REG_BINS) logits,
    left/top/right/bottom, each a softmax over 0..REG_BINS-1 strides whose expectation is the distance."""
    boxes, out = [], []
    for sc, reg, stride in zip(scores, distances, strides, strict=True):
        g = size // stride
        if len(sc) != g * g or reg.shape != (g * g, 4 * REG_BINS):
            raise ValueError(
                f"stride {stride}: expected {g * g} cells of 4 x {REG_BINS} logits, got {reg.shape}"
            )
        logits = reg.reshape(-1, 4, REG_BINS).astype(np.float64)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        d = (p * np.arange(REG_BINS)).sum(-1) * stride
        row, col = np.divmod(np.arange(g * g), g)
        cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1))
        out.append(np.asarray(sc, np.float64))
    return np.concatenate(boxes), np.concatenate(out)


class NanoDetPersons:
    """``__call__(image) -> (boxes (N, 4) x1 y1 x2 y2 image pixels, scores (N,))``: NanoDet's people at or
    above ``score_threshold``, overlapping boxes merged (best score kept), best first."""

    def __init__(self, score_threshold: float = SCORE, threads: int | None = None) -> None:
        self.session = load_pose_session("nanodet", threads)
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]  # paired by shape in __call__
        self.score_threshold = score_threshold

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        out = self.session.run(self.outputs, {self.input_name: nanodet_input(image)})
        by_cells = sorted((o[0] for o in out), key=lambda a: (-a.shape[0], a.shape[1]))
        # (2704, 44), (2704, 80), (676, 44), ...: pair each stride's scores and distances by cell count.
        dists = [a for a in by_cells if a.shape[1] == 4 * REG_BINS]
        scores = [a for a in by_cells if a.shape[1] != 4 * REG_BINS]
        boxes, cls = decode_gfl([s[:, PERSON : PERSON + 1] for s in scores], dists)
        s = cls[:, 0]
        keep = s >= self.score_threshold
        scale = np.array([w, h, w, h]) / NANODET_SIZE
        boxes, s = boxes[keep] * scale, s[keep]
        if not len(s):
            return np.zeros((0, 4)), np.zeros(0)
        k = np.asarray(nms(boxes, s, NMS_IOU), int)
        return boxes[k], s[k]


# A NanoDet person is new when no MultiPose person's box overlaps it by this IoU (tune mosaics: 0.5 found the
# same people; the keypoint checks below keep repeats out).
COVER_IOU = 0.3
# A NanoDet box with fewer of Thunder's keypoints seen (and not a neighbour's) holds no whole-enough person.
MIN_KEYPOINTS = 6


def add_uncovered(
    image: np.ndarray,
    found: PoseSet,
    boxes: np.ndarray,
    scores: np.ndarray,
    keypoints_of,
    max_persons: int,
    cover_iou: float = COVER_IOU,
    min_keypoints: int = MIN_KEYPOINTS,
) -> PoseSet:
    """``found`` (MultiPose's people) with the second source's people (``boxes`` (N, 4), ``scores`` (N,),
    image pixels) that no person of it covers, best score first, at most ``max_persons`` in all.

    Each new box gets ``keypoints_of(image, boxes) -> (N, 17, 3)`` (Thunder on its crop). A keypoint outside
    the box that lies in another person's box is that neighbour's (a crop around one person of a crowd holds
    parts of others): its score is set to 0. The person is kept when at least ``min_keypoints`` keypoints
    remain seen and their keypoints do not repeat a person already kept (``keypoint_similarity``); its box is
    ``person_box`` of those keypoints and the second source's box (the whole visible person)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) and len(found.boxes):
        new = iou_matrix(boxes, found.boxes).max(1) < cover_iou
        boxes, scores = boxes[new], scores[new]
    if not len(boxes) or len(found.boxes) >= max_persons:
        return found
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kps = np.asarray(keypoints_of(image, boxes), np.float64).reshape(-1, 17, 3).copy()
    out_boxes, out_scores, out_kps = list(found.boxes), list(found.scores), list(found.keypoints)
    for b, s, kp in zip(boxes, scores, kps, strict=True):
        x, y = kp[:, 0], kp[:, 1]
        outside = (x < b[0]) | (x > b[2]) | (y < b[1]) | (y > b[3])
        if out_boxes:
            o = np.asarray(out_boxes)
            inside_other = (
                (x[:, None] >= o[:, 0])
                & (x[:, None] <= o[:, 2])
                & (y[:, None] >= o[:, 1])
                & (y[:, None] <= o[:, 3])
            ).any(1)
            kp[outside & inside_other, 2] = 0.0
        if (kp[:, 2] >= KEYPOINT_SCORE).sum() < min_keypoints:
            continue
        if any(
            keypoint_similarity(k, kp, ob) > DUPLICATE_OKS for k, ob in zip(out_kps, out_boxes, strict=True)
        ):
            continue
        out_boxes.append(person_box(kp, b))
        out_scores.append(float(s))
        out_kps.append(kp)
        if len(out_boxes) >= max_persons:
            break
    return PoseSet(np.asarray(out_boxes), np.asarray(out_scores), np.asarray(out_kps))

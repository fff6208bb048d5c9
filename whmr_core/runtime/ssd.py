"""Pure SSD decoding math for MediaPipe-style single-shot detectors (anchors, boxes, keypoints, NMS).

These are the steps MediaPipe's ``SsdAnchorsCalculator``, ``TensorsToDetectionsCalculator`` and
``NonMaxSuppressionCalculator`` (WEIGHTED algorithm) perform, as plain numpy functions so that each can be
tested on a hand-computed case. Coordinates are normalised to the square network input ([0, 1] x [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["AnchorOptions", "Letterbox", "RawDetections", "decode", "ssd_anchors", "weighted_nms"]


@dataclass(frozen=True)
class AnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that its pose/face/palm detectors use."""

    input_size: int
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0  # the proto's default: one extra anchor per cell
    fixed_anchor_size: bool = True


def _scale(opts: AnchorOptions, index: int) -> float:
    n = len(opts.strides)
    if n == 1:
        return (opts.min_scale + opts.max_scale) / 2
    return opts.min_scale + (opts.max_scale - opts.min_scale) * index / (n - 1)


def ssd_anchors(opts: AnchorOptions) -> np.ndarray:
    """(A, 4) anchors as (x_centre, y_centre, w, h), in the order the network emits its boxes.

    Consecutive layers with the same stride share one grid: per cell, all their anchors come together
    (layer by layer, each layer's aspect ratios then its interpolated-scale anchor)."""
    out: list[np.ndarray] = []
    layer = 0
    strides = opts.strides
    while layer < len(strides):
        sizes: list[tuple[float, float]] = []  # (w, h) per anchor of one cell
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _scale(opts, last)
            for ar in opts.aspect_ratios:
                sizes.append((scale * math.sqrt(ar), scale / math.sqrt(ar)))
            if opts.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == len(strides) - 1 else _scale(opts, last + 1)
                s = math.sqrt(scale * nxt)
                ar = opts.interpolated_scale_aspect_ratio
                sizes.append((s * math.sqrt(ar), s / math.sqrt(ar)))
            last += 1
        cells = math.ceil(opts.input_size / strides[layer])
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + opts.anchor_offset) / cells  # (C, 2)
        wh = np.ones((len(sizes), 2)) if opts.fixed_anchor_size else np.asarray(sizes)
        grid = np.concatenate(
            [np.repeat(centres, len(sizes), axis=0), np.tile(wh, (len(centres), 1))], axis=1
        )
        out.append(grid)
        layer = last
    return np.concatenate(out, axis=0)


@dataclass(frozen=True)
class RawDetections:
    """Decoded candidates: boxes (N, 4) xyxy, keypoints (N, K, 2) xy, scores (N,); normalised input coords."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, idx: np.ndarray) -> RawDetections:
        return RawDetections(self.boxes[idx], self.keypoints[idx], self.scores[idx])


def decode(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    *,
    scale: float,
    num_keypoints: int,
    min_score: float,
    score_clip: float = 100.0,
) -> RawDetections:
    """Network outputs -> candidates above ``min_score`` (TensorsToDetections, x-first output order).

    ``raw_boxes`` (A, 4 + 2K): (dx, dy, w, h, kx0, ky0, ...) in input pixels relative to the anchor centre;
    ``raw_scores`` (A,) or (A, 1): logits, clipped to +-``score_clip`` then passed through a sigmoid."""
    a = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchors), -1)
    if a.shape[1] < 4 + 2 * num_keypoints:
        raise ValueError(f"raw boxes: {a.shape[1]} values per anchor, need {4 + 2 * num_keypoints}")
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(len(anchors)), -score_clip, score_clip)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    a, anc, scores = a[keep], anchors[keep], scores[keep]
    cx = a[:, 0] / scale * anc[:, 2] + anc[:, 0]
    cy = a[:, 1] / scale * anc[:, 3] + anc[:, 1]
    w = a[:, 2] / scale * anc[:, 2]
    h = a[:, 3] / scale * anc[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = a[:, 4 : 4 + 2 * num_keypoints].reshape(-1, num_keypoints, 2)
    kp = kp / scale * anc[:, None, 2:4] + anc[:, None, 0:2]
    return RawDetections(boxes, kp, scores)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(dets: RawDetections, iou_threshold: float, max_out: int | None = None) -> RawDetections:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Best first: every remaining candidate overlapping the best by IoU > ``iou_threshold`` (the best
    included) is merged into it, boxes and keypoints averaged with score weights; the merged detection keeps
    the best one's score. Unlike greedy NMS this averages the many anchors that fire on one person."""
    order = np.argsort(-dets.scores, kind="stable")
    boxes, kps, scores = [], [], []
    while order.size and (max_out is None or len(scores) < max_out):
        best = order[0]
        overlap = _iou(dets.boxes[best], dets.boxes[order]) > iou_threshold
        overlap[0] = True
        group, order = order[overlap], order[~overlap]
        w = dets.scores[group]
        boxes.append((dets.boxes[group] * w[:, None]).sum(0) / w.sum())
        kps.append((dets.keypoints[group] * w[:, None, None]).sum(0) / w.sum())
        scores.append(dets.scores[best])
    k = dets.keypoints.shape[1:]
    return RawDetections(
        np.asarray(boxes).reshape(-1, 4),
        np.asarray(kps).reshape(-1, *k),
        np.asarray(scores, dtype=np.float64),
    )


@dataclass(frozen=True)
class Letterbox:
    """Where a width x height image sits in the size x size input: resized to (nw, nh) at offset (x0, y0)."""

    width: int
    height: int
    size: int
    nw: int
    nh: int
    x0: int
    y0: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        scale = min(size / width, size / height)
        nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
        return cls(width, height, size, nw, nh, (size - nw) // 2, (size - nh) // 2)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Normalised input coordinates (..., 2) -> image pixels with integer pixel centres.

        Pixel edges: input edge e maps to image edge (e - x0) * W / nw; a centre lies half a pixel in."""
        p = np.asarray(points, dtype=np.float64) * self.size
        x = (p[..., 0] - self.x0) * self.width / self.nw - 0.5
        y = (p[..., 1] - self.y0) * self.height / self.nh - 0.5
        return np.stack([x, y], axis=-1)

"""Which person boxes a frame uses: the box policy.

Candidates, first available wins: the frame's own detections, else the built-in detector, else the
previous frame's tracked boxes (each body's projected mesh, so a person kept in view keeps a box), else
the whole image (one person). A detector that finds nobody means nobody (the tracked boxes, if any, carry
a person the detector missed for a frame; never the whole image). Candidates are then filtered:
non-finite ones dropped with a reason, given detections below the score threshold ignored, boxes clipped
to the image and dropped when too small, and at most ``max_persons`` kept (best scores first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from whmr_core import geometry
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.frames import Detections, DroppedPerson, Frame, PersonResult

__all__ = ["BoxPolicy", "BoxSet", "filter_boxes", "projected_box", "whole_image_box"]

# A box with less of its area than this inside the image is no person in it: clipped, a box of size 1e308
# became the whole image. (A person cut by the image edge keeps far more of the box inside.)
MIN_INSIDE_FRACTION = 0.1
# Given detections overlapping a better one this much are the same person sent twice (500 copies of one
# box became 8 bodies with 8 track ids); the built-in detectors already suppress theirs.
DUPLICATE_IOU = 0.9


@dataclass(frozen=True)
class BoxSet:
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2 pixels, clipped to the image
    scores: np.ndarray  # (N,)
    source: str  # detection, detector, tracked, whole_image or none
    dropped: tuple[DroppedPerson, ...] = field(default=())
    keypoints: np.ndarray | None = None  # (N, 17, 3) the detector's COCO-17 keypoints, when it gives them


def whole_image_box(w: int, h: int) -> np.ndarray:
    # Pixel centres are integers, so the image spans [-0.5, W - 0.5].
    return np.array([-0.5, -0.5, w - 0.5, h - 0.5])


def filter_boxes(det: Detections, source: str, w: int, h: int, config: PipelineConfig) -> BoxSet:
    """The usable candidates of one frame, best scores first, with a reason for each one dropped."""
    keep_b, keep_s, keep_i, dropped = [], [], [], []
    lo, hi = whole_image_box(w, h)[:2], whole_image_box(w, h)[2:]
    for i, (box, score) in enumerate(zip(det.boxes, det.scores, strict=True)):
        if not (np.isfinite(box).all() and np.isfinite(score)):
            dropped.append(DroppedPerson("box or score not finite", None))
            continue
        if source == "detection" and score < config.min_detection_score:
            continue  # below threshold: not a person, not worth a reason
        clipped = np.concatenate([np.maximum(box[:2], lo), np.minimum(box[2:], hi)])
        if min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < max(config.min_box_px, 1e-6):
            why = "box outside the image" if (clipped[2:] <= clipped[:2]).any() else "box too small"
            dropped.append(DroppedPerson(f"{why}: {np.round(box, 1).tolist()} in {w}x{h}", box.copy()))
            continue
        with np.errstate(over="ignore"):  # a box of 1e308 pixels has an infinite area: 0 % inside
            inside = float(np.prod(clipped[2:] - clipped[:2])) / float(np.prod(box[2:] - box[:2]))
        if inside < MIN_INSIDE_FRACTION:
            shown = [float(f"{v:.4g}") for v in box]
            why = f"box mostly outside the image ({inside:.0%} of it inside): {shown} in {w}x{h}"
            dropped.append(DroppedPerson(why, box.copy()))
            continue
        keep_b.append(clipped)
        keep_s.append(float(np.clip(score, 0.0, 1.0)))
        keep_i.append(i)
    order = np.argsort(-np.asarray(keep_s), kind="stable")
    if source == "detection" and len(order) > 1:
        order = _without_duplicates(order, np.asarray(keep_b), dropped)
    for i in order[config.max_persons :]:
        dropped.append(DroppedPerson(f"more than max_persons={config.max_persons}", keep_b[i]))
    order = order[: config.max_persons]
    boxes = np.array([keep_b[i] for i in order]).reshape(-1, 4)
    kp = None if det.keypoints is None else det.keypoints[[keep_i[i] for i in order]].reshape(-1, 17, 3)
    return BoxSet(boxes, np.array([keep_s[i] for i in order]), source, tuple(dropped), kp)


def _without_duplicates(order: np.ndarray, boxes: np.ndarray, dropped: list[DroppedPerson]) -> np.ndarray:
    """``order`` (best first) without the boxes that overlap a better kept one by ``DUPLICATE_IOU``."""
    from whmr_core.tracking import iou_matrix

    iou = iou_matrix(boxes, boxes)
    kept: list[int] = []
    for i in order:
        twin = next((k for k in kept if iou[i, k] >= DUPLICATE_IOU), None)
        if twin is None:
            kept.append(int(i))
        else:
            dropped.append(
                DroppedPerson(f"duplicate box (IoU {iou[i, twin]:.2f} with a better one)", boxes[i])
            )
    return np.asarray(kept, dtype=np.int64)


def projected_box(person: PersonResult) -> np.ndarray:
    """The image box of a body's projected mesh (eq. 2 with the focal and principal point it was placed
    with), from the vertices in front of the camera (the pelvis when none is)."""
    v = person.vertices_camera[person.vertices_camera[:, 2] > 1e-3]
    if not len(v):
        v = person.joints_camera[:1]  # decode_person checked that the joints are in front of the camera
    uv = geometry.perspective_project(
        torch.as_tensor(v[None]),
        torch.zeros(1, 3, dtype=torch.float64),
        torch.as_tensor(person.focal_xy[None]),
        torch.as_tensor(person.principal_point[None]),
    )[0].numpy()
    return np.array([*uv.min(0), *uv.max(0)])


class BoxPolicy:
    """``boxes(frame, image) -> BoxSet``; ``remember(persons)`` keeps their boxes for the next frame."""

    def __init__(self, config: PipelineConfig, detector=None) -> None:
        self.config = config
        self.detector = detector  # callable image -> (boxes, scores), or None
        self._tracked: Detections | None = None

    def reset(self) -> None:
        self._tracked = None

    def detect(self, image: np.ndarray) -> Detections | None:
        """The built-in detector's persons in ``image``; None without a detector. Stateless: a caller may
        run it ahead, on another thread, and hand the result to ``boxes``."""
        return None if self.detector is None else Detections.of(*self.detector(image))

    def boxes(self, frame: Frame, image: np.ndarray, detected: Detections | None = None) -> BoxSet:
        """``detected``: the built-in detector's result for this image when it already ran (``detect``)."""
        h, w = image.shape[:2]
        c = self.config
        tracked = c.use_tracked_boxes and self._tracked is not None and len(self._tracked.boxes) > 0
        found = None
        if frame.detections is None:
            found = detected if detected is not None else self.detect(image)
        if frame.detections is not None:
            det, source = frame.detections, "detection"
        elif found is not None and (len(found.boxes) or not tracked):
            det, source = found, "detector"  # nobody found (and no track to follow) means nobody
        elif tracked:
            det, source = self._tracked, "tracked"  # type: ignore[assignment]
        elif c.whole_image_fallback:
            det, source = Detections.of([whole_image_box(w, h)]), "whole_image"
        else:
            return BoxSet(np.zeros((0, 4)), np.zeros(0), "none")
        return filter_boxes(det, source, w, h, c)

    def remember(self, persons: Sequence[PersonResult]) -> Detections | None:
        """Each body's projected mesh as the next frame's box; returns those boxes (None: no bodies)."""
        boxes = [projected_box(p) for p in persons]
        self._tracked = Detections.of(boxes, [p.score for p in persons]) if boxes else None
        return self._tracked

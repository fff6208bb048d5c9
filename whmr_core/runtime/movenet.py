"""MoveNet on ONNX Runtime: MultiPose finds everyone (boxes + COCO-17 keypoints), Thunder refines one person's
keypoints on a crop. The shipped files and their checks: ``pose_models``.

MultiPose (up to 6 people per run) takes an int32 (1, H, W, 3) RGB image with H, W multiples of 32 and returns
(1, 6, 56): per person 17 x (y, x, score) then (ymin, xmin, ymax, xmax, score), normalised to that input. The
image is letterboxed (resized so its longer side is ``side``, padded bottom/right). Wide or tall images, and
people too small at one scale, are covered by running more than one ``side`` and merging the persons by box
overlap. A crowd (a run that returns its maximum of 6 people, who may not be all), or small people in an image
larger than the tiles' input (``SMALL_PERSON``), is run again on overlapping tiles of the image
(``crowd_tiles``), each tile at the largest ``side``; with ``crowd_boxes``, NanoDet's people on those tiles
that no MultiPose person covers are added with Thunder's keypoints (``nanodet``). Thunder takes a
(1, 256, 256, 3) int32 crop and returns (1, 1, 17, 3), the same (y, x, score).

Dark frames: each model here sees a dark image brightened (``exposure_normalised``), and Thunder's crop of a
brightened frame averages the pixels each crop pixel covers, so the gained sensor noise averages out.

Box rule: the body network crops a square around the person's box (``box_scale`` context), so the box must
cover the whole visible person. MoveNet's own box hugs the keypoints (joint centres): feet below the ankles,
the head above the eyes and hands past the wrists lie outside it. ``person_box`` extends the box of the
confident keypoints by those body parts, in units of the person's torso size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from whmr_core.crops import compose_affine, shrunk_window
from whmr_core.runtime.detector import nms
from whmr_core.runtime.pose_models import load_pose_session

__all__ = [
    "BlazePoseWorld",
    "MultiPoseDetector",
    "PoseSet",
    "ThunderKeypoints",
    "bright_end",
    "crop_to_camera",
    "crowd_tiles",
    "cut_by_tile_edge",
    "exposure_gain",
    "exposure_normalised",
    "keypoint_similarity",
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


# MultiPose returns at most 6 people per run: a run that returns 6 may have left people out.
MULTIPOSE_MAX_PERSONS = 6
# Crowd tiles: square-ish tiles of side 60 % of the image's longer side (1.67x the detail of the whole image),
# two along each image side longer than that, one spanning a shorter side (a wide photo's tiles keep whole
# people). Neighbouring tiles overlap by at least 20 % of the longer side, so anyone smaller than that lies
# whole inside some tile. Measured on mosaics of the real-image tune set (6 photos each, 1920 x 960): 16 -> 24
# of 32 people found, precision kept (100 %).
TILE_FRACTION = 0.6
# A tile whose own run returns MultiPose's most may be tiled again (levels in all; a second level's tiles
# are 36 % of the image's longer side). One: on tune mosaics (scripts/bench_crowd_mosaics.py, 3 draws of 6
# photos) a second level found 101 instead of 98 of 146 people for 2.7x the CPU, and on a real crowd of 12
# it returned 19 people instead of 12 (parts of people found again at the smaller scale).
TILE_DEPTH = 1
# Small people: whole-image runs that return a person (at or above the score threshold) shorter than this
# share of the image's longer side see people at the scale where they miss some of that person's neighbours,
# so the crowd tiles run too, where they add detail (a tile at the largest side sees more pixels than the
# whole image does: the image's longer side x TILE_FRACTION exceeds that side). 0: tiles for saturated runs
# only. Measured on the real-image tune set (scripts/diag_missed_people.py): mosaics (3 draws of 6) 98 -> 107
# of 146 people found (0.1: 99, 0.15: 103, 0.3 and tiles on every large image: 107), no false alarm; tune
# photos 14 of 16 either way, the tiles ran on 1 of 12 (its box step 65 -> 352 ms CPU, 4 tiles; +26 ms mean).
SMALL_PERSON = 0.2
# A tile's person whose box comes this close (share of the tile's longer side) to an edge the tile shares
# with the image's inside is cut by it: the tile that holds the person whole (or the whole image) finds them.
TILE_EDGE_MARGIN = 0.01


def _joined(sets: list[PoseSet]) -> PoseSet:
    """The persons of several runs in one PoseSet (same pixels)."""
    return PoseSet(
        np.concatenate([p.boxes for p in sets]),
        np.concatenate([p.scores for p in sets]),
        np.concatenate([p.keypoints for p in sets]),
    )


def crowd_tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The crowd tiles of a ``width`` x ``height`` image: (x0, y0, x1, y1), pixel edges, row by row."""
    side = round(TILE_FRACTION * max(width, height))

    def starts(length: int) -> tuple[list[int], int]:
        return ([0, length - side], side) if length > side else ([0], length)

    xs, tw = starts(width)
    ys, th = starts(height)
    return [(x, y, x + tw, y + th) for y in ys for x in xs]


def cut_by_tile_edge(
    boxes: np.ndarray, tile: tuple[int, int, int, int], width: int, height: int
) -> np.ndarray:
    """(N,) bool: which ``boxes`` (tile pixels, x1 y1 x2 y2) reach an edge of ``tile`` inside the image."""
    x0, y0, x1, y1 = tile
    m = TILE_EDGE_MARGIN * max(x1 - x0, y1 - y0)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (
        ((b[:, 0] <= m) & (x0 > 0))
        | ((b[:, 1] <= m) & (y0 > 0))
        | ((b[:, 2] >= x1 - x0 - 1 - m) & (x1 < width))
        | ((b[:, 3] >= y1 - y0 - 1 - m) & (y1 < height))
    )


# COCO's per-keypoint falloffs of its object keypoint similarity (OKS; cocoeval's sigmas, nose .. ankles).
OKS_SIGMAS = 0.01 * np.array(
    [2.6, 2.5, 2.5, 3.5, 3.5, 7.9, 7.9, 7.2, 7.2, 6.2, 6.2, 10.7, 10.7, 8.7, 8.7, 8.9, 8.9]
)
# Two persons whose keypoints agree this well are one person found twice (a part of them at a tile's scale):
# measured on crowd mosaics, such repeats score 0.34-0.56 against the whole person, neighbours <= 0.13.
DUPLICATE_OKS = 0.3
MIN_COMMON_KEYPOINTS = 3  # fewer keypoints seen in both say nothing about being the same person


def keypoint_similarity(kp: np.ndarray, other: np.ndarray, box: np.ndarray) -> float:
    """COCO's OKS of keypoints ``other`` against ``kp`` (both (17, 3) x, y, score) over the keypoints seen in
    both, ``box`` (``kp``'s person box) giving the scale; 0 when fewer than ``MIN_COMMON_KEYPOINTS``."""
    common = (kp[:, 2] >= KEYPOINT_SCORE) & (other[:, 2] >= KEYPOINT_SCORE)
    if common.sum() < MIN_COMMON_KEYPOINTS:
        return 0.0
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1.0)
    d2 = ((kp[common, :2] - other[common, :2]) ** 2).sum(1)
    return float(np.mean(np.exp(-d2 / (2 * area * (2 * OKS_SIGMAS[common]) ** 2))))


DARK = 100  # an image whose bright end (``bright_end``) is below this is brightened for the pose models
BRIGHT_TARGET = 230
SATURATED = 250  # values at or above this (a light's clipped core) do not count in the bright end


def bright_end(image: np.ndarray) -> float:
    """The 99.5th percentile (numpy's, linear between order statistics) of a uint8 image's values below
    ``SATURATED``, every 4th pixel each way; 255 when nothing is below. A lamp's clipped core in a night frame
    does not make the frame bright. From the values' histogram (faster than a percentile of all values)."""
    counts = np.bincount(image[::4, ::4].ravel(), minlength=256)[:SATURATED]
    n = int(counts.sum())
    if not n:
        return 255.0
    rank = 0.995 * (n - 1)
    k = np.floor(rank)
    # The order statistic k (from 0) is the smallest value whose cumulative count exceeds k.
    lo, hi = np.searchsorted(np.cumsum(counts), [k + 1, np.ceil(rank) + 1])
    return float(lo + (hi - lo) * (rank - k))


def exposure_gain(bright: float) -> float | None:
    """The gain for an image whose bright end is ``bright``: the one that puts it at ``BRIGHT_TARGET``, or
    None (no gain) from ``DARK`` up."""
    return None if bright >= DARK else BRIGHT_TARGET / max(bright, 1.0)


def exposure_normalised(image: np.ndarray) -> np.ndarray:
    """The image, brightened when it is dark (a gain that puts its ``bright_end`` at ``BRIGHT_TARGET``).

    MoveNet was trained on well-exposed photos and finds nobody in a dark frame (a low-light data set's
    frame with values 0-4 of 255) that it finds after this gain. Bright images are returned as they are.
    Saturated values are left out of the bright end (scripts/bench_dark_frames.py, tune photos darkened to
    1-2 grey levels with a lamp over 1 % of the frame: 3-5 -> 6-34 of 42 people found; the same people as
    with all values counted without a lamp, and where lit people stand in a dark scene)."""
    gain = exposure_gain(bright_end(image))
    return image if gain is None else cv2.convertScaleAbs(image, alpha=gain)


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
        tile_crowds: bool = True,
        tile_depth: int = TILE_DEPTH,
        small_person: float = SMALL_PERSON,
        crowd_boxes: bool = False,
    ) -> None:
        if not sides or any(s < 32 or s % 32 for s in sides):
            raise ValueError(f"MultiPose input sides must be multiples of 32 (>= 32), got {sides}")
        self.session = load_pose_session("movenet-multipose", threads)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.sides = tuple(sides)
        self.max_persons = max_persons
        self.merge_iou = merge_iou
        self.tile_crowds = tile_crowds
        self.tile_depth = tile_depth
        self.small_person = small_person
        # Crowd boxes (``crowd_boxes``): where the crowd tiles run, NanoDet runs on them too, and its people
        # that no MultiPose person covers are added with Thunder's keypoints (``nanodet.add_uncovered``): a
        # tile's MultiPose run returns 6 people at most, NanoDet has no such cap.
        self.second_boxes = self.second_keypoints = None
        if crowd_boxes:
            from whmr_core.runtime.nanodet import NanoDetPersons  # lazy: nanodet imports movenet

            self.second_boxes = NanoDetPersons(threads=threads)
            self.second_keypoints = ThunderKeypoints(threads)

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

    def _tiled(self, image: np.ndarray, side: int, depth: int) -> list[PoseSet]:
        """The persons of each crowd tile in image pixels, without those cut by the tile's inner edges; a
        tile whose run returns MultiPose's most is tiled again, ``depth`` levels in all."""
        h, w = image.shape[:2]
        sets = []
        for tile in crowd_tiles(w, h):
            x0, y0, x1, y1 = tile
            crop = np.ascontiguousarray(image[y0:y1, x0:x1])
            p = self._run(crop, side)
            if depth > 1 and len(p.scores) >= MULTIPOSE_MAX_PERSONS:
                p = _joined([p, *self._tiled(crop, side, depth - 1)])
            whole = ~cut_by_tile_edge(p.boxes, tile, w, h)
            keypoints = p.keypoints[whole] + np.array([x0, y0, 0.0])
            sets.append(PoseSet(p.boxes[whole] + np.array([x0, y0, x0, y0]), p.scores[whole], keypoints))
        return sets

    def _wants_tiles(self, sets: list[PoseSet], width: int, height: int) -> bool:
        """Whether the whole-image runs ``sets`` call for the crowd tiles: one returned MultiPose's most, or
        (``small_person``) one returned a small person and the tiles see the image in more detail."""
        if max(len(p.scores) for p in sets) >= MULTIPOSE_MAX_PERSONS:
            return True
        longer = max(width, height)
        if not self.small_person or TILE_FRACTION * longer <= max(self.sides):
            return False
        heights = np.concatenate([p.boxes[:, 3] - p.boxes[:, 1] for p in sets])
        return bool((heights < self.small_person * longer).any())

    def detect(self, image: np.ndarray) -> PoseSet:
        original, image = image, exposure_normalised(image)
        sets = [self._run(image, side) for side in self.sides]
        tiled = self.tile_crowds and self._wants_tiles(sets, image.shape[1], image.shape[0])
        if tiled:
            sets += self._tiled(image, max(self.sides), self.tile_depth)
        every = _joined(sets)
        boxes, scores, keypoints = every.boxes, every.scores, every.keypoints
        # Persons found at several scales: the best-scoring one of each overlapping group is kept, and a
        # person whose keypoints repeat a better one's (a part of them seen again) is dropped.
        keep: list[int] = []
        for i in nms(boxes, scores, self.merge_iou):
            if all(keypoint_similarity(keypoints[j], keypoints[i], boxes[j]) <= DUPLICATE_OKS for j in keep):
                keep.append(i)
        keep = keep[: self.max_persons]
        found = PoseSet(boxes[keep], scores[keep], keypoints[keep]) if keep else PoseSet.empty()
        if tiled and self.second_boxes is not None:
            found = self._with_crowd_boxes(original, image, found)
        return found

    def _with_crowd_boxes(self, original: np.ndarray, image: np.ndarray, found: PoseSet) -> PoseSet:
        """``found`` and the second box source's people on the crowd tiles of ``image`` (``original``
        exposure-normalised) that none of them covers, with Thunder's keypoints (run on ``original``)."""
        from whmr_core.runtime.nanodet import NMS_IOU, add_uncovered  # lazy: nanodet imports movenet

        h, w = image.shape[:2]
        boxes, scores = [np.zeros((0, 4))], [np.zeros(0)]
        for tile in crowd_tiles(w, h):
            x0, y0, x1, y1 = tile
            b, s = self.second_boxes(np.ascontiguousarray(image[y0:y1, x0:x1]))
            whole = ~cut_by_tile_edge(b, tile, w, h)
            boxes.append(b[whole] + np.array([x0, y0, x0, y0]))
            scores.append(s[whole])
        b, s = np.concatenate(boxes), np.concatenate(scores)
        k = nms(b, s, NMS_IOU) if len(s) else np.zeros(0, int)
        return add_uncovered(original, found, b[k], s[k], self.second_keypoints, self.max_persons)

    def __call__(self, image: np.ndarray):
        p = self.detect(image)
        return p.boxes, p.scores, p.keypoints


def _square_crop(
    image: np.ndarray, box: np.ndarray, size: int, average: bool = False
) -> tuple[np.ndarray, np.ndarray, float]:
    """A ``size`` x ``size`` crop of side ``CROP_SCALE`` x the box's longer side around its centre (black
    outside the image), its top-left edge in image pixels and its side in image pixels.

    Bilinear: each crop pixel samples the 2 x 2 image pixels nearest to it. ``average`` (a brightened dark
    frame): where the crop shrinks the image, each crop pixel averages the image pixels it covers (the region
    is area-resized first), so the frame's sensor noise, multiplied by the gain, averages out."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = CROP_SCALE * max(box[2] - box[0], box[3] - box[1], 1.0)
    a = size / side  # crop pixels per image pixel
    corner = np.array([cx - side / 2, cy - side / 2])
    # Pixel centres at integers: the image point ``corner`` is the crop's edge, -0.5.
    M = np.array([[a, 0, -a * corner[0] - 0.5], [0, a, -a * corner[1] - 0.5]])
    if average and a < 1:
        image, to_region = shrunk_window(image, corner[0], corner[1], corner[0] + side, corner[1] + side, a)
        M = compose_affine(M, cv2.invertAffineTransform(to_region))  # region -> image -> crop
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
        lit = exposure_normalised(image) if len(boxes) else image
        for i, b in enumerate(boxes):
            # A brightened dark frame's crop averages its pixels (bench_dark_frames: PCK up on dark frames;
            # BlazePose's crops stay bilinear: no gain measured there).
            crop, corner, side = _square_crop(lit, b, THUNDER_SIZE, average=lit is not image)
            kp = self.session.run(None, {self.input_name: crop[None].astype(np.int32)})[0].reshape(17, 3)
            # Normalised crop (y, x): 0 and 1 are the crop's edges.
            out[i, :, 0] = corner[0] + kp[:, 1] * side
            out[i, :, 1] = corner[1] + kp[:, 0] * side
            out[i, :, 2] = kp[:, 2]
        return out


# BlazePose's 33 landmarks at the COCO-17 points (nose, eyes, ears, shoulders ... ankles).
BLAZEPOSE_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
BLAZEPOSE_SIZE = 256


def crop_to_camera(points: np.ndarray, boxes: np.ndarray, K: np.ndarray) -> np.ndarray:
    """3D points in the axes of each person's crop (N, P, 3), as BlazePose's world landmarks are, turned
    into the camera's axes.

    A crop network sees the person as a camera looking straight at them would: along the ray through the
    crop's centre, not along the optical axis. Its axes are the camera's turned by the smallest rotation
    that takes the optical axis (0, 0, 1) to that ray, ``K^-1 (u, v, 1)`` of the box centre (u, v); a person
    at the image centre keeps the camera's axes, one 25 degrees off it is turned by 25 degrees (a 3D
    model's body there would otherwise lean against its own 2D keypoints). ``K``: (3, 3) or (N, 3, 3)."""
    from scipy.spatial.transform import Rotation

    points = np.asarray(points, np.float64)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    K = np.broadcast_to(np.asarray(K, np.float64), (len(boxes), 3, 3))
    centres = np.stack(
        [(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, np.ones(len(boxes))], 1
    )
    rays = np.linalg.solve(K, centres[..., None])[..., 0]
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    axes = np.cross([0.0, 0.0, 1.0], rays)  # |axis| = sin(angle), rays[:, 2] = cos(angle)
    sin = np.linalg.norm(axes, axis=1, keepdims=True)
    rotvec = axes / np.maximum(sin, 1e-12) * np.arctan2(sin, rays[:, 2:3])
    return np.einsum("npj,nij->npi", points, Rotation.from_rotvec(rotvec).as_matrix())


class BlazePoseWorld:
    """``__call__(image, boxes (N, 4)) -> (points (N, 17, 3), scores (N, 17))``: BlazePose full's 3D world
    landmarks at the COCO-17 points, metres, hip-centred, in the axes of each person's upright crop (x
    right, y down, z along the ray through the crop; ``crop_to_camera`` turns them into the camera's axes),
    with their visibility in [0, 1]; one run per person on a square crop (as Thunder's). The fit uses them
    against depth ambiguity and mirroring."""

    def __init__(self, threads: int | None = None) -> None:
        self.session = load_pose_session("blazepose-full", threads)
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        self.outputs = [names[2], names[3], names[4]]  # landmarks (39 x 5), pose flag, world (39 x 3)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points, scores, _ = self.landmarks(image, boxes)
        return points, scores

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``__call__``, and BlazePose's 2D landmarks at the COCO-17 points: (N, 17, 3) x, y in image
        pixels, and the same score."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        points, scores = np.zeros((len(boxes), 17, 3)), np.zeros((len(boxes), 17))
        image_points = np.zeros((len(boxes), 17, 3))
        if len(boxes):
            image = exposure_normalised(image)
        for i, b in enumerate(boxes):
            crop, corner, side = _square_crop(image, b, BLAZEPOSE_SIZE)
            x = (crop.astype(np.float32) / 255.0)[None]
            landmarks, flag, world = self.session.run(self.outputs, {self.input_name: x})
            lm = landmarks.reshape(39, 5)[list(BLAZEPOSE_COCO17)]
            visibility = 1.0 / (1.0 + np.exp(-lm[:, 3]))
            points[i] = world.reshape(39, 3)[list(BLAZEPOSE_COCO17)]
            scores[i] = visibility * float(np.clip(flag.reshape(-1)[0], 0.0, 1.0))
            # Landmarks x, y in crop pixels, pixel centres at integers (as _square_crop's warp).
            image_points[i, :, :2] = corner + (lm[:, :2] + 0.5) * side / BLAZEPOSE_SIZE
            image_points[i, :, 2] = scores[i]
        return points, scores, image_points

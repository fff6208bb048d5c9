"""The ROS-free inference pipeline: one image (+ K, gravity, person boxes) -> world-frame body meshes.

Hosts: the rclpy node, the bag runner and scripts (DESIGN.md section 1). Steps per frame:
  1. person boxes: the given detections, else the previous frame's tracked boxes (each body's projected
     mesh), else the whole image (one person);
  2. square crops (``whmr_core.crops``) and the 5-D global info (eq. 7);
  3. the engine (any ``Engine``) with the camera rotation R_c from gravity;
  4. focal length and translation: metric from K when given (eq. 3 solved for t_z, eq. 4 with K's principal
     point), else the network's (relative scale);
  5. meshes in the camera optical frame and in the gravity frame ``<camera>_gravity`` (ROS axes: x forward,
     y left, z up; DESIGN.md section 4), with the world root orientation from OrientCorrect;
  6. track ids (IoU + Hungarian) and optional One Euro smoothing per track.

A person whose outputs are not finite or not physical (depth <= 0) is dropped with a reason: nothing
non-finite ever leaves the pipeline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core import geometry
from whmr_core.crops import extract_crops, square_boxes
from whmr_core.data.poses import JOINT_NAMES as SMPL_JOINT_NAMES  # re-exported
from whmr_core.geometry import GRAVITY_FROM_G  # G -> ROS gravity axes (section 4), re-exported
from whmr_core.gravity import GravityEstimate, as_rotation_matrix
from whmr_core.rotations import matrix_to_quaternion
from whmr_core.runtime.engines import Engine
from whmr_core.tracking import OneEuroFilter, RotationOneEuroFilter, Track, Tracker

__all__ = [
    "GRAVITY_FROM_G",
    "SMPL_JOINT_NAMES",
    "BodyTopology",
    "Detections",
    "DroppedPerson",
    "Frame",
    "FrameResult",
    "InputError",
    "PersonResult",
    "Pipeline",
    "PipelineConfig",
]


class InputError(ValueError):
    """An unusable frame (bad image, K, rotation or boxes); the host drops it with this reason."""


@dataclass(frozen=True)
class BodyTopology:
    """The constant part of the body model: faces, joint names and kinematic tree."""

    faces: np.ndarray  # (F, 3) vertex indices
    parents: np.ndarray  # (J,) parent joint index, -1 for the root
    num_vertices: int
    joint_names: tuple[str, ...] = SMPL_JOINT_NAMES
    model_name: str = "unknown"

    def __post_init__(self) -> None:
        faces = np.asarray(self.faces, dtype=np.int64)
        parents = np.asarray(self.parents, dtype=np.int64).reshape(-1)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces: expected (F, 3), got {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= self.num_vertices):
            raise ValueError(f"faces: indices must lie in [0, {self.num_vertices})")
        if len(parents) != len(self.joint_names):
            raise ValueError(f"parents: {len(parents)} joints but {len(self.joint_names)} joint names")
        if len(parents) and (parents[0] != -1 or (parents[1:] < 0).any() or (parents >= len(parents)).any()):
            raise ValueError("parents: expected -1 for the root (joint 0) and valid indices for the others")
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @classmethod
    def from_body_model(cls, model: Any, model_name: str) -> BodyTopology:
        """From a loaded body model (``whmr_core.body.load_body_model``) via ``body_assets``."""
        from whmr_core.body import body_assets  # the body-model module; imported only when used

        assets = body_assets(model)
        faces = np.asarray(assets.faces)
        parents = np.asarray(assets.parents)
        names = tuple(getattr(assets, "joint_names", SMPL_JOINT_NAMES[: len(parents)]))
        num_vertices = int(getattr(assets, "num_vertices", faces.max() + 1))
        return cls(faces, parents, num_vertices, names, model_name)


@dataclass(frozen=True)
class Detections:
    """Person boxes (N, 4) as (x1, y1, x2, y2) image pixels, with scores (N,) in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(cls, boxes: Any, scores: Any | None = None) -> Detections:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.ones(len(b)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise InputError(f"detections: {len(b)} boxes but {len(s)} scores")
        return cls(b, s)


@dataclass
class Frame:
    """One camera image and what is known about it.

    ``image``: (H, W, 3) RGB uint8 (or (H, W) mono). ``K``: 3x3 camera matrix of this image, or None.
    Gravity: ``camera_rotation`` R_c (3x3, X_C = R_c X_G) if given, else ``gravity`` (a GravityEstimate
    or a gravity vector in the camera frame), else a level camera is assumed (and said so).
    ``detections``: person boxes for this image, or None when no detector ran on it.
    """

    image: np.ndarray
    stamp_ns: int
    K: np.ndarray | None = None
    gravity: GravityEstimate | np.ndarray | Sequence[float] | None = None
    camera_rotation: np.ndarray | None = None
    detections: Detections | None = None


@dataclass(frozen=True)
class PersonResult:
    """One body. ``*_camera``: camera optical frame; ``*_gravity``: ``<camera>_gravity`` (ROS axes, z up)."""

    track_id: int
    score: float
    box_source: str  # "detection", "detector", "tracked" or "whole_image"
    box_xyxy: np.ndarray  # the person box the crop came from, pixels
    bbox_center: np.ndarray  # (2,) square crop box
    bbox_size: float
    vertices_camera: np.ndarray  # (V, 3) metres (relative scale unless translation_is_metric)
    joints_camera: np.ndarray  # (J, 3)
    vertices_gravity: np.ndarray  # (V, 3)
    joints_gravity: np.ndarray  # (J, 3)
    root_orientation_camera: np.ndarray  # (3, 3) R_b^c
    root_orientation_gravity: np.ndarray  # (3, 3) world root R_b (OrientCorrect), in ROS gravity axes
    translation_camera: np.ndarray  # (3,) t_b, eq. 4
    translation_is_metric: bool
    focal_xy: np.ndarray  # (2,) the focal lengths (f_x, f_y) used for the projection, pixels
    focal_from_camera_info: bool
    principal_point: np.ndarray  # (2,) pixels
    joints_2d: np.ndarray  # (J, 2) projected joints, pixels
    local_rotations: np.ndarray  # (J, 3, 3), root first
    betas: np.ndarray  # (B,)

    @property
    def focal_px(self) -> float:
        """One focal length (the mean of f_x, f_y: the crop box is square), as eq. 3 uses it."""
        return float(np.mean(self.focal_xy))

    @property
    def root_position_gravity(self) -> np.ndarray:
        return self.joints_gravity[0]

    def local_quaternions_xyzw(self) -> np.ndarray:
        """(J, 4) local joint rotations as ROS (x, y, z, w) quaternions."""
        wxyz = matrix_to_quaternion(torch.as_tensor(self.local_rotations, dtype=torch.float64)).numpy()
        return np.roll(wxyz, -1, axis=-1)


@dataclass(frozen=True)
class DroppedPerson:
    reason: str
    box_xyxy: np.ndarray | None = None
    track_id: int | None = None


@dataclass(frozen=True)
class FrameResult:
    stamp_ns: int
    image_wh: tuple[int, int]
    persons: tuple[PersonResult, ...]
    dropped: tuple[DroppedPerson, ...]
    camera_rotation: np.ndarray  # R_c: X_C = R_c X_G
    gravity_source: str
    gravity_reason: str  # why preferred gravity sources were skipped ("" when none were)
    box_source: str  # where this frame's boxes came from: detection, detector, tracked, whole_image, none
    K: np.ndarray | None
    inference_s: float  # wall time of the engine call

    @property
    def camera_from_gravity(self) -> np.ndarray:
        """Rotation of ``<camera>_gravity`` in the camera optical frame (X_C = R X_gravity), for TF."""
        return self.camera_rotation @ GRAVITY_FROM_G.T


@dataclass
class PipelineConfig:
    """Pipeline settings; ``from_mapping`` rejects unknown keys (a typo is an error, not a default)."""

    box_scale: float = 1.2  # context around the person box (SPIN/PyMAF)
    min_detection_score: float = 0.3  # detections below this score are ignored
    min_box_px: float = 16.0  # boxes smaller than this after clipping to the image are dropped
    max_persons: int = 8  # persons per image (highest scores kept)
    detector_model: str = ""  # YOLO-family ONNX file for the built-in person detector ("" = none)
    detector_score: float = 0.35  # its person-score threshold
    use_tracked_boxes: bool = True  # no detections for a frame: re-use the bodies' projected boxes
    whole_image_fallback: bool = True  # no boxes at all: one person in the whole image
    track_min_iou: float = 0.2  # IoU gate of the tracker
    track_min_hits: int = 1  # matches before a track is published
    track_max_age: int = 10  # images a lost track survives
    smoothing: bool = False  # One Euro smoothing per track (meshes, rotations, translation)
    smoothing_min_cutoff: float = 1.0  # One Euro cut-off at rest, Hz (lower: smoother)
    smoothing_beta: float = 0.5  # One Euro speed coefficient (higher: less lag)
    max_depth_m: float = 100.0  # translations beyond this are not physical

    def __post_init__(self) -> None:
        if self.box_scale <= 0 or self.min_box_px < 0 or self.max_persons < 1 or self.max_depth_m <= 0:
            raise ValueError("box_scale, max_depth_m: must be > 0; min_box_px >= 0; max_persons >= 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PipelineConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"pipeline config: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of pipeline settings")
        return cls.from_mapping(data)


def _orthonormal(r: np.ndarray) -> np.ndarray:
    """Nearest rotation (SVD projection): network rotations are only approximately orthonormal."""
    u, _, vt = np.linalg.svd(r)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2 and img.dtype == np.uint8:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or 0 in img.shape:
        raise InputError(f"image: expected (H, W, 3) RGB uint8, got shape {img.shape} dtype {img.dtype}")
    return img


def _check_K(K: Any) -> np.ndarray:
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        raise InputError(f"K: expected a finite 3x3 matrix, got shape {k.shape}")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError(f"K: focal lengths must be > 0, got fx={k[0, 0]:g}, fy={k[1, 1]:g}")
    return k


@dataclass
class _Boxes:
    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    source: str
    dropped: list[DroppedPerson] = field(default_factory=list)


class Pipeline:
    """``process(Frame) -> FrameResult``; keeps tracks and the previous frame's boxes between calls."""

    def __init__(self, engine: Engine, topology: BodyTopology, config: PipelineConfig | None = None) -> None:
        self.engine = engine
        self.topology = topology
        self.config = config or PipelineConfig()
        c = self.config
        self.tracker = Tracker(min_iou=c.track_min_iou, min_hits=c.track_min_hits, max_age=c.track_max_age)
        self._tracked: Detections | None = None  # boxes of the last frame's bodies, for the next frame
        self._last_stamp: int | None = None
        self.detector = None
        if c.detector_model:
            from whmr_core.runtime.detector import YoloPersonDetector

            self.detector = YoloPersonDetector(c.detector_model, score_threshold=c.detector_score)

    def reset(self) -> None:
        """Forget tracks (e.g. after time jumped back when a bag loops)."""
        self.tracker.reset()
        self._tracked = None
        self._last_stamp = None

    # --- step 1: person boxes ---------------------------------------------------------------------

    def _boxes(self, frame: Frame, image: np.ndarray, w: int, h: int) -> _Boxes:
        c = self.config
        if frame.detections is not None:
            det, source = frame.detections, "detection"
        elif self.detector is not None:
            det, source = Detections.of(*self.detector(image)), "detector"
        elif c.use_tracked_boxes and self._tracked is not None and len(self._tracked.boxes):
            det, source = self._tracked, "tracked"
        elif c.whole_image_fallback:
            # Pixel centres are integers, so the image spans [-0.5, W - 0.5].
            det, source = Detections.of([[-0.5, -0.5, w - 0.5, h - 0.5]]), "whole_image"
        else:
            return _Boxes(np.zeros((0, 4)), np.zeros(0), "none")
        keep_b, keep_s, dropped = [], [], []
        for box, score in zip(det.boxes, det.scores, strict=True):
            if not (np.isfinite(box).all() and np.isfinite(score)):
                dropped.append(DroppedPerson("box or score not finite", None))
                continue
            if source == "detection" and score < c.min_detection_score:
                continue  # below threshold: not a person, not worth a reason
            clipped = np.array(
                [max(box[0], -0.5), max(box[1], -0.5), min(box[2], w - 0.5), min(box[3], h - 0.5)]
            )
            if min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < max(c.min_box_px, 1e-6):
                why = "box outside the image" if (clipped[2:] <= clipped[:2]).any() else "box too small"
                dropped.append(DroppedPerson(f"{why}: {np.round(box, 1).tolist()} in {w}x{h}", box.copy()))
                continue
            keep_b.append(clipped)
            keep_s.append(float(np.clip(score, 0.0, 1.0)))
        order = np.argsort(-np.asarray(keep_s), kind="stable")
        for i in order[c.max_persons :]:
            dropped.append(DroppedPerson(f"more than max_persons={c.max_persons}", keep_b[i]))
        order = order[: c.max_persons]
        boxes = np.array([keep_b[i] for i in order]).reshape(-1, 4)
        return _Boxes(boxes, np.array([keep_s[i] for i in order]), source, dropped)

    # --- gravity ----------------------------------------------------------------------------------

    @staticmethod
    def _camera_rotation(frame: Frame) -> tuple[np.ndarray, str, str]:
        try:
            if frame.camera_rotation is not None:
                return as_rotation_matrix(frame.camera_rotation, "camera_rotation"), "given", ""
            g = frame.gravity
            if isinstance(g, GravityEstimate):
                return g.camera_rotation(), g.source, g.reason
            if g is not None:
                est = GravityEstimate(np.asarray(g, dtype=np.float64), "given")
                return est.camera_rotation(), "given", ""
        except ValueError as e:
            raise InputError(f"gravity: {e}") from e
        return np.eye(3), "parameter", "no gravity given: level camera assumed"

    # --- the frame --------------------------------------------------------------------------------

    def process(self, frame: Frame) -> FrameResult:
        """Run one frame. Raises ``InputError`` for an unusable frame; per-person problems drop the person."""
        image = _check_image(frame.image)
        h, w = image.shape[:2]
        K = None if frame.K is None else _check_K(frame.K)
        R_c, g_source, g_reason = self._camera_rotation(frame)
        stamp = int(frame.stamp_ns)
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise InputError(
                f"stamp {stamp} is before the previous frame's {self._last_stamp} (call reset())"
            )
        self._last_stamp = stamp

        boxes = self._boxes(frame, image, w, h)
        dropped = list(boxes.dropped)
        tracks = self.tracker.update(boxes.boxes, stamp, boxes.scores)
        persons: list[PersonResult] = []
        inference_s = 0.0
        if len(boxes.boxes):
            centres, sides = square_boxes(boxes.boxes, self.engine.crop_hw, self.config.box_scale)
            crops = extract_crops(image, centres, sides, self.engine.crop_hw)
            n = len(centres)
            image_wh = torch.tensor([[w, h]], dtype=torch.float64).expand(n, 2)
            info = geometry.glob_info(torch.as_tensor(centres), torch.as_tensor(sides), image_wh)
            t0 = time.perf_counter()
            out = self._infer(crops, info.numpy().astype(np.float32), np.repeat(R_c[None], n, 0))
            inference_s = time.perf_counter() - t0
            for i in range(n):
                person, why = self._person(
                    out, i, boxes, tracks[i], centres[i], sides[i], (w, h), K, R_c, stamp
                )
                if person is None:
                    dropped.append(DroppedPerson(why, boxes.boxes[i], tracks[i].track_id))
                elif tracks[i].confirmed:
                    persons.append(person)
        self._tracked = self._next_boxes(persons)
        if boxes.source == "whole_image" and self._tracked is not None:
            # The whole image is no box to track by: re-box the track on its body, so that the next
            # frame's projected box matches it and the person keeps the id.
            by_id = {t.track_id: t for t in tracks}
            for p, box in zip(persons, self._tracked.boxes, strict=True):
                by_id[p.track_id].box = box.copy()
        return FrameResult(
            stamp,
            (w, h),
            tuple(persons),
            tuple(dropped),
            R_c,
            g_source,
            g_reason,
            boxes.source,
            K,
            inference_s,
        )

    def _infer(self, crops: np.ndarray, info: np.ndarray, rot: np.ndarray) -> dict[str, np.ndarray]:
        """The engine on all persons, in chunks of its maximum batch (a TensorRT profile's limit)."""
        step = self.engine.max_batch or len(crops)
        parts = [self.engine.infer(crops[i : i + step], info[i : i + step], rot[i : i + step])
                 for i in range(0, len(crops), step)]  # fmt: skip
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _person(
        self,
        out: Mapping[str, np.ndarray],
        i: int,
        boxes: _Boxes,
        track: Track,
        centre: np.ndarray,
        side: float,
        image_wh: tuple[int, int],
        K: np.ndarray | None,
        R_c: np.ndarray,
        stamp: int,
    ) -> tuple[PersonResult | None, str]:
        topo = self.topology
        want = {
            "vertices": (topo.num_vertices, 3),
            "joints": (topo.num_joints, 3),
            "world_vertices": (topo.num_vertices, 3),
            "world_joints": (topo.num_joints, 3),
            "rotmats": (topo.num_joints, 3, 3),
            "cam_crop": (3,),
            "cam_root": (3, 3),
            "world_root": (3, 3),
            "translation": (3,),
        }
        o: dict[str, np.ndarray] = {}
        for name in (*want, "tz", "focal", "betas"):
            if name not in out:
                return None, f"engine output {name!r} missing"
            a = np.asarray(out[name][i], dtype=np.float64)
            if name in want and a.shape != want[name]:
                return (
                    None,
                    f"engine output {name}: shape {a.shape}, expected {want[name]} (body model mismatch?)",
                )
            if not np.isfinite(a).all():
                return None, f"engine output {name}: non-finite values"
            o[name] = a
        s = float(o["cam_crop"][0])
        if abs(s) < 1e-9:
            return None, "weak-perspective scale s is zero"
        w, h = image_wh
        diag = math.hypot(w, h)
        if K is not None:
            # Metric: eq. 3 solved for depth with the calibrated focal length, eq. 4 with K's principal point.
            f_xy = torch.tensor([[K[0, 0], K[1, 1]]], dtype=torch.float64)
            pp = np.array([K[0, 2], K[1, 2]])
            s_t = torch.tensor([s], dtype=torch.float64)
            b_t = torch.tensor([side], dtype=torch.float64)
            tz = geometry.depth_from_focal(s_t, b_t, f_xy)
            t_b = geometry.full_image_translation(
                torch.as_tensor(o["cam_crop"][None]),
                torch.as_tensor(centre[None]),
                b_t,
                torch.tensor([[w, h]], dtype=torch.float64),
                tz,
                principal_point=torch.as_tensor(pp[None]),
            )[0].numpy()
            focal, fxy = float(f_xy.mean()), np.array([K[0, 0], K[1, 1]])
        else:
            # The network's focal is in units of the image diagonal (it sees glob_info / diagonal).
            t_b, focal = o["translation"], float(o["focal"]) * diag
            fxy, pp = np.array([focal, focal]), np.array([w / 2, h / 2])
        if not (np.isfinite(t_b).all() and 0 < t_b[2] <= self.config.max_depth_m and focal > 0):
            return None, f"not physical: depth {t_b[2]:.3g} m, focal {focal:.3g} px"

        if self.config.smoothing:
            o, t_b = self._smooth(track, o, t_b, stamp)
        cam_root = _orthonormal(o["cam_root"])
        world_root = _orthonormal(o["world_root"])
        verts_c = o["vertices"] + t_b
        joints_c = o["joints"] + t_b
        # Gravity frame: OrientCorrect's world-oriented body (pelvis-centred in G), placed at the pelvis's
        # position seen from the camera (R_c^T maps C to G), then G -> ROS axes.
        pelvis_g = R_c.T @ joints_c[0]
        verts_g = (o["world_vertices"] - o["world_joints"][0] + pelvis_g) @ GRAVITY_FROM_G.T
        joints_g = (o["world_joints"] - o["world_joints"][0] + pelvis_g) @ GRAVITY_FROM_G.T
        if (joints_c[:, 2] <= 1e-6).any():
            return None, "a joint lies behind the camera"
        joints_2d = fxy * joints_c[:, :2] / joints_c[:, 2:3] + pp
        person = PersonResult(
            track_id=track.track_id,
            score=float(boxes.scores[i]),
            box_source=boxes.source,
            box_xyxy=boxes.boxes[i].copy(),
            bbox_center=np.asarray(centre, dtype=np.float64),
            bbox_size=float(side),
            vertices_camera=verts_c,
            joints_camera=joints_c,
            vertices_gravity=verts_g,
            joints_gravity=joints_g,
            root_orientation_camera=cam_root,
            root_orientation_gravity=GRAVITY_FROM_G @ world_root,
            translation_camera=np.asarray(t_b, dtype=np.float64),
            translation_is_metric=K is not None,
            focal_xy=np.asarray(fxy, dtype=np.float64),
            focal_from_camera_info=K is not None,
            principal_point=pp,
            joints_2d=joints_2d,
            local_rotations=np.stack([_orthonormal(r) for r in o["rotmats"]]),
            betas=o["betas"].reshape(-1),
        )
        bad = [
            f.name
            for f in fields(person)
            if isinstance(v := getattr(person, f.name), np.ndarray) and not np.isfinite(v).all()
        ]
        if bad:
            return None, f"non-finite result in {', '.join(bad)}"
        return person, ""

    def _smooth(
        self, track: Track, o: dict[str, np.ndarray], t_b: np.ndarray, stamp: int
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One Euro per track on the body (pelvis-centred), its rotations and its translation."""
        c = self.config

        def run(name: str, value: np.ndarray, rotation: bool = False) -> np.ndarray:
            f = track.smoothers.get(name)
            if f is None:
                cls = RotationOneEuroFilter if rotation else OneEuroFilter
                f = track.smoothers[name] = cls(c.smoothing_min_cutoff, c.smoothing_beta)
            return f(value, stamp)  # type: ignore[operator]

        o = dict(o)
        for name in ("vertices", "joints", "world_vertices", "world_joints"):
            o[name] = run(name, o[name])
        for name in ("cam_root", "world_root", "rotmats"):
            o[name] = run(name, o[name], rotation=True)
        return o, run("translation", np.asarray(t_b))

    @staticmethod
    def _next_boxes(persons: Sequence[PersonResult]) -> Detections | None:
        """Each body's projected mesh as the next frame's box (a person kept in view keeps a box)."""
        boxes, scores = [], []
        for p in persons:
            v = p.vertices_camera[p.vertices_camera[:, 2] > 1e-3]
            if not len(v):
                v = p.joints_camera[:1]  # _person checked that the joints are in front of the camera
            uv = p.focal_xy * v[:, :2] / v[:, 2:3] + p.principal_point
            boxes.append([*uv.min(0), *uv.max(0)])
            scores.append(p.score)
        return Detections.of(boxes, scores) if boxes else None

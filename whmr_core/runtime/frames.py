"""What goes into the Pipeline (``Frame``, ``Detections``) and what comes out (``FrameResult`` with its
``PersonResult`` and ``DroppedPerson`` entries), and how a frame's gravity becomes the camera rotation.

Frames and names: docs/frames.md. ``*_camera``: the camera optical frame (x right, y down, z forward);
``*_gravity``: ``<camera>_gravity``, ROS axes (x forward, y left, z up) at the camera, level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whmr_core.geometry import GRAVITY_FROM_G, camera_matrix_problem
from whmr_core.gravity import GravityEstimate, as_rotation_matrix, unit_vector
from whmr_core.rotations import matrix_to_quaternion_xyzw

__all__ = [
    "Detections",
    "DroppedPerson",
    "Frame",
    "FrameResult",
    "InputError",
    "PersonResult",
    "camera_rotation_of",
    "check_K",
    "check_image",
]


class InputError(ValueError):
    """An unusable frame (bad image, K, rotation or boxes); the host drops it with this reason."""


@dataclass(frozen=True)
class Detections:
    """Person boxes (N, 4) as (x1, y1, x2, y2) image pixels, with scores (N,) in [0, 1], and the detector's
    COCO-17 keypoints (N, 17, 3) as (x, y, score) when it gives them."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None

    @classmethod
    def of(cls, boxes: Any, scores: Any | None = None, keypoints: Any | None = None) -> Detections:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.ones(len(b)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise InputError(f"detections: {len(b)} boxes but {len(s)} scores")
        k = None
        if keypoints is not None:
            k = np.asarray(keypoints, dtype=np.float64)
            if k.shape != (len(b), 17, 3):
                raise InputError(
                    f"detections: keypoints of shape {k.shape} for {len(b)} boxes (want N x 17 x 3)"
                )
        return cls(b, s, k)


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
    # True: CameraInfo K gave the focal length, so depth and translation are metric; False: the network's
    # focal (relative scale).
    translation_is_metric: bool
    focal_xy: np.ndarray  # (2,) the focal lengths (f_x, f_y) used for the projection, pixels
    principal_point: np.ndarray  # (2,) pixels
    joints_2d: np.ndarray  # (J, 2) projected joints, pixels
    local_rotations: np.ndarray  # (J, 3, 3), root first
    betas: np.ndarray  # (B,)
    # COCO-17 (x, y, score) image pixels from the keypoint model (None: none ran); the fit's targets.
    keypoints_2d: np.ndarray | None = None
    fit: str = "off"  # keypoint fit: "fitted", "fallback: <reason>" (the network's body) or "off"

    @property
    def focal_px(self) -> float:
        """One focal length (the mean of f_x, f_y: the crop box is square), as eq. 3 uses it."""
        return float(np.mean(self.focal_xy))

    def local_quaternions_xyzw(self) -> np.ndarray:
        """(J, 4) local joint rotations as ROS (x, y, z, w) quaternions."""
        return matrix_to_quaternion_xyzw(self.local_rotations)


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
    focal_px: float | None = None  # the frame's one focal length (K's or the fused one); None: per person
    # Wall time of each step, seconds: boxes (detector), keypoints, network (= inference_s), fit, decode.
    stage_s: dict[str, float] = field(default_factory=dict)

    @property
    def camera_from_gravity(self) -> np.ndarray:
        """Rotation of ``<camera>_gravity`` in the camera optical frame (X_C = R X_gravity), for TF."""
        return self.camera_rotation @ GRAVITY_FROM_G.T


def check_image(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 (a mono image is repeated to RGB); InputError otherwise."""
    img = np.asarray(image)
    if img.ndim == 2 and img.dtype == np.uint8:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or 0 in img.shape:
        raise InputError(f"image: expected (H, W, 3) RGB uint8, got shape {img.shape} dtype {img.dtype}")
    return img


def check_K(K: Any, image_wh: tuple[int, int] | None = None) -> np.ndarray:
    """A finite 3x3 K with positive focal lengths; with ``image_wh`` also one a camera can have for that
    image (principal point inside, a field of view of a lens: ``geometry.camera_matrix_problem``)."""
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        raise InputError(f"K: expected a finite 3x3 matrix, got shape {k.shape}")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError(f"K: focal lengths must be > 0, got fx={k[0, 0]:g}, fy={k[1, 1]:g}")
    problem = camera_matrix_problem(k, *image_wh) if image_wh is not None else ""
    if problem:
        raise InputError(f"K: {problem}")
    return k


def camera_rotation_of(frame: Frame) -> tuple[np.ndarray, str, str]:
    """The frame's camera rotation R_c, its source and why preferred sources were skipped."""
    try:
        if frame.camera_rotation is not None:
            return as_rotation_matrix(frame.camera_rotation, "camera_rotation"), "given", ""
        g = frame.gravity
        if isinstance(g, GravityEstimate):
            return g.camera_rotation(), g.source, g.reason
        if g is not None:
            est = GravityEstimate(unit_vector(g, "gravity"), "given")  # no overflow, no zero
            return est.camera_rotation(), "given", ""
    except ValueError as e:
        raise InputError(f"gravity: {e}") from e
    return np.eye(3), "parameter", "no gravity given: level camera assumed"

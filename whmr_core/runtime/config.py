"""``PipelineConfig``: the Pipeline's settings, each with its description and valid range beside it.

Built in code, from a YAML mapping (``from_mapping``, strict: unknown keys and wrong types are errors) or
from ROS parameters (``whmr_ros.params`` derives the parameter table from these fields' metadata); the
ranges are checked the same way in all three cases (``whmr_core.config_io.check_settings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from whmr_core.config_io import ConfigError, check_settings, dataclass_from_dict, setting

__all__ = ["DETECTOR_KINDS", "KEYPOINT_SOURCES", "PipelineConfig"]

DETECTOR_KINDS = ("auto", "movenet", "blazepose", "yolo", "none")
KEYPOINT_SOURCES = ("auto", "thunder", "detector", "none")


@dataclass
class PipelineConfig:
    """Boxes, tracking, smoothing and plausibility limits of the Pipeline (ROS parameters ``pipeline.*``)."""

    box_scale: float = setting(1.2, "context around the person box (SPIN/PyMAF)", low=0, low_open=True)
    min_detection_score: float = setting(0.3, "given detections below this score are ignored", low=0, high=1)
    min_box_px: float = setting(
        16.0, "boxes smaller than this after clipping to the image are dropped", low=0
    )
    max_persons: int = setting(8, "most persons per frame (the best scores are kept)", low=1)
    detector: str = setting(
        "auto",
        "person boxes when a frame has no detections: auto (yolo when detector_model is set, else the "
        "shipped MoveNet MultiPose), movenet, blazepose, yolo or none; hosts with a detections topic make "
        "auto none",
    )
    detector_model: str = setting("", "YOLO-family ONNX file for the built-in person detector")
    detector_score: float = setting(
        0.5,
        "the built-in detector's person-score threshold (MoveNet: its own, see movenet_score)",
        low=0,
        high=1,
    )
    movenet_score: float = setting(0.2, "MoveNet MultiPose's person-score threshold", low=0, high=1)
    movenet_side: int = setting(
        256, "MoveNet MultiPose input size: the image's longer side, a multiple of 32"
    )
    movenet_extra_side: int = setting(
        0, "a second MultiPose input size for small or edge people (persons merged); 0: none", low=0
    )
    movenet_crowd_tiles: bool = setting(
        False,
        "when a MultiPose run returns its most (6 people), or a person under a fifth of the image's longer "
        "side in an image whose tiles hold more pixels than the largest input, run it again on 2-4 "
        "overlapping tiles of the image for the people it left out (such frames pay 2-4 more runs, ~100 ms "
        "at 256: on for whmr image, off for real-time hosts)",
    )
    movenet_crowd_boxes: bool = setting(
        False,
        "where the crowd tiles run, NanoDet's person boxes on them too: people no MultiPose person covers "
        "are added with MoveNet Thunder's keypoints (a tile's MultiPose run returns 6 people at most; "
        "2-4 NanoDet runs and a Thunder run per candidate, +150-420 ms CPU on crowds: on for whmr image)",
    )
    keypoints: str = setting(
        "auto",
        "2D keypoints (COCO-17) per person: auto (the MultiPose detector's own where its boxes are used, "
        "else MoveNet Thunder on each box), thunder (Thunder on every box), detector (the detector's own "
        "only) or none",
    )
    fit: bool = setting(
        True, "fit each body to its 2D keypoints (pose, shape, translation); false: the network's body alone"
    )
    fit_3d: bool = setting(
        False, "the fit also matches BlazePose's 3D world landmarks (depth of each limb, left/right)"
    )
    fit_iterations: int = setting(4, "Levenberg-Marquardt iterations of the keypoint fit", low=1)
    fit_iterations_tracked: int = setting(
        2,
        "Levenberg-Marquardt iterations when every person starts from its track's previous fit (sequences; "
        "demo MPJPE 61.4 mm at 1, 60.8 at 2, 60.7 at 4)",
        low=1,
    )
    fit_upright: float = setting(
        0.01,
        "weight of the fit's upright-torso term where the frame has gravity (the torso's lean in depth, "
        "which 2D keypoints leave open; robust, a lying person stays lying); 0: off",
        low=0.0,
    )
    per_person_focal: bool = setting(
        False, "without K: each person's own predicted focal (the paper); false: one fused focal per image"
    )
    use_tracked_boxes: bool = setting(True, "no detections for a frame: re-use the bodies' projected boxes")
    whole_image_fallback: bool = setting(True, "no boxes at all: one person in the whole image")
    track_min_iou: float = setting(0.2, "least IoU for a box to continue a track", low=0, high=1)
    track_min_hits: int = setting(1, "matches before a track is published", low=1)
    track_max_age: int = setting(10, "frames a track survives without a match", low=0)
    smoothing: bool = setting(False, "One Euro smoothing of each track's body and translation")
    smoothing_min_cutoff: float = setting(1.0, "One Euro cut-off at rest, Hz", low=0, low_open=True)
    smoothing_beta: float = setting(0.5, "One Euro speed coefficient (higher: less lag)", low=0)
    max_depth_m: float = setting(100.0, "translations beyond this are not physical", low=0, low_open=True)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.detector not in DETECTOR_KINDS:
            raise ConfigError(f"pipeline.detector: expected one of {DETECTOR_KINDS}, got {self.detector!r}")
        if self.keypoints not in KEYPOINT_SOURCES:
            raise ConfigError(
                f"pipeline.keypoints: expected one of {KEYPOINT_SOURCES}, got {self.keypoints!r}"
            )
        for name in ("movenet_side", "movenet_extra_side"):
            v = getattr(self, name)
            if (v or name == "movenet_side") and (v < 32 or v % 32):
                raise ConfigError(f"pipeline.{name}: a multiple of 32 (>= 32), got {v}")
        if self.detector == "yolo" and not self.detector_model:
            raise ConfigError("pipeline.detector: yolo needs detector_model (a YOLO-family ONNX file)")

    @property
    def movenet_sides(self) -> tuple[int, ...]:
        return (self.movenet_side,) + ((self.movenet_extra_side,) if self.movenet_extra_side else ())

    @property
    def detector_kind(self) -> str:
        """The detector that runs: movenet, blazepose, yolo or none."""
        if self.detector == "auto":
            return "yolo" if self.detector_model else "movenet"
        return self.detector

    def for_detections_topic(self, has_topic: bool) -> PipelineConfig:
        """A host with a detections topic takes its boxes from there: no detector unless one was named."""
        return replace(self, detector="none") if has_topic and self.detector == "auto" else self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PipelineConfig:
        """Strict: unknown keys, wrong types (``'false'`` for a bool) and out-of-range values are errors."""
        return dataclass_from_dict(cls, dict(values), "pipeline")

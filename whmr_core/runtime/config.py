"""``PipelineConfig``: the Pipeline's settings, each with its description and valid range beside it.

Built in code, from a YAML mapping (``from_mapping``, strict: unknown keys and wrong types are errors) or
from ROS parameters (``whmr_ros.params`` derives the parameter table from these fields' metadata); the
ranges are checked the same way in all three cases (``whmr_core.config_io.check_settings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whmr_core.config_io import check_settings, dataclass_from_dict, setting

__all__ = ["PipelineConfig"]


@dataclass
class PipelineConfig:
    """Boxes, tracking, smoothing and plausibility limits of the Pipeline (ROS parameters ``pipeline.*``)."""

    box_scale: float = setting(1.2, "context around the person box (SPIN/PyMAF)", low=0, low_open=True)
    min_detection_score: float = setting(0.3, "given detections below this score are ignored", low=0, high=1)
    min_box_px: float = setting(
        16.0, "boxes smaller than this after clipping to the image are dropped", low=0
    )
    max_persons: int = setting(8, "most persons per frame (the best scores are kept)", low=1)
    detector_model: str = setting("", "YOLO-family ONNX file for the built-in person detector; '' = none")
    detector_score: float = setting(0.35, "the built-in detector's person-score threshold", low=0, high=1)
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

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PipelineConfig:
        """Strict: unknown keys, wrong types (``'false'`` for a bool) and out-of-range values are errors."""
        return dataclass_from_dict(cls, dict(values), "pipeline")

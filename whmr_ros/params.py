"""The node's parameters: one table shared by the rclpy node, the YAML file and the bag runner.

Parameters are flat ROS names: the node's own (``engine``, ``model``, ...), ``pipeline.<key>`` for
``PipelineConfig`` and ``host.<key>`` for ``HostConfig``. A params YAML in the ROS format
(``<node>: ros__parameters: {...}`` or ``/**: ros__parameters: {...}``) nests them; unknown keys are errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from whmr_core.config_io import (
    ConfigError,
    check_settings,
    dataclass_from_dict,
    read_yaml,
    setting,
    some_names,
)
from whmr_core.runtime.config import PipelineConfig
from whmr_ros.host import HostConfig

__all__ = [
    "NodeSettings",
    "ParameterSpec",
    "WhmrParams",
    "load_params",
    "parameter_specs",
    "params_from_flat",
]


@dataclass
class NodeSettings:
    """What the node itself needs (the engine, rates, what to publish)."""

    engine: str = setting("auto", "auto (by the model file's suffix) | onnxruntime | tensorrt | torch")
    model: str = setting("", ".onnx, TensorRT engine, or checkpoint; '' = the shipped checkpoint")
    network_config: str = setting("", "network config name for PyTorch weights ('' = from the checkpoint)")
    body_model: str = setting("", "'' = the body the model records; a given one must match it")
    device: str = setting("cpu", "cpu | cuda (ONNX Runtime provider / PyTorch device)")
    threads: int = setting(0, "ONNX Runtime intra-op threads, 0 = its default", low=0, high=256)
    use_detections: bool = setting(False, "subscribe to 'detections' (vision_msgs/Detection2DArray)")
    detect_ahead: bool = setting(
        False,
        "run the built-in detector on the next image in a second thread while this one goes through the "
        "network and the fit (no effect with use_detections; no gain measured on 2 cores)",
    )
    publish_markers: bool = setting(True, "publish ~/markers (built only while someone subscribes)")
    marker_rate_hz: float = setting(5.0, "MarkerArray rate limit, Hz", low=0, high=1000)
    markers_mesh: bool = setting(
        True, "TRIANGLE_LIST mesh markers (~1 MB per SMPL body); false: skeleton, ids"
    )
    publish_overlay: bool = setting(False, "publish ~/overlay (image with boxes, skeletons, ids)")
    diagnostics_period_s: float = setting(1.0, "/diagnostics period, s", low=0.01, high=3600)
    autostart: bool = setting(True, "configure and activate at start-up (no lifecycle manager needed)")

    def __post_init__(self) -> None:
        check_settings(self)  # the ranges in the fields' metadata; NaN and infinity nowhere


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    kind: str  # bool, integer, double, string, string_array, double_array
    description: str = ""
    range: tuple[float, float] | None = None  # inclusive bounds of an integer or double


@dataclass
class WhmrParams:
    node: NodeSettings = field(default_factory=NodeSettings)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    host: HostConfig = field(default_factory=HostConfig)


_KINDS = {
    "bool": "bool",
    "int": "integer",
    "float": "double",
    "str": "string",
    "tuple[str, ...]": "string_array",
    "tuple[float, ...]": "double_array",
}
_SECTIONS = (("", NodeSettings), ("pipeline.", PipelineConfig), ("host.", HostConfig))


def _field_range(f: Any) -> tuple[float, float] | None:
    r = f.metadata.get("range")
    if r is None:
        return None
    lo, hi = r  # config_io.Range unpacks as its inclusive bounds (None: unbounded)
    if lo is None and hi is None:
        return None
    return (-math.inf if lo is None else lo, math.inf if hi is None else hi)


def parameter_specs() -> list[ParameterSpec]:
    """Every parameter with its default, ROS type, description and range (the node declares exactly these),
    derived from the settings dataclasses."""
    specs = []
    for prefix, cls in _SECTIONS:
        for f in fields(cls):
            kind = _KINDS.get(str(f.type))
            if kind is None:
                raise TypeError(f"{cls.__name__}.{f.name}: no ROS parameter type for {f.type}")
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            default = list(default) if "array" in kind else default
            specs.append(
                ParameterSpec(
                    prefix + f.name, default, kind, f.metadata.get("description", ""), _field_range(f)
                )
            )
    return specs


def params_from_flat(values: Mapping[str, Any]) -> WhmrParams:
    """Flat parameter names -> typed settings; unknown names, wrong types and values out of range are
    errors naming the parameter (the strict loader of every whmr config, ``config_io``)."""
    specs = {s.name: s for s in parameter_specs()}
    unknown = sorted(set(values) - set(specs), key=str)
    if unknown:
        raise ConfigError(f"unknown parameters {some_names(unknown)}; known: {sorted(specs)}")
    sections: dict[str, dict[str, Any]] = {p: {} for p, _ in _SECTIONS}
    for name, value in values.items():
        prefix = next(p for p, _ in _SECTIONS[1:] if name.startswith(p)) if "." in name else ""
        sections[prefix][name[len(prefix) :]] = value
    typed = [dataclass_from_dict(cls, sections[p], p.rstrip(".") or "node") for p, cls in _SECTIONS]
    return WhmrParams(*typed)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load_params(path: str | Path, node_name: str = "whmr") -> WhmrParams:
    """A ROS params YAML -> WhmrParams (the node's section, or ``/**``)."""
    data = read_yaml(path)
    merged: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        section = data.get(key)
        if isinstance(section, Mapping) and isinstance(section.get("ros__parameters"), Mapping):
            merged.update(_flatten(section["ros__parameters"]))
    if not merged and data:
        raise ConfigError(f"{path}: no '{node_name}: ros__parameters:' or '/**: ros__parameters:' section")
    merged.pop("use_sim_time", None)  # a ROS parameter every node has, not ours
    try:
        return params_from_flat(merged)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err

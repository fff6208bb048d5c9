"""Network configuration: dataclasses, the named configs, and strict YAML loading (DESIGN.md section 10).

Every named config lives here. A YAML file either spells a whole config or starts from a named one with
``base: <name>`` and overrides some fields; an unknown or misspelt key anywhere is an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from whmr_core.config_io import ConfigError, dataclass_from_dict, dataclass_to_dict, read_yaml

__all__ = [
    "NAMED_CONFIGS",
    "ORIENT_BASES",
    "AuxConfig",
    "BackboneConfig",
    "ConfigError",
    "DepthConfig",
    "ModelConfig",
    "OrientConfig",
    "PyramidConfig",
    "RegressorConfig",
    "VertexRegressorConfig",
    "config_from_dict",
    "config_to_dict",
    "get_config",
    "load_config",
]


@dataclass(frozen=True)
class BackboneConfig:
    kind: Literal["resnet18", "resnet50", "vitb16"] = "resnet50"
    # Crop the network sees, (height, width) in pixels. The crop is the centre of the square person box
    # resized to max(height, width): a 256x192 crop is the middle 192 columns of a 256x256 square crop.
    crop_hw: tuple[int, int] = (224, 224)
    drop_path: float = 0.0  # stochastic depth (ViT only)
    pretrained: str | None = None  # optional file loaded at build time (never downloaded)


@dataclass(frozen=True)
class PyramidConfig:
    channels: int = 256  # channels of each deconv block (Phi_1..Phi_3)
    grid_hw: tuple[int, int] = (21, 21)  # fixed sampling grid of iteration 0 on Phi_1
    mlp_dims: tuple[int, ...] = (128, 64, 5)  # per-point feature reduction (eq. 13)


@dataclass(frozen=True)
class RegressorConfig:
    hidden: int = 1024
    dropout: float = 0.5
    init_gain: float = 0.01  # xavier gain of the output layers: iteration starts at the mean parameters
    # BatchNorm on the sampled point features before the regressor (not in PyMAF). From scratch, the image
    # part of the regressor input is small next to the constant Theta_t, and the regressor sits on the mean
    # pose for hundreds of steps; normalising each feature over the batch makes the image visible at once.
    feature_norm: bool = False


@dataclass(frozen=True)
class VertexRegressorConfig:
    dim: int = 256
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    drop_path: float = 0.1  # stochastic depth in the transformer blocks


@dataclass(frozen=True)
class DepthConfig:
    hidden: int = 256
    max_depth: float = 10.0  # t_z = max_depth * sigmoid(BN(.)), metres (section 3)


# What OrientCorrect adds its residual to: "camera" R_b^c (paper eq. 6), "calibrated" R_c^T R_b^c.
ORIENT_BASES = ("camera", "calibrated")


@dataclass(frozen=True)
class OrientConfig:
    hidden: int = 1024
    # "camera" is the paper's; checkpoints that do not record a base were trained with it.
    base: Literal["camera", "calibrated"] = "camera"


@dataclass(frozen=True)
class AuxConfig:
    enabled: bool = True
    num_parts: int = 24  # IUV: part index has num_parts + 1 classes (background), U and V per class
    hidden: int = 128


@dataclass(frozen=True)
class ModelConfig:
    name: str = "custom"
    # "hybrid": 2 parameter regressors + 1 vertex regressor on sparse vertices (paper Table 8);
    # "param": 3 parameter regressors sampling surface markers ("P" variant).
    variant: Literal["hybrid", "param"] = "hybrid"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pyramid: PyramidConfig = field(default_factory=PyramidConfig)
    regressor: RegressorConfig = field(default_factory=RegressorConfig)
    vertex: VertexRegressorConfig = field(default_factory=VertexRegressorConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    orient: OrientConfig = field(default_factory=OrientConfig)
    aux: AuxConfig = field(default_factory=AuxConfig)
    # Initial weak-perspective crop camera (s, t_x, t_y) of the mean parameters (PyMAF uses s = 0.9).
    init_cam: tuple[float, float, float] = (0.9, 0.0, 0.0)

    def __post_init__(self) -> None:
        h, w = self.backbone.crop_hw
        if h <= 0 or w <= 0:
            raise ConfigError(f"backbone.crop_hw: must be positive, got {self.backbone.crop_hw}")
        if self.backbone.kind.startswith("resnet") and (h % 32 or w % 32):
            raise ConfigError(f"backbone.crop_hw: ResNet needs multiples of 32, got {self.backbone.crop_hw}")
        if self.backbone.kind == "vitb16" and (h % 16 or w % 16):
            raise ConfigError(
                f"backbone.crop_hw: ViT-B/16 needs multiples of 16, got {self.backbone.crop_hw}"
            )
        if self.vertex.dim % self.vertex.heads:
            raise ConfigError("vertex.dim must be divisible by vertex.heads")
        if len(self.pyramid.mlp_dims) < 1 or min(self.pyramid.grid_hw) < 1:
            raise ConfigError("pyramid.mlp_dims and pyramid.grid_hw must be non-empty and positive")
        if self.init_cam[0] <= 0:
            raise ConfigError("init_cam: scale s must be > 0")

    @property
    def num_param_iterations(self) -> int:
        return 2 if self.variant == "hybrid" else 3


def _named() -> dict[str, ModelConfig]:
    r50 = ModelConfig(
        name="r50-hybrid",
        variant="hybrid",
        backbone=BackboneConfig(kind="resnet50", crop_hw=(224, 224)),
        pyramid=PyramidConfig(channels=256, grid_hw=(21, 21)),
    )
    vitb = ModelConfig(
        name="vitb-hybrid",
        variant="hybrid",
        backbone=BackboneConfig(kind="vitb16", crop_hw=(256, 192), drop_path=0.3),
        # 21 x 16 grid keeps PyMAF's ~1/7 point spacing on the 4:3 map.
        pyramid=PyramidConfig(channels=256, grid_hw=(21, 16)),
    )
    vitb_p = dataclasses.replace(
        vitb,
        name="vitb-param",
        variant="param",
        # The released W-HMR checkpoint samples a 7 x 9 first grid (kept here, as rows x columns of 9 x 7
        # on the portrait map) and 67 surface markers.
        pyramid=PyramidConfig(channels=256, grid_hw=(9, 7)),
    )
    small = ModelConfig(
        name="small-cpu",
        variant="hybrid",
        backbone=BackboneConfig(kind="resnet18", crop_hw=(128, 128)),
        pyramid=PyramidConfig(channels=64, grid_hw=(8, 8), mlp_dims=(32, 16, 4)),
        regressor=RegressorConfig(hidden=256, dropout=0.2, feature_norm=True),
        vertex=VertexRegressorConfig(dim=64, depth=1, heads=2, mlp_ratio=2.0, drop_path=0.0),
        depth=DepthConfig(hidden=64),
        orient=OrientConfig(hidden=128),
        aux=AuxConfig(enabled=True, hidden=32),
    )
    return {c.name: c for c in (r50, vitb, vitb_p, small)}


NAMED_CONFIGS: dict[str, ModelConfig] = _named()


def get_config(name: str) -> ModelConfig:
    """The named config (``r50-hybrid``, ``vitb-hybrid``, ``vitb-param``, ``small-cpu``)."""
    try:
        return NAMED_CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model config {name!r}; known: {', '.join(sorted(NAMED_CONFIGS))}"
        ) from None


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Strictly build a ModelConfig; ``base: NAME`` starts from a named config (fields override it)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
    data = dict(data)
    base_name = data.pop("base", None)
    base = get_config(base_name) if base_name is not None else None
    return dataclass_from_dict(ModelConfig, data, "", base)


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain dict (lists for tuples) that ``config_from_dict`` reads back to an equal config."""
    return dataclass_to_dict(config)


def load_config(path: str | Path) -> ModelConfig:
    """Read a YAML model config (strict; see ``config_from_dict``)."""
    data = read_yaml(path)
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err

"""Network configuration: dataclasses, the named configs, and strict YAML loading (DESIGN.md section 10).

Every named config lives here. A YAML file either spells a whole config or starts from a named one with
``base: <name>`` and overrides some fields; an unknown or misspelt key anywhere is an error.

Schema versions. Options added after checkpoints were shipped change the network a stored config builds,
so a stored config records ``schema``. Configs written before it existed (schema 1) lack the newer keys,
and a missing key there means the behaviour they were trained with (``LEGACY_DEFAULTS``); a new config
(``config_from_dict``, a YAML file, a named config) defaults to the authors' release. Use
``config_from_stored`` for configs read back from checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from whmr_core.config_io import ConfigError, dataclass_from_dict, dataclass_to_dict, read_yaml

__all__ = [
    "CONFIG_SCHEMA",
    "LEGACY_DEFAULTS",
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
    "config_from_stored",
    "config_to_dict",
    "get_config",
    "load_config",
]


@dataclass(frozen=True)
class BackboneConfig:
    # "movenet": MoveNet Thunder's MobileNetV2+FPN trunk, pose-pretrained on real people and frozen
    # (backbones/movenet.py); its FPN maps at strides 16, 8, 4 feed the pyramid's three stages.
    kind: Literal["resnet18", "resnet50", "vitb16", "movenet"] = "resnet50"
    # Crop the network sees, (height, width) in pixels. The crop is the centre of the square person box
    # resized to max(height, width): a 256x192 crop is the middle 192 columns of a 256x256 square crop.
    crop_hw: tuple[int, int] = (224, 224)
    drop_path: float = 0.0  # stochastic depth (ViT only)
    pretrained: str | None = None  # optional file loaded at build time (never downloaded)
    # movenet only: MoveNet's own keypoint heatmaps (17, after its sigmoid) and offsets (34), computed by
    # its frozen heads from the stride-4 map, appended to that map (issue 23: pose evidence learnt on real
    # people, the same on synthetic and real crops).
    keypoint_maps: bool = False
    # movenet only (issue 23's low-rate schedule): the FPN (and with keypoint_maps MoveNet's heads) train as
    # w = w0 + rms(w0) * delta, delta from 0, at the stage's learning rate times tune_lr_scale; MobileNetV2
    # below the FPN stays frozen (backbones/movenet.py). False builds the frozen trunk exactly as before.
    tune_fpn: bool = False
    tune_lr_scale: float = 0.1


CONFIG_SCHEMA = 2  # version of the stored config layout (see the module docstring)


@dataclass(frozen=True)
class PyramidConfig:
    channels: int = 256  # channels of each deconv block (Phi_1..Phi_3)
    grid_hw: tuple[int, int] = (21, 21)  # fixed sampling grid of iteration 0 on Phi_1 (rows, cols)
    mlp_dims: tuple[int, ...] = (128, 64, 5)  # per-point feature reduction (eq. 13); last = C^fc
    # "pifu": PyMAF's/the release's point MLP (the raw sampled features are concatenated into every later
    # layer, LeakyReLU between layers, a final ReLU); "plain": a LeakyReLU MLP with a linear output.
    point_mlp: Literal["pifu", "plain"] = "pifu"
    # Where points are sampled. "crop": the first grid at cell centres (row-major), mesh points by weak
    # perspective in the square box mapped to the (H, W) crop, grid_sample(align_corners=False).
    # "release": as the released code: grid linspace(-1, 1) with the edges (x-major), points by its pseudo
    # perspective (f = 1000 on a 256 box) without the non-square x-rescale, align_corners=True. whmr's
    # default deviates because the release's x coordinates miss the drawn pixel on a 256x192 map.
    sampling: Literal["crop", "release"] = "crop"


@dataclass(frozen=True)
class RegressorConfig:
    hidden: int = 1024
    dropout: float = 0.5
    init_gain: float = 0.01  # xavier gain of the output layers: iteration starts at the mean parameters
    # BatchNorm on the sampled point features before the regressor (not in PyMAF). From scratch, the image
    # part of the regressor input is small next to the constant Theta_t, and the regressor sits on the mean
    # pose for hundreds of steps; normalising each feature over the batch makes the image visible at once.
    feature_norm: bool = False
    # Between the two FC layers: "none" as PyMAF and the release (fc1 -> dropout -> fc2 -> dropout).
    activation: Literal["none", "relu"] = "none"
    # Theta_t enters iteration t+1 detached (release): each iteration's loss trains its own regressor.
    detach: bool = True
    # Pose as "rot6d" (6D, Gram-Schmidt) or "matrix" (the release's P model: 24 x 9 added in matrix space,
    # unbiased Gram-Schmidt at eval only, raw matrices into the body model while training).
    rotation: Literal["rot6d", "matrix"] = "rot6d"


@dataclass(frozen=True)
class VertexRegressorConfig:
    dim: int = 256
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    drop_path: float = 0.1  # stochastic depth in the transformer blocks
    # "direct": the tokens regress the sparse vertex positions (paper Table 8: better than "indirect");
    # "residual": a correction added to the previous sparse mesh.
    head: Literal["direct", "residual"] = "direct"
    # Global token: "points" = a linear map of phi_3^s (the reduced point features, as the release);
    # "glob" = a learned token plus an embedding of glob info and crop camera.
    global_token: Literal["points", "glob"] = "points"


@dataclass(frozen=True)
class DepthConfig:
    # "pooled": MLP over [average-pooled Phi_3, glob info]; "release": the release's head, Conv(k7, s3) ->
    # Conv(k7, s2) -> transformer block over the 5 channel maps -> average over channels -> FC -> FC.
    kind: Literal["pooled", "release"] = "pooled"
    hidden: int = 256  # pooled: MLP width; release: the first convolution's channels (64)
    max_depth: float = 10.0  # t_z = max_depth * sigmoid(BN(.)), metres (section 3)


# What OrientCorrect adds its residual to: "camera" R_b^c (paper eq. 6), "calibrated" R_c^T R_b^c.
ORIENT_BASES = ("camera", "calibrated")


@dataclass(frozen=True)
class OrientConfig:
    hidden: int = 1024
    # Between the FC layers: "relu", or "none" as the release (FC -> dropout -> FC -> dropout -> FC).
    activation: Literal["relu", "none"] = "relu"
    dropout: float = 0.0
    # Root as "rot6d" (residual on the first two columns, Gram-Schmidt) or "matrix" (the release: R_b^c
    # enters as 9 numbers, a 9-D residual, unbiased Gram-Schmidt at eval only).
    rotation: Literal["rot6d", "matrix"] = "rot6d"
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
    # Theta_0 file (SPIN's smpl_mean_params.npz: pose (144,) 6D, shape (10,), cam (3,)) read at build time
    # for an SMPL body; None = the body model's derived means (rest pose facing the camera, zero betas,
    # init_cam). A built network keeps Theta_0 in its weights, so checkpoints do not need the file.
    mean_params: str | None = None
    # Surface-marker vertex ids (.npy or text, one id per vertex) sampled by the "param" variant, e.g. the
    # 67 mocap markers of the release's smpl_ssm.npy; None = the body assets' farthest-point samples.
    markers: str | None = None
    schema: int = CONFIG_SCHEMA

    def __post_init__(self) -> None:
        h, w = self.backbone.crop_hw
        if h <= 0 or w <= 0:
            raise ConfigError(f"backbone.crop_hw: must be positive, got {self.backbone.crop_hw}")
        if self.backbone.kind.startswith("resnet") and (h % 32 or w % 32):
            raise ConfigError(f"backbone.crop_hw: ResNet needs multiples of 32, got {self.backbone.crop_hw}")
        if self.backbone.kind == "movenet" and (h % 32 or w % 32):
            raise ConfigError(f"backbone.crop_hw: MoveNet needs multiples of 32, got {self.backbone.crop_hw}")
        if self.backbone.keypoint_maps and self.backbone.kind != "movenet":
            raise ConfigError(
                "backbone.keypoint_maps: only the movenet backbone has keypoint heads, not "
                f"{self.backbone.kind}"
            )
        if self.backbone.tune_fpn and self.backbone.kind != "movenet":
            raise ConfigError(
                f"backbone.tune_fpn: only the movenet backbone has an FPN, not {self.backbone.kind}"
            )
        if not self.backbone.tune_lr_scale > 0:
            raise ConfigError(f"backbone.tune_lr_scale: must be > 0, got {self.backbone.tune_lr_scale}")
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
        if not 1 <= self.schema <= CONFIG_SCHEMA:
            raise ConfigError(
                f"schema: {self.schema} is not a config schema this whmr reads (1..{CONFIG_SCHEMA}); "
                "a newer whmr wrote it"
            )

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
        pyramid=PyramidConfig(channels=256, grid_hw=(24, 18)),  # paper Table 9
    )
    vitb_p = dataclasses.replace(
        vitb,
        name="vitb-param",
        variant="param",
        # Paper Table 9 / the release: a 9 x 7 (rows x columns) first grid and 67 surface markers,
        # C^fc = 32 per point (PIFu MLP 256 -> 128 -> 64 -> 32), so C^s = 2016 / 2144 / 2144.
        pyramid=PyramidConfig(channels=256, grid_hw=(9, 7), mlp_dims=(128, 64, 32)),
    )
    # The released network (yw0208/W-HMR at 6dd6c49, MIT) exactly, for `whmr import-release`: ViT-P with
    # the release's sampling, 3x3-matrix pose, depth head and OrientCorrect; Theta_0 and the markers come
    # from the release's files (set by the importer).
    release = dataclasses.replace(
        vitb_p,
        name="vitb-param-release",
        backbone=dataclasses.replace(vitb.backbone, drop_path=0.0),
        pyramid=dataclasses.replace(vitb_p.pyramid, sampling="release"),
        regressor=RegressorConfig(rotation="matrix"),
        depth=DepthConfig(kind="release", hidden=64),
        orient=OrientConfig(hidden=2048, activation="none", dropout=0.5, rotation="matrix"),
        aux=AuxConfig(enabled=False),
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
    # small-cpu's heads on MoveNet Thunder's frozen pose-pretrained trunk (issue 23), 192x192 crops: the
    # smallest at which its stride-4 FPN map (48x48) still resolves limbs; Thunder was trained at 256.
    movenet = dataclasses.replace(
        small, name="movenet-cpu", backbone=BackboneConfig(kind="movenet", crop_hw=(192, 192))
    )
    return {c.name: c for c in (r50, vitb, vitb_p, release, small, movenet)}


NAMED_CONFIGS: dict[str, ModelConfig] = _named()

# What a schema-1 config (stored before the options above existed) meant by a missing key.
LEGACY_DEFAULTS = ModelConfig(
    pyramid=PyramidConfig(point_mlp="plain"),
    regressor=RegressorConfig(activation="relu", detach=False),
    vertex=VertexRegressorConfig(head="residual", global_token="glob"),
    schema=1,
)


def get_config(name: str) -> ModelConfig:
    """The named config (``r50-hybrid``, ``vitb-hybrid``, ``vitb-param``, ``vitb-param-release``,
    ``small-cpu``, ``movenet-cpu``)."""
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


def config_from_stored(data: dict[str, Any]) -> ModelConfig:
    """A config read back from a checkpoint: without ``schema`` it is schema 1, and its missing keys take
    the behaviour it was trained with (``LEGACY_DEFAULTS``), not today's defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"stored config: expected a mapping, got {type(data).__name__}")
    if "base" in data:
        return config_from_dict(data)
    schema = data.get("schema", 1)
    base = LEGACY_DEFAULTS if schema == 1 else ModelConfig()
    return dataclass_from_dict(ModelConfig, dict(data), "", base)


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """Plain dict (lists for tuples) that ``config_from_dict`` reads back to an equal config."""
    return dataclass_to_dict(config)


def load_config(path: str | Path) -> ModelConfig:
    """Read a YAML model config (strict; see ``config_from_dict``)."""
    data = read_yaml(path)
    try:
        config = config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    # Files a config names are relative to the config, not to the working directory.
    base = Path(path).resolve().parent

    def here(value: str | None) -> str | None:
        return value if not value or Path(value).is_absolute() else str(base / value)

    from dataclasses import replace

    return replace(
        config,
        backbone=replace(config.backbone, pretrained=here(config.backbone.pretrained)),
        mean_params=here(config.mean_params),
        markers=here(config.markers),
    )

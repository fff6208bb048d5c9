"""Training configuration: dataclasses read strictly from YAML (``training/configs/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from whmr_core.config_io import (
    ConfigError,
    check_settings,
    dataclass_from_dict,
    dataclass_to_dict,
    read_yaml,
    setting,
)
from whmr_core.losses import LOSS_WEIGHTS

__all__ = [
    "ITERATION_REDUCTIONS",
    "DataConfig",
    "LossWeights",
    "MixSet",
    "StageConfig",
    "TrainConfig",
    "ValSet",
    "load_train_config",
]

# Reductions over the iterations of a deeply supervised term (``TrainConfig.iteration_losses``).
ITERATION_REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class MixSet:
    """One training set of a mix: its annotation file (any format of ``whmr_core.data.formats``), images
    and share of every epoch's samples (ratios are normalised over the mix)."""

    name: str = ""
    train: str = ""
    images: str = ""
    ratio: float = setting(1.0, "share of each epoch's samples", low=0, low_open=True)
    ignore_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.name or not self.train:
            raise ConfigError("mix: every set needs a name and a train file")


@dataclass(frozen=True)
class ValSet:
    """One validation set and the protocol it is scored with (``whmr_core.evaluation.PROTOCOLS``)."""

    name: str = ""
    file: str = ""
    images: str = ""
    protocol: str = "synthetic"
    max_samples: int | None = None

    def __post_init__(self) -> None:
        from whmr_core.evaluation import PROTOCOLS

        if not self.name or not self.file:
            raise ConfigError("validation: every set needs a name and a file")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"validation {self.name}: protocol must be one of {sorted(PROTOCOLS)}")


@dataclass(frozen=True)
class DataConfig:
    """Annotation files and image folders; relative paths are relative to the config file."""

    train: str = ""  # annotation .npz (SPIN/PyMAF layout, whmr synth writes train.npz)
    train_images: str = ""
    val: str | None = None
    val_images: str | None = None
    augment: bool = True
    num_workers: int = setting(0, "data loader worker processes", low=0)
    val_max_samples: int | None = None  # cap the validation set (quick checks)
    maps: bool = True  # IUV/depth targets for the auxiliary losses when the annotation file names them
    # Samples whose image cannot be read are skipped (replaced by the next one) with a warning; past this
    # many (per process) the run stops: the data, not a few files, is broken.
    max_bad_samples: int = setting(100, "unreadable samples skipped before the run stops", low=0)
    # Keys of the annotation files whmr does not know and should leave out (``whmr data check`` lists them).
    ignore_fields: tuple[str, ...] = ()
    # Several training sets at fixed ratios, instead of ``train``/``train_images``.
    mix: tuple[MixSet, ...] = ()
    epoch_size: int | None = None  # samples an epoch of a mix draws (default: the sets' total)
    val_protocol: str = "synthetic"  # the protocol ``val`` is scored with
    # Further validation sets, each with its protocol; every validation writes their metrics.
    validation: tuple[ValSet, ...] = ()
    # The metric of the first validation set whose lowest value keeps a checkpoint in stage{k}/best.
    best_metric: str = "mpjpe"
    # A folder for the frozen backbone's maps of the training crops, computed once and read back every step
    # (whmr_core.training.feature_cache; movenet only). Rebuilt when the data or the backbone changes.
    feature_cache: str | None = None
    # Augmented versions of each training image in the cache (with augment: true; 1 without).
    cache_copies: int = setting(1, "augmented copies per image in the feature cache", low=1)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.mix and self.train:
            raise ConfigError("data: give either train (one set) or mix (several), not both")
        for kind, names in (
            ("mix", [m.name for m in self.mix]),
            ("validation", [v.name for v in self.validation]),
        ):
            if len(set(names)) != len(names):
                raise ConfigError(f"{kind}: set names must be unique, got {names}")
        if self.epoch_size is not None and self.epoch_size < 1:
            raise ConfigError(f"data.epoch_size: must be >= 1, got {self.epoch_size}")

    def validation_sets(self) -> tuple[ValSet, ...]:
        """``val`` (named "val") first, then ``validation``."""
        first = () if not self.val else (ValSet("val", self.val, self.val_images or self.train_images or "",
                                                self.val_protocol, self.val_max_samples),)  # fmt: skip
        return first + self.validation


@dataclass(frozen=True)
class StageConfig:
    """One training stage (DESIGN.md section 7)."""

    epochs: int = setting(1, "passes over the training set", low=0)
    max_steps: int | None = None  # stop the stage after this many optimiser steps (small machines)
    lr: float = setting(5e-5, "learning rate", low=0)
    weight_decay: float = setting(0.0, "AdamW weight decay", low=0)
    # Learning-rate schedule over the stage's steps: "constant" (the paper) or "cosine" (decays to 0;
    # short runs end much lower with it), after ``warmup_steps`` of linear warm-up.
    schedule: str = "constant"
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        check_settings(self)
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"schedule: must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: must be >= 0, got {self.warmup_steps}")


@dataclass(frozen=True)
class LossWeights:
    """One weight per loss term; defaults and the paper's lambda of each in ``whmr_core.losses``."""

    keypoint_3d: float = LOSS_WEIGHTS["keypoint_3d"]
    crop_keypoint_2d: float = LOSS_WEIGHTS["crop_keypoint_2d"]
    full2_keypoint_2d: float = LOSS_WEIGHTS["full2_keypoint_2d"]
    vertex_sparse: float = LOSS_WEIGHTS["vertex_sparse"]
    vertex_intermediate: float = LOSS_WEIGHTS["vertex_intermediate"]
    vertex_full: float = LOSS_WEIGHTS["vertex_full"]
    smpl_betas: float = LOSS_WEIGHTS["smpl_betas"]
    smpl_pose: float = LOSS_WEIGHTS["smpl_pose"]
    part_ce: float = LOSS_WEIGHTS["part_ce"]
    uv_u: float = LOSS_WEIGHTS["uv_u"]
    uv_v: float = LOSS_WEIGHTS["uv_v"]
    inverse_depth: float = LOSS_WEIGHTS["inverse_depth"]
    focal: float = LOSS_WEIGHTS["focal"]
    camera_scale: float = LOSS_WEIGHTS["camera_scale"]
    world_keypoint_3d: float = LOSS_WEIGHTS["world_keypoint_3d"]
    world_vertex: float = LOSS_WEIGHTS["world_vertex"]
    world_pose: float = LOSS_WEIGHTS["world_pose"]

    def __post_init__(self) -> None:
        check_settings(self)  # no NaN or infinite weight


@dataclass(frozen=True)
class TrainConfig:
    name: str = "train"
    model: str = "small-cpu"  # a named model config or a YAML file (relative to this config)
    body: str = "lowres"  # shipped body variant (full, lowres) or a path to a SMPL file
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = setting(128, "samples per step per process; paper: 128", low=1)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=StageConfig)
    stage3: StageConfig = field(default_factory=StageConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    # FULL^2 and L_f on every iteration's camera and joints (the release); false: the final output only.
    full2_every_iteration: bool = True
    # How a term supervised on every iteration (deep supervision) is reduced: "sum" (the release adds one
    # loss per iteration) or "mean" (the same balance as a single output; what runs before this option used).
    iteration_losses: str = "sum"
    seed: int = 0
    amp: bool = True  # bf16/fp16 autocast on GPU; ignored on CPU
    grad_clip: float | None = setting(1.0, "gradient norm clip (None: none)", low=0, low_open=True)
    log_every: int = setting(10, "steps between TensorBoard scalars", low=1)
    checkpoint_every: int = setting(100, "steps between atomic 'last' checkpoints", low=1)
    threads: int | None = setting(None, "torch CPU threads (None: torch's default)", low=1)
    # Many processes (torchrun): BatchNorm statistics over every rank's samples rather than each rank's own.
    sync_batchnorm: bool = False
    max_nonfinite_steps: int = setting(20, "steps with a non-finite loss skipped before a stage stops", low=0)
    # A checkpoint directory (another run's stage or model) whose weights start this run where names and
    # shapes match; new parameters keep their initialisation. The first stage run then needs no earlier
    # stage of its own (``--stage 2,3`` from another run's stage 2). Relative to this config.
    init_from: str | None = None

    def __post_init__(self) -> None:
        check_settings(self)
        if self.iteration_losses not in ITERATION_REDUCTIONS:
            choices = ", ".join(ITERATION_REDUCTIONS)
            raise ConfigError(f"iteration_losses: must be one of {choices}, got {self.iteration_losses!r}")

    def stage(self, k: int) -> StageConfig:
        if k not in (1, 2, 3):
            raise ConfigError(f"stage: must be 1, 2 or 3, got {k}")
        return getattr(self, f"stage{k}")

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None or value == "":
        return value
    p = Path(value)
    return str(p if p.is_absolute() else (base / p).resolve())


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a training config; paths inside it are resolved relative to the file."""
    path = Path(path)
    data = read_yaml(path)
    if overrides:
        data = {**data, **overrides}
    try:
        cfg = dataclass_from_dict(TrainConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    base = path.resolve().parent
    d = cfg.data
    data_cfg = replace(
        d,
        train=_resolve(base, d.train) or "",
        train_images=_resolve(base, d.train_images) or "",
        val=_resolve(base, d.val),
        val_images=_resolve(base, d.val_images),
        feature_cache=_resolve(base, d.feature_cache),
        mix=tuple(
            replace(m, train=_resolve(base, m.train) or "", images=_resolve(base, m.images) or "")
            for m in d.mix
        ),
        validation=tuple(
            replace(v, file=_resolve(base, v.file) or "", images=_resolve(base, v.images) or "")
            for v in d.validation
        ),
    )
    model = cfg.model
    if model.endswith((".yaml", ".yml")):
        model = _resolve(base, model) or model
    body = cfg.body
    if body not in ("full", "lowres"):
        body = _resolve(base, body) or body
    return replace(cfg, data=data_cfg, model=model, body=body, init_from=_resolve(base, cfg.init_from))

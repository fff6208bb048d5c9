"""Backbones (in-tree, no torchvision) and loading of user-supplied pretrained weights."""

from __future__ import annotations

from torch import nn

from whmr_core.model.backbones.loading import LoadReport, PretrainedMismatchError, load_pretrained
from whmr_core.model.backbones.movenet import MoveNetBackbone
from whmr_core.model.backbones.resnet import ResNet, resnet18, resnet50
from whmr_core.model.backbones.vit import VisionTransformer, vit_base_patch16
from whmr_core.model.config import BackboneConfig

__all__ = [
    "LoadReport",
    "MoveNetBackbone",
    "PretrainedMismatchError",
    "ResNet",
    "VisionTransformer",
    "build_backbone",
    "load_pretrained",
]


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    """Backbone of ``cfg.kind``; it has ``out_channels``, ``stride`` and ``arch`` attributes."""
    if cfg.kind == "resnet18":
        net: nn.Module = resnet18()
    elif cfg.kind == "resnet50":
        net = resnet50()
    elif cfg.kind == "vitb16":
        net = vit_base_patch16(crop_hw=cfg.crop_hw, drop_path=cfg.drop_path)
    elif cfg.kind == "movenet":
        # Rebuilt from the committed pose model at every build: frozen, or with tune_fpn its FPN's deltas
        # (in the network's checkpoints; no weights of its own to load).
        if cfg.pretrained:
            raise ValueError(
                "backbone.pretrained: the movenet backbone reads its weights from the shipped "
                "pose model; leave pretrained unset"
            )
        return MoveNetBackbone(
            keypoint_maps=cfg.keypoint_maps, tune_fpn=cfg.tune_fpn, tune_lr_scale=cfg.tune_lr_scale
        )
    else:  # pragma: no cover - the config validates kind
        raise ValueError(f"unknown backbone kind {cfg.kind!r}")
    if cfg.pretrained:
        load_pretrained(net, cfg.pretrained)
    return net

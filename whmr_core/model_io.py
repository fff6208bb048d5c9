"""Networks from checkpoints: the shipped one by default, or a user's; the checkpoint records which model
config and which body model it was trained with, so the right network is rebuilt around its weights."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from whmr_core.checkpoint import CheckpointError, load_weights

__all__ = [
    "SHIPPED_CHECKPOINT",
    "build_from_checkpoint",
    "checkpoint_info",
    "load_state",
    "shipped_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINTS = Path(__file__).parent / "assets" / "checkpoints"
# MoveNet Thunder's frozen trunk (rebuilt from the shipped, hash-checked ONNX) under small-cpu's heads,
# trained on whmr's synthetic people: it beats the synthetic-only small-cpu on real photos (README).
# Beside it, small-cpu-synthetic (the previous default: ResNet-18 from scratch on synthetic people, faster,
# no real-image features) stays for ``--checkpoint``/``model``.
SHIPPED_CHECKPOINT = CHECKPOINTS / "movenet-keypoints-cpu-synthetic"


def shipped_checkpoint() -> Path | None:
    """The default checkpoint shipped with whmr (trained on synthetic data on a CPU), if present."""
    return SHIPPED_CHECKPOINT if (SHIPPED_CHECKPOINT / "model.safetensors").is_file() else None


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The config a checkpoint records: {"name", "model" (a ModelConfig dict), "body"}."""
    import json

    _, metadata = load_weights(path)
    return json.loads(metadata.get("config", "{}"))


def _body_for(body: str | None) -> Any:
    from whmr_core.body import resolve

    return resolve(body).load()


def build_from_checkpoint(path: str | Path | None = None, *, body: str | None = None) -> torch.nn.Module:
    """The network of ``path`` (default: the shipped checkpoint; without one, a freshly initialised
    ``small-cpu`` network on the low-res body, with a warning) with its weights loaded, in eval mode."""
    from whmr_core.model import build_model
    from whmr_core.model.config import config_from_stored
    from whmr_core.model.theta0 import MeanParams

    if path is None:
        path = shipped_checkpoint()
        if path is None:
            log.warning("no shipped checkpoint: using a freshly initialised small-cpu network (untrained)")
            return build_model("small-cpu", body=_body_for("lowres")).eval()
    path = Path(path)
    info = checkpoint_info(path)
    if "model" not in info:
        raise CheckpointError(f"{path}: the checkpoint does not record its model config")
    config = config_from_stored(info["model"])
    # The backbone's trained weights are in the checkpoint: the pretrained file it started from is not read.
    config = replace(config, backbone=replace(config.backbone, pretrained=None))
    weights, _ = load_weights(path)
    # The network's start and markers are in the weights: the files the config names are not needed.
    theta0: dict[str, Any] = {}
    if all(k in weights for k in ("mean_pose6d", "mean_betas", "mean_cam")):
        theta0["mean_params"] = MeanParams(weights["mean_pose6d"], weights["mean_betas"], weights["mean_cam"])
    if "marker_ids" in weights:
        theta0["marker_ids"] = weights["marker_ids"].long()
    body_model = _body_for(body or info.get("body"))
    want = info.get("body_vertices")
    got = int(body_model.v_template.shape[0])
    if want is not None and got != int(want):
        raise CheckpointError(
            f"{path}: the network was made for a {want}-vertex body model, the given one has {got} "
            "(pass the SMPL model file it was imported with, e.g. --body-model SMPL_NEUTRAL.pkl)"
        )
    model = build_model(config, body=body_model, **theta0)
    load_state(model, weights, path, config.name)
    return model.eval()


def load_state(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: Any, name: str) -> None:
    """Copy checkpoint ``weights`` into ``model`` strictly, after folding the dead depth-head bias that
    older checkpoints hold (exact: see ``depth_head.fold_dead_bias``); a mismatch names what differs."""
    from whmr_core.model.depth_head import fold_dead_bias

    weights = dict(weights)
    fold_dead_bias(weights, "depth_head.mlp.2.bias", "depth_head.bn.")
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in weights and own[k].shape != weights[k].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path}: checkpoint is for another architecture (config {name!r}); "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in weights.items()}, strict=True)

"""Networks from checkpoints: the shipped one by default, or a user's; the checkpoint records which model
config and which body model it was trained with, so the right network is rebuilt around its weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from whmr_core.checkpoint import CheckpointError, load_checkpoint, load_weights

__all__ = ["SHIPPED_CHECKPOINT", "build_from_checkpoint", "checkpoint_info", "shipped_checkpoint"]

log = logging.getLogger(__name__)

SHIPPED_CHECKPOINT = Path(__file__).parent / "assets" / "checkpoints" / "small-cpu-synthetic"


def shipped_checkpoint() -> Path | None:
    """The checkpoint shipped with whmr (trained on synthetic data on a CPU), if present."""
    return SHIPPED_CHECKPOINT if (SHIPPED_CHECKPOINT / "model.safetensors").is_file() else None


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The config a checkpoint records: {"name", "model" (a ModelConfig dict), "body"}."""
    import json

    _, metadata = load_weights(path)
    return json.loads(metadata.get("config", "{}"))


def _body_for(body: str | None) -> Any:
    from whmr_core.body import load_body_model

    if body in (None, "full", "lowres"):
        return load_body_model(variant=body or "full")
    return load_body_model(body)


def build_from_checkpoint(path: str | Path | None = None, *, body: str | None = None) -> torch.nn.Module:
    """The network of ``path`` (default: the shipped checkpoint; without one, a freshly initialised
    ``small-cpu`` network on the low-res body, with a warning) with its weights loaded, in eval mode."""
    from whmr_core.model import build_model
    from whmr_core.model.config import config_from_dict

    if path is None:
        path = shipped_checkpoint()
        if path is None:
            log.warning("no shipped checkpoint: using a freshly initialised small-cpu network (untrained)")
            return build_model("small-cpu", body=_body_for("lowres")).eval()
    path = Path(path)
    info = checkpoint_info(path)
    if "model" not in info:
        raise CheckpointError(f"{path}: the checkpoint does not record its model config")
    config = config_from_dict(info["model"])
    model = build_model(config, body=_body_for(body or info.get("body")))
    load_checkpoint(path, model)
    return model.eval()

"""Shared pieces of the experiment scripts (``scripts/exp_*.py``): networks from checkpoints, short training
runs that start from a checkpoint, and evaluation tables. Not part of the installed package."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def load_network(checkpoint: str | None, orient_base: str | None = None) -> torch.nn.Module:
    """The network of ``checkpoint`` ("shipped"/None: the shipped one; "untrained": a fresh small-cpu on
    the low-res body, seed 0). ``orient_base`` switches OrientCorrect's base ("camera"/"calibrated"): the
    module's parameters are the same in both, so the weights load either way, and the stored config of any
    checkpoint saved from the result records the new base."""
    from whmr_core.body import load_body_model
    from whmr_core.model import build_model
    from whmr_core.model_io import build_from_checkpoint

    if checkpoint == "untrained":
        torch.manual_seed(0)
        model = build_model("small-cpu", body=load_body_model(variant="lowres")).eval()
    else:
        model = build_from_checkpoint(None if checkpoint in (None, "shipped") else checkpoint)
    if orient_base is not None and orient_base != model.config.orient.base:
        orient = dataclasses.replace(model.config.orient, base=orient_base)
        model.config = dataclasses.replace(model.config, orient=orient)
        model.orient_correct.base = orient_base
    return model


def add_evaluation_arguments(p: argparse.ArgumentParser, data_help: str, checkpoints_help: str) -> None:
    """The arguments every ``eval`` of the experiment scripts takes: data, NAME=PATH networks, a sample cap
    and a JSON file for the results."""
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("checkpoints", nargs="+", help=checkpoints_help)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--json", default=None)


def named_networks(specs: list[str]) -> Iterator[tuple[str, torch.nn.Module]]:
    """``NAME=PATH`` (or a bare NAME that ``load_network`` knows) -> (name, network), one at a time."""
    for spec in specs:
        name, _, path = spec.partition("=")
        yield name, load_network(path or name)


def train_from(
    model: torch.nn.Module, config: str | Path, overrides: dict[str, Any], out: str | Path, stages: list[int]
) -> Path:
    """Train ``model`` (already built and loaded) for ``stages`` with the training config ``config``
    (top-level keys replaced by ``overrides``); returns the final checkpoint directory."""
    from whmr_core.checkpoint import save_checkpoint
    from whmr_core.training.config import load_train_config
    from whmr_core.training.trainer import Trainer

    cfg = load_train_config(config, overrides)
    trainer = Trainer(cfg, out, device="cpu")
    trainer.model = model.train()
    # Trainer.run chains stages through their saved results; here the given network is the start of
    # whichever stage comes first, so the stages are run one after the other on it.
    meta = trainer._config_meta()
    save_checkpoint(Path(out) / "initial", model.state_dict(), config=meta, meta={"stage": 0})
    for stage in stages:
        trainer.train_stage(stage)
    model_dir = Path(out) / "model"
    save_checkpoint(model_dir, model.state_dict(), config=meta, half=True, meta={"stages": stages})
    return model_dir


def evaluate_on(
    model: torch.nn.Module,
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    max_samples: int | None = None,
    gravity_noise: tuple[float, ...] = (),
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    """``whmr eval``'s rows for one network: "exact gravity" plus one row per IMU tilt error."""
    from torch.utils.data import DataLoader

    from whmr_core.data.batch import collate
    from whmr_core.data.dataset import HumanDataset
    from whmr_core.evaluation import CropAdapter, evaluate

    ann = Path(annotations)
    ds = HumanDataset(ann, images or ann.parent, crop_res=max(model.crop_hw))
    if max_samples and len(ds) > max_samples:
        ds = torch.utils.data.Subset(ds, range(max_samples))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    rows = {"exact gravity": evaluate(CropAdapter(model), loader)}
    for deg in gravity_noise:
        rows[f"+{deg:g} deg"] = evaluate(CropAdapter(model), loader, gravity_noise_deg=deg)
    return rows


def write_json(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")

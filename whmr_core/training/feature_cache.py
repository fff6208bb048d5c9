"""The frozen backbone's maps of a fixed set of training crops, computed once and read back every epoch.

A frozen backbone (``movenet``: its weights are buffers no stage can train) computes the same maps for the
same crop whatever the stage, so with augmentation fixed per sample the trunk need run only once per
sample. On a 2-core CPU the MoveNet trunk is ~75 % of a training step of ``movenet-cpu`` (0.85 of ~1.1 s
for 16 crops); the heads, the body model and the losses train on the cache several times faster.

The cache holds ``copies`` versions of every training image: copy c is the dataset's crop with the
augmentation of epoch c (drawn from (seed, c, index) as ``HumanDataset`` always draws it), so an epoch
over the cache sees every copy of every image once. Without augmentation every copy would be the same
crop, and ``copies`` must be 1. What the objective reads from each crop (the item's label tensors) is
stored with its maps; the training crops themselves are not (nothing downstream of the backbone reads
them). Maps are stored float16 (MoveNet's weights are stored float16 in its file too) in one ``.npy``
per level, memory-mapped; a ``meta.json`` fingerprint (annotation file, crop size, augmentation, copies,
backbone) decides whether a cache on disk is this run's, or is rebuilt.

The stage rules are untouched: every stage trains what it trains, with its losses, on the same samples;
only the frozen backbone's output comes from the disk (``WHMRNetwork.forward_features``). Validation
runs the whole network on images, as without a cache.

A backbone with a trainable part above a frozen one (``movenet`` with ``backbone.tune_fpn``: the FPN on
MobileNetV2's four maps) caches the frozen part's maps (``backbone.frozen_maps``); each training step runs
the trainable part on them (``backbone.tuned_maps``, ``cached_features``) before ``forward_features``. The
fingerprint names the part cached, so neither cache is mistaken for the other.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core.config_io import ConfigError

__all__ = ["FeatureCache", "build_feature_cache", "cached_features", "check_cacheable"]

log = logging.getLogger(__name__)

_META = "meta.json"
_LABELS = "labels.pt"
MAP_KEY = "backbone_map"  # item keys of the cached maps: backbone_map0 (coarsest), backbone_map1, ...


def check_cacheable(model: torch.nn.Module, *, augment: bool, copies: int, maps: bool, mix: bool) -> None:
    """Refuse a feature cache where it would change what trains or what the network sees: the cached
    (frozen) part of the backbone must have no parameter; only its ``tuned`` part (run every step) may."""
    tuned = getattr(model.backbone, "tuned", None)
    tuned_ids = {id(p) for p in tuned.parameters()} if isinstance(tuned, torch.nn.Module) else set()
    trainable = [n for n, p in model.backbone.named_parameters() if id(p) not in tuned_ids]
    if trainable or (tuned_ids and not hasattr(model.backbone, "frozen_maps")):
        raise ConfigError(
            f"data.feature_cache: the {model.config.backbone.kind} backbone has weights a stage trains "
            f"({(trainable or ['tuned'])[0]}, ...) below what would be cached; only a frozen backbone "
            "(movenet), or its frozen part (movenet with tune_fpn), gives the same maps every step"
        )
    if copies < 1:
        raise ConfigError(f"data.cache_copies: must be >= 1, got {copies}")
    if not augment and copies != 1:
        raise ConfigError(
            f"data.cache_copies: {copies} copies of unaugmented crops would all be the same; use 1 "
            "(or data.augment: true)"
        )
    if maps:
        raise ConfigError("data.feature_cache: IUV/depth map targets are not cached; set data.maps: false")
    if mix:
        raise ConfigError("data.feature_cache: one training set (data.train), not a mix")


def _fingerprint(dataset: Any, model: torch.nn.Module, copies: int) -> dict[str, Any]:
    ann = Path(dataset.ann.path)
    st = ann.stat()
    bb = model.config.backbone
    meta: dict[str, Any] = {
        "annotations": str(ann.resolve()),
        "annotations_size": st.st_size,
        "annotations_mtime_ns": st.st_mtime_ns,
        "images": str(Path(dataset.image_dir).resolve()),
        "samples": len(dataset),
        "crop_res": dataset.crop_res,
        "crop_hw": list(model.crop_hw),
        "augment": None if dataset.augment is None else asdict(dataset.augment),
        "seed": dataset.seed,
        "copies": copies,
        "backbone": {"kind": bb.kind, "keypoint_maps": bb.keypoint_maps},
        "channels": list(getattr(model.backbone, "feature_channels", [])),
    }
    if getattr(bb, "tune_fpn", False):  # the frozen part's maps (the FPN's inputs), not the backbone's
        meta["cached"] = {"part": "movenet-fpn-inputs", "channels": list(model.backbone.frozen_channels)}
    return meta


def _frozen_part(backbone: torch.nn.Module) -> Any:
    """What the cache stores: the backbone's frozen part, or the whole (frozen) backbone."""
    return getattr(backbone, "frozen_maps", backbone)


def cached_features(model: torch.nn.Module, maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """The backbone's output from a cache's maps: its trainable part run on them (``tuned_maps``), or the
    maps themselves (a wholly frozen backbone)."""
    tuned = getattr(model.backbone, "tuned_maps", None)
    return list(maps) if tuned is None else tuned(list(maps))


def build_feature_cache(
    folder: str | Path,
    dataset: Any,
    model: torch.nn.Module,
    *,
    copies: int = 1,
    batch_size: int = 32,
    num_workers: int = 0,
) -> FeatureCache:
    """The cache of ``dataset`` (a ``HumanDataset``) under ``model``'s backbone in ``folder``: read if its
    fingerprint matches, else (re)built and written atomically (a cut-off build leaves no cache)."""
    from tqdm import tqdm

    from whmr_core.data.batch import collate, network_crops

    folder = Path(folder)
    meta = json.loads(json.dumps(_fingerprint(dataset, model, copies)))  # as read back (tuples: lists)
    if (folder / _META).is_file():
        if json.loads((folder / _META).read_text()) == meta:
            log.info("feature cache %s: reused (%d samples x %d copies)", folder, len(dataset), copies)
            return FeatureCache(folder)
        log.info("feature cache %s: made for other data or another backbone, rebuilt", folder)
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = len(dataset)
    backbone = model.backbone
    frozen = _frozen_part(backbone)
    device = next(backbone.buffers()).device
    was_training = backbone.training
    backbone.eval()
    arrays: list[np.lib.format.open_memmap] = []
    labels: dict[str, list[torch.Tensor]] = {}
    bad = 0  # unreadable images replaced by the next readable one (HumanDataset warned of each)
    bar = tqdm(total=n * copies, desc=f"feature cache {folder.name}", dynamic_ncols=True)
    try:
        for c in range(copies):
            dataset.set_epoch(c)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate
            )
            row = c * n
            for raw in loader:
                crops = network_crops(model.crop_hw, raw.pop("img")).to(device)
                with torch.no_grad():
                    maps = [m.float().cpu() for m in frozen(crops)]
                if not arrays:
                    arrays = [
                        np.lib.format.open_memmap(
                            tmp / f"{MAP_KEY}{k}.npy", "w+", np.float16, (n * copies, *m.shape[1:])
                        )
                        for k, m in enumerate(maps)
                    ]
                for a, m in zip(arrays, maps, strict=True):
                    a[row : row + len(crops)] = m.numpy().astype(np.float16)
                bad += int(raw.pop("bad_samples", torch.zeros(1)).sum())
                for k, v in raw.items():
                    if isinstance(v, torch.Tensor):
                        labels.setdefault(k, []).append(v)
                row += len(crops)
                bar.update(len(crops))
    finally:
        bar.close()
        backbone.train(was_training)
        dataset.set_epoch(0)
    for a in arrays:
        a.flush()
    del arrays
    torch.save({k: torch.cat(v) for k, v in labels.items()}, tmp / _LABELS)
    (tmp / _META).write_text(json.dumps(meta, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    log.info(
        "feature cache %s: built (%d samples x %d copies, %d unreadable replaced)", folder, n, copies, bad
    )
    return FeatureCache(folder)


class FeatureCache(torch.utils.data.Dataset):
    """Items as ``HumanDataset``'s with ``backbone_map{k}`` (float32) in place of ``img``; row j is copy
    j // N of image j % N. The memory maps open lazily, so data-loader workers open their own."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta = json.loads((self.folder / _META).read_text())
        self.samples, self.copies = int(meta["samples"]), int(meta["copies"])
        self.labels: dict[str, torch.Tensor] = torch.load(self.folder / _LABELS, weights_only=True)
        self.levels = len(list(self.folder.glob(f"{MAP_KEY}*.npy")))
        self._maps: list[np.ndarray] | None = None
        sizes = {len(v) for v in self.labels.values()}
        if sizes != {len(self)} or self.levels == 0:
            raise ValueError(f"feature cache {self.folder}: labels or maps missing or of the wrong length")

    def __len__(self) -> int:
        return self.samples * self.copies

    def __getstate__(self) -> dict[str, Any]:  # workers reopen the maps rather than receive copies
        return {**self.__dict__, "_maps": None}

    def maps(self) -> list[np.ndarray]:
        if self._maps is None:
            self._maps = [
                np.load(self.folder / f"{MAP_KEY}{k}.npy", mmap_mode="r") for k in range(self.levels)
            ]
        return self._maps

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} cached samples")
        item = {k: v[index] for k, v in self.labels.items()}
        for k, m in enumerate(self.maps()):
            item[f"{MAP_KEY}{k}"] = torch.from_numpy(np.asarray(m[index], dtype=np.float32))
        return item

"""Checkpoints: weights in safetensors, training state beside them, written atomically.

A checkpoint is a directory::

    model.safetensors   weights (fp32, or fp16 for shipping) + metadata: config name, architecture hash
    state.pt            optimizer / scheduler / step / RNG state (plain tensors and containers only,
                        loaded with torch.load(weights_only=True))
    meta.json           human-readable summary (config, stage, step, metrics)

It is written to ``<dir>.tmp`` and renamed over ``<dir>`` only when complete, so a crash mid-write never
leaves a half checkpoint where resuming would look for one. Replacing one takes two renames (``<dir>`` ->
``<dir>.old``, ``<dir>.tmp`` -> ``<dir>``); ``recover_checkpoint`` finishes a save that a crash cut between
them, so a resume continues from the newest complete checkpoint instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "architecture_hash",
    "load_checkpoint",
    "load_torch_file",
    "load_weights",
    "recover_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
INT8_SCALE = "::int8_scale"  # suffix of the per-channel scales of int8-stored weights
STATE = "state.pt"
META = "meta.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or belongs to another architecture."""


ARCHIVE_SLACK_BYTES = 1 << 20  # a torch archive's entries add up to its size, less its zip headers


def load_torch_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` of an untrusted file, its archive's sizes checked first.

    torch stores an archive's entries uncompressed, so they add up to about the file's size; a crafted
    one with deflated entries (a 3.9 MB file declaring 4 GB) made torch inflate all of it before
    ``weights_only`` could refuse what it holds. Raises ValueError naming the file for such an archive;
    whatever ``torch.load`` raises otherwise."""
    path = Path(path)
    size = path.stat().st_size
    if zipfile.is_zipfile(path):  # else torch's legacy format: a pickle that expands to nothing
        try:
            with zipfile.ZipFile(path) as archive:
                declared = sum(entry.file_size for entry in archive.infolist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{path}: not a readable torch archive ({exc})") from exc
        if declared > size + ARCHIVE_SLACK_BYTES:
            raise ValueError(
                f"{path}: its entries expand to {declared / 2**20:,.0f} MB from a {size / 2**20:,.1f} MB "
                "file (a zip bomb?); torch archives store their entries uncompressed"
            )
    return torch.load(path, map_location="cpu", weights_only=True)


def architecture_hash(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hash of parameter names and shapes: equal for models of the same architecture."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        h.update(f"{name}:{tuple(state_dict[name].shape)};".encode())
    return h.hexdigest()[:16]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | Path,
    model_state: Mapping[str, torch.Tensor],
    *,
    config: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    half: bool = False,
    int8: bool | tuple[str, ...] = False,
) -> Path:
    """Write a checkpoint directory atomically. For shipping, ``half`` stores floating weights as fp16 and
    ``int8`` stores large weight matrices (all, or those whose names start with one of the given prefixes)
    as int8 with one fp32 scale per output channel, the rest fp16; loading restores float tensors."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tensors = {}
    for k, v in model_state.items():
        v = v.detach().to("cpu").contiguous()
        quantise = int8 is True or (isinstance(int8, tuple) and k.startswith(int8))
        if quantise and v.is_floating_point() and v.dim() >= 2 and v.numel() >= 4096:
            scale = v.float().abs().flatten(1).amax(1).clamp_min(1e-12) / 127.0
            shape = (-1,) + (1,) * (v.dim() - 1)
            tensors[k] = torch.round(v.float() / scale.view(shape)).clamp(-127, 127).to(torch.int8)
            tensors[k + INT8_SCALE] = scale  # fp32: a few bytes per channel keep the dequantisation exact
            continue
        if (half or int8) and v.is_floating_point():
            v = v.half()
        tensors[k] = v
    st_meta = {
        "architecture": architecture_hash(model_state),
        "config": json.dumps(dict(config or {}), sort_keys=True),
        "format": "whmr-checkpoint-1",
    }
    save_file(tensors, str(tmp / WEIGHTS), metadata=st_meta)
    if train_state is not None:
        torch.save(dict(train_state), tmp / STATE)
    summary = {"architecture": st_meta["architecture"], "config": dict(config or {}), **dict(meta or {})}
    (tmp / META).write_text(json.dumps(summary, indent=2, default=str))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    old = path.with_name(path.name + ".old")
    if path.exists():
        if old.exists():
            shutil.rmtree(old)  # <dir> is complete: the older copy is no longer needed
        path.rename(old)
    # Between these renames only <dir>.old and <dir>.tmp exist (recover_checkpoint); <dir>.old goes only
    # once the new <dir> is in place.
    tmp.rename(path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old)
    return path


def _complete(path: Path) -> dict[str, Any] | None:
    """meta.json of a fully written checkpoint directory (it is written last), else None."""
    try:
        meta = json.loads((path / META).read_text())
        from safetensors import safe_open

        with safe_open(str(path / WEIGHTS), framework="pt"):  # reads and checks the header only
            pass
    except (OSError, ValueError, SafetensorError):
        return None
    return meta if isinstance(meta, dict) else None


def recover_checkpoint(path: str | Path) -> bool:
    """Whether a complete checkpoint is at ``path``, after finishing a save a crash interrupted.

    With ``path`` missing, the newest complete one of ``<dir>.tmp`` (the save in progress) and
    ``<dir>.old`` (the one it replaced) is renamed to ``path``, with a warning naming both."""
    path = Path(path)
    if path.is_dir():
        return True
    for candidate in (path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")):
        meta = _complete(candidate) if candidate.is_dir() else None
        if meta is None:
            continue
        log.warning(
            "checkpoint %s: missing (a save was interrupted between its renames); using %s (step %s)",
            path, candidate, meta.get("step", "?"),
        )  # fmt: skip
        candidate.rename(path)
        _fsync_dir(path.parent)
        old = path.with_name(path.name + ".old")
        if old.is_dir():  # the save is finished now, as save_checkpoint would have
            shutil.rmtree(old)
        return True
    return False


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights and safetensors metadata of a checkpoint directory (or a bare .safetensors file)."""
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        # A crash between the two renames leaves the previous checkpoint at <dir>.old.
        raise CheckpointError(f"{path}: no checkpoint weights found (expected {file})")
    try:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({exc})") from exc
    for key in [k for k in tensors if k.endswith(INT8_SCALE)]:
        base = key[: -len(INT8_SCALE)]
        scale = tensors.pop(key).float()
        q = tensors[base]
        tensors[base] = q.float() * scale.view((-1,) + (1,) * (q.dim() - 1))
    return tensors, metadata


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module | None = None,
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint; with ``model``, copy the weights into it after checking the architecture.

    Returns {"weights", "metadata", "config", "train_state" (or None), "meta"}.
    """
    path = Path(path)
    weights, metadata = load_weights(path)
    config = json.loads(metadata.get("config", "{}"))
    if model is not None:
        own = model.state_dict()
        want, got = architecture_hash(own), metadata.get("architecture")
        if strict and got != want:
            missing = sorted(set(own) - set(weights))[:5]
            unexpected = sorted(set(weights) - set(own))[:5]
            shapes = [k for k in own if k in weights and own[k].shape != weights[k].shape][:5]
            raise CheckpointError(
                f"{path}: checkpoint is for another architecture (config {config.get('name', '?')!r}); "
                f"missing {missing}, unexpected {unexpected}, shape mismatches {shapes}"
            )
        cast = {k: v.to(own[k].dtype) if k in own else v for k, v in weights.items()}
        model.load_state_dict(cast, strict=strict)
    train_state = None
    state_file = path / STATE if path.is_dir() else None
    if state_file is not None and state_file.is_file():
        try:
            train_state = load_torch_file(state_file)
        except Exception as exc:  # corrupt pickle, truncated file, foreign objects
            raise CheckpointError(f"{state_file}: unreadable training state ({exc})") from exc
    meta = {}
    if path.is_dir() and (path / META).is_file():
        meta = json.loads((path / META).read_text())
    return {
        "weights": weights,
        "metadata": metadata,
        "config": config,
        "train_state": train_state,
        "meta": meta,
    }

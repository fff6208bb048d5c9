"""Load a pretrained backbone from a local file (safetensors or a torch checkpoint), never downloading.

Accepted layouts: a bare state_dict, or a dict holding one under ``state_dict``/``model``; keys may carry a
``module.`` (DDP) and/or ``backbone.`` (ViTPose/mmpose) prefix, stripped when that makes them match. Keys of
known heads (``fc.*`` of torchvision classifiers, ``keypoint_head.*`` of ViTPose) are reported as unexpected
and skipped. A file whose matching keys have other shapes, or that shares too few keys with the module, is
refused with a message that says which architecture it looks like.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["LoadReport", "PretrainedMismatchError", "load_pretrained", "read_state_dict"]

log = logging.getLogger(__name__)
_PREFIXES = ("module.", "backbone.", "model.", "encoder.")


class PretrainedMismatchError(ValueError):
    """The weights file does not belong to this architecture."""


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]

    def __str__(self) -> str:
        def short(keys: tuple[str, ...]) -> str:
            return ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")

        return (
            f"loaded {len(self.loaded)} tensors; missing {len(self.missing)} [{short(self.missing)}]; "
            f"unexpected {len(self.unexpected)} [{short(self.unexpected)}]"
        )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch checkpoint (loaded with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights: no file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        data: object = load_file(str(path))
    else:
        from whmr_core.checkpoint import load_torch_file

        data = load_torch_file(path)  # archive sizes checked before torch inflates anything
    for key in ("state_dict", "model", "module"):
        if isinstance(data, Mapping) and key in data and isinstance(data[key], Mapping):
            data = data[key]
    if not isinstance(data, Mapping):
        raise PretrainedMismatchError(f"{path}: holds a {type(data).__name__}, not a state_dict")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _strip(keys: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Strip prefixes greedily while that increases the overlap with the module's keys."""
    out = dict(keys)
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            cand = {(k[len(p) :] if k.startswith(p) else k): v for k, v in out.items()}
            if len(wanted & cand.keys()) > len(wanted & out.keys()):
                out, changed = cand, True
    return out


def _guess_arch(sd: Mapping[str, torch.Tensor]) -> str:
    keys = set(sd)
    if any(k.endswith("layer1.0.conv3.weight") for k in keys):
        return "a bottleneck ResNet (50/101/152)"
    if any(k.endswith("layer1.0.conv2.weight") for k in keys):
        return "a basic-block ResNet (18/34)"
    if any(k.endswith("pos_embed") for k in keys):
        dims = [v.shape[-1] for k, v in sd.items() if k.endswith("pos_embed")]
        return f"a ViT (width {dims[0]})"
    return "an unknown architecture"


def load_pretrained(module: nn.Module, path: str | Path, *, min_fraction: float = 0.5) -> LoadReport:
    """Load the matching tensors of ``path`` into ``module`` and report missing/unexpected keys.

    Raises ``PretrainedMismatchError`` when a shared key has another shape or when fewer than
    ``min_fraction`` of the module's tensors are found in the file (wrong architecture).
    """
    own = module.state_dict()
    sd = _strip(read_state_dict(path), set(own))
    arch = getattr(module, "arch", type(module).__name__)
    bad = [
        f"{k}: file {tuple(v.shape)} vs module {tuple(own[k].shape)}"
        for k, v in sd.items()
        if k in own and v.shape != own[k].shape
    ]
    if bad:
        raise PretrainedMismatchError(
            f"{path}: not a {arch} checkpoint (looks like {_guess_arch(sd)}); shape mismatches: "
            + "; ".join(bad[:5])
        )
    matched = [k for k in own if k in sd]
    if len(matched) < min_fraction * len(own):
        raise PretrainedMismatchError(
            f"{path}: not a {arch} checkpoint (looks like {_guess_arch(sd)}); only {len(matched)} of "
            f"{len(own)} tensors match"
        )
    with torch.no_grad():
        for k in matched:
            own[k].copy_(sd[k])
    report = LoadReport(
        loaded=tuple(matched),
        missing=tuple(k for k in own if k not in sd and not k.endswith("num_batches_tracked")),
        unexpected=tuple(k for k in sd if k not in own),
    )
    log.info("%s <- %s: %s", arch, path, report)
    return report

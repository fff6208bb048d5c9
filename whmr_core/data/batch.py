"""Batching dataset items for the network: stacking, and the network's crop window of a square crop."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["collate", "network_crops"]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors key by key; other values (image names) become lists."""
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def network_crops(crop_hw: tuple[int, int], img: torch.Tensor) -> torch.Tensor:
    """Square dataset crops (N,3,S,S) -> the network's (H,W) window: the middle W columns of a portrait crop
    (the crop convention of whmr_core.crops)."""
    h, w = crop_hw
    if tuple(img.shape[-2:]) == (h, w):
        return img
    side = img.shape[-1]
    if img.shape[-2] != side or max(h, w) != side:
        raise ValueError(
            f"img: expected square {max(h, w)}x{max(h, w)} crops for {h}x{w}, got {tuple(img.shape)}"
        )
    x0 = (side - w) // 2
    y0 = (side - h) // 2
    return img[..., y0 : y0 + h, x0 : x0 + w]

"""The inference graph that is exported: the network's inference path with named, flat outputs.

It holds backbone -> regressors -> depth head -> OrientCorrect (and the mesh), never the training-only
auxiliary heads (DESIGN.md section 8).
"""

from __future__ import annotations

import torch
from torch import nn

from whmr_core.graph_io import OUTPUT_NAMES

__all__ = ["InferenceGraph"]


class InferenceGraph(nn.Module):
    """forward(crops, glob_info, cam_rotation) -> tuple of tensors in ``OUTPUT_NAMES`` order."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.crop_hw: tuple[int, int] = tuple(model.crop_hw)  # type: ignore[assignment]

    def forward(
        self, crops: torch.Tensor, glob_info: torch.Tensor, cam_rotation: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(crops, glob_info, cam_rotation, return_aux=False)
        return tuple(getattr(out, name) for name in OUTPUT_NAMES)

"""Depth/focal head on Phi_3 (DESIGN.md section 3): t_z = 10 * sigmoid(BN(.)) metres.

The focal length then follows from eq. 3 (``whmr_core.geometry.focal_from_depth``) in the network.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DepthHead"]


class DepthHead(nn.Module):
    """(Phi_3 (N,C,h,w), glob_info (N,5)) -> t_z (N,), in (0, max_depth)."""

    def __init__(self, channels: int, hidden: int, max_depth: float = 10.0) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.mlp = nn.Sequential(nn.Linear(channels + 5, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        self.bn = nn.BatchNorm1d(1)

    def forward(self, phi3: torch.Tensor, glob_info: torch.Tensor) -> torch.Tensor:
        pooled = phi3.mean(dim=(2, 3))
        return self.max_depth * torch.sigmoid(self.bn(self.mlp(torch.cat([pooled, glob_info], dim=1))))[:, 0]

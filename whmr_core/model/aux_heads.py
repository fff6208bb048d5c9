"""Auxiliary dense heads on Phi_3, for training only (kept out of the exported inference graph).

IUV (DensePose-style, as PyMAF): part-index logits over ``num_parts + 1`` classes (0 = background) and
per-class U and V maps in [0, 1]; and an inverse-depth map (positive).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AuxHeads"]


def _head(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, cout, 1),
    )


class AuxHeads(nn.Module):
    def __init__(self, channels: int, hidden: int, num_parts: int) -> None:
        super().__init__()
        self.num_classes = num_parts + 1
        self.iuv = _head(channels, hidden, 3 * self.num_classes)
        self.depth = _head(channels, hidden, 1)

    def forward(self, phi3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> part logits (N,K,h,w), U (N,K,h,w), V (N,K,h,w), inverse depth (N,1,h,w)."""
        k = self.num_classes
        iuv = self.iuv(phi3)
        inv_depth = nn.functional.softplus(self.depth(phi3))
        return iuv[:, :k], torch.sigmoid(iuv[:, k : 2 * k]), torch.sigmoid(iuv[:, 2 * k :]), inv_depth

"""PyMAF-like feature pyramid and pixel-aligned point features (paper eq. 13).

Three deconvolution blocks turn the backbone map into Phi_1, Phi_2, Phi_3 (2x, 4x, 8x its resolution).
Iteration 0 samples a fixed grid on Phi_1; later iterations sample the previous mesh's projected points.
Sampled features go through a small per-point MLP and are concatenated into one vector.

Crop geometry. The weak-perspective camera lives in the *square* person box: x = s (X_xy + t) in [-1, 1]
spans the box side b. A non-square network crop (H, W) is the centre of that square resized to
S = max(H, W) pixels, so crop-normalised coordinates are x * S / W and y * S / H. (The released W-HMR
code samples x unscaled on the 256x192 ViT map, which misplaces every point horizontally.) Normalised
coordinates follow ``grid_sample(align_corners=False)``: -1 and +1 are the outer pixel edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeaturePyramid", "PointFeatureMLP", "box_to_crop_coords", "fixed_grid", "sample_points"]


def box_to_crop_coords(points: torch.Tensor, crop_hw: tuple[int, int]) -> torch.Tensor:
    """Square-box coordinates (..., 2) in [-1, 1] -> normalised coordinates of the (H, W) crop."""
    h, w = crop_hw
    side = max(h, w)
    scale = points.new_tensor([side / w, side / h])
    return points * scale


def fixed_grid(grid_hw: tuple[int, int]) -> torch.Tensor:
    """(G,2) crop-normalised (x, y) cell centres of a rows x cols grid over the whole map (x fastest)."""
    rows, cols = grid_hw
    ys = (torch.arange(rows, dtype=torch.float32) + 0.5) / rows * 2 - 1
    xs = (torch.arange(cols, dtype=torch.float32) + 0.5) / cols * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def sample_points(feature: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear features (N,C,P) of map (N,C,h,w) at crop-normalised points (N,P,2); zeros outside."""
    grid = points.unsqueeze(2)  # (N,P,1,2)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=False).squeeze(
        -1
    )


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FeaturePyramid(nn.Module):
    """Backbone map (N,C,h,w) -> [Phi_1 (2h,2w), Phi_2 (4h,4w), Phi_3 (8h,8w)], ``channels`` each."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_deconv(in_channels, channels), _deconv(channels, channels)])
        self.blocks.append(_deconv(channels, channels))
        self.channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for blk in self.blocks:
            x = blk(x)
            maps.append(x)
        return maps


class PointFeatureMLP(nn.Module):
    """Shared per-point reduction of sampled features (PyMAF), flattened: (N,C,P) -> (N,P*d)."""

    def __init__(self, in_channels: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, d in enumerate(dims):
            layers.append(nn.Linear(cin, d))  # shared over points (a 1x1 convolution)
            if i < len(dims) - 1:
                layers.append(nn.LeakyReLU(0.01, inplace=True))
            cin = d
        self.net = nn.Sequential(*layers)
        self.out_per_point = dims[-1]

    def forward(self, sampled: torch.Tensor) -> torch.Tensor:
        return self.net(sampled.transpose(1, 2)).flatten(1)

"""PyMAF-like feature pyramid and pixel-aligned point features (paper eq. 13).

Three deconvolution blocks turn the backbone map into Phi_1, Phi_2, Phi_3 (2x, 4x, 8x its resolution).
Iteration 0 samples a fixed grid on Phi_1; later iterations sample the previous mesh's projected points.
Sampled features go through a small per-point MLP and are concatenated into one vector.

Crop geometry. The weak-perspective camera lives in the *square* person box: x = s (X_xy + t) in [-1, 1]
spans the box side b. A non-square network crop (H, W) is the centre of that square resized to
S = max(H, W) pixels, so crop-normalised coordinates are x * S / W and y * S / H. (The released W-HMR
code samples x unscaled on the 256x192 ViT map, which misplaces every point horizontally.) Normalised
coordinates follow ``grid_sample(align_corners=False)``: -1 and +1 are the outer pixel edges.

``pyramid.sampling: release`` reproduces the released code instead (``release_grid``,
``release_project``, ``align_corners=True``) so its weights run as trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "RELEASE_BOX_PIXELS",
    "RELEASE_FOCAL",
    "FeaturePyramid",
    "MultiScalePyramid",
    "PointFeatureMLP",
    "box_to_crop_coords",
    "fixed_grid",
    "release_grid",
    "release_project",
    "sample_points",
]

RELEASE_FOCAL = 1000.0  # the release's crop-camera focal length (pixels of its 256-pixel box)
RELEASE_BOX_PIXELS = 256.0  # side of the release's square box crop


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


def release_grid(grid_hw: tuple[int, int]) -> torch.Tensor:
    """(G,2) (x, y) of the release's first grid: linspace(-1, 1) with the edges, x-major (y fastest)."""
    rows, cols = grid_hw
    gx, gy = torch.meshgrid(torch.linspace(-1, 1, cols), torch.linspace(-1, 1, rows), indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def release_project(points: torch.Tensor, cam_crop: torch.Tensor) -> torch.Tensor:
    """The release's sampling projection (N,P,3) -> (N,P,2): a pinhole of focal RELEASE_FOCAL at depth
    2 f / (256 s) behind (t_x, t_y), divided by 128 for both axes (no rescale for non-square maps)."""
    s, tx, ty = cam_crop.unbind(-1)
    tz = 2 * RELEASE_FOCAL / (RELEASE_BOX_PIXELS * s + 1e-9)
    t = torch.stack([tx, ty, tz], dim=-1).unsqueeze(1)
    p = points + t
    return RELEASE_FOCAL * p[..., :2] / p[..., 2:] / (RELEASE_BOX_PIXELS / 2)


def sample_points(feature: torch.Tensor, points: torch.Tensor, align_corners: bool = False) -> torch.Tensor:
    """Bilinear features (N,C,P) of map (N,C,h,w) at crop-normalised points (N,P,2); zeros outside."""
    grid = points.unsqueeze(2)  # (N,P,1,2)
    return F.grid_sample(
        feature, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners
    ).squeeze(-1)


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


class MultiScalePyramid(nn.Module):
    """A multi-scale backbone's maps [stride 16, 8, 4] (coarse to fine) -> [Phi_1, Phi_2, Phi_3].

    The same resolutions as ``FeaturePyramid`` on a stride-32 map, but each stage also sees the backbone's
    map at its own scale (a 1x1 lateral convolution, as an FPN): Phi_1 = ReLU(BN(lat_1(m_16))),
    Phi_k = ReLU(BN(deconv(Phi_{k-1}) + lat_k(m_k))). With a frozen pose-pretrained backbone (MoveNet's
    FPN outputs) this is where the network adapts its features.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int) -> None:
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"MultiScalePyramid: expected 3 backbone maps, got {len(in_channels)}")
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1, bias=False) for c in in_channels)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False) for _ in range(2)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(3))
        self.channels = channels

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        x = F.relu(self.norms[0](self.laterals[0](maps[0])))
        out = [x]
        for k in (1, 2):
            x = F.relu(self.norms[k](self.ups[k - 1](x) + self.laterals[k](maps[k])))
            out.append(x)
        return out


class PointFeatureMLP(nn.Module):
    """Shared per-point reduction of sampled features, flattened point-major: (N,C,P) -> (N,P*d).

    ``kind="pifu"`` (PyMAF, the release): layer i > 0 sees [previous output, raw sampled features],
    LeakyReLU(0.01) between layers and a final ReLU. ``kind="plain"``: LeakyReLU between layers, linear
    output. Layers are linear maps shared over points (1x1 convolutions).
    """

    def __init__(self, in_channels: int, dims: tuple[int, ...], kind: str = "pifu") -> None:
        super().__init__()
        self.kind = kind
        self.out_per_point = dims[-1]
        if kind == "plain":
            layers: list[nn.Module] = []
            cin = in_channels
            for i, d in enumerate(dims):
                layers.append(nn.Linear(cin, d))
                if i < len(dims) - 1:
                    layers.append(nn.LeakyReLU(0.01, inplace=True))
                cin = d
            self.net = nn.Sequential(*layers)
        elif kind == "pifu":
            ins = [in_channels] + [d + in_channels for d in dims[:-1]]
            self.layers = nn.ModuleList(nn.Linear(i, d) for i, d in zip(ins, dims, strict=True))
        else:
            raise ValueError(f"point MLP kind: expected 'pifu' or 'plain', got {kind!r}")

    def forward(self, sampled: torch.Tensor) -> torch.Tensor:
        x = sampled.transpose(1, 2)  # (N,P,C)
        if self.kind == "plain":
            return self.net(x).flatten(1)
        y = x
        for i, layer in enumerate(self.layers):
            y = layer(y if i == 0 else torch.cat([y, x], dim=-1))
            if i < len(self.layers) - 1:
                y = F.leaky_relu(y, 0.01)
        return F.relu(y).flatten(1)

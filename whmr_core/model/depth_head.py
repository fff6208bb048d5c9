"""Depth/focal head on Phi_3 (DESIGN.md section 3): t_z = 10 * sigmoid(BN(.)) metres.

The focal length then follows from eq. 3 (``whmr_core.geometry.focal_from_depth``) in the network.
The linear layer right before the BatchNorm has no bias: BN subtracts the batch mean in training, so such
a bias gets exactly zero gradient; ``fold_dead_bias`` moves one stored by older checkpoints (or the
release) into the running mean, which is exact in eval mode.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import torch
from torch import nn

from whmr_core.model.backbones.vit import Block

__all__ = ["DepthHead", "ReleaseDepthHead", "fold_dead_bias"]


def fold_dead_bias(state: MutableMapping[str, torch.Tensor], bias_key: str, bn_prefix: str) -> bool:
    """Remove ``bias_key`` from ``state`` and fold it into ``{bn_prefix}running_mean``:
    BN(x + b) = BN'(x) with running_mean' = running_mean - b. Returns whether a bias was folded."""
    bias = state.pop(bias_key, None)
    if bias is None:
        return False
    key = f"{bn_prefix}running_mean"
    if key not in state:
        raise KeyError(f"{bias_key}: no {key} to fold the bias into")
    state[key] = state[key] - bias.to(state[key].dtype)
    return True


class DepthHead(nn.Module):
    """(Phi_3 (N,C,h,w), glob_info (N,5)) -> t_z (N,), in (0, max_depth)."""

    def __init__(self, channels: int, hidden: int, max_depth: float = 10.0) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.mlp = nn.Sequential(
            nn.Linear(channels + 5, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1, bias=False)
        )
        self.bn = nn.BatchNorm1d(1)
        self._register_load_state_dict_pre_hook(self._fold_old_bias)

    @staticmethod
    def _fold_old_bias(state, prefix, *_args) -> None:
        fold_dead_bias(state, f"{prefix}mlp.2.bias", f"{prefix}bn.")

    def forward(self, phi3: torch.Tensor, glob_info: torch.Tensor) -> torch.Tensor:
        pooled = phi3.mean(dim=(2, 3))
        return self.max_depth * torch.sigmoid(self.bn(self.mlp(torch.cat([pooled, glob_info], dim=1))))[:, 0]


class ReleaseDepthHead(nn.Module):
    """The release's head: Phi_3 -> Conv(C->hidden, k7, s3) -> Conv(hidden->5, k7, s2) (no biases) -> a
    transformer block over the 5 channel maps as tokens (timm 0.4.9: 2 heads, no qkv bias, eps 1e-5) ->
    mean over the 5 tokens -> FC(D, D/18) -> FC(., 1, no bias) -> BN -> max_depth * sigmoid. D is the
    flattened map size (18 x 12 = 216 for a 128x96 Phi_3). It does not see the glob info."""

    def __init__(self, channels: int, hidden: int, map_hw: tuple[int, int], max_depth: float = 10.0) -> None:
        super().__init__()
        self.max_depth = max_depth
        self.conv = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=7, stride=3, bias=False),
            nn.Conv2d(hidden, 5, kernel_size=7, stride=2, bias=False),
        )
        h, w = map_hw
        h, w = (h - 7) // 3 + 1, (w - 7) // 3 + 1
        h, w = (h - 7) // 2 + 1, (w - 7) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError(
                f"release depth head: Phi_3 of {map_hw} is too small for its two k7 convolutions"
            )
        dim = h * w
        self.block = Block(dim, heads=2, mlp_ratio=4.0, drop_path=0.0, qkv_bias=False, eps=1e-5)
        width = max(dim // 18, 1)  # 216 -> 12 as the release
        self.fc = nn.Sequential(nn.Linear(dim, width), nn.Linear(width, 1, bias=False))
        self.bn = nn.BatchNorm1d(1)

    def forward(self, phi3: torch.Tensor, glob_info: torch.Tensor) -> torch.Tensor:
        x = self.conv(phi3).flatten(2)  # (N,5,D)
        x = self.block(x).mean(dim=1)  # AvgPool1d(5) over the channel tokens
        return self.max_depth * torch.sigmoid(self.bn(self.fc(x)))[:, 0]

"""ViT-B/16 backbone with ViTPose-B's state_dict layout (256x192 input, 16x12 patch map).

Matches the ``backbone.*`` keys of the ViTPose checkpoints (also used by 4D-Humans): ``patch_embed.proj``
(a 16x16 stride-16 convolution with padding 2), ``pos_embed`` (1, 1 + h*w, C) whose first entry is a
class-token slot that is added to every patch, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``
and ``last_norm``. Output is the patch map (N, 768, H/16, W/16).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["VisionTransformer", "vit_base_patch16"]


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        # ViTPose pads by 2 (ratio 1); with H, W multiples of 16 the map is still (H/16, W/16).
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block. ViTPose: qkv bias, LayerNorm eps 1e-6; timm 0.4.9's default Block (the
    release's depth head): ``qkv_bias=False, eps=1e-5``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        drop_path: float,
        qkv_bias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Plain ViT on a fixed (H, W) crop: (N,3,H,W) -> (N, dim, H/16, W/16)."""

    def __init__(
        self,
        crop_hw: tuple[int, int] = (256, 192),
        patch: int = 16,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        arch: str = "vitb16",
    ) -> None:
        super().__init__()
        self.arch = arch
        self.grid_hw = (crop_hw[0] // patch, crop_hw[1] // patch)
        self.patch_embed = PatchEmbed(patch, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_hw[0] * self.grid_hw[1], dim))
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, r) for r in rates)
        self.last_norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_channels = dim
        self.stride = patch
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        fan_in = self.patch_embed.proj.in_channels * patch * patch
        nn.init.uniform_(self.patch_embed.proj.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.patch_embed(x)
        n, c, h, w = feat.shape
        tokens = feat.flatten(2).transpose(1, 2)
        tokens = tokens + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks:
            tokens = blk(tokens)
        tokens = self.last_norm(tokens)
        return tokens.transpose(1, 2).reshape(n, c, h, w)


def vit_base_patch16(crop_hw: tuple[int, int] = (256, 192), drop_path: float = 0.0) -> VisionTransformer:
    return VisionTransformer(crop_hw=crop_hw, drop_path=drop_path)

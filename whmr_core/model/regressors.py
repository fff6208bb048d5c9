"""Regressors of the hybrid "2 param + 1 vertex" scheme (paper eq. 14 and Table 8).

``ParamRegressor``: one iteration Theta_{t+1} = Theta_t + R_t([phi_t, glob_info, Theta_t]) with pose in the
6D rotation representation or as 3x3 matrices (``regressor.rotation``). ``VertexRegressor``: a transformer
over the sparse vertices (one token per vertex: template position + previous position + sampled feature;
plus a global token) that regresses 3D vertex positions. ``LearnedUpsampler``: two linear layers sparse ->
intermediate -> full mesh, initialised from the body model's upsampling matrices and trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from whmr_core.model.backbones.vit import Block
from whmr_core.model.config import RegressorConfig, VertexRegressorConfig

__all__ = ["LearnedUpsampler", "ParamRegressor", "Params", "VertexRegressor"]


@dataclass
class Params:
    """Regressed body and crop-camera parameters: pose (N,J,6) in 6D or (N,J,9) as row-major 3x3 matrices,
    betas (N,B), cam_crop (N,3) = (s,tx,ty)."""

    pose: torch.Tensor
    betas: torch.Tensor
    cam_crop: torch.Tensor

    def flat(self) -> torch.Tensor:
        return torch.cat([self.pose.flatten(1), self.betas, self.cam_crop], dim=1)

    def detach(self) -> Params:
        return Params(self.pose.detach(), self.betas.detach(), self.cam_crop.detach())


class ParamRegressor(nn.Module):
    """Eq. 14: residual update of (pose6d, betas, cam) from point features, 5-D glob info and Theta_t."""

    def __init__(self, feat_dim: int, num_joints: int, num_betas: int, cfg: RegressorConfig) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.pose_dim = 9 if cfg.rotation == "matrix" else 6
        self.feature_norm = nn.BatchNorm1d(feat_dim) if cfg.feature_norm else nn.Identity()
        in_dim = feat_dim + 5 + num_joints * self.pose_dim + num_betas + 3
        relu = cfg.activation == "relu"
        self.trunk = nn.Sequential(
            nn.Linear(in_dim, cfg.hidden),
            *([nn.ReLU(inplace=True)] if relu else []),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.hidden),
            *([nn.ReLU(inplace=True)] if relu else []),
            nn.Dropout(cfg.dropout),
        )
        self.dec_pose = nn.Linear(cfg.hidden, num_joints * self.pose_dim)
        self.dec_betas = nn.Linear(cfg.hidden, num_betas)
        self.dec_cam = nn.Linear(cfg.hidden, 3)
        for dec in (self.dec_pose, self.dec_betas, self.dec_cam):
            nn.init.xavier_uniform_(dec.weight, gain=cfg.init_gain)  # small: starts at the mean (PyMAF)
            nn.init.zeros_(dec.bias)

    def forward(self, feat: torch.Tensor, glob_info: torch.Tensor, prev: Params) -> Params:
        x = self.trunk(torch.cat([self.feature_norm(feat), glob_info, prev.flat()], dim=1))
        return Params(
            pose=prev.pose + self.dec_pose(x).reshape(-1, self.num_joints, self.pose_dim),
            betas=prev.betas + self.dec_betas(x),
            cam_crop=prev.cam_crop + self.dec_cam(x),
        )


class VertexRegressor(nn.Module):
    """Transformer over sparse-vertex tokens -> sparse vertex positions (N,S,3), camera-oriented metres."""

    def __init__(
        self,
        in_channels: int,
        sparse_template: torch.Tensor,
        cfg: VertexRegressorConfig,
        points_dim: int = 0,
    ) -> None:
        """``points_dim``: size of phi_3^s, the global token's input with ``global_token: points``."""
        super().__init__()
        d = cfg.dim
        self.direct = cfg.head == "direct"
        self.token_from_points = cfg.global_token == "points"
        self.register_buffer("template", sparse_template.detach().float().clone(), persistent=False)
        self.feat_embed = nn.Linear(in_channels, d)
        self.template_embed = nn.Linear(3, d)
        self.position_embed = nn.Linear(3, d)
        if self.token_from_points:
            if points_dim <= 0:
                raise ValueError("VertexRegressor: global_token 'points' needs points_dim (size of phi_3^s)")
            self.global_embed = nn.Linear(points_dim, d)
        else:
            self.global_embed = nn.Linear(5 + 3, d)  # glob info + crop camera
            self.global_token = nn.Parameter(torch.zeros(1, 1, d))
            nn.init.trunc_normal_(self.global_token, std=0.02)
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.mlp_ratio, cfg.drop_path) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, 3)
        if not self.direct:  # a residual head starts at the previous mesh
            nn.init.xavier_uniform_(self.head.weight, gain=0.01)
            nn.init.zeros_(self.head.bias)

    def forward(
        self,
        sampled: torch.Tensor,
        prev_sparse: torch.Tensor,
        glob_info: torch.Tensor,
        cam_crop: torch.Tensor,
        points_feat: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sampled (N,C,S): features at the sparse vertices; prev_sparse (N,S,3): previous sparse mesh;
        points_feat (N,D): phi_3^s (needed with ``global_token: points``)."""
        tokens = self.feat_embed(sampled.transpose(1, 2)) + self.position_embed(prev_sparse)
        tokens = tokens + self.template_embed(self.template)
        if self.token_from_points:
            if points_feat is None:
                raise ValueError("VertexRegressor: global_token 'points' needs points_feat (phi_3^s)")
            glob = self.global_embed(points_feat).unsqueeze(1)
        else:
            glob = self.global_token + self.global_embed(torch.cat([glob_info, cam_crop], dim=1)).unsqueeze(1)
        x = torch.cat([glob, tokens], dim=1)
        for blk in self.blocks:
            x = blk(x)
        out = self.head(self.norm(x[:, 1:]))
        # "direct": the positions themselves; "residual": a correction of the previous sparse mesh.
        return out if self.direct else prev_sparse + out


class LearnedUpsampler(nn.Module):
    """(N,S,3) -> (N,V1,3) -> (N,V,3); weights start as ``up_intermediate`` (V1,S), ``up_full`` (V,V1)."""

    def __init__(self, up_intermediate: torch.Tensor, up_full: torch.Tensor) -> None:
        super().__init__()
        if up_full.shape[1] != up_intermediate.shape[0]:
            raise ValueError(
                f"body assets: up_full {tuple(up_full.shape)} does not follow up_intermediate "
                f"{tuple(up_intermediate.shape)}"
            )
        self.to_intermediate = nn.Parameter(up_intermediate.detach().float().clone())
        self.to_full = nn.Parameter(up_full.detach().float().clone())

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        return self.to_full @ (self.to_intermediate @ sparse)

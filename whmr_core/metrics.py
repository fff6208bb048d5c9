"""Evaluation metrics (pure functions, millimetres where noted): MPJPE, PA-MPJPE, PVE, W-MPJPE, W-PVE,
root-orientation error and relative focal-length error.

Camera-frame metrics are root-aligned as in the paper; world-frame metrics (SPEC) are computed on
world-frame bodies, aligned at the root by translation only, so the world orientation error counts.
"""

from __future__ import annotations

import torch

__all__ = [
    "mpjpe",
    "pa_mpjpe",
    "procrustes_align",
    "pve",
    "relative_focal_error",
    "rotation_angle_deg",
    "w_mpjpe",
    "w_pve",
]


def _root_align(x: torch.Tensor, root: int | tuple[int, ...] | None) -> torch.Tensor:
    if root is None:
        return x
    idx = [root] if isinstance(root, int) else list(root)
    return x - x[:, idx].mean(dim=1, keepdim=True)


def mpjpe(pred: torch.Tensor, target: torch.Tensor, root: int | tuple[int, ...] | None = 0) -> torch.Tensor:
    """Mean per-joint position error per sample after aligning the root joints, (N,J,3) -> (N,)."""
    return (_root_align(pred, root) - _root_align(target, root)).norm(dim=-1).mean(-1)


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity transform (scale, rotation, translation) of ``pred`` that best fits ``target`` in the
    least-squares sense (Umeyama 1991), (N,J,3) -> (N,J,3). Reflections are excluded."""
    mu_p, mu_t = pred.mean(1, keepdim=True), target.mean(1, keepdim=True)
    p, t = pred - mu_p, target - mu_t
    cov = p.transpose(1, 2) @ t  # (N,3,3) sum of p_i t_i^T
    u, s, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(vh.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.ones_like(s)
    fix[:, -1] = d
    rot = vh.transpose(1, 2) @ torch.diag_embed(fix) @ u.transpose(1, 2)  # maps p to t
    scale = (s * fix).sum(-1) / p.square().sum((1, 2))
    return scale[:, None, None] * p @ rot.transpose(1, 2) + mu_t


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after Procrustes alignment, (N,J,3) -> (N,)."""
    return (procrustes_align(pred, target) - target).norm(dim=-1).mean(-1)


def pve(
    pred_vertices: torch.Tensor,
    target_vertices: torch.Tensor,
    pred_root: torch.Tensor | None = None,
    target_root: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-vertex error, (N,V,3) -> (N,). Without roots the meshes are compared as they are (the paper's
    PVE on untranslated body-model meshes); with roots (N,3) both are first aligned at them."""
    p = pred_vertices if pred_root is None else pred_vertices - pred_root[:, None]
    t = target_vertices if target_root is None else target_vertices - target_root[:, None]
    return (p - t).norm(dim=-1).mean(-1)


def w_mpjpe(
    pred_world: torch.Tensor, target_world: torch.Tensor, root: int | tuple[int, ...] = 0
) -> torch.Tensor:
    """World-frame MPJPE (SPEC): joints in the gravity frame, root aligned by translation only."""
    return mpjpe(pred_world, target_world, root)


def w_pve(
    pred_world: torch.Tensor, target_world: torch.Tensor, pred_root: torch.Tensor, target_root: torch.Tensor
) -> torch.Tensor:
    """World-frame PVE (SPEC): vertices in the gravity frame, aligned at the root joint by translation."""
    return pve(pred_world, target_world, pred_root, target_root)


def rotation_angle_deg(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between rotation matrices in degrees, (N,3,3) -> (N,)."""
    rel = pred.transpose(-1, -2) @ target
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def relative_focal_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """|f_pred - f_true| / f_true per sample, (N,) -> (N,)."""
    return (pred - target).abs() / target

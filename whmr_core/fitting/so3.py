"""Rotation helpers for the fit, written for tiny tensors: Rodrigues' exp, its right Jacobian, 3x3 products.

Products are broadcast multiply-and-sum, never matrix products: tensors stay below ATen's parallel grain,
so no op waits on a thread pool (on a busy 2-core machine a 3x3 batched matmul through the BLAS pool took
milliseconds). The fit evaluates these dozens of times per frame.
"""

from __future__ import annotations

import torch

__all__ = ["LEVI_CIVITA", "cross_matrix", "exp", "matmul3", "matvec", "right_jacobian"]

# Levi-Civita symbol: the cross-product matrix of v is -(LEVI_CIVITA * v).sum(-1).
LEVI_CIVITA = torch.zeros(3, 3, 3, dtype=torch.float64)
for _i, _j, _k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
    LEVI_CIVITA[_i, _j, _k], LEVI_CIVITA[_i, _k, _j] = 1.0, -1.0

SERIES_BELOW = 1e-3  # rad: (t - sin t) / t^3 by its Taylor series below this angle (cancellation)


def cross_matrix(v: torch.Tensor) -> torch.Tensor:
    """(...,3) -> (...,3,3) [v]x, with [v]x u = v x u."""
    return -(LEVI_CIVITA.to(v) * v[..., None, None, :]).sum(-1)


def exp(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues (...,3) -> (...,3,3): R = I + sinc(t) [v]x + (1 - cos t)/t^2 ([v]x^2 = v v^T - t^2 I).

    Written with torch.sinc (smooth through t = 0, where a fit starts) in a handful of ops.
    """
    theta2 = (rotvec * rotvec).sum(-1)[..., None, None]
    theta = torch.sqrt(theta2 + 1e-12)
    a = torch.sinc(theta / torch.pi)  # sin(t) / t
    b = 0.5 * torch.sinc(theta / (2 * torch.pi)) ** 2  # (1 - cos t) / t^2
    outer = rotvec[..., :, None] * rotvec[..., None, :]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye * (1 - b * theta2) + a * cross_matrix(rotvec) + b * outer


def right_jacobian(rotvec: torch.Tensor) -> torch.Tensor:
    """(...,3) -> (...,3,3) J_r with exp(v + dv) = exp(v) exp(J_r(v) dv) to first order.

    J_r = I - (1 - cos t)/t^2 [v]x + (t - sin t)/t^3 [v]x^2; the left Jacobian is its transpose.
    """
    theta2 = (rotvec * rotvec).sum(-1)[..., None, None]
    theta = torch.sqrt(theta2)
    b = 0.5 * torch.sinc(theta / (2 * torch.pi)) ** 2  # (1 - cos t) / t^2
    small = theta < SERIES_BELOW
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    c = torch.where(small, 1.0 / 6.0 - theta2 / 120.0, (1.0 - torch.sinc(theta / torch.pi)) / safe2)
    vx = cross_matrix(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    vx2 = rotvec[..., :, None] * rotvec[..., None, :] - theta2 * eye
    return eye - b * vx + c * vx2


def matmul3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(...,3,3) @ (...,3,3) as multiply-and-sum."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(...,3,3) @ (...,3) -> (...,3) as multiply-and-sum."""
    return (a * v.unsqueeze(-2)).sum(-1)

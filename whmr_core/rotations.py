"""Rotation representations as pure functions on batched tensors (any leading dims).

Conventions: rotation matrices act on column vectors; quaternions are (w, x, y, z) with w >= 0 on output,
except where a name says ``xyzw``: ROS order, used by every API that exchanges quaternions with ROS data
(``matrix_to_quaternion_xyzw`` is the one conversion to it); axis-angle is the rotation vector
(angle * unit axis); the 6D representation (Zhou et al. 2019) is the first two columns of the matrix laid
out as ``R[..., :, :2].reshape(..., 6)``, the layout SPIN/PyMAF mean-parameter files use.

Everything here is written with elementwise ops and explicit cross products so it exports to ONNX.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from whmr_core._checks import check_tensor

__all__ = [
    "axis_angle_to_matrix",
    "cross",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_quaternion_xyzw",
    "matrix_to_rot6d",
    "orthonormalise",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
    "unbiased_gram_schmidt",
]


def cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product over the last dim, spelled out (ONNX has no Cross op)."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def _normalise(v: torch.Tensor, eps: float) -> torch.Tensor:
    return v / torch.sqrt((v * v).sum(-1, keepdim=True)).clamp_min(eps)


def _gram_schmidt(a1: torch.Tensor, a2: torch.Tensor, eps: float) -> torch.Tensor:
    b1 = _normalise(a1, eps)
    b2 = _normalise(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, eps)
    b3 = cross(b1, b2)
    return torch.stack([b1, b2, b3], dim=-1)


def rot6d_to_matrix(rot6d: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two stored columns."""
    check_tensor("rot6d", rot6d, (6,), finite=False)
    m = rot6d.reshape(*rot6d.shape[:-1], 3, 2)
    return _gram_schmidt(m[..., 0], m[..., 1], eps)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    check_tensor("matrix", matrix, (3, 3), finite=False)
    return matrix[..., :, :2].reshape(*matrix.shape[:-2], 6)


def orthonormalise(matrix: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Nearest-ish rotation to a (..., 3, 3) matrix by Gram-Schmidt on its first two columns."""
    check_tensor("matrix", matrix, (3, 3), finite=False)
    return _gram_schmidt(matrix[..., :, 0], matrix[..., :, 1], eps)


def unbiased_gram_schmidt(matrix: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rotation from a (..., 3, 3) matrix by the symmetric ("unbiased") Gram-Schmidt of the W-HMR release:
    r1 = n((t2 x t3 + t1) / 2), r2 = n(u - (u . r1) r1) with u = (t3 x r1 + t2) / 2, r3 = r1 x r2
    (t_i the columns, n normalisation). Unlike ``orthonormalise`` all three columns count."""
    check_tensor("matrix", matrix, (3, 3), finite=False)
    t1, t2, t3 = matrix[..., :, 0], matrix[..., :, 1], matrix[..., :, 2]
    r1 = _normalise((cross(t2, t3) + t1) / 2, eps)
    u = (cross(t3, r1) + t2) / 2
    r2 = _normalise(u - (u * r1).sum(-1, keepdim=True) * r1, eps)
    return torch.stack([r1, r2, cross(r1, r2)], dim=-1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3); exact near zero through a Taylor branch."""
    check_tensor("axis_angle", axis_angle, (3,), finite=False)
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2.clamp_min(1e-30))
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos(t))/t^2 with their series where t is tiny (keeps gradients finite at 0).
    safe_t = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1 - theta2 / 6, torch.sin(safe_t) / safe_t)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(safe_t)) / (safe_t * safe_t))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z) quaternion (any norm > 0) -> rotation matrix, (..., 4) -> (..., 3, 3)."""
    check_tensor("quaternion", quaternion, (4,), finite=False)
    q = _normalise(quaternion, 1e-12)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> unit (w, x, y, z) quaternion with w >= 0, (..., 3, 3) -> (..., 4).

    Uses the best-conditioned of the four candidate formulas per element (Shepperd's method).
    """
    check_tensor("matrix", matrix, (3, 3), finite=False)
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z.
    q_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    q_abs = torch.sqrt(q_sq.clamp_min(1e-12))
    r21_12 = m[..., 2, 1] - m[..., 1, 2]
    r02_20 = m[..., 0, 2] - m[..., 2, 0]
    r10_01 = m[..., 1, 0] - m[..., 0, 1]
    r10p01 = m[..., 1, 0] + m[..., 0, 1]
    r02p20 = m[..., 0, 2] + m[..., 2, 0]
    r21p12 = m[..., 2, 1] + m[..., 1, 2]
    # Row i: 4 q_i * (w, x, y, z); divide by 4 q_i = 2 |q_i| -> candidate i.
    cands = torch.stack(
        [
            torch.stack([q_sq[..., 0], r21_12, r02_20, r10_01], dim=-1),
            torch.stack([r21_12, q_sq[..., 1], r10p01, r02p20], dim=-1),
            torch.stack([r02_20, r10p01, q_sq[..., 2], r21p12], dim=-1),
            torch.stack([r10_01, r02p20, r21p12, q_sq[..., 3]], dim=-1),
        ],
        dim=-2,
    ) / (2 * q_abs[..., :, None])
    best = q_abs.argmax(dim=-1, keepdim=True)
    q = torch.gather(cands, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = _normalise(q, 1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_quaternion_xyzw(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4), ROS order (x, y, z, w), w >= 0, float64.

    ``matrix_to_quaternion``'s method in numpy: hosts call it a few times per body per frame on single
    matrices, where torch's per-op overhead cost ~0.3 ms a call (2 ms on a loaded 2-core machine)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix: expected shape (..., 3, 3), got {m.shape}")
    if m.shape == (3, 3):
        return _one_matrix_to_quaternion_xyzw(m.tolist())
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    q_sq = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    q_abs = np.sqrt(np.maximum(q_sq, 1e-12))
    r21_12, r02_20, r10_01 = (
        m[..., 2, 1] - m[..., 1, 2],
        m[..., 0, 2] - m[..., 2, 0],
        m[..., 1, 0] - m[..., 0, 1],
    )
    r10p01, r02p20, r21p12 = (
        m[..., 1, 0] + m[..., 0, 1],
        m[..., 0, 2] + m[..., 2, 0],
        m[..., 2, 1] + m[..., 1, 2],
    )
    cands = np.stack(
        [
            np.stack([q_sq[..., 0], r21_12, r02_20, r10_01], -1),
            np.stack([r21_12, q_sq[..., 1], r10p01, r02p20], -1),
            np.stack([r02_20, r10p01, q_sq[..., 2], r21p12], -1),
            np.stack([r10_01, r02p20, r21p12, q_sq[..., 3]], -1),
        ],
        -2,
    ) / (2 * q_abs[..., :, None])
    best = q_abs.argmax(-1)[..., None, None]
    q = np.take_along_axis(cands, np.broadcast_to(best, (*best.shape[:-1], 4)), -2)[..., 0, :]
    q = q / np.maximum(np.sqrt((q * q).sum(-1, keepdims=True)), 1e-12)
    q = np.where(q[..., :1] < 0, -q, q)
    return np.concatenate([q[..., 1:], q[..., :1]], -1)


def _one_matrix_to_quaternion_xyzw(m: list[list[float]]) -> np.ndarray:
    """``matrix_to_quaternion_xyzw`` of one matrix in Python floats (~30x faster than numpy on 3x3)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m
    q_sq = (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22)
    q_abs = [math.sqrt(max(v, 1e-12)) for v in q_sq]
    best = q_abs.index(max(q_abs))
    r21_12, r02_20, r10_01 = m21 - m12, m02 - m20, m10 - m01
    r10p01, r02p20, r21p12 = m10 + m01, m02 + m20, m21 + m12
    row = (
        (q_sq[0], r21_12, r02_20, r10_01),
        (r21_12, q_sq[1], r10p01, r02p20),
        (r02_20, r10p01, q_sq[2], r21p12),
        (r10_01, r02p20, r21p12, q_sq[3]),
    )[best]
    q = [v / (2 * q_abs[best]) for v in row]
    n = max(math.sqrt(sum(v * v for v in q)), 1e-12)
    sign = -1.0 if q[0] < 0 else 1.0
    w, x, y, z = (sign * v / n for v in q)
    return np.array([x, y, z, w])


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix -> rotation vector with angle in [0, pi], (..., 3, 3) -> (..., 3)."""
    q = matrix_to_quaternion(matrix)
    w, xyz = q[..., :1], q[..., 1:]
    # Clamped inside the sqrt so the gradient stays finite at the identity.
    sin_half = torch.sqrt((xyz * xyz).sum(-1, keepdim=True).clamp_min(1e-30))
    angle = 2 * torch.atan2(sin_half, w)
    small = sin_half < 1e-6
    # angle / sin(angle/2) -> 2 + angle^2 / 12 near zero.
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    factor = torch.where(small, 2 + angle * angle / 12, angle / safe)
    return xyz * factor

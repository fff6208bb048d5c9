"""The body model inside the network: linear blend skinning over an ``smplx`` model's buffers.

The math is smplx's (``smplx.lbs``: shape blend shapes, pose correctives, joint regression, skinning),
re-written around a Python-int kinematic tree so the graph exports with both ONNX exporters (FACTS:
the dynamo exporter fails on ``transform_chain[parents[i]]`` with tensor parents). Sizes (vertices,
sparse vertices, markers) are read from the loaded model and its assets, never hard-coded.
"""

from __future__ import annotations

from typing import Any

import torch
from smplx.lbs import blend_shapes, vertices2joints
from torch import nn

__all__ = ["BodyLayer", "mean_rotmats"]


def mean_rotmats(num_joints: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mean pose (J,3,3): root turned 180 degrees about x (upright, facing the camera in the optical frame
    x right / y down / z forward), every other joint at the body model's rest pose."""
    rot = torch.eye(3, dtype=dtype).repeat(num_joints, 1, 1)
    rot[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=dtype))
    return rot


class BodyLayer(nn.Module):
    """(rotmats (N,J,3,3), betas (N,B)) -> vertices (N,V,3), model-frame joints (N,J,3); no translation."""

    def __init__(self, model: Any, assets: Any) -> None:
        super().__init__()
        parents = [int(p) for p in model.parents.tolist()]
        if parents[0] >= 0 or any(not 0 <= p < i for i, p in enumerate(parents[1:], start=1)):
            raise ValueError(f"body model: kinematic tree must be topologically ordered, got {parents}")
        self.parents = parents
        self.num_joints = len(parents)
        f32 = torch.float32
        self.register_buffer("v_template", model.v_template.detach().to(f32).clone(), persistent=False)
        self.register_buffer("shapedirs", model.shapedirs.detach().to(f32).clone(), persistent=False)
        self.register_buffer("posedirs", model.posedirs.detach().to(f32).clone(), persistent=False)
        self.register_buffer("j_regressor", model.J_regressor.detach().to(f32).clone(), persistent=False)
        self.register_buffer("lbs_weights", model.lbs_weights.detach().to(f32).clone(), persistent=False)
        self.num_betas = int(self.shapedirs.shape[-1])
        self.num_vertices = int(self.v_template.shape[0])
        if tuple(assets.template.shape) != (self.num_vertices, 3):
            raise ValueError(
                f"body assets: template has shape {tuple(assets.template.shape)}, "
                f"the model has {self.num_vertices} vertices"
            )

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = rotmats.shape[0]
        v_shaped = self.v_template + blend_shapes(betas, self.shapedirs)
        rest_joints = vertices2joints(self.j_regressor, v_shaped)  # (N,J,3)
        eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        pose_feature = (rotmats[:, 1:] - eye).reshape(n, -1)
        v_posed = v_shaped + (pose_feature @ self.posedirs).reshape(n, -1, 3)
        # Forward kinematics with Python-int parents: global rotation and position of every joint.
        rots = [rotmats[:, 0]]
        pos = [rest_joints[:, 0]]
        for i in range(1, self.num_joints):
            p = self.parents[i]
            rots.append(rots[p] @ rotmats[:, i])
            offset = (rest_joints[:, i] - rest_joints[:, p]).unsqueeze(-1)
            pos.append(pos[p] + (rots[p] @ offset).squeeze(-1))
        g_rot = torch.stack(rots, dim=1)  # (N,J,3,3)
        g_pos = torch.stack(pos, dim=1)  # (N,J,3)
        # Skinning: v = sum_j w_j (R_j (v - J_j^rest) + J_j^posed), blended as 3x4 matrices.
        g_trans = g_pos - (g_rot @ rest_joints.unsqueeze(-1)).squeeze(-1)
        mats = torch.cat([g_rot, g_trans.unsqueeze(-1)], dim=-1).reshape(n, self.num_joints, 12)
        blended = (self.lbs_weights @ mats).reshape(n, -1, 3, 4)
        verts = (blended[..., :3] @ v_posed.unsqueeze(-1)).squeeze(-1) + blended[..., 3]
        return verts, g_pos

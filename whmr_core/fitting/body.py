"""``KeypointBody``: the body model cut down to what the fit needs, the COCO-17 points of a posed body.

The points are the network's (``whmr_core.body.regressors.coco_regressor``): the 12 limb points are the
model's joint regressor applied to the posed mesh, the 5 face points surface landmark vertices
(``whmr_core.body.landmarks``). The joint regressor is sparse (about a dozen vertices per joint), so only
those vertices and the landmarks are posed, by linear blend skinning with their shape blend shapes and pose
correctives: one forward pass is a few dozen small tensor ops whatever the mesh size. The products are
written as broadcast multiply-and-sum over the few non-zero weights, never as matrix products: tensors stay
below ATen's parallel grain, so no op waits on a thread pool (on a busy 2-core machine a 3x3 batched
matmul through the BLAS pool took milliseconds). (The regressed limb
points are not the skeleton's joints: on a bent knee or elbow the skinned mesh moves them by 2-7 cm, and
the Pipeline reports the regressed ones, so the fit matches those.)

The frame is the network's (``whmr_core.model.body_layer.BodyLayer``): the root rotation turns the body
about its rest pelvis J_0(betas), and a camera-frame point is the model point plus the translation t_b.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from whmr_core.body.keypoints import COCO17_FACE_LANDMARKS, COCO17_NAMES, COCO17_SMPL_JOINT
from whmr_core.body.landmarks import smplx_vertex_ids

__all__ = ["KeypointBody", "matmul3", "matvec"]


class KeypointBody(nn.Module):
    """(rotmats (N,J,3,3) local, betas (N,B)) -> COCO-17 points (N,17,3), model frame (add t_b to place).

    ``model`` is an ``smplx.SMPL``-like module (``whmr_core.body.load_body_model``): v_template, shapedirs,
    posedirs, J_regressor, lbs_weights, parents.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        f32 = torch.float32

        def arr(name: str) -> np.ndarray:
            return np.asarray(getattr(model, name).detach().cpu().numpy(), dtype=np.float64)

        v_template, shapedirs, weights = arr("v_template"), arr("shapedirs"), arr("lbs_weights")
        j_regressor, posedirs = arr("J_regressor"), arr("posedirs")
        parents = [int(p) for p in np.asarray(model.parents.cpu()).tolist()]
        self.num_joints = len(parents)
        self.num_betas = int(shapedirs.shape[-1])
        landmarks = smplx_vertex_ids(v_template, weights, j_regressor)
        face_ids = [landmarks[COCO17_FACE_LANDMARKS[k]] for k in sorted(COCO17_FACE_LANDMARKS)]
        self.limb_coco = [k for k in range(len(COCO17_NAMES)) if k in COCO17_SMPL_JOINT]
        self.face_coco = sorted(COCO17_FACE_LANDMARKS)
        limb_reg = j_regressor[[COCO17_SMPL_JOINT[k] for k in self.limb_coco]]  # (12,V)
        # Vertices to pose: the face landmarks, then those the limb rows of the regressor read.
        reg_ids = np.flatnonzero(np.abs(limb_reg).max(0) > 0)
        vert_ids = np.concatenate([face_ids, reg_ids])
        w = weights[vert_ids]  # (Vs,J)
        # Joints to pose: those skinning these vertices and all their ancestors.
        needed: set[int] = set(np.flatnonzero(np.abs(w).max(0) > 0).tolist()) | {0}
        for j in list(needed):
            while parents[j] >= 0:
                j = parents[j]
                needed.add(j)
        depth = [0] * self.num_joints
        for j in range(1, self.num_joints):
            depth[j] = depth[parents[j]] + 1
        order = sorted(needed, key=lambda j: (depth[j], j))  # level by level; parents come first
        pos_of = {j: i for i, j in enumerate(order)}
        self.order = order  # joint ids in posing order
        # Per tree level after the root: how many joints are posed there, their parents' places in order.
        self.levels: list[tuple[int, list[int]]] = []
        for d in range(1, max(depth[j] for j in order) + 1):
            js = [j for j in order if depth[j] == d]
            self.levels.append((len(js), [pos_of[parents[j]] for j in js]))

        def buf(name: str, a: np.ndarray, dtype: torch.dtype = f32) -> None:
            # Contiguous copies: a strided buffer sends small matmuls down a path 100x slower.
            self.register_buffer(name, torch.tensor(np.ascontiguousarray(a), dtype=dtype), persistent=False)

        buf("order_idx", np.asarray(order), torch.long)
        buf("parent_pos", np.asarray([pos_of[parents[j]] if j else 0 for j in order]), torch.long)
        # Rest joints J(beta) = J_t + S_J beta, for the posed joints only.
        j_t = j_regressor @ v_template  # (J,3)
        s_j = np.einsum("jv,vcb->jcb", j_regressor, shapedirs)  # (J,3,B)
        buf("joints_template", j_t[order])
        buf("joints_shapedirs", s_j[order])
        # Posed vertices: rest position, shape directions, pose correctives, skinning weights over ``order``.
        buf("vert_template", v_template[vert_ids])
        buf("vert_shapedirs", shapedirs[vert_ids])
        cols = (vert_ids[:, None] * 3 + np.arange(3)).reshape(-1)
        vert_posedirs = posedirs[:, cols]  # (9*(J-1), 3*Vs)
        self.has_correctives = bool(np.abs(vert_posedirs).max() > 0)
        buf("vert_posedirs", vert_posedirs)
        # Skinning and regression as (index, weight) lists over the few non-zero entries, zero-padded.
        w = w[:, order]
        nz = max(int((w != 0).sum(1).max()), 1)
        sk_idx = np.argsort(-np.abs(w), axis=1, kind="stable")[:, :nz]
        buf("skin_idx", sk_idx, torch.long)
        buf("skin_w", np.take_along_axis(w, sk_idx, 1)[..., None])  # (Vs,nz,1)
        reg = limb_reg[:, reg_ids]  # (12, Vr) over the posed regressor vertices
        nr = int((reg != 0).sum(1).max())
        rg_idx = np.argsort(-np.abs(reg), axis=1, kind="stable")[:, :nr]
        buf("reg_idx", rg_idx + len(face_ids), torch.long)  # into the posed vertices (face ones first)
        buf("reg_w", np.take_along_axis(reg, rg_idx, 1)[..., None])  # (12,nr,1)
        self.num_face = len(face_ids)
        buf("coco_perm", np.argsort(self.face_coco + self.limb_coco), torch.long)

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        n = rotmats.shape[0]
        rest = self.joints_template + (self.joints_shapedirs * betas[:, None, None]).sum(-1)  # (N,Jn,3)
        local = rotmats[:, self.order_idx]  # (N,Jn,3,3)
        offsets = rest - rest[:, self.parent_pos]  # (N,Jn,3); the root's is unused
        g_rot = local[:, :1]
        g_pos = rest[:, :1]
        start = 1
        for count, par in self.levels:
            stop = start + count
            pr = g_rot[:, par]
            g_pos = torch.cat([g_pos, g_pos[:, par] + matvec(pr, offsets[:, start:stop])], 1)
            g_rot = torch.cat([g_rot, matmul3(pr, local[:, start:stop])], 1)
            start = stop
        # Skinning: v = sum_j w_j (R_j (v_rest - J_j) + p_j), v_rest with shape and pose correctives.
        v = self.vert_template + (self.vert_shapedirs * betas[:, None, None]).sum(-1)
        if self.has_correctives:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            feat = (rotmats[:, 1:] - eye).reshape(n, -1)
            v = v + (feat @ self.vert_posedirs).reshape(n, -1, 3)
        trans = g_pos - matvec(g_rot, rest)  # (N,Jn,3)
        mats = torch.cat([g_rot, trans.unsqueeze(-1)], -1).reshape(n, -1, 12)
        blend = (mats[:, self.skin_idx] * self.skin_w).sum(2).reshape(n, -1, 3, 4)  # (N,Vs,3,4)
        posed = matvec(blend[..., :3], v) + blend[..., 3]  # (N,Vs,3)
        limbs = (posed[:, self.reg_idx] * self.reg_w).sum(2)  # (N,12,3)
        return torch.cat([posed[:, : self.num_face], limbs], 1)[:, self.coco_perm]


def matmul3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(...,3,3) @ (...,3,3) as multiply-and-sum (module docstring: no thread pool for tiny products)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(...,3,3) @ (...,3) -> (...,3) as multiply-and-sum."""
    return (a * v.unsqueeze(-2)).sum(-1)

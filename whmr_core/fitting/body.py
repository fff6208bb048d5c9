"""``KeypointBody``: the body model cut down to what the fit needs, the COCO-17 points of a posed body.

The points are the network's (``whmr_core.body.regressors.coco_regressor``): the 12 limb points are the
model's joint regressor applied to the posed mesh, the 5 face points surface landmark vertices
(``whmr_core.body.landmarks``). (The regressed limb points are not the skeleton's joints: on a bent knee
or elbow the skinned mesh moves them by 2-7 cm; the Pipeline reports the regressed ones, so the fit
matches those.)

Each point is a fixed linear combination of skinned vertices, and skinning is linear in the joints'
transforms, so each point is a sum over the few joints that skin its vertices (at most 8 here):

    x_k = sum_j [ G_j (B_kj(beta) + D_kj f(R) - a_kj J_j(beta)) + a_kj p_j ]

with (G_j, p_j) joint j's posed rotation and position (forward kinematics), J_j(beta) its rest position,
a_kj = sum_v r_kv w_vj (r the point's row over vertices, w the skinning weights), B_kj(beta) = sum_v
r_kv w_vj v_v(beta) (linear in beta), D_kj the same over the pose correctives of the pose feature f(R).
Exact (the tests compare with the network's regressor on the full mesh) and a few dozen small tensor ops
whatever the mesh size. Products are written as broadcast multiply-and-sum, never matrix products: tensors
stay below ATen's parallel grain, so no op waits on a thread pool (on a busy 2-core machine a 3x3 batched
matmul through the BLAS pool took milliseconds), and gathers use ``index_select`` (advanced indexing of a
(4,24,3,4) tensor took 27 us on one thread and 430 us on two).

The frame is the network's (``whmr_core.model.body_layer.BodyLayer``): the root rotation turns the body
about its rest pelvis J_0(beta), and a camera-frame point is the model point plus the translation t_b.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from whmr_core.body.keypoints import COCO17_FACE_LANDMARKS, COCO17_NAMES, COCO17_SMPL_JOINT
from whmr_core.body.landmarks import smplx_vertex_ids

__all__ = ["PARALLEL_GRAIN", "KeypointBody", "matmul3", "matvec", "row_chunks"]

PARALLEL_GRAIN = 32768  # ATen splits an elementwise op over threads from this many elements (GRAIN_SIZE)


class KeypointBody(nn.Module):
    """(rotmats (N,J,3,3) local, betas (N,B)) -> COCO-17 points (N,17,3), model frame (add t_b to place).

    ``model`` is an ``smplx.SMPL``-like module (``whmr_core.body.load_body_model``): v_template, shapedirs,
    posedirs, J_regressor, lbs_weights, parents.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()

        def arr(name: str) -> np.ndarray:
            return np.asarray(getattr(model, name).detach().cpu().numpy(), dtype=np.float64)

        v_template, shapedirs, weights = arr("v_template"), arr("shapedirs"), arr("lbs_weights")
        j_regressor, posedirs = arr("J_regressor"), arr("posedirs")
        parents = [int(p) for p in np.asarray(model.parents.cpu()).tolist()]
        self.num_joints = nj = len(parents)
        self.num_betas = int(shapedirs.shape[-1])
        nv = v_template.shape[0]
        # Each COCO point as a row over the mesh vertices: landmark one-hots and joint regressor rows.
        landmarks = smplx_vertex_ids(v_template, weights, j_regressor)
        rows = np.zeros((len(COCO17_NAMES), nv))
        for k in range(len(COCO17_NAMES)):
            if k in COCO17_FACE_LANDMARKS:
                rows[k, landmarks[COCO17_FACE_LANDMARKS[k]]] = 1.0
            else:
                rows[k] = j_regressor[COCO17_SMPL_JOINT[k]]
        used = np.flatnonzero(np.abs(rows).max(0) > 0)
        rows = rows[:, used]
        w = weights[used]  # (Vu,J)
        a = rows @ w  # (17,J)
        support = np.abs(rows)[:, :, None] * (np.abs(w)[None] > 0)  # (17,Vu,J): vertex v of point k uses j
        touches = support.max(1) > 0  # (17,J)
        b_t = np.einsum("kv,vj,vc->kjc", rows, w, v_template[used])  # (17,J,3)
        b_s = np.einsum("kv,vj,vcb->kjcb", rows, w, shapedirs[used])  # (17,J,3,B)
        pd = posedirs.reshape(posedirs.shape[0], nv, 3)[:, used]  # (F,Vu,3)
        d = np.einsum("kv,vj,fvc->kjcf", rows, w, pd)  # (17,J,3,F)
        self.has_correctives = bool(np.abs(d).max() > 0)

        # Joints to pose: those any point touches, and all their ancestors.
        needed = set(np.flatnonzero(touches.any(0)).tolist()) | {0}
        for j in list(needed):
            while parents[j] >= 0:
                j = parents[j]
                needed.add(j)
        depth = [0] * nj
        for j in range(1, nj):
            depth[j] = depth[parents[j]] + 1
        order = sorted(needed, key=lambda j: (depth[j], j))  # level by level; parents come first
        pos_of = {j: i for i, j in enumerate(order)}
        self.order = order  # joint ids in posing order
        if order[0] != 0:
            raise ValueError("body model: joint 0 must be the root")
        # Per tree level after the root: how many joints are posed there, their parents' places in order.
        self.levels: list[tuple[int, torch.Tensor]] = []
        for lv in range(1, max(depth[j] for j in order) + 1):
            js = [j for j in order if depth[j] == lv]
            self.levels.append((len(js), torch.tensor([pos_of[parents[j]] for j in js])))
        # Per point, the joints it touches (padded with zero-weight repeats of its first one).
        width = int(touches.sum(1).max())
        sel = np.zeros((len(COCO17_NAMES), width), dtype=np.int64)
        valid = np.zeros((len(COCO17_NAMES), width), dtype=bool)
        for k in range(len(COCO17_NAMES)):
            js = np.flatnonzero(touches[k])
            sel[k, : len(js)], sel[k, len(js) :], valid[k, : len(js)] = js, js[0], True
        mask = valid[..., None]
        # moves[j, k]: turning joint j moves point k (j is an ancestor of, or one of, the joints it touches).
        moves = np.zeros((nj, len(COCO17_NAMES)), dtype=bool)
        for k in range(len(COCO17_NAMES)):
            for j in np.flatnonzero(touches[k]):
                while j >= 0:
                    moves[j, k] = True
                    j = parents[j]
        self.register_buffer("moves", torch.tensor(moves), persistent=False)
        # How far each point moves per unit of each beta, at rest (the fit's preconditioner; posing
        # barely changes it). Points are linear in beta: x_k(e_b) - x_k(0) over the rest mesh.
        rest_rows = rows @ shapedirs[used].transpose(2, 0, 1)  # (B,17,3)
        buf_np = np.linalg.norm(rest_rows, axis=-1)  # (B,17) metres
        self.register_buffer("beta_motion", torch.tensor(buf_np, dtype=torch.float32), persistent=False)

        def buf(name: str, x: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            # Contiguous copies: a strided buffer sends small products down a slow path.
            self.register_buffer(name, torch.tensor(np.ascontiguousarray(x), dtype=dtype), persistent=False)

        buf("order_idx", np.asarray(order), torch.long)
        buf("bottom_row", np.array([[[[0.0, 0.0, 0.0, 1.0]]]]))
        buf("parent_pos", np.asarray([pos_of[parents[j]] if j else 0 for j in order]), torch.long)
        # Rest joints J(beta) = J_t + S_J beta, for the posed joints only.
        buf("joints_template", (j_regressor @ v_template)[order])
        buf("joints_shapedirs", np.einsum("jv,vcb->jcb", j_regressor, shapedirs)[order])
        take = np.take_along_axis
        buf("point_joint", np.vectorize(pos_of.get)(sel), torch.long)  # (17,S) places in ``order``
        buf("point_joint_flat", np.vectorize(pos_of.get)(sel).reshape(-1), torch.long)
        buf("point_a", take(a, sel, 1)[..., None] * mask)  # (17,S,1)
        buf("point_b", take(b_t, sel[..., None], 1) * mask)  # (17,S,3)
        buf("point_bs", take(b_s, sel[..., None, None], 1) * mask[..., None])  # (17,S,3,B)
        if self.has_correctives:
            buf("point_d", take(d, sel[..., None, None], 1) * mask[..., None])  # (17,S,3,F)

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        return self.posed(rotmats, betas)[0]

    def posed(self, rotmats: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(points (N,17,3), joints (N,J,3)): the points and the posed joints (NaN for joints no point
        needs), model frame."""
        n = rotmats.shape[0]
        rest = self.joints_template + (self.joints_shapedirs * betas[:, None, None]).sum(-1)  # (N,Jn,3)
        # Forward kinematics on 3x4 transforms [G | p]: child = parent @ [[R_local, offset], [0 0 0 1]],
        # one product per tree level.
        offsets = rest - rest.index_select(1, self.parent_pos)  # (N,Jn,3); the root's is unused
        local = torch.cat([rotmats.index_select(1, self.order_idx), offsets.unsqueeze(-1)], -1)  # (N,Jn,3,4)
        bottom = self.bottom_row.expand(n, local.shape[1], 1, 4)
        local4 = torch.cat([local, bottom], -2)  # (N,Jn,4,4)
        root = torch.cat([rotmats[:, :1], rest[:, :1, :, None]], -1)  # (N,1,3,4)
        g = root
        start = 1
        for count, par in self.levels:
            stop = start + count
            parent = g.index_select(1, par).unsqueeze(-1)
            g = torch.cat([g, (parent * local4[:, start:stop].unsqueeze(-3)).sum(-2)], 1)
            start = stop
        # x_k = sum_j [G_j | p_j] (B_kj + D_kj f - a_kj J_j ; a_kj) over the joints point k touches.
        bs = self.point_bs
        c = self.point_b + torch.cat(  # (N,17,S,3); the (N,17,S,3,B) product in thread-free chunks
            [(bs * betas[rows, None, None, None]).sum(-1) for rows in row_chunks(n, bs.numel())]
        )
        if self.has_correctives:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            feat = (rotmats[:, 1:] - eye).reshape(n, 1, 1, 1, -1)
            c = c + (self.point_d * feat).sum(-1)
        shape = self.point_joint.shape
        rest_k = rest.index_select(1, self.point_joint_flat).reshape(n, *shape, 3)
        c4 = torch.cat([c - self.point_a * rest_k, self.point_a.expand(n, -1, -1, -1)], -1)
        g_k = g.index_select(1, self.point_joint_flat).reshape(n, *shape, 3, 4)
        points = (g_k * c4.unsqueeze(-2)).sum((-1, 2))
        joints = torch.full((n, self.num_joints, 3), float("nan"), dtype=points.dtype, device=points.device)
        joints[:, self.order_idx] = g[..., 3]
        return points, joints


def row_chunks(n: int, per_row: int) -> list[slice]:
    """Slices of ``n`` rows, each small enough (rows x per_row elements) to stay below PARALLEL_GRAIN."""
    step = max(1, (PARALLEL_GRAIN - 1) // max(per_row, 1))
    return [slice(i, i + step) for i in range(0, n, step)] or [slice(0, 0)]


def matmul3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(...,3,3) @ (...,3,3) as multiply-and-sum (module docstring: no thread pool for tiny products)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)


def matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(...,3,3) @ (...,3) -> (...,3) as multiply-and-sum."""
    return (a * v.unsqueeze(-2)).sum(-1)

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

from whmr_core.body.keypoints import COCO17_NAMES
from whmr_core.body.landmarks import smplx_vertex_ids
from whmr_core.body.regressors import coco_regressor
from whmr_core.body.skeleton import SMPL_JOINT_NAMES
from whmr_core.fitting.so3 import cross_matrix

__all__ = ["NUM_POINTS", "PARALLEL_GRAIN", "KeypointBody", "row_chunks"]

NUM_POINTS = len(COCO17_NAMES)
PARALLEL_GRAIN = 32768  # ATen splits an elementwise op over threads from this many elements (GRAIN_SIZE)


class KeypointBody(nn.Module):
    """(rotmats (N,J,3,3) local, betas (N,B)) -> COCO-17 points (N,17,3), model frame (add t_b to place).

    ``model`` is an ``smplx.SMPL``-like module (``whmr_core.body.load_body_model``): v_template, shapedirs,
    posedirs, J_regressor, lbs_weights, parents. ``hip_lift``: the hips raised by that many times the pelvis
    joint's height over the hip joints' midpoint (``POSE_MODEL_HIP_LIFT``: where 2D pose models put them); 0
    gives the body's own COCO points (the network's ``coco_regressor``).
    """

    def __init__(self, model: Any, hip_lift: float = 0.0) -> None:
        super().__init__()

        def arr(name: str) -> np.ndarray:
            return np.asarray(getattr(model, name).detach().cpu().numpy(), dtype=np.float64)

        v_template, shapedirs, weights = arr("v_template"), arr("shapedirs"), arr("lbs_weights")
        j_regressor, posedirs = arr("J_regressor"), arr("posedirs")
        parents = [int(p) for p in np.asarray(model.parents.cpu()).tolist()]
        self.num_joints = nj = len(parents)
        self.num_betas = int(shapedirs.shape[-1])
        nv = v_template.shape[0]
        # Each COCO point as a row over the mesh vertices (the network's coco_regressor), the hips lifted.
        landmarks = smplx_vertex_ids(v_template, weights, j_regressor)
        rows = coco_regressor(j_regressor, landmarks)
        pelvis, left_hip, right_hip = (SMPL_JOINT_NAMES.index(n) for n in ("pelvis", "left_hip", "right_hip"))
        lift = hip_lift * (j_regressor[pelvis] - 0.5 * (j_regressor[left_hip] + j_regressor[right_hip]))
        for name in ("left_hip", "right_hip"):
            rows[COCO17_NAMES.index(name)] += lift
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
        # below[k, s, i]: the joint at place i of ``order`` is the joint that skins component s of point k
        # or one of its ancestors (turning it moves that component); padded components never count.
        below = np.zeros((len(COCO17_NAMES), width, len(order)))
        for k in range(len(COCO17_NAMES)):
            for s_, j in enumerate(sel[k]):
                while valid[k, s_] and j >= 0:
                    below[k, s_, pos_of[j]] = 1.0
                    j = parents[j]

        def buf(name: str, x: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            # Contiguous copies: a strided buffer sends small products down a slow path.
            self.register_buffer(name, torch.tensor(np.ascontiguousarray(x), dtype=dtype), persistent=False)

        buf("point_below", below)
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
        buf("point_weight_below", np.einsum("ks,ksj->kj", take(a, sel, 1) * valid, below))  # (17,Jn)
        # Per component, its rest offset's shape directions less the skinning joint's: (17,S,3,B).
        s_jk = np.einsum("jv,vcb->jcb", j_regressor, shapedirs)[sel]
        shape_local = take(b_s, sel[..., None, None], 1) - take(a, sel, 1)[..., None, None] * s_jk
        buf("point_shape_local", shape_local * mask[..., None])
        if self.has_correctives:
            buf("point_d", take(d, sel[..., None, None], 1) * mask[..., None])  # (17,S,3,F)

    def forward(self, rotmats: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        return self.posed(rotmats, betas)[0]

    def posed(self, rotmats: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(points (N,17,3), joints (N,J,3)): the points and the posed joints (NaN for joints no point
        needs), model frame."""
        _, g, _, parts = self._parts(rotmats, betas)
        points = parts.sum(2)
        joints = torch.full(
            (rotmats.shape[0], self.num_joints, 3), float("nan"), dtype=points.dtype, device=points.device
        )
        joints[:, self.order_idx] = g[..., 3]
        return points, joints

    def linearised(
        self, rotmats: torch.Tensor, betas: torch.Tensor, turn_maps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(points (N,17,3), d_rot (N,17,3,J,3), d_betas (N,17,3,B)): the points and their derivatives.

        d_rot[:, k, :, j, c] is point k's motion per unit of u_c when joint j's local rotation turns as
        R_j -> R_j exp(M_j u), M = ``turn_maps`` (N,J,3,3) (the identity: plain local turns); zero for joints
        no point needs. d_betas[:, k, :, b] per unit of beta_b. Model frame.

        Turning joint j about its posed position p_j with world axis w moves each skinned component y
        (weight a) of the points below it by w x (y - a p_j); the pose correctives add their own change,
        turned by the skinning joint's frame. Betas move the rest points and, through the rest joints,
        every posed joint position (forward kinematics of the offsets' derivatives). Large products run in
        chunks of persons below ATen's parallel grain (module docstring).
        """
        n = rotmats.shape[0]
        _, g, _, parts = self._parts(rotmats, betas)
        points = parts.sum(2)
        frames, positions = g[..., :3], g[..., 3]  # (N,Jn,3,3), (N,Jn,3)
        below = self.point_below[None, ..., None]  # (1,17,S,Jn,1)
        above = torch.cat(  # (N,17,Jn,3): the sum of the components below each joint
            [(parts[r].unsqueeze(-2) * below).sum(2) for r in row_chunks(n, below.numel() * 3)]
        )
        lever = above - self.point_weight_below[None, ..., None] * positions[:, None]
        # World axis of u_c at joint j: column c of its posed frame times M_j.
        maps = turn_maps.index_select(1, self.order_idx)
        axes = (frames.unsqueeze(-1) * maps.unsqueeze(-3)).sum(-2).transpose(-1, -2)  # (N,Jn,3c,3)
        d = torch.linalg.cross(axes[:, None], lever.unsqueeze(-2))  # (N,17,Jn,3c,3)
        d_rot = torch.zeros(n, NUM_POINTS, 3, self.num_joints, 3, dtype=points.dtype, device=points.device)
        d_rot.index_copy_(3, self.order_idx, d.permute(0, 1, 4, 2, 3))
        frame_k = g.index_select(1, self.point_joint_flat).reshape(n, *self.point_joint.shape, 3, 4)[..., :3]
        if self.has_correctives:
            d_rot[:, :, :, 1:] += self._corrective_motion(rotmats, turn_maps, frame_k)
        # Betas: rest joints J(beta) = J_t + S_J beta; posed positions by forward kinematics of S_J.
        s_j = self.joints_shapedirs  # (Jn,3,B)
        d_pos = s_j[:1].expand(n, 1, 3, self.num_betas)
        start = 1
        for count, par in self.levels:
            stop = start + count
            offsets = s_j[start:stop] - s_j.index_select(0, par)  # (count,3,B)
            turned = (frames.index_select(1, par).unsqueeze(-1) * offsets[None, :, None]).sum(-2)
            d_pos = torch.cat([d_pos, d_pos.index_select(1, par) + turned], 1)
            start = stop
        shape = self.point_joint.shape
        local = self.point_shape_local  # (17,S,3,B)
        d_betas = sum(frame_k[..., p, None] * local[None, :, :, p, None] for p in range(3))  # (N,17,S,3,B)
        d_betas = d_betas + self.point_a[..., None] * d_pos.index_select(1, self.point_joint_flat).reshape(
            n, *shape, 3, -1
        )
        return points, d_rot, d_betas.sum(2)

    def _corrective_motion(
        self, rotmats: torch.Tensor, turn_maps: torch.Tensor, frame_k: torch.Tensor
    ) -> torch.Tensor:
        """(N,17,3,J-1,3): the points' motion through the pose correctives per unit of each body joint's u.

        f = vec(R_i - I), dR_i / du_c = R_i [M_i e_c]x. In numpy: these products are per-joint matrix
        products that torch would hand to MKL's thread pool (module docstring), OpenBLAS keeps them on the
        calling thread at this size.
        """
        n = rotmats.shape[0]
        skews = cross_matrix(turn_maps[:, 1:].transpose(-1, -2))  # (N,J-1,3c,3,3): [M_i e_c]x
        d_r = (rotmats[:, 1:, None, :, :, None] * skews[:, :, :, None]).sum(-2)  # (N,J-1,3c,3r,3q)
        d_r = d_r.reshape(n, -1, 3, 9).transpose(-1, -2).numpy()  # (N,J-1,9,3c)
        corr = self.point_d.numpy()  # (17,S,3,(J-1)*9)
        k, s_, _, f = corr.shape
        per_joint = corr.reshape(k * s_ * 3, f // 9, 9).transpose(1, 0, 2)  # (J-1,17*S*3,9)
        d_c = np.matmul(per_joint[None], d_r)  # (N,J-1,17*S*3,3c)
        d_c = d_c.reshape(n, f // 9, k, s_, 3, 3).transpose(0, 2, 3, 4, 1, 5).reshape(n, k, s_, 3, -1)
        moved = np.matmul(frame_k.numpy(), d_c).sum(2)  # (N,17,3,(J-1)*3)
        return torch.from_numpy(moved).reshape(n, k, 3, f // 9, 3)

    def _parts(
        self, rotmats: torch.Tensor, betas: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rest joints (N,Jn,3), posed transforms (N,Jn,3,4), components' rest offsets (N,17,S,3),
        components (N,17,S,3)): the pieces of the points, joints in posing order; a point is the sum of
        its components (one per joint that skins it)."""
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
        parts = (g_k * c4.unsqueeze(-2)).sum(-1)  # (N,17,S,3)
        return rest, g, c, parts


def row_chunks(n: int, per_row: int) -> list[slice]:
    """Slices of ``n`` rows, each small enough (rows x per_row elements) to stay below PARALLEL_GRAIN."""
    step = max(1, (PARALLEL_GRAIN - 1) // max(per_row, 1))
    return [slice(i, i + step) for i in range(0, n, step)] or [slice(0, 0)]

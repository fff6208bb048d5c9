"""The training objective: model outputs + a dataset batch -> weighted losses for one stage.

Targets come from ``whmr_core.data.dataset.HumanDataset`` batches (``has_*`` masks mark what a sample
has); ground-truth meshes are made here from the labelled pose and shape with the network's own body layer.
Which tensors are detached on which path follows ``stages.stage_rules`` (DESIGN.md section 7).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from whmr_core import geometry as G
from whmr_core import losses as L
from whmr_core.rotations import axis_angle_to_matrix
from whmr_core.training.config import LossWeights
from whmr_core.training.stages import StageRules

__all__ = ["GroundTruthMeshes", "compute_losses", "ground_truth_meshes"]


class GroundTruthMeshes:
    """Camera-frame (root-relative) and world-frame (pelvis-centred) meshes of the labelled bodies."""

    def __init__(self, vertices: torch.Tensor, world_vertices: torch.Tensor | None, rotmats: torch.Tensor):
        self.vertices = vertices
        self.world_vertices = world_vertices
        self.rotmats = rotmats


@torch.no_grad()
def ground_truth_meshes(model: Any, batch: dict[str, Any], world: bool = True) -> GroundTruthMeshes:
    """``world=False`` skips the world-frame mesh (only stage III's losses use it)."""
    body = model.body
    n = batch["pose"].shape[0]
    rotmats = axis_angle_to_matrix(batch["pose"].reshape(n, -1, 3).float())
    verts, _ = body(rotmats, batch["betas"].float())
    world_vertices = None
    if world and bool(batch["has_world"].any()):
        world_rot = rotmats.clone()
        world_rot[:, 0] = axis_angle_to_matrix(batch["global_orient_world"].float())
        w_verts, _ = body(world_rot, batch["betas"].float())
        pelvis = (model.joint_regressors[:1] @ w_verts)[:, :1]
        world_vertices = w_verts - pelvis
    return GroundTruthMeshes(verts, world_vertices, rotmats)


def _full2_projection(joints: torch.Tensor, cam: torch.Tensor, tz: torch.Tensor, batch: dict[str, Any]):
    """Eq. 2-4 in pixels of the full image: the FULL^2 path (principal point at the image centre, as the
    network never sees K)."""
    wh, size, centre = batch["image_wh"], batch["bbox_size"], batch["center"]
    focal = G.focal_from_depth(cam[:, 0], size, tz)
    transl = G.full_image_translation(cam, centre, size, wh, tz)
    return G.perspective_project(joints, transl, focal, G.image_centre(wh)), focal


def compute_losses(
    out: Any,
    batch: dict[str, Any],
    rules: StageRules,
    weights: LossWeights,
    gt: GroundTruthMeshes | None = None,
    model: Any = None,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms (keys as ``LossWeights``) and their sum under ``"total"``."""
    w = asdict(weights)
    terms: dict[str, torch.Tensor] = {}
    has_smpl = batch["has_smpl"] > 0
    has_3d = batch["has_joints3d"] > 0
    kp_crop, kp_full = batch["keypoints"], batch["keypoints_full"]

    if rules.camera_losses:
        j3d_t, j3d_conf = batch["joints3d"][..., :3], batch["joints3d"][..., 3]
        k3d, crop2d, pose_l, betas_l = [], [], [], []
        for it in out.iterations:  # deep supervision of every iteration, as PyMAF
            k3d.append(L.keypoint_3d_loss(it.joints, j3d_t, j3d_conf, has_3d))
            joints = it.joints.detach() if rules.crop_detach_joints else it.joints
            crop2d.append(
                L.crop_keypoint_loss(
                    G.weak_perspective_project(joints, it.cam_crop), kp_crop[..., :2], kp_crop[..., 2]
                )
            )
            if gt is not None and it.kind == "param":
                p, b = L.smpl_param_loss(it.rotmats, gt.rotmats, it.betas, batch["betas"], has_smpl)
                pose_l.append(p)
                betas_l.append(b)
        terms["keypoint_3d"] = torch.stack(k3d).mean()
        terms["crop_keypoint_2d"] = torch.stack(crop2d).mean()
        if pose_l:
            terms["smpl_pose"] = torch.stack(pose_l).mean()
            terms["smpl_betas"] = torch.stack(betas_l).mean()

        # FULL^2 (eq. 5): full-image joints through the predicted depth and eq. 3-4.
        cam = out.cam_crop.detach() if rules.full2_detach_cam else out.cam_crop
        joints = out.joints.detach() if rules.full2_detach_joints else out.joints
        proj, _ = _full2_projection(joints, cam, out.tz, batch)
        terms["full2_keypoint_2d"] = L.full2_keypoint_loss(
            proj, kp_full[..., :2], batch["image_wh"], batch["bbox_size"], kp_full[..., 2]
        )

        if gt is not None and model is not None:
            terms["vertex_full"] = L.vertex_loss(out.vertices, gt.vertices, has_smpl)
            final = out.iterations[-1]
            if final.kind == "vertex" and getattr(model, "upsampler", None) is not None:
                gt_inter = model.intermediate_mesh(gt.vertices)
                gt_sparse = model.sample_mesh(gt.vertices)
                inter = model.upsampler.to_intermediate @ final.sparse_vertices
                terms["vertex_sparse"] = L.vertex_loss(final.sparse_vertices, gt_sparse, has_smpl)
                terms["vertex_intermediate"] = L.vertex_loss(inter, gt_inter, has_smpl)

    if rules.focal_loss:
        # Eq. 8 on the FULL^2 path's focal length: like that path in stage I, it may move t_z only.
        f_px = G.focal_from_depth(out.cam_crop[:, 0].detach(), batch["bbox_size"], out.tz)
        terms["focal"] = L.focal_loss(f_px, batch["image_wh"])

    if out.aux is not None and rules.camera_losses and "iuv_part" in batch:
        valid = batch["has_maps"] > 0
        size = out.aux.part_logits.shape[-2:]  # targets come at crop size: nearest-resample to Phi_3's
        part = F.interpolate(batch["iuv_part"][:, None].float(), size=size, mode="nearest")[:, 0].long()
        uv_t = F.interpolate(batch["iuv_uv"], size=size, mode="nearest")
        inv_t = F.interpolate(batch["inv_depth"], size=size, mode="nearest")
        uv = torch.stack([_pick(out.aux.u, part), _pick(out.aux.v, part)], 1)
        terms["iuv"] = L.iuv_loss(out.aux.part_logits, uv, part, uv_t, valid)
        terms["inverse_depth"] = L.inverse_depth_loss(out.aux.inverse_depth, inv_t, part[:, None] > 0, valid)

    if rules.world_losses:
        has_world = batch["has_world"] > 0
        jw = batch["joints3d_world"]
        terms["world"] = L.keypoint_3d_loss(out.world_joints, jw, mask=has_world) + L.orientation_loss(
            out.world_root, axis_angle_to_matrix(batch["global_orient_world"]), has_world
        )
        if gt is not None and gt.world_vertices is not None:
            terms["world"] = terms["world"] + L.vertex_loss(out.world_vertices, gt.world_vertices, has_world)

    weighted = {k: v * w[k] for k, v in terms.items()}
    weighted["total"] = torch.stack(list(weighted.values())).sum()
    return weighted


def _pick(maps: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Per-pixel value of the channel of the pixel's part: (N,K,h,w), (N,h,w) long -> (N,h,w)."""
    return maps.gather(1, part[:, None]).squeeze(1)

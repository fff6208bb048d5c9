"""The training objective: model outputs + a typed ``Batch`` -> weighted losses for one stage.

``has_*`` masks mark what a sample has; ground-truth meshes are made here from the labelled pose and shape
with the network's own body layer, so the objective needs the network: there is no way to call it without
(and so to lose the vertex losses silently). Which tensors are detached on which path follows
``stages.stage_rules`` (DESIGN.md section 7).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from whmr_core import geometry as G
from whmr_core import losses as L
from whmr_core.body.joint_layouts import supervision_points
from whmr_core.rotations import axis_angle_to_matrix
from whmr_core.training.batch import Batch
from whmr_core.training.config import ITERATION_REDUCTIONS, LossWeights
from whmr_core.training.stages import StageRules

__all__ = [
    "LABEL_NAMES",
    "LOSS_LABELS",
    "PRIORS",
    "GroundTruthMeshes",
    "compute_losses",
    "ground_truth_meshes",
    "stage_terms",
]

# The label each term needs (keys of ``HumanDataset.label_counts``): without it in the data the term is off.
# None: no label (eq. 8's pseudo focal comes from the image size; the camera-scale prior from nothing).
LOSS_LABELS: dict[str, str | None] = {
    "keypoint_3d": "joints3d",
    "crop_keypoint_2d": "keypoints2d",
    "full2_keypoint_2d": "keypoints2d",
    "vertex_sparse": "smpl",
    "vertex_intermediate": "smpl",
    "vertex_full": "smpl",
    "smpl_betas": "smpl",
    "smpl_pose": "smpl",
    "part_ce": "maps",
    "uv_u": "maps",
    "uv_v": "maps",
    "inverse_depth": "maps",
    "focal": None,
    "camera_scale": None,
    "world_keypoint_3d": "world_joints",
    "world_vertex": "world_smpl",
    "world_pose": "world_smpl",
}
LABEL_NAMES: dict[str, str] = {
    "keypoints2d": "2D joints (part)",
    "joints3d": "3D joints (S)",
    "smpl": "SMPL parameters (pose, shape, has_smpl)",
    "maps": "IUV/depth maps (iuvname, depthname, with data.maps on)",
    "world_joints": "world-frame joints (joints3d_world, has_world)",
    "world_smpl": "a world-frame orientation with SMPL parameters (global_orient_world, has_world, pose)",
}
PRIORS = ("camera_scale",)  # terms that teach nothing on their own: a stage with only these has no loss


def stage_terms(rules: StageRules) -> tuple[str, ...]:
    """The loss terms a stage computes (``compute_losses``' keys, before labels are looked at)."""
    terms: list[str] = []
    if rules.camera_losses:
        terms += [k for k, v in LOSS_LABELS.items() if not k.startswith("world_") and k != "focal"]
    if rules.focal_loss:
        terms.append("focal")
    if rules.world_losses:
        terms += [k for k in LOSS_LABELS if k.startswith("world_")]
    return tuple(terms)


@dataclass(frozen=True)
class GroundTruthMeshes:
    """Labelled bodies: camera-frame (root-relative) and, for stage III, world-frame (pelvis-centred)."""

    rotmats: torch.Tensor  # (N,J,3,3), root in the camera frame
    vertices: torch.Tensor  # (N,V,3)
    sparse: torch.Tensor  # (N,S,3) the points the network samples (sparse vertices or markers)
    intermediate: torch.Tensor  # (N,V1,3)
    world_rotmats: torch.Tensor | None = None  # (N,J,3,3), root in frame G
    world_vertices: torch.Tensor | None = None  # (N,V,3) frame G, pelvis-centred


@torch.no_grad()
def ground_truth_meshes(model: Any, batch: Batch, world: bool = True) -> GroundTruthMeshes:
    """``world=False`` skips the world-frame mesh (only stage III's losses use it)."""
    n = batch.size
    rotmats = axis_angle_to_matrix(batch.pose.reshape(n, -1, 3).float())
    verts, _ = model.body(rotmats, batch.betas.float())
    world_rot = world_vertices = None
    if world and bool(batch.has_world.any()):
        world_rot = rotmats.clone()
        world_rot[:, 0] = axis_angle_to_matrix(batch.global_orient_world.float())
        w_verts, _ = model.body(world_rot, batch.betas.float())
        pelvis = (model.joint_regressors[:1] @ w_verts)[:, :1]
        world_vertices = w_verts - pelvis
    return GroundTruthMeshes(
        rotmats, verts, model.sample_mesh(verts), model.intermediate_mesh(verts), world_rot, world_vertices
    )


def _full2_projection(joints: torch.Tensor, cam: torch.Tensor, tz: torch.Tensor, batch: Batch):
    """Eq. 2-4 in pixels of the full image: the FULL^2 path (principal point at the image centre, as the
    network never sees K)."""
    focal = G.focal_from_depth(cam[:, 0], batch.bbox_size, tz)
    transl = G.full_image_translation(cam, batch.center, batch.bbox_size, batch.image_wh, tz)
    return G.perspective_project(joints, transl, focal, G.image_centre(batch.image_wh)), focal


def compute_losses(
    out: Any,
    batch: Batch,
    model: Any,
    rules: StageRules,
    weights: LossWeights,
    *,
    full2_every_iteration: bool = True,
    iteration_losses: str = "sum",
) -> dict[str, torch.Tensor]:
    """Weighted loss terms (keys as ``LossWeights``) and their sum under ``"total"``.

    ``full2_every_iteration`` applies FULL^2 and L_f to every iteration's camera and joints with the shared
    t_z (the release's deep supervision); off, only the final output's. ``iteration_losses`` reduces a
    term given on several iterations: ``"sum"`` (the release) or ``"mean"``.
    """
    if iteration_losses not in ITERATION_REDUCTIONS:
        raise ValueError(f"iteration_losses: must be one of {ITERATION_REDUCTIONS}, got {iteration_losses!r}")

    def over_iterations(per_iteration: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(per_iteration)
        return stacked.sum() if iteration_losses == "sum" else stacked.mean()

    w = asdict(weights)
    terms: dict[str, torch.Tensor] = {}
    gt = ground_truth_meshes(model, batch, world=rules.world_losses)
    has_smpl, has_3d = batch.has_smpl, batch.has_joints3d
    kp_crop, kp_full = batch.keypoints, batch.keypoints_full

    if rules.camera_losses:
        j3d_t, j3d_conf = batch.joints3d[..., :3], batch.joints3d[..., 3]
        # Each label's point of the prediction: the supervision layout (joint_layouts) of every iteration.
        points = [_supervision(model, it) for it in out.iterations]
        k3d, crop2d, pose_l, betas_l, scale = [], [], [], [], []
        for it, pts in zip(out.iterations, points, strict=True):  # deep supervision, as PyMAF
            k3d.append(L.keypoint_3d_loss(pts, j3d_t, j3d_conf, has_3d, root_weights=batch.joints3d_root))
            joints = pts.detach() if rules.crop_detach_joints else pts
            crop2d.append(
                L.crop_keypoint_loss(
                    G.weak_perspective_project(joints, it.cam_crop), kp_crop[..., :2], kp_crop[..., 2]
                )
            )
            scale.append(L.camera_scale_loss(it.cam_crop[:, 0]))
            if it.kind == "param":
                p, b = L.smpl_param_loss(it.rotmats, gt.rotmats, it.betas, batch.betas, has_smpl)
                pose_l.append(p)
                betas_l.append(b)
        terms["keypoint_3d"] = over_iterations(k3d)
        terms["crop_keypoint_2d"] = over_iterations(crop2d)
        terms["camera_scale"] = over_iterations(scale)
        if pose_l:
            terms["smpl_pose"] = over_iterations(pose_l)
            terms["smpl_betas"] = over_iterations(betas_l)

        # FULL^2 (eq. 5): full-image joints through the predicted depth and eq. 3-4.
        full2 = []
        for cam_t, joints_t in _full2_inputs(out, points, full2_every_iteration):
            cam = cam_t.detach() if rules.full2_detach_cam else cam_t
            assert joints_t is not None
            joints = joints_t.detach() if rules.full2_detach_joints else joints_t
            proj, _ = _full2_projection(joints, cam, out.tz, batch)
            full2.append(
                L.full2_keypoint_loss(
                    proj, kp_full[..., :2], batch.image_wh, batch.bbox_size, kp_full[..., 2]
                )
            )
        terms["full2_keypoint_2d"] = over_iterations(full2)

        terms["vertex_full"] = L.vertex_loss(out.vertices, gt.vertices, has_smpl)
        final = out.iterations[-1]
        if final.kind == "vertex" and getattr(model, "upsampler", None) is not None:
            inter = model.upsampler.to_intermediate @ final.sparse_vertices
            terms["vertex_sparse"] = L.vertex_loss(final.sparse_vertices, gt.sparse, has_smpl)
            terms["vertex_intermediate"] = L.vertex_loss(inter, gt.intermediate, has_smpl)

    if rules.focal_loss:
        # Eq. 8 on the FULL^2 path's focal length: like that path in stage I, it may move t_z only.
        focal = [
            L.focal_loss(G.focal_from_depth(cam[:, 0].detach(), batch.bbox_size, out.tz), batch.image_wh)
            for cam, _ in _full2_inputs(out, None, full2_every_iteration)
        ]
        terms["focal"] = over_iterations(focal)

    if out.aux is not None and rules.camera_losses and batch.maps is not None:
        maps = batch.maps
        size = out.aux.part_logits.shape[-2:]  # targets come at crop size: nearest-resample to Phi_3's
        part = F.interpolate(maps.part[:, None].float(), size=size, mode="nearest")[:, 0].long()
        uv_t = F.interpolate(maps.uv, size=size, mode="nearest")
        inv_t = F.interpolate(maps.inverse_depth, size=size, mode="nearest")
        uv = torch.stack([_pick(out.aux.u, part), _pick(out.aux.v, part)], 1)
        terms["part_ce"], terms["uv_u"], terms["uv_v"] = L.iuv_loss(
            out.aux.part_logits, uv, part, uv_t, maps.valid
        )
        terms["inverse_depth"] = L.inverse_depth_loss(
            out.aux.inverse_depth, inv_t, part[:, None] > 0, maps.valid
        )

    if rules.world_losses:
        has_world = batch.has_world
        terms["world_keypoint_3d"] = L.keypoint_3d_loss(
            out.world_joints, batch.joints3d_world, mask=has_world
        )
        if gt.world_vertices is not None and gt.world_rotmats is not None:
            both = has_world & has_smpl
            terms["world_vertex"] = L.vertex_loss(out.world_vertices, gt.world_vertices, both)
            world_pose = torch.cat([out.world_root[:, None], out.rotmats[:, 1:]], 1)
            terms["world_pose"], _ = L.smpl_param_loss(
                world_pose, gt.world_rotmats, out.betas, batch.betas, both
            )

    weighted = {k: v * w[k] for k, v in terms.items()}
    weighted["total"] = torch.stack(list(weighted.values())).sum()
    return weighted


def _supervision(model: Any, it: Any) -> torch.Tensor:
    """(N,33,3) supervision points (joint_layouts) of one iteration's mesh."""
    return supervision_points(*model.regress_joints(it.vertices))


def _full2_inputs(
    out: Any, points: list[torch.Tensor] | None, every_iteration: bool
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(crop camera, supervision points) pairs the FULL^2 path projects: each iteration's, or the final
    output's (the last iteration's mesh is the output's)."""
    pts: list[torch.Tensor | None] = list(points) if points is not None else [None] * len(out.iterations)
    if every_iteration:
        return [(it.cam_crop, p) for it, p in zip(out.iterations, pts, strict=True)]
    return [(out.cam_crop, pts[-1])]


def _pick(maps: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Per-pixel value of the channel of the pixel's part: (N,K,h,w), (N,h,w) long -> (N,h,w)."""
    return maps.gather(1, part[:, None]).squeeze(1)

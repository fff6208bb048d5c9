"""The W-HMR network (DESIGN.md section 6): backbone -> feature pyramid -> iterative regression ->
depth/focal head -> OrientCorrect, with the body model inside. Built from a ``ModelConfig`` and sized from
the loaded body model and its assets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from whmr_core import geometry
from whmr_core._checks import _tracing, check_batch, check_tensor
from whmr_core.model.aux_heads import AuxHeads
from whmr_core.model.backbones import build_backbone
from whmr_core.model.body_layer import BodyLayer, mean_rotmats
from whmr_core.model.config import ModelConfig
from whmr_core.model.depth_head import DepthHead, ReleaseDepthHead
from whmr_core.model.orient_correct import OrientCorrect
from whmr_core.model.outputs import AuxOutput, IterationOutput, ModelOutput
from whmr_core.model.pyramid import (
    FeaturePyramid,
    MultiScalePyramid,
    PointFeatureMLP,
    box_to_crop_coords,
    fixed_grid,
    release_grid,
    release_project,
    sample_points,
)
from whmr_core.model.regressors import LearnedUpsampler, ParamRegressor, Params, VertexRegressor
from whmr_core.model.theta0 import MeanParams, load_marker_ids, load_mean_params
from whmr_core.rotations import matrix_to_rot6d, rot6d_to_matrix, unbiased_gram_schmidt

__all__ = ["WHMR"]


class WHMR(nn.Module):
    """forward(crops (N,3,H,W), glob_info (N,5), cam_rotation (N,3,3) | None) -> ModelOutput.

    ``crops`` are normalised RGB crops of the config's ``crop_hw``; ``glob_info`` is eq. 7
    (``whmr_core.geometry.glob_info``); ``cam_rotation`` is R_c from gravity (identity = level camera).
    Auxiliary maps are computed in training mode only (or with ``return_aux=True``).

    Mean parameters (iteration 0 input): ``config.mean_params`` (SPIN's file, for an SMPL body) or, by
    default, the body model's rest pose with the root turned to face the camera upright
    (``mean_rotmats``), zero betas, and the crop camera ``config.init_cam`` (s = 0.9: a 1.7 m body fills
    ~77% of the box height). ``marker_ids`` / ``mean_params`` given here take precedence over the files
    named in the config (a checkpoint carries both in its weights).
    """

    def __init__(
        self,
        config: ModelConfig,
        body_model: Any,
        assets: Any,
        *,
        marker_ids: torch.Tensor | None = None,
        mean_params: MeanParams | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.crop_hw = tuple(config.backbone.crop_hw)
        self.variant = config.variant
        self.body = BodyLayer(body_model, assets)
        nj, nb = self.body.num_joints, self.body.num_betas
        f32 = torch.float32

        # Mesh sampling: sparse vertices (hybrid) or surface markers (param variant).
        down = (assets.down_sparse.float() @ assets.down_intermediate.float()).contiguous()  # (S,V)
        self.register_buffer("down_sparse_full", down, persistent=False)
        # The intermediate mesh (training's vertex loss). Decimation picks vertices of the full mesh, so keep
        # the indices rather than the (V1,V) matrix (~130 MB for the full free model); any other matrix
        # (e.g. a hand-made hierarchy) is kept as it is.
        to_inter = assets.down_intermediate.float()
        picks = bool(((to_inter != 0).sum(1) == 1).all() and (to_inter.max(1).values == 1).all())
        self.register_buffer(
            "intermediate_ids", to_inter.argmax(1).long() if picks else torch.zeros(0, dtype=torch.long),
            persistent=False,
        )  # fmt: skip
        self.register_buffer("down_intermediate", torch.zeros(0) if picks else to_inter, persistent=False)
        # Markers: the config's file (e.g. the release's 67 mocap markers; kept in the weights) or the body
        # assets' farthest-point samples.
        if marker_ids is None and config.markers is not None:
            marker_ids = load_marker_ids(config.markers, self.body.num_vertices)
        markers_given = marker_ids is not None
        ids = marker_ids if markers_given else assets.marker_ids
        self.register_buffer("marker_ids", ids.long().clone(), persistent=markers_given)
        regs = torch.cat([assets.joint_regressor, assets.coco_regressor, assets.h36m_regressor]).float()
        self.register_buffer("joint_regressors", regs, persistent=False)
        self._joint_split = (
            int(assets.joint_regressor.shape[0]),
            int(assets.coco_regressor.shape[0]),
            int(assets.h36m_regressor.shape[0]),
        )
        num_points = down.shape[0] if self.variant == "hybrid" else int(self.marker_ids.shape[0])

        # Mean parameters (see class docstring).
        if mean_params is None and config.mean_params is not None:
            mean_params = load_mean_params(config.mean_params, nj, nb)
        if mean_params is None:
            mean_params = MeanParams(
                matrix_to_rot6d(mean_rotmats(nj, f32)),
                torch.zeros(nb, dtype=f32),
                torch.tensor(config.init_cam, dtype=f32),
            )
        self.register_buffer("mean_pose6d", mean_params.pose6d.to(f32).reshape(nj, 6).clone())
        self.register_buffer("mean_betas", mean_params.betas.to(f32).reshape(nb).clone())
        self.register_buffer("mean_cam", mean_params.cam.to(f32).reshape(3).clone())

        pc = config.pyramid
        self.release_sampling = pc.sampling == "release"
        grid = release_grid(pc.grid_hw) if self.release_sampling else fixed_grid(pc.grid_hw)
        self.register_buffer("grid_points", grid, persistent=False)
        self.matrix_pose = config.regressor.rotation == "matrix"
        self.detach_theta = config.regressor.detach

        self.backbone = build_backbone(config.backbone)
        if getattr(self.backbone, "multi_scale", False):  # maps at strides 16, 8, 4 (MoveNet's FPN)
            self.pyramid: nn.Module = MultiScalePyramid(self.backbone.feature_channels, pc.channels)
        else:
            self.pyramid = FeaturePyramid(self.backbone.out_channels, pc.channels)
        self.point_mlps = nn.ModuleList(
            PointFeatureMLP(pc.channels, pc.mlp_dims, pc.point_mlp) for _ in range(3)
        )
        d = pc.mlp_dims[-1]
        feat_dims = [d * self.grid_points.shape[0]] + [d * num_points] * 2
        self.param_regressors = nn.ModuleList(
            ParamRegressor(feat_dims[t], nj, nb, config.regressor) for t in range(config.num_param_iterations)
        )
        if self.variant == "hybrid":
            sparse_template = assets.sparse_template.float()
            self.vertex_regressor: VertexRegressor | None = VertexRegressor(
                pc.channels, sparse_template, config.vertex, points_dim=d * num_points
            )
            self.upsampler: LearnedUpsampler | None = LearnedUpsampler(assets.up_intermediate, assets.up_full)
        else:
            self.vertex_regressor = None
            self.upsampler = None
        dc = config.depth
        if dc.kind == "release":
            stride = self.backbone.stride / 8  # Phi_3 is 8x the backbone map
            phi3_hw = (int(self.crop_hw[0] / stride), int(self.crop_hw[1] / stride))
            self.depth_head: nn.Module = ReleaseDepthHead(pc.channels, dc.hidden, phi3_hw, dc.max_depth)
        else:
            self.depth_head = DepthHead(pc.channels, dc.hidden, dc.max_depth)
        oc = config.orient
        self.orient_correct = OrientCorrect(
            d * num_points, oc.hidden, oc.activation, oc.dropout, oc.rotation, oc.base
        )
        self.aux_heads = (
            AuxHeads(pc.channels, config.aux.hidden, config.aux.num_parts) if config.aux.enabled else None
        )

    # -- helpers ---------------------------------------------------------------------------------------
    def mean_params(self, n: int) -> Params:
        pose = rot6d_to_matrix(self.mean_pose6d).flatten(-2) if self.matrix_pose else self.mean_pose6d
        return Params(
            pose=pose.expand(n, -1, -1),
            betas=self.mean_betas.expand(n, -1),
            cam_crop=self.mean_cam.expand(n, -1),
        )

    def pose_rotmats(self, pose: torch.Tensor) -> torch.Tensor:
        """Regressed pose -> (N,J,3,3): Gram-Schmidt of 6D, or the release's matrices (raw while training,
        unbiased Gram-Schmidt in eval)."""
        if not self.matrix_pose:
            return rot6d_to_matrix(pose)
        mats = pose.reshape(*pose.shape[:-1], 3, 3)
        return mats if self.training else unbiased_gram_schmidt(mats)

    def project_for_sampling(self, points: torch.Tensor, cam_crop: torch.Tensor) -> torch.Tensor:
        """Where the next iteration samples mesh points (N,P,3) seen by crop camera ``cam_crop``."""
        if self.release_sampling:
            return release_project(points, cam_crop)
        return box_to_crop_coords(geometry.weak_perspective_project(points, cam_crop), self.crop_hw)

    def sample_mesh(self, vertices: torch.Tensor) -> torch.Tensor:
        """Points of the mesh the next iteration samples: sparse vertices (hybrid) or markers (param)."""
        if self.variant == "hybrid":
            return self.down_sparse_full @ vertices
        return vertices[:, self.marker_ids]

    def intermediate_mesh(self, vertices: torch.Tensor) -> torch.Tensor:
        """(N,V,3) full mesh -> (N,V1,3) intermediate mesh of the body model's hierarchy."""
        if self.intermediate_ids.numel():
            return vertices[:, self.intermediate_ids]
        return self.down_intermediate @ vertices

    def regress_joints(self, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        j = self.joint_regressors @ vertices
        return torch.split(j, self._joint_split, dim=1)

    def _check_inputs(
        self, crops: torch.Tensor, glob_info: torch.Tensor, cam_rotation: torch.Tensor | None
    ) -> None:
        if _tracing():  # shapes are symbolic while exporting; the exported graph is checked by its runtime
            return
        if not isinstance(crops, torch.Tensor) or crops.dim() != 4:
            shape = tuple(crops.shape) if isinstance(crops, torch.Tensor) else type(crops).__name__
            raise ValueError(f"crops: expected a (N, 3, H, W) tensor, got {shape}")
        if crops.shape[1] != 3:
            raise ValueError(
                f"crops: expected 3 colour channels (RGB), got {crops.shape[1]} in {tuple(crops.shape)}"
            )
        if tuple(crops.shape[2:]) != self.crop_hw:
            h, w = self.crop_hw
            raise ValueError(
                f"crops: config {self.config.name!r} expects {h}x{w} (HxW) crops, got "
                f"{crops.shape[2]}x{crops.shape[3]}"
            )
        check_tensor("crops", crops, (3, *self.crop_hw), batch_dims=1)
        check_tensor("glob_info", glob_info, (5,), batch_dims=1)
        if not _tracing() and bool((glob_info[:, 2] <= 0).any()):
            raise ValueError("glob_info: box size (column 2) must be > 0 (see geometry.glob_info, eq. 7)")
        if cam_rotation is None:
            check_batch(("crops", "glob_info"), crops, glob_info)
        else:
            check_tensor("cam_rotation", cam_rotation, (3, 3), batch_dims=1)
            check_batch(("crops", "glob_info", "cam_rotation"), crops, glob_info, cam_rotation)

    # -- forward ---------------------------------------------------------------------------------------
    def forward(
        self,
        crops: torch.Tensor,
        glob_info: torch.Tensor,
        cam_rotation: torch.Tensor | None = None,
        return_aux: bool | None = None,
    ) -> ModelOutput:
        self._check_inputs(crops, glob_info, cam_rotation)
        return self.forward_features(self.backbone(crops), glob_info, cam_rotation, return_aux)

    def forward_features(
        self,
        features: torch.Tensor | list[torch.Tensor],
        glob_info: torch.Tensor,
        cam_rotation: torch.Tensor | None = None,
        return_aux: bool | None = None,
    ) -> ModelOutput:
        """Everything above the backbone, from its output (a frozen backbone's maps computed once:
        ``whmr_core.training.feature_cache``). ``forward`` is ``forward_features(backbone(crops), ...)``."""
        n = glob_info.shape[0]
        phis = self.pyramid(features)

        # Depth/focal head (section 3): t_z from Phi_3, focal from eq. 3, t_b from eq. 4. The glob info is
        # normalised by the image diagonal, so box size / centre / image size below are in those units:
        # eq. 4 is scale-free (t_b exact) and eq. 3 gives the focal length in diagonal units.
        tz = self.depth_head(phis[2], glob_info)
        box = glob_info[:, 2]
        image_wh = glob_info[:, 3:5]
        centre = glob_info[:, 0:2] + image_wh / 2

        def camera(cam_crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            focal = geometry.focal_from_depth(cam_crop[:, 0], box, tz)
            return focal, geometry.full_image_translation(cam_crop, centre, box, image_wh, tz)

        align = self.release_sampling
        params = self.mean_params(n)
        points = self.grid_points.to(glob_info.dtype).expand(n, -1, -1)
        iterations: list[IterationOutput] = []
        feat3 = sampled3 = None
        prev_sparse = None
        for t, regressor in enumerate(self.param_regressors):
            sampled = sample_points(phis[t], points, align)  # eq. 13: grid on Phi_1, then mesh points
            feat = self.point_mlps[t](sampled)
            if t == 2:
                feat3 = feat
            # Eq. 14; Theta_t enters detached with regressor.detach (the release), so each iteration's
            # losses train its own regressor.
            params = regressor(feat, glob_info, params.detach() if self.detach_theta else params)
            rotmats = self.pose_rotmats(params.pose)
            if self.matrix_pose:  # the release feeds the (eval: orthonormalised) matrices on
                params = Params(rotmats.flatten(-2), params.betas, params.cam_crop)
            verts, _ = self.body(rotmats, params.betas)
            mesh_points = self.sample_mesh(verts)
            focal_t, transl_t = camera(params.cam_crop)
            iterations.append(
                IterationOutput(
                    kind="param",
                    rotmats=rotmats,
                    pose6d=matrix_to_rot6d(rotmats) if self.matrix_pose else params.pose,
                    betas=params.betas,
                    cam_crop=params.cam_crop,
                    vertices=verts,
                    joints=self.regress_joints(verts)[0],
                    sparse_vertices=mesh_points,
                    sample_points=points,
                    focal=focal_t,
                    translation=transl_t,
                )
            )
            # Next iteration samples where this mesh projects (detached, as PyMAF).
            points = self.project_for_sampling(mesh_points.detach(), params.cam_crop.detach())
            prev_sparse = mesh_points

        if self.vertex_regressor is not None and self.upsampler is not None:
            sampled3 = sample_points(phis[2], points, align)
            feat3 = self.point_mlps[2](sampled3)
            # The crop camera conditions the vertex regressor as a feature only (detached), so losses on the
            # mesh cannot move the camera: the stage rules (section 7) keep the camera to its own paths.
            assert prev_sparse is not None
            prev = prev_sparse.detach() if self.detach_theta else prev_sparse
            sparse = self.vertex_regressor(sampled3, prev, glob_info, params.cam_crop.detach(), feat3)
            verts = self.upsampler(sparse)
            iterations.append(
                IterationOutput(
                    kind="vertex",
                    rotmats=rotmats,
                    pose6d=iterations[-1].pose6d,
                    betas=params.betas,
                    cam_crop=params.cam_crop,
                    vertices=verts,
                    joints=self.regress_joints(verts)[0],
                    sparse_vertices=sparse,
                    sample_points=points,
                    focal=focal_t,
                    translation=transl_t,
                )
            )
        assert feat3 is not None
        final = iterations[-1]
        focal, translation = final.focal, final.translation

        # OrientCorrect (eq. 6) and the world-frame (gravity-aligned) mesh, pelvis-centred.
        cam_root = final.rotmats[:, 0]
        if cam_rotation is None:
            cam_rotation = torch.eye(3, dtype=glob_info.dtype, device=glob_info.device).expand(n, 3, 3)
        world_root = self.orient_correct(feat3, glob_info, cam_root, cam_rotation)
        delta = world_root @ cam_root.transpose(1, 2)
        joints, coco, h36m = self.regress_joints(final.vertices)
        pelvis = joints[:, :1]
        world_vertices = (final.vertices - pelvis) @ delta.transpose(1, 2)
        world_joints = (joints - pelvis) @ delta.transpose(1, 2)

        aux = None
        want_aux = self.training if return_aux is None else return_aux
        if want_aux and self.aux_heads is not None:
            aux = AuxOutput(*self.aux_heads(phis[2]))

        return ModelOutput(
            iterations=iterations,
            rotmats=final.rotmats,
            betas=final.betas,
            cam_crop=final.cam_crop,
            tz=tz,
            focal=focal,
            translation=translation,
            vertices=final.vertices,
            joints=joints,
            coco_joints=coco,
            h36m_joints=h36m,
            sparse_vertices=final.sparse_vertices,
            cam_root=cam_root,
            cam_rotation=cam_rotation,
            world_root=world_root,
            world_vertices=world_vertices,
            world_joints=world_joints,
            aux=aux,
        )

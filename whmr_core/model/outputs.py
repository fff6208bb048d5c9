"""Typed outputs of the network: one ``IterationOutput`` per regression iteration and a ``ModelOutput``.

Frames and units (DESIGN.md sections 3-4):
- ``vertices``/``joints`` are in metres with camera-frame axes (optical: x right, y down, z forward),
  the body at the origin of the body model (no translation); ``translation`` (eq. 4) places them in the
  camera frame: ``vertices_in_camera = vertices + translation``.
- ``cam_crop`` = (s, t_x, t_y) is the weak-perspective camera of the square person box (crop coords [-1, 1]).
- ``focal`` is eq. 3 in units of the image diagonal sqrt(W^2 + H^2) (the network sees only the normalised
  glob info, eq. 7); ``focal_pixels(image_wh)`` converts. The stage-I pseudo label (eq. 8) is 1 in
  these units.
- ``world_*`` are in the gravity-aligned frame G, pelvis-centred: the mesh turned by R_b (R_b^c)^T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["AuxOutput", "IterationOutput", "ModelOutput"]


@dataclass
class IterationOutput:
    """Result of one iteration (parameter regressor, or the vertex regressor for the last hybrid one).

    ``pose6d`` is the first two columns of ``rotmats`` when the pose is regressed as matrices."""

    kind: str  # "param" or "vertex"
    rotmats: torch.Tensor  # (N,J,3,3) local joint rotations (root = camera-frame orientation R_b^c)
    pose6d: torch.Tensor  # (N,J,6) the regressed representation
    betas: torch.Tensor  # (N,B)
    cam_crop: torch.Tensor  # (N,3) (s, t_x, t_y)
    vertices: torch.Tensor  # (N,V,3)
    joints: torch.Tensor  # (N,24,3) regressed from vertices
    sparse_vertices: torch.Tensor  # (N,S,3) sparse vertices (hybrid) used for sampling / regression
    sample_points: torch.Tensor  # (N,P,2) crop-normalised points this iteration sampled features at
    # This iteration's full-image camera with the shared t_z (FULL^2 applies to every iteration):
    focal: torch.Tensor  # (N,) eq. 3 from this iteration's s, units of the image diagonal
    translation: torch.Tensor  # (N,3) eq. 4 from this iteration's crop camera


@dataclass
class AuxOutput:
    """Training-only dense predictions on Phi_3."""

    part_logits: torch.Tensor  # (N,K,h,w), K = parts + background
    u: torch.Tensor  # (N,K,h,w)
    v: torch.Tensor  # (N,K,h,w)
    inverse_depth: torch.Tensor  # (N,1,h,w)


@dataclass
class ModelOutput:
    iterations: list[IterationOutput]
    rotmats: torch.Tensor  # (N,J,3,3)
    betas: torch.Tensor  # (N,B)
    cam_crop: torch.Tensor  # (N,3)
    tz: torch.Tensor  # (N,) metres
    focal: torch.Tensor  # (N,) eq. 3, units of the image diagonal
    translation: torch.Tensor  # (N,3) t_b, eq. 4
    vertices: torch.Tensor  # (N,V,3) final mesh, camera axes, untranslated
    joints: torch.Tensor  # (N,24,3)
    coco_joints: torch.Tensor  # (N,17,3)
    h36m_joints: torch.Tensor  # (N,17,3)
    sparse_vertices: torch.Tensor  # (N,S,3)
    cam_root: torch.Tensor  # (N,3,3) R_b^c
    cam_rotation: torch.Tensor  # (N,3,3) R_c used (identity when none was given)
    world_root: torch.Tensor  # (N,3,3) R_b, OrientCorrect (eq. 6)
    world_vertices: torch.Tensor  # (N,V,3) frame G, pelvis-centred
    world_joints: torch.Tensor  # (N,24,3) frame G, pelvis-centred
    aux: AuxOutput | None = field(default=None)

    @property
    def vertices_in_camera(self) -> torch.Tensor:
        return self.vertices + self.translation[:, None, :]

    @property
    def joints_in_camera(self) -> torch.Tensor:
        return self.joints + self.translation[:, None, :]

    def focal_pixels(self, image_wh: torch.Tensor) -> torch.Tensor:
        """Focal length in pixels for images of size ``image_wh`` (N,2)."""
        return self.focal * torch.linalg.vector_norm(image_wh, dim=-1)

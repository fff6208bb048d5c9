"""The training batch: the labels the objective reads, typed, from collated ``HumanDataset`` items.

Only what the losses, the ground-truth meshes and the camera input use is kept; ``has_*`` flags become
boolean masks once, here. Samples without a gravity label get R_c = identity (a level camera).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from whmr_core.training.feature_cache import MAP_KEY

__all__ = ["Batch", "DenseMaps"]


@dataclass(frozen=True)
class DenseMaps:
    """Eq. 11-12 targets at crop resolution; ``valid`` marks the samples that have them."""

    part: torch.Tensor  # (N,S,S) long, 0 = background
    uv: torch.Tensor  # (N,2,S,S)
    inverse_depth: torch.Tensor  # (N,1,S,S)
    valid: torch.Tensor  # (N,) bool


@dataclass(frozen=True)
class Batch:
    img: torch.Tensor | None  # (N,3,S,S) normalised square crops; None when ``features`` replace them
    glob_info: torch.Tensor  # (N,5) eq. 7
    cam_rotation: torch.Tensor  # (N,3,3) R_c, identity where there is no gravity label
    image_wh: torch.Tensor  # (N,2) pixels
    center: torch.Tensor  # (N,2) box centre, pixels
    bbox_size: torch.Tensor  # (N,) square box side, pixels
    # J: the supervision points of whmr_core.body.joint_layouts (any file's labels, converted)
    keypoints: torch.Tensor  # (N,J,3) crop coordinates [-1, 1] + confidence
    keypoints_full: torch.Tensor  # (N,J,3) full-image pixels + confidence
    joints3d: torch.Tensor  # (N,J,4) camera-frame joints + confidence
    pose: torch.Tensor  # (N,72) axis-angle, root in the camera frame
    betas: torch.Tensor  # (N,B)
    global_orient_world: torch.Tensor  # (N,3) axis-angle root in frame G
    joints3d_world: torch.Tensor  # (N,24,3) SMPL joints in frame G, pelvis-centred
    has_joints3d: torch.Tensor  # (N,) bool
    has_smpl: torch.Tensor  # (N,) bool
    has_world: torch.Tensor  # (N,) bool
    maps: DenseMaps | None = None  # only when the data set was read with maps
    # (N,J) weights of each sample's protocol root (joint_layouts); None: joint 0
    joints3d_root: torch.Tensor | None = None
    # The frozen backbone's maps of the crops, read from a feature cache (coarse to fine); None: run it
    features: tuple[torch.Tensor, ...] | None = None

    @property
    def size(self) -> int:
        return int(self.glob_info.shape[0])

    @classmethod
    def from_collated(cls, d: dict[str, Any], device: str | torch.device = "cpu") -> Batch:
        """From ``whmr_core.data.batch.collate`` output; a missing label key is a clear KeyError."""
        levels = sorted((k for k in d if k.startswith(MAP_KEY)), key=lambda k: int(k[len(MAP_KEY) :]))
        optional = ("maps", "joints3d_root", "features", *(("img",) if levels else ()))
        required = [f.name for f in fields(cls) if f.name not in optional] + ["has_gravity"]
        missing = [k for k in required if k not in d]
        if missing:
            raise KeyError(f"training batch: missing keys {sorted(missing)}")

        def get(k: str) -> torch.Tensor:
            return d[k].to(device, non_blocking=True)

        n = d["glob_info"].shape[0]
        has_gravity = get("has_gravity") > 0
        eye = torch.eye(3, device=device).expand(n, 3, 3)
        maps = None
        if "iuv_part" in d:
            maps = DenseMaps(get("iuv_part"), get("iuv_uv"), get("inv_depth"), get("has_maps") > 0)
        return cls(
            img=get("img") if "img" in d else None,
            glob_info=get("glob_info"),
            cam_rotation=torch.where(has_gravity[:, None, None], get("cam_rotation"), eye),
            image_wh=get("image_wh"),
            center=get("center"),
            bbox_size=get("bbox_size"),
            keypoints=get("keypoints"),
            keypoints_full=get("keypoints_full"),
            joints3d=get("joints3d"),
            pose=get("pose"),
            betas=get("betas"),
            global_orient_world=get("global_orient_world"),
            joints3d_world=get("joints3d_world"),
            has_joints3d=get("has_joints3d") > 0,
            has_smpl=get("has_smpl") > 0,
            has_world=get("has_world") > 0,
            maps=maps,
            joints3d_root=get("joints3d_root") if "joints3d_root" in d else None,
            features=tuple(get(k) for k in levels) or None,
        )

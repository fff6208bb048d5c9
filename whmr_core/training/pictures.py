"""Validation pictures for TensorBoard: the predicted mesh over a few validation crops, so a run's progress
can be seen and not only read."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["mesh_pictures"]

log = logging.getLogger(__name__)

# A long focal length makes the perspective render match the network's weak-perspective crop camera.
_FOCAL = 5000.0


@torch.no_grad()
def mesh_pictures(model: Any, batch: dict[str, Any], faces: np.ndarray, count: int = 4) -> np.ndarray | None:
    """(K,S,S,3) uint8: the first ``count`` square crops of ``batch`` (collated ``HumanDataset`` items)
    with the predicted mesh drawn over them; None when no renderer can be made (no GL on the machine)."""
    from whmr_core.evaluation import CropAdapter
    from whmr_core.render.camera import PinholeCamera
    from whmr_core.render.overlay import overlay_meshes
    from whmr_core.render.scene import Mesh

    img = batch["img"][:count]
    device = next(model.parameters()).device
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        out = CropAdapter(model)(img.to(device), batch["glob_info"][:count].to(device))
    finally:
        for m, training in modes.items():
            m.training = training
    side = int(img.shape[-1])
    camera = PinholeCamera(_FOCAL, _FOCAL, side / 2, side / 2, side, side, near=0.01, far=1e5)
    pictures = []
    for k in range(len(img)):
        rgb = img[k].permute(1, 2, 0).cpu().numpy() * IMAGENET_STD + IMAGENET_MEAN
        crop = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
        s, tx, ty = (float(v) for v in out.cam_crop[k])
        # Weak perspective x = s (X + t_x) in [-1, 1] of the square box: a pinhole camera at depth 2f / (s S).
        transl = np.array([tx, ty, 2 * _FOCAL / (max(s, 1e-3) * side)], dtype=np.float32)
        mesh = Mesh(out.vertices[k].float().cpu().numpy() + transl, faces)
        try:
            pictures.append(overlay_meshes(crop, [mesh], camera, alpha=0.6))
        except (RuntimeError, OSError, ImportError) as err:  # no GL context on this machine
            log.warning("validation pictures off: no renderer (%s)", err)
            return None
    return np.stack(pictures)

"""Dense-correspondence labels (IUV) for any loaded body model, for the auxiliary IUV loss.

SMPL's DensePose UV charts are not available for other meshes, so whmr derives its own from the model:
each vertex belongs to the body part (one of the 24 joints) that skins it most, and its (U, V) are its
rest-pose coordinates along that part's two main axes, scaled to [0, 1] within the part. Labels are
per vertex; rendered maps interpolate them with barycentrics (whmr_core.render gives face ids and
barycentrics per pixel).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["vertex_parts", "vertex_uv"]


def _array(x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def vertex_parts(model: torch.nn.Module) -> np.ndarray:
    """(V,) int part index 1..J (0 is kept for background), by the largest skinning weight."""
    weights = _array(model.lbs_weights)
    return weights.argmax(axis=1).astype(np.int64) + 1


def vertex_uv(model: torch.nn.Module) -> np.ndarray:
    """(V,2) float in [0, 1]: rest-pose coordinates along each part's two principal axes."""
    template = _array(model.v_template)
    parts = vertex_parts(model)
    uv = np.zeros((template.shape[0], 2))
    for p in np.unique(parts):
        idx = np.flatnonzero(parts == p)
        pts = template[idx] - template[idx].mean(0)
        if idx.size < 3:
            continue
        # Principal axes; fix each axis' sign so the labels do not flip between builds.
        _, _, vt = np.linalg.svd(pts, full_matrices=False)
        axes = vt[:2] * np.sign(vt[:2].sum(axis=1, keepdims=True) + 1e-12)
        coords = pts @ axes.T
        lo, hi = coords.min(0), coords.max(0)
        uv[idx] = (coords - lo) / np.maximum(hi - lo, 1e-9)
    return uv

"""One camera per image: fuse the per-person focal lengths the network predicts into one.

Without a calibrated K, W-HMR predicts a focal length per person (its depth head, eq. 3). People in one
photo were taken by one camera, so whmr fuses those predictions into one focal length (a confidence-
weighted median: robust to one person's bad prediction) and re-solves each person's depth from eq. 3 with
it, ``t_z = 2 f / (s b)``. Depths then follow the people's apparent sizes (a box twice as large is half as
far at the same weak-perspective scale), and everyone sits in one consistent, if relatively scaled, scene.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fuse_focal", "shared_camera", "weighted_median"]


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at half the total weight; on an exact tie between two values, their geometric mean.

    (Focal lengths are scales: the geometric mean keeps ``median(k v) == k median(v)``.)"""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(v) == 0 or len(v) != len(w):
        raise ValueError(f"weighted_median: {len(v)} values and {len(w)} weights")
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ValueError("weighted_median: weights must be finite, >= 0 and not all zero")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cum = np.cumsum(w)
    half = cum[-1] / 2
    i = int(np.searchsorted(cum, half - 1e-12 * cum[-1]))
    if math.isclose(cum[i], half, rel_tol=1e-12) and i + 1 < len(v):
        return (
            float(math.sqrt(v[i] * v[i + 1])) if v[i] > 0 and v[i + 1] > 0 else float((v[i] + v[i + 1]) / 2)
        )
    return float(v[i])


def fuse_focal(focal_px: np.ndarray, confidence: np.ndarray) -> float | None:
    """One focal length (pixels) from per-person predictions and confidences (e.g. detection scores).

    Predictions that are not finite and positive are left out; None when none is left."""
    f = np.asarray(focal_px, dtype=np.float64).reshape(-1)
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    ok = np.isfinite(f) & (f > 0) & np.isfinite(c) & (c > 0)
    if not ok.any():
        return None
    return weighted_median(f[ok], c[ok])


def shared_camera(focal_px: float, image_wh: tuple[int, int]) -> np.ndarray:
    """The 3x3 K of that camera: the fused focal, the principal point at the image centre (eq. 4's)."""
    w, h = image_wh
    return np.array([[focal_px, 0.0, w / 2], [0.0, focal_px, h / 2], [0.0, 0.0, 1.0]])

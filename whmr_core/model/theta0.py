"""Files that configure the network's sampling and start: SPIN's mean parameters and surface-marker ids.

Both are read once at build time; the built network keeps what it read in its weights (``mean_*`` and,
with a marker file, ``marker_ids`` buffers), so a checkpoint rebuilds without the files.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from whmr_core.rotations import rot6d_to_matrix

__all__ = ["MeanParams", "load_marker_ids", "load_mean_params"]


@dataclass
class MeanParams:
    """Theta_0: pose6d (J,6), betas (B,), cam (3,) = (s, t_x, t_y), float32."""

    pose6d: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor


def load_mean_params(path: str | Path, num_joints: int, num_betas: int) -> MeanParams:
    """SPIN's ``smpl_mean_params.npz`` layout: ``pose`` (J*6,) 6D rotations (the first two columns of each
    matrix, row-major 3x2), ``shape`` (B,), ``cam`` (3,). Refuses other layouts and sizes, naming them."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mean parameters {path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"mean parameters {path}: not a readable .npz file ({err})") from err
    want = {"pose": (num_joints * 6,), "shape": (num_betas,), "cam": (3,)}
    missing = sorted(set(want) - set(arrays))
    if missing:
        raise ValueError(
            f"mean parameters {path}: missing {missing} (has {sorted(arrays)}; expected SPIN's layout)"
        )
    for key, shape in want.items():
        a = arrays[key]
        if a.shape != shape:
            raise ValueError(
                f"mean parameters {path}: {key} has shape {a.shape}, the body needs {shape} "
                f"({num_joints} joints, {num_betas} betas)"
            )
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise ValueError(f"mean parameters {path}: {key} must be finite numbers")
    pose6d = torch.from_numpy(arrays["pose"].astype(np.float32)).reshape(num_joints, 6)
    cam = torch.from_numpy(arrays["cam"].astype(np.float32))
    if float(cam[0]) <= 0:
        raise ValueError(f"mean parameters {path}: cam scale must be > 0, got {float(cam[0])}")
    if not bool(torch.isfinite(rot6d_to_matrix(pose6d)).all()):
        raise ValueError(f"mean parameters {path}: pose holds degenerate 6D rotations")
    return MeanParams(pose6d, torch.from_numpy(arrays["shape"].astype(np.float32)), cam)


def load_marker_ids(path: str | Path, num_vertices: int) -> torch.Tensor:
    """Vertex ids (M,) of the surface markers, from ``.npy`` (integers, as the release's smpl_ssm.npy) or a
    text file (whitespace- or comma-separated integers). Ids must be distinct and index the body's mesh."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"markers {path}: file not found")
    try:
        if path.suffix == ".npy":
            ids = np.load(path, allow_pickle=False)
        else:
            ids = np.array(path.read_text(encoding="utf-8").replace(",", " ").split(), dtype=np.float64)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"markers {path}: not a readable list of vertex ids ({err})") from err
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"markers {path}: expected a flat list of vertex ids, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.number) or not np.all(np.mod(ids, 1) == 0):
        raise ValueError(f"markers {path}: vertex ids must be integers")
    ids = ids.astype(np.int64)
    bad = ids[(ids < 0) | (ids >= num_vertices)]
    if bad.size:
        raise ValueError(f"markers {path}: ids {bad[:5].tolist()} outside the body's {num_vertices} vertices")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"markers {path}: vertex ids repeat")
    return torch.from_numpy(ids)

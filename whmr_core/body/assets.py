"""``BodyAssets``: everything mesh-dependent the network needs, derived from the loaded body model.

Derivation (landmarks, regressors, two decimations, barycentric upsampling) takes seconds, so the result
is cached on disk keyed by a hash of the model arrays: next to the shipped model files (committed, so a
fresh install loads instantly) or under ``$WHMR_CACHE_DIR`` (default ``~/.cache/whmr``) for other models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from whmr_core.body.hierarchy import (
    barycentric_upsampling,
    decimate,
    farthest_point_sampling,
    selection_matrix,
)
from whmr_core.body.landmarks import surface_landmarks
from whmr_core.body.model import ASSET_DIR
from whmr_core.body.regressors import coco_regressor, h36m_regressor

ASSETS_VERSION = 1  # bump when the derivation changes: old caches are then rebuilt
NUM_SPARSE = 431  # sparse vertices the vertex regressor works on (SMPL's 6890 -> 1723 -> 431)
NUM_MARKERS = 67  # surface markers of the pure-parameter variant (W-HMR's released "P" model)


@dataclasses.dataclass(frozen=True)
class BodyAssets:
    """Mesh-derived tensors (all dense; V full vertices, V1 intermediate, S sparse, M markers)."""

    template: torch.Tensor  # (V,3) float rest vertices
    faces: torch.Tensor  # (F,3) long
    joint_regressor: torch.Tensor  # (24,V) SMPL joints
    coco_regressor: torch.Tensor  # (17,V) COCO keypoints
    h36m_regressor: torch.Tensor  # (17,V) Human3.6M-style joints
    down_intermediate: torch.Tensor  # (V1,V)
    down_sparse: torch.Tensor  # (S,V1)
    up_intermediate: torch.Tensor  # (V1,S)
    up_full: torch.Tensor  # (V,V1)
    sparse_template: torch.Tensor  # (S,3)
    marker_ids: torch.Tensor  # (M,) long
    parents: torch.Tensor  # (24,) long, -1 for the root

    @property
    def num_vertices(self) -> int:
        return int(self.template.shape[0])

    @property
    def num_intermediate(self) -> int:
        return int(self.down_intermediate.shape[0])

    @property
    def num_sparse(self) -> int:
        return int(self.sparse_template.shape[0])

    @property
    def num_markers(self) -> int:
        return int(self.marker_ids.shape[0])


_SPARSE = ("down_intermediate", "down_sparse", "up_intermediate", "up_full")


def _model_arrays(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {
        "template": model.v_template.detach().cpu().double().numpy(),
        "faces": model.faces_tensor.detach().cpu().long().numpy(),
        "joint_regressor": model.J_regressor.detach().cpu().double().numpy(),
        "weights": model.lbs_weights.detach().cpu().double().numpy(),
        "parents": model.parents.detach().cpu().long().numpy(),
    }


def model_hash(arrays: dict[str, np.ndarray]) -> str:
    """Hash of the arrays the assets depend on (rounded to float32, so dtype changes do not matter)."""
    h = hashlib.sha256(f"whmr-body-assets-v{ASSETS_VERSION}".encode())
    for key in ("template", "faces", "joint_regressor", "weights", "parents"):
        a = arrays[key]
        a = a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a.astype(np.int64)
        h.update(key.encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def derive_assets(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray | scipy.sparse.spmatrix]:
    """Compute all assets from raw model arrays (numpy; the sampling matrices as scipy sparse)."""
    template, faces, jreg = arrays["template"], arrays["faces"], arrays["joint_regressor"]
    nv = len(template)
    landmarks = surface_landmarks(template, arrays["weights"], jreg @ template)
    num_sparse = min(NUM_SPARSE, nv // 2)
    # Intermediate size: the geometric mean, i.e. two equal decimation factors (6890 -> 1723 -> 431 for SMPL).
    num_mid = round(np.sqrt(nv * num_sparse))
    kept_mid, faces_mid = decimate(template, faces, num_mid)
    mid = template[kept_mid]
    kept_sparse, faces_sparse = decimate(mid, faces_mid, num_sparse)
    sparse = mid[kept_sparse]
    return {
        "template": template,
        "faces": faces,
        "joint_regressor": jreg,
        "coco_regressor": coco_regressor(jreg, landmarks),
        "h36m_regressor": h36m_regressor(jreg, landmarks),
        "down_intermediate": selection_matrix(kept_mid, nv),
        "down_sparse": selection_matrix(kept_sparse, len(mid)),
        "up_intermediate": barycentric_upsampling(mid, sparse, faces_sparse),
        "up_full": barycentric_upsampling(template, mid, faces_mid),
        "sparse_template": sparse,
        "marker_ids": farthest_point_sampling(template, min(NUM_MARKERS, nv), start=landmarks["head_top"]),
        "parents": arrays["parents"],
    }


def _save(path: Path, key: str, assets: dict) -> None:
    out: dict[str, np.ndarray] = {"model_hash": np.array(key)}
    for name, value in assets.items():
        if name in _SPARSE:
            coo = value.tocoo()
            out[f"{name}.shape"] = np.array(coo.shape, np.int64)
            out[f"{name}.row"], out[f"{name}.col"] = coo.row.astype(np.int32), coo.col.astype(np.int32)
            out[f"{name}.data"] = coo.data.astype(np.float32)
        elif name in ("template", "faces", "joint_regressor", "parents"):
            continue  # taken from the model itself at load
        else:
            out[name] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a concurrent reader sees the old file or the whole new one, never half of one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; caches beside shipped files are shared
    np.savez_compressed(tmp, **out)
    os.replace(tmp, path)


def _load(path: Path, key: str) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["model_hash"]) != key:
                return None
            out: dict = {}
            for name in _SPARSE:
                shape = tuple(int(s) for s in data[f"{name}.shape"])
                m = scipy.sparse.coo_matrix(
                    (data[f"{name}.data"], (data[f"{name}.row"], data[f"{name}.col"])), shape
                )
                out[name] = m
            for name in ("coco_regressor", "h36m_regressor", "sparse_template", "marker_ids"):
                out[name] = data[name]
            return out
    except (OSError, KeyError, ValueError):
        return None  # missing or corrupt cache: derive again


def cache_path(model: torch.nn.Module, key: str) -> Path:
    """Where the assets of ``model`` are cached: beside a shipped model file, else in the user cache."""
    source = Path(getattr(model, "source_path", "") or "")
    if source.parent == ASSET_DIR and source.name.startswith("whmr_anny_"):
        return source.with_suffix(".assets.npz")
    root = Path(os.environ.get("WHMR_CACHE_DIR", Path.home() / ".cache" / "whmr"))
    return root / "body" / f"{key[:32]}.npz"


def body_assets(model: torch.nn.Module, *, rebuild: bool = False, cache: bool = True) -> BodyAssets:
    """The mesh-derived assets of a loaded SMPL-format model (``smplx.SMPL``), cached on disk."""
    arrays = _model_arrays(model)
    key = model_hash(arrays)
    path = cache_path(model, key)
    derived = None if rebuild or not cache else _load(path, key)
    if derived is None:
        derived = derive_assets(arrays)
        if cache:
            try:
                _save(path, key, derived)
            except OSError as exc:  # read-only install or cache: still usable, just slower next time
                warnings.warn(f"could not cache body assets at {path}: {exc}", stacklevel=2)
    merged = {**arrays, **derived}
    tensors = {}
    for field in dataclasses.fields(BodyAssets):
        value = merged[field.name]
        if scipy.sparse.issparse(value):
            value = value.toarray()
        dtype = torch.long if field.name in ("faces", "marker_ids", "parents") else torch.float32
        tensors[field.name] = torch.as_tensor(np.asarray(value), dtype=dtype)
    return BodyAssets(**tensors)

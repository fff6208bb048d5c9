"""A synthetic SMPL-format body model (any vertex count) for tests and benchmarks, not for users.

It has the SMPL kinematic tree (24 joints), 10 shape components, full-size pose correctives and the
asset fields of ``whmr_core.body.BodyAssets`` (regressors, down/upsampling matrices, markers), so the
network can be built and exercised without a licensed or shipped model. With ``n_vertices=6890`` the
sizes match SMPL (sparse 431, intermediate 1723, 67 markers) for realistic benchmarks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from whmr_core.body.skeleton import SMPL_PARENTS, kintree_table

__all__ = ["StandinAssets", "make_standin_body"]
# Rest joint positions (metres, y up, facing +z), roughly SMPL's neutral T-pose.
_JOINTS = np.array(
    [
        [0.0, 0.0, 0.0], [0.06, -0.09, 0.0], [-0.06, -0.09, 0.0], [0.0, 0.11, -0.02],
        [0.1, -0.47, 0.0], [-0.1, -0.47, 0.0], [0.0, 0.24, -0.01], [0.09, -0.87, -0.03],
        [-0.09, -0.87, -0.03], [0.0, 0.3, 0.0], [0.11, -0.93, 0.1], [-0.11, -0.93, 0.1],
        [0.0, 0.5, -0.01], [0.08, 0.42, -0.01], [-0.08, 0.42, -0.01], [0.0, 0.6, 0.03],
        [0.17, 0.45, -0.01], [-0.17, 0.45, -0.01], [0.43, 0.44, -0.03], [-0.43, 0.44, -0.03],
        [0.68, 0.45, -0.03], [-0.68, 0.45, -0.03], [0.77, 0.45, -0.03], [-0.77, 0.45, -0.03],
    ],
    dtype=np.float64,
)  # fmt: skip
# COCO-17 and H36M-17 keypoints as SMPL joints (stand-in regressors only).
_COCO = (15, 15, 15, 15, 15, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)
_H36M = (0, 2, 5, 8, 1, 4, 7, 6, 12, 15, 15, 16, 18, 20, 17, 19, 21)


@dataclass(frozen=True)
class StandinAssets:
    """Same fields as ``whmr_core.body.BodyAssets``."""

    template: torch.Tensor
    faces: torch.Tensor
    joint_regressor: torch.Tensor
    coco_regressor: torch.Tensor
    h36m_regressor: torch.Tensor
    down_intermediate: torch.Tensor
    down_sparse: torch.Tensor
    up_intermediate: torch.Tensor
    up_full: torch.Tensor
    sparse_template: torch.Tensor
    marker_ids: torch.Tensor
    parents: torch.Tensor


def _grouping(n_from: int, n_to: int) -> np.ndarray:
    """(n_to, n_from) averaging matrix over contiguous groups."""
    groups = (np.arange(n_from) * n_to) // n_from
    m = np.zeros((n_to, n_from))
    m[groups, np.arange(n_from)] = 1.0
    return m / m.sum(1, keepdims=True)


def _upsampling(n_from: int, n_to: int) -> np.ndarray:
    """(n_to, n_from): each fine vertex copies its group's coarse vertex (rows sum to 1)."""
    groups = (np.arange(n_to) * n_from) // n_to
    m = np.zeros((n_to, n_from))
    m[np.arange(n_to), groups] = 1.0
    return m


def make_standin_body(n_vertices: int = 384, n_markers: int = 24, seed: int = 0):
    """Return ``(smplx.SMPL, StandinAssets)`` for a synthetic body with ``n_vertices`` (>= 96) vertices."""
    import smplx

    if n_vertices < 96:
        raise ValueError("n_vertices: need at least 96 (4 per joint)")
    rng = np.random.default_rng(seed)
    nj = len(SMPL_PARENTS)
    owner = np.arange(n_vertices) * nj // n_vertices  # contiguous clusters, one per joint
    verts = np.empty((n_vertices, 3))
    for j in range(nj):
        idx = np.flatnonzero(owner == j)
        off = rng.normal(scale=0.04, size=(len(idx), 3))
        verts[idx] = _JOINTS[j] + off - off.mean(0)  # cluster mean == joint: regressor is exact at rest
    j_reg = np.zeros((nj, n_vertices))
    j_reg[owner, np.arange(n_vertices)] = 1.0
    j_reg /= j_reg.sum(1, keepdims=True)
    weights = np.zeros((n_vertices, nj))
    weights[np.arange(n_vertices), owner] = 0.8
    par = np.array([max(p, 0) for p in SMPL_PARENTS])[owner]
    weights[np.arange(n_vertices), par] += 0.2
    faces = np.array(
        [[i, i + 1, i + 2] for i in range(n_vertices - 2) if owner[i] == owner[i + 2]], dtype=np.int64
    )
    shapedirs = rng.normal(scale=0.01, size=(n_vertices, 3, 10))
    posedirs = rng.normal(scale=0.002, size=(n_vertices, 3, 207))
    kintree = np.array(kintree_table(), dtype=np.int64)
    arrays = dict(
        v_template=verts,
        shapedirs=shapedirs,
        posedirs=posedirs,
        J_regressor=j_reg,
        weights=weights,
        kintree_table=kintree,
        f=faces,
    )
    names = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe"]
    names += ["RHeel"] + [h + t for h in "lr" for t in ("thumb", "index", "middle", "ring", "pinky")]
    vid = {k: i * (n_vertices // len(names)) for i, k in enumerate(names)}  # never smplx's SMPL-H defaults
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a 10-betas warning
            model = smplx.SMPL(model_path="", data_struct=smplx.utils.Struct(**arrays), vertex_ids=vid)
    v1 = max(n_vertices // 4, 24)
    s = max(v1 // 4, 24)
    down_i = _grouping(n_vertices, v1)
    down_s = _grouping(v1, s)
    f32 = torch.float32
    t = lambda a: torch.as_tensor(a, dtype=f32)  # noqa: E731
    assets = StandinAssets(
        template=t(verts),
        faces=torch.as_tensor(faces),
        joint_regressor=t(j_reg),
        coco_regressor=t(j_reg[list(_COCO)]),
        h36m_regressor=t(j_reg[list(_H36M)]),
        down_intermediate=t(down_i),
        down_sparse=t(down_s),
        up_intermediate=t(_upsampling(s, v1)),
        up_full=t(_upsampling(v1, n_vertices)),
        sparse_template=t(down_s @ down_i @ verts),
        marker_ids=torch.as_tensor(np.linspace(0, n_vertices - 1, n_markers).round().astype(np.int64)),
        parents=torch.as_tensor(SMPL_PARENTS, dtype=torch.long),
    )
    return model, assets

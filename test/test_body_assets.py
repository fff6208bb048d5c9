"""Mesh-derived assets: shapes, consistency of the sampling hierarchy, regressors, caching."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from whmr_core.body import BodyAssets, body_assets, load_body_model
from whmr_core.body.assets import derive_assets

FIELDS = (
    "template", "faces", "joint_regressor", "coco_regressor", "h36m_regressor", "down_intermediate",
    "down_sparse", "up_intermediate", "up_full", "sparse_template", "marker_ids", "parents",
)  # fmt: skip


@pytest.fixture(scope="module", params=["lowres", "full"])
def model_and_assets(request):
    model = load_body_model(variant=request.param)
    return model, body_assets(model)


def test_exact_fields_and_frozen(model_and_assets):
    _, a = model_and_assets
    assert tuple(f.name for f in dataclasses.fields(BodyAssets)) == FIELDS
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.template = None


def test_shapes_follow_the_model(model_and_assets):
    model, a = model_and_assets
    v, v1, s = a.num_vertices, a.num_intermediate, a.num_sparse
    assert v == model.v_template.shape[0]
    assert a.faces.shape == model.faces_tensor.shape and a.faces.dtype == torch.long
    assert a.joint_regressor.shape == (24, v) and a.coco_regressor.shape == (17, v)
    assert a.h36m_regressor.shape == (17, v)
    assert a.down_intermediate.shape == (v1, v) and a.down_sparse.shape == (s, v1)
    assert a.up_intermediate.shape == (v1, s) and a.up_full.shape == (v, v1)
    assert a.sparse_template.shape == (s, 3)
    assert 400 <= s <= 460 and s < v1 < v
    assert a.marker_ids.shape == (67,) and a.marker_ids.dtype == torch.long
    assert len(set(a.marker_ids.tolist())) == 67 and int(a.marker_ids.max()) < v
    assert torch.equal(a.parents, model.parents)
    for name in FIELDS:
        t = getattr(a, name)
        assert torch.isfinite(t.float()).all(), name


def test_down_then_up_is_identity_on_sparse(model_and_assets):
    _, a = model_and_assets
    down = a.down_sparse @ a.down_intermediate
    up = a.up_full @ a.up_intermediate
    assert torch.allclose(down @ up, torch.eye(a.num_sparse), atol=1e-5)
    assert torch.allclose(down @ a.template, a.sparse_template, atol=1e-6)
    # Upsampling interpolates (rows are convex weights) and the round trip stays close to the surface.
    assert torch.allclose(a.up_full.sum(1), torch.ones(a.num_vertices), atol=1e-5)
    assert (a.up_full >= 0).all() and (a.up_intermediate >= 0).all()
    err = (up @ a.sparse_template - a.template).norm(dim=1)
    assert err.mean() < 0.01 and err.max() < 0.06


def test_regressors_on_posed_body(model_and_assets):
    model, a = model_and_assets
    pose = 0.3 * torch.randn(2, 69, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(body_pose=pose, betas=torch.zeros(2, 10), global_orient=torch.zeros(2, 3))
    v = out.vertices
    # 24-joint regressor = the model's own (smplx regresses joints at rest; posed ones differ slightly).
    assert torch.allclose(a.joint_regressor, model.J_regressor.float())
    rows = a.coco_regressor.sum(1), a.h36m_regressor.sum(1)
    for r in rows:
        assert torch.allclose(r, torch.ones_like(r), atol=1e-5)
    coco = torch.einsum("kv,nvc->nkc", a.coco_regressor, v)
    h36m = torch.einsum("kv,nvc->nkc", a.h36m_regressor, v)
    # COCO nose = smplx's nose extra joint; COCO/H36M left wrist close to SMPL's posed left wrist.
    assert torch.allclose(coco[:, 0], out.joints[:, 24], atol=1e-5)
    assert (coco[:, 9] - out.joints[:, 20]).norm(dim=-1).max() < 0.02
    assert (h36m[:, 13] - out.joints[:, 20]).norm(dim=-1).max() < 0.02
    # H36M head top is above the neck/nose point, which is above the thorax, at rest.
    rest = torch.einsum("kv,vc->kc", a.h36m_regressor, a.template)
    assert rest[10, 1] > rest[9, 1] > rest[8, 1] > rest[7, 1] > rest[0, 1]


def test_markers_are_spread(model_and_assets):
    _, a = model_and_assets
    m = a.template[a.marker_ids]
    d = torch.cdist(m, m) + torch.eye(len(m))
    assert d.min() > 0.05  # no two markers within 5 cm
    assert (m[:, 0] > 0.3).any() and (m[:, 0] < -0.3).any() and (m[:, 1] < -0.7).any()  # hands, feet


def test_cache_round_trip_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("WHMR_CACHE_DIR", str(tmp_path))
    model = load_body_model(variant="lowres")
    model.source_path = str(tmp_path / "user_model.npz")  # not a shipped file: user cache
    a = body_assets(model)
    files = list((tmp_path / "body").glob("*.npz"))
    assert len(files) == 1
    b = body_assets(model)
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    # A different model (changed template) gets its own assets, not the cached ones.
    with torch.no_grad():
        model.v_template.mul_(1.1)
    c = body_assets(model)
    assert len(list((tmp_path / "body").glob("*.npz"))) == 2
    assert torch.allclose(c.template, 1.1 * a.template)
    assert torch.allclose(c.down_sparse @ c.down_intermediate @ c.template, c.sparse_template, atol=1e-6)


def test_shipped_cache_matches_fresh_derivation():
    model = load_body_model(variant="lowres")
    cached = body_assets(model)
    fresh = body_assets(model, cache=False)
    for name in FIELDS:
        assert torch.allclose(getattr(cached, name).float(), getattr(fresh, name).float(), atol=1e-6), name


def test_smpl_sized_mesh_hierarchy():
    """On a 6890-vertex mesh (the decimated free model stands in for SMPL): 6890 -> ~1723 -> ~431."""
    from whmr_core.body.hierarchy import decimate

    model = load_body_model(variant="full")
    t = model.v_template.double().numpy()
    kept, faces = decimate(t, model.faces_tensor.numpy(), 6890)
    arrays = {
        "template": t[kept],
        "faces": faces,
        "joint_regressor": model.J_regressor.double().numpy()[:, kept].copy(),
        "weights": model.lbs_weights.double().numpy()[kept],
        "parents": model.parents.numpy(),
    }
    arrays["joint_regressor"] /= arrays["joint_regressor"].sum(1, keepdims=True)
    d = derive_assets(arrays)
    assert abs(len(kept) - 6890) < 100
    assert abs(d["down_intermediate"].shape[0] - 1723) < 60
    assert abs(d["down_sparse"].shape[0] - 431) < 30

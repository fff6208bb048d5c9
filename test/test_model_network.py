"""The W-HMR network: shapes, initialisation, determinism, gradients, OrientCorrect, crop geometry, inputs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from whmr_core import geometry
from whmr_core.model import build_model
from whmr_core.model.body_layer import BodyLayer, mean_rotmats
from whmr_core.model.config import config_from_dict, get_config
from whmr_core.model.pyramid import box_to_crop_coords, fixed_grid, sample_points
from whmr_core.rotations import axis_angle_to_matrix, rot6d_to_matrix


def _inputs(n: int, crop_hw: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    crops = torch.randn(n, 3, *crop_hw, generator=g)
    centre = torch.tensor([[700.0, 420.0]]).repeat(n, 1) + torch.rand(n, 2, generator=g) * 100
    size = 200.0 + torch.rand(n, generator=g) * 100
    wh = torch.tensor([[1280.0, 720.0]]).repeat(n, 1)
    return crops, geometry.glob_info(centre, size, wh)


@pytest.fixture(scope="module")
def small(net_body):
    torch.manual_seed(0)
    return build_model("small-cpu", net_body).eval()


def _check_shapes(out, n: int, net_body, variant: str, model) -> None:
    _, assets = net_body
    v = assets.template.shape[0]
    pts = assets.sparse_template.shape[0] if variant == "hybrid" else assets.marker_ids.shape[0]
    assert out.vertices.shape == (n, v, 3)
    assert out.world_vertices.shape == (n, v, 3)
    assert out.joints.shape == out.world_joints.shape == (n, 24, 3)
    assert out.coco_joints.shape == out.h36m_joints.shape == (n, 17, 3)
    assert out.rotmats.shape == (n, 24, 3, 3)
    assert out.betas.shape == (n, 10)
    assert out.cam_crop.shape == out.translation.shape == (n, 3)
    assert out.tz.shape == out.focal.shape == (n,)
    assert out.world_root.shape == out.cam_root.shape == out.cam_rotation.shape == (n, 3, 3)
    assert out.sparse_vertices.shape == (n, pts, 3)
    kinds = [it.kind for it in out.iterations]
    assert kinds == (["param", "param", "vertex"] if variant == "hybrid" else ["param"] * 3)
    for it in out.iterations:
        assert it.vertices.shape == (n, v, 3) and it.rotmats.shape == (n, 24, 3, 3)
    assert out.iterations[0].sample_points.shape == (n, math.prod(model.config.pyramid.grid_hw), 2)
    assert out.iterations[-1].sample_points.shape == (n, pts, 2)
    assert all(torch.isfinite(t).all() for t in (out.vertices, out.world_vertices, out.tz, out.focal))
    assert bool(((out.tz > 0) & (out.tz < 10)).all())


@pytest.mark.parametrize("n", [1, 3])
def test_small_shapes_eval(small, net_body, n):
    crops, gi = _inputs(n, small.crop_hw)
    with torch.no_grad():
        out = small(crops, gi)
    _check_shapes(out, n, net_body, "hybrid", small)
    assert out.aux is None
    assert torch.equal(out.cam_rotation, torch.eye(3).expand(n, 3, 3))


def test_small_shapes_train_with_aux(net_body):
    torch.manual_seed(1)
    model = build_model("small-cpu", net_body).train()
    crops, gi = _inputs(3, model.crop_hw)
    out = model(crops, gi)
    _check_shapes(out, 3, net_body, "hybrid", model)
    h, w = model.crop_hw[0] // 4, model.crop_hw[1] // 4  # Phi_3 is 8x the 1/32 backbone map
    assert out.aux.part_logits.shape == out.aux.u.shape == out.aux.v.shape == (3, 25, h, w)
    assert out.aux.inverse_depth.shape == (3, 1, h, w)
    assert bool((out.aux.inverse_depth > 0).all()) and bool(((out.aux.u >= 0) & (out.aux.u <= 1)).all())


@pytest.mark.parametrize("n", [1, 3])
def test_small_param_variant_shapes(net_body, n):
    cfg = config_from_dict({"base": "small-cpu", "name": "small-param", "variant": "param"})
    model = build_model(cfg, net_body).eval()
    assert model.vertex_regressor is None and len(model.param_regressors) == 3
    with torch.no_grad():
        out = model(*_inputs(n, model.crop_hw))
    _check_shapes(out, n, net_body, "param", model)
    # Final mesh of the P variant is the net_body model of the final parameters.
    verts, _ = model.body(out.rotmats, out.betas)
    torch.testing.assert_close(out.vertices, verts)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r50-hybrid", "vitb-hybrid", "vitb-param"])
def test_big_config_shapes(big_model, net_body, name):
    model = big_model(name)
    with torch.no_grad():  # batch sizes 1 and 3 are covered on small-cpu; one batch of 2 here
        _check_shapes(model(*_inputs(2, model.crop_hw)), 2, net_body, get_config(name).variant, model)


def test_body_layer_matches_smplx(net_body):
    smpl, assets = net_body
    layer = BodyLayer(smpl, assets)
    torch.manual_seed(0)
    aa = torch.randn(2, 24, 3) * 0.6
    betas = torch.randn(2, 10)
    verts, joints = layer(axis_angle_to_matrix(aa), betas)
    ref = smpl(betas=betas, global_orient=aa[:, 0], body_pose=aa[:, 1:].reshape(2, -1))
    torch.testing.assert_close(verts, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, ref.joints[:, :24], atol=1e-5, rtol=0)


def test_mean_parameters_are_the_mean_pose(net_body, small):
    smpl, _ = net_body
    mean = small.mean_params(1)
    rot = rot6d_to_matrix(mean.pose)
    torch.testing.assert_close(rot, mean_rotmats(24)[None])
    assert torch.equal(mean.betas, torch.zeros(1, 10))
    torch.testing.assert_close(mean.cam_crop, torch.tensor([[0.9, 0.0, 0.0]]))
    verts, _ = small.body(rot, mean.betas)
    ref = smpl(global_orient=torch.tensor([[math.pi, 0.0, 0.0]]), body_pose=torch.zeros(1, 69))
    torch.testing.assert_close(verts, ref.vertices, atol=1e-5, rtol=0)
    # Upright and facing the camera: head above feet in the image (y down), front towards -z (camera).
    proj = geometry.weak_perspective_project(verts, mean.cam_crop)
    assert bool((proj.abs() < 1).all())
    j = small.regress_joints(verts)[0][0]
    assert j[15, 1] < j[0, 1] < j[7, 1]  # head, pelvis, ankle
    assert j[10, 2] < j[7, 2]  # toes are nearer the camera than the ankle


def test_initialisation_reproduces_mean(net_body):
    exact = config_from_dict({"base": "small-cpu", "regressor": {"init_gain": 0.0}})
    torch.manual_seed(0)
    model = build_model(exact, net_body).eval()
    with torch.no_grad():
        out = model(*_inputs(2, model.crop_hw))
        mean = model.mean_params(2)
        mean_verts, _ = model.body(rot6d_to_matrix(mean.pose), mean.betas)
    for it in out.iterations[:2]:
        assert torch.equal(it.pose6d, mean.pose) and torch.equal(it.cam_crop, mean.cam_crop)
        torch.testing.assert_close(it.vertices, mean_verts)
    # Default (small) output gain: the iterations start near the mean.
    torch.manual_seed(0)
    model = build_model("small-cpu", net_body).eval()
    with torch.no_grad():
        out = model(*_inputs(2, model.crop_hw))
    assert (out.rotmats - mean_rotmats(24)).abs().max() < 0.1
    assert out.betas.abs().max() < 0.1 and (out.cam_crop - mean.cam_crop).abs().max() < 0.1
    # A residual vertex head starts at the upsampled sparse mesh of the last parameter iteration.
    residual = config_from_dict({"base": "small-cpu", "vertex": {"head": "residual"}})
    torch.manual_seed(0)
    model = build_model(residual, net_body).eval()
    with torch.no_grad():
        out = model(*_inputs(2, model.crop_hw))
    up = model.upsampler(out.iterations[1].sparse_vertices)
    assert (out.vertices - up).abs().max() < 0.05


def test_upsampler_initialised_from_body_assets(small, net_body):
    _, assets = net_body
    assert torch.equal(small.upsampler.to_intermediate, assets.up_intermediate)
    assert torch.equal(small.upsampler.to_full, assets.up_full)
    assert small.upsampler.to_full.requires_grad


def test_eval_is_deterministic(small):
    crops, gi = _inputs(2, small.crop_hw)
    with torch.no_grad():
        a, b = small(crops, gi), small(crops, gi)
    for name in ("vertices", "world_vertices", "tz", "focal", "world_root", "translation"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_batch_items_are_independent_in_eval(small):
    crops, gi = _inputs(3, small.crop_hw)
    with torch.no_grad():
        full = small(crops, gi)
        one = small(crops[1:2], gi[1:2])
    torch.testing.assert_close(full.vertices[1:2], one.vertices, atol=1e-5, rtol=1e-4)


# A gradient below this is float noise, not a trained path (real ones here are >= 1e-4): a parameter right
# before a BatchNorm, e.g., gets ~1e-9 from rounding, and Adam would still move it.
GRAD_NOISE = 1e-6


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {
        n: (p.grad is not None and float(p.grad.abs().max()) > GRAD_NOISE)
        for n, p in model.named_parameters()
    }


def _all_losses(model, n=3):
    crops, gi = _inputs(n, model.crop_hw)
    g = torch.tensor([[0.0, 0.9, 0.3], [0.1, 1.0, -0.2], [-0.2, 1.0, 0.1]])[:n]
    out = model(crops, gi, geometry.camera_rotation_from_gravity(g))
    cam_loss = sum(
        it.vertices.square().mean() + it.joints.square().mean() + it.cam_crop.square().mean()
        for it in out.iterations
    )
    depth = (out.tz - torch.linspace(2.0, 6.0, n)).square().mean()  # BN over the batch: needs targets
    cam_loss = cam_loss + depth + out.focal.mean() + out.translation.square().mean()
    world_loss = out.world_root.sum() + out.world_vertices.square().mean()
    aux_loss = torch.zeros(())
    if out.aux is not None:
        aux = out.aux
        aux_loss = aux.part_logits.mean() + aux.u.mean() + aux.v.mean() + aux.inverse_depth.mean()
    return out, cam_loss, world_loss, aux_loss


@pytest.mark.slow
def test_gradients_reach_every_parameter(net_body):
    torch.manual_seed(0)
    model = build_model("small-cpu", net_body).train()
    out, cam_loss, world_loss, aux_loss = _all_losses(model)

    every = _grads(model, cam_loss + world_loss + aux_loss)
    assert [n for n, ok in every.items() if not ok] == []

    cam_only = _grads(model, cam_loss)
    assert not any(ok for n, ok in cam_only.items() if n.startswith(("orient_correct.", "aux_heads.")))
    assert all(ok for n, ok in cam_only.items() if n.startswith(("param_regressors.", "vertex_regressor.")))
    assert all(ok for n, ok in cam_only.items() if n.startswith(("upsampler.", "depth_head.", "backbone.")))
    # phi_3^s is the vertex regressor's global token (release default): the camera-side losses train
    # every point MLP, so no stage leaves point_mlps.2 at its initial values.
    assert all(ok for n, ok in cam_only.items() if n.startswith("point_mlps."))
    world_root = _grads(model, out.world_root.sum())
    assert all(ok for n, ok in world_root.items() if n.startswith("orient_correct."))
    aux = _grads(model, aux_loss)
    assert all(ok for n, ok in aux.items() if n.startswith("aux_heads."))
    assert not any(ok for n, ok in aux.items() if n.startswith(("param_regressors.", "orient_correct.")))


# Parameter groups that no camera-side loss reaches, by design, per config. Keep this list explicit: any
# other group without a camera-side gradient is a dead parameter that no stage but III could train.
CAMERA_SIDE_ALLOWED_DEAD = {
    # Schema-1 hybrid configs (the shipped small-cpu checkpoint): the vertex regressor's global token is
    # glob info + camera, so point_mlps.2 feeds only OrientCorrect; the trainer trains it in stage III,
    # with OrientCorrect (it feeds nothing camera-side). The plain MLP's last bias sits right before
    # regressor.feature_norm (a BatchNorm), which removes any constant: exactly zero gradient in training.
    # (The PIFu MLP's final ReLU sits between them in new configs.)
    "legacy-hybrid": (
        "point_mlps.2.",
        "orient_correct.",
        "point_mlps.0.net.4.bias",
        "point_mlps.1.net.4.bias",
    ),
    "small-cpu": ("orient_correct.",),
}


@pytest.mark.parametrize("which", ["small-cpu", "legacy-hybrid"])
def test_camera_side_dead_groups_are_the_allowed_ones(net_body, which):
    from whmr_core.model.config import config_from_stored, config_to_dict

    cfg = get_config("small-cpu")
    if which == "legacy-hybrid":
        stored = config_to_dict(cfg)
        for section, keys in {"pyramid": ["point_mlp"], "regressor": ["activation", "detach"]}.items():
            for k in keys:
                del stored[section][k]
        del stored["vertex"]["head"], stored["vertex"]["global_token"], stored["schema"]
        cfg = config_from_stored(stored)
    torch.manual_seed(0)
    model = build_model(cfg, net_body).train()
    _, cam_loss, _, _ = _all_losses(model)
    dead = sorted(n for n, ok in _grads(model, cam_loss).items() if not ok and not n.startswith("aux_heads."))
    allowed = CAMERA_SIDE_ALLOWED_DEAD[which]
    assert [n for n in dead if not n.startswith(allowed)] == []
    assert {a for a in allowed if any(n.startswith(a) for n in dead)} == set(allowed)


def _zero_residual(model) -> None:
    last = model.orient_correct.fc[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


@pytest.mark.slow
def test_orient_correct_identity_camera_returns_camera_root(net_body):
    torch.manual_seed(0)
    model = build_model("small-cpu", net_body).eval()
    _zero_residual(model)
    crops, gi = _inputs(2, model.crop_hw)
    with torch.no_grad():
        for rc in (None, torch.eye(3).expand(2, 3, 3)):
            out = model(crops, gi, rc)
            torch.testing.assert_close(out.world_root, out.cam_root, atol=1e-6, rtol=0)
            pelvis = out.joints[:, :1]
            torch.testing.assert_close(out.world_vertices, out.vertices - pelvis, atol=1e-5, rtol=0)
        # Eq. 6 is a residual on R_b^c: with zero residual R_c only enters through the FC input.
        tilted = geometry.camera_rotation_from_gravity(torch.tensor([[0.0, 1.0, 0.5], [0.3, 1.0, 0.0]]))
        out = model(crops, gi, tilted)
        torch.testing.assert_close(out.world_root, out.cam_root, atol=1e-6, rtol=0)
    # A non-zero residual moves the root and keeps it a rotation.
    with torch.no_grad():
        model.orient_correct.fc[-1].bias.copy_(torch.tensor([0.0, 0.3, 0.2, 0.0, -0.1, 0.1]))
        r = model(crops, gi, tilted).world_root
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(2), atol=1e-5, rtol=0)


def test_translation_and_focal_follow_eq3_eq4_in_pixels(small):
    crops, _ = _inputs(2, small.crop_hw)
    centre = torch.tensor([[900.0, 300.0], [200.0, 500.0]])
    size = torch.tensor([250.0, 180.0])
    wh = torch.tensor([[1280.0, 720.0], [640.0, 960.0]])
    with torch.no_grad():
        out = small(crops, geometry.glob_info(centre, size, wh))
    f_px = geometry.focal_from_depth(out.cam_crop[:, 0], size, out.tz)
    torch.testing.assert_close(out.focal_pixels(wh), f_px)
    t_px = geometry.full_image_translation(out.cam_crop, centre, size, wh, out.tz)
    torch.testing.assert_close(out.translation, t_px, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.vertices_in_camera, out.vertices + t_px[:, None], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("crop_hw", [(256, 192), (224, 224), (128, 96)])
def test_non_square_sampling_lands_on_drawn_vertex(net_body, crop_hw):
    """Project a mesh vertex with the crop camera, draw it into the square box image, cut the network crop
    out of that image the way crops are made, and sample the drawn image where the network samples."""
    _, assets = net_body
    h, w = crop_hw
    side = max(h, w)
    vert = (assets.template @ mean_rotmats(24)[0].T)[[7]]  # a vertex, (1,3)
    s = 0.8
    u0, v0 = int(side * 0.8), int(side * 0.3)  # target pixel in the square box image, right of centre
    # Camera that puts the vertex at that pixel's centre: s (X + t) = 2 (u + 0.5) / side - 1.
    tx = (2 * (u0 + 0.5) / side - 1) / s - vert[0, 0]
    ty = (2 * (v0 + 0.5) / side - 1) / s - vert[0, 1]
    cam = torch.tensor([[s, float(tx), float(ty)]])
    square = torch.zeros(side, side)
    square[v0, u0] = 1.0
    top, left = (side - h) // 2, (side - w) // 2
    crop = square[top : top + h, left : left + w][None, None]
    proj = geometry.weak_perspective_project(vert[None], cam)  # (1,1,2) in box coords
    points = box_to_crop_coords(proj, crop_hw)
    assert float(sample_points(crop, points)) == pytest.approx(1.0, abs=1e-5)
    # Coordinates on a coarser feature map (Phi-like, 1/8 resolution) land in the same cell.
    yy, xx = torch.meshgrid(torch.arange(h // 8.0), torch.arange(w // 8.0), indexing="ij")
    coords = torch.stack([xx, yy])[None]
    sampled = sample_points(coords, points)[0, :, 0]
    expect = torch.tensor([(u0 - left + 0.5) / 8 - 0.5, (v0 - top + 0.5) / 8 - 0.5])
    torch.testing.assert_close(sampled, expect, atol=1e-4, rtol=0)
    if h != w:  # the released code's square assumption misses the drawn pixel
        assert float(sample_points(crop, proj)) == 0.0


def test_network_samples_where_the_previous_mesh_projects(small):
    with torch.no_grad():
        out = small(*_inputs(2, small.crop_hw))
    torch.testing.assert_close(out.iterations[0].sample_points, fixed_grid((8, 8)).expand(2, -1, -1))
    prev = out.iterations[0]
    expect = box_to_crop_coords(
        geometry.weak_perspective_project(prev.sparse_vertices, prev.cam_crop), (128, 128)
    )
    torch.testing.assert_close(out.iterations[1].sample_points, expect)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c, g, r: (c[:, :, :64], g, r), "crops: config 'small-cpu' expects 128x128"),
        (lambda c, g, r: (c[:, :1], g, r), "crops: expected 3 colour channels"),
        (lambda c, g, r: (c[0], g, r), "crops: expected a \\(N, 3, H, W\\)"),
        (
            lambda c, g, r: (c.masked_fill(torch.rand_like(c) < 0.01, float("nan")), g, r),
            "crops: contains non-finite",
        ),
        (lambda c, g, r: (c, g * float("inf"), r), "glob_info: contains non-finite"),
        (lambda c, g, r: (c, g[:, :4], r), "glob_info: expected shape"),
        (lambda c, g, r: (c, -g, r), "glob_info: box size"),
        (lambda c, g, r: (c, g[:1], r), "batch sizes differ"),
        (lambda c, g, r: (c, g, r[:, :2]), "cam_rotation: expected shape"),
        (lambda c, g, r: (c, g, r * float("nan")), "cam_rotation: contains non-finite"),
        (lambda c, g, r: (c.to(torch.int64), g, r), "crops: expected a floating-point"),
    ],
)
def test_bad_inputs_raise_naming_the_input(small, mutate, needle):
    crops, gi = _inputs(2, small.crop_hw)
    rc = torch.eye(3).expand(2, 3, 3).clone()
    with pytest.raises(ValueError, match=needle), torch.no_grad():
        small(*mutate(crops, gi, rc))


def test_build_model_rejects_unknown_name(net_body):
    with pytest.raises(ValueError, match="unknown model config"):
        build_model("r51-hybrid", net_body)


def test_model_sized_from_body(net_body):
    from whmr_core.model.standin_body import make_standin_body

    bigger = make_standin_body(n_vertices=600, n_markers=30)
    cfg = dataclasses.replace(get_config("small-cpu"), variant="param", name="p")
    model = build_model(cfg, bigger).eval()
    with torch.no_grad():
        out = model(*_inputs(1, model.crop_hw))
    assert out.vertices.shape == (1, 600, 3) and out.sparse_vertices.shape == (1, 30, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r50-hybrid", "vitb-hybrid", "vitb-param", "vitb-param-release"])
def test_big_config_forward_backward(big_model, name):
    # big_model switches stochastic depth off: it can drop a whole block for a small batch.
    model = big_model(name).train()
    _, cam_loss, world_loss, aux_loss = _all_losses(model)
    every = _grads(model, cam_loss + world_loss + aux_loss)
    model.eval().zero_grad(set_to_none=True)
    assert [n for n, ok in every.items() if not ok] == []


@pytest.fixture(scope="module")
def shipped_lowres():
    from whmr_core.body import body_assets, load_body_model

    model = load_body_model(variant="lowres")
    return model, body_assets(model)


@pytest.mark.parametrize("variant", ["hybrid", "param"])
def test_shipped_lowres_body(shipped_lowres, variant):
    """The network sizes itself from the shipped (free) body model and starts upright, facing the camera."""
    cfg = config_from_dict({"base": "small-cpu", "name": f"small-{variant}", "variant": variant})
    torch.manual_seed(0)
    model = build_model(cfg, shipped_lowres).eval()
    with torch.no_grad():
        out = model(*_inputs(2, model.crop_hw))
        mean = model.mean_params(1)
        verts, _ = model.body(rot6d_to_matrix(mean.pose), mean.betas)
    _check_shapes(out, 2, shipped_lowres, variant, model)
    j = model.regress_joints(verts)[0][0]
    assert j[15, 1] < j[0, 1] < j[7, 1] and j[10, 2] < j[7, 2]
    assert bool((geometry.weak_perspective_project(verts, mean.cam_crop).abs() < 1).all())

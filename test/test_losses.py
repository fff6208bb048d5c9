"""Losses against hand-computed values, masking rules and gradient flow."""

from __future__ import annotations

import math

import pytest
import torch

from whmr_core import losses as L


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_masked_mean_leaves_unlabelled_samples_out():
    v = t([1.0, 3.0, 100.0])
    assert float(L.masked_mean(v, torch.tensor([True, True, False]))) == 2.0
    x = t([5.0]).requires_grad_()
    zero = L.masked_mean(x * 2, torch.tensor([False]))
    assert float(zero.detach()) == 0.0
    zero.backward()
    assert x.grad is not None and float(x.grad) == 0.0


def test_keypoint_3d_loss_is_root_aligned_mse():
    pred = t([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    target = pred + t([5.0, -2.0, 1.0])  # pure translation: zero after root alignment
    assert float(L.keypoint_3d_loss(pred, target)) == pytest.approx(0.0)
    target2 = t([[[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]]])
    # Joint 1 is off by 2 in y: squared error 4, mean over xyz (nn.MSELoss) 4/3, over 2 joints -> 2/3.
    assert float(L.keypoint_3d_loss(pred, target2)) == pytest.approx(2 / 3)
    # Confidence 0 on joint 1 removes it.
    assert float(L.keypoint_3d_loss(pred, target2, conf=t([[1.0, 0.0]]))) == pytest.approx(0.0)


def test_full2_loss_by_hand():
    image_wh = t([[200.0, 100.0]])
    bbox = t([50.0])
    pred = t([[[110.0, 50.0]]])
    target = t([[[100.0, 50.0]]])
    # Normalised x error 10 / 100 = 0.1, squared 0.01, times W / b = 4 -> 0.04; mean over (x, y) -> 0.02.
    assert float(L.full2_keypoint_loss(pred, target, image_wh, bbox)) == pytest.approx(0.02)
    pred_y = t([[[100.0, 55.0]]])
    # y error 5 / 50 = 0.1, squared 0.01, times H / b = 2 -> 0.02; mean over (x, y) -> 0.01.
    assert float(L.full2_keypoint_loss(pred_y, target, image_wh, bbox)) == pytest.approx(0.01)


def test_full2_loss_is_linear_in_the_box_weights():
    """Eq. 5 multiplies the squared error by (W/w, H/h): half the box, twice the loss (not four times)."""
    image_wh = t([[1280.0, 720.0], [640.0, 480.0]])
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 5, 2, generator=gen, dtype=torch.float64) * 400
    pred = target + torch.randn(2, 5, 2, generator=gen, dtype=torch.float64) * 20
    big = L.full2_keypoint_loss(pred, target, image_wh, t([150.0, 220.0]))
    half = L.full2_keypoint_loss(pred, target, image_wh, t([75.0, 110.0]))
    assert float(half / big) == pytest.approx(2.0, rel=1e-12)
    # A 150 px box in a 1280-wide image: weight 1280 / 150 = 8.53 on the squared x error (not 8.53^2).
    one = L.full2_keypoint_loss(t([[[650.0, 360.0]]]), t([[[640.0, 360.0]]]), image_wh[:1], t([150.0]))
    assert float(one) == pytest.approx((10 / 640) ** 2 * 1280 / 150 / 2)


def test_crop_vertex_param_losses_by_hand():
    # Means over coordinates, as the release's nn.MSELoss / nn.L1Loss.
    assert float(L.crop_keypoint_loss(t([[[0.5, 0.0]]]), t([[[0.0, 0.0]]]))) == pytest.approx(0.125)
    assert float(L.vertex_loss(t([[[1.0, -1.0, 0.0]]]), t([[[0.0, 0.0, 0.0]]]))) == pytest.approx(2 / 3)
    eye = torch.eye(3, dtype=torch.float64).expand(1, 2, 3, 3)
    pose, betas = L.smpl_param_loss(eye * 2, eye, t([[1.0, 0.0]]), t([[0.0, 0.0]]))
    # |2I - I|^2 = 3 ones out of 18 entries; betas (1 + 0) / 2.
    assert float(pose) == pytest.approx(3 / 9)
    assert float(betas) == pytest.approx(0.5)


def test_each_term_has_the_papers_weight():
    """Section 4.1 values on the terms of eq. 10-12; eq. 8 has no lambda; stage III reuses lambda_1/6/8."""
    w = L.LOSS_WEIGHTS
    assert (w["keypoint_3d"], w["crop_keypoint_2d"], w["full2_keypoint_2d"]) == (300.0, 300.0, 300.0)
    assert (w["vertex_sparse"], w["vertex_intermediate"], w["vertex_full"]) == (15.0, 15.0, 15.0)
    assert (w["smpl_betas"], w["smpl_pose"]) == (0.06, 60.0)
    assert (w["part_ce"], w["uv_u"], w["uv_v"], w["inverse_depth"]) == (0.03, 0.05, 0.05, 0.05)
    assert w["focal"] == 1.0
    assert w["camera_scale"] == 1.0  # the release's loss_cam, unweighted
    assert (w["world_keypoint_3d"], w["world_vertex"], w["world_pose"]) == (
        w["keypoint_3d"],
        w["vertex_full"],
        w["smpl_pose"],
    )


def test_focal_loss_is_relative_to_the_pseudo_label():
    wh = t([[300.0, 400.0]])  # diagonal 500
    assert float(L.focal_loss(t([500.0]), wh)) == pytest.approx(0.0)
    assert float(L.focal_loss(t([750.0]), wh)) == pytest.approx(0.25)


def test_camera_scale_prior_by_hand_and_its_pull():
    """The release's exp(-10 s)^2: 1 at s = 0, e^-2 at s = 0.1, ~0 at a plausible s; it pushes s up."""
    s = t([0.0, 0.1, 0.9]).requires_grad_()
    per = [float(L.camera_scale_loss(s[i : i + 1])) for i in range(3)]
    assert per == pytest.approx([1.0, math.exp(-2.0), math.exp(-18.0)], rel=1e-6)
    (g,) = torch.autograd.grad(L.camera_scale_loss(s), [s])
    assert float(g[0]) == pytest.approx(-20.0 / 3) and bool((g < 0).all())


def test_iuv_and_depth_losses():
    logits = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    uv = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    # Uniform logits over 3 classes: cross-entropy log(3); no body pixel -> no U or V term.
    ce, u, v = L.iuv_loss(logits, uv, target, uv.clone())
    assert (float(ce), float(u), float(v)) == (pytest.approx(math.log(3)), 0.0, 0.0)
    target[0, 0, 0] = 1
    target_uv = uv.clone()
    target_uv[0, 0, 0, 0] = 0.5  # U off by 0.5 on the 1 body pixel: smooth-L1 0.125; V exact
    ce, u, v = L.iuv_loss(logits, uv, target, target_uv)
    assert (float(ce), float(u), float(v)) == (pytest.approx(math.log(3)), pytest.approx(0.125), 0.0)
    pred, tgt = torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.ones(1, 1, 2, 2, dtype=torch.float64)
    valid = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    valid[0, 0, 0, 0] = True
    assert float(L.inverse_depth_loss(pred, tgt, valid)) == pytest.approx(0.5)


def test_gradients_reach_predictions():
    pred = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    loss = L.full2_keypoint_loss(
        pred * 100 + 300,
        torch.full((2, 4, 2), 300.0, dtype=torch.float64),
        t([[640.0, 480.0]] * 2),
        t([100.0, 200.0]),
        mask=torch.tensor([True, False]),
    )
    loss.backward()
    assert pred.grad[0].abs().sum() > 0
    assert float(pred.grad[1].abs().sum()) == 0.0  # masked sample gets no gradient

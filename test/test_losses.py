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
    # Joint 1 is off by 2 in y: squared error 4, mean over 2 joints -> 2.
    assert float(L.keypoint_3d_loss(pred, target2)) == pytest.approx(2.0)
    # Confidence 0 on joint 1 removes it.
    assert float(L.keypoint_3d_loss(pred, target2, conf=t([[1.0, 0.0]]))) == pytest.approx(0.0)


def test_full2_loss_by_hand():
    image_wh = t([[200.0, 100.0]])
    bbox = t([50.0])
    pred = t([[[110.0, 50.0]]])
    target = t([[[100.0, 50.0]]])
    # Normalised x error: 10 / 100 = 0.1, weighted by W / b = 4 -> 0.4, squared 0.16.
    assert float(L.full2_keypoint_loss(pred, target, image_wh, bbox)) == pytest.approx(0.16)
    pred_y = t([[[100.0, 55.0]]])
    # y error 5 / 50 = 0.1, weight H / b = 2 -> 0.2, squared 0.04.
    assert float(L.full2_keypoint_loss(pred_y, target, image_wh, bbox)) == pytest.approx(0.04)


def test_crop_vertex_param_losses_by_hand():
    assert float(L.crop_keypoint_loss(t([[[0.5, 0.0]]]), t([[[0.0, 0.0]]]))) == pytest.approx(0.25)
    assert float(L.vertex_loss(t([[[1.0, -1.0, 0.0]]]), t([[[0.0, 0.0, 0.0]]]))) == pytest.approx(2.0)
    eye = torch.eye(3, dtype=torch.float64).expand(1, 2, 3, 3)
    pose, betas = L.smpl_param_loss(eye * 2, eye, t([[1.0, 0.0]]), t([[0.0, 0.0]]))
    # |2I - I|^2 = 3 ones out of 18 entries; betas (1 + 0) / 2.
    assert float(pose) == pytest.approx(3 / 9)
    assert float(betas) == pytest.approx(0.5)


def test_focal_loss_is_relative_to_the_pseudo_label():
    wh = t([[300.0, 400.0]])  # diagonal 500
    assert float(L.focal_loss(t([500.0]), wh)) == pytest.approx(0.0)
    assert float(L.focal_loss(t([750.0]), wh)) == pytest.approx(0.25)


def test_iuv_and_depth_losses():
    logits = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    uv = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    # Uniform logits over 3 classes: cross-entropy log(3); no body pixel -> no UV term.
    assert float(L.iuv_loss(logits, uv, target, uv.clone())) == pytest.approx(math.log(3))
    target[0, 0, 0] = 1
    target_uv = uv.clone()
    target_uv[0, :, 0, 0] = 0.5  # smooth-L1(0.5) = 0.125 on 2 channels of 1 body pixel
    assert float(L.iuv_loss(logits, uv, target, target_uv)) == pytest.approx(math.log(3) + 0.125)
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

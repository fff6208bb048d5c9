"""The movenet backbone (issue 23): MoveNet Thunder's trunk rebuilt from the shipped ONNX file as torch
modules matches ONNX Runtime on the same sub-graph (input normalisation included), stays frozen, is not
stored in checkpoints, and the whole network on it exports to ONNX with eager parity."""

from __future__ import annotations

import numpy as np
import onnx.utils
import onnxruntime as ort
import pytest
import torch

from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD
from whmr_core.model import build_model
from whmr_core.model.backbones.movenet import FPN_OUTPUTS, KEYPOINT_HEADS, MoveNetBackbone
from whmr_core.model.config import ConfigError, config_from_dict, get_config
from whmr_core.model.pyramid import MultiScalePyramid
from whmr_core.runtime.pose_models import verified_path


@pytest.fixture(scope="module")
def movenet() -> MoveNetBackbone:
    return MoveNetBackbone().eval()


def test_trunk_matches_onnxruntime_on_the_same_subgraph(movenet, tmp_path):
    """The FPN maps (strides 16, 8, 4) of a random 256x256 picture: ONNX Runtime runs the graph's own
    sub-graph from its uint8-valued NHWC input (its Cast, normalisation and transpose included), torch runs
    whmr's ImageNet-normalised NCHW crop of the same pixels."""
    sub = tmp_path / "thunder-fpn.onnx"
    onnx.utils.extract_model(str(verified_path("movenet-thunder")), str(sub), ["input"], list(FPN_OUTPUTS))
    session = ort.InferenceSession(str(sub), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3))
    ref = session.run(None, {"input": pixels.astype(np.int32)})
    crop = ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    with torch.no_grad():
        got = movenet(torch.from_numpy(crop).permute(0, 3, 1, 2))
    assert [tuple(g.shape) for g in got] == [(1, 32, 16, 16), (1, 24, 32, 32), (1, 24, 64, 64)]
    assert movenet.feature_channels == (32, 24, 24)
    for r, g in zip(ref, got, strict=True):
        assert np.abs(r).max() > 1.0  # a live map, not zeros
        np.testing.assert_allclose(g.numpy(), r, atol=2e-4, rtol=1e-4)


def test_keypoint_maps_are_movenets_own_heads(tmp_path):
    """backbone.keypoint_maps: the stride-4 map followed by MoveNet's heatmaps (its sigmoid applied) and
    offsets, as ONNX Runtime computes them on the graph's own sub-graph."""
    sub = tmp_path / "thunder-heads.onnx"
    outputs = [FPN_OUTPUTS[2], *KEYPOINT_HEADS]
    onnx.utils.extract_model(str(verified_path("movenet-thunder")), str(sub), ["input"], outputs)
    session = ort.InferenceSession(str(sub), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(1).integers(0, 256, (1, 256, 256, 3))
    m4, heatmap_logits, offsets = session.run(None, {"input": pixels.astype(np.int32)})
    crop = ((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    backbone = MoveNetBackbone(keypoint_maps=True).eval()
    assert backbone.feature_channels == (32, 24, 24 + 17 + 34)
    with torch.no_grad():
        got = backbone(torch.from_numpy(crop).permute(0, 3, 1, 2))[2].numpy()
    ref = np.concatenate([m4, 1.0 / (1.0 + np.exp(-heatmap_logits)), offsets], axis=1)
    assert got.shape == ref.shape == (1, 75, 64, 64)
    assert np.abs(offsets).max() > 1.0
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="only the movenet backbone has keypoint heads"):
        config_from_dict({"base": "small-cpu", "backbone": {"keypoint_maps": True}})


def test_trunk_is_frozen_and_not_in_the_state_dict(movenet):
    assert list(movenet.parameters()) == []
    assert movenet.state_dict() == {}
    # MobileNetV2+FPN up to the stride-4 map: 6.2 M weights (PROBE.md), fp32 after the fp16 file's Cast.
    weights = sum(b.numel() for b in movenet.buffers())
    assert 6.0e6 < weights < 6.5e6
    assert all(b.dtype == torch.float32 for b in movenet.buffers())


def test_network_on_movenet_trains_only_above_the_trunk(net_body):
    torch.manual_seed(0)
    model = build_model(
        config_from_dict({"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64]}}), net_body
    )
    assert isinstance(model.pyramid, MultiScalePyramid)
    assert not any(k.startswith("backbone.") for k in model.state_dict())
    crops = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = model.train()(crops, torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6]] * 2))
    phis = model.pyramid(model.backbone(crops))
    assert [tuple(p.shape[-2:]) for p in phis] == [(4, 4), (8, 8), (16, 16)]  # strides 16, 8, 4
    out.iterations[-1].vertices.square().mean().backward()
    assert all(p.grad is not None for p in model.pyramid.laterals.parameters())
    assert crops.grad is not None and crops.grad.abs().sum() > 0  # gradients pass through the trunk


def test_movenet_config_wants_multiples_of_32():
    assert get_config("movenet-cpu").backbone.crop_hw == (192, 192)
    with pytest.raises(ConfigError, match="MoveNet needs multiples of 32"):
        config_from_dict({"base": "movenet-cpu", "backbone": {"crop_hw": [200, 192]}})


def test_movenet_refuses_a_pretrained_file(net_body):
    cfg = config_from_dict({"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64], "pretrained": "x.pt"}})
    with pytest.raises(ValueError, match="leave pretrained unset"):
        build_model(cfg, net_body)


@pytest.mark.slow
def test_movenet_network_exports_and_matches_onnxruntime(net_body, tmp_path):
    from test_model_export import _export_and_compare

    torch.manual_seed(0)
    cfg = config_from_dict({"base": "movenet-cpu", "backbone": {"crop_hw": [96, 64]}})
    _export_and_compare(build_model(cfg, net_body), tmp_path, n_run=2)

"""backbone.tune_fpn (issue 23's low-rate schedule): MoveNet's FPN and keypoint heads train through deltas
on top of the file's weights, MobileNetV2 below them stays frozen. With the deltas at 0 the split backbone
is the frozen one (and ONNX Runtime's run of the same sub-graph); gradients reach the deltas and nothing
else of the backbone; the stages train the deltas as any backbone weight; the feature cache holds the
frozen part and the step runs the tuned part on it; the network exports with eager parity; checkpoints
carry the deltas; the option off builds today's network exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx.utils
import onnxruntime as ort
import pytest
import torch
import yaml
from test_training import tiny_config, tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.checkpoint import architecture_hash, load_checkpoint, save_checkpoint
from whmr_core.config_io import ConfigError
from whmr_core.data.batch import collate, network_crops
from whmr_core.model import build_model
from whmr_core.model.backbones.movenet import FPN_INPUTS, FPN_OUTPUTS, KEYPOINT_HEADS, MoveNetBackbone
from whmr_core.model.config import config_from_dict, config_from_stored, config_to_dict
from whmr_core.runtime.pose_models import verified_path
from whmr_core.training.batch import Batch
from whmr_core.training.feature_cache import (
    MAP_KEY,
    FeatureCache,
    build_feature_cache,
    cached_features,
    check_cacheable,
)
from whmr_core.training.stages import configure_stage
from whmr_core.training.trainer import Trainer, build_datasets, build_network

SHIPPED = Path(__file__).resolve().parents[1] / "whmr_core/assets/checkpoints/movenet-keypoints-cpu-synthetic"


@pytest.fixture(scope="module")
def pair() -> tuple[MoveNetBackbone, MoveNetBackbone]:
    """The frozen backbone and the split one, both with MoveNet's keypoint maps."""
    return MoveNetBackbone(keypoint_maps=True).eval(), MoveNetBackbone(
        keypoint_maps=True, tune_fpn=True
    ).eval()


def _crops(n: int = 2, hw: tuple[int, int] = (64, 96), seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, *hw, generator=torch.Generator().manual_seed(seed))


def _randomise_deltas(module: torch.nn.Module, scale: float = 0.05, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "delta_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def test_split_with_zero_deltas_is_the_frozen_backbone(pair):
    frozen, split = pair
    # The split: MobileNetV2 up to the FPN's four inputs, frozen; the FPN and heads above, 16 convolutions.
    assert split.frozen_channels == (40, 56, 112, 1280)
    assert split.feature_channels == frozen.feature_channels == (32, 24, 24 + 17 + 34)
    assert len(split.tuned.convs) == 16
    assert list(split.frozen.parameters()) == []
    assert {n.rsplit(".", 1)[1] for n, _ in split.named_parameters()} == {"delta_weight", "delta_bias"}
    assert all(float(p.detach().abs().max()) == 0 for p in split.parameters())
    x = _crops()
    with torch.no_grad():
        a, b = frozen(x), split(x)
        c = split.tuned_maps(split.frozen_maps(x))
    for u, v, w in zip(a, b, c, strict=True):
        assert torch.equal(u, v) and torch.equal(v, w)


def test_tuned_part_matches_onnxruntime_on_the_same_subgraph(pair, tmp_path):
    """ONNX Runtime runs the graph's own sub-graph from the FPN's four inputs to the FPN's outputs and the
    heads' logits/offsets; torch runs the tuned part (deltas 0) on the same four maps (of a 256x256 crop:
    the file's shapes are fixed)."""
    _, split = pair
    sub = tmp_path / "thunder-fpn-part.onnx"
    outputs = [*FPN_OUTPUTS, *KEYPOINT_HEADS]
    onnx.utils.extract_model(str(verified_path("movenet-thunder")), str(sub), list(FPN_INPUTS), outputs)
    session = ort.InferenceSession(str(sub), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        maps = split.frozen_maps(_crops(1, (256, 256)))
        got = split.tuned(maps)
    ref = session.run(None, {name: m.numpy() for name, m in zip(FPN_INPUTS, maps, strict=True)})
    assert [tuple(g.shape[1:]) for g in got] == [(32, 16, 16), (24, 32, 32), (24, 64, 64), (17, 64, 64),
                                                 (34, 64, 64)]  # fmt: skip
    for r, g in zip(ref, got, strict=True):
        assert np.abs(r).max() > 0.5
        np.testing.assert_allclose(g.numpy(), r, atol=2e-4, rtol=1e-4)


def test_deltas_move_each_layer_at_its_own_scale():
    """w = w0 + rms(w0) * delta: a delta of e changes every output channel's weights by e times their rms,
    however large or small the file's weights are."""
    split = MoveNetBackbone(tune_fpn=True)
    for conv in split.tuned.convs:
        w0 = conv.weight.clone()
        with torch.no_grad():
            conv.delta_weight.fill_(0.01)
        x = torch.randn(1, w0.shape[1] * conv.groups, 5, 5)
        moved = conv(x) - torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, conv.pad) if not conv.symmetric else x,
            w0, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups,
        )  # fmt: skip
        rms = w0.flatten(1).square().mean(1).sqrt()
        step = (conv.weight + conv.weight_scale * conv.delta_weight - w0).flatten(1)
        torch.testing.assert_close(step, (0.01 * rms)[:, None].expand_as(step))
        assert moved.abs().max() > 0


def test_gradients_reach_the_deltas_and_nothing_frozen(net_body):
    cfg = config_from_dict(
        {"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64], "keypoint_maps": True, "tune_fpn": True}}
    )
    torch.manual_seed(0)
    model = build_model(cfg, net_body).train()
    backbone = model.backbone
    deltas = dict(backbone.named_parameters())
    assert deltas and all(n.startswith("tuned.convs.") for n in deltas)
    out = model(_crops(2, (64, 64)), torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6]] * 2))
    out.iterations[-1].vertices.square().mean().backward()
    assert all(p.grad is not None for p in deltas.values())
    assert sum(int(p.grad.abs().sum() > 0) for p in deltas.values()) >= len(deltas) - 2
    # Everything else of the backbone is a buffer: nothing there can receive a gradient or an update.
    assert all(not b.requires_grad for b in backbone.buffers())
    # The stage rules: stages I and II train the deltas as any backbone weight; stage III does not.
    for stage, trains in ((1, True), (2, True), (3, False)):
        configure_stage(model, stage)
        assert all(p.requires_grad == trains for p in deltas.values()), stage


def test_option_off_builds_todays_network():
    """tune_fpn false (the default) builds the shipped architecture: the same state-dict names and shapes
    (no backbone entry at all) as the shipped movenet-keypoints-cpu checkpoint, on its own body."""
    from whmr_core.body import resolve

    meta = json.loads((SHIPPED / "meta.json").read_text())
    stored = meta["config"]["model"]
    assert "tune_fpn" not in stored["backbone"]  # stored before the option: read with its default
    body = resolve(meta["config"]["body"]).load()
    assert config_from_stored(stored).backbone.tune_fpn is False
    off = config_from_stored({**stored, "backbone": {**stored["backbone"], "tune_fpn": False}})
    assert off.backbone.tune_fpn is False and off.backbone.tune_lr_scale == 0.1
    model = build_model(off, body)
    assert not any(k.startswith("backbone.") for k in model.state_dict())
    assert architecture_hash(model.state_dict()) == meta["architecture"]
    on = build_model(replace(off, backbone=replace(off.backbone, tune_fpn=True)), body)
    extra = set(on.state_dict()) - set(model.state_dict())
    assert extra and all(k.startswith("backbone.tuned.convs.") for k in extra)
    assert set(model.state_dict()) <= set(on.state_dict())


def test_tune_fpn_config_is_movenet_only():
    with pytest.raises(ConfigError, match="only the movenet backbone has an FPN"):
        config_from_dict({"base": "small-cpu", "backbone": {"tune_fpn": True}})
    with pytest.raises(ConfigError, match="tune_lr_scale"):
        config_from_dict({"base": "movenet-cpu", "backbone": {"tune_fpn": True, "tune_lr_scale": 0}})


def test_checkpoint_round_trip_carries_the_deltas(net_body, tmp_path):
    cfg = config_from_dict({"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64], "tune_fpn": True}})
    torch.manual_seed(0)
    a = build_model(cfg, net_body).eval()
    _randomise_deltas(a.backbone)
    save_checkpoint(tmp_path / "ck", a.state_dict(), config={"model": config_to_dict(cfg)})
    torch.manual_seed(1)
    b = build_model(cfg, net_body).eval()
    load_checkpoint(tmp_path / "ck", b)
    for (n, p), (_, q) in zip(a.backbone.named_parameters(), b.backbone.named_parameters(), strict=True):
        assert torch.equal(p, q), n
    x, gi = _crops(2, (64, 64)), torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6]] * 2)
    with torch.no_grad():
        torch.testing.assert_close(b(x, gi).vertices, a(x, gi).vertices, rtol=0, atol=0)


def test_tuned_network_exports_and_matches_onnxruntime(net_body, tmp_path):
    from test_model_export import _export_and_compare

    cfg = config_from_dict(
        {"base": "movenet-cpu", "backbone": {"crop_hw": [96, 64], "keypoint_maps": True, "tune_fpn": True}}
    )
    torch.manual_seed(0)
    model = build_model(cfg, net_body)
    _randomise_deltas(model.backbone)  # a tuned network, not the file's
    _export_and_compare(model, tmp_path, n_run=2)


def _config(root: Path, tmp: Path, **model):
    path = tmp / "movenet-tuned-tiny.yaml"
    backbone = {"crop_hw": [64, 64], "keypoint_maps": True, "tune_fpn": True, **model}
    path.write_text(yaml.safe_dump({"base": "movenet-cpu", "backbone": backbone}))
    base = tiny_config(root)
    data = replace(base.data, augment=False, maps=False, feature_cache=str(tmp / "cache"))
    return replace(base, model=str(path), data=data)


def test_cache_of_the_frozen_part_and_the_tuned_part_give_the_backbone(tiny_data, tmp_path):  # noqa: F811
    cfg = _config(tiny_data, tmp_path)
    torch.manual_seed(0)
    model = build_network(cfg).eval()
    _randomise_deltas(model.backbone)
    check_cacheable(model, augment=False, copies=1, maps=False, mix=False)  # only tuned weights train
    train, _ = build_datasets(cfg, max(model.crop_hw))
    cache = build_feature_cache(cfg.data.feature_cache, train, model, batch_size=3)
    meta = json.loads((Path(cfg.data.feature_cache) / "meta.json").read_text())
    assert meta["cached"] == {"part": "movenet-fpn-inputs", "channels": [40, 56, 112, 1280]}
    rows = [0, 3]
    items = [cache[i] for i in rows]
    assert [tuple(items[0][f"{MAP_KEY}{k}"].shape) for k in range(4)] == [
        (40, 16, 16), (56, 8, 8), (112, 4, 4), (1280, 2, 2)
    ]  # fmt: skip
    batch = Batch.from_collated(collate(items))
    crops = network_crops(model.crop_hw, collate([train[i] for i in rows])["img"])
    with torch.no_grad():
        whole = model.backbone(crops)
        from_cache = cached_features(model, list(batch.features))
    for w, c in zip(whole, from_cache, strict=True):
        assert w.abs().max() > 0.1
        # the float16 rounding of the cached maps, through the tuned FPN
        torch.testing.assert_close(c, w, rtol=1e-2, atol=2e-2)
    # The frozen-everything config's cache is another cache: its fingerprint differs, so it is rebuilt.
    frozen = build_network(replace(cfg, model=str(_plain_model(tmp_path)))).eval()
    other = build_feature_cache(cfg.data.feature_cache, train, frozen, batch_size=8)
    assert FeatureCache(other.folder).levels == 3
    assert "cached" not in json.loads((Path(cfg.data.feature_cache) / "meta.json").read_text())


def _plain_model(tmp: Path) -> Path:
    path = tmp / "movenet-tiny.yaml"
    path.write_text(
        yaml.safe_dump({"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64], "keypoint_maps": True}})
    )
    return path


def test_trainer_tunes_the_fpn_on_the_cache_at_its_own_rate(tiny_data, tmp_path):  # noqa: F811
    cfg = _config(tiny_data, tmp_path, tune_lr_scale=0.25)
    trainer = Trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.train_items, FeatureCache)
    st = trainer._start_stage(2, resume=False)
    lrs = [g["lr"] for g in st.optimizer.param_groups]
    assert lrs == [pytest.approx(cfg.stage2.lr), pytest.approx(cfg.stage2.lr * 0.25)]
    tuned = {id(p) for p in trainer.model.backbone.parameters()}
    assert {id(p) for p in st.optimizer.param_groups[1]["params"]} == tuned
    assert st.optimizer.param_groups[1]["initial_lr"] == pytest.approx(cfg.stage2.lr * 0.25)
    assert st.optimizer.param_groups[0]["initial_lr"] == pytest.approx(cfg.stage2.lr)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run([1, 2, 3])
    after = trainer.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("backbone.tuned.") for k in moved)
    assert {k.split(".")[0] for k in moved} >= {"backbone", "pyramid", "param_regressors", "orient_correct"}


def test_cache_refuses_a_backbone_trained_below_the_cache(tiny_data, tmp_path):  # noqa: F811
    cfg = _config(tiny_data, tmp_path)
    model = build_network(cfg)
    model.backbone.frozen.extra = torch.nn.Linear(1, 1)  # a weight in the cached part
    with pytest.raises(ConfigError, match="below what would be cached"):
        check_cacheable(model, augment=False, copies=1, maps=False, mix=False)

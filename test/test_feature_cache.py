"""The feature cache (issue 23): the frozen movenet backbone's maps of the training crops, computed once,
give the network and the objective what running the backbone on the crops gives (up to the float16 the
maps are stored in), hold each copy's own augmentation, are rebuilt when the run changes, and are refused
where they would change what trains."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_training import tiny_config, tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.config_io import ConfigError
from whmr_core.data.batch import collate, network_crops
from whmr_core.training.batch import Batch
from whmr_core.training.config import DataConfig, StageConfig, TrainConfig
from whmr_core.training.feature_cache import MAP_KEY, FeatureCache, build_feature_cache
from whmr_core.training.objective import compute_losses
from whmr_core.training.stages import configure_stage, stage_rules
from whmr_core.training.trainer import Trainer, build_datasets, build_network


def _config(root: Path, tmp: Path, **data) -> TrainConfig:
    """movenet-cpu's heads with MoveNet's keypoint maps, on 64x64 crops of the tiny set."""
    model = tmp / "movenet-tiny.yaml"
    model.write_text(
        yaml.safe_dump({"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64], "keypoint_maps": True}})
    )
    base = tiny_config(root)
    data = {"augment": False, "maps": False, "feature_cache": str(tmp / "cache"), **data}
    d = replace(base.data, **data)
    return replace(base, model=str(model), data=d)


@pytest.fixture(scope="module")
def cached(tiny_data, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("cache")
    cfg = _config(tiny_data, tmp, augment=True, cache_copies=2)
    torch.manual_seed(0)
    model = build_network(cfg).eval()
    train, _ = build_datasets(cfg, max(model.crop_hw))
    cache = build_feature_cache(cfg.data.feature_cache, train, model, copies=2, batch_size=3)
    return cfg, model, train, cache


def test_cached_maps_and_labels_are_the_crops_own(cached):
    _, model, train, cache = cached
    n = len(train)
    assert len(cache) == 2 * n
    for copy, index in ((0, 1), (1, 1), (1, n - 1)):
        train.set_epoch(copy)  # copy c holds epoch c's augmentation
        ref = train[index]
        item = cache[copy * n + index]
        with torch.no_grad():
            maps = model.backbone(network_crops(model.crop_hw, ref["img"][None]))
        assert [tuple(m.shape[1:]) for m in maps] == [(32, 4, 4), (24, 8, 8), (24 + 17 + 34, 16, 16)]
        for k, m in enumerate(maps):
            got = item[f"{MAP_KEY}{k}"]
            assert got.dtype == torch.float32
            # float16 storage: half a unit in the last place, 2**-11 relative; fp32 noise of another batch
            torch.testing.assert_close(got, m[0], rtol=2**-11, atol=1e-4)
        for key, value in ref.items():
            if key not in ("img", "bad_samples") and isinstance(value, torch.Tensor):
                torch.testing.assert_close(item[key], value, rtol=0, atol=0, msg=key)
    train.set_epoch(0)
    # The two copies are different augmentations of the same image.
    assert not torch.equal(cache[1][f"{MAP_KEY}2"], cache[n + 1][f"{MAP_KEY}2"])
    assert not torch.equal(cache[1]["glob_info"], cache[n + 1]["glob_info"])


def test_cached_forward_and_losses_match_the_uncached(cached):
    """The same batch through the network from crops and from the cache: the same outputs and losses."""
    cfg, model, train, cache = cached
    n = len(train)
    rows = [0, 2, 3]
    train.set_epoch(1)
    images = Batch.from_collated(collate([train[i] for i in rows]))
    train.set_epoch(0)
    maps = Batch.from_collated(collate([cache[n + i] for i in rows]))
    assert maps.img is None and maps.features is not None and len(maps.features) == 3
    configure_stage(model, 2)
    model.eval()  # no dropout: the two passes are compared output for output
    with torch.no_grad():
        a = model(network_crops(model.crop_hw, images.img), images.glob_info, images.cam_rotation)
        b = model.forward_features(list(maps.features), maps.glob_info, maps.cam_rotation)
    assert a.vertices.abs().max() > 0.1
    # within a millimetre: the float16 rounding of the maps, through the untrained heads
    torch.testing.assert_close(b.vertices, a.vertices, rtol=0, atol=1e-3)
    torch.testing.assert_close(b.world_vertices, a.world_vertices, rtol=0, atol=1e-3)
    torch.testing.assert_close(b.focal, a.focal, rtol=1e-4, atol=0)
    la = compute_losses(a, images, model, stage_rules(2), cfg.weights)
    lb = compute_losses(b, maps, model, stage_rules(2), cfg.weights)
    assert la.keys() == lb.keys()
    for k in la:
        torch.testing.assert_close(lb[k], la[k], rtol=1e-3, atol=1e-5, msg=k)


def test_cache_is_reused_then_rebuilt_when_the_run_changes(cached):
    cfg, model, train, cache = cached
    folder = Path(cfg.data.feature_cache)
    stamp = (folder / f"{MAP_KEY}0.npy").stat().st_mtime_ns
    again = build_feature_cache(folder, train, model, copies=2)
    assert (folder / f"{MAP_KEY}0.npy").stat().st_mtime_ns == stamp
    assert len(again) == len(cache)
    one = build_feature_cache(folder, train, model, copies=1, batch_size=8)
    assert len(one) == len(train)
    assert not folder.with_name(folder.name + ".building").exists()
    # back to two copies for the other tests of this module
    build_feature_cache(folder, train, model, copies=2, batch_size=8)
    assert len(FeatureCache(folder)) == 2 * len(train)


def test_trainer_trains_every_stage_on_the_cache(tiny_data, tmp_path):  # noqa: F811
    cfg = _config(tiny_data, tmp_path)
    steps = StageConfig(epochs=1, max_steps=2, lr=1e-4)
    cfg = replace(cfg, stage1=steps, stage2=steps, stage3=steps)
    trainer = Trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.train_items, FeatureCache)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run([1, 2, 3])
    after = trainer.model.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"pyramid", "param_regressors", "orient_correct"} <= moved
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        ("small-cpu", {}, "weights a stage trains"),
        (None, {"cache_copies": 2}, "would all be the same"),
        (None, {"maps": True}, "data.maps: false"),
    ],
)
def test_cache_refused_where_it_would_change_training(tiny_data, tmp_path, model, data, message):  # noqa: F811
    cfg = _config(tiny_data, tmp_path)
    cfg = replace(cfg, data=replace(cfg.data, **data), model=model or cfg.model)
    with pytest.raises(ConfigError, match=message):
        Trainer(cfg, tmp_path / "run")


def test_data_config_rejects_zero_copies():
    with pytest.raises(ConfigError, match="cache_copies"):
        DataConfig(cache_copies=0)
    assert np.isfinite(DataConfig().cache_copies)

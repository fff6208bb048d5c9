"""Mixed training: sets drawn at their ratios (exactly, reproducibly), the example mixed config on synthetic
stand-ins of every format through all three stages, validation per protocol and the best checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_training import tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.config_io import ConfigError
from whmr_core.data.formats import read_dataset
from whmr_core.data.formats.standins import STANDINS, write_standins
from whmr_core.data.mixing import MixedDataset, mix_counts
from whmr_core.training.config import DataConfig, MixSet, ValSet, load_train_config
from whmr_core.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


class _Sized(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"i": torch.tensor(i)}


def test_mix_draws_each_set_at_its_ratio_reproducibly():
    assert mix_counts([0.3, 0.6, 0.1], 10) == [3, 6, 1]
    assert sum(mix_counts([1, 1, 1], 100)) == 100 and sorted(mix_counts([1, 1, 1], 100)) == [33, 33, 34]
    with pytest.raises(ValueError, match="positive"):
        mix_counts([1, 0], 10)
    mix = MixedDataset([_Sized(5), _Sized(100), _Sized(7)], ["a", "b", "c"], [0.5, 0.3, 0.2], 40)
    order = mix.epoch_order(seed=1, epoch=0)
    assert len(order) == 40 and order == mix.epoch_order(seed=1, epoch=0)
    sources = [mix.locate(i)[0] for i in order]
    assert [sources.count(k) for k in range(3)] == [20, 12, 8]
    # The 5-sample set is cycled: 20 draws are four permutations of it, each sample exactly 4 times.
    a = sorted(mix.locate(i)[1] for i in order if mix.locate(i)[0] == 0)
    assert a == sorted(list(range(5)) * 4)
    assert order != mix.epoch_order(seed=1, epoch=1)
    assert int(mix[order[0]]["source"]) == sources[0]
    assert "a 50.0% (20 of 40 per epoch, 5 people)" in mix.describe()


def test_data_config_checks():
    with pytest.raises(ConfigError, match="either train"):
        DataConfig(train="x.npz", mix=(MixSet("a", "a.npz"),))
    with pytest.raises(ConfigError, match="mix: set names must be unique"):
        DataConfig(mix=(MixSet("a", "a.npz"), MixSet("a", "b.npz")))
    with pytest.raises(ConfigError, match="protocol must be one of"):
        ValSet("v", "v.npz", protocol="lsp")
    cfg = load_train_config(REPO / "training" / "configs" / "paper-mix.yaml")
    assert len(cfg.data.mix) == 11 and {v.protocol for v in cfg.data.validation} >= {
        "3dpw",
        "h36m",
        "mpi-inf-3dhp",
    }
    assert all(Path(m.train).is_absolute() for m in cfg.data.mix)  # relative to the config file
    # The W-HMR release's MixedDataset partition (datasets/mixed_dataset.py at 6dd6c49) and epoch length.
    assert [(m.name, m.ratio) for m in cfg.data.mix] == [
        ("h36m", 0.07), ("mpii-vitpose", 0.05), ("coco-pruned", 0.05), ("coco-vitpose-pruned", 0.05),
        ("mpi-inf-pruned", 0.02), ("ava", 0.18), ("aic", 0.18), ("insta", 0.19), ("agora", 0.07),
        ("3dpw", 0.07), ("humman", 0.07),
    ]  # fmt: skip
    assert math.isclose(sum(m.ratio for m in cfg.data.mix), 1.0) and cfg.data.epoch_size == 165000


@pytest.mark.slow
def test_standins_mix_config_trains_all_stages(tiny_data, tmp_path):  # noqa: F811
    paths = write_standins(tiny_data / "train.npz", tiny_data, tmp_path / "standins")
    assert {read_dataset(p).format for p in paths.values()} == {f for f, _ in STANDINS.values()}
    text = (REPO / "training" / "configs" / "standins-mix.yaml").read_text()
    data = yaml.safe_load(text.replace("../../data/standins", str(tmp_path / "standins")))
    data["stage1"] = data["stage2"] = data["stage3"] = {"epochs": 1, "max_steps": 1, "lr": 1e-4}
    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump(data))
    cfg = load_train_config(config)
    torch.manual_seed(0)
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.train_set.names == [m.name for m in cfg.data.mix]
    trainer.run([1, 2, 3])
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    by_set = {(h["stage"], h["set"]): h for h in history}
    for stage in (1, 2, 3):
        assert (tmp_path / "run" / f"stage{stage}" / "best").is_dir()
        h36m, bedlam = by_set[(stage, "h36m-val")], by_set[(stage, "bedlam-val")]
        assert h36m["samples"] == 8 and np.isfinite(h36m["pa_mpjpe"])  # H36M protocol: 14 joints
        assert bedlam["samples"] == 8 and np.isfinite(bedlam["mpjpe"])  # AGORA protocol, from the meshes
        assert np.isfinite(bedlam["w_mpjpe"])  # BEDLAM's gravity gives world labels
    assert (tmp_path / "run" / "model").is_dir()

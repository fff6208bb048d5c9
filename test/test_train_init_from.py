"""init_from: a run starts from another run's weights where names and shapes match (new parameters keep
their initialisation and are named in the log), refuses a checkpoint whose shared names have other shapes,
and lets the first stage it runs start without an earlier stage of its own."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from test_training import tiny_config, tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.checkpoint import CheckpointError, save_checkpoint
from whmr_core.model import build_model
from whmr_core.model.config import config_from_dict, config_to_dict
from whmr_core.training.config import load_train_config
from whmr_core.training.trainer import Trainer, init_from_checkpoint

GLOB = torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6]] * 2)


def _movenet(tune: bool, **backbone):
    bb = {"crop_hw": [64, 64], "keypoint_maps": True, "tune_fpn": tune, **backbone}
    return config_from_dict({"base": "movenet-cpu", "backbone": bb})


def test_frozen_run_starts_the_tuned_network_exactly(net_body, tmp_path, caplog):
    """movenet-keypoints' weights into its tune_fpn version: every shared weight copied, the deltas new
    (0), so the tuned network computes what the frozen one did."""
    torch.manual_seed(0)
    src = build_model(_movenet(False), net_body).eval()
    save_checkpoint(tmp_path / "ck", src.state_dict(), config={"model": config_to_dict(_movenet(False))})
    torch.manual_seed(1)
    dst = build_model(_movenet(True), net_body).eval()
    with caplog.at_level(logging.INFO, logger="whmr_core.training.trainer"):
        new, unused = init_from_checkpoint(dst, tmp_path / "ck")
    assert new and all(k.startswith("backbone.tuned.convs.") for k in new)
    assert set(new) == {f"backbone.{n}" for n, _ in dst.backbone.named_parameters()}
    assert unused == []
    assert f"{len(new)} new" in caplog.text and "backbone.tuned.convs.0.delta_weight" in caplog.text
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(dst(x, GLOB).vertices, src(x, GLOB).vertices, rtol=0, atol=0)


def test_tuned_run_into_a_frozen_network_leaves_the_deltas_out(net_body, tmp_path, caplog):
    torch.manual_seed(0)
    src = build_model(_movenet(True), net_body)
    save_checkpoint(tmp_path / "ck", src.state_dict())
    dst = build_model(_movenet(False), net_body)
    with caplog.at_level(logging.WARNING, logger="whmr_core.training.trainer"):
        new, unused = init_from_checkpoint(dst, tmp_path / "ck")
    assert new == [] and unused and all(k.startswith("backbone.tuned.") for k in unused)
    assert "not in this network" in caplog.text


def test_other_shapes_are_refused_by_name(net_body, tmp_path):
    torch.manual_seed(0)
    src = build_model(_movenet(False), net_body)
    save_checkpoint(tmp_path / "ck", src.state_dict())
    other = config_from_dict(
        {"base": "movenet-cpu", "backbone": {"crop_hw": [64, 64]}, "regressor": {"hidden": 128}}
    )
    dst = build_model(other, net_body)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"other shapes.*param_regressors\.0\.trunk\.0\.weight"):
        init_from_checkpoint(dst, tmp_path / "ck")
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())  # nothing half-loaded


def test_a_checkpoint_sharing_nothing_is_refused(net_body, tmp_path):
    save_checkpoint(tmp_path / "ck", {"something.else": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="no weight of it"):
        init_from_checkpoint(build_model(_movenet(False), net_body), tmp_path / "ck")


def test_stage_two_starts_from_another_run(tiny_data, tmp_path):  # noqa: F811
    """A fresh run of stage II alone is refused (no stage I of its own) unless init_from names where to
    start; with it, the weights come from the other run and stage II trains on."""
    cfg = tiny_config(tiny_data, model="small-cpu")
    first = Trainer(cfg, tmp_path / "a")
    first.run([1])
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(cfg, tmp_path / "b").run([2])
    start = tmp_path / "a" / "stage1" / "final"
    second = Trainer(replace(cfg, init_from=str(start)), tmp_path / "c")
    second.run([2])
    initial = Trainer(cfg, tmp_path / "d").model.state_dict()  # what the run would start from without it
    from whmr_core.checkpoint import load_weights

    stage1, _ = load_weights(start)
    got, _ = load_weights(tmp_path / "c" / "initial")
    assert all(torch.equal(got[k], stage1[k]) for k in stage1)
    assert any(not torch.equal(got[k], initial[k]) for k in stage1 if initial[k].is_floating_point())
    assert (tmp_path / "c" / "stage2" / "final").is_dir()
    # The next stage of the same run starts from the run's own stage II, not from init_from again.
    second.run([3])
    assert (tmp_path / "c" / "stage3" / "final").is_dir()


def test_init_from_is_relative_to_the_config(tmp_path):
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"model": "small-cpu", "init_from": "../runs/x/stage2/final"}))
    cfg = load_train_config(path)
    assert cfg.init_from == str((tmp_path / "runs/x/stage2/final").resolve())
    assert load_train_config(Path(path), {"init_from": None}).init_from is None

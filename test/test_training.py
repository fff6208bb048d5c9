"""The trainer: stage rules proven with autograd, checkpoints, resume at the same step, and the CLI."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from whmr_core.body import body_assets, load_body_model
from whmr_core.config_io import ConfigError
from whmr_core.data.annotations import annotations_from_scenes, write_annotations
from whmr_core.data.batch import collate as _collate
from whmr_core.data.scene import JointRegressors, SceneConfig, sample_scene_at
from whmr_core.training.cli import main as train_main
from whmr_core.training.config import DataConfig, StageConfig, TrainConfig, load_train_config
from whmr_core.training.objective import compute_losses, ground_truth_meshes
from whmr_core.training.stages import configure_stage, stage_rules
from whmr_core.training.trainer import Trainer, build_datasets, build_network, lr_factor


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Eight synthetic people with exact labels; the pixels are noise (the rules do not need pictures)."""
    root = tmp_path_factory.mktemp("tiny")
    body = load_body_model(variant="lowres")
    regs = JointRegressors.from_assets(body_assets(body))
    scenes = [sample_scene_at(5, i, body, regs, SceneConfig(min_inside=0.95)) for i in range(8)]
    rng = np.random.default_rng(0)
    names = []
    for i, s in enumerate(scenes):
        w, h = s.image_wh
        names.append(f"{i:03d}.png")
        cv2.imwrite(str(root / names[-1]), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    write_annotations(root / "train.npz", annotations_from_scenes(scenes, names))
    return root


def tiny_config(root: Path, **kw) -> TrainConfig:
    data = DataConfig(
        train=str(root / "train.npz"),
        train_images=str(root),
        val=str(root / "train.npz"),
        val_images=str(root),
        augment=True,
        val_max_samples=4,
    )
    steps = StageConfig(epochs=1, max_steps=2, lr=1e-4, train_backbone=True)
    cfg = TrainConfig(
        name="tiny",
        model="small-cpu",
        body="lowres",
        data=data,
        batch_size=2,
        stage1=steps,
        stage2=steps,
        stage3=steps,
        checkpoint_every=1,
        threads=1,
    )
    return replace(cfg, **kw)


@pytest.fixture(scope="module")
def batch_and_model(tiny_data):
    cfg = tiny_config(tiny_data)
    torch.manual_seed(0)
    model = build_network(cfg)
    train, _ = build_datasets(cfg, max(model.crop_hw))
    batch = _collate([train[i] for i in range(3)])
    return model, batch, cfg


def _grads(stage: int, term: str, model, batch, cfg, wrt):
    configure_stage(model, stage, train_backbone=True)
    out = model(batch["img"], batch["glob_info"], batch["cam_rotation"])
    gt = ground_truth_meshes(model, batch)
    losses = compute_losses(out, batch, stage_rules(stage), cfg.weights, gt, model)
    tensors = {
        "cam_crop": out.cam_crop,
        "joints": out.joints,
        "tz": out.tz,
        "iter_joints": out.iterations[-1].joints,
    }
    params = {n: [p for p in getattr(model, n).parameters() if p.requires_grad] for n in wrt}
    tensors = {k: t for k, t in tensors.items() if t.requires_grad}  # frozen outputs get nothing
    got = dict.fromkeys(("cam_crop", "joints", "tz", "iter_joints"), False)
    flat = [t for t in tensors.values()] + [p for ps in params.values() for p in ps]
    g = torch.autograd.grad(losses[term], flat, allow_unused=True, retain_graph=False)
    for name, gi in zip(tensors, g[: len(tensors)], strict=True):
        got[name] = gi is not None and float(gi.abs().sum()) > 0
    i = len(tensors)
    for name, ps in params.items():
        gs = g[i : i + len(ps)]
        i += len(ps)
        got[name] = any(x is not None and float(x.abs().sum()) > 0 for x in gs)
    return got, losses


def test_stage1_full2_only_moves_depth(batch_and_model):
    model, batch, cfg = batch_and_model
    got, losses = _grads(1, "full2_keypoint_2d", model, batch, cfg, ["depth_head", "param_regressors"])
    assert got["tz"] and got["depth_head"]
    assert not got["cam_crop"] and not got["joints"] and not got["param_regressors"]
    got, _ = _grads(1, "focal", model, batch, cfg, ["depth_head", "param_regressors"])
    assert got["depth_head"] and not got["param_regressors"]
    assert "world" not in losses


def test_stage1_crop_loss_trains_regressors_not_orientcorrect(batch_and_model):
    model, batch, cfg = batch_and_model
    got, _ = _grads(1, "crop_keypoint_2d", model, batch, cfg, ["param_regressors"])
    assert got["param_regressors"] and got["cam_crop"] and got["iter_joints"]
    assert not any(p.requires_grad for p in model.orient_correct.parameters())


def test_stage2_detach_rules(batch_and_model):
    model, batch, cfg = batch_and_model
    got, losses = _grads(2, "full2_keypoint_2d", model, batch, cfg, ["depth_head", "backbone"])
    assert got["tz"] and got["joints"] and not got["cam_crop"]
    assert got["backbone"]
    assert "focal" not in losses
    got, _ = _grads(2, "crop_keypoint_2d", model, batch, cfg, ["param_regressors"])
    assert got["cam_crop"] and not got["iter_joints"]


def test_stage3_trains_only_orientcorrect_with_frozen_batchnorm(batch_and_model):
    model, batch, cfg = batch_and_model
    names = configure_stage(model, 3)
    assert names == ["orient_correct"]
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"orient_correct"}
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = bns[0].running_mean.clone()
    got, losses = _grads(3, "world", model, batch, cfg, ["orient_correct"])
    assert got["orient_correct"]
    assert set(losses) == {"world", "total"}
    assert torch.equal(bns[0].running_mean, before)  # frozen statistics do not drift
    # Validation in the middle of a stage must leave the frozen layers in eval mode.
    from torch.utils.data import DataLoader

    from whmr_core.evaluation import CropAdapter, evaluate

    evaluate(
        CropAdapter(model),
        DataLoader(
            [{k: v[i] for k, v in batch.items()} for i in range(3)],
            batch_size=3,
            collate_fn=_collate,
        ),
    )
    assert not any(m.training for m in bns) and model.orient_correct.training


def test_train_all_stages_writes_checkpoints_and_metrics(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data)
    model_dir = Trainer(cfg, tmp_path / "run").run([1, 2, 3])
    for k in (1, 2, 3):
        assert (tmp_path / "run" / f"stage{k}" / "final" / "model.safetensors").is_file()
    assert (model_dir / "model.safetensors").is_file()
    assert (tmp_path / "run" / "initial" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert not list((tmp_path / "run").glob("**/*.tmp"))


class _Crash(RuntimeError):
    pass


def test_lr_factor_warms_up_then_follows_the_schedule():
    assert [lr_factor(k, 10, "constant", 2) for k in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    cos = [lr_factor(k, 10, "cosine", 2) for k in range(10)]
    assert cos[:3] == [0.5, 1.0, 1.0]  # step 2 is the first after warm-up: the full rate
    assert cos[6] == pytest.approx(0.5)  # half-way through the 8 cosine steps
    assert all(a > b for a, b in itertools.pairwise(cos[2:]))
    assert lr_factor(10, 10, "cosine") == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="schedule"):
        StageConfig(schedule="linear")


def test_resume_after_a_crash_continues_at_the_same_step(tiny_data, tmp_path, monkeypatch):
    # A warm-up + cosine schedule: a resume that forgot the scheduler's state would step at another rate.
    steps = StageConfig(
        epochs=2, max_steps=4, lr=1e-3, train_backbone=True, schedule="cosine", warmup_steps=2
    )
    cfg = tiny_config(tiny_data, stage1=steps, checkpoint_every=2)
    cfg = replace(cfg, data=replace(cfg.data, val=None))
    torch.manual_seed(0)
    reference = Trainer(cfg, tmp_path / "ref")
    reference.train_stage(1)
    ref_state = {k: v.clone() for k, v in reference.model.state_dict().items()}

    # Crash on the third step, after the step-2 checkpoint was written.
    import whmr_core.training.trainer as trainer_mod

    calls = {"n": 0}
    real = trainer_mod.compute_losses

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Crash("simulated kill")
        return real(*a, **k)

    monkeypatch.setattr(trainer_mod, "compute_losses", crashing)
    torch.manual_seed(0)
    with pytest.raises(_Crash):
        Trainer(cfg, tmp_path / "run").train_stage(1)
    monkeypatch.setattr(trainer_mod, "compute_losses", real)
    torch.manual_seed(123)  # the resumed run must not depend on the fresh process's seed
    resumed = Trainer(cfg, tmp_path / "run")
    resumed.train_stage(1, resume=True)
    for k, v in resumed.model.state_dict().items():
        assert torch.allclose(v, ref_state[k], atol=1e-6), k


def test_cli_errors_name_the_problem(tmp_path, tiny_data, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": "small-cpu", "batch_sise": 4}))
    assert train_main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "batch_sise" in capsys.readouterr().err
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"data": {"train": "nope.npz", "train_images": "."}}))
    assert train_main(["--config", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "nope.npz" in capsys.readouterr().err
    cfg = load_train_config(missing)
    assert cfg.data.train == str((tmp_path / "nope.npz").resolve())


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "training" / "configs").glob("*.yaml")))
def test_shipped_training_configs_parse(path):
    cfg = load_train_config(path)
    assert cfg.name == path.stem
    assert Path(cfg.data.train).is_absolute()  # resolved against the config file, not the working directory
    from whmr_core.model.config import NAMED_CONFIGS  # the model must be a known config

    assert cfg.model in NAMED_CONFIGS


def test_resume_after_a_crash_between_the_checkpoint_renames(tiny_data, tmp_path, monkeypatch, caplog):
    """Killed after ``last`` -> ``last.old`` and before ``last.tmp`` -> ``last``: --resume continues from
    the newest complete checkpoint (it used to restart the stage silently)."""
    import whmr_core.training.trainer as trainer_mod

    cfg = tiny_config(tiny_data, stage1=StageConfig(epochs=2, max_steps=4, lr=1e-4), checkpoint_every=2)
    cfg = replace(cfg, data=replace(cfg.data, val=None))
    real_rename = Path.rename

    def rename(self, target):
        if self.name == "last.tmp" and (self.parent / "last.old").is_dir():
            raise _Crash("killed between the renames")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(_Crash):
        Trainer(cfg, tmp_path / "run").train_stage(1)  # the step-4 save dies: last.old (2), last.tmp (4)
    monkeypatch.setattr(Path, "rename", real_rename)
    steps = {"n": 0}
    real_losses = trainer_mod.compute_losses

    def counting(*a, **k):
        steps["n"] += 1
        return real_losses(*a, **k)

    monkeypatch.setattr(trainer_mod, "compute_losses", counting)
    Trainer(cfg, tmp_path / "run").train_stage(1, resume=True)
    assert steps["n"] == 0  # resumed at step 4 of 4, nothing retrained
    assert "last.tmp (step 4)" in caplog.text
    stage_dir = next((tmp_path / "run").rglob("last")).parent
    assert sorted(p.name for p in stage_dir.iterdir()) == ["final", "last"]

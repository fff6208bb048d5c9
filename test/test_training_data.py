"""The trainer on what users' data lacks: stages without labels refused with the reason, losses without
labels off and said once, unreadable images skipped and counted, files named relative to their config."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_training import tiny_config, tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.checkpoint import save_checkpoint
from whmr_core.config_io import ConfigError, dataclass_to_dict
from whmr_core.data.annotations import AnnotationError, read_annotations
from whmr_core.data.dataset import HumanDataset
from whmr_core.model import build_model
from whmr_core.model.config import get_config, load_config
from whmr_core.model_io import build_from_checkpoint
from whmr_core.training.config import StageConfig
from whmr_core.training.trainer import Trainer


def _spin_copy(tiny: Path, out: Path, keep: tuple[str, ...]) -> Path:
    """The tiny people as a SPIN-style file (no world labels), with the fields in ``keep``."""
    ann = read_annotations(tiny / "train.npz")
    fields = {k: ann[k] for k in ("imgname", "center", "scale", *keep)}
    path = out / "spin.npz"
    np.savez(path, joints_layout=np.array("smpl24"), **fields)
    return path


def _trainer(tiny: Path, tmp_path: Path, train: Path) -> Trainer:
    cfg = tiny_config(tiny)
    cfg = replace(cfg, data=replace(cfg.data, train=str(train), val=None))
    return Trainer(cfg, tmp_path / "run")


def test_stage3_without_world_labels_is_refused_with_the_reason(tiny_data, tmp_path, caplog):  # noqa: F811
    spin = _spin_copy(tiny_data, tmp_path, ("part", "S", "pose", "shape", "has_smpl"))
    trainer = _trainer(tiny_data, tmp_path, spin)
    with pytest.raises(ConfigError, match=r"stage 3: every loss is off .*world_keypoint_3d.*joints3d_world"):
        trainer.check_stage_losses(3)
    with pytest.raises(ConfigError, match="stage 3"):  # refused before stage I trains
        trainer.run([1, 2, 3])
    assert not (tmp_path / "run" / "stage1").exists()
    # Stage I has its labels; only 2D joints: the 3D and SMPL terms are off, said once with the reason.
    assert "keypoint_3d" in trainer.check_stage_losses(1)
    only_2d = _spin_copy(tiny_data, tmp_path, ("part",))
    trainer = _trainer(tiny_data, tmp_path, only_2d)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="whmr_core.training.trainer"):
        active = trainer.check_stage_losses(1)
    assert set(active) == {"crop_keypoint_2d", "full2_keypoint_2d", "focal"}
    (line,) = [r.getMessage() for r in caplog.records if "losses off" in r.getMessage()]
    assert "keypoint_3d: no training sample has 3D joints (S)" in line
    assert "smpl_pose" in line and "SMPL parameters" in line


def test_unreadable_image_is_skipped_counted_and_limited(tiny_data, tmp_path, caplog):  # noqa: F811
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "003.png").write_bytes(b"not a picture")
    ds = HumanDataset(data / "train.npz", data, crop_res=64, skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="whmr_core.data.dataset"):
        s = ds[3]
    assert int(s["index"]) == 4 and int(s["bad_samples"]) == 1  # the next readable sample stands in
    assert "003.png" in caplog.text and "bad sample skipped" in caplog.text
    assert int(ds[2]["bad_samples"]) == 0
    with pytest.raises(AnnotationError, match="unreadable"):
        HumanDataset(data / "train.npz", data, crop_res=64)[3]  # evaluation: never replaced silently
    cfg = tiny_config(data, stage1=StageConfig(epochs=1, lr=1e-4))  # the whole epoch: the bad one is drawn
    cfg = replace(cfg, data=replace(cfg.data, val=None, max_bad_samples=0))
    with pytest.raises(AnnotationError, match=r"1 unreadable samples skipped \(data.max_bad_samples 0\)"):
        Trainer(cfg, tmp_path / "run").train_stage(1)


def test_model_files_are_relative_to_their_config_and_checkpoints_need_no_pretrained(tmp_path):
    cfg = get_config("small-cpu")
    data = dataclass_to_dict(cfg)
    data["backbone"]["pretrained"] = "weights/backbone.safetensors"
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    loaded = load_config(path)
    assert loaded.backbone.pretrained == str(tmp_path / "models" / "weights" / "backbone.safetensors")
    # A checkpoint whose config still names a pretrained file that is gone loads from its own weights.
    from whmr_core.body import resolve

    model = build_model(cfg, body=resolve("lowres").load())
    meta = {"name": cfg.name, "model": {**dataclass_to_dict(cfg)}, "body": "lowres"}
    meta["model"]["backbone"]["pretrained"] = str(tmp_path / "gone.safetensors")
    save_checkpoint(tmp_path / "ck", model.state_dict(), config=meta)
    back = build_from_checkpoint(tmp_path / "ck")
    assert all(
        (a == b).all() for a, b in zip(back.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_validation_pictures_draw_the_predicted_mesh(tiny_data):  # noqa: F811
    import torch

    from whmr_core.body import resolve
    from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD
    from whmr_core.data.batch import collate
    from whmr_core.training.pictures import mesh_pictures
    from whmr_core.training.trainer import build_network

    cfg = tiny_config(tiny_data)
    torch.manual_seed(0)
    model = build_network(cfg)
    ds = HumanDataset(tiny_data / "train.npz", tiny_data, crop_res=max(model.crop_hw))
    batch = collate([ds[i] for i in range(3)])
    faces = np.asarray(resolve("lowres").load().faces)
    pictures = mesh_pictures(model, batch, faces, count=2)
    side = max(model.crop_hw)
    assert pictures.shape == (2, side, side, 3) and pictures.dtype == np.uint8
    crop = batch["img"][0].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN
    crop = np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)
    changed = (pictures[0] != crop).any(axis=-1).mean()
    assert 0.01 < changed < 0.9  # the mesh covers part of the crop, the rest is the crop itself
    assert model.training  # the network's modes are restored

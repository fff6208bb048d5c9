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

from whmr_core import losses as L
from whmr_core.body import body_assets, load_body_model
from whmr_core.body.joint_layouts import supervision_points
from whmr_core.config_io import ConfigError
from whmr_core.data.annotations import annotations_from_scenes, write_annotations
from whmr_core.data.batch import collate as _collate
from whmr_core.data.scene import JointRegressors, SceneConfig, sample_scene_at
from whmr_core.model import build_model, get_config
from whmr_core.training.batch import Batch
from whmr_core.training.cli import main as train_main
from whmr_core.training.config import DataConfig, StageConfig, TrainConfig, load_train_config
from whmr_core.training.objective import compute_losses
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
    steps = StageConfig(epochs=1, max_steps=2, lr=1e-4)
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
    raw = _collate([train[i] for i in range(3)])
    return model, Batch.from_collated(raw), cfg, raw


def _grads(stage: int, term: str, model, batch, cfg, wrt):
    configure_stage(model, stage)
    out = model(batch.img, batch.glob_info, batch.cam_rotation)
    losses = compute_losses(out, batch, model, stage_rules(stage), cfg.weights)
    tensors = {
        "cam_crop": out.cam_crop,
        "joints": out.joints,
        "tz": out.tz,
        "iter_mesh": out.iterations[-1].vertices,  # the supervision points come from it
    }
    params = {n: [p for p in getattr(model, n).parameters() if p.requires_grad] for n in wrt}
    tensors = {k: t for k, t in tensors.items() if t.requires_grad}  # frozen outputs get nothing
    got = dict.fromkeys(("cam_crop", "joints", "tz", "iter_mesh"), False)
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
    model, batch, cfg, _ = batch_and_model
    wrt = ["depth_head", "param_regressors", "backbone", "pyramid"]
    got, losses = _grads(1, "full2_keypoint_2d", model, batch, cfg, wrt)
    assert got["tz"] and got["depth_head"]
    assert not got["cam_crop"] and not got["iter_mesh"] and not got["param_regressors"]
    # The depth head's input is detached in stage I (the release): FULL^2 and L_f stop at the head.
    assert not got["backbone"] and not got["pyramid"]
    got, _ = _grads(1, "focal", model, batch, cfg, wrt)
    assert got["depth_head"] and not got["param_regressors"] and not got["backbone"]
    assert not any(k.startswith("world") for k in losses)


def test_full2_supervises_every_iteration(batch_and_model):
    """FULL^2 on each iteration's joints (the release); off, only the final output's. Theta is detached
    between iterations, so the first iteration's joints get a FULL^2 gradient only from its own term."""
    model, batch, cfg, _ = batch_and_model
    configure_stage(model, 2)
    for every in (True, False):
        out = model(batch.img, batch.glob_info, batch.cam_rotation)
        losses = compute_losses(out, batch, model, stage_rules(2), cfg.weights, full2_every_iteration=every)
        first = out.iterations[0].vertices
        (g,) = torch.autograd.grad(losses["full2_keypoint_2d"], [first], allow_unused=True)
        assert (g is not None and float(g.abs().sum()) > 0) == every


def test_deep_supervision_sums_iterations_as_the_release(batch_and_model):
    """Each iteration's term is added (the release: one loss per iteration); "mean" divides by the count."""
    model, batch, cfg, _ = batch_and_model
    configure_stage(model, 2)
    model.eval()  # the same outputs for both reductions
    with torch.no_grad():
        out = model(batch.img, batch.glob_info, batch.cam_rotation)
        summed = compute_losses(out, batch, model, stage_rules(2), cfg.weights)
        mean = compute_losses(out, batch, model, stage_rules(2), cfg.weights, iteration_losses="mean")
    n = len(out.iterations)
    assert n > 1
    j3d = batch.joints3d
    by_hand = sum(
        float(
            L.keypoint_3d_loss(
                supervision_points(*model.regress_joints(it.vertices)),
                j3d[..., :3],
                j3d[..., 3],
                batch.has_joints3d,
                root_weights=batch.joints3d_root,
            )
        )
        for it in out.iterations
    )
    assert float(summed["keypoint_3d"]) == pytest.approx(cfg.weights.keypoint_3d * by_hand, rel=1e-5)
    for term in ("keypoint_3d", "crop_keypoint_2d", "full2_keypoint_2d", "camera_scale"):
        assert float(summed[term]) == pytest.approx(n * float(mean[term]), rel=1e-5), term
    # Terms on the final output alone are not multiplied.
    assert float(summed["vertex_full"]) == pytest.approx(float(mean["vertex_full"]), rel=1e-6)
    model.train()
    with pytest.raises(ConfigError, match="iteration_losses"):
        replace(cfg, iteration_losses="median")


def test_stage1_trains_everything_but_orientcorrect(batch_and_model):
    model, batch, cfg, _ = batch_and_model
    names = configure_stage(model, 1)
    assert "orient_correct" not in names
    assert {"backbone", "pyramid", "depth_head", "point_mlps", "aux_heads"} <= set(names)
    got, _ = _grads(1, "crop_keypoint_2d", model, batch, cfg, ["param_regressors", "backbone", "pyramid"])
    assert got["param_regressors"] and got["cam_crop"] and got["iter_mesh"]
    assert got["backbone"] and got["pyramid"]  # the backbone learns from the crop path in stage I
    assert not any(p.requires_grad for p in model.orient_correct.parameters())
    # Stage II lifts the detach: FULL^2 reaches the backbone through t_z.
    got, _ = _grads(2, "full2_keypoint_2d", model, batch, cfg, ["backbone"])
    assert got["backbone"]


def test_stage2_detach_rules(batch_and_model):
    model, batch, cfg, _ = batch_and_model
    got, losses = _grads(2, "full2_keypoint_2d", model, batch, cfg, ["depth_head", "backbone"])
    assert got["tz"] and got["iter_mesh"] and not got["cam_crop"]
    assert got["backbone"]
    assert "focal" not in losses
    got, _ = _grads(2, "crop_keypoint_2d", model, batch, cfg, ["param_regressors"])
    assert got["cam_crop"] and not got["iter_mesh"]


def test_stage3_trains_orientcorrect_and_its_features_with_frozen_batchnorm(batch_and_model):
    model, batch, cfg, raw = batch_and_model
    names = configure_stage(model, 3)
    # By default phi_3^s also feeds the vertex regressor's global token (the release), so the third point
    # MLP is camera-side: stages I/II train it, stage III leaves it (see the "glob" token test below).
    assert names == ["orient_correct"]
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"orient_correct"}
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = bns[0].running_mean.clone()
    got, losses = _grads(3, "world_keypoint_3d", model, batch, cfg, ["orient_correct"])
    assert got["orient_correct"]
    assert set(losses) == {"world_keypoint_3d", "world_vertex", "world_pose", "total"}
    assert torch.equal(bns[0].running_mean, before)  # frozen statistics do not drift
    # Validation in the middle of a stage must leave the frozen layers in eval mode.
    from torch.utils.data import DataLoader

    from whmr_core.evaluation import CropAdapter, evaluate

    evaluate(
        CropAdapter(model),
        DataLoader(
            [{k: v[i] for k, v in raw.items()} for i in range(3)],
            batch_size=3,
            collate_fn=_collate,
        ),
    )
    assert not any(m.training for m in bns) and model.orient_correct.training


def test_phi3_features_feeding_only_orientcorrect_train_in_stage3(batch_and_model):
    """With the vertex regressor's own global token (``glob``), the third point MLP reaches OrientCorrect
    alone: no camera loss can train it, so stage III trains it with OrientCorrect, and its steps move the
    world root while every camera-side output stays bit-identical."""
    _, batch, cfg, _ = batch_and_model
    base = get_config("small-cpu")
    torch.manual_seed(0)
    model = build_model(
        replace(base, vertex=replace(base.vertex, global_token="glob")),
        body=load_body_model(variant="lowres"),
    )
    for stage in (1, 2):
        names = configure_stage(model, stage)
        assert "point_mlps.2" not in names and "point_mlps" not in names
    assert configure_stage(model, 3) == ["orient_correct", "point_mlps.2"]
    model.eval()
    with torch.no_grad():
        ref = model(batch.img, batch.glob_info, batch.cam_rotation)
        mlp2 = [p.clone() for p in model.point_mlps[2].parameters()]
    configure_stage(model, 3)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        out = model(batch.img, batch.glob_info, batch.cam_rotation)
        opt.zero_grad()
        compute_losses(out, batch, model, stage_rules(3), cfg.weights)["total"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        new = model(batch.img, batch.glob_info, batch.cam_rotation)
    moved = any(not torch.equal(a, b) for a, b in zip(mlp2, model.point_mlps[2].parameters(), strict=True))
    assert moved != (model.config.vertex.global_token == "points")  # trained in stage III only if OC-only
    assert float((new.world_root - ref.world_root).abs().max()) > 1e-4
    for name in ("vertices", "joints", "cam_crop", "tz", "focal", "translation", "cam_root"):
        assert torch.equal(getattr(new, name), getattr(ref, name)), name


def test_evaluation_protocols_through_the_h36m_regressor(batch_and_model, tmp_path):
    from torch.utils.data import DataLoader

    from whmr_core.evaluation import CropAdapter, evaluate

    model, _, _, raw = batch_and_model
    loader = DataLoader(
        [{k: v[i] for k, v in raw.items()} for i in range(3)], batch_size=3, collate_fn=_collate
    )
    net = CropAdapter(model)
    body24 = evaluate(net, loader)
    pw3d = evaluate(net, loader, protocol="3dpw")
    assert pw3d["mpjpe"] != pytest.approx(body24["mpjpe"], rel=1e-3)  # 14 H36M joints, not the 24
    assert pw3d["pve"] == pytest.approx(body24["pve"])  # PVE does not depend on the joint protocol
    # A regressor file with the body's own H36M rows gives the same numbers as the built-in path.
    file = tmp_path / "J_regressor_h36m.npy"
    n_joint, n_coco, _ = model._joint_split
    np.save(file, model.joint_regressors[n_joint + n_coco :].numpy().astype(np.float64))
    from whmr_core.evaluation import load_joint_regressor

    reg = load_joint_regressor(file, model.joint_regressors.shape[1])
    same = evaluate(net, loader, protocol="3dpw", h36m_regressor=reg)
    assert same["mpjpe"] == pytest.approx(pw3d["mpjpe"], rel=1e-5)
    assert evaluate(net, loader, protocol="mpi-inf-3dhp")["mpjpe"] != pytest.approx(pw3d["mpjpe"], rel=1e-3)
    with pytest.raises(ValueError, match="protocol"):
        evaluate(net, loader, protocol="lsp")


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_after_a_crash_continues_at_the_same_step(tiny_data, tmp_path, monkeypatch):
    # A warm-up + cosine schedule: a resume that forgot the scheduler's state would step at another rate.
    # 4 steps an epoch: the step-4 checkpoint falls on the first epoch's end, where validation runs (it
    # must not draw from the global RNG, or the resumed run would diverge).
    steps = StageConfig(epochs=2, max_steps=6, lr=1e-3, schedule="cosine", warmup_steps=2)
    cfg = tiny_config(tiny_data, stage1=steps, checkpoint_every=4)
    torch.manual_seed(0)
    reference = Trainer(cfg, tmp_path / "ref")
    reference.train_stage(1)
    ref_state = {k: v.clone() for k, v in reference.model.state_dict().items()}

    # Crash on the fifth step, after the step-4 checkpoint and the epoch's validation.
    import whmr_core.training.trainer as trainer_mod

    calls = {"n": 0}
    real = trainer_mod.compute_losses

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
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


def test_stage2_without_stage1_result_is_refused(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tiny_data)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert train_main(["--config", str(path), "--stage", "2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "stage1" in err and "final" in err and "does not exist" in err
    assert not (tmp_path / "run" / "stage2").exists()  # nothing trained from an untrained network


def test_batch_names_missing_labels(batch_and_model):
    _, _, _, raw = batch_and_model
    broken = {k: v for k, v in raw.items() if k not in ("keypoints_full", "has_world")}
    with pytest.raises(KeyError, match=r"has_world.*keypoints_full"):
        Batch.from_collated(broken)


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
    # Resolved against the config file, not the working directory (one set, or each set of a mix).
    files = [cfg.data.train] if cfg.data.train else [m.train for m in cfg.data.mix]
    assert files and all(Path(f).is_absolute() for f in files)
    from whmr_core.model.config import NAMED_CONFIGS, load_config

    # The model is a known config, or a model file beside the config that loads.
    assert cfg.model in NAMED_CONFIGS or load_config(cfg.model).name


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "training" / "configs" / "models").glob("*.yaml"))
)
def test_shipped_model_configs_parse(path):
    """Model configs a training config names as ``model: models/FILE.yaml``."""
    from whmr_core.model.config import load_config

    cfg = load_config(path)
    # What each file changes from its base: the calibrated OrientCorrect, MoveNet's keypoint maps, and
    # those with MoveNet's FPN and heads tuned.
    changed = {
        "small-cpu-calibrated.yaml": cfg.orient.base == "calibrated",
        "movenet-keypoints.yaml": cfg.backbone.kind == "movenet" and cfg.backbone.keypoint_maps,
        "movenet-keypoints-tuned.yaml": cfg.backbone.keypoint_maps and cfg.backbone.tune_fpn,
    }
    assert changed[path.name]


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

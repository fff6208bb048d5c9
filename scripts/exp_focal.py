"""Focal length without labels (the paper's first claim), on data where the person's box size carries no
focal information (``whmr synth --profile focal-controlled``, docs/synth.md).

Steps (README "Focal length without labels" has the measured tables):

    # 1. data: 2,000 training and 400 held-out images (~10 min on one busy core)
    whmr synth --out /work/data/focal --num 2400 --seed 0 --split-val 0.1666667 \\
        --profile focal-controlled --body lowres --workers 1
    # 2. what the FULL^2 loss itself says about t_z (no training): the t_z that minimises it per sample,
    #    with the true body and with a network's body, and its gradient next to eq. 8's
    python scripts/exp_focal.py probe --data /work/data/focal --checkpoint shipped --max-samples 400
    # 3. train a fresh depth head by FULL^2 alone (stage I's t_z path: the head's input is detached there)
    #    on the shipped network's frozen features; also with eq. 8 and with the true body in the loss
    python scripts/exp_focal.py depth-head --data /work/data/focal --cache /work/runs/experiments/fc.pt
    # 4. whole networks: Pearson correlation of log focal with the truth, trained vs untrained
    python scripts/exp_focal.py eval --data /work/data/focal untrained=untrained shipped=shipped
    # (stage II of the whole network, FULL^2 moving t_z and the body; ~6 s a step on a busy CPU)
    python scripts/exp_focal.py train --data /work/data/focal --init shipped --stages 2 --steps 800 \\
        --out /work/runs/experiments/focal-s2
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from experiments_common import (
    REPO,
    add_evaluation_arguments,
    evaluate_on,
    load_network,
    named_networks,
    train_from,
    write_json,
)

CONFIG = REPO / "training" / "configs" / "exp-focal.yaml"


def _data_overrides(data: Path) -> dict:
    return {
        "data": {
            "train": str(data / "train.npz"),
            "train_images": str(data),
            "val": str(data / "val.npz"),
            "val_images": str(data),
            "augment": False,
            "num_workers": 0,
            "val_max_samples": 400,
            "maps": False,
        }
    }


def cmd_train(args: argparse.Namespace) -> None:
    from whmr_core.config_io import read_yaml

    torch.set_num_threads(args.threads)
    base = read_yaml(CONFIG)
    overrides = _data_overrides(Path(args.data))
    for k in (1, 2):
        stage = dict(base[f"stage{k}"])
        if args.steps:
            stage["max_steps"] = args.steps
        overrides[f"stage{k}"] = stage
    overrides["threads"] = args.threads
    model = load_network(args.init)
    done = train_from(model, CONFIG, overrides, args.out, [int(s) for s in args.stages.split(",")])
    print(f"done: {done}")


def cmd_eval(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    rows = {}
    for name, model in named_networks(args.checkpoints):
        r = evaluate_on(model, Path(args.data) / "val.npz", max_samples=args.max_samples)["exact gravity"]
        rows[name] = {k: r[k] for k in ("focal_corr", "focal_rel_error", "mpjpe", "pa_mpjpe", "samples")}
        print(name, rows[name], flush=True)
    print("| network | focal: corr. with truth (log) | focal: rel. error | MPJPE | PA-MPJPE |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['focal_corr']:.3f} | {r['focal_rel_error']:.3f} | {r['mpjpe']:.1f} "
            f"| {r['pa_mpjpe']:.1f} |"
        )
    if args.json:
        write_json(args.json, rows)


def _grid_argmin(joints, scale, t_xy_full, batch, conf, grid, principal_point=None) -> torch.Tensor:
    """Per sample, the t_z of ``grid`` that minimises the FULL^2 loss of eq. 2-5 with the full-image
    translation (t_xy_full, t_z) and f = s b t_z / 2 (eq. 3); the principal point is the image centre (as
    on the FULL^2 path) unless given."""
    from whmr_core import geometry as G

    n = joints.shape[0]
    target = G.normalise_full_image(batch.keypoints_full[:, :24, :2], batch.image_wh)
    w = G.full2d_weights(batch.bbox_size, batch.image_wh)[:, None, :]
    pp = G.image_centre(batch.image_wh) if principal_point is None else principal_point
    losses = []
    for tz in grid:
        tzv = torch.full((n,), float(tz))
        f = G.focal_from_depth(scale, batch.bbox_size, tzv)
        transl = torch.cat([t_xy_full, tzv[:, None]], -1)
        proj = G.perspective_project(joints, transl, f, pp)
        # losses.full2_keypoint_loss per sample: weighted squared error, mean over xy, conf-weighted joints
        err = (w * (G.normalise_full_image(proj, batch.image_wh) - target).square()).mean(-1)
        losses.append((err * conf).sum(1) / conf.sum(1).clamp_min(1e-8))
    return torch.as_tensor(grid)[torch.stack(losses).argmin(0)]


@torch.no_grad()
def cmd_probe(args: argparse.Namespace) -> None:
    """Does the FULL^2 loss, as a function of t_z alone, point at the true depth (hence focal length)?"""
    from torch.utils.data import DataLoader

    from whmr_core import geometry as G
    from whmr_core import losses as L
    from whmr_core.data.batch import collate, network_crops
    from whmr_core.data.dataset import HumanDataset
    from whmr_core.training.batch import Batch

    torch.set_num_threads(args.threads)
    model = load_network(args.checkpoint)
    ds = HumanDataset(Path(args.data) / "val.npz", args.data, crop_res=max(model.crop_hw))
    ds = torch.utils.data.Subset(ds, range(min(args.max_samples, len(ds))))
    grid = np.exp(np.linspace(math.log(0.5), math.log(12.0), 161))
    rows: dict[str, list] = {
        "true body, true scale, true principal point": [],
        "true body, true scale": [],
        "network body, true scale": [],
        "network": [],
    }
    truth, grads = [], []
    for raw in DataLoader(ds, batch_size=32, collate_fn=collate):
        b = Batch.from_collated(raw)
        # whmr synth labels the SMPL-24 part of the supervision points (joint_layouts): the first 24.
        conf = b.keypoints_full[:, :24, 2]
        f_true = raw["focal"].mean(-1).double()
        joints_gt = b.joints3d[:, :24, :3]
        root = joints_gt[:, 0]
        s_true = 2 * f_true.float() / (b.bbox_size * root[:, 2])  # the crop scale consistent with f
        rel_gt = joints_gt - root[:, None]
        pp = raw["principal_point"].float()
        tz = _grid_argmin(rel_gt, s_true, root[:, :2], b, conf, grid, pp)
        rows["true body, true scale, true principal point"].append(f_true * tz / root[:, 2])
        tz = _grid_argmin(rel_gt, s_true, root[:, :2], b, conf, grid)
        rows["true body, true scale"].append(f_true * tz / root[:, 2])

        out = model(network_crops(model.crop_hw, b.img), b.glob_info, None)
        rel = out.joints - out.joints[:, :1]
        tz = _grid_argmin(rel, s_true, root[:, :2], b, conf, grid)
        rows["network body, true scale"].append(f_true * tz / root[:, 2])
        s = out.cam_crop[:, 0]
        t_full = G.full_image_translation(out.cam_crop, b.center, b.bbox_size, b.image_wh, out.tz)[:, :2]
        tz = _grid_argmin(out.joints, s, t_full, b, conf, grid)
        rows["network"].append(G.focal_from_depth(s, b.bbox_size, tz.float()).double())
        truth.append(f_true)

        # Loss scale: d/d(log t_z) of the weighted FULL^2 term (stage II) and of eq. 8 (stage I).
        with torch.enable_grad():
            log_tz = out.tz.detach().log().requires_grad_(True)
            t = log_tz.exp()
            f = G.focal_from_depth(s, b.bbox_size, t)
            transl = G.full_image_translation(out.cam_crop, b.center, b.bbox_size, b.image_wh, t)
            proj = G.perspective_project(out.joints, transl, f, G.image_centre(b.image_wh))
            g_full = torch.autograd.grad(
                300.0
                * L.full2_keypoint_loss(proj, b.keypoints_full[:, :24, :2], b.image_wh, b.bbox_size, conf),
                log_tz,
                retain_graph=True,
            )[0]
            g_f = torch.autograd.grad(
                L.focal_loss(G.focal_from_depth(s, b.bbox_size, t), b.image_wh), log_tz
            )[0]
        grads.append(torch.stack([g_full.abs(), g_f.abs()], -1))
    f_true = torch.cat(truth).numpy()
    result = {}
    for name, parts in rows.items():
        f_hat = torch.cat(parts).numpy()
        result[name] = {
            "focal_corr": float(np.corrcoef(np.log(f_hat), np.log(f_true))[0, 1]),
            "focal_rel_error": float(np.mean(np.abs(f_hat - f_true) / f_true)),
        }
    g = torch.cat(grads).numpy()
    result["grad_ratio_full2_over_pseudo_focal_median"] = float(
        np.median(g[:, 0] / np.maximum(g[:, 1], 1e-12))
    )
    result["samples"] = len(f_true)
    print("| t_z that minimises FULL^2 alone | focal: corr. with truth (log) | focal: rel. error |")
    print("|---|---|---|")
    for name in rows:
        print(f"| {name} | {result[name]['focal_corr']:.3f} | {result[name]['focal_rel_error']:.3f} |")
    ratio = result["grad_ratio_full2_over_pseudo_focal_median"]
    print(f"median |dFULL2/dlog t_z| / |dL_f/dlog t_z|: {ratio:.3g}")
    if args.json:
        write_json(args.json, result)


@torch.no_grad()
def _cache(model: torch.nn.Module, ann: Path, images: Path, max_samples: int | None) -> dict:
    """One eval pass of ``model``: the depth head's input (pooled Phi_3, glob info), the network's body and
    crop camera, and the labels the FULL^2 loss and the evaluation need."""
    from torch.utils.data import DataLoader

    from whmr_core.data.batch import collate, network_crops
    from whmr_core.data.dataset import HumanDataset
    from whmr_core.training.batch import Batch

    ds = HumanDataset(ann, images, crop_res=max(model.crop_hw))
    if max_samples and len(ds) > max_samples:
        ds = torch.utils.data.Subset(ds, range(max_samples))
    seen: list[torch.Tensor] = []
    hook = model.depth_head.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].mean(dim=(2, 3))))
    parts: dict[str, list] = {}
    for raw in DataLoader(ds, batch_size=32, collate_fn=collate):
        b = Batch.from_collated(raw)
        out = model(network_crops(model.crop_hw, b.img), b.glob_info, None)
        row = {
            "pooled": seen.pop(),
            "glob_info": b.glob_info,
            "joints": out.joints,
            "cam_crop": out.cam_crop,
            "tz": out.tz,
            "joints_true": b.joints3d[:, :24, :3],  # the SMPL-24 supervision points
            "keypoints_full": b.keypoints_full[:, :24],
            "center": b.center,
            "bbox_size": b.bbox_size,
            "image_wh": b.image_wh,
            "focal": raw["focal"].mean(-1),
        }
        for k, v in row.items():
            parts.setdefault(k, []).append(v.float())
    hook.remove()
    return {k: torch.cat(v) for k, v in parts.items()}


def _full2_on_tz(c: dict, idx: torch.Tensor, tz: torch.Tensor, true_body: bool) -> torch.Tensor:
    """The FULL^2 loss (eq. 2-5, weighted as in training) as a function of t_z alone: the network's body and
    crop camera (what stages I and II use), or the true body with the crop scale consistent with the true
    focal length (``true_body``: an upper bound on what the loss can teach)."""
    from whmr_core import geometry as G
    from whmr_core import losses as L

    size, wh, centre = c["bbox_size"][idx], c["image_wh"][idx], c["center"][idx]
    kp = c["keypoints_full"][idx]
    if true_body:
        joints = c["joints_true"][idx]
        root = joints[:, 0]
        s = 2 * c["focal"][idx] / (size * root[:, 2])
        rel = joints - root[:, None]
        transl = torch.cat([root[:, :2], tz[:, None]], -1)
        proj = G.perspective_project(rel, transl, G.focal_from_depth(s, size, tz), G.image_centre(wh))
    else:
        cam = c["cam_crop"][idx]
        transl = G.full_image_translation(cam, centre, size, wh, tz)
        f = G.focal_from_depth(cam[:, 0], size, tz)
        proj = G.perspective_project(c["joints"][idx], transl, f, G.image_centre(wh))
    return L.full2_keypoint_loss(proj, kp[..., :2], wh, size, kp[..., 2])


def _implied_focal(c: dict, tz: torch.Tensor, true_body: bool) -> torch.Tensor:
    from whmr_core import geometry as G

    if true_body:  # f = s b t_z / 2 with the true-focal scale: f_true * t_z / T_z
        return c["focal"] * tz / c["joints_true"][:, 0, 2]
    return G.focal_from_depth(c["cam_crop"][:, 0], c["bbox_size"], tz)


def _log_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(np.log(a.double().numpy()), np.log(b.double().numpy()))[0, 1])


def _predict(head: torch.nn.Module, c: dict, idx: torch.Tensor) -> torch.Tensor:
    pooled = c["pooled"][idx][:, :, None, None]  # the head averages Phi_3: a 1x1 map is the pooled one
    return head(pooled, c["glob_info"][idx])


def cmd_depth_head(args: argparse.Namespace) -> None:
    """Train a fresh depth head on a frozen network's features with FULL^2 (and optionally eq. 8) only."""
    from whmr_core import geometry as G
    from whmr_core import losses as L
    from whmr_core.model.depth_head import DepthHead

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    cache_file = Path(args.cache)
    if cache_file.is_file():
        cache = torch.load(cache_file, weights_only=True)
    else:
        model = load_network(args.checkpoint)
        cache = {
            "train": _cache(model, data / "train.npz", data, args.max_train),
            "val": _cache(model, data / "val.npz", data, args.max_val),
        }
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, cache_file)
    tr, va = cache["train"], cache["val"]
    channels, hidden = tr["pooled"].shape[1], args.hidden
    result: dict[str, dict] = {
        "network as trained (its own depth head)": {
            "focal_corr": _log_corr(_implied_focal(va, va["tz"], False), va["focal"])
        }
    }
    variants = {
        "FULL^2 (stage II's t_z path)": (False, 0.0),
        "FULL^2 + eq. 8 pseudo focal (stage I)": (False, 1.0),
        "FULL^2 with the true body (upper bound)": (True, 0.0),
    }
    for name, (true_body, w_focal) in variants.items():
        torch.manual_seed(0)
        head = DepthHead(channels, hidden)

        if "untrained depth head" not in result:
            head.eval()
            with torch.no_grad():
                tz0 = _predict(head, va, torch.arange(len(va["focal"])))
            result["untrained depth head"] = {
                "focal_corr": _log_corr(_implied_focal(va, tz0, False), va["focal"])
            }
        opt = torch.optim.Adam(head.parameters(), lr=args.lr)
        n = len(tr["focal"])
        g = torch.Generator().manual_seed(0)
        for step in range(args.steps):
            head.train()
            idx = torch.randint(0, n, (args.batch_size,), generator=g)
            tz = _predict(head, tr, idx)
            loss = 300.0 * _full2_on_tz(tr, idx, tz, true_body)
            if w_focal:
                f = G.focal_from_depth(tr["cam_crop"][idx, 0], tr["bbox_size"][idx], tz)
                loss = loss + w_focal * L.focal_loss(f, tr["image_wh"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (step + 1) % max(args.steps // 4, 1) == 0:
                print(f"{name}: step {step + 1} loss {float(loss):.4g}", flush=True)
        head.eval()
        with torch.no_grad():
            tz = _predict(head, va, torch.arange(len(va["focal"])))
        f_hat = _implied_focal(va, tz, true_body)
        result[name] = {
            "focal_corr": _log_corr(f_hat, va["focal"]),
            "focal_rel_error": float(((f_hat - va["focal"]).abs() / va["focal"]).mean()),
            "log_focal_std": float(f_hat.log().std()),
        }
        print(name, result[name], flush=True)
    print("| depth head on frozen features | focal: corr. with truth (log) |")
    print("|---|---|")
    for name, r in result.items():
        print(f"| {name} | {r['focal_corr']:.3f} |")
    if args.json:
        write_json(args.json, result)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train without focal labels, from a checkpoint or from scratch")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--init", default="shipped", help="shipped, untrained, or a checkpoint directory")
    t.add_argument("--stages", default="2", help="comma-separated stages, e.g. 1,2 (default: 2)")
    t.add_argument("--steps", type=int, default=None, help="max steps per stage (default: the config's)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="focal correlation and body errors of NAME=CHECKPOINT networks")
    add_evaluation_arguments(
        e, "the focal-controlled data folder", "NAME=PATH (PATH: shipped, untrained or a directory)"
    )
    e.set_defaults(func=cmd_eval)
    r = sub.add_parser("probe", help="the t_z minimising FULL^2 per sample, and its gradient scale")
    r.add_argument("--data", required=True)
    r.add_argument("--checkpoint", default="shipped")
    r.add_argument("--max-samples", type=int, default=200)
    r.add_argument("--json", default=None)
    r.set_defaults(func=cmd_probe)
    d = sub.add_parser(
        "depth-head", help="a fresh depth head trained by FULL^2 on a frozen network's features"
    )
    d.add_argument("--data", required=True)
    d.add_argument("--checkpoint", default="shipped", help="the frozen network (default: shipped)")
    d.add_argument("--cache", required=True, help="feature cache file (written on the first run)")
    d.add_argument("--max-train", type=int, default=None)
    d.add_argument("--max-val", type=int, default=None)
    d.add_argument("--steps", type=int, default=3000)
    d.add_argument("--batch-size", type=int, default=64)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--hidden", type=int, default=64, help="hidden width (small-cpu: 64)")
    d.add_argument("--json", default=None)
    d.set_defaults(func=cmd_depth_head)
    for q in (t, e, r, d):
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

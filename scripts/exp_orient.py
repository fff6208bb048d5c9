"""OrientCorrect on a robot: the paper's base (residual on R_b^c, ``orient_correct.base: camera``) against
``calibrated`` (residual on R_c^T R_b^c) and calibration only, at 0/3/5/10 degrees of IMU tilt error.

Steps (README "OrientCorrect modes" has the measured table):

    # 1. data: the README's CPU training set (8,000 images, one person each)
    whmr synth --out /work/data/synth1 --num 8000 --seed 0 --split-val 0.1 --body lowres \\
        --max-people 1 --workers 1
    # 2. stage III only, from the shipped checkpoint, OrientCorrect freshly initialised, in each mode
    python scripts/exp_orient.py train --data /work/data/synth1 --base calibrated --steps 250 \\
        --out /work/runs/experiments/orient-cal
    python scripts/exp_orient.py train --data /work/data/synth1 --base camera --steps 250 \\
        --out /work/runs/experiments/orient-cam
    # 3. W-MPJPE and world root orientation error with IMU tilt error (calibration only comes with each row)
    python scripts/exp_orient.py eval --data /work/data/synth1 --max-samples 200 shipped=shipped \\
        camera-retrained=/work/runs/experiments/orient-cam/model \\
        calibrated=/work/runs/experiments/orient-cal/model --json /work/runs/experiments/orient-eval.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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

CONFIG = REPO / "training" / "configs" / "cpu-synthetic.yaml"
NOISE_DEG = (3.0, 5.0, 10.0)


def _reset_orient_correct(model: torch.nn.Module, seed: int = 0) -> None:
    """OrientCorrect as a fresh network builds it (its residual starts near zero)."""
    from whmr_core.model.orient_correct import OrientCorrect

    oc = model.orient_correct
    torch.manual_seed(seed)
    first, last = oc.fc[0], oc.fc[-1]
    fresh = OrientCorrect(first.in_features - 5 - 6 - last.out_features, first.out_features, base=oc.base)
    if len(fresh.fc) != len(oc.fc):
        raise RuntimeError("exp_orient: this config's OrientCorrect layout is not the default one")
    oc.load_state_dict(fresh.state_dict())


def cmd_train(args: argparse.Namespace) -> None:
    from whmr_core.config_io import read_yaml

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    stage3 = dict(read_yaml(CONFIG)["stage3"])
    if args.steps:
        stage3["max_steps"] = args.steps
    overrides = {
        "data": {
            "train": str(data / "train.npz"),
            "train_images": str(data),
            "val": str(data / "val.npz"),
            "val_images": str(data),
            "augment": False,
            "num_workers": 0,
            "val_max_samples": 300,
            "maps": False,
        },
        "stage3": stage3,
        "threads": args.threads,
    }
    model = load_network(args.init, orient_base=args.base)
    _reset_orient_correct(model)
    print(f"done: {train_from(model, CONFIG, overrides, args.out, [3])}")


def cmd_eval(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    results = {}
    for name, model in named_networks(args.checkpoints):
        results[name] = evaluate_on(
            model, Path(args.data) / "val.npz", max_samples=args.max_samples, gravity_noise=NOISE_DEG
        )
        print(name, model.config.orient.base, results[name], flush=True)
    levels = list(next(iter(results.values())))
    print(
        "| IMU tilt error | " + " | ".join(f"W-MPJPE {n}" for n in results) + " | W-MPJPE calibration only |"
    )
    print("|---|" + "---|" * (len(results) + 1))
    for lv in levels:
        cells = [f"{results[n][lv]['w_mpjpe']:.1f}" for n in results]
        calib = next(iter(results.values()))[lv]["w_mpjpe_calib_only"]
        print(f"| {lv} | " + " | ".join(cells) + f" | {calib:.1f} |")
    print("| IMU tilt error | " + " | ".join(f"root {n}" for n in results) + " | root calibration only |")
    print("|---|" + "---|" * (len(results) + 1))
    for lv in levels:
        cells = [f"{results[n][lv]['root_world_deg']:.1f}" for n in results]
        calib = next(iter(results.values()))[lv]["root_world_deg_calib_only"]
        print(f"| {lv} | " + " | ".join(cells) + f" | {calib:.1f} |")
    if args.json:
        write_json(args.json, results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="stage III only, from a checkpoint, in one OrientCorrect mode")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--base", required=True, choices=("camera", "calibrated"))
    t.add_argument("--init", default="shipped", help="checkpoint to start from (default: shipped)")
    t.add_argument("--steps", type=int, default=None, help="stage III steps (default: the config's, 500)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="world-frame errors of NAME=CHECKPOINT networks with IMU tilt error")
    add_evaluation_arguments(
        e, "the training data folder (its val.npz)", "NAME=PATH (PATH: shipped or a checkpoint directory)"
    )
    e.set_defaults(func=cmd_eval)
    for q in (t, e):
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

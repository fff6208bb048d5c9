"""Held-out profile: networks trained on the default synthetic data, evaluated on cameras, crowds and looks
they never saw (``whmr synth --profile heldout``, docs/synth.md).

    # 400 images, 2-3 people each (~2 min on one core); everything goes in train.npz (no split)
    whmr synth --out /work/data/heldout --num 400 --seed 1000 --profile heldout --body lowres --workers 1
    # camera- and world-frame errors of each NAME=CHECKPOINT (untrained: a fresh small-cpu network)
    python scripts/exp_heldout.py --data /work/data/heldout/train.npz untrained=untrained shipped=shipped \\
        --json /work/runs/experiments/heldout-eval.json

``whmr eval --checkpoint DIR --data /work/data/heldout/train.npz`` gives the same numbers one network at a
time.
"""

from __future__ import annotations

import argparse
import sys

import torch
from experiments_common import add_evaluation_arguments, evaluate_on, named_networks, write_json

COLUMNS = (
    "mpjpe",
    "pa_mpjpe",
    "pve",
    "root_cam_deg",
    "w_mpjpe",
    "root_world_deg",
    "focal_rel_error",
    "focal_corr",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_evaluation_arguments(
        p, "annotation file of the held-out set", "NAME=PATH (PATH: shipped, untrained or a directory)"
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = {}
    for name, model in named_networks(args.checkpoints):
        rows[name] = evaluate_on(model, args.data, max_samples=args.max_samples)["exact gravity"]
        print(name, rows[name], flush=True)
    print("| network | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for name, r in rows.items():
        cells = [f"{r[c]:.3f}" if c.startswith("focal") else f"{r[c]:.1f}" for c in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Turn a trained checkpoint into the repository's shipped one: backbone int8, the rest fp16.

    .venv/bin/python scripts/ship_checkpoint.py --checkpoint runs/movenet-keypoints-cpu/model \
        --out whmr_core/assets/checkpoints/movenet-keypoints-cpu-synthetic --name movenet-keypoints-cpu \
        --provenance "python training/train.py ..."

The weights keep their model config and body (the runtime reads both from the checkpoint); the training
state is dropped. It prints the file size and the largest change a weight took in storage, so the cost of
quantising is seen before a checkpoint is committed (the README's rule: a few MB, 20 MB at most).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from whmr_core.checkpoint import WEIGHTS, load_weights, save_checkpoint

STORAGE = "backbone weights int8 (per-output-channel fp32 scales), the rest fp16"
SIZE_LIMIT_MB = 20.0


def ship(src: Path, out: Path, provenance: str, name: str | None = None) -> dict[str, float]:
    weights, metadata = load_weights(src)  # the training state beside them is not shipped: not read
    config = json.loads(metadata.get("config", "{}"))
    if not config.get("model"):
        raise SystemExit(f"ship_checkpoint: error: {src} has no model config; ship a trainer's checkpoint")
    if name:  # a config built on a base keeps the base's name; what users and exports see is this one
        config = {**config, "name": name, "model": {**config["model"], "name": name}}
    meta = {"provenance": provenance, "storage": STORAGE}
    save_checkpoint(out, weights, config=config, meta=meta, int8=("backbone.",))
    stored, _ = load_weights(out)
    worst = max(float((stored[k].float() - v.float()).abs().max()) for k, v in weights.items())
    size_mb = (out / WEIGHTS).stat().st_size / 1e6
    if size_mb > SIZE_LIMIT_MB:
        raise SystemExit(f"ship_checkpoint: error: {out} is {size_mb:.1f} MB, over {SIZE_LIMIT_MB:.0f} MB")
    return {"size_mb": size_mb, "max_abs_change": worst}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="a trained checkpoint directory")
    ap.add_argument("--out", type=Path, required=True, help="where to write the shipped checkpoint")
    ap.add_argument("--provenance", required=True, help="how the checkpoint was trained (kept in meta.json)")
    ap.add_argument(
        "--name", help="the network's name in the checkpoint and its exports (default: the config's)"
    )
    args = ap.parse_args(argv)
    got = ship(args.checkpoint, args.out, args.provenance, args.name)
    size, change = got["size_mb"], got["max_abs_change"]
    print(f"{args.out}: {size:.1f} MB, largest weight change in storage {change:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python training/train.py --config FILE [--stage 1|2|3|all] [--out DIR] [--resume]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", description="Train W-HMR in three stages (DESIGN.md section 7)."
    )
    p.add_argument("--config", required=True, help="training config YAML (see training/configs/)")
    p.add_argument("--stage", default="all", choices=["1", "2", "3", "all"], help="stage(s) to run")
    p.add_argument("--out", default=None, help="output directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoints in --out")
    p.add_argument(
        "--device",
        default=None,
        help="cpu, cuda (each torchrun process its own GPU) or cuda:N (default: cuda if available)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from whmr_core.checkpoint import CheckpointError
    from whmr_core.config_io import ConfigError
    from whmr_core.data.annotations import AnnotationError
    from whmr_core.training.config import load_train_config
    from whmr_core.training.trainer import Trainer

    try:
        cfg = load_train_config(args.config)
        out = args.out or f"runs/{cfg.name}"
        stages = [1, 2, 3] if args.stage == "all" else [int(args.stage)]
        trainer = Trainer(cfg, out, device=args.device)
        model_dir = trainer.run(stages, resume=args.resume)
    except (ConfigError, CheckpointError, FileNotFoundError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    except (AnnotationError, FloatingPointError) as err:  # bad data, or a run that keeps diverging
        print(f"train.py: error: {err}", file=sys.stderr)
        return 1
    print(f"done: {model_dir}")
    return 0

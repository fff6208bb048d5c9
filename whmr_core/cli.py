"""The ``whmr`` command line: one subcommand per job, each a thin wrapper over whmr_core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from whmr_core._version import __version__


def _cmd_demo(args: argparse.Namespace) -> int:
    from whmr_core.demo import run_demo

    return run_demo(out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whmr",
        description="World-frame human mesh recovery (W-HMR) for robots.",
    )
    parser.add_argument("--version", action="version", version=f"whmr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the main job on the embedded default and print a summary")
    demo.add_argument("--out", default="out/demo", help="output directory (default: %(default)s)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``whmr`` command line: one subcommand per job, each a thin wrapper over whmr_core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from whmr_core._version import __version__


def _cmd_demo(args: argparse.Namespace) -> int:
    from whmr_core.demo import run_demo

    return run_demo(out=args.out)


def _cmd_bag(args: argparse.Namespace) -> int:
    from whmr_ros.bag_runner import run_from_args

    return run_from_args(args)


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

    from whmr_ros.bag_runner import build_bag_parser

    bag = sub.add_parser("bag", help="run the pipeline over a ROS 2 bag (mcap/sqlite3), no ROS needed")
    build_bag_parser(bag)
    bag.set_defaults(func=_cmd_bag)
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

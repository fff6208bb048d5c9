#!/usr/bin/env python3
"""Write synthetic stand-ins of the paper's data sets in their real formats (whmr_core.data.formats.standins).

whmr synth --out data/synth1 --num 64 --seed 0 --body lowres --max-people 1
python scripts/make_standins.py --data data/synth1 --out data/standins
python training/train.py --config training/configs/standins-mix.yaml --out runs/standins-mix
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from whmr_core.data.formats import describe
from whmr_core.data.formats.standins import write_standins


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a whmr synth folder (its train.npz and images)")
    p.add_argument("--out", required=True, help="folder for the stand-in files")
    args = p.parse_args(argv)
    data = Path(args.data)
    try:
        paths = write_standins(data / "train.npz", data, args.out)
    except (OSError, ValueError) as err:
        print(f"make_standins.py: error: {err}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(describe(path).splitlines()[1], "->", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

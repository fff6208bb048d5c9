#!/usr/bin/env python3
"""Train W-HMR: ``python training/train.py --config training/configs/cpu-synthetic.yaml``.

Many GPUs: ``torchrun --nproc_per_node=8 training/train.py --config training/configs/r50-hybrid.yaml``.
"""

import sys

from whmr_core.training.cli import main

if __name__ == "__main__":
    sys.exit(main())

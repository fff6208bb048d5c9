#!/usr/bin/env python
"""Forward time of the shipped body model (smplx SMPL, CPU): batch 1 and 32, both resolutions."""

from __future__ import annotations

import argparse
import time

import torch

from whmr_core.body import load_body_model


def bench(variant: str, batch: int, repeats: int) -> float:
    """Median forward time in milliseconds (random pose and shape, no autograd)."""
    model = load_body_model(variant=variant, batch_size=batch)
    g = torch.Generator().manual_seed(0)
    betas, pose = torch.randn(batch, 10, generator=g), 0.3 * torch.randn(batch, 69, generator=g)
    orient = 0.3 * torch.randn(batch, 3, generator=g)
    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            t = time.perf_counter()
            model(betas=betas, body_pose=pose, global_orient=orient)
            if i >= 3:  # warm-up
                times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    for variant in ("full", "lowres"):
        nv = load_body_model(variant=variant).v_template.shape[0]
        for batch in (1, 32):
            ms = bench(variant, batch, args.repeats)
            print(f"{variant:6s} ({nv:5d} vertices) batch {batch:2d}: {ms:7.2f} ms")


if __name__ == "__main__":
    main()

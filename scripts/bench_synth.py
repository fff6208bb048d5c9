"""Benchmark of the synthetic-data generator: images per second and the time for 10,000 images.

Part 1 times the stages in this process (scene sampling, rendering + maps, file writing) for ``--stages``
samples; part 2 runs ``generate_dataset`` end to end with ``--workers`` processes (spawned, one llvmpipe
thread each) on ``--num`` images, which includes the workers' start-up.

    .venv/bin/python scripts/bench_synth.py [--num 200] [--workers 2] [--body full] [--stages 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def stages(body_spec: str, n: int) -> dict[str, float]:
    """Median milliseconds per image of each stage, one process, one llvmpipe thread."""
    import torch

    from whmr_core.body import body_assets
    from whmr_core.data.scene import JointRegressors, sample_scene_at
    from whmr_core.data.synth import (
        SynthConfig,
        _write_image,
        load_body,
        render_scene,
        write_depth_png,
        write_iuv_png,
    )
    from whmr_core.render import Renderer

    torch.set_num_threads(1)
    body = load_body(body_spec)
    regs = JointRegressors.from_assets(body_assets(body))
    renderer = Renderer(threads=1)
    cfg = SynthConfig()
    times: dict[str, list[float]] = {"scene": [], "render": [], "write": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n + 1):  # the first sample warms up the context and caches
            t0 = time.perf_counter()
            scene = sample_scene_at(12345, i, body, regs, cfg.scene)
            t1 = time.perf_counter()
            synth = render_scene(scene, renderer, body, config=cfg)
            t2 = time.perf_counter()
            _write_image(Path(tmp) / "a.jpg", synth.image, cfg)
            write_depth_png(Path(tmp) / "d.png", synth.depth)
            write_iuv_png(Path(tmp) / "i.png", synth.iuv)
            t3 = time.perf_counter()
            if i:
                times["scene"].append(t1 - t0)
                times["render"].append(t2 - t1)
                times["write"].append(t3 - t2)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--body", default="full")
    ap.add_argument("--stages", type=int, default=20, help="samples for the per-stage timing (0: skip)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if args.stages:
        ms = stages(args.body, args.stages)
        total = sum(ms.values())
        print(
            f"stages (median ms/image, 1 process, body {args.body}): scene {ms['scene']:.0f}, "
            f"render+maps {ms['render']:.0f}, write {ms['write']:.0f}, total {total:.0f} "
            f"-> {1000 / total:.1f} img/s per core"
        )
    from whmr_core.data.synth import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = generate_dataset(tmp, args.num, 0, workers=args.workers, body=args.body, progress=False)
        wall = time.perf_counter() - t0
    rate = args.num / wall
    print(
        f"generate_dataset: {args.num} images, {args.workers} workers, body {args.body}: {wall:.1f} s "
        f"({rate:.1f} img/s, people {s['splits']['train']['people']})"
    )
    print(f"10,000 images: ~{10000 / rate / 60:.1f} min at this rate")


if __name__ == "__main__":
    main()

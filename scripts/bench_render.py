#!/usr/bin/env python3
"""Renderer throughput on this machine: images per second and the implied time for 10,000 images.

Scene per image, as the synthetic-data generator will draw it: two SMPL-sized meshes (6890 vertices,
13,776 triangles each, 27,552 in all) with fresh vertex positions every image (so normals are recomputed
and buffers re-uploaded), a checkered ground plane and a background image; all four outputs (colour,
face id, barycentrics, depth) read back. Two ways to use 2 cores are timed: one process whose llvmpipe
uses every core, and one process per core with LP_NUM_THREADS=1.

    .venv/bin/python scripts/bench_render.py [--seconds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

SIZES = ((640, 480), (224, 224))
N_IMAGES = 10_000


def make_scene(width: int, height: int, seed: int = 0):
    from whmr_core.render import GroundPlane, PinholeCamera
    from whmr_core.render.primitives import uv_sphere

    rng = np.random.default_rng(seed)
    # uv_sphere(n_lat=83, n_lon=84) has SMPL's counts: 6890 vertices, 13,776 triangles.
    bodies = []
    for x in (-0.5, 0.6):
        v, f = uv_sphere([0.0, 0.0, 0.0], 1.0, 83, 84)
        bodies.append((v * [0.3, 0.85, 0.18] + [x, 0.2, 4.0], f))  # person-sized ellipsoid 4 m ahead
    cam = PinholeCamera.from_fov(width, height, hfov_deg=60.0)
    ground = GroundPlane.from_gravity([0.0, 1.0, 0.0], height=1.05)
    backgrounds = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    return rng, bodies, cam, ground, backgrounds


def run(
    width: int, height: int, seconds: float, threads: int | None, reuse: bool, outputs
) -> tuple[int, float]:
    """Render for about ``seconds`` after a warm-up; returns (images, elapsed seconds)."""
    from whmr_core.render import Mesh, Renderer

    rng, bodies, cam, ground, backgrounds = make_scene(width, height)
    renderer = Renderer(threads=threads)
    out = None

    def one(i: int):
        meshes = [
            Mesh(v + rng.normal(0.0, 0.002, v.shape), f, color=(0.8, 0.6, 0.5)) for v, f in bodies
        ]  # a new pose each image: validation, normals and upload are part of the cost
        return renderer.render(
            meshes,
            cam,
            ground=ground,
            background=backgrounds[i % 4],
            outputs=outputs,
            out=out if reuse else None,
        )

    for i in range(3):
        out = one(i)
    times = []
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        out = one(len(times))
        times.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rate": len(times) / wall, "median_s": float(np.median(times)), "cpu_s": cpu / len(times)}


def _worker(args):
    width, height, seconds, reuse, outputs = args
    return run(width, height, seconds, threads=1, reuse=reuse, outputs=outputs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--workers", type=int, default=2, help="processes for the one-per-core measurement")
    ap.add_argument("--quick", action="store_true", help="only the single-process, all-outputs rows")
    args = ap.parse_args()

    from whmr_core.render import ALL_OUTPUTS

    print(f"cores: {os.cpu_count()}  load average (1 min) before: {os.getloadavg()[0]:.2f}")
    print(f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', '(unset: all cores)')} in the main process")
    rows = []
    for w, h in SIZES:
        configs = [("1 process, all outputs, fresh arrays", False, ALL_OUTPUTS)]
        if not args.quick:
            configs += [
                ("1 process, all outputs, out= reused", True, ALL_OUTPUTS),
                ("1 process, colour only", True, ("color",)),
            ]
        for name, reuse, outputs in configs:
            r = run(w, h, args.seconds, threads=None, reuse=reuse, outputs=outputs)
            rows.append((f"{w}x{h}", name, r["rate"], 1 / r["median_s"], r["cpu_s"]))
        if not args.quick and args.workers > 1:
            ctx = mp.get_context("spawn")  # fresh interpreters: LP_NUM_THREADS=1 before Mesa loads
            with ctx.Pool(args.workers) as pool:
                res = pool.map(_worker, [(w, h, args.seconds, True, ALL_OUTPUTS)] * args.workers)
            name = f"{args.workers} processes x LP_NUM_THREADS=1, all outputs"
            rate = sum(r["rate"] for r in res)
            median_rate = sum(1 / r["median_s"] for r in res)
            rows.append((f"{w}x{h}", name, rate, median_rate, float(np.mean([r["cpu_s"] for r in res]))))

    print(
        "\nimg/s: measured mean; img/s (median): from the median image time; cpu ms: CPU time per image;"
        "\n10k @2 cores: 10,000 images with both cores rendering (CPU time x 10,000 / 2), load-independent"
    )
    print(
        f"\n{'size':<8} {'configuration':<52} {'img/s':>6} {'(median)':>8} {'cpu ms':>7} {'10k @2 cores':>13}"
    )
    for size, name, rate, median_rate, cpu_s in rows:
        ten_k = N_IMAGES * cpu_s / 2 / 60
        print(f"{size:<8} {name:<52} {rate:6.1f} {median_rate:8.1f} {1000 * cpu_s:7.1f} {ten_k:9.1f} min")
    print(
        f"\nload average (1 min) after: {os.getloadavg()[0]:.2f} (other work on the machine lowers the rates)"
    )


if __name__ == "__main__":
    main()

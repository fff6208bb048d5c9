#!/usr/bin/env python
"""Time and accuracy of the keypoint fit (whmr_core.fitting) on synthetic people with known truth.

People are posed from whmr's pose generator (every family), shape from N(0, 1), 3-7 m in front of a
1280x720 camera (f = 1000 px), turned up to +-45 degrees; their COCO-17 keypoints are the projection plus
2 px noise. The "network" body is the truth perturbed: ``--pose-noise`` rad on every body joint, 0.1 rad
on the root, ``--depth-error`` too deep and shifted 8 cm, betas + N(0, 0.5). Prints the median time of a
call for 1 and 4 persons (wall, process CPU, and the fastest call: on a busy machine the fastest is the
closest to an idle one's), then the accuracy of the fit against the truth: mean keypoint distance (px),
hip-centred keypoint error (mm), depth error.

    python scripts/bench_fitting.py [--threads 2] [--iterations 12] [--people 32] [--upright 0.01]

``--upright W`` gives the fit the camera's up (level camera) with that weight of the upright-torso term.
``--landmarks camera|crop|crop-turned`` also gives it 3D keypoints as a crop model (BlazePose) gives them:
the true body's COCO-17 points with ``--landmark-noise`` m of noise, the hips ``--landmark-hips`` cm lower
and outside (BlazePose's hips against the body's hip joints: -8 and 2.5 cm), scaled by ``--landmark-scale``,
in the camera's axes (``camera``), in the axes of the person's crop as BlazePose reports them (``crop``:
the fit is given them as they are) or those turned back into the camera's (``crop-turned``:
``runtime.movenet.crop_to_camera``, as the Pipeline does). ``--spread X`` places people up to X m sideways
(default 1: within ~15 degrees of the optical axis; 2.5: up to ~40).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import torch

from whmr_core.body import load_body_model
from whmr_core.data.poses import FAMILIES, sample_betas, sample_pose
from whmr_core.fitting import BodyFitter, FitConfig
from whmr_core.rotations import axis_angle_to_matrix

K = np.array([[1000.0, 0.0, 640.0], [0.0, 1000.0, 360.0], [0.0, 0.0, 1.0]])


def scene(
    fitter: BodyFitter, n: int, pose_noise: float, depth_error: float, seed: int = 1, spread: float = 1.0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    fams = sorted(FAMILIES)
    pose = np.stack([sample_pose(rng, fams[i % len(fams)]) for i in range(n)])
    pose[:, 0] = 0.0
    rot = axis_angle_to_matrix(torch.tensor(pose, dtype=torch.float32))
    yaw = torch.tensor([[0.0, rng.uniform(-0.8, 0.8), 0.0] for _ in range(n)], dtype=torch.float32)
    rot[:, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0])) @ axis_angle_to_matrix(yaw)
    betas = torch.tensor(np.stack([sample_betas(rng) for _ in range(n)]), dtype=torch.float32)
    t = torch.tensor(
        [[rng.uniform(-spread, spread), rng.uniform(-0.3, 0.3), rng.uniform(3, 7)] for _ in range(n)],
        dtype=torch.float32,
    )
    with torch.no_grad():
        points = fitter.body(rot, betas) + t[:, None]
    uv = points[..., :2] / points[..., 2:] * 1000.0 + torch.tensor([640.0, 360.0])
    pose_net = pose.copy()
    pose_net[:, 1:] += rng.normal(0.0, pose_noise, pose_net[:, 1:].shape)
    rot_net = axis_angle_to_matrix(torch.tensor(pose_net, dtype=torch.float32))
    tilt = axis_angle_to_matrix(torch.tensor(rng.normal(0.0, 0.1, (n, 3)), dtype=torch.float32))
    rot_net[:, 0] = tilt @ rot[:, 0]
    return {
        "points": points.numpy(),
        "root": rot[:, 0].numpy(),
        "t": t.numpy(),
        "keypoints": (uv + torch.tensor(rng.normal(0.0, 2.0, uv.shape), dtype=torch.float32)).numpy(),
        "conf": np.full((n, 17), 0.9, np.float32),
        "rot_net": rot_net.numpy(),
        "betas_net": (betas + torch.tensor(rng.normal(0.0, 0.5, betas.shape), dtype=torch.float32)).numpy(),
        "t_net": (t * torch.tensor([1.0, 1.0, 1.0 + depth_error]) + torch.tensor([0.08, -0.05, 0.0])).numpy(),
    }


UP = np.array([0.0, -1.0, 0.0])  # the level camera's up in its optical axes (y down)


def landmarks(
    s: dict[str, np.ndarray],
    mode: str,
    noise: float,
    hips_cm: tuple[float, float],
    scale: float,
    seed: int = 2,
) -> np.ndarray:
    """3D keypoints (N,17,3) of the true bodies as a crop model gives them (module doc)."""
    from whmr_core.runtime.movenet import crop_to_camera

    rng = np.random.default_rng(seed)
    pts = s["points"] - s["t"][:, None]  # model frame: camera axes about the body's origin
    hips = pts[:, 11:13].mean(1, keepdims=True)
    drop, out = hips_cm[0] / 100, hips_cm[1] / 100
    for k, side in ((11, 1.0), (12, -1.0)):  # the body's +x is its left
        pts[:, k] += np.einsum("nij,j->ni", s["root"], [side * out, -drop, 0.0])
    pts = hips + scale * (pts - hips) + rng.normal(0.0, noise, pts.shape)
    if mode == "camera":
        return pts
    # The crop's axes: the person's box centred on the projection of their points' centre.
    centre = (s["points"][..., :2] / s["points"][..., 2:]).mean(1) * 1000.0 + [640.0, 360.0]
    boxes = np.concatenate([centre, centre], 1)
    turn = crop_to_camera(np.broadcast_to(np.eye(3), (len(pts), 3, 3)), boxes, K)  # rows: R^T
    in_crop = np.einsum("nij,npj->npi", turn, pts)  # R^T p
    return in_crop if mode == "crop" else crop_to_camera(in_crop, boxes, K)


def call(fitter: BodyFitter, s: dict[str, np.ndarray], sl: slice):
    up = UP if fitter.config.w_upright > 0 else None
    k3 = None if "landmarks" not in s else s["landmarks"][sl]
    return fitter(
        s["rot_net"][sl], s["betas_net"][sl], s["t_net"][sl], s["keypoints"][sl], s["conf"][sl], K, up=up,
        keypoints_3d=k3,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--iterations", type=int, default=FitConfig().iterations)
    ap.add_argument("--people", type=int, default=32, help="people in the accuracy run (a multiple of 4)")
    ap.add_argument("--pose-noise", type=float, default=0.15, help="rad, on every body joint of the start")
    ap.add_argument(
        "--depth-error", type=float, default=0.05, help="the start's depth, relative (0.05: 5 %% deep)"
    )
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--body", default="lowres", help="shipped variant (the shipped network's is lowres)")
    ap.add_argument(
        "--upright",
        type=float,
        default=None,
        help="FitConfig.w_upright (the camera's up given; default: its default)",
    )
    ap.add_argument("--landmarks", choices=("none", "camera", "crop", "crop-turned"), default="none")
    ap.add_argument("--landmark-noise", type=float, default=0.03, help="m")
    ap.add_argument("--landmark-hips", type=float, nargs=2, default=(0.0, 0.0), help="cm lower, outside")
    ap.add_argument("--landmark-scale", type=float, default=1.0)
    ap.add_argument("--align", default=None, help="FitConfig.keypoints_3d_align: centroid or hips")
    ap.add_argument("--spread", type=float, default=1.0, help="m sideways, at most")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = FitConfig(iterations=args.iterations)
    if args.upright is not None:
        config = replace(config, w_upright=args.upright)
    if args.align is not None:
        config = replace(config, keypoints_3d_align=args.align)
    fitter = BodyFitter(load_body_model(variant=args.body), config)
    s = scene(fitter, max(4, args.people - args.people % 4), args.pose_noise, args.depth_error,
              spread=args.spread)  # fmt: skip
    if args.landmarks != "none":
        s["landmarks"] = landmarks(s, args.landmarks, args.landmark_noise, args.landmark_hips,
                                   args.landmark_scale)  # fmt: skip
    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, body {args.body}, "
        f"{args.iterations} iterations, w_upright {fitter.config.w_upright:g}, "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )
    for n in (1, 4):
        walls, cpus = [], []
        for i in range(args.repeats + 2):
            w, c = time.perf_counter(), time.process_time()
            call(fitter, s, slice(4 * i % len(s["t"]), 4 * i % len(s["t"]) + n))
            if i >= 2:  # warm-up
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
        wall, cpu, best = (
            1e3 * float(f(v)) for f, v in ((np.median, walls), (np.median, cpus), (min, walls))
        )
        print(
            f"{n} person{'s' if n > 1 else ' '}: median {wall:6.1f} ms wall ({wall / n:5.1f} per person), "
            f"{cpu:6.1f} ms process CPU ({cpu / n:5.1f} per person); fastest {best:6.1f} ms wall"
        )
    results = [call(fitter, s, slice(i, i + 4)) for i in range(0, len(s["t"]), 4)]
    cat = {k: np.concatenate([getattr(r, k) for r in results]) for k in ("rotmats", "betas", "translation")}
    before = np.concatenate([r.reprojection_px_before for r in results])
    after = np.concatenate([r.reprojection_px_after for r in results])
    fitted = np.concatenate([r.fitted for r in results])
    with torch.no_grad():
        fit_pts = fitter.body(
            torch.tensor(cat["rotmats"]).float(), torch.tensor(cat["betas"]).float()
        ).numpy()
        net_pts = fitter.body(torch.tensor(s["rot_net"]), torch.tensor(s["betas_net"])).numpy()

    def rel_mm(p: np.ndarray) -> np.ndarray:
        rel = lambda q: q - q[:, 11:13].mean(1, keepdims=True)  # noqa: E731  hip-centred
        return 1e3 * np.linalg.norm(rel(p) - rel(s["points"]), axis=-1).mean(1)

    depth = lambda t: 100 * np.abs(t[:, 2] - s["t"][:, 2]) / s["t"][:, 2]  # noqa: E731
    rows = {
        "keypoints (px)": (before, after),
        "3D, hip-centred (mm)": (rel_mm(net_pts), rel_mm(fit_pts)),
        "depth (%)": (depth(s["t_net"]), depth(cat["translation"])),
    }
    print(
        f"accuracy on {len(before)} people ({int(fitted.sum())} fitted), network start -> fit, median (max):"
    )
    for name, (a, b) in rows.items():
        print(f"  {name:21s} {np.median(a):6.1f} ({a.max():6.1f}) -> {np.median(b):6.1f} ({b.max():6.1f})")


if __name__ == "__main__":
    main()

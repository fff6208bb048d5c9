#!/usr/bin/env python
"""Render the shipped body model (rest pose, a few poses and shapes; front and side) to PNGs under docs/.

Needs the docs extra (matplotlib): pip install -e .[docs]
A small painter's-algorithm rasteriser: triangles sorted back to front, Lambert-shaded.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import PolyCollection

from whmr_core.body import body_assets, load_body_model

REPO = Path(__file__).resolve().parent.parent


def pose(**joints: tuple[float, float, float]) -> torch.Tensor:
    """(1,69) body pose from {SMPL joint index as 'jN': axis-angle (degrees)}."""
    p = torch.zeros(1, 69)
    for name, aa in joints.items():
        j = int(name[1:])
        p[0, 3 * (j - 1) : 3 * j] = torch.tensor(aa) * math.pi / 180
    return p


WALK = pose(j1=(-30, 0, 0), j2=(25, 0, 0), j4=(40, 0, 0), j5=(10, 0, 0), j16=(0, 0, -75), j17=(0, 0, 75))
SIT = pose(j1=(-90, 0, 0), j2=(-90, 0, 0), j4=(90, 0, 0), j5=(90, 0, 0), j15=(0, 40, 0), j16=(0, 0, -60),
           j17=(0, 0, 60))  # fmt: skip
# (title, body pose, betas): rest, arms down, walking, sitting-ish, and +/-2 sigma on the first two betas.
WALK = pose(j1=(-30, 0, 0), j2=(25, 0, 0), j4=(40, 0, 0), j5=(10, 0, 0), j16=(0, 0, -75), j17=(0, 0, 75))
SIT = pose(j1=(-90, 0, 0), j2=(-90, 0, 0), j4=(90, 0, 0), j5=(90, 0, 0), j15=(0, 40, 0), j16=(0, 0, -60))
SCENES = [
    ("rest (T-pose)", pose(), {}),
    ("left arm down, right elbow bent", pose(j16=(0, 0, -70), j19=(0, 90, 0)), {}),
    ("walking", WALK, {}),
    ("sitting, head turned", SIT, {}),
    ("beta0 = -2", pose(), {0: -2.0}),
    ("beta0 = +2", pose(), {0: 2.0}),
    ("beta1 = -2", pose(), {1: -2.0}),
    ("beta1 = +2", pose(), {1: 2.0}),
]


def draw(ax, verts: np.ndarray, faces: np.ndarray, view: str, joints: np.ndarray | None = None) -> None:
    """Orthographic view from the front (+z looking at -z) or the subject's left side (+x)."""
    if view == "side":  # from the subject's left (+x): forward (+z) is screen right
        xy, depth = np.stack([verts[:, 2], verts[:, 1]], 1), verts[:, 0]
        light = np.array([1.0, 0.3, 0.4])
    else:
        xy, depth = verts[:, :2], verts[:, 2]
        light = np.array([0.3, 0.4, 1.0])
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    shade = np.clip(normal @ (light / np.linalg.norm(light)), 0, 1)
    order = np.argsort(depth[faces].mean(1))  # far first
    colours = plt.cm.bone(0.25 + 0.65 * shade[order])
    ax.add_collection(
        PolyCollection(xy[faces[order]], facecolors=colours, edgecolors="none", antialiased=False)
    )
    if joints is not None:
        jxy = joints[:, [2, 1]] if view == "side" else joints[:, :2]
        ax.scatter(jxy[:, 0], jxy[:, 1], s=6, c="tab:red", zorder=3)
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-1.05, 0.95)
    ax.set_aspect("equal")
    ax.axis("off")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--variant", default="full", choices=["full", "lowres"])
    ap.add_argument("--out-dir", type=Path, default=REPO / "docs" / "images")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    model = load_body_model(variant=args.variant)
    faces = body_assets(model).faces.numpy()

    fig, axes = plt.subplots(2, len(SCENES), figsize=(2.0 * len(SCENES), 4.6), dpi=110)
    for col, (title, body_pose, beta_values) in enumerate(SCENES):
        betas = torch.zeros(1, 10)
        for k, val in beta_values.items():
            betas[0, k] = val
        with torch.no_grad():
            out = model(body_pose=body_pose, betas=betas)
        v, j = out.vertices[0].numpy(), out.joints[0, :24].numpy()
        draw(axes[0, col], v, faces, "front", j if col == 0 else None)
        draw(axes[1, col], v, faces, "side")
        axes[0, col].set_title(title, fontsize=7)
    axes[0, 0].text(-1.0, 0.9, "front", fontsize=7)
    axes[1, 0].text(-1.0, 0.9, "left side", fontsize=7)
    fig.tight_layout()
    path = args.out_dir / f"body_model_{args.variant}.png"
    fig.savefig(path)
    print(f"wrote {path}")

    # Sparse vertices and markers on the rest pose (what the network samples features at).
    a = body_assets(model)
    fig, axes = plt.subplots(1, 2, figsize=(5, 3.2), dpi=110)
    for ax, (pts, name) in zip(
        axes, ((a.sparse_template, "sparse vertices"), (a.template[a.marker_ids], "markers")), strict=True
    ):
        draw(ax, a.template.numpy(), faces, "front")
        p = pts.numpy()
        front = p[:, 2] > np.median(a.template[:, 2].numpy()) - 0.05
        ax.scatter(p[front, 0], p[front, 1], s=3, c="tab:orange", zorder=3)
        ax.set_title(f"{len(p)} {name} (front half)", fontsize=7)
    fig.tight_layout()
    path = args.out_dir / f"body_model_{args.variant}_sparse.png"
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

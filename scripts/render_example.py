#!/usr/bin/env python3
"""Writes docs/render_example.png: every renderer output for a small scene seen by a pitched, rolled camera.

Panels: shaded colour on a background | face ids (false colour) | metric depth
        overlay on an image (alpha 0.6) | barycentrics as RGB | gravity-aligned side view (world view)

    .venv/bin/python scripts/render_example.py [--out docs/render_example.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from whmr_core.render import (
    GroundPlane,
    Mesh,
    PinholeCamera,
    Renderer,
    overlay_meshes,
    pose_matrix,
    render_world_view,
)
from whmr_core.render.primitives import box, uv_sphere
from whmr_core.rotations import axis_angle_to_matrix


def scene_in_gravity_frame() -> list[Mesh]:
    """Objects standing on the ground 1.6 m below the camera (frame G: y down along gravity, z ahead)."""
    floor = 1.6
    items = [
        (uv_sphere([-0.9, floor - 0.45, 4.0], 0.45, 24, 48), (0.85, 0.3, 0.25), True),
        (box([0.5, floor - 0.9, 5.0], [0.5, 1.8, 0.35]), (0.3, 0.5, 0.85), False),  # person-sized box
        (box([1.6, floor - 0.3, 3.4], 0.6), (0.35, 0.7, 0.35), False),
        (uv_sphere([0.1, floor - 0.25, 2.8], 0.25, 16, 32), (0.9, 0.75, 0.2), True),
    ]
    return [Mesh(v, f, color=c, smooth=s) for (v, f), c, s in items]


def background(width: int, height: int) -> np.ndarray:
    """A procedural sky-to-haze gradient standing in for a photo."""
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    top, bottom = np.array([70, 110, 170]), np.array([200, 205, 215])
    return np.broadcast_to((1 - t) * top + t * bottom, (height, width, 3)).astype(np.uint8)


def false_colour(ids: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1)
    lut = rng.integers(40, 256, (int(ids.max()) + 2, 3), dtype=np.uint8)
    img = lut[np.clip(ids, 0, None)]
    img[ids == 0] = 0
    img[ids == -1] = 90  # ground
    return img


def depth_colour(depth: np.ndarray, far: float = 12.0) -> np.ndarray:
    d = np.clip(depth / far, 0.0, 1.0)
    img = np.stack([255 * (1 - d), 255 * (1 - d) ** 2, 80 + 100 * d], -1).astype(np.uint8)
    img[depth <= 0] = 0
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "render_example.png"
    )
    args = ap.parse_args()

    import torch

    W, H = 400, 300
    # Non-centred principal point; camera pitched down 12 deg (gravity gains +z in C) and rolled 8 deg.
    cam = PinholeCamera(fx=330.0, fy=330.0, cx=188.0, cy=140.0, width=W, height=H)
    pitch = axis_angle_to_matrix(torch.tensor([[np.deg2rad(12.0), 0.0, 0.0]], dtype=torch.float64))[0].numpy()
    roll = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, np.deg2rad(8.0)]], dtype=torch.float64))[0].numpy()
    R_c = roll @ pitch
    g_cam = R_c @ np.array([0.0, 1.0, 0.0])

    meshes_g = scene_in_gravity_frame()
    ground = GroundPlane(point=[0.0, 1.6, 4.0], normal=[0.0, -1.0, 0.0], size=40.0)
    bg = background(W, H)
    with Renderer() as r:
        out = r.render(
            meshes_g, cam, world_to_camera=pose_matrix(R_c, np.zeros(3)), ground=ground, background=bg
        )
        meshes_c = [Mesh(m.vertices @ R_c.T, m.faces, m.color, m.smooth) for m in meshes_g]
        overlay = overlay_meshes(bg, meshes_c, cam, alpha=0.6, renderer=r)
        world = render_world_view(meshes_c, g_cam, width=W, height=H, yaw_deg=60.0, renderer=r)

    bary = (255 * out.bary).astype(np.uint8)
    panels = [
        (out.color, "colour (pitch 12, roll 8 deg)"),
        (false_colour(out.face_id), "face id (ground grey)"),
        (depth_colour(out.depth), "depth z, 0-12 m"),
        (overlay, "overlay_meshes, alpha 0.6"),
        (bary, "barycentrics"),
        (world, "render_world_view (gravity-aligned)"),
    ]
    sheet = Image.new("RGB", (3 * W + 8, 2 * H + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(panels):
        x, y = (i % 3) * (W + 4), (i // 3) * (H + 4)
        sheet.paste(Image.fromarray(np.ascontiguousarray(img)), (x, y))
        draw.rectangle([x, y, x + 8 + 6 * len(label), y + 14], fill=(0, 0, 0))
        draw.text((x + 4, y + 2), label, fill=(255, 255, 255))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

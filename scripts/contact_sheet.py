"""Contact sheet of synthetic samples with their ground truth drawn over them -> docs/synth_contact_sheet.png.

Per sample: the body meshes (overlay_meshes), SMPL-24 joints and skeleton (green: confidence 1, red: hidden
behind another person or a prop), the square training box, the horizon (the image of the level plane
through the camera, K^-T g) with a gravity arrow, and focal length / hFOV / pitch / roll.

    .venv/bin/python scripts/contact_sheet.py [--seed 0] [--num 12] [--body full] [--out docs/...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from whmr_core.body import body_assets
from whmr_core.body.skeleton import SMPL_PARENTS
from whmr_core.data.scene import JointRegressors, Scene, sample_scene_at
from whmr_core.data.synth import SynthConfig, SynthImage, load_body, render_scene
from whmr_core.render import Mesh, PinholeCamera, Renderer, overlay_meshes

CELL = 300
COLS = 4


def _horizon(scene: Scene) -> tuple[np.ndarray, np.ndarray] | None:
    """The horizon line l = K^-T g (points x with l . x = 0) at the left and right image borders."""
    w = scene.image_wh[0]
    line = np.linalg.inv(scene.K).T @ scene.gravity_cam
    a, b, c = line
    pts = []
    for x in (0.0, w - 1.0):  # intersect with the left and right image borders
        if abs(b) > 1e-12:
            pts.append((x, -(a * x + c) / b))
    if len(pts) < 2:
        return None
    return np.array(pts[0]), np.array(pts[1])


def draw_ground_truth(scene: Scene, synth: SynthImage, body, renderer: Renderer) -> np.ndarray:
    w, h = scene.image_wh
    cam = PinholeCamera.from_K(scene.K, w, h)
    faces = body_assets(body).faces.numpy()
    meshes = [Mesh(p.vertices_cam, faces, color=(0.55, 0.75, 1.0)) for p in scene.people]
    img = overlay_meshes(synth.image, meshes, cam, alpha=0.45, renderer=renderer)
    img = np.ascontiguousarray(img[..., ::-1])  # BGR for OpenCV drawing
    s = max(1, round(max(w, h) / 320))
    for k, p in enumerate(scene.people):
        c, half = p.bbox_center, p.bbox_size / 2
        cv2.rectangle(img, tuple(np.rint(c - half).astype(int)), tuple(np.rint(c + half).astype(int)),
                      (0, 215, 255), s)  # fmt: skip
        j2d = np.rint(p.joints2d).astype(int)
        for j, parent in enumerate(SMPL_PARENTS):
            if parent >= 0:
                cv2.line(img, tuple(j2d[j]), tuple(j2d[parent]), (255, 255, 255), s, cv2.LINE_AA)
        for j in range(24):
            colour = (0, 200, 0) if synth.joints_conf[k, j] > 0 else (0, 0, 255)
            cv2.circle(img, tuple(j2d[j]), 2 * s, colour, -1, cv2.LINE_AA)
    hz = _horizon(scene)
    if hz is not None:
        cv2.line(img, tuple(np.rint(hz[0]).astype(int)), tuple(np.rint(hz[1]).astype(int)),
                 (255, 0, 255), s, cv2.LINE_AA)  # fmt: skip
    # Gravity arrow from the principal point: towards the image of the point one step down the gravity ray.
    pp = scene.K[:2, 2]
    g = scene.gravity_cam
    ahead = np.array([0.0, 0.0, 1.0]) + 0.25 * g
    tip = scene.camera.project(ahead)
    d = tip - pp
    d = d / max(np.linalg.norm(d), 1e-9) * 0.15 * min(w, h)
    cv2.arrowedLine(img, tuple(np.rint(pp).astype(int)), tuple(np.rint(pp + d).astype(int)), (255, 0, 255),
                    2 * s, cv2.LINE_AA, tipLength=0.25)  # fmt: skip
    return img


def _cell(img: np.ndarray, scene: Scene) -> np.ndarray:
    h, w = img.shape[:2]
    f = CELL / max(w, h)
    small = cv2.resize(img, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    cell = np.full((CELL, CELL, 3), 30, np.uint8)
    y0, x0 = (CELL - small.shape[0]) // 2, (CELL - small.shape[1]) // 2
    cell[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    cam = scene.camera
    text = f"f={cam.K[0, 0]:.0f}px hfov={cam.hfov_deg:.0f} p={cam.pitch_deg:+.0f} r={cam.roll_deg:+.0f}"
    cv2.rectangle(cell, (0, CELL - 18), (CELL, CELL), (0, 0, 0), -1)
    cv2.putText(cell, text, (4, CELL - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num", type=int, default=12)
    ap.add_argument("--body", default="full")
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "docs/synth_contact_sheet.png")
    )
    args = ap.parse_args()
    body = load_body(args.body)
    regs = JointRegressors.from_assets(body_assets(body))
    renderer = Renderer()
    cfg = SynthConfig()
    cells = []
    for i in range(args.num):
        scene = sample_scene_at(args.seed, i, body, regs, cfg.scene)
        synth = render_scene(scene, renderer, body, config=cfg)
        cells.append(_cell(draw_ground_truth(scene, synth, body, renderer), scene))
    while len(cells) % COLS:
        cells.append(np.full((CELL, CELL, 3), 30, np.uint8))
    rows = [np.concatenate(cells[r : r + COLS], axis=1) for r in range(0, len(cells), COLS)]
    sheet = np.concatenate(rows, axis=0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, sheet)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, {args.num} samples, seed {args.seed})")


if __name__ == "__main__":
    main()

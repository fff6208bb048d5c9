"""``whmr demo``: the main job on the embedded default.

Until the trained checkpoint and the bag runner land, this runs the most complete path that exists:
the W-HMR camera model on a known scene. A skeleton stands in front of a pitched and rolled camera with
known K and gravity; the demo derives the crop camera a perfect network would output, then recovers the
focal length (eq. 3), the full-image translation (eq. 4), the re-projection (eq. 2) and the camera
rotation from gravity (section 4), and reports every error against the ground truth.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from whmr_core import geometry as G
from whmr_core.rotations import axis_angle_to_matrix

# A coarse standing skeleton (metres, gravity frame G: x right, y down, z forward), pelvis at origin.
_SKELETON = torch.tensor(
    [
        [0.0, 0.0, 0.0],  # pelvis
        [0.0, -0.55, 0.0],  # neck
        [0.0, -0.75, 0.0],  # head
        [-0.2, -0.5, 0.0],  # right shoulder
        [0.2, -0.5, 0.0],  # left shoulder
        [-0.25, -0.1, 0.0],  # right wrist
        [0.25, -0.1, 0.0],  # left wrist
        [-0.1, 0.45, 0.0],  # right knee
        [0.1, 0.45, 0.0],  # left knee
        [-0.1, 0.9, 0.0],  # right ankle
        [0.1, 0.9, 0.0],  # left ankle
    ],
    dtype=torch.float64,
)


def run_demo(out: str | Path = "out/demo") -> int:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"whmr demo: cannot create output directory {out}: {exc}")
        return 1

    wh = torch.tensor([[1280.0, 720.0]], dtype=torch.float64)
    f_true, pp = 900.0, wh / 2
    pitch, roll = math.radians(20), math.radians(-8)
    # Camera rotation R_c (X_C = R_c X_G): pitch about x, then roll about z.
    r_c = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, roll]], dtype=torch.float64)) @ axis_angle_to_matrix(
        torch.tensor([[-pitch, 0.0, 0.0]], dtype=torch.float64)
    )
    gravity_cam = r_c[:, :, 1]  # +y_G (down) seen from the camera
    body_c = _SKELETON[None] @ r_c.transpose(1, 2)
    t_true = torch.tensor([[0.6, 0.4, 5.0]], dtype=torch.float64)
    pix = G.perspective_project(body_c, t_true, torch.tensor([f_true], dtype=torch.float64), pp)

    # Person box around the projected skeleton, and the crop camera a perfect network would predict.
    lo, hi = pix[0].min(0).values, pix[0].max(0).values
    centre, size = ((lo + hi) / 2)[None], (hi - lo).max()[None] * 1.2
    tz = t_true[:, 2]
    s = 2 * f_true / (size * tz)  # eq. 3 solved for s
    txy = t_true[:, :2] - 2 * (centre - pp) / (s[:, None] * size[:, None])  # eq. 4 solved for t_x, t_y
    cam_crop = torch.cat([s[:, None], txy], dim=-1)

    focal = G.focal_from_depth(cam_crop[:, 0], size, tz)
    t_rec = G.full_image_translation(cam_crop, centre, size, wh, tz)
    reproj = G.perspective_project(body_c, t_rec, focal, pp)
    r_rec = G.camera_rotation_from_gravity(gravity_cam)
    body_world = body_c @ r_rec  # X_G = R_c^T X_C, row vectors
    summary = {
        "image_wh": wh[0].tolist(),
        "person_box": {"center": centre[0].tolist(), "size": float(size)},
        "glob_info": G.glob_info(centre, size, wh)[0].tolist(),
        "focal_true_px": f_true,
        "focal_recovered_px": float(focal),
        "translation_error_m": float((t_rec - t_true).norm()),
        "reprojection_error_px": float((reproj - pix).norm(dim=-1).max()),
        "camera_rotation_error_deg": math.degrees(float((r_rec - r_c).abs().max())),
        "world_body_error_m": float((body_world[0] - _SKELETON).norm(dim=-1).max()),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("whmr demo (camera model on a known scene; the network demo replaces this)")
    for key in (
        "focal_true_px",
        "focal_recovered_px",
        "translation_error_m",
        "reprojection_error_px",
        "camera_rotation_error_deg",
        "world_body_error_m",
    ):
        print(f"  {key:28s} {summary[key]:.6g}")
    print(f"  summary written to {out / 'summary.json'}")
    return 0

"""Pictures of one frame's bodies: meshes over the photo (boxes, ids) and a gravity-frame side view."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.media.display_mesh import DisplayMesh
from whmr_core.runtime.frames import FrameResult

__all__ = ["PALETTE", "display_camera", "draw_overlay", "side_view"]

PALETTE = (
    (1.0, 0.55, 0.1),
    (0.3, 0.6, 0.95),
    (0.4, 0.8, 0.4),
    (0.9, 0.4, 0.6),
    (0.7, 0.5, 0.95),
    (0.95, 0.8, 0.3),
)


def display_camera(result: FrameResult, focal_px: float, max_side: int) -> tuple[np.ndarray, float]:
    """(K, scale) of the picture: the frame's camera, scaled so that its long side is at most ``max_side``.

    Pixel centres are integers, so scaling by s maps u to (u + 0.5) s - 0.5."""
    w, h = result.image_wh
    s = min(1.0, max_side / max(w, h))
    if result.K is not None:
        fx, fy, cx, cy = result.K[0, 0], result.K[1, 1], result.K[0, 2], result.K[1, 2]
    else:  # eq. 2-4: principal point at the image centre
        fx = fy = focal_px
        cx, cy = w / 2, h / 2
    K = np.array([[fx * s, 0, (cx + 0.5) * s - 0.5], [0, fy * s, (cy + 0.5) * s - 0.5], [0, 0, 1.0]])
    return K, s


def draw_overlay(
    image: np.ndarray,
    result: FrameResult,
    meshes: Sequence[DisplayMesh],
    focal_px: float,
    *,
    max_side: int = 960,
    renderer=None,
    by_index: bool = False,
) -> np.ndarray:
    """The photo with each person's mesh blended over it, their box, track id (or index) and depth;
    (h, w, 3) RGB uint8."""
    from whmr_core.render import Mesh, PinholeCamera, overlay_meshes

    K, s = display_camera(result, focal_px, max_side)
    h, w = image.shape[:2]
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = image if s == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(img)
    out = img
    if meshes:
        cam = PinholeCamera.from_K(K, size[0], size[1], near=0.02, far=1000.0)
        ms = [Mesh(m.vertices_camera, m.faces, color=PALETTE[i % len(PALETTE)]) for i, m in enumerate(meshes)]
        out = overlay_meshes(img, ms, cam, alpha=0.75, renderer=renderer)
    out = out.copy()
    for i, p in enumerate(result.persons):
        colour = tuple(int(255 * c) for c in PALETTE[i % len(PALETTE)])
        x1, y1, x2, y2 = ((np.asarray(p.box_xyxy) + 0.5) * s - 0.5).round().astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{i if by_index else p.track_id}  {p.translation_camera[2]:.1f} m"
        cv2.putText(out, label, (x1 + 3, max(14, y1 + 16)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
    return out


def side_view(meshes: Sequence[DisplayMesh], height: int, *, renderer=None) -> np.ndarray:
    """The bodies in the gravity frame (OrientCorrect's orientation) on a level ground, seen from the side."""
    from whmr_core.render import Mesh, render_world_view

    width = max(64, round(height * 4 / 3))
    if not meshes:
        return np.full((height, width, 3), 255, np.uint8)
    # Gravity frame (ROS axes) -> G (y down) with the camera at the origin: a level camera's gravity is +y.
    ms = [Mesh(m.vertices_gravity @ GRAVITY_FROM_G, m.faces, color=PALETTE[i % len(PALETTE)])
          for i, m in enumerate(meshes)]  # fmt: skip
    return render_world_view(ms, np.array([0.0, 1.0, 0.0]), width=width, height=height, renderer=renderer)

"""Pictures of one frame's bodies: meshes over the photo (boxes, ids) and a gravity-frame side view."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from whmr_core.body.keypoints import COCO17_SKELETON
from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.media.display_mesh import DisplayMesh
from whmr_core.runtime.frames import FrameResult

__all__ = ["PALETTE", "display_camera", "display_scale", "draw_keypoints", "draw_overlay", "side_view"]

PALETTE = (
    (1.0, 0.55, 0.1),
    (0.3, 0.6, 0.95),
    (0.4, 0.8, 0.4),
    (0.9, 0.4, 0.6),
    (0.7, 0.5, 0.95),
    (0.95, 0.8, 0.3),
)


def display_scale(image_wh: tuple[int, int], max_side: int) -> float:
    """The picture's scale: its long side at most ``max_side`` pixels."""
    return min(1.0, max_side / max(image_wh))


def display_camera(focal_xy: np.ndarray, principal_point: np.ndarray, s: float) -> np.ndarray:
    """K of the picture, scaled by ``s``: pixel centres are integers, so u maps to (u + 0.5) s - 0.5."""
    (fx, fy), (cx, cy) = focal_xy, principal_point
    return np.array([[fx * s, 0, (cx + 0.5) * s - 0.5], [0, fy * s, (cy + 0.5) * s - 0.5], [0, 0, 1.0]])


def draw_overlay(
    image: np.ndarray,
    result: FrameResult,
    meshes: Sequence[DisplayMesh],
    *,
    max_side: int = 960,
    renderer=None,
    by_index: bool = False,
) -> np.ndarray:
    """The photo with each person's mesh blended over it, their box, track id (or index) and depth;
    (h, w, 3) RGB uint8. Each mesh is drawn with the camera its person was placed with (one for all,
    except with ``per_person_focal``)."""
    from whmr_core.render import Mesh, PinholeCamera, overlay_meshes

    h, w = image.shape[:2]
    s = display_scale((w, h), max_side)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    out = image if s == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(out)
    groups: dict[tuple[float, ...], list[int]] = {}
    for i, p in enumerate(result.persons):
        groups.setdefault((*np.round(p.focal_xy, 6), *np.round(p.principal_point, 6)), []).append(i)
    for idx in groups.values():
        p = result.persons[idx[0]]
        K = display_camera(p.focal_xy, p.principal_point, s)
        cam = PinholeCamera.from_K(K, size[0], size[1], near=0.02, far=1000.0)
        ms = [Mesh(meshes[i].vertices_camera, meshes[i].faces, color=PALETTE[i % len(PALETTE)]) for i in idx]
        out = overlay_meshes(out, ms, cam, alpha=0.75, renderer=renderer)
    out = out.copy()
    for i, p in enumerate(result.persons):
        colour = tuple(int(255 * c) for c in PALETTE[i % len(PALETTE)])
        x1, y1, x2, y2 = ((np.asarray(p.box_xyxy) + 0.5) * s - 0.5).round().astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        draw_keypoints(out, p.keypoints_2d, (255, 255, 255), scale=s)
        label = f"{i if by_index else p.track_id}  {p.translation_camera[2]:.1f} m"
        cv2.putText(out, label, (x1 + 3, max(14, y1 + 16)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
    return out


def draw_keypoints(
    out: np.ndarray, keypoints: np.ndarray | None, colour, seen: float = 0.3, scale=1.0
) -> None:
    """The keypoint model's COCO-17 skeleton (points scored at least ``seen``), thin, over ``out``."""
    if keypoints is None:
        return
    uv = np.round((keypoints[:, :2] + 0.5) * scale - 0.5).astype(int)
    ok = keypoints[:, 2] >= seen
    for a, b in COCO17_SKELETON:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(uv[a]), tuple(uv[b]), colour, 1, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(out, tuple(uv[k]), 2, colour, -1, cv2.LINE_AA)


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

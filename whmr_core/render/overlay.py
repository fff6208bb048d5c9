"""Pictures for people: meshes blended over an image, and a side view in the gravity-aligned frame.

The gravity-aligned frame G is DESIGN.md section 4's: origin at the camera, y_G along gravity (down),
z_G the camera's forward direction made horizontal; ``X_C = R_c X_G`` with R_c from
``whmr_core.geometry.camera_rotation_from_gravity``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from whmr_core.geometry import camera_rotation_from_gravity
from whmr_core.render.camera import PinholeCamera, look_at
from whmr_core.render.primitives import camera_frustum
from whmr_core.render.renderer import Renderer
from whmr_core.render.scene import GroundPlane, Mesh

__all__ = ["overlay_meshes", "render_world_view"]

_shared: Renderer | None = None


def _renderer(renderer: Renderer | None) -> Renderer:
    # One lazily made renderer per process keeps framebuffers warm between demo frames.
    global _shared
    if renderer is not None:
        return renderer
    if _shared is None:
        _shared = Renderer()
    return _shared


def overlay_meshes(
    image: np.ndarray,
    meshes: Sequence[Mesh],
    camera: PinholeCamera,
    *,
    alpha: float = 0.8,
    world_to_camera: np.ndarray | None = None,
    renderer: Renderer | None = None,
) -> np.ndarray:
    """``image`` (H,W,3) uint8 with the shaded meshes drawn over it at opacity ``alpha``; a new array.

    The camera must describe the image (its K and size); meshes are in its optical frame unless
    ``world_to_camera`` is given. Pixels the meshes do not cover are returned unchanged.
    """
    img = np.asarray(image)
    W, H = camera.size
    if img.shape != (H, W, 3) or img.dtype != np.uint8:
        raise ValueError(
            f"image: expected ({H}, {W}, 3) uint8 to match the camera, got {img.shape} {img.dtype}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: must be in [0, 1], got {alpha}")
    out = _renderer(renderer).render(
        meshes, camera, world_to_camera=world_to_camera, background=img, outputs=("color", "face_id")
    )
    mask = out.face_id > 0
    result = img.copy()
    blended = alpha * out.color[mask].astype(np.float32) + (1.0 - alpha) * img[mask].astype(np.float32)
    result[mask] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return result


def gravity_rotation(gravity_cam: np.ndarray) -> np.ndarray:
    """R_c (3x3, float64) of DESIGN.md section 4 for gravity (down) in the camera frame."""
    g = torch.as_tensor(np.asarray(gravity_cam, dtype=np.float64).reshape(1, 3))
    return camera_rotation_from_gravity(g)[0].numpy()


def render_world_view(
    meshes: Sequence[Mesh],
    gravity_cam: np.ndarray,
    *,
    width: int = 640,
    height: int = 480,
    yaw_deg: float = 90.0,
    elevation_deg: float = 20.0,
    hfov_deg: float = 45.0,
    show_camera: bool = True,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    renderer: Renderer | None = None,
) -> np.ndarray:
    """Side view (H,W,3) uint8 of camera-frame ``meshes`` in the gravity-aligned frame, on a ground plane.

    The ground is level (perpendicular to gravity) under the lowest mesh vertex; 1 m checker tiles give
    the scale. ``yaw_deg`` orbits about the vertical: 0 looks along the original camera's horizontal
    forward direction, 90 looks from its right-hand side. ``elevation_deg`` raises the viewpoint.
    ``show_camera`` draws the original camera as a dark pyramid at the origin, opening along its view.
    """
    meshes = list(meshes)
    if not meshes or all(len(m.vertices) == 0 for m in meshes):
        raise ValueError("meshes: need at least one non-empty mesh for a world view")
    R_c = gravity_rotation(gravity_cam)
    # X_G = R_c^T X_C; for row vectors that is X_C @ R_c.
    world = [
        Mesh(
            m.vertices.astype(np.float64) @ R_c,
            m.faces,
            m.color,
            m.smooth,
            None if m.normals is None else m.normals @ R_c,
        )
        for m in meshes
    ]
    pts = np.concatenate([m.vertices for m in world]).astype(np.float64)
    floor_y = float(pts[:, 1].max())  # y_G points down: the lowest vertex has the largest y
    extra = [np.zeros((1, 3))] if show_camera else []
    allpts = np.concatenate([pts, *extra])
    lo, hi = allpts.min(0), allpts.max(0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(allpts - centre, axis=1).max()), 0.25)

    cam = PinholeCamera.from_fov(width, height, hfov_deg, near=0.02, far=1.0)  # far set below
    fov_min = 2 * np.arctan(min(cam.width / (2 * cam.fx), cam.height / (2 * cam.fy)))
    dist = 1.1 * radius / np.sin(fov_min / 2)
    yaw, el = np.deg2rad(yaw_deg), np.deg2rad(elevation_deg)
    horiz = np.array([np.sin(yaw), 0.0, -np.cos(yaw)])  # yaw 0: behind the scene, looking along +z_G
    eye = centre + dist * (np.cos(el) * horiz + np.sin(el) * np.array([0.0, -1.0, 0.0]))
    pose = look_at(eye, centre, down=np.array([0.0, 1.0, 0.0]))
    cam = PinholeCamera(cam.fx, cam.fy, cam.cx, cam.cy, width, height, near=0.02, far=dist + 20 * radius)

    if show_camera:
        s = max(0.15 * radius, 0.1)
        fv, ff = camera_frustum(depth=s, half_width=0.6 * s, half_height=0.45 * s)
        world.append(Mesh(fv @ R_c, ff, color=(0.2, 0.22, 0.28), smooth=False))
    ground = GroundPlane(
        point=np.array([centre[0], floor_y, centre[2]]),
        normal=np.array([0.0, -1.0, 0.0]),
        size=max(20 * radius, 10.0),
    )
    out = _renderer(renderer).render(
        world, cam, world_to_camera=pose, ground=ground, background=background, outputs=("color",)
    )
    return out.color

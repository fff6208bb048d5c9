"""Offscreen rendering on CPU (moderngl + EGL on Mesa llvmpipe); a tool beside the model, not part of it.

- ``context``: the headless GL context, thread budget, and the error naming missing Debian packages
- ``camera``: OpenCV pinhole camera and its exact GL projection
- ``scene``: meshes (plain arrays) and the ground plane
- ``renderer``: one pass -> colour, face ids, barycentrics, metric depth
- ``overlay``: mesh-over-image overlays and the gravity-aligned side ("world") view
- ``primitives``: boxes, spheres and a camera frustum for tests and pictures
"""

from whmr_core.render.camera import PinholeCamera, look_at, pose_matrix
from whmr_core.render.context import DEBIAN_PACKAGES, RenderUnavailableError, configure_threads, get_context
from whmr_core.render.overlay import overlay_meshes, render_world_view
from whmr_core.render.renderer import ALL_OUTPUTS, GROUND_ID, Renderer, RenderOutput
from whmr_core.render.scene import GroundPlane, Mesh, vertex_normals

__all__ = [
    "ALL_OUTPUTS",
    "DEBIAN_PACKAGES",
    "GROUND_ID",
    "GroundPlane",
    "Mesh",
    "PinholeCamera",
    "RenderOutput",
    "RenderUnavailableError",
    "Renderer",
    "configure_threads",
    "get_context",
    "look_at",
    "overlay_meshes",
    "pose_matrix",
    "render_world_view",
    "vertex_normals",
]

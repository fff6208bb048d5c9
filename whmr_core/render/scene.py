"""What the renderer draws: triangle meshes from plain arrays and a checkered ground plane.

Both are given in one frame: the camera optical frame, or the world frame when a world->camera pose
is passed to the renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroundPlane", "Mesh", "vertex_normals"]

Color = tuple[float, float, float]


def _color(name: str, value: Sequence[float]) -> Color:
    c = np.asarray(value, dtype=np.float64).reshape(-1)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise ValueError(f"{name}: expected an RGB triple, got {value!r}")
    if c.max() > 1.0:  # accept 0-255 colours too
        c = c / 255.0
    return (float(c[0]), float(c[1]), float(c[2]))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, (V,3) float32; isolated vertices get (0, 0, 0)."""
    v = vertices.astype(np.float64, copy=False)
    tri = v[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area: the weight
    idx = faces.reshape(-1)
    # bincount is several times faster than np.add.at for scatter-adding.
    n = np.stack(
        [np.bincount(idx, weights=np.repeat(fn[:, k], 3), minlength=len(v)) for k in range(3)], axis=-1
    )
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return (n / np.where(norm > 0, norm, 1.0)).astype(np.float32)


@dataclass
class Mesh:
    """A triangle mesh: ``vertices`` (V,3) metres, ``faces`` (F,3) vertex indices, one RGB colour.

    ``smooth`` shades with interpolated vertex normals (computed here unless ``normals`` is given);
    otherwise each face is flat. Torch tensors are accepted (detach them first).
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: Color = (0.75, 0.75, 0.78)
    smooth: bool = True
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(np.asarray(self.vertices), dtype=np.float32)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"Mesh.vertices: expected shape (V, 3), got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"Mesh.faces: expected shape (F, 3), got {f.shape}")
        if f.size and not np.issubdtype(f.dtype, np.integer):
            raise ValueError(f"Mesh.faces: expected integer indices, got dtype {f.dtype}")
        if not np.all(np.isfinite(v)):
            raise ValueError("Mesh.vertices: contains non-finite values (NaN or inf)")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError(f"Mesh.faces: indices must be in [0, {len(v)}), got [{f.min()}, {f.max()}]")
        self.vertices = v
        self.faces = np.ascontiguousarray(f, dtype=np.uint32)
        self.color = _color("Mesh.color", self.color)
        if self.normals is not None:
            n = np.ascontiguousarray(np.asarray(self.normals), dtype=np.float32)
            if n.shape != v.shape:
                raise ValueError(f"Mesh.normals: expected shape {v.shape}, got {n.shape}")
            self.normals = n

    def shading_normals(self) -> np.ndarray | None:
        """Vertex normals for smooth shading, or None for flat shading (the GPU derives face normals)."""
        if not self.smooth:
            return None
        if self.normals is None:
            self.normals = vertex_normals(self.vertices, self.faces.astype(np.int64))
        return self.normals


@dataclass
class GroundPlane:
    """A square checkerboard of side ``size`` centred at ``point``, perpendicular to ``normal``.

    ``normal`` points up (against gravity). Build one from gravity with :meth:`from_gravity`.
    """

    point: np.ndarray
    normal: np.ndarray
    size: float = 60.0
    tile: float = 1.0
    colors: tuple[Color, Color] = field(default=((0.62, 0.62, 0.60), (0.48, 0.48, 0.47)))

    def __post_init__(self) -> None:
        p = np.asarray(self.point, dtype=np.float64).reshape(-1)
        n = np.asarray(self.normal, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or n.shape != (3,) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(n))):
            raise ValueError(f"GroundPlane: point and normal must be finite 3-vectors, got {p}, {n}")
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            raise ValueError("GroundPlane.normal: zero vector")
        if not (self.size > 0 and self.tile > 0):
            raise ValueError(f"GroundPlane: size and tile must be > 0, got {self.size}, {self.tile}")
        self.point, self.normal = p, n / norm
        self.colors = (
            _color("GroundPlane.colors[0]", self.colors[0]),
            _color("GroundPlane.colors[1]", self.colors[1]),
        )

    @classmethod
    def from_gravity(cls, gravity: np.ndarray, height: float, **kwargs) -> GroundPlane:
        """Plane ``height`` metres below the frame's origin along ``gravity`` (e.g. camera height)."""
        g = np.asarray(gravity, dtype=np.float64).reshape(3)
        g = g / np.linalg.norm(g)
        return cls(point=height * g, normal=-g, **kwargs)

    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Two orthonormal in-plane axes (e1, e2) with e1 x e2 = normal."""
        n = self.normal
        helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
        e1 = np.cross(helper, n)
        e1 /= np.linalg.norm(e1)
        return e1, np.cross(n, e1)

    def quad(self) -> np.ndarray:
        """(4,3) float32 corners, counter-clockwise about the normal."""
        e1, e2 = self.basis()
        h = self.size / 2
        c = self.point
        return np.stack(
            [c - h * e1 - h * e2, c + h * e1 - h * e2, c + h * e1 + h * e2, c - h * e1 + h * e2]
        ).astype(np.float32)

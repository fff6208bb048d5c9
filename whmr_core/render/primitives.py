"""Simple meshes (box, UV sphere, camera frustum) as (vertices, faces) arrays for tests, demos, benchmarks."""

from __future__ import annotations

import numpy as np

__all__ = ["box", "camera_frustum", "uv_sphere"]


def box(center: np.ndarray, size: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box: 8 vertices (float64), 12 triangles with outward counter-clockwise winding."""
    c = np.asarray(center, dtype=np.float64).reshape(3)
    h = np.broadcast_to(np.asarray(size, dtype=np.float64), (3,)) / 2
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    faces = np.array(
        [
            [0, 1, 3], [0, 3, 2],  # x-
            [4, 6, 7], [4, 7, 5],  # x+
            [0, 4, 5], [0, 5, 1],  # y-
            [2, 3, 7], [2, 7, 6],  # y+
            [0, 2, 6], [0, 6, 4],  # z-
            [1, 5, 7], [1, 7, 3],  # z+
        ],
        dtype=np.int64,
    )  # fmt: skip
    return c + corners * h, faces


def uv_sphere(
    center: np.ndarray, radius: float, n_lat: int = 16, n_lon: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude sphere: 2 + (n_lat - 1) n_lon vertices, 2 n_lon (n_lat - 1) triangles."""
    if n_lat < 2 or n_lon < 3:
        raise ValueError(f"uv_sphere: need n_lat >= 2 and n_lon >= 3, got {n_lat}, {n_lon}")
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + np.asarray(center, dtype=np.float64)
    faces = []
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    faces.append(np.stack([np.zeros(n_lon, np.int64), 1 + jn, 1 + j], -1))
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
        faces.append(np.stack([a + j, a + jn, b + jn], -1))
        faces.append(np.stack([a + j, b + jn, b + j], -1))
    last, south = 1 + (n_lat - 2) * n_lon, len(verts) - 1
    faces.append(np.stack([last + j, last + jn, np.full(n_lon, south)], -1))
    return verts, np.concatenate(faces).astype(np.int64)


def camera_frustum(
    depth: float = 0.3, half_width: float = 0.2, half_height: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """Pyramid with its apex at the camera centre opening along +z (camera optical frame)."""
    verts = np.array(
        [[0, 0, 0], [-half_width, -half_height, depth], [half_width, -half_height, depth],
         [half_width, half_height, depth], [-half_width, half_height, depth]],
        dtype=np.float64,
    )  # fmt: skip
    faces = np.array([[0, 2, 1], [0, 3, 2], [0, 4, 3], [0, 1, 4], [1, 2, 3], [1, 3, 4]], dtype=np.int64)
    return verts, faces

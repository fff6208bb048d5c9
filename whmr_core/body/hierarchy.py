"""Mesh hierarchy for the network: decimated meshes and the sampling matrices between them, and markers.

Decimation is quadric edge collapse (fast-simplification). Every collapse merges one vertex into another,
so a decimated mesh's vertices are a subset of the finer mesh's vertices (as in CoMA/GraphCMR/METRO):
downsampling selects them, and upsampling puts every fine vertex at barycentric coordinates of its
closest coarse triangle. Hence ``down @ up`` is the identity on the coarse mesh.
"""

from __future__ import annotations

import fast_simplification
import numpy as np
import scipy.sparse
from scipy.spatial import cKDTree


def decimate(vertices: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept vertex indices (sorted, into ``vertices``) and the coarse faces (indices into the kept set)."""
    v = np.ascontiguousarray(vertices, np.float64)
    f = np.ascontiguousarray(faces, np.int32)
    # A closed mesh has about twice as many triangles as vertices.
    target_faces = max(4, round(len(f) * target_vertices / len(v)))
    _, _, collapses = fast_simplification.simplify(v, f, target_count=target_faces, return_collapses=True)
    # Follow the collapse history ourselves (``collapses[i] = [a, b]``: b merged into a) rather than relying
    # on replay_simplification's renumbering, which silently drops vertices left without faces.
    root = np.arange(len(v))
    root[collapses[:, 1]] = collapses[:, 0]
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    coarse = root[np.asarray(faces, np.int64)]
    coarse = coarse[
        (coarse[:, 0] != coarse[:, 1]) & (coarse[:, 1] != coarse[:, 2]) & (coarse[:, 0] != coarse[:, 2])
    ]
    _, first = np.unique(np.sort(coarse, axis=1), axis=0, return_index=True)
    coarse = coarse[np.sort(first)]  # duplicates (two faces collapsed onto one) removed, winding kept
    kept = np.unique(coarse)
    faces_low = np.searchsorted(kept, coarse)
    return kept, faces_low


def selection_matrix(kept: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """(len(kept), num_vertices) 0/1 matrix picking the kept vertices."""
    n = len(kept)
    return scipy.sparse.csr_matrix((np.ones(n), (np.arange(n), kept)), shape=(n, num_vertices))


def _closest_point_barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (N,3) of the points on triangles (a,b,c) closest to p (Ericson, 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.sum(ab * ap, -1), np.sum(ac * ap, -1)
    bp = p - b
    d3, d4 = np.sum(ab * bp, -1), np.sum(ac * bp, -1)
    cp = p - c
    d5, d6 = np.sum(ab * cp, -1), np.sum(ac * cp, -1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    eps = 1e-30
    out = np.empty((len(p), 3))
    denom = va + vb + vc
    v = vb / np.where(np.abs(denom) < eps, eps, denom)
    w = vc / np.where(np.abs(denom) < eps, eps, denom)
    out[:] = np.stack([1 - v - w, v, w], -1)  # interior (overwritten below in the edge/vertex regions)
    regions = [
        (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), (vb <= 0) & (d2 >= 0) & (d6 <= 0),
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),
    ]  # fmt: skip
    t_bc = (d4 - d3) / np.maximum((d4 - d3) + (d5 - d6), eps)
    t_ac = d2 / np.maximum(d2 - d6, eps)
    t_ab = d1 / np.maximum(d1 - d3, eps)
    edges = (
        np.stack([0 * t_bc, 1 - t_bc, t_bc], -1),
        np.stack([1 - t_ac, 0 * t_ac, t_ac], -1),
        np.stack([1 - t_ab, t_ab, 0 * t_ab], -1),
    )
    for mask, bary in zip(regions, edges, strict=True):
        out[mask] = bary[mask]
    corners = [
        ((d1 <= 0) & (d2 <= 0), [1.0, 0, 0]), ((d3 >= 0) & (d4 <= d3), [0, 1.0, 0]),
        ((d6 >= 0) & (d5 <= d6), [0, 0, 1.0]),
    ]  # fmt: skip
    for mask, bary in corners:
        out[mask] = bary
    return out


def barycentric_upsampling(
    fine: np.ndarray, coarse: np.ndarray, coarse_faces: np.ndarray, candidates: int = 16
) -> scipy.sparse.csr_matrix:
    """(len(fine), len(coarse)) matrix placing each fine vertex on its closest coarse triangle."""
    centroids = coarse[coarse_faces].mean(1)
    k = min(candidates, len(coarse_faces))
    _, cand = cKDTree(centroids).query(fine, k=k)
    cand = cand.reshape(len(fine), k)
    best_d = np.full(len(fine), np.inf)
    best_bary = np.zeros((len(fine), 3))
    best_face = np.zeros(len(fine), np.int64)
    for i in range(k):
        tri = coarse[coarse_faces[cand[:, i]]]
        bary = _closest_point_barycentric(fine, tri[:, 0], tri[:, 1], tri[:, 2])
        d = np.linalg.norm(np.einsum("nk,nkc->nc", bary, tri) - fine, axis=1)
        better = d < best_d - 1e-12
        best_d[better], best_bary[better], best_face[better] = d[better], bary[better], cand[better, i]
    rows = np.repeat(np.arange(len(fine)), 3)
    m = scipy.sparse.csr_matrix(
        (best_bary.ravel(), (rows, coarse_faces[best_face].ravel())), shape=(len(fine), len(coarse))
    )
    m.eliminate_zeros()
    return m


def farthest_point_sampling(points: np.ndarray, count: int, start: int) -> np.ndarray:
    """Indices of ``count`` well-spread points (greedy farthest-point order from ``start``)."""
    chosen = np.empty(count, np.int64)
    chosen[0] = start
    dist = np.linalg.norm(points - points[start], axis=1)
    for i in range(1, count):
        chosen[i] = int(np.argmax(dist))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[i]], axis=1))
    return chosen

"""What ``whmr image``/``whmr video`` write: per-image JSON records and meshes (.obj / .ply).

Frames and units: ``*_camera`` in the camera optical frame (x right, y down, z forward), ``*_gravity`` in
``<camera>_gravity`` (ROS axes: x forward, y left, z up; origin at the camera), metres; quaternions are
ROS order (x, y, z, w); ``pose`` is SMPL's 24 x 3 axis-angle (root first: the camera-frame orientation).
Without K the translation is in the network's relative scale (``translation_is_metric`` false).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core.body.keypoints import COCO17_NAMES
from whmr_core.rotations import matrix_to_axis_angle, matrix_to_quaternion_xyzw
from whmr_core.runtime.frames import FrameResult, PersonResult

__all__ = ["frame_record", "person_record", "write_mesh"]


def _list(a: np.ndarray, digits: int = 5) -> Any:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def person_record(p: PersonResult) -> dict[str, Any]:
    aa = matrix_to_axis_angle(torch.as_tensor(p.local_rotations, dtype=torch.float64)).numpy()
    return {
        "track_id": p.track_id,
        "box_xyxy": _list(p.box_xyxy, 1),
        "box_source": p.box_source,
        "score": round(p.score, 4),
        "focal_px": round(p.focal_px, 2),
        "translation_camera": _list(p.translation_camera),
        "translation_is_metric": p.translation_is_metric,
        "joints_camera": _list(p.joints_camera),
        "joints_gravity": _list(p.joints_gravity),
        "joints_2d": _list(p.joints_2d, 1),
        "root_orientation_camera": matrix_to_quaternion_xyzw(p.root_orientation_camera).round(6).tolist(),
        "root_orientation_gravity": matrix_to_quaternion_xyzw(p.root_orientation_gravity).round(6).tolist(),
        "betas": _list(p.betas),
        "pose": _list(aa),
        # COCO-17 (x, y, score), names in "keypoint_names" of the frame record; null: no keypoint model ran
        "keypoints_2d": None if p.keypoints_2d is None else _list(p.keypoints_2d, 3),
        "fit": p.fit,
    }


def frame_record(
    result: FrameResult, *, focal_px: float | None, source: str | None = None, meshes: list[str] | None = None
) -> dict[str, Any]:
    """One image's record. ``focal_px``: the one focal length of the image (K's or the fused one; None
    when each person kept their own)."""
    w, h = result.image_wh
    rec: dict[str, Any] = {}
    if source is not None:
        rec["source"] = source
    rec.update(
        {
            "width": w,
            "height": h,
            "stamp_ns": result.stamp_ns,
            "focal_px": None if focal_px is None else round(float(focal_px), 2),
            "focal_from_K": result.K is not None,
            "gravity_source": result.gravity_source,
            "gravity_note": result.gravity_reason,
            "camera_rotation": _list(result.camera_rotation, 6),
            "box_source": result.box_source,
            "keypoint_names": list(COCO17_NAMES),
            "persons": [person_record(p) for p in result.persons],
            "dropped": [d.reason for d in result.dropped],
        }
    )
    if meshes is not None:
        rec["meshes"] = meshes
    return rec


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """A triangle mesh as Wavefront .obj (text) or binary little-endian .ply, by the suffix."""
    path = Path(path)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"write_mesh: expected (V, 3) vertices and (F, 3) faces, got {v.shape} {f.shape}")
    suffix = path.suffix.lower()
    if suffix == ".obj":
        lines = ["# whmr body mesh, camera optical frame (x right, y down, z forward), metres"]
        lines += [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in v]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f]  # .obj counts from 1
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif suffix == ".ply":
        header = (
            "ply\nformat binary_little_endian 1.0\n"
            "comment whmr body mesh, camera optical frame (x right, y down, z forward), metres\n"
            f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
            f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
        )
        body = v.astype("<f4").tobytes()
        tri = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
        tri["n"], tri["i"] = 3, f
        path.write_bytes(header.encode("ascii") + body + tri.tobytes())
    else:
        raise ValueError(f"{path}: mesh format by suffix: .obj or .ply")
    return path

"""What every npz format module declares, and the camera conversions the ones with world labels share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from whmr_core.geometry import camera_rotation_from_gravity
from whmr_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["BOX_MARGIN", "SPIN_KEYS", "NpzFormat", "gravity_labels", "smpl72"]

# The box readers draw around a person's projected joints: 1.2 times its longer side (mmhuman3d's HuMMan
# converter, BEDLAM's AGORA preprocessing).
BOX_MARGIN = 1.2

# The SPIN/PyMAF columns that SPIN-derived formats (CLIFF, the W-HMR release, SPEC) share, as ``KEYS`` tables
# describe them: what whmr reads each one as.
SPIN_KEYS = {
    "imgname": "imgname",
    "center": "center",
    "scale": "scale",
    "part": "part (2D joints, SPIN-24)",
    "S": "S (3D joints, SPIN-24)",
    "pose": "pose (SMPL)",
    "shape": "shape (SMPL betas)",
    "has_smpl": "has_smpl",
    "openpose": "read, not a label",
    "gender": "read, not used",
}


@dataclass(frozen=True)
class NpzFormat:
    """An npz format: its keys (real key -> what whmr does with it) and the conversion to whmr's fields."""

    name: str
    files: str  # the files users have
    keys: Mapping[str, str]
    detect: Callable[[set[str]], bool]
    # the file's columns (ignored keys removed) -> (whmr columns, joints layout of part/S)
    convert: Callable[[dict[str, np.ndarray]], tuple[dict[str, np.ndarray], str]]


def gravity_labels(gravity_cam: np.ndarray, pose_cam: np.ndarray) -> dict[str, np.ndarray]:
    """whmr's gravity columns from gravity's direction in each camera (N,3) and the camera-frame pose:
    R_c (``cam_rotation``), ``gravity_cam`` and the root in frame G (``global_orient_world`` = R_c^T R_b^c),
    with ``has_world`` 1."""
    g = torch.as_tensor(np.asarray(gravity_cam, dtype=np.float64))
    r_c = camera_rotation_from_gravity(g)
    root_cam = axis_angle_to_matrix(torch.as_tensor(np.asarray(pose_cam, dtype=np.float64)[:, :3]))
    root_world = matrix_to_axis_angle(r_c.transpose(1, 2) @ root_cam)
    n = len(g)
    return {
        "cam_rotation": r_c.numpy(),
        "gravity_cam": (g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)).numpy(),
        "global_orient_world": root_world.numpy(),
        "has_world": np.ones(n),
    }


def smpl72(pose: np.ndarray) -> np.ndarray:
    """(N,72) SMPL pose from a SMPL (72) or SMPL-X (>= 66: its first 22 joints are SMPL's; the hands,
    SMPL's joints 22-23, stay at rest) axis-angle pose."""
    pose = np.asarray(pose, dtype=np.float64).reshape(len(pose), -1)
    if pose.shape[1] == 72:
        return pose
    if pose.shape[1] < 66:
        raise ValueError(f"pose: expected 72 (SMPL) or >= 66 (SMPL-X) values per row, got {pose.shape[1]}")
    return np.concatenate([pose[:, :66], np.zeros((len(pose), 6))], axis=1)

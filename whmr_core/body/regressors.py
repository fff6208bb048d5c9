"""Keypoint regressors (COCO-17, H36M-17) as (17,V) matrices over the mesh vertices.

Limb keypoints reuse the model's own joint regressor rows; face points and the head top are the surface
landmarks of :mod:`whmr_core.body.landmarks`. Everything follows the loaded mesh, whatever its size.
"""

from __future__ import annotations

import numpy as np

COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
H36M_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
    "thorax", "neck_nose", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
)  # fmt: skip

# SMPL joint indices.
_SMPL = {
    "pelvis": 0, "left_hip": 1, "right_hip": 2, "spine1": 3, "left_knee": 4, "right_knee": 5, "spine2": 6,
    "left_ankle": 7, "right_ankle": 8, "spine3": 9, "neck": 12, "head": 15, "left_shoulder": 16,
    "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "left_wrist": 20, "right_wrist": 21,
}  # fmt: skip


def _onehot(index: int, num_vertices: int) -> np.ndarray:
    row = np.zeros(num_vertices)
    row[index] = 1.0
    return row


def coco_regressor(joint_regressor: np.ndarray, landmarks: dict[str, int]) -> np.ndarray:
    """(17,V) COCO keypoints: face points at landmark vertices, limbs at the SMPL joints."""
    nv = joint_regressor.shape[1]
    face = {"nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear"}
    rows = [_onehot(landmarks[face[n]], nv) if n in face else joint_regressor[_SMPL[n]] for n in COCO_NAMES]
    return np.stack(rows).astype(np.float64)


def h36m_regressor(joint_regressor: np.ndarray, landmarks: dict[str, int]) -> np.ndarray:
    """(17,V) Human3.6M-style joints in H36M order.

    H36M's pelvis is the hips' midpoint, its spine halfway between pelvis and thorax (SMPL's neck base),
    neck/nose between SMPL's head joint and the nose, and head the top of the head.
    """
    nv = joint_regressor.shape[1]
    jr = joint_regressor
    pelvis = 0.5 * (jr[_SMPL["left_hip"]] + jr[_SMPL["right_hip"]])
    special = {
        "pelvis": pelvis,
        "spine": 0.5 * (pelvis + jr[_SMPL["neck"]]),
        "thorax": jr[_SMPL["neck"]],
        "neck_nose": 0.5 * (jr[_SMPL["head"]] + _onehot(landmarks["nose"], nv)),
        "head_top": _onehot(landmarks["head_top"], nv),
    }
    return np.stack([special[n] if n in special else jr[_SMPL[n]] for n in H36M_NAMES]).astype(np.float64)

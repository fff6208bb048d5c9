"""Keypoint regressors (COCO-17, H36M-17) as (17,V) matrices over the mesh vertices.

Limb keypoints reuse the model's own joint regressor rows; face points and the head top are the surface
landmarks of :mod:`whmr_core.body.landmarks`. Everything follows the loaded mesh, whatever its size.
"""

from __future__ import annotations

import numpy as np

from whmr_core.body.keypoints import COCO17_FACE_LANDMARKS, COCO17_NAMES, COCO17_SMPL_JOINT
from whmr_core.body.skeleton import SMPL_JOINT_NAMES

# Human3.6M-style joints in H36M order (also joint_layouts' h36m17 layout).
H36M_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
    "thorax", "neck_nose", "head_top", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
)  # fmt: skip

_SMPL_INDEX = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


def _onehot(index: int, num_vertices: int) -> np.ndarray:
    row = np.zeros(num_vertices)
    row[index] = 1.0
    return row


def coco_regressor(joint_regressor: np.ndarray, landmarks: dict[str, int]) -> np.ndarray:
    """(17,V) COCO keypoints: face points at landmark vertices, limbs at the SMPL joints."""
    nv = joint_regressor.shape[1]
    rows = [
        _onehot(landmarks[COCO17_FACE_LANDMARKS[k]], nv)
        if k in COCO17_FACE_LANDMARKS
        else joint_regressor[COCO17_SMPL_JOINT[k]]
        for k in range(len(COCO17_NAMES))
    ]
    return np.stack(rows).astype(np.float64)


def h36m_regressor(joint_regressor: np.ndarray, landmarks: dict[str, int]) -> np.ndarray:
    """(17,V) Human3.6M-style joints in H36M order.

    H36M's pelvis is the hips' midpoint, its spine halfway between pelvis and thorax (SMPL's neck base),
    neck/nose between SMPL's head joint and the nose, and head the top of the head.
    """
    nv = joint_regressor.shape[1]
    jr = joint_regressor
    pelvis = 0.5 * (jr[_SMPL_INDEX["left_hip"]] + jr[_SMPL_INDEX["right_hip"]])
    special = {
        "pelvis": pelvis,
        "spine": 0.5 * (pelvis + jr[_SMPL_INDEX["neck"]]),
        "thorax": jr[_SMPL_INDEX["neck"]],
        "neck_nose": 0.5 * (jr[_SMPL_INDEX["head"]] + _onehot(landmarks["nose"], nv)),
        "head_top": _onehot(landmarks["head_top"], nv),
    }
    return np.stack([special[n] if n in special else jr[_SMPL_INDEX[n]] for n in H36M_NAMES]).astype(
        np.float64
    )

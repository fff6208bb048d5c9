"""COCO-17 keypoints (MoveNet's, COCO's and most 2D pose models' order), the one home of these constants.

What 2D keypoint models output and the real-image benchmark scores. A body gives them as: the 12 limb points
from SMPL joints (COCO shoulders and hips sit near the SMPL joints of those names), the face points from the
surface landmarks of ``whmr_core.body.landmarks`` (vertex ids, found on any SMPL-format mesh).
"""

from __future__ import annotations

from whmr_core.body.skeleton import SMPL_JOINT_NAMES, mirror_name

__all__ = [
    "COCO17_FACE_LANDMARKS",
    "COCO17_FLIP_PERM",
    "COCO17_NAMES",
    "COCO17_SKELETON",
    "COCO17_SMPL_JOINT",
    "POSE_MODEL_HIP_LIFT",
]

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


# Keypoint k of a mirrored person is keypoint COCO17_FLIP_PERM[k].
COCO17_FLIP_PERM: tuple[int, ...] = tuple(COCO17_NAMES.index(mirror_name(n)) for n in COCO17_NAMES)

# COCO keypoint index -> SMPL joint index, for the 12 limb points (shoulders to ankles).
COCO17_SMPL_JOINT: dict[int, int] = {
    k: SMPL_JOINT_NAMES.index(n) for k, n in enumerate(COCO17_NAMES) if n in SMPL_JOINT_NAMES
}

# Where 2D pose models trained on COCO put a body's hips: not at its hip joints but higher, by this many times
# the pelvis joint's height over the hip joints' midpoint (about 2 cm above the pelvis joint), with no
# sideways offset. Measured with MoveNet Thunder on whmr's synthetic renders, whose joints are known
# (scripts/measure_pose_model_hips.py: 590 people, 1.38; halves 1.33 / 1.43; sideways -0.01..0.01 of the
# hip width); BlazePose's hips sit as high (docs/fitting.md). The keypoint fit matches pose models' hips
# there.
POSE_MODEL_HIP_LIFT = 1.38

# COCO keypoint index -> surface landmark name (``landmarks.surface_landmarks``), for the face points.
COCO17_FACE_LANDMARKS: dict[int, str] = {0: "nose", 1: "leye", 2: "reye", 3: "lear", 4: "rear"}

# Limbs drawn in overlays (pairs of COCO indices).
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12),
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip

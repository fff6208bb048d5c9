"""The SMPL skeleton: joint names, kinematic tree and left/right mirror, the one home of these constants.

Every SMPL-format body whmr loads (the shipped free model, a user's SMPL file, the test stand-in) has
these 24 joints in this order; the network, the synthetic-pose sampler, the augmentation and the ROS
topology message all read them from here.
"""

from __future__ import annotations

__all__ = ["SMPL_FLIP_PERM", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "kintree_table", "mirror_name"]

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip

# Parent joint of each joint (-1: the root, the pelvis).
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip


def mirror_name(name: str) -> str:
    """A left_* name as right_* and back; other names as they are."""
    for a, b in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a) :]
    return name


# Left <-> right joint swap of a mirrored body (joint j of the mirror is joint SMPL_FLIP_PERM[j]).
SMPL_FLIP_PERM: tuple[int, ...] = tuple(SMPL_JOINT_NAMES.index(mirror_name(n)) for n in SMPL_JOINT_NAMES)


def kintree_table(root: int = 4294967295) -> list[list[int]]:
    """SMPL files' (2, 24) ``kintree_table``: parents (the root's as ``root``; SMPL's pickles store
    2**32 - 1), then the joint ids."""
    return [[root if p < 0 else p for p in SMPL_PARENTS], list(range(len(SMPL_PARENTS)))]

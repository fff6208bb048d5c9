"""Joint layouts of the data sets whmr reads, and how each maps to what the network predicts.

A layout is a table of joint names in the order a data set stores them, its left/right mirror and the joints
its protocol aligns 3D skeletons at (the root). Every layout maps onto the *supervision layout*: the 24 SMPL
joints followed by 9 points the network also predicts (face points of its COCO regressor, and the H36M
regressor's head top, hip midpoint, spine and jaw). Labels are converted into it once, when a sample is read,
so a batch mixes data sets of any layout; a joint the network cannot predict (OpenPose's toes and heels)
gets confidence 0.

Sources of the orders (tables of names, facts of each format):

- ``spin24``: SPIN's 24 ground-truth joints (``constants.JOINT_NAMES[25:]``), the ``part``/``S`` arrays of
  SPIN/PyMAF/CLIFF/EFT npz files: LSP-14, MPII pelvis and thorax, H36M spine, jaw and head, face points.
- ``spin49``: SPIN's 25 OpenPose joints followed by those 24 (``constants.JOINT_NAMES``).
- ``hmr2_44``: the first 44 of those 49, 4D-Humans' ``keypoints_2d``/``keypoints_3d``.
- ``openpose25``: OpenPose BODY_25 (the ``openpose`` arrays of SPIN files).
- ``coco17``: COCO keypoints (``whmr_core.body.keypoints``).
- ``h36m17``: Human3.6M's 17 joints in the data set's (and MMPose's) order, right leg first: the order of
  ``whmr_core.body.regressors.H36M_NAMES``.
- ``mpi_inf_3dhp17``: MPI-INF-3DHP's 17 test-set joints (``annot3`` of the test sequences).
- ``smpl24``: SMPL's joints (``whmr_core.body.skeleton``), whmr's own files.
- ``smpl45``: the joints smplx's SMPL model returns (SMPL-24, then the face, feet and fingertip points it
  takes from vertices: ``smplx.joint_names.JOINT_NAMES[55:76]``), AGORA's SMPL ``gt_joints_2d/3d``; AGORA's
  SMPL-X joints are read into it (their first 22 are SMPL's; SMPL's hand joints 22-23 stay unlabelled).

Several labels land on one supervision point where data sets name the same place differently (LSP's neck
and MPII's thorax both sit at SMPL's neck; LSP's and H36M's head tops); the first labelled one wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES as SMPLX_JOINT_NAMES

from whmr_core.body.keypoints import COCO17_NAMES
from whmr_core.body.regressors import H36M_NAMES
from whmr_core.body.skeleton import SMPL_JOINT_NAMES, mirror_name

__all__ = [
    "LAYOUTS",
    "SMPLX_EXTRA_JOINTS",
    "SUPERVISION_COCO",
    "SUPERVISION_FLIP_PERM",
    "SUPERVISION_H36M",
    "SUPERVISION_NAMES",
    "JointLayout",
    "get_layout",
    "root_weights",
    "supervision_points",
    "to_supervision",
]

# The points the network predicts, in the order every training label is converted to: SMPL-24, then the
# COCO regressor's face points, then four H36M regressor points.
SUPERVISION_COCO: tuple[int, ...] = (0, 1, 2, 3, 4)  # nose, eyes, ears of the COCO regressor
SUPERVISION_H36M: tuple[int, ...] = tuple(
    H36M_NAMES.index(n) for n in ("head_top", "pelvis", "spine", "neck_nose")
)
SUPERVISION_NAMES: tuple[str, ...] = (
    *SMPL_JOINT_NAMES,
    *(COCO17_NAMES[k] for k in SUPERVISION_COCO),
    "head_top",
    "mid_hip",  # H36M's pelvis: the midpoint of the hips
    "spine_h36m",
    "jaw_h36m",  # H36M's "neck/nose", SPIN's "Jaw (H36M)"
)


def _mirror(name: str) -> str:
    """``skeleton.mirror_name``, also behind SPIN-49's ``op_`` prefix."""
    if name.startswith("op_"):
        return "op_" + mirror_name(name[3:])
    return mirror_name(name)


# Supervision point k of a mirrored person is point SUPERVISION_FLIP_PERM[k].
SUPERVISION_FLIP_PERM: tuple[int, ...] = tuple(SUPERVISION_NAMES.index(_mirror(n)) for n in SUPERVISION_NAMES)


@dataclass(frozen=True)
class JointLayout:
    """One data set's joint order. ``to`` maps a layout joint to its supervision point (None: none)."""

    name: str
    names: tuple[str, ...]
    root: tuple[int, ...]  # layout joints whose mean is the protocol's root (3D alignment)
    aliases: tuple[tuple[str, str], ...] = ()  # layout name -> supervision name, where they differ

    def __len__(self) -> int:
        return len(self.names)

    @property
    def flip_perm(self) -> tuple[int, ...]:
        """Joint k of a mirrored person is joint ``flip_perm[k]``."""
        return tuple(self.names.index(_mirror(n)) for n in self.names)

    @property
    def to(self) -> tuple[int | None, ...]:
        alias = dict(self.aliases)
        out = []
        for n in self.names:
            target = alias.get(n, n)
            out.append(SUPERVISION_NAMES.index(target) if target in SUPERVISION_NAMES else None)
        return tuple(out)

    @property
    def supervision_root(self) -> tuple[int, ...]:
        """The root joints as supervision points."""
        to = self.to
        idx = tuple(to[k] for k in self.root)
        if any(i is None for i in idx):
            raise AssertionError(f"{self.name}: root joints without a supervision point")
        return idx  # type: ignore[return-value]


_SPIN24 = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck_lsp", "head_top_lsp",
    "pelvis_mpii", "thorax_mpii", "spine_h36m", "jaw_h36m", "head_h36m", "nose", "left_eye", "right_eye",
    "left_ear", "right_ear",
)  # fmt: skip
_SPIN24_ALIASES = (
    ("neck_lsp", "neck"),
    ("head_top_lsp", "head_top"),
    ("pelvis_mpii", "mid_hip"),
    ("thorax_mpii", "neck"),
    ("head_h36m", "head_top"),
)
_OPENPOSE25 = (
    "nose", "neck_openpose", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
_H36M_ALIASES = (
    ("pelvis", "mid_hip"),
    ("spine", "spine_h36m"),
    ("thorax", "neck"),
    ("neck_nose", "jaw_h36m"),
)
_MPI_INF_3DHP17 = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "pelvis",
    "spine", "head",
)  # fmt: skip


# smplx's vertex-picked points after the skeleton (face, feet, fingertips), in SMPL's and SMPL-X's output.
SMPLX_EXTRA_JOINTS: tuple[int, ...] = tuple(range(55, 76))  # their indices in SMPL-X's joints


def _op(name: str) -> str:
    return f"op_{name}"


LAYOUTS: dict[str, JointLayout] = {
    lay.name: lay
    for lay in (
        JointLayout("smpl24", SMPL_JOINT_NAMES, root=(0,)),
        JointLayout(
            "smpl45", SMPL_JOINT_NAMES + tuple(SMPLX_JOINT_NAMES[k] for k in SMPLX_EXTRA_JOINTS), root=(0,)
        ),
        JointLayout("spin24", _SPIN24, root=(2, 3), aliases=_SPIN24_ALIASES),
        JointLayout(
            "spin49",
            tuple(_op(n) for n in _OPENPOSE25) + _SPIN24,
            root=(25 + 2, 25 + 3),
            aliases=_SPIN24_ALIASES
            + tuple((_op(n), "neck" if n == "neck_openpose" else n) for n in _OPENPOSE25),
        ),
        JointLayout(  # 4D-Humans (HMR 2.0) tars: SPIN-49 without its last 5 (face) points
            "hmr2_44",
            tuple(_op(n) for n in _OPENPOSE25) + _SPIN24[:19],
            root=(25 + 2, 25 + 3),
            aliases=_SPIN24_ALIASES
            + tuple((_op(n), "neck" if n == "neck_openpose" else n) for n in _OPENPOSE25),
        ),
        JointLayout("openpose25", _OPENPOSE25, root=(8,), aliases=(("neck_openpose", "neck"),)),
        JointLayout("coco17", COCO17_NAMES, root=(11, 12)),
        JointLayout("h36m17", H36M_NAMES, root=(0,), aliases=_H36M_ALIASES),
        JointLayout(
            "mpi_inf_3dhp17",
            _MPI_INF_3DHP17,
            root=(14,),
            aliases=(("pelvis", "mid_hip"), ("spine", "spine_h36m"), ("head", "jaw_h36m")),
        ),
    )
}


def get_layout(name: str) -> JointLayout:
    if name not in LAYOUTS:
        raise ValueError(f"joints layout: expected one of {', '.join(LAYOUTS)}, got {name!r}")
    return LAYOUTS[name]


def to_supervision(points: np.ndarray, layout: str | JointLayout) -> np.ndarray:
    """(J,C) joints of ``layout`` whose last column is a confidence -> (33,C) supervision points.

    Points no joint maps to are zeros; of two joints on one point the first with confidence > 0 wins.
    """
    lay = get_layout(layout) if isinstance(layout, str) else layout
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != len(lay):
        raise ValueError(f"{lay.name}: expected ({len(lay)}, C) joints, got {pts.shape}")
    out = np.zeros((len(SUPERVISION_NAMES), pts.shape[1]))
    written = np.zeros(len(SUPERVISION_NAMES), dtype=bool)
    for k, target in enumerate(lay.to):
        # Unlabelled joints keep their values too (an out-of-image joint's position, confidence 0).
        if target is None or (written[target] and (out[target, -1] > 0 or pts[k, -1] <= 0)):
            continue
        out[target] = pts[k]
        written[target] = True
    return out


def root_weights(joints3d: np.ndarray | None, layout: str | JointLayout) -> np.ndarray | None:
    """(33,) weights of the supervision points whose mean is ``layout``'s root, or None when ``joints3d``
    (33,4, supervision layout) is missing or one of them is unlabelled (the sample has no 3D root).
    Every protocol's root is symmetric (the pelvis, or both hips), so mirroring leaves the weights valid."""
    if joints3d is None:
        return None
    lay = get_layout(layout) if isinstance(layout, str) else layout
    idx = list(lay.supervision_root)
    if not (np.asarray(joints3d)[idx, -1] > 0).all():
        return None
    w = np.zeros(len(SUPERVISION_NAMES))
    w[idx] = 1.0 / len(idx)
    return w


def supervision_points(joints: torch.Tensor, coco: torch.Tensor, h36m: torch.Tensor) -> torch.Tensor:
    """The network's (N,33,3) supervision points from its SMPL-24, COCO-17 and H36M-17 joints."""
    return torch.cat([joints, coco[:, list(SUPERVISION_COCO)], h36m[:, list(SUPERVISION_H36M)]], dim=1)

"""The W-HMR release's training npz (PyMAF's SPIN-style files plus CLIFF's focal lengths): ``dataset_extras/
coco_2014_train.npz``, ``mpii_train.npz`` etc. of the authors' ``data`` folder.

| key | shape | whmr |
|---|---|---|
| imgname, center, scale, part, S, pose, shape, has_smpl | SPIN's | the same (SPIN-24 joints) |
| smpl_2dkps | (N,24,3) | 2D SMPL-24 joints (DensePose fits): fill the SMPL points ``part`` leaves empty |
| focal_l | (N,) | ``focal_length`` (pixels) |
| openpose | (N,25,3) | read, not a label |
| maskname, partname, gender | (N,) | read, not used |
"""

from __future__ import annotations

import numpy as np

from whmr_core.data.formats.base import SPIN_KEYS, NpzFormat

KEYS = SPIN_KEYS | {
    "smpl_2dkps": "2D SMPL-24 joints (fill what part leaves unlabelled)",
    "focal_l": "focal_length (pixels)",
    "maskname": "read, not used",
    "partname": "read, not used",
}


def convert(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    out = {("focal_length" if k == "focal_l" else k): v for k, v in cols.items()}
    return out, "spin24"


FORMAT = NpzFormat(
    "whmr-release",
    "the W-HMR release's npz (PyMAF's with smpl_2dkps / focal_l)",
    KEYS,
    lambda keys: "smpl_2dkps" in keys or "focal_l" in keys,
    convert,
)

"""CLIFF's pseudo ground truth (``cliffGT_v1/coco2014part_cliffGT.npz``, ``mpii_cliffGT.npz``): SPIN-style
npz files with SMPL fits and the focal length and camera translation each fit was made with.

| key | shape | whmr |
|---|---|---|
| imgname, center, scale | (N,), (N,2), (N,) | the same |
| part | (N,24,3) | 2D joints, SPIN-24 order |
| pose, shape | (N,72), (N,10) | SMPL labels (camera-frame root) |
| has_smpl | (N,) | the same (1 where absent) |
| focal_l | (N,) | ``focal_length``: the fit's focal length in pixels, principal point at the image centre |
| global_t | (N,3) | ``transl_cam``: the fit's camera-frame translation (smplx ``transl``) |
| annot_id | (N,) | ignored: the COCO / MPII annotation id |
"""

from __future__ import annotations

import numpy as np

from whmr_core.data.formats.base import SPIN_KEYS, NpzFormat

KEYS = SPIN_KEYS | {
    "focal_l": "focal_length (pixels)",
    "global_t": "transl_cam",
    "annot_id": "ignored: the source annotation's id",
}
_RENAME = {"focal_l": "focal_length", "global_t": "transl_cam"}


def convert(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    out = {_RENAME.get(k, k): v for k, v in cols.items() if k != "annot_id"}
    return out, "spin24"


FORMAT = NpzFormat(
    "cliff",
    "CLIFF pseudo-GT npz (coco2014part_cliffGT.npz, mpii_cliffGT.npz)",
    KEYS,
    lambda keys: "global_t" in keys or "annot_id" in keys,
    convert,
)

"""SPIN / PyMAF / EFT npz files (``h36m_train.npz``, ``mpi_inf_3dhp_train.npz``, ``coco_2014_train_eft.npz``,
``lsp_dataset_original_train.npz``, ...) and whmr's own files: read by ``annotations.read_annotations``.

Keys: ``imgname``, ``center``, ``scale`` (box side / 200), ``part`` (N,24,3) and ``S`` (N,24,4) in SPIN's
joint order (``joints_layout`` spin24 unless the file names another), ``pose`` (N,72), ``shape`` (N,10),
``has_smpl``, ``openpose`` (N,25,3: detections, not used as labels, as SPIN), ``gender``, ``maskname``,
``partname``; CLIFF-style ``focal_length``/``cam_int``.
"""

from __future__ import annotations

import numpy as np

from whmr_core.data.annotations import KNOWN_FIELDS
from whmr_core.data.formats.base import NpzFormat

_KEYS = {k: "used" for k in sorted(KNOWN_FIELDS)} | {
    "openpose": "read, not a label (OpenPose detections; SPIN gives them weight 0)",
    "gender": "read, not used (one neutral body)",
    "maskname": "read, not used",
    "partname": "read, not used",
}


def _identity(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    return cols, str(cols.get("joints_layout", "spin24"))


WHMR = NpzFormat("whmr", "whmr synth's train.npz / val.npz", _KEYS, lambda keys: "format" in keys, _identity)
FORMAT = NpzFormat(
    "spin", "SPIN/PyMAF/EFT npz (h36m_train.npz, coco_2014_train_eft.npz, ...)", _KEYS, lambda keys: True,
    _identity,
)  # fmt: skip

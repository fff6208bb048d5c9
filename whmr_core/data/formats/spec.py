"""SPEC's synthetic and MTP sets (``spec-syn_train.npz``, ``spec-mtp_train.npz``, SPEC's ``dataset_extras``):
SPIN-style files with each camera's pitch and roll, so gravity and world orientation labels too.

| key | shape | whmr |
|---|---|---|
| imgname, center, scale, part, S, pose, shape, has_smpl | SPIN's | the same (SPIN-24; camera-frame pose) |
| focal_length | (N,) or (N,2) | the same (pixels) |
| cam_int | (N,3,3) | the same (K) |
| cam_pitch, cam_roll | (N,) radians | R_c (pitched down by cam_pitch, rolled by cam_roll), the world root |
| cam_rotmat | (N,3,3) | ignored: the same rotation as pitch and roll |
| cam_ext, cam_vfov, pose_0yaw_inverseyz | | ignored |
"""

from __future__ import annotations

import math

import numpy as np

from whmr_core.data.cameras import camera_rotation
from whmr_core.data.formats.base import SPIN_KEYS, NpzFormat, gravity_labels

KEYS = SPIN_KEYS | {
    "pose": "pose (SMPL, camera frame)",
    "focal_length": "focal_length (pixels)",
    "cam_int": "cam_int (K)",
    "cam_pitch": "gravity (with cam_roll) -> cam_rotation, global_orient_world",
    "cam_roll": "gravity (with cam_pitch)",
    "cam_rotmat": "ignored: pitch and roll give it",
    "cam_ext": "ignored",
    "cam_vfov": "ignored",
    "pose_0yaw_inverseyz": "ignored",
}
_IGNORED = ("cam_rotmat", "cam_ext", "cam_vfov", "pose_0yaw_inverseyz", "cam_pitch", "cam_roll")


def convert(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    out = {k: v for k, v in cols.items() if k not in _IGNORED}
    if "cam_pitch" in cols and "cam_roll" in cols and "pose" in cols:
        # Gravity in each camera: the second column of R_c (X_C = R_c X_G, G's y is down).
        r_c = np.stack(
            [
                camera_rotation(math.degrees(float(p)), math.degrees(float(r)))
                for p, r in zip(cols["cam_pitch"].reshape(-1), cols["cam_roll"].reshape(-1), strict=True)
            ]
        )
        out.update(gravity_labels(r_c[:, :, 1], cols["pose"]))
    return out, "spin24"


FORMAT = NpzFormat(
    "spec",
    "SPEC-SYN / SPEC-MTP npz",
    KEYS,
    lambda keys: "cam_pitch" in keys or "cam_rotmat" in keys,
    convert,
)

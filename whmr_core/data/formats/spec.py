"""SPEC's synthetic and MTP sets (``spec-syn_train.npz``, ``spec-mtp_train.npz``, SPEC's ``dataset_extras``):
SPIN-style files whose body labels are in a gravity-aligned frame W, with each camera's rotation from it.

SPEC's convention (its code, mkocabas/SPEC at 8905de3, and PARE's ``geometry.batch_euler2matrix``):
``cam_rotmat`` = euler(pitch, 0, roll) = Rx(cam_pitch) Rz(cam_roll), radians, and a body is seen through it,
X_C = cam_rotmat X_W (``SMPLCamHead`` projects with it; the camera-frame baseline turns ``S`` and the root of
``pose`` by it). W has y along gravity (down): gravity in the camera is cam_rotmat's second column,
(-sin roll, cos roll cos pitch, cos roll sin pitch), so a positive pitch looks down (its horizon line rises)
and a positive roll puts the image's "down" towards -x. The W-HMR release evaluates SPEC-SYN the same way
(``utils/compute_error.py``: camera-frame body = cam_rotmat x the file's ``pose`` body).

| key | shape | whmr |
|---|---|---|
| imgname, center, scale, part, has_smpl, shape | SPIN's | the same (``part``: SPIN-24, in the image) |
| pose | (N,72), root in W | ``pose`` with the root turned into the camera (cam_rotmat R_root) |
| S | (N,24,4), W, m | ``S`` turned into the camera |
| focal_length | (N,) or (N,2) | the same (pixels) |
| cam_int | (N,3,3) | the same (K) |
| cam_rotmat | (N,3,3) | W -> camera: the labels into the camera, gravity (its second column) |
| cam_pitch, cam_roll | (N,) radians | the same rotation, used when a file has no ``cam_rotmat`` |
| cam_ext, cam_vfov, pose_0yaw_inverseyz | | ignored |

whmr's world frame G is W turned about gravity so that its z follows the camera's heading (the two agree
when roll or pitch is 0); ``global_orient_world`` is given in G, from the camera-frame root and gravity.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from whmr_core.data.formats.base import SPIN_KEYS, NpzFormat, gravity_labels
from whmr_core.geometry import camera_rotation_from_gravity
from whmr_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["FORMAT", "KEYS", "pitch_roll_from_gravity", "spec_rotation"]

KEYS = SPIN_KEYS | {
    "pose": "pose (SMPL; root turned from W into the camera)",
    "S": "S (SPIN-24; turned from W into the camera)",
    "focal_length": "focal_length (pixels)",
    "cam_int": "cam_int (K)",
    "cam_rotmat": "W -> camera: labels into the camera; gravity -> cam_rotation, global_orient_world",
    "cam_pitch": "with cam_roll: cam_rotmat when absent (Rx(pitch) Rz(roll))",
    "cam_roll": "with cam_pitch",
    "cam_ext": "ignored",
    "cam_vfov": "ignored",
    "pose_0yaw_inverseyz": "ignored",
}
_IGNORED = ("cam_rotmat", "cam_ext", "cam_vfov", "pose_0yaw_inverseyz", "cam_pitch", "cam_roll")


def spec_rotation(pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """SPEC's cam_rotmat (N,3,3) from pitch and roll (radians): Rx(pitch) Rz(roll) (intrinsic X then Z)."""
    angles = np.stack(
        [np.asarray(pitch, np.float64).reshape(-1), np.asarray(roll, np.float64).reshape(-1)], -1
    )
    return Rotation.from_euler("XZ", angles).as_matrix()


def pitch_roll_from_gravity(gravity_cam: np.ndarray) -> tuple[float, float]:
    """SPEC's (pitch, roll) in radians of a camera that sees gravity along ``gravity_cam`` (any length)."""
    g = np.asarray(gravity_cam, dtype=np.float64)
    g = g / np.linalg.norm(g)
    return math.atan2(g[2], g[1]), math.asin(float(np.clip(-g[0], -1.0, 1.0)))


def convert(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    out = {k: v for k, v in cols.items() if k not in _IGNORED}
    if "cam_rotmat" in cols:
        r = np.asarray(cols["cam_rotmat"], dtype=np.float64)
    elif "cam_pitch" in cols and "cam_roll" in cols:
        r = spec_rotation(cols["cam_pitch"], cols["cam_roll"])
    else:
        return out, "spin24"  # no camera rotation: the labels are taken as they are
    if "S" in cols:
        s = np.asarray(cols["S"], dtype=np.float64).copy()
        s[..., :3] = s[..., :3] @ np.swapaxes(r, 1, 2)
        out["S"] = s
    if "pose" in cols:
        pose = np.asarray(cols["pose"], dtype=np.float64).copy()
        root = torch.as_tensor(r) @ axis_angle_to_matrix(torch.as_tensor(pose[:, :3]))
        pose[:, :3] = matrix_to_axis_angle(root).numpy()
        out["pose"] = pose
        out.update(gravity_labels(r[:, :, 1], pose))
    else:  # gravity without a body to orient in G
        g = torch.as_tensor(r[:, :, 1])
        out["cam_rotation"] = camera_rotation_from_gravity(g).numpy()
        out["gravity_cam"] = r[:, :, 1]
    return out, "spin24"


FORMAT = NpzFormat(
    "spec",
    "SPEC-SYN / SPEC-MTP npz",
    KEYS,
    lambda keys: "cam_pitch" in keys or "cam_rotmat" in keys,
    convert,
)

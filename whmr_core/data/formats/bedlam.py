"""BEDLAM's training labels (SMPL version: ``bedlam_train.npz``, ``agora_train.npz`` of the BEDLAM/CameraHMR
training data), with the camera's intrinsics and extrinsics, so gravity and world orientation labels too.

| key | shape | whmr |
|---|---|---|
| imgname, center, scale | (N,), (N,2), (N,) | the same |
| pose_cam | (N,72) SMPL or (N,>=66) SMPL-X | ``pose`` (camera-frame root); SMPL-X: its 22 body joints |
| pose_world | (N,...) | ignored: the world root comes from ``pose_cam`` and the camera's gravity |
| shape | (N,11) or (N,10) | ``shape``: the first 10 betas (whmr's body has 10) |
| trans_cam | (N,3) | with ``cam_ext``'s translation, ``transl_cam`` |
| trans_world | (N,3) | ignored |
| cam_int | (N,3,3) | ``cam_int`` (K in pixels) |
| cam_ext | (N,4,4) | world -> camera: gravity (the world's +y), so R_c and the world root |
| gtkps | (N,J,2 or 3) | ``part``: the first 24 are SMPL-24 joints (confidence 1 when absent) |
| gender, proj_verts, sub, valid_mask | | ignored |
"""

from __future__ import annotations

import numpy as np

from whmr_core.data.formats.base import NpzFormat, gravity_labels, smpl72

# BEDLAM's world frame is Unreal's turned into OpenCV axes (its ``unreal2cv2``: x right, y down, z forward),
# so gravity points along +y; ``cam_ext`` rotates it into the camera (yaw about y, then pitch, then roll).
WORLD_DOWN = np.array([0.0, 1.0, 0.0])

KEYS = {
    "imgname": "imgname",
    "center": "center",
    "scale": "scale",
    "pose_cam": "pose (SMPL; SMPL-X cut to its 22 body joints)",
    "pose_world": "ignored: world root from pose_cam and gravity",
    "shape": "shape (first 10 betas)",
    "trans_cam": "transl_cam (+ cam_ext translation)",
    "trans_world": "ignored",
    "cam_int": "cam_int (K)",
    "cam_ext": "gravity -> cam_rotation, global_orient_world",
    "gtkps": "part (first 24: SMPL-24)",
    "gender": "ignored (one neutral body)",
    "proj_verts": "ignored",
    "sub": "ignored",
    "valid_mask": "ignored",
}


def convert(cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    n = len(cols["imgname"])
    out = {k: cols[k] for k in ("imgname", "center", "scale") if k in cols}
    pose = smpl72(cols["pose_cam"])
    out["pose"] = pose
    out["shape"] = np.asarray(cols["shape"], dtype=np.float64)[:, :10]
    out["has_smpl"] = np.ones(n)
    if "cam_int" in cols:
        out["cam_int"] = cols["cam_int"]
    if "gtkps" in cols:
        kp = np.asarray(cols["gtkps"], dtype=np.float64)[:, :24]
        if kp.shape[-1] == 2:
            kp = np.concatenate([kp, np.ones((*kp.shape[:2], 1))], axis=-1)
        out["part"] = kp
    if "cam_ext" in cols:
        ext = np.asarray(cols["cam_ext"], dtype=np.float64)
        out.update(gravity_labels(ext[:, :3, :3] @ WORLD_DOWN, pose))
        if "trans_cam" in cols:
            out["transl_cam"] = np.asarray(cols["trans_cam"], dtype=np.float64) + ext[:, :3, 3]
    elif "trans_cam" in cols:
        out["transl_cam"] = cols["trans_cam"]
    return out, "smpl24"


FORMAT = NpzFormat(
    "bedlam",
    "BEDLAM training labels npz (SMPL version)",
    KEYS,
    lambda keys: "pose_cam" in keys,
    convert,
)

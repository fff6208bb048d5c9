"""HuMMan's reconstruction subset: one folder per sequence (``p000455_a000986/``) with ``cameras.json``,
``smpl_params/<frame>.npz`` and the colour images (``kinect_color/kinect_00N/<frame>.png``,
``iphone_color/iphone/<frame>.png``). Pass a sequence folder or a folder of them.

- ``smpl_params/*.npz``: ``global_orient`` (3,), ``body_pose`` (69,), ``betas`` (10,), ``transl`` (3,): the
  body in HuMMan's world frame, posed with the run's body model.
- ``cameras.json``: ``{camera: {"K", "D", "R", "T"}}`` (``kinect_color_00N``, ``iphone``): ``cam_int`` = K;
  X_cam = R X_world + T gives ``pose`` (camera-frame root), ``transl_cam`` and ``S``; ``part`` is the SMPL-24
  joints projected with K, ``center``/``scale`` their box (1.2x); ``D`` is ignored (images as they are).

HuMMan's world frame is its calibration frame, not gravity-aligned: no gravity or world labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from whmr_core.data.annotations import AnnotationError, Annotations, annotations_from_columns
from whmr_core.data.formats.base import BOX_MARGIN
from whmr_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["FILES", "KEYS", "is_humman", "read"]

FILES = "HuMMan sequences (cameras.json + smpl_params/*.npz + kinect_color/, iphone_color/)"
KEYS = {
    "cameras.json: K": "cam_int",
    "cameras.json: R, T": "world -> camera: pose, transl_cam, S, part",
    "cameras.json: D": "ignored (images used as they are)",
    "smpl_params/*.npz: global_orient, body_pose, betas, transl": "pose, shape (through the body: S, part)",
}


def _sequences(path: Path) -> list[Path]:
    if (path / "cameras.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/cameras.json"))


def is_humman(path: Path) -> bool:
    return path.is_dir() and bool(_sequences(path))


def _image_dir(seq: Path, camera: str) -> Path | None:
    if camera.startswith("kinect_color_"):
        d = seq / "kinect_color" / f"kinect_{camera.rsplit('_', 1)[1]}"
    elif camera == "iphone":
        d = seq / "iphone_color" / "iphone"
    else:
        return None
    return d if d.is_dir() else None


def read(path: str | Path, body: str = "full") -> Annotations:
    """Every camera's view of every frame of the sequences under ``path``; ``body`` is the body model the
    SMPL parameters are posed with (the run's)."""
    from whmr_core.body import resolve

    path = Path(path)
    seqs = _sequences(path)
    if not seqs:
        raise AnnotationError(path, None, "cameras.json", "no HuMMan sequence (cameras.json) found")
    model = resolve(body).load()
    rows: dict[str, list] = {
        k: [] for k in ("imgname", "center", "scale", "part", "S", "pose", "shape", "cam_int", "transl_cam")
    }
    for seq in seqs:
        try:
            cameras = json.loads((seq / "cameras.json").read_text())
        except (OSError, ValueError) as e:
            raise AnnotationError(seq / "cameras.json", None, None, f"unreadable ({e})") from e
        frames = sorted((seq / "smpl_params").glob("*.npz"))
        if not frames:
            raise AnnotationError(seq / "smpl_params", None, None, "no SMPL parameter files")
        params = {k: [] for k in ("global_orient", "body_pose", "betas", "transl")}
        for f in frames:
            with np.load(f, allow_pickle=False) as z:
                for k in params:
                    if k not in z.files:
                        raise AnnotationError(f, None, k, "missing")
                    params[k].append(np.asarray(z[k], dtype=np.float64).reshape(-1))
        p = {k: torch.as_tensor(np.stack(v), dtype=torch.float32) for k, v in params.items()}
        with torch.no_grad():
            joints_w = model(**p).joints[:, :24].double()  # (F,24,3) world frame
        t = p["transl"].double()
        rest_root = joints_w[:, 0] - t  # the root pivot: smplx turns the body about it
        rot_w = axis_angle_to_matrix(p["global_orient"].double())
        for name, cam in sorted(cameras.items()):
            img_dir = _image_dir(seq, name)
            if img_dir is None:
                continue
            try:
                k = torch.as_tensor(np.asarray(cam["K"], dtype=np.float64).reshape(3, 3))
                r = torch.as_tensor(np.asarray(cam["R"], dtype=np.float64).reshape(3, 3))
                tt = torch.as_tensor(np.asarray(cam["T"], dtype=np.float64).reshape(3))
            except (KeyError, ValueError) as e:
                raise AnnotationError(seq / "cameras.json", None, name, f"K, R and T needed ({e})") from e
            joints_c = joints_w @ r.T + tt
            uvw = joints_c @ k.T
            uv = uvw[..., :2] / uvw[..., 2:].clamp_min(1e-6)
            vis = (joints_c[..., 2] > 0).double()[..., None]
            lo, hi = uv.min(dim=1).values, uv.max(dim=1).values
            root_c = (rest_root + t) @ r.T + tt
            for i, f in enumerate(frames):
                image = img_dir / f"{f.stem}.png"
                if not image.is_file():
                    image = image.with_suffix(".jpg")
                rows["imgname"].append(str(image.relative_to(path)))
                rows["center"].append(((lo[i] + hi[i]) / 2).numpy())
                rows["scale"].append(float((hi[i] - lo[i]).max()) * BOX_MARGIN / 200.0)
                rows["part"].append(torch.cat([uv[i], vis[i]], -1).numpy())
                rows["S"].append(torch.cat([joints_c[i], torch.ones(24, 1, dtype=torch.float64)], -1).numpy())
                root = matrix_to_axis_angle(r @ rot_w[i])
                rows["pose"].append(np.concatenate([root.numpy(), params["body_pose"][i]]))
                rows["shape"].append(params["betas"][i][:10])
                rows["cam_int"].append(k.numpy())
                rows["transl_cam"].append((root_c[i] - rest_root[i]).numpy())
    if not rows["imgname"]:
        raise AnnotationError(
            path, None, None, "no camera with an image folder (kinect_color/, iphone_color/)"
        )
    columns = {k: np.asarray(v) for k, v in rows.items()}
    return annotations_from_columns(columns, path=path, joints_layout="smpl24", format="humman")

"""Synthetic stand-ins of the paper's data sets: whmr's labelled synthetic people written in each format's
real on-disk keys (the readers' tables), so a mixed config, the readers and the trainer can be run end to end
without the licensed data. ``python scripts/make_standins.py --data data/synth1 --out data/standins``.

The labels are exact (they come from whmr synth); only the file layouts are the real ones. Every file names
its images relative to the stand-in folder, which links to the synthetic images.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import cv2
import numpy as np
import torch

from whmr_core.body.joint_layouts import get_layout
from whmr_core.data.annotations import Annotations, read_annotations
from whmr_core.data.formats.spec import pitch_roll_from_gravity, spec_rotation
from whmr_core.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["STANDINS", "relayout", "write_standins"]

# stand-in name -> (format, file name under the output folder)
STANDINS: dict[str, tuple[str, str]] = {
    "h36m": ("spin", "h36m_train.npz"),
    "coco-eft": ("spin", "coco_2014_train_eft.npz"),
    "mpii-cliff": ("cliff", "mpii_cliffGT.npz"),
    "coco-release": ("whmr-release", "coco_2014_train.npz"),
    "bedlam": ("bedlam", "bedlam_train.npz"),
    "spec-syn": ("spec", "spec-syn_train.npz"),
    "aic-tars": ("hmr2-tars", "aic-train"),
}


def relayout(smpl24: np.ndarray, layout: str) -> np.ndarray:
    """(N,24,C) SMPL-24 labels in ``layout``'s order; joints that are not SMPL joints get confidence 0."""
    lay = get_layout(layout)
    out = np.zeros((len(smpl24), len(lay), smpl24.shape[-1]))
    for k, t in enumerate(lay.to):
        if t is not None and t < 24:
            out[:, k] = smpl24[:, t]
    return out


def _spin(a: Annotations) -> dict[str, np.ndarray]:
    s = np.concatenate([a["joints3d_cam"], np.ones((len(a), 24, 1))], axis=2)
    return {
        "imgname": a["imgname"], "center": a["center"], "scale": a["scale"],
        "part": relayout(a["part"], "spin24"), "S": relayout(s, "spin24"), "pose": a["pose"],
        "shape": a["shape"], "has_smpl": np.ones(len(a)), "openpose": np.zeros((len(a), 25, 3)),
    }  # fmt: skip


def _bedlam(a: Annotations) -> dict[str, np.ndarray]:
    n = len(a)
    ext = np.tile(np.eye(4), (n, 1, 1))
    ext[:, :3, :3] = a["cam_rotation"]  # BEDLAM's world has OpenCV axes (y down), like frame G
    k = np.tile(np.eye(3), (n, 1, 1))
    k[:, [0, 1], [0, 1]] = a["focal"]
    k[:, :2, 2] = a["principal_point"]
    return {
        "imgname": a["imgname"], "center": a["center"], "scale": a["scale"], "pose_cam": a["pose"],
        "pose_world": np.zeros((n, 72)), "shape": np.concatenate([a["shape"], np.zeros((n, 1))], axis=1),
        "trans_cam": a["transl_cam"], "trans_world": np.zeros((n, 3)), "cam_int": k, "cam_ext": ext,
        "gtkps": a["part"], "gender": np.array(["neutral"] * n),
    }  # fmt: skip


def _spec(a: Annotations) -> dict[str, np.ndarray]:
    """SPEC's layout: body labels in its gravity frame W, X_C = cam_rotmat X_W (formats.spec)."""
    pr = np.array([pitch_roll_from_gravity(g) for g in a["gravity_cam"]])
    r = spec_rotation(pr[:, 0], pr[:, 1])
    cols = {k: v for k, v in _spin(a).items() if k != "openpose"}
    cols["S"] = cols["S"].copy()
    cols["S"][..., :3] = cols["S"][..., :3] @ r  # rows: r^T X_C
    root_w = np.swapaxes(r, 1, 2) @ axis_angle_to_matrix(torch.as_tensor(a["pose"][:, :3])).numpy()
    cols["pose"] = np.concatenate(
        [matrix_to_axis_angle(torch.as_tensor(root_w)).numpy(), a["pose"][:, 3:]], 1
    )
    return {
        **cols, "focal_length": a["focal"][:, 0], "cam_int": np.zeros((len(a), 3, 3)) + np.eye(3),
        "cam_pitch": pr[:, 0], "cam_roll": pr[:, 1], "cam_rotmat": r,
    }  # fmt: skip


def _spec_fix_k(a: Annotations, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    cols["cam_int"][:, [0, 1], [0, 1]] = a["focal"]
    cols["cam_int"][:, :2, 2] = a["principal_point"]
    return cols


def _write_tars(a: Annotations, images: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    s = np.concatenate([a["joints3d_cam"], np.ones((len(a), 24, 1))], axis=2)
    part, s3d = relayout(a["part"], "hmr2_44"), relayout(s, "hmr2_44")
    names = sorted(set(a["imgname"].tolist()))
    half = max(1, len(names) // 2)
    for t, chunk in enumerate((names[:half], names[half:])):
        if not chunk:
            continue
        with tarfile.open(out / f"{t:06d}.tar", "w") as tar:
            for name in chunk:
                key = Path(name).with_suffix("").as_posix().replace("/", "_").replace(".", "_")
                ok, jpg = cv2.imencode(".jpg", cv2.imread(str(images / name)), [cv2.IMWRITE_JPEG_QUALITY, 95])
                if not ok:
                    raise OSError(f"{images / name}: cannot be encoded")
                people = [
                    {
                        "center": a["center"][i],
                        "scale": np.array([a["scale"][i], a["scale"][i]]),
                        "keypoints_2d": part[i],
                        "keypoints_3d": s3d[i],
                        "body_pose": a["pose"][i],
                        "betas": a["shape"][i],
                        "has_body_pose": np.array(1.0),
                        "has_betas": np.array(1.0),
                        "extra_info": {"source": "whmr synth"},
                    }
                    for i in np.flatnonzero(a["imgname"] == name)
                ]
                for member, data in (
                    (f"{key}.jpg", jpg.tobytes()),
                    (f"{key}.data.pyd", pickle.dumps(people)),
                ):
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def write_standins(
    source: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike
) -> dict[str, Path]:
    """Write every stand-in of ``STANDINS`` from whmr annotations ``source`` (images in ``images``) into
    ``out``; returns name -> path. ``out/images`` links to ``images``."""
    a = read_annotations(source)
    out, images = Path(out), Path(images).resolve()
    out.mkdir(parents=True, exist_ok=True)
    link = out / "images"
    if not link.exists():
        link.symlink_to(images, target_is_directory=True)
    half = len(a) // 2
    writers = {
        "h36m": lambda: _spin(a),
        "coco-eft": lambda: {**_spin(a), "part": relayout(a["part"], "spin24")},
        "mpii-cliff": lambda: {
            **{k: v for k, v in _spin(a).items() if k not in ("S", "openpose")},
            "imgname": a["imgname"].astype(object),
            "focal_l": a["focal"][:, 0],
            "global_t": a["transl_cam"],
            "annot_id": np.arange(len(a)),
        },
        "coco-release": lambda: {
            **{k: v for k, v in _spin(a).items() if k != "S"},
            "smpl_2dkps": a["part"],
            "focal_l": a["focal"][:, 0],
        },
        "bedlam": lambda: _bedlam(a),
        "spec-syn": lambda: _spec_fix_k(a, _spec(a)),
    }
    paths: dict[str, Path] = {}
    for name, (_, file) in STANDINS.items():
        path = out / file
        if name == "aic-tars":
            _write_tars(a, images, path)
        else:
            cols = writers[name]()
            if name == "coco-eft":  # 2D only, half the people: an in-the-wild set without 3D labels
                cols = {k: v[:half] for k, v in cols.items() if k in ("imgname", "center", "scale", "part")}
            np.savez(path, **cols)
        paths[name] = path
    return paths

"""Annotation files: one ``.npz`` per split in the SPIN/PyMAF layout, extended for W-HMR (docs/data.md).

Rows are people (an image with several people has several rows with the same ``imgname``). Our files carry a
``format`` tag and every field of ``WHMR_FIELDS``; standard SPIN/PyMAF files (and CLIFF/BEDLAM-style extras
such as ``focal_length`` or ``cam_int``) are read as they are. Anything wrong -- a missing or truncated file,
a field of the wrong shape or length, a non-finite value, an unknown or missing field -- raises
``AnnotationError`` (a ValueError) naming the file, the sample index and the field. No sample is ever
dropped silently.

Joint layouts: our ``part``/``S`` are SMPL-24 (``joints_layout`` = "smpl24"); standard SPIN files use SPIN's
24 joints ("spin24", LSP 14 + MPII/H36M/face points), which is what a file without ``joints_layout`` gets.
Any layout of ``whmr_core.body.joint_layouts`` may be named (coco17, openpose25, h36m17, ...).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whmr_core.body.joint_layouts import LAYOUTS

__all__ = [
    "FORMAT_TAG",
    "KNOWN_FIELDS",
    "SPIN24_FLIP_PERM",
    "WHMR_FIELDS",
    "AnnotationError",
    "Annotations",
    "annotations_from_columns",
    "annotations_from_scenes",
    "load_npz",
    "read_annotations",
    "write_annotations",
]

FORMAT_TAG = "whmr-annotations-1"
# SPIN's 24-joint order mirrored (constants.J24_FLIP_PERM in SPIN); the layouts live in joint_layouts.
SPIN24_FLIP_PERM: tuple[int, ...] = LAYOUTS["spin24"].flip_perm


@dataclass(frozen=True)
class _Spec:
    tail: tuple[int | None, ...]  # per-row shape; None = any size
    kind: str  # "f" float, "i" integer, "b" bool-or-number, "U" string


# Per-row fields. "b" accepts bool or numbers (SPIN stores has_smpl as float or int).
_SPIN = {
    "imgname": _Spec((), "U"),
    "center": _Spec((2,), "f"),
    "scale": _Spec((), "f"),
    "part": _Spec((None, 3), "f"),  # (J, 3): J joints of the file's joints_layout
    "S": _Spec((None, 4), "f"),
    "pose": _Spec((72,), "f"),
    "shape": _Spec((10,), "f"),
    "has_smpl": _Spec((), "b"),
}
# Known in standard SPIN/PyMAF/CLIFF/BEDLAM files; read and validated, used where meaningful.
_OTHER = {
    "openpose": _Spec((25, 3), "f"),
    "gender": _Spec((), "U"),
    "maskname": _Spec((), "U"),
    "partname": _Spec((), "U"),
    "focal_length": _Spec((None,), "f"),  # CLIFF: (N,) or (N,2); reshaped on read
    "cam_int": _Spec((3, 3), "f"),  # BEDLAM/CLIFF style full K
    "smpl_2dkps": _Spec((24, 3), "f"),  # PyMAF / W-HMR release: 2D SMPL-24 joints (DensePose fits)
}
_WHMR = {
    "focal": _Spec((2,), "f"),
    "principal_point": _Spec((2,), "f"),
    "image_wh": _Spec((2,), "i"),
    "cam_rotation": _Spec((3, 3), "f"),
    "gravity_cam": _Spec((3,), "f"),
    "global_orient_world": _Spec((3,), "f"),
    "global_orient_cam": _Spec((3,), "f"),
    "transl_cam": _Spec((3,), "f"),
    "transl_world": _Spec((3,), "f"),
    "root_cam": _Spec((3,), "f"),
    "joints3d_cam": _Spec((24, 3), "f"),
    "joints3d_world": _Spec((24, 3), "f"),
    "coco2d": _Spec((17, 3), "f"),
    "coco3d": _Spec((17, 4), "f"),
    "has_world": _Spec((), "b"),
    "scene_index": _Spec((), "i"),
}
_OPTIONAL_WHMR = {"depthname": _Spec((), "U"), "iuvname": _Spec((), "U"), "family": _Spec((), "U")}
_FILE_LEVEL = {"format", "joints_layout"}  # 0-d string arrays

WHMR_FIELDS: tuple[str, ...] = (*_SPIN, *_WHMR)
_ROW_SPECS: dict[str, _Spec] = {**_SPIN, **_OTHER, **_WHMR, **_OPTIONAL_WHMR}
KNOWN_FIELDS: frozenset[str] = frozenset(_ROW_SPECS) | _FILE_LEVEL
_SPIN_REQUIRED = ("imgname", "center", "scale")


class AnnotationError(ValueError):
    """Bad annotation input. ``path``, ``index`` (sample, or None for the whole file) and ``field``."""

    def __init__(self, path: str | os.PathLike | None, index: int | None, field: str | None, message: str):
        self.path = None if path is None else str(path)
        self.index = index
        self.field = field
        where = "all samples" if index is None else f"sample {index}"
        super().__init__(f"{self.path or '<in memory>'}: {where}: field {field or '-'}: {message}")


@dataclass(frozen=True)
class Annotations:
    """Validated columns of one annotation file; ``layout`` is "whmr" (ours) or "spin" (standard)."""

    fields: Mapping[str, np.ndarray]
    layout: str
    joints_layout: str  # a layout of whmr_core.body.joint_layouts ("smpl24", "spin24", ...)
    path: str | None = None
    # Where the images are when not in an image folder (webdataset tars): ``read(index) -> bytes``.
    image_source: Any = None
    format: str = "whmr"  # the reader that made it (whmr_core.data.formats)

    def __len__(self) -> int:
        return len(self.fields["imgname"])

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fields[name]

    def get(self, name: str) -> np.ndarray | None:
        return self.fields.get(name)


def _kind_ok(arr: np.ndarray, kind: str) -> bool:
    k = arr.dtype.kind
    if kind == "U":
        return k in "US"
    if kind == "f":
        return k in "fiu"
    if kind == "i":
        return k in "iu" or (k == "f" and bool(np.all(np.isfinite(arr) & (arr == np.round(arr)))))
    return k in "biuf"


def _validate(fields: dict[str, np.ndarray], path: str | None, extra_ignored: Iterable[str]) -> str:
    """Check names, kinds, shapes, lengths and values in place; returns the layout."""
    ignored = set(extra_ignored)
    for name in fields:
        if name not in KNOWN_FIELDS and name not in ignored:
            raise AnnotationError(path, None, name, f"unknown field (known: {sorted(KNOWN_FIELDS)})")
    layout = "whmr" if "format" in fields else "spin"
    if layout == "whmr":
        tag = str(fields["format"])
        if tag != FORMAT_TAG:
            raise AnnotationError(
                path, None, "format", f"unsupported format {tag!r}, expected {FORMAT_TAG!r}"
            )
    required = WHMR_FIELDS if layout == "whmr" else _SPIN_REQUIRED
    for name in required:
        if name not in fields:
            raise AnnotationError(path, None, name, f"missing (required in a {layout} annotation file)")
    n = len(fields["imgname"]) if np.ndim(fields["imgname"]) == 1 else -1
    if n < 0:
        raise AnnotationError(
            path, None, "imgname", f"expected shape (N,), got {np.shape(fields['imgname'])}"
        )
    for name, arr in fields.items():
        if name in _FILE_LEVEL or name in ignored:
            continue
        spec = _ROW_SPECS[name]
        if arr.ndim == 0:
            raise AnnotationError(path, None, name, "expected one row per sample, got a scalar")
        if len(arr) != n:
            first = min(len(arr), n)
            raise AnnotationError(path, first, name, f"has {len(arr)} rows but imgname has {n}")
        if name == "focal_length" and arr.ndim == 1:
            arr = fields[name] = np.stack([arr, arr], axis=-1)  # CLIFF: one focal for both axes
        tail = arr.shape[1:]
        if len(tail) != len(spec.tail) or any(t is not None and s != t for s, t in zip(tail, spec.tail)):  # noqa: B905
            want = ", ".join("*" if t is None else str(t) for t in spec.tail)
            raise AnnotationError(path, None, name, f"expected shape (N, {want}), got {arr.shape}")
        if not _kind_ok(arr, spec.kind):
            raise AnnotationError(path, None, name, f"expected kind {spec.kind!r}, got dtype {arr.dtype}")
        if arr.dtype.kind in "fc":
            bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
            if bad.any():
                raise AnnotationError(path, int(np.argmax(bad)), name, "non-finite value (NaN or inf)")
    for name in ("scale", "focal", "image_wh", "focal_length"):
        if name in fields:
            bad = ~(fields[name].reshape(n, -1) > 0).all(axis=1)
            if bad.any():
                raise AnnotationError(path, int(np.argmax(bad)), name, "must be > 0")
    if "cam_rotation" in fields:
        r = fields["cam_rotation"].astype(np.float64)
        err = np.abs(r @ np.swapaxes(r, 1, 2) - np.eye(3)).reshape(n, -1).max(axis=1)
        bad = (err > 1e-4) | (np.linalg.det(r) < 0) if n else np.zeros(0, bool)
        if bad.any():
            raise AnnotationError(path, int(np.argmax(bad)), "cam_rotation", "not a rotation matrix")
    return layout


def _check_joints(fields: Mapping[str, np.ndarray], joints_layout: str, path: str | None) -> None:
    """``part``/``S`` hold the joints of ``joints_layout`` (whmr_core.body.joint_layouts)."""
    if joints_layout not in LAYOUTS:
        raise AnnotationError(
            path, None, "joints_layout", f"unknown layout {joints_layout!r} (known: {', '.join(LAYOUTS)})"
        )
    n = len(LAYOUTS[joints_layout])
    for name in ("part", "S"):
        if name in fields and fields[name].shape[1] != n:
            raise AnnotationError(
                path, None, name, f"has {fields[name].shape[1]} joints, {joints_layout} has {n}"
            )


def _truncated_member(path: Path) -> str | None:
    """Name of the last member whose local header is present: the one a truncated npz ends in."""
    data = path.read_bytes()
    name = None
    for m in re.finditer(rb"PK\x03\x04", data):
        start = m.start()
        if start + 30 > len(data):
            break
        n_len = int.from_bytes(data[start + 26 : start + 28], "little")
        raw = data[start + 30 : start + 30 + n_len]
        if len(raw) == n_len:
            name = raw.decode("utf-8", "replace")
    return None if name is None else name.removesuffix(".npy")


def load_npz(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """Every array of an npz, checked readable. Object arrays (strings saved without a fixed width, as some
    releases' ``imgname``) are unpickled safely (``safe_pickle``: numpy and plain data only)."""
    from whmr_core.data.safe_pickle import UnsafePickleError, load_npz_member

    p = Path(path)
    if not p.is_file():
        raise AnnotationError(p, None, None, "file not found")
    try:
        npz = np.load(p, allow_pickle=allow_pickle)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        member = _truncated_member(p) if p.stat().st_size else None
        raise AnnotationError(p, None, member, f"truncated or not an npz archive ({e})") from e
    fields: dict[str, np.ndarray] = {}
    with npz:
        for name in npz.files:
            try:
                fields[name] = npz[name]
            except ValueError as e:
                if "allow_pickle" not in str(e):
                    raise AnnotationError(p, None, name, f"unreadable ({e})") from e
                try:
                    fields[name] = load_npz_member(str(p), name)
                except (UnsafePickleError, pickle.UnpicklingError, ValueError, EOFError) as err:
                    raise AnnotationError(
                        p, None, name, f"object array that is not plain data ({err})"
                    ) from err
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
                raise AnnotationError(p, None, name, f"truncated or corrupt ({e})") from e
    return fields


def annotations_from_columns(
    columns: Mapping[str, np.ndarray],
    *,
    path: str | os.PathLike | None,
    joints_layout: str,
    format: str,
    image_source: Any = None,
) -> Annotations:
    """Columns a format reader made (whmr field names), validated as a standard file into ``Annotations``."""
    fields = {k: np.asarray(v) for k, v in columns.items()}
    where = None if path is None else str(path)
    if "imgname" not in fields:
        raise AnnotationError(where, None, "imgname", "missing (required in every annotation file)")
    layout = _validate(fields, where, ())
    _check_joints(fields, joints_layout, where)
    return Annotations(fields, layout, joints_layout, where, image_source=image_source, format=format)


def read_annotations(
    path: str | os.PathLike, *, extra_ignored: Sequence[str] = (), allow_pickle: bool = False
) -> Annotations:
    """Read and validate an annotation ``.npz`` (ours, or a standard SPIN/PyMAF/CLIFF file).

    ``extra_ignored`` names further fields a user's file may carry (kept but not validated); any other
    unknown field is an error. ``allow_pickle`` only for trusted files whose strings are object arrays.
    """
    p = Path(path)
    fields = load_npz(p, allow_pickle=allow_pickle)
    if "imgname" not in fields:
        raise AnnotationError(p, None, "imgname", "missing (required in every annotation file)")
    layout = _validate(fields, str(p), extra_ignored)
    joints_layout = str(fields.pop("joints_layout", "spin24" if layout == "spin" else "smpl24"))
    _check_joints(fields, joints_layout, str(p))
    fields.pop("format", None)
    return Annotations(fields=fields, layout=layout, joints_layout=joints_layout, path=str(p))


def write_annotations(path: str | os.PathLike, fields: Mapping[str, np.ndarray]) -> Path:
    """Validate ``fields`` as a W-HMR file and write it atomically (temporary file, then rename)."""
    p = Path(path)
    out = {k: np.asarray(v) for k, v in fields.items()}
    out["format"] = np.array(FORMAT_TAG)
    out.setdefault("joints_layout", np.array("smpl24"))
    _validate(dict(out), str(p), ())
    _check_joints(out, str(out["joints_layout"]), str(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp.npz", dir=p.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **out)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def annotations_from_scenes(
    scenes: Sequence, imgnames: Sequence[str], *, depthnames: Sequence[str] | None = None,
    iuvnames: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Columns of a W-HMR annotation file from ``scene.Scene`` objects, one row per person.

    ``imgnames[i]`` (and the optional map names) belong to ``scenes[i]``. 2D confidences are the joints'
    in-image visibility (occlusion needs the renderer's depth); 3D confidences are 1.
    """
    if len(imgnames) != len(scenes):
        raise ValueError(f"imgnames: {len(imgnames)} names for {len(scenes)} scenes")
    rows: dict[str, list] = {k: [] for k in (*WHMR_FIELDS, "family")}
    maps = {"depthname": depthnames, "iuvname": iuvnames}
    for name, seq in maps.items():
        if seq is not None:
            if len(seq) != len(scenes):
                raise ValueError(f"{name}s: {len(seq)} names for {len(scenes)} scenes")
            rows[name] = []
    for i, scene in enumerate(scenes):
        cam = scene.camera
        for person in scene.people:
            rows["imgname"].append(imgnames[i])
            for name, seq in maps.items():
                if seq is not None:
                    rows[name].append(seq[i])
            rows["center"].append(person.bbox_center)
            rows["scale"].append(person.scale)
            rows["part"].append(np.concatenate([person.joints2d, person.joints_visible[:, None]], axis=1))
            rows["S"].append(np.concatenate([person.joints_cam, np.ones((24, 1))], axis=1))
            rows["pose"].append(person.pose)
            rows["shape"].append(person.betas[:10])
            rows["has_smpl"].append(1.0)
            rows["focal"].append(cam.focal)
            rows["principal_point"].append(cam.principal_point)
            rows["image_wh"].append(cam.image_wh)
            rows["cam_rotation"].append(cam.R_c)
            rows["gravity_cam"].append(cam.gravity_cam)
            rows["global_orient_world"].append(person.global_orient_world)
            rows["global_orient_cam"].append(person.global_orient_cam)
            rows["transl_cam"].append(person.transl_cam)
            rows["transl_world"].append(person.transl_world)
            rows["root_cam"].append(person.root_cam)
            rows["joints3d_cam"].append(person.joints_cam)
            rows["joints3d_world"].append(person.joints_world)
            rows["coco2d"].append(np.concatenate([person.coco2d, person.coco_visible[:, None]], axis=1))
            rows["coco3d"].append(np.concatenate([person.coco_cam, np.ones((17, 1))], axis=1))
            rows["has_world"].append(1.0)
            rows["scene_index"].append(scene.index if scene.index is not None else i)
            rows["family"].append(person.family)
    out = {k: np.asarray(v) for k, v in rows.items()}
    # float64 throughout: re-projection tests are sub-pixel and files of a CPU-sized set stay small.
    out["image_wh"] = out["image_wh"].astype(np.int32)
    out["scene_index"] = out["scene_index"].astype(np.int64)
    return out

"""Readers for the annotation files of the data sets W-HMR trains on, one module per format.

Each npz format names the keys its files hold and what whmr makes of each (a whmr field, or ignored and
why); ``read_dataset`` picks the format from a file's keys (or its kind: webdataset tars), converts it into
``Annotations`` with whmr's field names and validates it like any annotation file. A key no format knows is
an error unless the data config's ``ignore_fields`` names it. ``describe`` is ``whmr data check``.

| format | files users have | module |
|---|---|---|
| whmr | ``whmr synth`` output (train.npz, val.npz) | ``annotations`` |
| spin | SPIN/PyMAF/EFT npz (h36m_train.npz, coco_2014_train_eft.npz, ...) | ``spin`` |
| cliff | CLIFF pseudo-GT (coco2014part_cliffGT.npz, mpii_cliffGT.npz) | ``cliff`` |
| whmr-release | the W-HMR release's npz (PyMAF's with ``smpl_2dkps``, ``focal_l``) | ``whmr_release`` |
| bedlam | BEDLAM training labels (``bedlam_train.npz`` etc., SMPL version) | ``bedlam`` |
| spec | SPEC-SYN / SPEC-MTP npz (``spec-syn_train.npz``, ``mtp_train.npz``) | ``spec`` |
| hmr2-tars | 4D-Humans webdataset shards (``*.tar`` of ``.jpg`` + ``.data.pyd``) | ``hmr2_tars`` |
| humman | HuMMan sequences (``cameras.json``, ``smpl_params/*.npz``, colour images) | ``humman`` |
| agora | AGORA's Camera DataFrames with joints (``Cam/*_withjv.pkl``, pickled pandas) | ``agora`` |
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from whmr_core.data.annotations import (
    KNOWN_FIELDS,
    AnnotationError,
    Annotations,
    annotations_from_columns,
    load_npz,
    read_annotations,
)
from whmr_core.data.formats import agora, bedlam, cliff, humman, spec, spin, whmr_release
from whmr_core.data.formats.base import NpzFormat

__all__ = ["NPZ_FORMATS", "NpzFormat", "check_main", "describe", "detect_npz_format", "read_dataset"]


def _formats() -> tuple[NpzFormat, ...]:
    # Most specific first: the SPIN family is the fallback.
    return (spin.WHMR, bedlam.FORMAT, spec.FORMAT, cliff.FORMAT, whmr_release.FORMAT, spin.FORMAT)


NPZ_FORMATS: tuple[NpzFormat, ...] = _formats()


def detect_npz_format(keys: set[str]) -> NpzFormat:
    return next(f for f in NPZ_FORMATS if f.detect(keys))


def _is_tar_source(p: Path) -> bool:
    return p.suffix == ".tar" or (p.is_dir() and any(p.glob("*.tar")))


def read_dataset(
    path: str | os.PathLike,
    *,
    ignore: Sequence[str] = (),
    body: str = "full",
    images: str | os.PathLike | None = None,
) -> Annotations:
    """The annotations of ``path`` in whichever format it is (module docstring); ``ignore`` names keys of
    the file to leave out (the data config's ``ignore_fields``); ``body`` poses formats that give only SMPL
    parameters (HuMMan); ``images`` is the image folder (AGORA: which of its two image sizes it holds)."""
    p = Path(path)
    if humman.is_humman(p):
        return humman.read(p, body=body)
    if agora.is_agora(p):
        return agora.read(p, images=images)
    if _is_tar_source(p):
        from whmr_core.data.formats import hmr2_tars

        return hmr2_tars.read(p)
    cols = load_npz(p)
    fmt = detect_npz_format(set(cols))
    if fmt.name in ("whmr", "spin"):
        return replace(read_annotations(p, extra_ignored=ignore), format=fmt.name)
    cols = {k: v for k, v in cols.items() if k not in set(ignore)}
    unknown = sorted(set(cols) - set(fmt.keys))
    if unknown:
        raise AnnotationError(
            p, None, unknown[0],
            f"unknown to the {fmt.name} format (keys {unknown}); ignore_fields can leave them out",
        )  # fmt: skip
    columns, layout = fmt.convert(cols)
    return annotations_from_columns(columns, path=p, joints_layout=layout, format=fmt.name)


def describe(path: str | os.PathLike, *, ignore: Sequence[str] = (), body: str = "full") -> str:
    """What a file holds, what whmr uses of it and what it ignores (``whmr data check``)."""
    p = Path(path)
    lines = [f"{p}"]
    if agora.is_agora(p):
        lines.append(f"  format: agora ({agora.FILES})")
        lines.extend(f"  {key}: {what}" for key, what in agora.KEYS.items())
        ann, left = agora.read_counted(p)
        lines.append(
            f"  people: {len(ann)}, joints layout: {ann.joints_layout}; left out: {left.not_valid} not "
            f"valid, {left.few_joints_in_image} with < {agora.MIN_JOINTS_IN_IMAGE} joints in the image"
        )
        lines.append(f"  labels: {_label_summary(ann)}")
        return "\n".join(lines)
    if humman.is_humman(p) or _is_tar_source(p):
        from whmr_core.data.formats import hmr2_tars

        name, module = ("humman", humman) if humman.is_humman(p) else ("hmr2-tars", hmr2_tars)
        lines.append(f"  format: {name} ({module.FILES})")
        for key, what in module.KEYS.items():
            lines.append(f"  {key}: {what}")
    else:
        cols = load_npz(p)
        fmt = detect_npz_format(set(cols))
        lines.append(f"  format: {fmt.name} ({fmt.files})")
        keys = KNOWN_FIELDS if fmt.name in ("whmr", "spin") else set(fmt.keys)
        for key in sorted(cols):
            arr = cols[key]
            if key in set(ignore):
                what = "ignored (ignore_fields)"
            elif key in keys:
                what = fmt.keys.get(key, "used")
            else:
                what = "UNKNOWN: an error unless ignore_fields names it"
            lines.append(f"  {key} {tuple(arr.shape)} {arr.dtype}: {what}")
    ann = read_dataset(p, ignore=ignore, body=body)
    lines.append(f"  people: {len(ann)}, joints layout: {ann.joints_layout}")
    lines.append(f"  labels: {_label_summary(ann)}")
    return "\n".join(lines)


def _label_summary(ann: Annotations) -> str:
    def count(name: str) -> int:
        a = ann.get(name)
        if a is None:
            return 0
        return int((a[..., -1] > 0).any(axis=1).sum()) if a.ndim == 3 else len(a)

    has = {
        "2D joints": count("part"),
        "3D joints": count("S"),
        "SMPL": count("pose"),
        "focal length": max(count("focal"), count("focal_length"), count("cam_int")),
        "gravity": count("cam_rotation"),
        "world orientation": count("global_orient_world"),
    }
    return ", ".join(f"{k} {v}" for k, v in has.items())


def check_main(args: object) -> int:
    """``whmr data check FILE [--ignore KEY ...]``."""
    print(describe(args.file, ignore=args.ignore))  # type: ignore[attr-defined]
    return 0

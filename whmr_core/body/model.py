"""``load_body_model``: the shipped free body model, or a user's SMPL file, as an ``smplx.SMPL`` module."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Literal

import numpy as np
import smplx
import smplx.utils

from whmr_core.body.io import read_model_file
from whmr_core.body.landmarks import smplx_vertex_ids

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "body"
VARIANTS = ("full", "lowres")


def shipped_model_path(variant: str = "full") -> Path:
    """Path of the shipped free model file for ``variant`` ("full" or "lowres")."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return ASSET_DIR / f"whmr_anny_{variant}.npz"


def load_body_model(
    path: str | Path | None = None, variant: Literal["full", "lowres"] = "full", **smplx_kwargs: Any
) -> smplx.SMPL:
    """An ``smplx.SMPL`` module for the shipped free model (``path=None``) or a SMPL ``.pkl``/``.npz`` file.

    ``variant`` picks the shipped resolution and is ignored when ``path`` is given. Extra keyword arguments go
    to ``smplx.SMPL`` (e.g. ``batch_size``, ``num_betas``); ``vertex_ids`` defaults to landmarks found on this
    mesh, never smplx's SMPL-H indices. Raises FileNotFoundError / ValueError naming the file and the fault.
    """
    file = shipped_model_path(variant) if path is None else Path(path)
    arrays = read_model_file(file)
    if "vertex_ids" not in smplx_kwargs:
        # Extra joints (nose, eyes, ears, toes, heels, fingertips) from this mesh's own geometry.
        smplx_kwargs["vertex_ids"] = smplx_vertex_ids(
            arrays["v_template"], arrays["weights"], arrays["J_regressor"]
        )
    num_betas = min(int(smplx_kwargs.pop("num_betas", 10)), arrays["shapedirs"].shape[-1])
    struct = smplx.utils.Struct(
        **{k: arrays[k] for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f")},
        kintree_table=arrays["kintree_table"],
    )
    with contextlib.redirect_stdout(io.StringIO()):
        # smplx prints a warning for fewer than 300 shape components: normal for SMPL files.
        model = smplx.SMPL(model_path="", data_struct=struct, num_betas=num_betas, **smplx_kwargs)
    model.source_path = str(file)  # for error messages and asset caching
    return model


def model_metadata(path: str | Path | None = None, variant: str = "full") -> dict[str, Any]:
    """Build metadata stored in a shipped model file (empty for files without it)."""
    import json

    file = shipped_model_path(variant) if path is None else Path(path)
    with np.load(file, allow_pickle=False) as data:
        return json.loads(str(data["metadata"])) if "metadata" in data.files else {}

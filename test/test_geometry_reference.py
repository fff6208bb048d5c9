"""whmr_core.geometry against the shared reference cases (eq. 2, 3, 4, 5, 7, 8, gravity -> R_c).

The cases are copied from ../shared/reference/geometry_cases.json into test/data/ so the suite runs
without ../shared. Every case must match to 1e-9 relative error in float64.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from whmr_core import geometry as G

CASE_FILES = [Path(__file__).parent / "data" / "geometry_cases.json"]
# A second case file generated the same way can be checked too: WHMR_EXTRA_GEOMETRY_CASES=path.json
if os.environ.get("WHMR_EXTRA_GEOMETRY_CASES"):
    CASE_FILES.append(Path(os.environ["WHMR_EXTRA_GEOMETRY_CASES"]))


def _load() -> dict[str, torch.Tensor]:
    cases = [c for f in CASE_FILES for c in json.loads(f.read_text())["cases"]]
    return {k: torch.tensor([c[k] for c in cases], dtype=torch.float64) for k in cases[0]}


CASES = _load()


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == torch.float64
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-9, atol=1e-12)


def test_reference_has_cases():
    assert CASES["points"].shape[0] >= 40


def test_focal_from_depth_eq3():
    c = CASES
    close(G.focal_from_depth(c["cam_crop"][:, 0], c["bbox_size"], c["tz"]), c["focal"])


def test_depth_from_focal_inverts_eq3():
    c = CASES
    close(G.depth_from_focal(c["cam_crop"][:, 0], c["bbox_size"], c["focal"]), c["tz"])


def test_full_image_translation_eq4():
    c = CASES
    t = G.full_image_translation(c["cam_crop"], c["bbox_center"], c["bbox_size"], c["image_wh"], c["tz"])
    close(t, c["translation"])


def test_perspective_project_eq2():
    c = CASES
    p = G.perspective_project(c["points"], c["translation"], c["focal"], G.image_centre(c["image_wh"]))
    close(p, c["projected"])


def test_normalise_full_image_eq5():
    c = CASES
    close(G.normalise_full_image(c["projected"], c["image_wh"]), c["projected_normalised"])


def test_full2d_weights_eq5():
    c = CASES
    close(G.full2d_weights(c["bbox_size"], c["image_wh"]), c["full2d_weight"])


def test_weak_perspective_project():
    c = CASES
    close(G.weak_perspective_project(c["points"], c["cam_crop"]), c["crop_projected"])


def test_glob_info_eq7():
    c = CASES
    close(G.glob_info(c["bbox_center"], c["bbox_size"], c["image_wh"]), c["glob_info"])


def test_pseudo_focal_eq8():
    close(G.pseudo_focal(CASES["image_wh"]), CASES["pseudo_focal"])


def test_camera_rotation_from_gravity():
    close(G.camera_rotation_from_gravity(CASES["gravity_cam"]), CASES["camera_rotation"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_matches_to_single_precision(dtype):
    c = {k: v.to(dtype) for k, v in CASES.items()}
    t = G.full_image_translation(c["cam_crop"], c["bbox_center"], c["bbox_size"], c["image_wh"], c["tz"])
    assert t.dtype == dtype
    np.testing.assert_allclose(t.double().numpy(), CASES["translation"].numpy(), rtol=1e-4, atol=1e-4)

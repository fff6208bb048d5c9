"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def body():
    """(smplx.SMPL, assets) of a small synthetic SMPL-format body (384 vertices, 24 sparse, 24 markers).

    Stand-in until the shipped low-res model is available to tests: swap the body of this fixture for
    ``m = whmr_core.body.load_body_model(variant="lowres"); return m, whmr_core.body.body_assets(m)``.
    """
    from whmr_core.model.standin_body import make_standin_body

    return make_standin_body(n_vertices=384, n_markers=24)

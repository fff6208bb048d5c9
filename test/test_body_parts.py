"""IUV labels derived from the loaded body model."""

from __future__ import annotations

import numpy as np
import pytest

from whmr_core.body import load_body_model
from whmr_core.body.parts import vertex_parts, vertex_uv


@pytest.fixture(scope="module")
def model():
    return load_body_model(variant="lowres")


def test_every_part_is_present_and_labels_are_in_range(model):
    parts = vertex_parts(model)
    assert parts.shape == (model.v_template.shape[0],)
    assert parts.min() >= 1 and parts.max() <= 24
    assert len(np.unique(parts)) >= 20  # hands/feet/spine parts may be small but most joints own vertices
    uv = vertex_uv(model)
    assert uv.min() >= 0.0 and uv.max() <= 1.0


def test_left_and_right_hands_are_different_parts_on_their_sides(model):
    parts = vertex_parts(model)
    x = model.v_template[:, 0].numpy()
    # SMPL joints 20/21 are the left/right wrists (parts 21/22): left at +x, right at -x.
    assert (x[parts == 21] > 0.3).all()
    assert (x[parts == 22] < -0.3).all()


def test_uv_spreads_within_each_part(model):
    parts, uv = vertex_parts(model), vertex_uv(model)
    big = [p for p in np.unique(parts) if (parts == p).sum() > 20]
    for p in big:
        spread = uv[parts == p].max(0) - uv[parts == p].min(0)
        np.testing.assert_allclose(spread, [1.0, 1.0], atol=1e-9)

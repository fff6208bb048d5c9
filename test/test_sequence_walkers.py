"""Synthetic sequences with several walkers: each on its own circle; walker 0 is the one-walker sequence's."""

from __future__ import annotations

import numpy as np
import pytest

from whmr_core.body import body_assets
from whmr_core.data.scene import JointRegressors
from whmr_core.data.sequence import SequenceConfig, make_sequence
from whmr_core.data.synth import load_body


@pytest.fixture(scope="module")
def body():
    model = load_body("lowres")
    return model, JointRegressors.from_assets(body_assets(model))


def _pelvis_xz_in_w(seq, k: int, person: int) -> np.ndarray:
    # Frame k's gravity frame is W shifted by the camera position.
    return (seq.scenes[k].people[person].joints_world[0] + seq.camera_positions[k])[[0, 2]]


def test_each_walker_circles_its_own_centre(body):
    cfg = SequenceConfig(seconds=0.2, walkers=3)
    seq = make_sequence(*body, seed=5, config=cfg)
    assert [len(s.people) for s in seq.scenes] == [3] * 6
    # Walker 0 straight ahead, 1 to the right (+x), 2 to the left, both a metre further back.
    centres = [np.array([0.0, 4.5]), np.array([2.0, 5.5]), np.array([-2.0, 5.5])]
    for k in range(len(seq.scenes)):
        for person, centre in enumerate(centres):
            radius = np.linalg.norm(_pelvis_xz_in_w(seq, k, person) - centre)
            assert radius == pytest.approx(cfg.walk_radius_m, abs=0.01)  # joint regressor vs body pelvis
    assert not np.allclose(seq.scenes[0].people[1].betas, seq.scenes[0].people[2].betas)


def test_walker_zero_is_the_single_walker_sequence(body):
    one = make_sequence(*body, seed=5, config=SequenceConfig(seconds=0.1))
    three = make_sequence(*body, seed=5, config=SequenceConfig(seconds=0.1, walkers=3))
    for a, b in zip(one.scenes, three.scenes, strict=True):
        np.testing.assert_array_equal(a.people[0].vertices_world, b.people[0].vertices_world)
    np.testing.assert_array_equal(one.imu.accel, three.imu.accel)


def test_walkers_must_be_positive():
    with pytest.raises(ValueError, match="walkers"):
        SequenceConfig(walkers=0)

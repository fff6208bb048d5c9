"""One camera per image: the persons' focal predictions fused into one, depths re-solved from eq. 3."""

from __future__ import annotations

import math

import numpy as np
import pytest
from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody

from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.focal_fusion import fuse_focal, shared_camera, weighted_median
from whmr_core.runtime.frames import Detections, Frame
from whmr_core.runtime.pipeline import Pipeline

W, H = 640, 480
IMAGE = np.zeros((H, W, 3), np.uint8)


def test_weighted_median_hand_cases():
    assert weighted_median([3.0, 1.0, 2.0], [1, 1, 1]) == 2.0
    assert weighted_median([1.0, 10.0], [3, 1]) == 1.0  # the heavier one wins
    assert weighted_median([1.0, 10.0], [1, 1]) == pytest.approx(math.sqrt(10.0))  # tie: geometric mean
    assert weighted_median([5.0, 100.0, 6.0], [1, 0.5, 1]) == 6.0  # one outlier moves it little
    with pytest.raises(ValueError, match="weights"):
        weighted_median([1.0, 2.0], [0, 0])


def test_fuse_focal_ignores_unusable_predictions():
    assert fuse_focal([500.0, np.nan, -3.0], [0.5, 1.0, 1.0]) == 500.0
    assert fuse_focal([np.nan], [1.0]) is None
    np.testing.assert_allclose(shared_camera(800.0, (640, 480)), [[800, 0, 320], [0, 800, 240], [0, 0, 1]])


def _two_people(per_person_focal: bool):
    # True camera f = 500 px; the fake network predicts t_z = 5 m for everyone, so its focal guesses are
    # f_i = s_i b_i t_z / 2 = 5 f / z_i: 625 px for the person at 4 m, 312.5 px for the one at 8 m.
    engine = FakeEngine((W, H), focal=500.0)
    near, far = SeenBody(np.array([-0.8, 0.3, 4.0])), SeenBody(np.array([1.2, 0.2, 8.0]))
    engine.bodies = [near, far]
    det = Detections.of([engine.box_of(near, 60.0), engine.box_of(far, 30.0)], [0.9, 0.6])
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none", per_person_focal=per_person_focal))
    res = pipe.process(Frame(IMAGE, 1, detections=det))
    assert len(res.persons) == 2
    by_x = sorted(res.persons, key=lambda p: p.box_xyxy[0])
    return res, by_x, engine, (near, far)


def test_two_persons_share_one_focal_and_depths_follow_their_sizes():
    res, (p_near, p_far), engine, (near, far) = _two_people(per_person_focal=False)
    # Weighted median of 625 (score 0.9) and 312.5 (score 0.6): 625.
    assert res.focal_px == pytest.approx(625.0, rel=1e-4)
    for p in (p_near, p_far):
        assert p.focal_px == pytest.approx(625.0, rel=1e-4)
        assert not p.translation_is_metric
    # eq. 3 with the shared focal: t_z = 2 f / (s b) = 625 z / 500, so depths keep their true ratio.
    assert p_near.translation_camera[2] == pytest.approx(5.0, rel=1e-4)
    assert p_far.translation_camera[2] == pytest.approx(10.0, rel=1e-4)
    # A focal 625 / 500 too long stretches the scene along the view by that factor, for both alike:
    # x and y stay true (u - c_x = f x / z holds with f and z scaled together).
    stretch = np.array([1.0, 1.0, 1.25])
    np.testing.assert_allclose(p_near.joints_camera[0], near.position * stretch, atol=2e-3)
    np.testing.assert_allclose(p_far.joints_camera[0], far.position * stretch, atol=4e-3)
    # And each pelvis projects where the camera saw it, with the shared focal and the image centre.
    for p, body in ((p_near, near), (p_far, far)):
        np.testing.assert_allclose(p.joints_2d[0], engine.project(body.position), atol=0.05)


def test_per_person_focal_keeps_the_papers_behaviour():
    res, (p_near, p_far), _, _ = _two_people(per_person_focal=True)
    assert res.focal_px is None
    assert p_near.focal_px == pytest.approx(625.0, rel=1e-4) and p_far.focal_px == pytest.approx(
        312.5, rel=1e-4
    )
    # Both at the network's 5 m, though one looks twice as large as the other.
    assert p_near.translation_camera[2] == pytest.approx(5.0, rel=1e-4)
    assert p_far.translation_camera[2] == pytest.approx(5.0, rel=1e-4)


def test_one_person_fused_equals_its_own_prediction():
    engine = FakeEngine((W, H), focal=500.0)
    body = SeenBody(np.array([0.2, 0.1, 4.0]))
    engine.bodies = [body]
    frame = Frame(IMAGE, 1, detections=Detections.of([engine.box_of(body)]))
    fused = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none")).process(frame).persons[0]
    own = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none", per_person_focal=True)).process(frame)
    np.testing.assert_allclose(fused.translation_camera, own.persons[0].translation_camera, rtol=1e-5)
    assert fused.focal_px == pytest.approx(own.persons[0].focal_px, rel=1e-6)

"""The Pipeline's keypoint step and fit with the shipped network and models, on a real photo: keypoints per
person whatever the box source, a fitted body that reprojects nearer its keypoints than the network's, and a
fit without enough keypoints that falls back to the network's body exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.body.keypoints import COCO17_SMPL_JOINT
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.frames import Detections, Frame
from whmr_core.runtime.pipeline import Pipeline

PHOTO = Path(__file__).parent / "data" / "photos" / "astronaut.jpg"
BOX = [20.0, 14.0, 362.0, 511.5]  # person_boxes.json


@pytest.fixture(scope="module")
def shipped():
    from whmr_core.runtime.factory import default_engine, load_topology

    engine = default_engine()
    return engine, load_topology(engine=engine)


def _run(shipped, box, **config):
    engine, topology = shipped
    image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    pipe = Pipeline(engine, topology, PipelineConfig(detector="none", **config))
    result = pipe.process(Frame(image, 0, detections=Detections.of([box])))
    (person,) = result.persons
    return person, pipe


def _limb_error_px(person) -> float:
    kp = person.keypoints_2d
    errs = [
        np.linalg.norm(kp[k, :2] - person.joints_2d[j])
        for k, j in COCO17_SMPL_JOINT.items()
        if kp[k, 2] >= 0.3
    ]
    return float(np.median(errs))


@pytest.mark.slow
def test_given_boxes_get_keypoints_and_a_fit_nearer_to_them(shipped):
    alone, _ = _run(shipped, BOX, fit=False)
    fitted, pipe = _run(shipped, BOX)
    assert alone.fit == "off" and fitted.fit == "fitted" and pipe.fit_fallbacks == 0
    kp = fitted.keypoints_2d
    assert kp.shape == (17, 3) and (kp[:7, 2] >= 0.3).all()  # face and shoulders of a portrait
    np.testing.assert_array_equal(kp, alone.keypoints_2d)  # the same Thunder keypoints either way
    assert _limb_error_px(fitted) < 0.8 * _limb_error_px(alone)
    assert np.isfinite(fitted.vertices_camera).all() and fitted.translation_camera[2] > 0


@pytest.mark.slow
def test_a_box_without_a_person_falls_back_to_the_network_body(shipped):
    sky = [380.0, 0.0, 511.0, 120.0]  # the photo's top-right corner: a flag and a wall, nobody
    alone, _ = _run(shipped, sky, fit=False)
    fell, pipe = _run(shipped, sky)
    assert fell.fit.startswith("fallback: ") and pipe.fit_fallbacks == 1
    np.testing.assert_array_equal(fell.vertices_camera, alone.vertices_camera)
    np.testing.assert_array_equal(fell.local_rotations, alone.local_rotations)


@pytest.mark.slow
def test_the_fit_takes_blazepose_3d_landmarks(shipped):
    with3d, pipe = _run(shipped, BOX, fit_3d=True)
    assert with3d.fit == "fitted" and pipe._world is not None
    assert np.isfinite(with3d.joints_camera).all()


@pytest.mark.slow
def test_the_fit_gets_the_landmarks_in_the_cameras_axes(shipped, monkeypatch):
    """BlazePose's world landmarks are in the axes of the person's crop; the fit is given them turned into
    the camera's (``crop_to_camera`` with the person's box and camera)."""
    from whmr_core.fitting.fit import BodyFitter
    from whmr_core.runtime.movenet import BlazePoseWorld, crop_to_camera

    seen, world = [], []
    real_call, real_world = BodyFitter.__call__, BlazePoseWorld.__call__

    def spy(self, *args, **kwargs):
        seen.append((kwargs["keypoints_3d"], args[5]))
        return real_call(self, *args, **kwargs)

    def spy_world(self, image, boxes):
        out = real_world(self, image, boxes)
        world.append((out[0], np.array(boxes)))
        return out

    monkeypatch.setattr(BodyFitter, "__call__", spy)
    monkeypatch.setattr(BlazePoseWorld, "__call__", spy_world)
    box = [120.0, 14.0, 462.0, 511.5]  # off the image's centre: a turn of a few degrees
    _run(shipped, box, fit_3d=True)
    (given, K), ((crop, boxes),) = seen[-1], world
    np.testing.assert_allclose(given, crop_to_camera(crop, boxes, K), atol=1e-5)
    assert np.abs(given - crop).max() > 1e-3


@pytest.mark.slow
def test_the_fit_is_given_the_cameras_up_only_where_gravity_is_known(shipped, monkeypatch):
    """A frame with gravity hands the fit the camera's up (minus gravity, camera axes: the upright-torso
    term); a frame without gravity (a photo) hands it none."""
    from whmr_core.fitting.fit import BodyFitter

    seen = []
    real_call = BodyFitter.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("up"))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(BodyFitter, "__call__", spy)
    engine, topology = shipped
    image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    tilted = np.array([0.0, np.cos(0.3), np.sin(0.3)])  # gravity, camera axes: pitched down 0.3 rad
    for gravity in (None, tilted):
        pipe = Pipeline(engine, topology, PipelineConfig(detector="none"))
        (person,) = pipe.process(Frame(image, 0, gravity=gravity, detections=Detections.of([BOX]))).persons
        assert person.fit == "fitted"
    assert seen[0] is None
    np.testing.assert_allclose(seen[1], -tilted, atol=1e-9)

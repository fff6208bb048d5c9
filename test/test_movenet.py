"""The shipped MoveNet models: hash-checked files, decoding against hand-computed cases, the box rule, and
the real models on real photos (the labelled ones of test/data/photos)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.runtime import pose_models
from whmr_core.runtime.engines import EngineError
from whmr_core.runtime.movenet import FEET, HANDS, HEAD_TOP, MultiPoseDetector, ThunderKeypoints, person_box

PHOTOS = Path(__file__).parent / "data" / "photos"


class FakeSession:
    """Returns a fixed output and records the input it was given."""

    def __init__(self, output: np.ndarray) -> None:
        self.output = output
        self.inputs: list[np.ndarray] = []

    def run(self, _names, feed):
        self.inputs.append(next(iter(feed.values())))
        return [self.output]


def _multipose_with(output: np.ndarray, sides=(256,)) -> MultiPoseDetector:
    det = MultiPoseDetector.__new__(MultiPoseDetector)
    det.session, det.input_name = FakeSession(output), "input"
    det.score_threshold, det.sides, det.max_persons, det.merge_iou = 0.2, tuple(sides), 12, 0.5
    return det


@pytest.mark.parametrize("name", sorted(pose_models.POSE_MODELS))
def test_shipped_files_are_the_checked_ones(name):
    assert pose_models.verified_path(name) == pose_models.POSE_MODELS[name].path


def test_missing_altered_and_unknown_files_are_refused_naming_them(tmp_path, monkeypatch):
    name = "movenet-thunder"
    monkeypatch.setattr(pose_models, "ASSET_DIR", tmp_path)
    monkeypatch.setattr(pose_models, "_VERIFIED", {})
    with pytest.raises(EngineError, match=r"movenet-thunder: .*movenet-thunder.onnx is missing"):
        pose_models.verified_path(name)
    real = Path(pose_models.__file__).resolve().parents[1] / "assets" / "pose_models" / f"{name}.onnx"
    data = bytearray(real.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights
    (tmp_path / f"{name}.onnx").write_bytes(bytes(data))
    with pytest.raises(EngineError, match="altered or truncated"):
        pose_models.load_pose_session(name)
    with pytest.raises(EngineError, match="unknown"):
        pose_models.verified_path("movenet-huge")


def test_multipose_output_maps_back_to_image_pixels():
    # A 640 x 480 image at side 256: resized to 256 x 192 (a multiple of 32 already), so normalised x of the
    # input is x_px = n * 256 * 640 / 256 - 0.5 and y_px = n * 192 * 480 / 192 - 0.5.
    out = np.zeros((1, 6, 56), np.float32)
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0], kp[:, 1], kp[:, 2] = 0.25, 0.5, 0.9  # y, x, score
    out[0, 0, :51] = kp.reshape(-1)
    out[0, 0, 51:56] = [0.2, 0.4, 0.3, 0.6, 0.8]  # ymin, xmin, ymax, xmax, score
    out[0, 1, 55] = 0.1  # below the threshold: not a person
    det = _multipose_with(out)
    p = det.detect(np.zeros((480, 640, 3), np.uint8))
    assert det.session.inputs[0].shape == (1, 192, 256, 3) and det.session.inputs[0].dtype == np.int32
    assert len(p.boxes) == 1 and p.scores[0] == pytest.approx(0.8)
    np.testing.assert_allclose(p.keypoints[0, :, :2], np.tile([319.5, 119.5], (17, 1)), atol=1e-4)
    # The model's box (255.5, 95.5, 383.5, 143.5) contains every keypoint, so it is the box.
    np.testing.assert_allclose(p.boxes[0], [255.5, 95.5, 383.5, 143.5], atol=1e-4)


def test_multipose_pads_to_multiples_of_32_and_merges_scales():
    out = np.zeros((1, 6, 56), np.float32)
    out[0, 0, :51] = np.tile([0.5, 0.5, 0.9], 17)
    out[0, 0, 51:56] = [0.1, 0.1, 0.9, 0.9, 0.7]
    det = _multipose_with(out, sides=(256, 512))
    p = det.detect(
        np.zeros((100, 300, 3), np.uint8)
    )  # 256 x 85 -> padded to 256 x 96; 512 x 171 -> 512 x 192
    assert [x.shape[1:3] for x in det.session.inputs] == [(96, 256), (192, 512)]
    assert len(p.boxes) == 1  # the same person at both sides is one person


def test_person_box_adds_head_feet_and_hands_in_torso_units():
    kp = np.zeros((17, 3))
    kp[:, 2] = 0.9
    kp[:, :2] = [100.0, 200.0]
    kp[0] = [100, 100, 0.9]  # nose: the top
    kp[5], kp[6] = [90, 150, 0.9], [110, 150, 0.9]  # shoulders
    kp[11], kp[12] = [92, 250, 0.9], [108, 250, 0.9]  # hips: torso 100 px
    kp[15], kp[16] = [95, 400, 0.9], [105, 400, 0.9]  # ankles: the bottom
    kp[9], kp[10] = [60, 200, 0.9], [140, 200, 0.9]  # wrists: the sides
    box = person_box(kp)
    np.testing.assert_allclose(
        box, [60 - 100 * HANDS, 100 - 100 * HEAD_TOP, 140 + 100 * HANDS, 400 + 100 * FEET]
    )
    kp[:, 2] = 0.0  # nothing seen: the model's box
    np.testing.assert_allclose(person_box(kp, np.array([1.0, 2, 3, 4])), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="no keypoint seen"):
        person_box(kp)


def test_thunder_crop_maps_back_to_the_box():
    th = ThunderKeypoints.__new__(ThunderKeypoints)
    kp = np.zeros((1, 1, 17, 3), np.float32)
    kp[..., 0], kp[..., 1], kp[..., 2] = 0.5, 0.25, 1.0  # y at the crop's middle, x a quarter in
    th.session, th.input_name = FakeSession(kp), "input"
    out = th(np.zeros((480, 640, 3), np.uint8), np.array([[100.0, 50.0, 200.0, 250.0]]))
    # Crop: centre (150, 150), side 1.25 x 200 = 250, so its left edge is at x = 25 and x = 25 + 0.25 * 250.
    np.testing.assert_allclose(out[0, :, :2], np.tile([87.5, 150.0], (17, 1)), atol=1e-6)
    assert th.session.inputs[0].shape == (1, 256, 256, 3)


@pytest.fixture(scope="module")
def photo_boxes():
    return json.loads((PHOTOS / "person_boxes.json").read_text())


@pytest.mark.parametrize("name", ["astronaut.jpg", "camera.jpg"])
def test_real_models_find_the_person_and_its_keypoints_on_real_photos(photo_boxes, name):
    image = cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)
    found = MultiPoseDetector().detect(image)
    truth = np.asarray(photo_boxes[name][0])
    assert len(found.boxes) >= 1
    best = found.boxes[0]
    lo, hi = np.maximum(best[:2], truth[:2]), np.minimum(best[2:], truth[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    union = np.prod(best[2:] - best[:2]) + np.prod(truth[2:] - truth[:2]) - inter
    assert inter / union > 0.5, (best, truth)
    kp = ThunderKeypoints()(image, found.boxes[:1])[0]
    seen = kp[:, 2] >= 0.3
    assert seen[:7].all()  # face and shoulders of these portraits
    inside = (kp[seen, 0] >= truth[0]) & (kp[seen, 0] <= truth[2]) & (kp[seen, 1] >= truth[1])
    assert inside.all()
    # Left and right as the person sees them: in these frontal portraits the left shoulder is on the right.
    assert kp[5, 0] > kp[6, 0]


def test_dark_images_are_brightened_for_the_pose_models_and_bright_ones_left_alone():
    from whmr_core.runtime.movenet import BRIGHT_TARGET, exposure_normalised

    bright = np.full((40, 40, 3), 200, np.uint8)
    assert exposure_normalised(bright) is bright
    dark = np.zeros((40, 40, 3), np.uint8)
    dark[:20] = 4  # a low-light frame: values 0-4
    out = exposure_normalised(dark)
    assert out[0, 0, 0] == BRIGHT_TARGET and out[39, 0, 0] == 0


def test_blazepose_world_landmarks_on_a_real_portrait(photo_boxes):
    from whmr_core.runtime.movenet import BlazePoseWorld

    image = cv2.cvtColor(cv2.imread(str(PHOTOS / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    points, scores = BlazePoseWorld()(image, np.asarray(photo_boxes["astronaut.jpg"]))
    assert points.shape == (1, 17, 3) and scores.shape == (1, 17)
    p = points[0]
    assert (scores[0, :7] > 0.5).all()  # face and shoulders seen
    # Metres in the camera's axes: she faces the camera, so her left shoulder is to the image's right (+x),
    # her nose above the shoulders (-y) and nearer the camera than her ears (-z).
    assert p[5, 0] > p[6, 0] and p[0, 1] < p[5, 1]
    assert p[0, 2] < min(p[3, 2], p[4, 2])
    assert 0.25 < np.linalg.norm(p[5] - p[6]) < 0.5  # shoulder width of an adult

"""The shipped BlazePose person detector: SSD anchors, decoding and NMS on hand-computed cases, and person
boxes on real photographs (public-domain / CC0, test/data/photos) against hand-drawn ones."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.runtime.blazepose import (
    MODEL_PATH,
    POSE_ANCHORS,
    BlazePoseDetector,
    person_boxes,
)
from whmr_core.runtime.engines import EngineError
from whmr_core.runtime.ssd import Letterbox, RawDetections, decode, ssd_anchors, weighted_nms
from whmr_core.tracking import iou_matrix

PHOTOS = Path(__file__).parent / "data" / "photos"


def _photo(name: str) -> np.ndarray:
    return cv2.imread(str(PHOTOS / name), cv2.IMREAD_COLOR)[:, :, ::-1].copy()


@pytest.fixture(scope="module")
def detector() -> BlazePoseDetector:
    return BlazePoseDetector()


@pytest.fixture(scope="module")
def hand_boxes() -> dict[str, np.ndarray]:
    data = json.loads((PHOTOS / "person_boxes.json").read_text())
    return {k: np.asarray(v, dtype=np.float64) for k, v in data.items()}


# --- anchors, decoding, NMS: hand-computed ------------------------------------------------------------


def test_pose_anchors_follow_mediapipes_grid():
    a = ssd_anchors(POSE_ANCHORS)
    # 28x28 cells x 2 (stride 8) + 14x14 x 2 (stride 16) + 7x7 x 6 (three stride-32 layers share a grid)
    assert a.shape == (28 * 28 * 2 + 14 * 14 * 2 + 7 * 7 * 6, 4) == (2254, 4)
    np.testing.assert_allclose(a[0], [0.5 / 28, 0.5 / 28, 1, 1])
    np.testing.assert_allclose(a[1], a[0])  # the interpolated-scale anchor of the same cell
    np.testing.assert_allclose(a[2], [1.5 / 28, 0.5 / 28, 1, 1])  # x runs fastest
    np.testing.assert_allclose(a[2 * 28], [0.5 / 28, 1.5 / 28, 1, 1])
    np.testing.assert_allclose(a[1568], [0.5 / 14, 0.5 / 14, 1, 1])  # first stride-16 anchor
    np.testing.assert_allclose(a[1960:1966], [[0.5 / 7, 0.5 / 7, 1, 1]] * 6)
    np.testing.assert_allclose(a[1966], [1.5 / 7, 0.5 / 7, 1, 1])
    np.testing.assert_allclose(a[-1], [6.5 / 7, 6.5 / 7, 1, 1])


def test_anchor_sizes_when_not_fixed():
    opts = replace(POSE_ANCHORS, fixed_anchor_size=False, aspect_ratios=(1.0, 4.0))
    a = ssd_anchors(opts)
    s0, s1 = 0.1484375, 0.1484375 + (0.75 - 0.1484375) / 4
    # cell 0: aspect 1 (s0, s0), aspect 4 (w = 2 s0, h = s0 / 2), interpolated sqrt(s0 s1)
    np.testing.assert_allclose(a[0:3, 2:], [[s0, s0], [2 * s0, s0 / 2], [np.sqrt(s0 * s1)] * 2])
    np.testing.assert_allclose(a[-1, 2:], [np.sqrt(0.75)] * 2)  # the last layer interpolates towards 1


def test_decode_a_hand_computed_anchor():
    anchors = np.array([[0.25, 0.75, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]])
    raw = np.zeros((2, 12))
    raw[0, :4] = [22.4, -11.2, 44.8, 67.2]  # /224: +0.1, -0.05, w 0.2, h 0.3
    raw[0, 4:6] = [-22.4, 44.8]  # keypoint 0 at anchor + (-0.1, +0.2)
    scores = np.array([0.0, -300.0])  # sigmoid(0) = 0.5; the second is clipped and below threshold
    d = decode(raw, scores, anchors, scale=224.0, num_keypoints=4, min_score=0.3)
    assert len(d) == 1
    np.testing.assert_allclose(d.boxes[0], [0.25, 0.55, 0.45, 0.85])
    np.testing.assert_allclose(d.keypoints[0, 0], [0.15, 0.95])
    np.testing.assert_allclose(d.keypoints[0, 1], [0.25, 0.75])  # zero offset: the anchor centre
    assert d.scores[0] == pytest.approx(0.5)


def test_weighted_nms_averages_overlapping_candidates_by_score():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0]])
    kps = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[5.5, 5.5]]])
    dets = RawDetections(boxes, kps, np.array([0.6, 0.9, 0.8]))
    out = weighted_nms(dets, iou_threshold=0.3)
    assert len(out) == 2
    np.testing.assert_allclose(out.scores, [0.9, 0.8])  # the merged one keeps its best score
    w = np.array([0.6, 0.9]) / 1.5
    np.testing.assert_allclose(out.boxes[0], w @ boxes[:2])
    np.testing.assert_allclose(out.keypoints[0, 0], [0.9 / 1.5, 0.0])
    np.testing.assert_allclose(out.boxes[1], boxes[2])


def test_letterbox_maps_the_input_back_to_image_pixels():
    lb = Letterbox.fit(448, 224, 224)  # fits as 224 x 112, 56 rows of padding above
    assert (lb.nw, lb.nh, lb.x0, lb.y0) == (224, 112, 0, 56)
    # The input's centre is the image's centre: pixel centres are integers, so (447 / 2, 223 / 2).
    np.testing.assert_allclose(lb.to_image(np.array([0.5, 0.5])), [223.5, 111.5])
    np.testing.assert_allclose(lb.to_image(np.array([0.0, 56 / 224])), [-0.5, -0.5])  # top-left edge


def test_person_box_from_hip_centre_and_scale_point():
    # Upright: hip (100, 200), full-body radius 100 (head top at y 100, feet at y 300); shoulders at
    # (100, 130) with upper-body radius 60 -> shoulders +-30 px; hips and feet +-35 px.
    kp = np.array([[[100.0, 200.0], [100.0, 100.0], [100.0, 130.0], [100.0, 70.0]]])
    face = np.array([[90.0, 105.0, 110.0, 125.0]])  # inside the body box
    np.testing.assert_allclose(person_boxes(face, kp)[0], [65.0, 100.0, 135.0, 300.0])
    # A face box sticking out (a tilted head) widens the box.
    face_out = np.array([[150.0, 95.0, 170.0, 115.0]])
    np.testing.assert_allclose(person_boxes(face_out, kp)[0], [65.0, 95.0, 170.0, 300.0])
    # Lying down (head to the left): the extents swap.
    lying = np.array([[[100.0, 200.0], [0.0, 200.0], [30.0, 200.0], [-30.0, 200.0]]])
    np.testing.assert_allclose(person_boxes(np.array([[0, 190, 10, 210.0]]), lying)[0], [0, 165, 200, 235])


# --- the model on real photographs --------------------------------------------------------------------


def test_the_shipped_model_file_is_the_checked_one():
    assert MODEL_PATH.is_file() and (MODEL_PATH.parent / "LICENCE").is_file()


@pytest.mark.parametrize("name", ["astronaut.jpg", "camera.jpg"])
def test_one_box_per_person_on_real_photos(detector, hand_boxes, name):
    img = _photo(name)
    boxes, scores = detector(img)
    assert len(boxes) == 1, (boxes, scores)
    h, w = img.shape[:2]
    clipped = np.clip(boxes, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
    iou = iou_matrix(clipped, hand_boxes[name])[0, 0]
    assert iou >= 0.6, (name, clipped, iou)


def test_two_people_in_one_photo(detector, hand_boxes):
    a, c = _photo("astronaut.jpg"), _photo("camera.jpg")
    # 1024 x 512: the photographer (cut by his photo's left edge, which stays the image edge) and the
    # astronaut to his right, who is wholly inside her half.
    img = np.concatenate([c, a], axis=1)
    want = np.concatenate([hand_boxes["camera.jpg"], hand_boxes["astronaut.jpg"] + [512, 0, 512, 0]])
    boxes, _ = detector(img)
    assert len(boxes) == 2, boxes
    h, w = img.shape[:2]
    clipped = np.clip(boxes, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
    iou = iou_matrix(want, clipped)
    assert (iou.max(1) >= 0.6).all(), iou
    assert set(iou.argmax(1)) == {0, 1}  # one box each


def test_no_person_no_box(detector):
    sky = np.full((300, 400, 3), (120, 170, 230), np.uint8)
    boxes, scores = detector(sky)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_a_file_that_is_not_the_detector_is_refused(tmp_path):
    bad = tmp_path / "pose_detection.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(EngineError, match="not a loadable TFLite model"):
        BlazePoseDetector(bad)
    with pytest.raises(EngineError, match="not found"):
        BlazePoseDetector(tmp_path / "missing.tflite")


def test_tiles_cover_a_wide_image_with_half_overlapping_squares():
    from whmr_core.runtime.blazepose import tiles

    assert tiles(512, 512) == [(0, 0, 0)]
    assert tiles(640, 480) == [(0, 0, 0)]  # 4:3: the whole image only
    assert tiles(1280, 720) == [(0, 0, 720), (280, 0, 720), (560, 0, 720)]  # 16:9
    assert tiles(1024, 512) == [(0, 0, 512), (256, 0, 512), (512, 0, 512)]
    # (1000 - 480) / 240 = 2.2 half-steps -> 3 steps of 173.3 px
    assert tiles(480, 1000) == [(0, 0, 480), (0, 173, 480), (0, 347, 480), (0, 520, 480)]

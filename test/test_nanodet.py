"""NanoDet's person boxes as whmr image's second box source in crowds: the GFL decoding against hand-computed
cases, the input, the rule that adds only people no MultiPose person covers (with Thunder's keypoints), the
crowd tiles running it, and the real model on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.runtime.movenet import MultiPoseDetector, PoseSet
from whmr_core.runtime.nanodet import (
    MEAN_BGR,
    REG_BINS,
    STD_BGR,
    NanoDetPersons,
    add_uncovered,
    decode_gfl,
    nanodet_input,
)

PHOTOS = Path(__file__).parent / "data" / "photos"
BIG = 30.0  # a logit that makes its bin's softmax weight 1 (to 1e-13)


def _one_hot(bins: list[int]) -> np.ndarray:
    """The 4 x REG_BINS distance logits of one cell whose left/top/right/bottom distances are ``bins``."""
    logits = np.zeros((4, REG_BINS))
    for side, b in enumerate(bins):
        logits[side, b] = BIG
    return logits.reshape(-1)


def _empty_outputs(size: int, classes: int = 1, strides=(8, 16, 32)):
    scores = [np.zeros(((size // s) ** 2, classes)) for s in strides]
    dists = [np.zeros(((size // s) ** 2, 4 * REG_BINS)) for s in strides]
    return scores, dists


def test_gfl_boxes_are_the_expected_distances_from_each_cell_centre():
    # A 32-pixel input: 4 x 4 cells at stride 8, 2 x 2 at 16, 1 at 32.
    scores, dists = _empty_outputs(32)
    dists[0][5] = _one_hot([2, 1, 3, 0])  # stride 8, row 1, col 1: centre (12, 12)
    dists[1][2] = _one_hot([0, 4, 1, 10])  # stride 16, row 1, col 0: centre (8, 24)
    # Stride 32's only cell: left and right weigh bins 2 and 4 equally (expectation 3), top and bottom
    # uniform over 0..10 (expectation 5).
    two = np.full(REG_BINS, -BIG)
    two[[2, 4]] = 0.0
    dists[2][0] = np.concatenate([two, np.zeros(REG_BINS), two, np.zeros(REG_BINS)])
    scores[0][5, 0], scores[2][0, 0] = 0.7, 0.9
    boxes, s = decode_gfl(scores, dists, size=32)
    assert boxes.shape == (16 + 4 + 1, 4) and s.shape == (21, 1)
    np.testing.assert_allclose(boxes[5], [12 - 16, 12 - 8, 12 + 24, 12 + 0], atol=1e-9)
    np.testing.assert_allclose(boxes[16 + 2], [8 - 0, 24 - 64, 8 + 16, 24 + 160], atol=1e-9)
    np.testing.assert_allclose(boxes[20], [16 - 96, 16 - 160, 16 + 96, 16 + 160], atol=1e-9)
    # Equal logits everywhere else: every distance is 5 strides.
    np.testing.assert_allclose(boxes[0], [4 - 40, 4 - 40, 4 + 40, 4 + 40], atol=1e-9)
    assert s[5, 0] == 0.7 and s[20, 0] == 0.9 and s[0, 0] == 0.0


def test_gfl_decoding_refuses_outputs_of_another_grid():
    scores, dists = _empty_outputs(32)
    with pytest.raises(ValueError, match="stride 8"):
        decode_gfl(scores, dists, size=64)


def test_the_input_is_the_stretched_image_normalised_in_bgr():
    image = np.zeros((100, 300, 3), np.uint8)
    image[..., 0] = 200  # red
    x = nanodet_input(image)
    assert x.shape == (1, 3, 416, 416) and x.dtype == np.float32
    # Channel 0 is blue (0), channel 2 red (200).
    np.testing.assert_allclose(x[0, :, 208, 208], (np.array([0, 0, 200]) - MEAN_BGR) / STD_BGR, rtol=1e-6)


class FakeNanoDet:
    """NanoDet's six outputs in the graph's order (scores of strides 8, 16, 32, then their distances), from
    hand-set cells of the 416 input; records each input."""

    def __init__(self, cells: list[tuple[int, int, float, list[int]]]) -> None:
        scores, dists = _empty_outputs(416, classes=80)
        for k, cell, score, bins in cells:  # (stride index, cell, person score, distance bins)
            scores[k][cell, 0] = score
            dists[k][cell] = _one_hot(bins)
        self.outputs = [a[None].astype(np.float32) for a in scores + dists]
        self.inputs: list[np.ndarray] = []

    def run(self, _names, feed):
        self.inputs.append(next(iter(feed.values())))
        return self.outputs


def _nanodet_with(session: FakeNanoDet, threshold: float = 0.4) -> NanoDetPersons:
    nd = NanoDetPersons.__new__(NanoDetPersons)
    nd.session, nd.input_name, nd.outputs, nd.score_threshold = session, "input_1", list("abcdef"), threshold
    return nd


def test_nanodet_people_come_back_in_image_pixels_thresholded_and_merged():
    # Stride 32 (13 x 13 cells), cell 14 = row 1, col 1: centre (48, 48); 1 bin left/top, 2 right/bottom:
    # box (16, 16, 112, 112) of the 416 input. The next cell's weaker box (centre (80, 48), 2 / 1 / 1 / 2
    # bins) is the same box: merged; a cell below the threshold is dropped.
    fake = FakeNanoDet([(2, 14, 0.8, [1, 1, 2, 2]), (2, 15, 0.6, [2, 1, 1, 2]), (2, 100, 0.3, [1, 1, 1, 1])])
    boxes, scores = _nanodet_with(fake)(np.zeros((208, 832, 3), np.uint8))
    # 832 x 208 stretched to 416 x 416: x halves, y doubles.
    np.testing.assert_allclose(boxes, [[32, 8, 224, 56]], atol=1e-6)
    np.testing.assert_allclose(scores, [0.8], atol=1e-6)
    assert fake.inputs[0].shape == (1, 3, 416, 416)


def _person(box, score=0.8, kp_score=0.9) -> tuple[np.ndarray, float, np.ndarray]:
    """A standing person filling ``box``: 17 keypoints spread over it."""
    x1, y1, x2, y2 = box
    kp = np.zeros((17, 3))
    kp[:, 0] = np.linspace(x1 + 0.2 * (x2 - x1), x2 - 0.2 * (x2 - x1), 17)
    kp[:, 1] = np.linspace(y1 + 0.1 * (y2 - y1), y2 - 0.05 * (y2 - y1), 17)
    kp[:, 2] = kp_score
    return np.asarray(box, float), score, kp


class FakeKeypoints:
    """Keypoints for given boxes from a table (box -> keypoints); records the boxes it was asked for."""

    def __init__(self, table: dict[tuple, np.ndarray]) -> None:
        self.table, self.asked = table, []

    def __call__(self, _image, boxes):
        self.asked.append(np.asarray(boxes).copy())
        return np.stack([self.table[tuple(np.round(b).astype(int))] for b in boxes])


def test_only_people_no_multipose_person_covers_are_added_with_their_keypoints():
    b0, s0, k0 = _person((100, 100, 200, 400))
    found = PoseSet(b0[None], np.array([s0]), k0[None])
    covered = (105, 95, 205, 410)  # IoU 0.88 with the MultiPose person
    new = (400, 100, 500, 400)
    weak = (700, 100, 800, 400)  # Thunder sees 3 keypoints there only
    _, _, k_new = _person(new)
    k_weak = _person(weak)[2]
    k_weak[3:, 2] = 0.1
    kp = FakeKeypoints({new: k_new, weak: k_weak})
    out = add_uncovered(
        np.zeros((500, 900, 3), np.uint8),
        found,
        np.array([covered, new, weak], float),
        np.array([0.9, 0.6, 0.7]),
        kp,
        max_persons=10,
    )
    # Thunder runs on the uncovered boxes only (best score first); the covered one is not asked for.
    np.testing.assert_allclose(kp.asked[0], [weak, new])
    assert len(out.boxes) == 2
    np.testing.assert_allclose(out.boxes[0], b0)  # the MultiPose person, unchanged
    np.testing.assert_allclose(out.keypoints[1], k_new)
    assert out.scores[1] == 0.6
    # Its box holds the NanoDet box (person_box of its keypoints and that box).
    assert (out.boxes[1][:2] <= new[:2]).all() and (out.boxes[1][2:] >= new[2:]).all()
    # The cap: nobody is added to a full set.
    full = add_uncovered(np.zeros((500, 900, 3), np.uint8), found, np.array([new], float), [0.6], kp, 1)
    assert len(full.boxes) == 1


def test_a_neighbours_keypoints_do_not_stretch_a_new_persons_box():
    b0, s0, k0 = _person((300, 100, 400, 400))
    found = PoseSet(b0[None], np.array([s0]), k0[None])
    new = (150, 100, 290, 400)
    _, _, k_new = _person(new)
    k_new[9] = [350, 250, 0.9]  # a wrist on the neighbour (outside its own box, inside the neighbour's)
    k_new[10] = [120, 250, 0.9]  # an outstretched wrist in nobody's box: its own
    out = add_uncovered(
        np.zeros((500, 500, 3), np.uint8),
        found,
        np.array([new], float),
        [0.6],
        FakeKeypoints({new: k_new}),
        5,
    )
    assert len(out.boxes) == 2
    assert out.keypoints[1, 9, 2] == 0.0 and out.keypoints[1, 10, 2] == 0.9
    assert out.boxes[1, 2] < 300  # not stretched onto the neighbour
    assert out.boxes[1, 0] < 120  # reaches the outstretched hand


def test_a_person_whose_keypoints_repeat_a_found_one_is_not_added():
    b0, s0, k0 = _person((100, 100, 200, 400))
    found = PoseSet(b0[None], np.array([s0]), k0[None])
    # A loose box around the same person (IoU 0.24 with it: not covered by overlap); Thunder finds the
    # same person there.
    loose = (60, 20, 300, 480)
    out = add_uncovered(
        np.zeros((500, 500, 3), np.uint8),
        found,
        np.array([loose], float),
        [0.6],
        FakeKeypoints({loose: k0}),
        5,
    )
    assert len(out.boxes) == 1


def _multipose_with(output: np.ndarray) -> MultiPoseDetector:
    class Session:
        def __init__(self):
            self.inputs = []

        def run(self, _names, feed):
            self.inputs.append(next(iter(feed.values())))
            return [output]

    det = MultiPoseDetector.__new__(MultiPoseDetector)
    det.session, det.input_name = Session(), "input"
    det.score_threshold, det.sides, det.max_persons, det.merge_iou = 0.2, (256,), 40, 0.5
    det.tile_crowds, det.tile_depth, det.small_person = True, 1, 0.0
    det.second_boxes = det.second_keypoints = None  # no crowd boxes unless a test gives them
    return det


def _six_people() -> np.ndarray:
    """MultiPose's (1, 6, 56): six small people along y = 0.2 (saturated: the crowd tiles run)."""
    out = np.zeros((1, 6, 56), np.float32)
    for i in range(6):
        x = 0.1 + 0.16 * i
        out[0, i, :51] = np.tile([0.2, x, 0.9], 17)
        out[0, i, 51:56] = [0.15, x - 0.02, 0.25, x + 0.02, 0.6]
    return out


def test_crowd_tiles_run_nanodet_and_add_the_people_multipose_left_out():
    det = _multipose_with(_six_people())
    # 640 x 480: 4 tiles of 384 x 384, each stretched to 416. NanoDet finds one person in each tile: stride
    # 16, cell 18 x 26 + 9 (centre (152, 296) of the input), edges 4 / 4 / 3 / 3 bins: input pixels 88..200 x
    # 232..344, tile pixels x 384 / 416; far from every MultiPose person.
    fake = FakeNanoDet([(1, 18 * 26 + 9, 0.7, [4, 4, 3, 3])])
    det.second_boxes = _nanodet_with(fake)
    kp = FakeKeypoints({})

    def keypoints_of(image, boxes):
        kp.asked.append(np.asarray(boxes).copy())
        return np.stack([_person(b)[2] for b in boxes])

    det.second_keypoints = keypoints_of
    image = np.zeros((480, 640, 3), np.uint8)
    p = det.detect(image)
    assert len(fake.inputs) == 4  # NanoDet on each crowd tile
    # MultiPose: 6 on the whole image + 6 on each tile (all apart) = 30; NanoDet's person, found in all four
    # tiles at 4 places of the image, is added 4 times (no MultiPose person near), each with keypoints.
    assert len(p.boxes) == 34
    (asked,) = kp.asked
    assert len(asked) == 4
    np.testing.assert_allclose(p.keypoints[30:], np.stack([_person(b)[2] for b in asked]))
    # Without tiles (not saturated), NanoDet does not run.
    det2 = _multipose_with(_six_people()[:, :5])
    fake2 = FakeNanoDet([])
    det2.second_boxes, det2.second_keypoints = _nanodet_with(fake2), keypoints_of
    det2.detect(image)
    assert fake2.inputs == []


@pytest.mark.parametrize("name", ["astronaut.jpg", "camera.jpg"])
def test_the_real_model_finds_the_person_on_real_photos(photo_boxes, name):
    from whmr_core.evaluation_real import box_iou

    image = cv2.cvtColor(cv2.imread(str(PHOTOS / name)), cv2.COLOR_BGR2RGB)
    boxes, scores = NanoDetPersons(threads=1)(image)
    truth = np.asarray(photo_boxes[name][0])
    assert len(boxes) >= 1 and scores[0] >= 0.4
    assert box_iou(truth[None], boxes[:1])[0, 0] > 0.5, (boxes[0], truth)


def test_crowd_boxes_find_more_of_a_dense_real_crowd_than_the_tiles_alone(tune_crowd):
    # The tune set's AI Challenger photo (3 labelled people) repeated 3 x 3: 27 people, each crowd tile
    # holding more than MultiPose's 6.
    from whmr_core.evaluation_real import box_iou

    crowd, truth = tune_crowd(3)

    def found(det: MultiPoseDetector) -> int:
        boxes = det.detect(crowd).boxes
        return int((box_iou(truth, boxes).max(1) >= 0.5).sum())

    tiles = found(MultiPoseDetector(sides=(256, 512), max_persons=64, threads=1))
    both = found(MultiPoseDetector(sides=(256, 512), max_persons=64, threads=1, crowd_boxes=True))
    # Measured: 20 of 27 with the tiles, 27 with the crowd boxes.
    assert tiles < both and both >= 25, (tiles, both)


def test_whmr_image_turns_the_crowd_boxes_on_and_video_leaves_them_off():
    import argparse

    from whmr_core.media.image import add_image_arguments, pipeline_from_args
    from whmr_core.media.video import add_video_arguments
    from whmr_core.runtime.config import PipelineConfig

    image, video = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_image_arguments(image)
    add_video_arguments(video)
    photo, frame = image.parse_args(["x.jpg"]), video.parse_args(["0"])
    assert photo.crowd_boxes and not frame.crowd_boxes and not PipelineConfig().movenet_crowd_boxes
    assert pipeline_from_args(photo).detector.second_boxes is not None
    off = image.parse_args(["x.jpg", "--no-crowd-boxes", "--engine", "onnxruntime"])
    assert not pipeline_from_args(off).config.movenet_crowd_boxes
    assert pipeline_from_args(off).detector.second_boxes is None
    # Without the tiles there are no crowd boxes either (they run on the tiles).
    no_tiles = image.parse_args(["x.jpg", "--no-crowd-tiles", "--engine", "onnxruntime"])
    assert pipeline_from_args(no_tiles).detector.second_boxes is None

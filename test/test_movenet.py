"""The shipped MoveNet models: hash-checked files, decoding against hand-computed cases, the box rule, and
the real models on real photos (the labelled ones of test/data/photos)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.runtime import pose_models
from whmr_core.runtime.engines import EngineError
from whmr_core.runtime.movenet import (
    FEET,
    HANDS,
    HEAD_TOP,
    MultiPoseDetector,
    PoseSet,
    ThunderKeypoints,
    crowd_tiles,
    cut_by_tile_edge,
    keypoint_similarity,
    person_box,
)

PHOTOS = Path(__file__).parent / "data" / "photos"


class FakeSession:
    """Returns a fixed output and records the input it was given."""

    def __init__(self, output: np.ndarray) -> None:
        self.output = output
        self.inputs: list[np.ndarray] = []

    def run(self, _names, feed):
        self.inputs.append(next(iter(feed.values())))
        return [self.output]


def _multipose_with(
    output: np.ndarray, sides=(256,), tile_crowds=True, tile_depth=1, small_person=0.0
) -> MultiPoseDetector:
    det = MultiPoseDetector.__new__(MultiPoseDetector)
    det.session, det.input_name = FakeSession(output), "input"
    det.score_threshold, det.sides, det.max_persons, det.merge_iou = 0.2, tuple(sides), 12, 0.5
    det.tile_crowds, det.tile_depth, det.small_person = tile_crowds, tile_depth, small_person
    det.second_boxes = det.second_keypoints = None  # no crowd boxes unless a test gives them
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


def test_crowd_tiles_are_square_with_60_percent_of_the_longer_side_and_overlap():
    # 640 x 480: side 384, two tiles along each image side (both longer than 384), flush with the far edges.
    assert crowd_tiles(640, 480) == [
        (0, 0, 384, 384),
        (256, 0, 640, 384),
        (0, 96, 384, 480),
        (256, 96, 640, 480),
    ]
    # A wide photo: side 1710, the height (641) spanned whole, so standing people are never cut across.
    assert crowd_tiles(2850, 641) == [(0, 0, 1710, 641), (1140, 0, 2850, 641)]
    assert crowd_tiles(300, 100) == [(0, 0, 180, 100), (120, 0, 300, 100)]


def test_tile_persons_cut_by_an_inner_tile_edge_are_left_to_other_tiles():
    # The tile (256, 0, 640, 384) of a 640 x 480 image: its left and bottom edges lie inside the image, its
    # top and right ones are the image's. Margin 0.01 x 384 = 3.84 px; boxes in tile pixels.
    boxes = np.array(
        [
            [3, 10, 100, 200],  # reaches the left edge: cut
            [5, 10, 100, 200],  # clear of it
            [100, 10, 200, 380],  # reaches the bottom edge (383 - 3.84): cut
            [300, 10, 383, 200],  # at the right edge, the image's own: whole
            [100, 0, 200, 200],  # at the top edge, the image's own: whole
        ],
        float,
    )
    np.testing.assert_array_equal(
        cut_by_tile_edge(boxes, (256, 0, 640, 384), 640, 480), [True, False, True, False, False]
    )


def test_keypoint_similarity_is_cocos_oks_over_the_common_keypoints():
    a = np.zeros((17, 3))
    a[:3] = [[50, 20, 0.9], [45, 15, 0.9], [55, 15, 0.9]]  # nose and eyes seen
    b = a.copy()
    b[:3, 0] += 5  # 5 px off
    b[5] = [10, 10, 0.9]  # seen in b only: not compared
    box = np.array([0, 0, 100, 100])  # area 1e4
    # exp(-d^2 / (2 area (2 sigma)^2)): nose sigma .026 -> exp(-25 / 54.08) = 0.62985, eyes .025 -> exp(-0.5).
    assert keypoint_similarity(a, b, box) == pytest.approx((0.62985 + 2 * 0.60653) / 3, abs=1e-4)
    assert keypoint_similarity(a, a, box) == pytest.approx(1.0)
    b[2, 2] = 0.1  # two keypoints in common: no evidence either way
    assert keypoint_similarity(a, b, box) == 0.0


def _persons_output(centres_x, y=0.5, half=(0.02, 0.05), scores=None) -> np.ndarray:
    """A MultiPose output (1, 6, 56): a small person (all keypoints at its centre) at each normalised x."""
    out = np.zeros((1, 6, 56), np.float32)
    for i, x in enumerate(centres_x):
        out[0, i, :51] = np.tile([y, x, 0.9], 17)
        out[0, i, 51:55] = [y - half[1], x - half[0], y + half[1], x + half[0]]
        out[0, i, 55] = 0.5 + 0.05 * i if scores is None else scores[i]
    return out


def test_a_run_that_returns_six_people_is_run_again_on_the_crowd_tiles():
    xs = [0.1 + 0.16 * i for i in range(6)]
    det = _multipose_with(_persons_output(xs))
    det.max_persons = 40
    p = det.detect(np.zeros((480, 640, 3), np.uint8))
    # The whole image, then the 4 tiles of 384 x 384 (resized to 256 x 256).
    assert [x.shape[1:3] for x in det.session.inputs] == [(192, 256)] + [(256, 256)] * 4
    assert len(p.boxes) == 30  # 6 + 6 in each tile, all apart
    # The bottom-right tile (256, 96) .. (640, 480): its first person at x = 0.1 x 384 - 0.5 + 256 and
    # y = 0.5 x 384 - 0.5 + 96.
    assert np.abs(p.keypoints[:, 0, :2] - [293.9, 287.5]).max(axis=1).min() < 1e-3
    five = _multipose_with(_persons_output(xs[:5]))  # not saturated: one run
    five.detect(np.zeros((480, 640, 3), np.uint8))
    assert len(five.session.inputs) == 1
    off = _multipose_with(_persons_output(xs), tile_crowds=False)
    off.detect(np.zeros((480, 640, 3), np.uint8))
    assert len(off.session.inputs) == 1


def test_small_people_call_for_the_tiles_where_the_tiles_add_detail():
    def people(heights) -> PoseSet:
        boxes = np.array([[100.0, 100.0, 150.0, 100.0 + h] for h in heights]).reshape(-1, 4)
        return PoseSet(boxes, np.full(len(boxes), 0.5), np.zeros((len(boxes), 17, 3)))

    det = _multipose_with(np.zeros((1, 6, 56), np.float32), sides=(256, 512), small_person=0.2)
    # 1920 x 960: a person shorter than 0.2 x 1920 = 384 px in either run calls for the tiles.
    assert det._wants_tiles([people([500]), people([383])], 1920, 960)
    assert not det._wants_tiles([people([500, 385]), people([400])], 1920, 960)
    assert not det._wants_tiles([people([]), people([])], 1920, 960)  # nobody: nothing says people are small
    # 800 x 600: a tile (480 px) holds fewer pixels than the 512 run sees: the tiles add nothing.
    assert not det._wants_tiles([people([50]), people([50])], 800, 600)
    assert det._wants_tiles([people([50]), people([50])], 900, 600)  # 540 px tiles
    # Saturated runs call for them whatever the sizes; small_person 0 leaves only that.
    assert det._wants_tiles([people([700] * 6), people([])], 800, 600)
    det.small_person = 0.0
    assert not det._wants_tiles([people([50]), people([50])], 1920, 960)


def test_a_run_with_a_small_person_is_run_again_on_the_tiles():
    # 1280 x 720 at side 256 (256 x 144, padded to 160); tiles 768 x 720 (2 across, the height whole), each
    # resized to 256 x 240 (padded to 256).
    small = _multipose_with(_persons_output([0.3]), small_person=0.2)  # 0.1 x 720 = 72 px < 256 px tall
    p = small.detect(np.zeros((720, 1280, 3), np.uint8))
    assert [x.shape[1:3] for x in small.session.inputs] == [(160, 256)] + [(256, 256)] * 2
    # The tiles' copies of the person at x = 0.3 x 768 - 0.5 (+ 512), the whole image's at 0.3 x 1280 - 0.5.
    assert sorted(np.round(p.keypoints[:, 0, 0], 1)) == [229.9, 383.5, 741.9]
    tall = _multipose_with(_persons_output([0.3], half=(0.1, 0.45)), small_person=0.2)  # 648 px tall
    tall.detect(np.zeros((720, 1280, 3), np.uint8))
    assert len(tall.session.inputs) == 1


def test_a_saturated_tile_is_tiled_again_and_its_people_come_back_in_image_pixels():
    xs = [0.1 + 0.16 * i for i in range(6)]
    det = _multipose_with(_persons_output(xs), tile_depth=2)
    det.max_persons = 200
    p = det.detect(np.zeros((480, 640, 3), np.uint8))
    # The whole image; each of its 4 tiles (384 x 384) returns 6, so each is run and then tiled again into
    # 4 squares of 230 x 230 (60 % of 384) at (0|154, 0|154) in the tile: 1 + 4 x (1 + 4) runs.
    assert [x.shape[1:3] for x in det.session.inputs] == [(192, 256)] + [(256, 256)] * 20
    # The bottom-right tile (256, 96)'s bottom-right square (154, 154): its first person at
    # x = 0.1 x 230 - 0.5 + 154 + 256, y = 0.5 x 230 - 0.5 + 154 + 96.
    assert np.abs(p.keypoints[:, 0, :2] - [432.5, 364.5]).max(axis=1).min() < 1e-3

    class FirstRunSaturated(FakeSession):
        def run(self, names, feed):
            full = super().run(names, feed)
            return full if len(self.inputs) == 1 else [full[0][:, :5]]

    five = _multipose_with(_persons_output(xs), tile_depth=2)
    five.session = FirstRunSaturated(_persons_output(xs))
    five.detect(np.zeros((480, 640, 3), np.uint8))
    assert len(five.session.inputs) == 5  # tiles that return 5 are not tiled again


def test_a_person_found_again_as_a_part_of_a_better_one_is_dropped():
    out = np.zeros((1, 6, 56), np.float32)
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = np.linspace(0.2, 0.8, 17)  # y: head to ankles
    kp[:, 1] = 0.5 + 0.1 * np.sin(np.arange(17))  # x
    kp[:, 2] = 0.9
    out[0, 0, :51] = kp.reshape(-1)
    out[0, 0, 51:56] = [0.2, 0.4, 0.8, 0.6, 0.8]
    part = kp.copy()
    part[6:, 2] = 0.0  # the same person's head and shoulders only, a little off
    part[:, 1] += 0.004
    out[0, 1, :51] = part.reshape(-1)
    out[0, 1, 51:56] = [0.2, 0.4, 0.4, 0.6, 0.3]
    det = _multipose_with(out)
    p = det.detect(np.zeros((256, 256, 3), np.uint8))
    assert len(p.boxes) == 1 and p.scores[0] == pytest.approx(0.8)
    out[0, 1, 1::3][:6] += 0.2  # the other person's keypoints elsewhere: a second person
    assert len(_multipose_with(out).detect(np.zeros((256, 256, 3), np.uint8)).boxes) == 2


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


def test_real_crowd_beyond_six_people_is_found_on_the_tiles(tune_crowd):
    # A real photo with 3 labelled people (AI Challenger, the benchmark's tune set) repeated 2 x 2: a crowd of
    # 12, more than one MultiPose run returns.
    from whmr_core.evaluation_real import box_iou

    crowd, truth = tune_crowd(2)
    assert len(truth) == 12

    def found(det: MultiPoseDetector) -> tuple[int, int]:
        boxes = det.detect(crowd).boxes
        return sum(max(box_iou(t, b) for b in boxes) >= 0.5 for t in truth), len(boxes)

    det = MultiPoseDetector(sides=(256, 512), max_persons=32)
    hits, n = found(det)
    assert hits == 12 and n <= 14  # everyone, and at most a spectator or two more
    det.tile_crowds = False
    assert found(det)[0] <= 7


def test_dark_images_are_brightened_for_the_pose_models_and_bright_ones_left_alone():
    from whmr_core.runtime.movenet import BRIGHT_TARGET, exposure_normalised

    bright = np.full((40, 40, 3), 200, np.uint8)
    assert exposure_normalised(bright) is bright
    dark = np.zeros((40, 40, 3), np.uint8)
    dark[:20] = 4  # a low-light frame: values 0-4
    out = exposure_normalised(dark)
    assert out[0, 0, 0] == BRIGHT_TARGET and out[39, 0, 0] == 0


def test_a_lamps_saturated_core_does_not_make_a_dark_frame_bright():
    from whmr_core.runtime.movenet import BRIGHT_TARGET, bright_end, exposure_normalised

    night = np.zeros((80, 80, 3), np.uint8)
    night[:40] = 4  # a low-light scene: values 0-4
    night[:12, -12:] = 255  # a lamp, clipped: 2 % of the frame, so all values' 99.5th percentile is 255
    assert np.percentile(night[::4, ::4], 99.5) == 255
    assert bright_end(night) == 4
    out = exposure_normalised(night)
    assert out[20, 0, 0] == BRIGHT_TARGET and out[79, 0, 0] == 0 and out[0, 79, 0] == 255
    day = np.full((80, 80, 3), 180, np.uint8)
    day[:40] = 255  # a bright frame with a blown-out sky stays as it is
    assert exposure_normalised(day) is day
    white = np.full((8, 8, 3), 255, np.uint8)
    assert bright_end(white) == 255 and exposure_normalised(white) is white
    rng = np.random.default_rng(0)  # the histogram's percentile is numpy's on the unsaturated values
    for _ in range(50):
        h, w = rng.integers(1, 200, 2)
        frame = (rng.integers(0, 256, (h, w, 3)) // rng.integers(1, 60)).astype(np.uint8)
        frame[: h // 3] = rng.choice([frame[0, 0, 0], 255])
        sub = frame[::4, ::4]
        below = sub[sub < 250]
        assert bright_end(frame) == pytest.approx(np.percentile(below, 99.5) if below.size else 255.0)


def test_crops_of_dark_frames_average_the_pixels_each_crop_pixel_covers():
    from whmr_core.runtime.movenet import _square_crop, exposure_normalised

    rng = np.random.default_rng(0)
    dark = rng.integers(0, 5, (1024, 1024, 3)).astype(np.uint8)  # a low-light frame: noise of 0-4 levels
    bright = (dark * 50).astype(np.uint8)
    # A box whose crop (side 1.25 x 819.2 = 1024 around 511.5) is the whole frame, pixel edges on pixel edges:
    # each of Thunder's 256 x 256 crop pixels covers a 4 x 4 block.
    box = np.array([[101.9, 101.9, 921.1, 921.1]])
    th = ThunderKeypoints.__new__(ThunderKeypoints)
    th.session, th.input_name = FakeSession(np.zeros((1, 1, 17, 3), np.float32)), "input"
    th(dark, box)
    blocks = exposure_normalised(dark).reshape(256, 4, 256, 4, 3).astype(np.float64).mean((1, 3))
    fed = th.session.inputs[0][0]
    assert np.abs(fed - blocks).max() <= 0.5 + 1e-9  # each block's mean, rounded
    bilinear = _square_crop(exposure_normalised(dark), box[0], 256)[0]
    # The gained noise averaged out: 16 pixels a crop pixel, not bilinear's 2 x 2 (here at their middle).
    assert fed.std() < 0.6 * bilinear.std()
    th(bright, box)  # a bright frame's crop is the bilinear one, as before
    np.testing.assert_array_equal(th.session.inputs[1][0], _square_crop(bright, box[0], 256)[0])


def test_an_averaged_crop_lies_where_the_bilinear_crop_does():
    from whmr_core.runtime.movenet import _square_crop

    yy, xx = np.mgrid[:900, :1200]
    ramp = np.repeat((0.2 * xx + 0.05 * yy)[..., None], 3, axis=2).astype(np.float32)
    box = np.array([333.3, 177.7, 777.7, 655.5])  # crop side 600 at 192 px: shrinks 3.1x, off the grid
    a, corner, side = _square_crop(ramp, box, 192, average=True)
    b, corner_b, side_b = _square_crop(ramp, box, 192)
    np.testing.assert_array_equal(corner, corner_b)
    assert side == side_b
    # A linear ramp's area mean is its value at the footprint's centre, which is where bilinear samples it
    # (to warpAffine's 1/32-pixel steps; half an image pixel off would be 0.1 here).
    np.testing.assert_allclose(a[4:-4, 4:-4], b[4:-4, 4:-4], atol=0.02)


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


def test_blazepose_2d_landmarks_land_on_a_labelled_person():
    # The benchmark's tune COCO photo (one labelled person): BlazePose alone on the labelled box puts its 2D
    # landmarks on the labelled limb points (the crop's pixels mapped back to the image's).
    from whmr_core.evaluation_real import LIMB_POINTS, load_labels
    from whmr_core.media.image import read_image
    from whmr_core.runtime.movenet import BlazePoseWorld

    labels = Path(__file__).parent / "data" / "real_images" / "labels.json"
    images = load_labels(labels, check_images=False)
    (img,) = [im for im in images if im.file.endswith("coco_000000000785.jpg")]
    person = img.people[0]
    world, scores, image_points = BlazePoseWorld().landmarks(read_image(labels.parent / img.file), person.box)
    assert image_points.shape == (1, 17, 3) and world.shape == (1, 17, 3)
    assert image_points[0, :, 2] == pytest.approx(scores[0])
    limbs = [k for k in LIMB_POINTS if person.keypoints[k, 2] > 0]
    size = max(person.box[2] - person.box[0], person.box[3] - person.box[1])
    miss = np.linalg.norm(image_points[0, limbs, :2] - person.keypoints[limbs, :2], axis=1) / size
    assert np.median(miss) < 0.05 and (miss < 0.1).mean() >= 0.9, miss


def test_crop_to_camera_turns_the_crop_axes_onto_the_ray():
    """A crop model's 3D points are in the axes of a camera looking along the ray through the crop's centre:
    at the principal point nothing turns; 25 degrees to the right the crop's optical axis becomes that ray,
    its up stays up (the smallest rotation), and lengths are kept. Each person uses its own K."""
    from whmr_core.runtime.movenet import crop_to_camera

    K = np.array([[800.0, 0.0, 320.0], [0.0, 800.0, 240.0], [0.0, 0.0, 1.0]])
    axes = np.eye(3)[None].repeat(2, 0)  # rows: the crop's x, y and z axes
    u = 320.0 + 800.0 * np.tan(np.radians(25.0))
    boxes = np.array([[300.0, 200.0, 340.0, 280.0], [u - 20.0, 200.0, u + 20.0, 280.0]])
    out = crop_to_camera(axes, boxes, K)
    assert out[0] == pytest.approx(np.eye(3))
    s, c = np.sin(np.radians(25.0)), np.cos(np.radians(25.0))
    assert out[1, 2] == pytest.approx([s, 0.0, c])  # the crop's optical axis: the ray to the person
    assert out[1, 1] == pytest.approx([0.0, 1.0, 0.0])  # the crop's down stays the camera's down
    assert out[1, 0] == pytest.approx([c, 0.0, -s])
    K2 = K.copy()
    K2[0, 2] = u  # the same box on a camera centred on it: no turn
    assert crop_to_camera(axes, boxes, np.stack([K, K2]))[1] == pytest.approx(np.eye(3))

"""Pipeline: metric placement with K, gravity-frame conventions, gravity at stamps, tracking, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from whmr_fakes import (
    TEMPLATE_JOINTS,
    TOPOLOGY,
    FakeEngine,
    SeenBody,
    camera_rotation_for,
    rot_x,
    rot_y,
    rot_z,
)

from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.gravity import GravityEstimator
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.frames import Detections, Frame, InputError
from whmr_core.runtime.pipeline import Pipeline

W, H = 640, 480
K = np.array([[500.0, 0.0, 300.0], [0.0, 500.0, 260.0], [0.0, 0.0, 1.0]])
IMAGE = np.zeros((H, W, 3), dtype=np.uint8)


def _engine() -> FakeEngine:
    return FakeEngine((W, H), focal=500.0, principal_point=(300.0, 260.0))


# The fake engine's images are blank: no detector runs on them (boxes come with the frames, or none).
def _run(engine, frame, config=None):
    return Pipeline(engine, TOPOLOGY, config or PipelineConfig(detector="none")).process(frame)


def test_metric_placement_with_K():
    engine = _engine()
    body = SeenBody(np.array([0.3, 0.2, 4.0]))
    engine.bodies = [body]
    res = _run(engine, Frame(IMAGE, 1, K=K, detections=Detections.of([engine.box_of(body)])))
    (p,) = res.persons
    np.testing.assert_allclose(p.translation_camera, body.position, atol=1e-4)
    np.testing.assert_allclose(p.joints_camera[0], body.position, atol=1e-4)
    assert p.translation_is_metric and p.focal_px == 500.0
    np.testing.assert_allclose(p.principal_point, (300, 260))
    # The head projects where the camera would see it.
    head = body.position + TEMPLATE_JOINTS[1]
    np.testing.assert_allclose(p.joints_2d[1], engine.project(head), atol=1e-2)


def test_without_K_translation_is_the_networks_and_consistent_with_eq3():
    engine = _engine()
    body = SeenBody(np.array([0.3, 0.2, 4.0]))
    engine.bodies = [body]
    res = _run(engine, Frame(IMAGE, 1, detections=Detections.of([engine.box_of(body)])))
    (p,) = res.persons
    assert not p.translation_is_metric
    assert p.translation_camera[2] == pytest.approx(engine.relative_depth)
    s = float(engine.calls[0]["glob_info"][0, 2])  # b / diagonal
    out_s = 2 * 500.0 / (4.0 * s * math.hypot(W, H))
    # eq. 3 in pixels: f = s b t_z / 2, with the focal head's value given in diagonal units.
    assert p.focal_px == pytest.approx(out_s * s * math.hypot(W, H) * engine.relative_depth / 2, rel=1e-4)
    # The pelvis projects on the box centre with the predicted focal and the image centre (eq. 2).
    np.testing.assert_allclose(p.joints_2d[0], p.bbox_center, atol=0.05)


def _scene_in_gravity(r_c: np.ndarray, p_g: np.ndarray, r_b: np.ndarray) -> SeenBody:
    """What a camera with rotation R_c sees of a body at p_g with world root r_b (both in G)."""
    return SeenBody(r_c @ p_g, r_c @ r_b)


def test_level_camera_gives_an_upright_body_with_z_up():
    engine = _engine()
    body = SeenBody(np.array([0.5, 1.0, 3.0]))
    engine.bodies = [body]
    res = _run(engine, Frame(IMAGE, 1, K=K, gravity=np.array([0.0, 9.81, 0.0]),
                             detections=Detections.of([engine.box_of(body)])))  # fmt: skip
    (p,) = res.persons
    np.testing.assert_allclose(res.camera_rotation, np.eye(3), atol=1e-12)
    pelvis, head, feet = p.joints_gravity
    # x forward = the camera's depth, y left = -x_C, z up = -y_C.
    np.testing.assert_allclose(pelvis, [3.0, -0.5, -1.0], atol=1e-4)
    assert head[2] - pelvis[2] == pytest.approx(0.7, abs=1e-4)
    assert feet[2] - pelvis[2] == pytest.approx(-0.9, abs=1e-4)
    np.testing.assert_allclose(p.root_orientation_gravity, GRAVITY_FROM_G, atol=1e-5)
    # TF consistency: the gravity frame's rotation in the camera frame maps the gravity-frame mesh back.
    np.testing.assert_allclose(p.vertices_gravity @ res.camera_from_gravity.T, p.vertices_camera, atol=1e-4)


@pytest.mark.parametrize(
    "gravity_cam",
    [
        (0.0, math.cos(0.35), math.sin(0.35)),  # pitched down 20 degrees
        (math.sin(0.2), math.cos(0.2), 0.0),  # rolled
        (0.1, 0.95, -0.15),  # pitched up and rolled
    ],
)
def test_tilted_camera_gives_the_same_world_body(gravity_cam):
    p_g, r_b = np.array([0.4, 0.9, 3.5]), rot_y(0.6)  # a body turned 0.6 rad about the vertical
    results = []
    for g in [(0.0, 1.0, 0.0), gravity_cam]:
        engine = _engine()
        r_c = camera_rotation_for(np.array(g))
        body = _scene_in_gravity(r_c, p_g, r_b)
        engine.bodies = [body]
        res = _run(engine, Frame(IMAGE, 1, K=K, gravity=np.array(g),
                                 detections=Detections.of([engine.box_of(body)])))  # fmt: skip
        np.testing.assert_allclose(res.camera_rotation, r_c, atol=1e-9)
        results.append(res.persons[0])
    level, tilted = results
    np.testing.assert_allclose(tilted.joints_gravity, level.joints_gravity, atol=1e-4)
    np.testing.assert_allclose(tilted.vertices_gravity, level.vertices_gravity, atol=1e-4)
    np.testing.assert_allclose(tilted.root_orientation_gravity, level.root_orientation_gravity, atol=1e-4)
    expected = (TEMPLATE_JOINTS @ r_b.T + p_g) @ GRAVITY_FROM_G.T
    np.testing.assert_allclose(tilted.joints_gravity, expected, atol=1e-4)
    assert tilted.joints_gravity[1, 2] > tilted.joints_gravity[0, 2]  # head above pelvis
    # The camera-frame view differs, of course.
    assert np.abs(tilted.joints_camera - level.joints_camera).max() > 0.05


def test_gravity_interpolated_at_the_image_stamp_from_a_200hz_imu():
    # IMU = camera optical frame; the camera pitches down at 1 rad/s; orientation at 200 Hz (REP 145).
    world_from_level_cam = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

    def world_from_cam(t: float) -> np.ndarray:
        return world_from_level_cam @ rot_x(-t)  # rotating about x_C by -t tips z_C (forward) down

    est = GravityEstimator(np.eye(3))
    from whmr_core.rotations import matrix_to_quaternion

    for k in range(0, 41):
        t = k * 0.005
        import torch

        q = matrix_to_quaternion(torch.as_tensor(world_from_cam(t)))
        est.add_imu(int(t * 1e9), orientation_xyzw=np.roll(q.numpy(), -1))
    stamp_s = 0.1234  # between two readings
    g = est.gravity_at(int(stamp_s * 1e9))
    assert g.source == "imu_orientation" and not g.reason
    truth_g = world_from_cam(stamp_s).T @ np.array([0.0, 0.0, -1.0])
    engine = _engine()
    r_c = camera_rotation_for(truth_g)
    engine.bodies = [_scene_in_gravity(r_c, np.array([0.0, 1.0, 3.0]), np.eye(3))]
    res = _run(engine, Frame(IMAGE, int(stamp_s * 1e9), K=K, gravity=g))
    assert res.gravity_source == "imu_orientation"
    np.testing.assert_allclose(res.camera_rotation, r_c, atol=1e-6)
    # Pitched 0.1234 rad down: the world body stands upright anyway.
    np.testing.assert_allclose(res.persons[0].joints_gravity[0], [3.0, 0.0, -1.0], atol=1e-3)
    assert math.degrees(math.acos(truth_g[1])) == pytest.approx(math.degrees(stamp_s), abs=1e-6)


def test_no_gravity_assumes_a_level_camera_and_says_so():
    engine = _engine()
    engine.bodies = [SeenBody(np.array([0.0, 0.0, 3.0]))]
    res = _run(engine, Frame(IMAGE, 1))
    assert res.gravity_source == "parameter" and "level camera" in res.gravity_reason
    assert res.box_source == "whole_image" and len(res.persons) == 1


def test_track_ids_stable_through_crossing_detections():
    engine = _engine()
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none", track_min_hits=2))
    a, b = SeenBody(np.array([-1.0, 0.0, 4.0])), SeenBody(np.array([1.0, 0.2, 5.0]))
    engine.bodies = [a, b]
    ids: dict[int, set[int]] = {0: set(), 1: set()}
    rng = np.random.default_rng(0)
    for k in range(20):
        a.position[0] += 0.02
        b.position[0] -= 0.02
        order = [0, 1] if rng.random() < 0.5 else [1, 0]
        boxes = [engine.box_of([a, b][i]) for i in order]
        res = pipe.process(Frame(IMAGE, k * 33_000_000, K=K, detections=Detections.of(boxes, [0.9, 0.8])))
        if k == 0:
            assert not res.persons  # tentative tracks are not published (min_hits=2)
            continue
        assert len(res.persons) == 2
        for p in res.persons:
            who = int(np.argmin([np.linalg.norm(p.translation_camera - x.position) for x in (a, b)]))
            ids[who].add(p.track_id)
    assert len(ids[0]) == 1 and len(ids[1]) == 1 and ids[0] != ids[1]


def test_tracked_boxes_follow_the_body_without_a_detector():
    engine = _engine()
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none"))
    body = SeenBody(np.array([0.0, 0.3, 4.0]))
    engine.bodies = [body]
    seen = []
    for k in range(10):
        body.position[0] += 0.05
        res = pipe.process(Frame(IMAGE, k * 33_000_000, K=K))
        seen.append((res.box_source, res.persons[0].track_id))
        np.testing.assert_allclose(res.persons[0].translation_camera, body.position, atol=1e-4)
    assert seen[0][0] == "whole_image" and {s for s, _ in seen[1:]} == {"tracked"}
    assert len({i for _, i in seen}) == 1
    # The tracked box is the projected mesh: centred near the pelvis, not the whole image.
    assert engine.calls[-1]["glob_info"][0, 2] < 0.6


def test_smoothing_reduces_jitter():
    def jitter_std(smoothing: bool) -> float:
        engine = _engine()
        pipe = Pipeline(
            engine,
            TOPOLOGY,
            PipelineConfig(detector="none", smoothing=True) if smoothing else PipelineConfig(detector="none"),
        )
        rng = np.random.default_rng(1)
        xs = []
        for k in range(60):
            body = SeenBody(np.array([0.0, 0.0, 4.0]) + rng.normal(0, 0.03, 3))
            engine.bodies = [body]
            det = Detections.of([engine.box_of(SeenBody(np.array([0.0, 0.0, 4.0])))])
            res = pipe.process(Frame(IMAGE, k * 33_000_000, K=K, detections=det))
            xs.append(res.persons[0].translation_camera)
        return float(np.std(np.array(xs)[10:], axis=0).mean())

    assert jitter_std(True) < 0.5 * jitter_std(False)


def test_bad_detections_are_dropped_with_reasons():
    engine = _engine()
    body = SeenBody(np.array([0.0, 0.0, 4.0]))
    engine.bodies = [body]
    det = Detections.of(
        [engine.box_of(body), [2000, 2000, 2100, 2100], [10, 10, 12, 12], [1, 1, 50, 50]],
        [0.9, 0.9, 0.9, 0.1],  # the last one is below the score threshold: ignored, not "dropped"
    )
    res = _run(engine, Frame(IMAGE, 1, K=K, detections=det))
    assert len(res.persons) == 1
    reasons = [d.reason for d in res.dropped]
    assert any("outside the image" in r for r in reasons) and any("too small" in r for r in reasons)
    assert len(reasons) == 2


def test_max_persons_keeps_the_best_scores():
    engine = _engine()
    bodies = [SeenBody(np.array([x, 0.0, 5.0])) for x in (-1.5, 0.0, 1.5)]
    engine.bodies = bodies
    det = Detections.of([engine.box_of(b, 30) for b in bodies], [0.5, 0.9, 0.7])
    res = _run(engine, Frame(IMAGE, 1, K=K, detections=det), PipelineConfig(detector="none", max_persons=2))
    assert sorted(p.score for p in res.persons) == [0.7, 0.9]
    assert [d.reason for d in res.dropped] == ["more than max_persons=2"]


@pytest.mark.parametrize("output", ["world_vertices", "translation", "cam_root", "focal"])
def test_non_finite_network_output_drops_the_person(output):
    engine = _engine()
    engine.bodies = [SeenBody(np.array([0.0, 0.0, 4.0]))]
    engine.poison = output
    res = _run(engine, Frame(IMAGE, 1))
    assert not res.persons and "non-finite" in res.dropped[0].reason


def test_body_behind_or_at_the_camera_is_dropped():
    engine = _engine()
    engine.relative_depth = -2.0  # network says the body is behind the camera
    engine.bodies = [SeenBody(np.array([0.0, 0.0, 4.0]))]
    res = _run(engine, Frame(IMAGE, 1))
    assert not res.persons and "not physical" in res.dropped[0].reason


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (Frame(np.zeros((H, W, 3), np.float32), 1), "image"),
        (Frame(np.zeros((H, W, 4), np.uint8), 1), "image"),
        (Frame(IMAGE, 1, K=np.diag([0.0, 500.0, 1.0])), "focal"),
        (Frame(IMAGE, 1, K=np.full((3, 3), np.nan)), "finite"),
        (Frame(IMAGE, 1, gravity=np.zeros(3)), "gravity"),
        (Frame(IMAGE, 1, camera_rotation=rot_z(0.1) * 2), "camera_rotation"),
    ],
)
def test_unusable_frames_raise_input_error(frame, match):
    engine = _engine()
    engine.bodies = [SeenBody(np.array([0.0, 0.0, 4.0]))]
    with pytest.raises(InputError, match=match):
        _run(engine, frame)


def test_stamp_going_back_is_an_input_error_until_reset():
    engine = _engine()
    engine.bodies = [SeenBody(np.array([0.0, 0.0, 4.0]))]
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none"))
    pipe.process(Frame(IMAGE, 10))
    with pytest.raises(InputError, match="before"):
        pipe.process(Frame(IMAGE, 5))
    pipe.reset()
    assert pipe.process(Frame(IMAGE, 5)).persons


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="box_scal"):
        PipelineConfig.from_mapping({"box_scal": 1.0})
    assert PipelineConfig.from_mapping({"max_persons": 3}).max_persons == 3


def test_more_persons_than_the_engine_batch_run_in_chunks():
    engine = _engine()
    engine.max_batch = 2
    bodies = [SeenBody(np.array([x, 0.0, 6.0])) for x in (-2.0, -0.7, 0.7, 2.0, 3.2)]
    engine.bodies = bodies
    det = Detections.of([engine.box_of(b, 25) for b in bodies], [0.9] * 5)
    res = _run(engine, Frame(IMAGE, 1, K=K, detections=det))
    assert len(engine.calls) == 3 and [len(c["crops"]) for c in engine.calls] == [2, 2, 1]
    got = sorted(p.translation_camera[0] for p in res.persons)
    np.testing.assert_allclose(got, [-2.0, -0.7, 0.7, 2.0, 3.2], atol=1e-4)


def test_a_detection_run_ahead_is_the_detectors_own():
    """``process(frame, detect(image))``: the built-in detector's result computed beforehand (a host runs it
    on another thread) gives the same persons as ``process(frame)`` running it, without running it again."""
    engine = _engine()
    body = SeenBody(np.array([0.3, 0.2, 4.0]))
    engine.bodies = [body]
    calls: list[int] = []

    def detector(image):
        calls.append(1)
        return np.array([engine.box_of(body)]), np.array([0.9])

    def pipeline():
        pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none", track_min_hits=1))
        pipe.box_policy.detector = detector
        return pipe

    inline = pipeline().process(Frame(IMAGE, 1, K=K))
    assert len(calls) == 1
    ahead = pipeline()
    detected = ahead.detect(IMAGE)
    res = ahead.process(Frame(IMAGE, 1, K=K), detected)
    assert len(calls) == 2 and res.box_source == inline.box_source == "detector"
    (p,), (q,) = res.persons, inline.persons
    np.testing.assert_array_equal(p.box_xyxy, q.box_xyxy)
    np.testing.assert_array_equal(p.translation_camera, q.translation_camera)
    assert Pipeline(engine, TOPOLOGY, PipelineConfig(detector="none")).detect(IMAGE) is None
    with pytest.raises(InputError):
        ahead.detect(np.zeros((4, 4, 7), np.uint8))


def _denormalised(crops: np.ndarray) -> np.ndarray:
    """Network crops (N, 3, H, W) back on the 0-255 scale, the first one (H, W, 3)."""
    from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD

    return (np.moveaxis(crops[0], 0, -1) * IMAGENET_STD + IMAGENET_MEAN) * 255.0


def _network_pixels(engine) -> np.ndarray:
    """The crop the network was given in its last call, back on the 0-255 scale (H, W, 3)."""
    return _denormalised(engine.calls[-1]["crops"])


def test_a_dark_frame_is_brightened_for_the_network_and_a_bright_one_is_not():
    # A low-light frame: values 0-4 of 255 (a low-light data set's frames look like this). The network,
    # trained on well-exposed people, is given it brightened (its bright end at BRIGHT_TARGET), as the
    # pose models are, each crop pixel the mean of the frame's pixels it covers (the gained noise averaged
    # out, as Thunder's crops); a normally exposed frame reaches it unchanged, bilinear as in training.
    from whmr_core.crops import extract_crops, square_boxes
    from whmr_core.runtime.movenet import BRIGHT_TARGET, exposure_normalised

    rng = np.random.default_rng(0)
    dark = rng.integers(0, 5, size=(H, W, 3), dtype=np.uint8)  # a flat scene at level 2, noisy
    engine = _engine()
    body = SeenBody(np.array([0.0, 0.0, 4.0]))
    engine.bodies = [body]
    box = engine.box_of(body)
    _run(engine, Frame(dark, 1, K=K, detections=Detections.of([box])))
    seen = _network_pixels(engine)
    centres, sides = square_boxes(np.array([box]), engine.crop_hw, PipelineConfig().box_scale)
    lit = exposure_normalised(dark)
    np.testing.assert_allclose(
        seen, _denormalised(extract_crops(lit, centres, sides, engine.crop_hw, average=True)), atol=1e-3
    )
    gain = BRIGHT_TARGET / 4.0
    assert seen.mean() == pytest.approx(gain * dark.mean(), rel=0.03)  # brightened: ~115, not ~2
    sampled = _denormalised(extract_crops(lit, centres, sides, engine.crop_hw))  # bilinear: 2 x 2 pixels
    assert seen.std() < 0.3 * sampled.std()  # ~100 pixels a crop pixel: the noise averaged out

    bright = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    _run(engine, Frame(bright, 2, K=K, detections=Detections.of([box])))
    centres, sides = square_boxes(np.array([box]), engine.crop_hw, PipelineConfig().box_scale)
    plain = extract_crops(bright, centres, sides, engine.crop_hw)[0]
    np.testing.assert_array_equal(engine.calls[-1]["crops"][0], plain)

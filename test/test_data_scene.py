"""Cameras, pose sampler and scene sampler: exact geometry, limits, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from whmr_core.data.cameras import CameraConfig, camera_rotation, sample_camera
from whmr_core.data.poses import (
    FAMILIES,
    JOINT_LIMITS_DEG,
    PoseConfig,
    body_frame_forward,
    limb_torso_violations,
    sample_body,
    sample_pose,
    within_limits,
)
from whmr_core.data.scene import JointRegressors, SceneConfig, sample_scene, sample_scene_at, scene_rng
from whmr_core.geometry import camera_rotation_from_gravity, perspective_project


@pytest.fixture(scope="module")
def regs(body_assets) -> JointRegressors:
    return JointRegressors.from_assets(body_assets)


@pytest.fixture(scope="module")
def scenes(body, regs):
    multi = SceneConfig(num_people=(1, 3))
    return [sample_scene_at(7, i, body, regs, multi if i % 3 == 0 else None) for i in range(24)]


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def test_camera_ranges_and_gravity():
    rng = np.random.default_rng(0)
    cfg = CameraConfig()
    portrait = 0
    for _ in range(300):
        cam = sample_camera(rng, cfg)
        w, h = cam.image_wh
        portrait += h > w
        assert 320 <= max(w, h) <= 640 and w % 2 == 0 and h % 2 == 0
        assert 10 - 1e-6 <= cam.hfov_deg <= 100 + 1e-6
        assert abs(cam.K[0, 2] - w / 2) <= 0.05 * w + 1e-9 and abs(cam.K[1, 2] - h / 2) <= 0.05 * h + 1e-9
        assert np.allclose(cam.R_c @ cam.R_c.T, np.eye(3), atol=1e-12) and np.linalg.det(cam.R_c) > 0
        # Pitch is the angle of the optical axis below the horizon; roll the tilt of the image x axis.
        assert math.degrees(math.asin(cam.gravity_cam[2])) == pytest.approx(cam.pitch_deg, abs=1e-9)
        r_from_g = camera_rotation_from_gravity(torch.as_tensor(cam.gravity_cam)[None])[0].numpy()
        assert np.allclose(r_from_g, cam.R_c, atol=1e-9)
    assert 0 < portrait < 300


def test_camera_rotation_signs():
    # Looking down: gravity has a forward component; positive roll turns a level horizon counter-clockwise.
    assert camera_rotation(30, 0)[:, 1][2] > 0
    r = camera_rotation(0, 10)
    horizon_in_image = r @ np.array([1.0, 0.0, 0.0])
    assert horizon_in_image[1] < 0  # going right, the horizon rises (y down)
    assert np.allclose(camera_rotation(0, 0), np.eye(3))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_pose_sampler_within_limits(family):
    rng = np.random.default_rng(1)
    for _ in range(40):
        pose = sample_pose(rng, family)
        assert pose.shape == (24, 3)
        assert within_limits(pose).all()


def test_limits_catch_out_of_range_and_mirror():
    pose = np.zeros((24, 3))
    pose[4, 0] = math.radians(-20)  # knee bent backwards
    assert not within_limits(pose)[4, 0]
    # Right-side limits mirror the left ones (y, z negated).
    assert np.array_equal(JOINT_LIMITS_DEG[17, 1], -JOINT_LIMITS_DEG[16, 1][::-1])
    assert np.array_equal(JOINT_LIMITS_DEG[17, 0], JOINT_LIMITS_DEG[16, 0])


def test_family_shapes_are_what_they_say(body):
    rng = np.random.default_rng(2)
    for _ in range(10):
        _, j = body_frame_forward(body, sample_pose(rng, "standing"), np.zeros(10))
        assert j[20, 1] < j[16, 1] - 0.2 and j[21, 1] < j[17, 1] - 0.2  # hands hang below the shoulders
        assert j[7, 1] < j[4, 1] < j[1, 1]  # ankle below knee below hip
        _, j = body_frame_forward(body, sample_pose(rng, "sitting"), np.zeros(10))
        assert j[4, 2] > j[1, 2] + 0.25 and abs(j[4, 1] - j[1, 1]) < 0.2  # thighs forward, near horizontal
        _, j = body_frame_forward(body, sample_pose(rng, "waving"), np.zeros(10))
        assert max(j[20, 1] - j[16, 1], j[21, 1] - j[17, 1]) > 0.1  # one hand above its shoulder


def test_self_intersection_check(body):
    pose = np.zeros((24, 3))
    pose[16, 1] = math.radians(-90)  # left arm straight forward ...
    pose[18, 1] = math.radians(-150)  # ... forearm folded back through the chest
    pose[16, 2] = math.radians(-20)
    _, j = body_frame_forward(body, pose, np.zeros(10))
    assert any("left arm crosses" in p for p in limb_torso_violations(j))
    _, j0 = body_frame_forward(body, np.zeros((24, 3)), np.zeros(10))
    assert limb_torso_violations(j0) == []
    pose2 = np.zeros((24, 3))
    pose2[1, 2] = math.radians(-25)  # left thigh adducted ...
    pose2[2, 2] = math.radians(25)  # ... and the right one: the knees meet
    pose2[1, 0] = pose2[2, 0] = math.radians(-90)
    _, j2 = body_frame_forward(body, pose2, np.zeros(10))
    assert any("legs cross" in p for p in limb_torso_violations(j2))
    rng = np.random.default_rng(3)
    for family in FAMILIES:
        s = sample_body(rng, body, PoseConfig(), families=[family])
        assert limb_torso_violations(s.joints) == []


def test_scene_reprojection_and_frames(scenes, body):
    for scene in scenes:
        w, h = scene.image_wh
        K = torch.as_tensor(scene.K)
        for p in scene.people:
            # Body model with the stored camera-frame parameters reproduces the stored camera-frame body.
            with torch.no_grad():
                out = body(
                    betas=torch.as_tensor(p.betas, dtype=torch.float32)[None],
                    body_pose=torch.as_tensor(p.body_pose.reshape(1, -1), dtype=torch.float32),
                    global_orient=torch.as_tensor(p.global_orient_cam, dtype=torch.float32)[None],
                )
            rel = out.joints[0, :24].double()  # transl 0: what a network's SMPL layer returns
            assert np.allclose(out.vertices[0].double().numpy() + p.transl_cam, p.vertices_cam, atol=1e-4)
            proj = perspective_project(
                rel[None], torch.as_tensor(p.transl_cam)[None], K[[0, 1], [0, 1]][None], K[:2, 2][None]
            )[0].numpy()
            assert np.abs(proj - p.joints2d).max() < 0.5  # sub-pixel (float32 body model)
            assert np.allclose(out.joints[0, 0].double().numpy() + p.transl_cam, p.root_cam, atol=1e-5)
            # World and camera bodies are related by R_c exactly.
            assert np.allclose(p.vertices_world @ scene.R_c.T, p.vertices_cam, atol=1e-10)
            assert np.allclose(p.joints_world @ scene.R_c.T, p.joints_cam, atol=1e-10)
            assert np.allclose(p.coco_world @ scene.R_c.T, p.coco_cam, atol=1e-10)
            from scipy.spatial.transform import Rotation

            r_w = Rotation.from_rotvec(p.global_orient_world).as_matrix()
            r_c = Rotation.from_rotvec(p.global_orient_cam).as_matrix()
            assert np.allclose(scene.R_c @ r_w, r_c, atol=1e-10)
            # On the ground: the lowest vertex touches y_G = camera height.
            assert p.vertices_world[:, 1].max() == pytest.approx(scene.camera.height, abs=1e-9)
            assert 1.0 - 1e-9 <= p.distance <= 12.0 + 1e-9
            # Box and visibility.
            x0, y0, x1, y1 = p.tight_bbox
            assert p.bbox_size == pytest.approx(1.2 * max(x1 - x0, y1 - y0))
            assert p.scale == pytest.approx(p.bbox_size / 200)
            inside = (
                (p.joints2d >= -0.5).all(1) & (p.joints2d[:, 0] <= w - 0.5) & (p.joints2d[:, 1] <= h - 0.5)
            )
            assert np.array_equal(inside, p.joints_visible)
            assert p.pose.shape == (72,)


def test_standing_people_are_upright(body, regs):
    cfg = SceneConfig(pose=PoseConfig(families=("standing",)))
    _, rest = body_frame_forward(body, np.zeros((24, 3)), np.zeros(10))
    rest_lean = _angle_deg(rest[12] - rest[0], np.array([0.0, 1.0, 0.0]))
    for i in range(20):
        scene = sample_scene_at(3, i, body, regs, cfg)
        g = scene.gravity_cam
        for p in scene.people:
            trunk_world = p.joints_world[12] - p.joints_world[0]
            assert _angle_deg(trunk_world, np.array([0.0, -1.0, 0.0])) < rest_lean + 6.0
            trunk_cam = p.joints_cam[12] - p.joints_cam[0]
            assert _angle_deg(trunk_cam, -g) < rest_lean + 6.0


def test_seeds_reproduce(body, regs):
    a = sample_scene_at(11, 5, body, regs)
    b = sample_scene_at(11, 5, body, regs)
    c = sample_scene_at(11, 6, body, regs)
    assert np.array_equal(a.K, b.K) and np.array_equal(a.R_c, b.R_c)
    for pa, pb in zip(a.people, b.people, strict=True):
        assert np.array_equal(pa.vertices_cam, pb.vertices_cam) and np.array_equal(pa.betas, pb.betas)
    assert not np.array_equal(a.people[0].vertices_cam, c.people[0].vertices_cam)
    assert np.array_equal(scene_rng(1, 2).random(3), np.random.default_rng([1, 2]).random(3))


def test_multi_person_scenes_separated(scenes):
    multi = [s for s in scenes if len(s.people) > 1]
    assert multi
    for s in multi:
        roots = np.stack([s.R_c.T @ p.root_cam for p in s.people])
        for i in range(len(roots)):
            for j in range(i + 1, len(roots)):
                assert np.hypot(*(roots[i] - roots[j])[[0, 2]]) >= 0.8


def test_impossible_scene_is_a_clear_error(body, regs):
    cfg = SceneConfig(distance_m=(1.0, 1.5), height_frac=(0.01, 0.02), max_attempts=3)
    with pytest.raises(RuntimeError, match="no camera out of 3"):
        sample_scene(np.random.default_rng(0), body, regs, cfg)
    with pytest.raises(ValueError, match="num_people"):
        SceneConfig(num_people=(0, 1))

"""Dataset and augmentations: full-image targets, crop targets, 3D, K and glob info agree after each one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from whmr_core.body.skeleton import SMPL_FLIP_PERM
from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD
from whmr_core.data.annotations import AnnotationError, annotations_from_scenes, write_annotations
from whmr_core.data.augment import (
    AugmentConfig,
    AugmentParams,
    crop_keypoints,
    crop_matrix,
)
from whmr_core.data.dataset import HumanDataset
from whmr_core.data.scene import JointRegressors, SceneConfig, sample_scene_at
from whmr_core.geometry import camera_rotation_from_gravity, glob_info
from whmr_core.rotations import axis_angle_to_matrix

# Joints drawn as coloured discs in the dummy images, with their colours (RGB).
MARKED = {
    0: (255, 0, 0),
    7: (0, 255, 0),
    8: (0, 0, 255),
    15: (255, 255, 0),
    18: (255, 0, 255),
    19: (0, 255, 255),
}
RES = 96


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, body, body_assets) -> Path:
    root = tmp_path_factory.mktemp("synth")
    regs = JointRegressors.from_assets(body_assets)
    cfg = SceneConfig(height_frac=(0.4, 0.9), min_inside=0.95)
    scenes = [sample_scene_at(9, i, body, regs, cfg) for i in range(6)]
    names = []
    for i, s in enumerate(scenes):
        w, h = s.image_wh
        img = np.full((h, w, 3), 40, np.uint8)
        for p in s.people:
            r = max(2, round(p.bbox_size / 40))
            for j, colour in MARKED.items():
                x, y = p.joints2d[j]
                cv2.circle(img, (round(x), round(y)), r, colour[::-1], -1)  # BGR on disk
        names.append(f"img_{i:03d}.png")
        cv2.imwrite(str(root / names[-1]), img)
    write_annotations(root / "train.npz", annotations_from_scenes(scenes, names))
    return root


CASES = {
    "none": AugmentParams(),
    "flip": AugmentParams(flip=True),
    "rot": AugmentParams(rot_deg=37.0),
    "scale_shift": AugmentParams(scale=1.2, shift=(0.08, -0.05)),
    "all": AugmentParams(flip=True, rot_deg=-52.0, scale=0.85, shift=(-0.06, 0.07)),
}


def _unnormalise(img: torch.Tensor) -> np.ndarray:
    x = img.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(x * 255, 0, 255)


@pytest.mark.parametrize("case", sorted(CASES))
def test_targets_consistent_after_augmentation(dataset_dir, body, case):
    ds = HumanDataset(dataset_dir / "train.npz", dataset_dir, crop_res=RES)
    params = CASES[case]
    hits = total = 0
    for i in range(len(ds)):
        plain = ds.item(i, AugmentParams())
        s = ds.item(i, params)
        K = s["K"].double().numpy()
        # Our files label the SMPL-24 part of the supervision layout (the first 24 points), no other.
        assert not s["keypoints_full"][24:, 2].any() and not s["joints3d"][24:, 3].any()
        kp_full = s["keypoints_full"].double().numpy()[:24]
        j3d = s["joints3d"].double().numpy()[:24, :3]
        # Full image: the (augmented) 3D joints projected with the (augmented) K land on the 2D joints.
        proj = j3d[:, :2] / j3d[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
        assert np.abs(proj - kp_full[:, :2]).max() < 1e-2
        coco3d = s["coco3d"].double().numpy()[:, :3]
        proj_coco = coco3d[:, :2] / coco3d[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
        assert np.abs(proj_coco - s["coco_full"].double().numpy()[:, :2]).max() < 1e-2
        # Crop: crop coordinates are the full-image ones mapped by the box, and glob info is eq. 7 of it.
        c, b = s["center"].double().numpy(), float(s["bbox_size"])
        assert np.allclose(s["keypoints"].numpy()[:24, :2], 2 * (kp_full[:, :2] - c) / b, atol=1e-5)
        assert torch.allclose(
            s["glob_info"], glob_info(s["center"][None], s["bbox_size"][None], s["image_wh"][None])[0]
        )
        assert float(s["scale"]) == pytest.approx(b / 200)
        # Gravity and R_c stay a consistent pair; the world root is R_c^T times the camera root.
        r_c = s["cam_rotation"].double()
        assert torch.allclose(
            camera_rotation_from_gravity(s["gravity_cam"].double()[None])[0], r_c, atol=1e-5
        )
        r_cam = axis_angle_to_matrix(s["pose"][:3].double())
        r_world = axis_angle_to_matrix(s["global_orient_world"].double())
        assert torch.allclose(r_c.T @ r_cam, r_world, atol=1e-5)
        # The body model with the augmented pose, shape and translation gives the augmented 3D joints.
        with torch.no_grad():
            out = body(
                betas=s["betas"][None],
                global_orient=s["pose"][None, :3],
                body_pose=s["pose"][None, 3:],
                transl=s["transl_cam"][None],
            )
        assert np.abs(out.joints[0, :24].double().numpy() - j3d).max() < 1e-4
        # World-frame joints: unchanged by rotation/scale, mirrored (and swapped) by a flip.
        w0 = plain["joints3d_world"].numpy()
        w1 = s["joints3d_world"].numpy()
        expect = w0[list(SMPL_FLIP_PERM)] * np.array([-1, 1, 1]) if params.flip else w0
        assert np.allclose(w1, expect, atol=1e-5)
        # Pixels: each marked joint's colour sits at its crop keypoint (the image warp matches the labels).
        img = _unnormalise(s["img"])
        kp = s["keypoints"].numpy()
        src = {j: (SMPL_FLIP_PERM[j] if params.flip else j) for j in MARKED}
        for j in MARKED:
            if kp[j, 2] < 0.5 or np.abs(kp[j, :2]).max() > 0.95:
                continue
            x, y = (kp[j, :2] + 1) * RES / 2 - 0.5
            total += 1
            hits += np.abs(img[round(y), round(x)] - MARKED[src[j]]).max() < 60
    assert total >= 10 and hits >= 0.85 * total, (hits, total)


def test_k_moves_with_rotation(dataset_dir):
    ds = HumanDataset(dataset_dir / "train.npz", dataset_dir, crop_res=RES)
    a = ds.item(0, AugmentParams())
    b = ds.item(0, AugmentParams(rot_deg=30.0))
    assert torch.equal(a["focal"], b["focal"])
    c = a["center"].double().numpy()
    ang = np.radians(30.0)
    r2 = np.array([[np.cos(ang), np.sin(ang)], [-np.sin(ang), np.cos(ang)]])
    assert np.allclose(b["principal_point"].numpy(), c + r2 @ (a["principal_point"].numpy() - c), atol=1e-3)


def test_random_augmentation_reproducible_and_varied(dataset_dir):
    ds = HumanDataset(dataset_dir / "train.npz", dataset_dir, crop_res=RES, augment=AugmentConfig(), seed=3)
    a, b = ds[2], ds[2]
    assert torch.equal(a["img"], b["img"]) and torch.equal(a["keypoints"], b["keypoints"])
    ds.set_epoch(1)
    flips = {float(ds[i]["flip"]) for i in range(len(ds))}
    ds.set_epoch(2)
    c = ds[2]
    assert not torch.equal(a["img"], c["img"])
    assert flips <= {0.0, 1.0}
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    assert batch["img"].shape == (3, 3, RES, RES) and batch["glob_info"].shape == (3, 5)
    for k in ("has_K", "has_smpl", "has_world", "has_gravity", "has_transl"):
        assert (batch[k] == 1).all(), k


def test_missing_image_and_size_mismatch(tmp_path: Path, dataset_dir):
    import shutil

    for f in dataset_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "img_003.png").unlink()
    with pytest.raises(AnnotationError) as e:
        HumanDataset(tmp_path / "train.npz", tmp_path)
    assert (e.value.field, "img_003.png" in str(e.value)) == ("imgname", True)
    ds = HumanDataset(tmp_path / "train.npz", tmp_path, check_images=False)
    bad = next(i for i in range(len(ds)) if ds.ann["imgname"][i] == "img_003.png")
    with pytest.raises(AnnotationError) as e:
        ds[bad]
    assert (e.value.index, e.value.field) == (bad, "imgname")
    cv2.imwrite(str(tmp_path / "img_003.png"), np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(AnnotationError) as e:
        ds[bad]
    assert (e.value.index, e.value.field) == (bad, "image_wh")


def test_standard_spin_file_gets_pseudo_focal(tmp_path: Path):
    img = np.zeros((120, 160, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), img)
    part = np.zeros((1, 24, 3))
    part[0, :, :2] = np.random.default_rng(0).uniform(40, 100, (24, 2))
    part[0, :, 2] = 1
    np.savez(
        tmp_path / "spin.npz",
        imgname=np.array(["a.jpg"]),
        center=np.array([[80.0, 60.0]]),
        scale=np.array([0.5]),
        part=part,
    )
    ds = HumanDataset(tmp_path / "spin.npz", tmp_path, crop_res=64)
    s = ds.item(0, AugmentParams(flip=True))
    assert ds.joints_layout == "spin24" and float(s["has_K"]) == 0 and float(s["has_smpl"]) == 0
    assert torch.allclose(s["focal"], torch.tensor([200.0, 200.0]))  # sqrt(160^2 + 120^2)
    # SPIN-24 flip: right ankle <- left ankle (SPIN 5), x mirrored about W - 1, in the supervision layout
    # (SMPL's right ankle, 8).
    assert s["keypoints_full"][8, 0].item() == pytest.approx(159 - part[0, 5, 0], abs=1e-4)
    np.savez(tmp_path / "cliff.npz", imgname=np.array(["a.jpg"]), center=np.array([[80.0, 60.0]]),
             scale=np.array([0.5]), focal_length=np.array([321.0]))  # fmt: skip
    s = HumanDataset(tmp_path / "cliff.npz", tmp_path, crop_res=64)[0]
    assert float(s["has_K"]) == 1 and torch.allclose(s["focal"], torch.tensor([321.0, 321.0]))


@pytest.mark.parametrize("rot", [0.0, 23.0, -61.0])
def test_crop_warp_matches_crop_coordinates(rot):
    """Each crop pixel shows the full-image point its [-1, 1] crop coordinate names (pixel-exact)."""
    w, h, res = 200, 150, 32
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    coords = np.stack([xs, ys], axis=-1)  # a linear image: bilinear sampling of it is exact
    center, size = np.array([97.3, 71.8]), 60.0
    crop = cv2.warpAffine(coords, crop_matrix(center, size, rot, res), (res, res), flags=cv2.INTER_LINEAR)
    # Crop pixel (i, j) has crop coordinate q = (2 (i, j) + 1) / res - 1; full-image p = c + R^T q b / 2.
    ij = np.stack(np.meshgrid(np.arange(res), np.arange(res)), axis=-1).reshape(-1, 2)
    q = (2 * ij + 1) / res - 1
    a = np.radians(rot)
    r2 = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    p = center + (q * size / 2) @ r2
    # warpAffine samples at 1/32 pixel resolution (INTER_BITS = 5), so 1/64 px is its exactness.
    assert np.abs(crop.reshape(-1, 2) - p).max() < 1 / 60
    # And the keypoint mapping agrees: the full-image points rotated about c give back q.
    kp = np.concatenate([(p - center) @ r2.T + center, np.ones((len(p), 1))], axis=1)
    assert np.allclose(crop_keypoints(kp, center, size)[:, :2], q, atol=1e-9)

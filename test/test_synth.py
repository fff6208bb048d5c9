"""Synthetic images: ground truth agrees with the pixels, maps and files; seeds reproduce samples."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("moderngl")

from whmr_core.body import body_assets, load_body_model
from whmr_core.body.skeleton import SMPL_PARENTS
from whmr_core.crops import IMAGENET_MEAN, IMAGENET_STD
from whmr_core.data.annotations import read_annotations, write_annotations
from whmr_core.data.appearance import Prop, sample_appearance
from whmr_core.data.dataset import HumanDataset
from whmr_core.data.scene import JointRegressors, sample_scene_at
from whmr_core.data.synth import (
    SynthConfig,
    appearance_rng,
    generate_dataset,
    render_scene,
)
from whmr_core.render import Renderer, RenderUnavailableError
from whmr_core.render.primitives import box

CFG = SynthConfig.small(160, 120)
SEED = 11


@pytest.fixture(scope="module")
def body():
    return load_body_model(variant="lowres")


@pytest.fixture(scope="module")
def regs(body):
    return JointRegressors.from_assets(body_assets(body))


@pytest.fixture(scope="module")
def renderer():
    try:
        return Renderer()
    except RenderUnavailableError as e:  # pragma: no cover - set-up installs the packages
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, renderer) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, 6, SEED, split_val=1 / 3, workers=0, body="lowres", config=CFG, progress=False)
    return out


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img[..., ::-1] if img.ndim == 3 else img


def test_layout_and_splits(dataset):
    train = read_annotations(dataset / "train.npz")
    val = read_annotations(dataset / "val.npz")
    assert set(train["scene_index"]) == {0, 1, 2, 3} and set(val["scene_index"]) == {4, 5}
    for ann in (train, val):
        for name in ("imgname", "depthname", "iuvname"):
            for rel in ann[name]:
                assert (dataset / str(rel)).is_file()
        assert np.all(ann["image_wh"] == (160, 120))


def test_stored_3d_joints_reproject_onto_stored_2d(dataset):
    ann = read_annotations(dataset / "train.npz")
    for j3d, j2d, key in (("joints3d_cam", "part", "smpl"), ("coco3d", "coco2d", "coco")):
        p = ann[j3d][..., :3]
        proj = p[..., :2] / p[..., 2:3] * ann["focal"][:, None] + ann["principal_point"][:, None]
        np.testing.assert_allclose(proj, ann[j2d][..., :2], atol=1e-6, err_msg=key)


def test_depth_map_is_camera_z_of_the_rendered_surface(body, regs, renderer, dataset):
    faces = body_assets(body).faces.numpy()
    scene = sample_scene_at(SEED, 2, body, regs, CFG.scene)
    synth = render_scene(scene, renderer, body, config=CFG)
    on = synth.person >= 0
    assert on.sum() > 50
    verts = np.stack([p.vertices_cam for p in scene.people])  # (P,V,3)
    k, f, b = synth.person[on], synth.face[on], synth.bary[on].astype(np.float64)
    surface = np.einsum("nc,ncd->nd", b, verts[k[:, None], faces[f]])
    np.testing.assert_allclose(synth.depth[on], surface[:, 2], atol=1e-3)  # mm
    assert np.all(synth.depth[~on] == 0)
    # The surface point seen at a pixel projects onto that pixel: maps and image are aligned.
    v, u = np.nonzero(on)
    px = scene.camera.project(surface)
    assert np.abs(px - np.stack([u, v], 1)).max() < 0.02
    # The stored 16-bit PNG holds the same depths in millimetres.
    stored = _read_rgb(dataset / "maps" / "000002_depth.png")
    assert stored.dtype == np.uint16
    np.testing.assert_allclose(stored[on] / 1000.0, surface[:, 2], atol=6e-4)
    assert np.all(stored[~on] == 0)


def test_iuv_part_at_a_joint_is_adjacent_to_that_joint(body, regs, renderer):
    children: dict[int, list[int]] = {j: [] for j in range(24)}
    for j, p in enumerate(SMPL_PARENTS):
        if p >= 0:
            children[p].append(j)
    hits = checked = 0
    for index in range(8):
        scene = sample_scene_at(SEED, index, body, regs, CFG.scene)
        synth = render_scene(scene, renderer, body, config=CFG)
        for k, person in enumerate(scene.people):
            for j in np.flatnonzero(synth.joints_conf[k] > 0):
                u, v = np.rint(person.joints2d[j]).astype(int)
                if synth.person[v, u] != k or synth.depth[v, u] < person.joints_cam[j, 2] - 0.12:
                    continue  # pixel misses the body (thin limb) or shows a limb in front (self-occlusion)
                part = int(synth.iuv[v, u, 0]) - 1  # part p is skinned by joint p - 1
                checked += 1
                hits += part in (j, SMPL_PARENTS[j], *children[j])
    assert checked > 60
    assert hits / checked > 0.9, (hits, checked)
    uv = synth.iuv[synth.person >= 0, 1:]
    assert uv.min() < 40 and uv.max() > 215  # U/V span their range


def test_occluder_zeroes_the_confidence_of_hidden_joints(body, regs, renderer):
    scene = sample_scene_at(SEED, 0, body, regs, replace(CFG.scene, num_people=(1, 1)))
    person = scene.people[0]
    app = sample_appearance(appearance_rng(SEED, 0), scene)
    # A wall half way to the pelvis, facing the camera, whose top edge is on the ray to a point 10 cm below
    # the pelvis (G is y down): it hides the legs' joints and not the trunk's.
    pelvis = person.joints_world[0]
    ground = scene.camera.height
    top = (pelvis[1] + 0.1) / 2
    centre = np.array([pelvis[0] / 2, (ground + top) / 2, pelvis[2] / 2])
    size = np.array([1.5, ground - top, 0.05])
    v, f = box(centre, size)
    app = replace(app, props=(Prop(v, f, (0.2, 0.3, 0.9), occluder=True),))
    cfg = replace(CFG, min_visible_joints=0.0)
    synth = render_scene(scene, renderer, body, app, rng=np.random.default_rng(0), config=cfg)
    # Expected: the segment camera -> joint crosses the wall's slab (all in G, the camera at the origin).
    lo, hi = centre - size / 2, centre + size / 2
    j = person.joints_world
    t = centre[2] / j[:, 2]
    hit = (lo[0] <= t * j[:, 0]) & (t * j[:, 0] <= hi[0]) & (lo[1] <= t * j[:, 1]) & (t * j[:, 1] <= hi[1])
    expected = person.joints_visible & ~hit
    assert hit.any() and expected.any()
    assert (synth.joints_conf[0] == expected).mean() >= 22 / 24
    assert not synth.occluders_dropped
    # Without the wall every in-image joint is visible again (self-occlusion keeps confidence 1).
    clear = render_scene(scene, renderer, body, replace(app, props=()), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(clear.joints_conf[0], person.joints_visible)


def test_human_dataset_crops_show_the_person(dataset, tmp_path):
    ann = read_annotations(dataset / "train.npz")
    # Read the IUV maps through the same dataset code as images: the crop of the map is the person mask.
    fields = dict(ann.fields)
    fields["imgname"] = ann["iuvname"]
    write_annotations(tmp_path / "iuv.npz", fields)
    rgb = HumanDataset(dataset / "train.npz", dataset, crop_res=64)
    iuv = HumanDataset(tmp_path / "iuv.npz", dataset, crop_res=64)
    assert len(rgb) == len(ann) >= 4
    for i in range(len(rgb)):
        a, m = rgb[i], iuv[i]
        assert a["img"].shape == (3, 64, 64)
        crop = (m["img"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255
        mask = crop[..., 0] > 0.5  # part index > 0
        assert mask.mean() > 0.04, (i, mask.mean())
        # The square box is 1.2 x the person's longest side: the person spans ~83 % of the crop (less when
        # up to 20 % of it is outside the image or behind an occluder).
        ys, xs = np.nonzero(mask)
        assert max(np.ptp(xs), np.ptp(ys)) + 1 >= 0.6 * 64, i
        kp = a["keypoints"].numpy()
        vis = kp[:, 2] > 0
        px = np.clip(np.rint((kp[vis, :2] + 1) / 2 * 64 - 0.5).astype(int), 0, 63)
        near = [mask[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3].any() for x, y in px]
        assert np.mean(near) > 0.9, i


def test_seeds_reproduce_identical_samples(dataset, tmp_path):
    again = tmp_path / "again"
    generate_dataset(again, 3, SEED, workers=0, body="lowres", config=CFG, progress=False)
    for i in range(3):
        for rel in (f"images/{i:06d}.jpg", f"maps/{i:06d}_depth.png", f"maps/{i:06d}_iuv.png"):
            assert (again / rel).read_bytes() == (dataset / rel).read_bytes(), rel
    a, b = read_annotations(dataset / "train.npz"), read_annotations(again / "train.npz")
    rows = np.isin(a["scene_index"], [0, 1, 2])
    np.testing.assert_array_equal(a["part"][rows], b["part"])
    other = tmp_path / "other"
    generate_dataset(other, 1, SEED + 1, workers=0, body="lowres", config=CFG, progress=False)
    assert (
        _read_rgb(other / "images/000000.jpg").tobytes() != _read_rgb(again / "images/000000.jpg").tobytes()
    )


def test_in_process_generation_keeps_the_callers_thread_count(renderer, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate_dataset(tmp_path / "one", 1, SEED, workers=0, body="lowres", config=CFG, progress=False)
        assert torch.get_num_threads() == 2  # only spawned worker processes run single-threaded
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_worker_processes_give_the_same_files(dataset, tmp_path):
    out = tmp_path / "workers"
    generate_dataset(out, 4, SEED, workers=2, body="lowres", config=CFG, progress=False)
    for i in range(4):
        for rel in (f"images/{i:06d}.jpg", f"maps/{i:06d}_iuv.png"):
            assert (out / rel).read_bytes() == (dataset / rel).read_bytes(), rel


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split_val"):
        generate_dataset(tmp_path, 2, 0, split_val=0.1, workers=0, body="lowres", progress=False)
    with pytest.raises(ValueError, match="image_format"):
        SynthConfig(image_format="bmp")


def test_dataset_maps_follow_the_crop_and_feed_the_aux_losses(dataset):
    """IUV/depth maps are cut with the image's warp: the part under each visible crop joint belongs to that
    joint's neighbourhood, depth is positive on the body, and the aux losses reach the aux heads."""
    from whmr_core.body.skeleton import SMPL_PARENTS
    from whmr_core.data.augment import AugmentParams
    from whmr_core.data.batch import collate
    from whmr_core.data.dataset import HumanDataset
    from whmr_core.model import build_model
    from whmr_core.training.batch import Batch
    from whmr_core.training.config import LossWeights
    from whmr_core.training.objective import compute_losses
    from whmr_core.training.stages import configure_stage, stage_rules

    ds = HumanDataset(dataset / "train.npz", dataset, crop_res=128, with_maps=True)
    hits = total = 0
    for i in range(len(ds)):
        item = ds.item(i, AugmentParams(rot_deg=20.0, scale=1.1))
        assert float(item["has_maps"]) == 1.0
        part = item["iuv_part"].numpy()
        on_body = part > 0
        assert on_body.any() and (item["inv_depth"][0].numpy()[on_body] > 0).all()
        for j, (x, y, c) in enumerate(item["keypoints"].numpy()):
            px, py = round((x + 1) * 64 - 0.5), round((y + 1) * 64 - 0.5)
            if c > 0 and 0 <= px < 128 and 0 <= py < 128 and part[py, px] > 0:
                near = {j, int(SMPL_PARENTS[j])} | {k for k, p in enumerate(SMPL_PARENTS) if p == j}
                hits += int(part[py, px] - 1 in near)
                total += 1
    assert total > 10 and hits / total > 0.8
    assert float(ds.item(0, AugmentParams(flip=True))["has_maps"]) == 0.0

    model = build_model("small-cpu", body=load_body_model(variant="lowres"))
    configure_stage(model, 1)
    batch = Batch.from_collated(collate([ds[i] for i in range(2)]))
    out = model(batch.img, batch.glob_info, batch.cam_rotation)
    losses = compute_losses(out, batch, model, stage_rules(1), LossWeights())
    aux = ("part_ce", "uv_u", "uv_v", "inverse_depth")
    assert set(aux) <= set(losses)
    grads = torch.autograd.grad(sum(losses[k] for k in aux), list(model.aux_heads.parameters()))
    assert any(float(g.abs().sum()) > 0 for g in grads)

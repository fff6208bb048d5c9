"""Joint layouts: every data set's joints reach the losses as the same points of the prediction, aligned at
their protocol's root, so a perfect prediction scores 0 whatever the file's order."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from whmr_core import losses as L
from whmr_core.body import body_assets, load_body_model
from whmr_core.body.joint_layouts import (
    LAYOUTS,
    SUPERVISION_FLIP_PERM,
    SUPERVISION_NAMES,
    get_layout,
    root_weights,
    supervision_points,
    to_supervision,
)
from whmr_core.body.keypoints import COCO17_NAMES
from whmr_core.data.annotations import SPIN24_FLIP_PERM, AnnotationError, read_annotations
from whmr_core.data.augment import AugmentParams
from whmr_core.data.dataset import HumanDataset


@pytest.fixture(scope="module")
def regressors():
    a = body_assets(load_body_model(variant="lowres"))
    return a.joint_regressor.float(), a.coco_regressor.float(), a.h36m_regressor.float()


def _prediction(regressors, seed: int = 0) -> torch.Tensor:
    """(2,33,3) supervision points of two random meshes, 3 m in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(2, regressors[0].shape[1], 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 3.0])
    return supervision_points(*(r @ verts for r in regressors))


def _file_labels(pred: np.ndarray, layout: str, rng: np.random.Generator) -> np.ndarray:
    """(J,4) labels in ``layout``'s order from supervision points; joints without a point are noise with
    confidence 0 (what a file holds where its data set has no label)."""
    lay = get_layout(layout)
    out = np.concatenate([rng.normal(size=(len(lay), pred.shape[1])), np.zeros((len(lay), 1))], axis=1)
    for k, target in enumerate(lay.to):
        if target is not None:
            out[k] = [*pred[target], 1.0]
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_perfect_prediction_scores_zero_on_every_layout(regressors, layout):
    pred = _prediction(regressors)
    rng = np.random.default_rng(1)
    labels = [to_supervision(_file_labels(p, layout, rng), layout) for p in pred.double().numpy()]
    target = torch.tensor(np.stack(labels), dtype=torch.float32)
    roots = torch.tensor(np.stack([root_weights(t, layout) for t in labels]), dtype=torch.float32)
    # A translated copy: the 3D term aligns both skeletons at the protocol's root.
    moved = target[..., :3] + torch.tensor([0.4, -0.2, 1.0])
    k3d = L.keypoint_3d_loss(pred, moved, target[..., 3], root_weights=roots)
    k2d = L.crop_keypoint_loss(pred[..., :2], target[..., :2], target[..., 3])
    assert float(k3d) < 1e-10 and float(k2d) < 1e-10
    # Every joint the layout maps is compared (confidence 1), none of those it cannot predict.
    assert int((target[0, :, 3] > 0).sum()) == len({t for t in get_layout(layout).to if t is not None})


def test_spin_order_compared_index_by_index_was_wrong(regressors):
    """The bug this module fixes: SPIN-order labels against SMPL-24 joints, root at SPIN's index 0."""
    pred = _prediction(regressors)
    spin = torch.tensor(
        np.stack([_file_labels(p, "spin24", np.random.default_rng(0)) for p in pred.double().numpy()]),
        dtype=torch.float32,
    )
    naive = L.keypoint_3d_loss(pred[:, :24], spin[..., :3], spin[..., 3])
    assert float(naive) > 1e-2


def test_layout_tables_match_the_formats():
    spin = get_layout("spin24")
    assert len(spin) == 24 and spin.names[:3] == ("right_ankle", "right_knee", "right_hip")
    assert spin.flip_perm == SPIN24_FLIP_PERM  # SPIN's constants.J24_FLIP_PERM
    assert [spin.names[k] for k in spin.root] == ["right_hip", "left_hip"]  # SPIN's pelvis: mid-hips
    assert len(get_layout("spin49")) == 49 and get_layout("spin49").names[25:] == spin.names
    assert get_layout("coco17").names == COCO17_NAMES
    op = get_layout("openpose25")
    assert op.names[8] == "mid_hip" and op.root == (8,) and op.names[19:22] == (
        "left_big_toe", "left_small_toe", "left_heel",
    )  # fmt: skip
    assert get_layout("h36m17").names[:4] == ("pelvis", "right_hip", "right_knee", "right_ankle")
    hp = get_layout("mpi_inf_3dhp17")
    assert hp.names[0] == "head_top" and hp.names[hp.root[0]] == "pelvis"
    # Every layout's mirror is an involution and its root is symmetric (the weights survive a flip).
    for lay in LAYOUTS.values():
        perm = lay.flip_perm
        assert all(perm[perm[k]] == k for k in range(len(lay)))
        assert sorted(perm[k] for k in lay.root) == sorted(lay.root)
    assert all(SUPERVISION_FLIP_PERM[SUPERVISION_FLIP_PERM[k]] == k for k in range(len(SUPERVISION_NAMES)))
    with pytest.raises(ValueError, match="joints layout"):
        get_layout("lsp")


def test_shared_point_first_labelled_wins():
    labels = np.zeros((24, 4))
    spin = get_layout("spin24")
    neck, thorax = spin.names.index("neck_lsp"), spin.names.index("thorax_mpii")
    labels[thorax] = [1, 2, 3, 1]  # LSP neck unlabelled, MPII thorax labelled: the thorax fills SMPL's neck
    labels[neck] = [9, 9, 9, 0]
    out = to_supervision(labels, "spin24")
    assert out[SUPERVISION_NAMES.index("neck")].tolist() == [1, 2, 3, 1]


def _spin_files(tmp_path: Path, layout: str) -> tuple[Path, np.ndarray, np.ndarray]:
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((120, 160, 3), np.uint8))
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.uniform(40, 100, (33, 2)), np.ones((33, 1))], axis=1)
    points3 = np.concatenate([rng.normal(size=(33, 3)) + np.array([0, 0, 4]), np.ones((33, 1))], axis=1)
    part = _file_labels(points[:, :2], layout, rng)
    s = _file_labels(points3[:, :3], layout, rng)
    path = tmp_path / f"{layout}.npz"
    np.savez(
        path,
        imgname=np.array(["a.jpg"]),
        center=np.array([[80.0, 60.0]]),
        scale=np.array([0.5]),
        part=part[None],
        S=s[None],
        joints_layout=np.array(layout),
    )
    return path, points, points3


@pytest.mark.parametrize("layout", ["spin24", "coco17", "h36m17", "openpose25"])
def test_dataset_gives_every_file_the_supervision_layout(tmp_path, layout):
    path, points, points3 = _spin_files(tmp_path, layout)
    ds = HumanDataset(path, tmp_path, crop_res=64)
    s = ds.item(0, AugmentParams())
    mapped = sorted({t for t in get_layout(layout).to if t is not None})
    assert s["keypoints_full"].shape == (33, 3) and s["joints3d"].shape == (33, 4)
    assert np.allclose(s["keypoints_full"][mapped, :2].numpy(), points[mapped, :2], atol=1e-4)
    assert np.allclose(s["joints3d"][mapped, :3].numpy(), points3[mapped, :3], atol=1e-5)
    unmapped = sorted(set(range(33)) - set(mapped))
    assert not s["keypoints_full"][unmapped, 2].any() and not s["joints3d"][unmapped, 3].any()
    root = [SUPERVISION_NAMES[k] for k in np.flatnonzero(s["joints3d_root"].numpy())]
    want = {"spin24": ["left_hip", "right_hip"], "coco17": ["left_hip", "right_hip"]}
    assert root == want.get(layout, ["mid_hip"])
    assert float(s["has_joints3d"]) == 1
    # Flipped: SMPL's right ankle holds the file's left ankle, mirrored about x = W - 1.
    f = ds.item(0, AugmentParams(flip=True))
    r, left = SUPERVISION_NAMES.index("right_ankle"), SUPERVISION_NAMES.index("left_ankle")
    assert float(f["keypoints_full"][r, 0]) == pytest.approx(159 - points[left, 0], abs=1e-4)


def test_file_joint_count_must_match_its_layout(tmp_path):
    np.savez(
        tmp_path / "x.npz",
        imgname=np.array(["a.jpg"]),
        center=np.array([[80.0, 60.0]]),
        scale=np.array([0.5]),
        part=np.zeros((1, 24, 3)),
        joints_layout=np.array("coco17"),
    )
    with pytest.raises(AnnotationError, match="part: has 24 joints, coco17 has 17"):
        read_annotations(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", imgname=np.array(["a.jpg"]), center=np.array([[80.0, 60.0]]),
             scale=np.array([0.5]), joints_layout=np.array("lsp"))  # fmt: skip
    with pytest.raises(AnnotationError, match="unknown layout 'lsp'"):
        read_annotations(tmp_path / "y.npz")

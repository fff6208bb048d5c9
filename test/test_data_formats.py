"""Readers of the paper's data formats: tiny files with each format's real keys, made from the same synthetic
people, read back to the same labels as whmr's own file; unknown keys refused unless ignored; tars streamed;
pickles read safely; ``whmr data check``."""

from __future__ import annotations

import math
import pickle
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_training import tiny_data  # noqa: F401  (the shared fixture)

from whmr_core.body.joint_layouts import get_layout
from whmr_core.data.annotations import AnnotationError, read_annotations
from whmr_core.data.augment import AugmentParams
from whmr_core.data.dataset import HumanDataset
from whmr_core.data.formats import describe, read_dataset
from whmr_core.rotations import axis_angle_to_matrix
from whmr_ros.cli import main as whmr_main


def _relayout(smpl24: np.ndarray, layout: str) -> np.ndarray:
    """(N,24,C) SMPL-24 labels in ``layout``'s order; joints that are not SMPL joints get confidence 0."""
    lay = get_layout(layout)
    out = np.zeros((len(smpl24), len(lay), smpl24.shape[-1]))
    for k, t in enumerate(lay.to):
        if t is not None and t < 24:
            out[:, k] = smpl24[:, t]
    return out


@pytest.fixture(scope="module")
def whmr_file(tiny_data):  # noqa: F811
    return read_annotations(tiny_data / "train.npz")


def _same_smpl_points(path: Path, images: Path, reference: Path, joints: list[int] | None = None):
    """Items of ``path`` and of the whmr ``reference`` agree on the SMPL points both label."""
    got = HumanDataset(path, images, crop_res=64)
    ref = HumanDataset(reference, reference.parent, crop_res=64)
    assert len(got) == len(ref)
    for i in (0, len(ref) - 1):
        a, b = got.item(i, AugmentParams()), ref.item(i, AugmentParams())
        both = (a["keypoints_full"][:24, 2] > 0) & (b["keypoints_full"][:24, 2] > 0)
        assert int(both.sum()) >= 12
        assert np.allclose(a["keypoints_full"][:24][both, :2], b["keypoints_full"][:24][both, :2], atol=1e-3)
        assert np.allclose(a["pose"], b["pose"], atol=1e-5) and np.allclose(a["betas"], b["betas"], atol=1e-5)
    return got, ref


def test_cliff_pseudo_gt(tiny_data, whmr_file, tmp_path):  # noqa: F811
    a = whmr_file
    n = len(a)
    path = tmp_path / "coco2014part_cliffGT.npz"
    np.savez(
        path, imgname=a["imgname"].astype(object), center=a["center"], scale=a["scale"],
        part=_relayout(a["part"], "spin24"), pose=a["pose"], shape=a["shape"], has_smpl=np.ones(n),
        focal_l=a["focal"][:, 0], global_t=a["transl_cam"], annot_id=np.arange(n),
    )  # fmt: skip
    ann = read_dataset(path)
    assert ann.format == "cliff" and ann.joints_layout == "spin24"
    assert np.allclose(ann["transl_cam"], a["transl_cam"]) and np.allclose(
        ann["focal_length"][:, 0], a["focal"][:, 0]
    )
    got, _ = _same_smpl_points(path, tiny_data, tiny_data / "train.npz")
    assert float(got[0]["has_K"]) == 1 and np.allclose(got[0]["focal"][0], a["focal"][0, 0], rtol=1e-5)


def test_whmr_release_smpl_2dkps_fill_what_part_lacks(tiny_data, whmr_file, tmp_path):  # noqa: F811
    a = whmr_file
    part = _relayout(a["part"], "spin24")
    part[:, :6, 2] = 0  # the legs unlabelled in part: the SMPL 2D joints give them
    path = tmp_path / "coco_2014_train.npz"
    np.savez(
        path, imgname=a["imgname"], center=a["center"], scale=a["scale"], part=part, pose=a["pose"],
        shape=a["shape"], smpl_2dkps=a["part"], focal_l=a["focal"][:, 0], openpose=np.zeros((len(a), 25, 3)),
    )  # fmt: skip
    assert read_dataset(path).format == "whmr-release"
    got, ref = _same_smpl_points(path, tiny_data, tiny_data / "train.npz")
    item = got.item(0, AugmentParams())
    assert np.allclose(
        item["keypoints_full"][:24], ref.item(0, AugmentParams())["keypoints_full"][:24], atol=1e-3
    )


def test_bedlam_gives_gravity_and_world_labels(tiny_data, whmr_file, tmp_path):  # noqa: F811
    a = whmr_file
    n = len(a)
    # BEDLAM's world has OpenCV axes (y down, its unreal2cv2), turned by a yaw the camera's heading adds.
    yaw = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])  # 90 degrees about y: gravity stays +y
    ext = np.tile(np.eye(4), (n, 1, 1))
    ext[:, :3, :3] = a["cam_rotation"] @ yaw
    ext[:, :3, 3] = np.random.default_rng(0).normal(size=(n, 3))
    k = np.tile(np.eye(3), (n, 1, 1))
    k[:, [0, 1], [0, 1]] = a["focal"]
    k[:, :2, 2] = a["principal_point"]
    path = tmp_path / "bedlam_train.npz"
    smplx_pose = np.concatenate([a["pose"][:, :66], np.full((n, 99), 0.3)], axis=1)  # SMPL-X: 55 joints
    np.savez(
        path, imgname=a["imgname"], center=a["center"], scale=a["scale"], pose_cam=smplx_pose,
        pose_world=np.zeros((n, 165)), shape=np.concatenate([a["shape"], np.ones((n, 1))], axis=1),
        trans_cam=a["transl_cam"] - ext[:, :3, 3], trans_world=np.zeros((n, 3)), cam_int=k, cam_ext=ext,
        gtkps=a["part"][:, :, :2], gender=np.array(["neutral"] * n),
    )  # fmt: skip
    ann = read_dataset(path)
    assert ann.format == "bedlam" and ann.joints_layout == "smpl24"
    assert np.allclose(ann["cam_rotation"], a["cam_rotation"], atol=1e-6)
    assert np.allclose(ann["transl_cam"], a["transl_cam"], atol=1e-9)
    r_world = axis_angle_to_matrix(__import__("torch").as_tensor(ann["global_orient_world"]))
    r_ref = axis_angle_to_matrix(__import__("torch").as_tensor(a["global_orient_world"]))
    assert np.allclose(r_world.numpy(), r_ref.numpy(), atol=1e-5)
    assert (ann["pose"][:, 66:] == 0).all() and ann["shape"].shape == (n, 10)
    ds = HumanDataset(path, tiny_data, crop_res=64)
    s = ds.item(0, AugmentParams())
    assert float(s["has_world"]) == 1 and float(s["has_K"]) == 1 and float(s["has_gravity"]) == 1


def test_spec_labels_turned_from_its_gravity_frame(tiny_data, whmr_file, tmp_path):  # noqa: F811
    """SPEC files hold the body in SPEC's gravity frame W with X_C = cam_rotmat X_W; read back, they are
    whmr's camera-frame labels of the same people, with whmr's gravity and world labels."""
    import torch

    from whmr_core.data.formats.spec import pitch_roll_from_gravity, spec_rotation
    from whmr_core.rotations import matrix_to_axis_angle

    a = whmr_file
    pr = np.array([pitch_roll_from_gravity(g) for g in a["gravity_cam"]])
    r = spec_rotation(pr[:, 0], pr[:, 1])
    assert np.allclose(r[:, :, 1], a["gravity_cam"], atol=1e-9)  # SPEC's camera sees the same gravity
    s_cam = _relayout(np.concatenate([a["joints3d_cam"], np.ones((len(a), 24, 1))], axis=2), "spin24")
    s_w = s_cam.copy()
    s_w[..., :3] = s_cam[..., :3] @ r
    root_cam = axis_angle_to_matrix(torch.as_tensor(a["pose"][:, :3])).numpy()
    pose_w = a["pose"].copy()
    pose_w[:, :3] = matrix_to_axis_angle(torch.as_tensor(np.swapaxes(r, 1, 2) @ root_cam)).numpy()
    cols = dict(
        imgname=a["imgname"], center=a["center"], scale=a["scale"], part=_relayout(a["part"], "spin24"),
        S=s_w, pose=pose_w, shape=a["shape"], focal_length=a["focal"][:, 0], cam_pitch=pr[:, 0],
        cam_roll=pr[:, 1], cam_vfov=np.ones(len(a)),
    )  # fmt: skip
    for with_rotmat in (True, False):  # cam_rotmat, or SPEC's pitch and roll alone
        path = tmp_path / f"spec-syn_train_{with_rotmat}.npz"
        np.savez(path, **cols, **({"cam_rotmat": r} if with_rotmat else {}))
        ann = read_dataset(path)
        assert ann.format == "spec"
        assert np.allclose(ann["S"], s_cam, atol=1e-9)
        assert np.allclose(ann["cam_rotation"], a["cam_rotation"], atol=1e-6)
        got = axis_angle_to_matrix(torch.as_tensor(ann["pose"][:, :3])).numpy()
        assert np.allclose(got, root_cam, atol=1e-6)
        world = axis_angle_to_matrix(torch.as_tensor(ann["global_orient_world"])).numpy()
        want = axis_angle_to_matrix(torch.as_tensor(a["global_orient_world"])).numpy()
        assert np.allclose(world, want, atol=1e-5)
    _same_smpl_points(path, tiny_data, tiny_data / "train.npz")


def test_spec_convention_by_hand(tmp_path):
    """SPEC's cam_rotmat = Rx(pitch) Rz(roll) (PARE's batch_euler2matrix of (pitch, 0, roll))."""
    from whmr_core.data.formats.spec import pitch_roll_from_gravity, spec_rotation

    c30, s30 = math.cos(math.radians(30)), 0.5
    r = spec_rotation([math.radians(30)], [0.0])[0]
    assert np.allclose(r, [[1, 0, 0], [0, c30, -s30], [0, s30, c30]])
    # Pitched down 30 degrees: gravity runs along the image's down axis and forward, (0, cos 30, sin 30).
    assert np.allclose(r[:, 1], [0, c30, s30])
    # Level and rolled by 20 degrees: gravity (-sin 20, cos 20, 0), the image's down tipped towards -x.
    c20, s20 = math.cos(math.radians(20)), math.sin(math.radians(20))
    assert np.allclose(spec_rotation([0.0], [math.radians(20)])[0][:, 1], [-s20, c20, 0])
    both = spec_rotation([0.3], [-0.2])[0]
    assert np.allclose(pitch_roll_from_gravity(both[:, 1]), (0.3, -0.2))
    # One person standing upright in SPEC's frame (root at rest), the right ankle 0.9 m below the hips'
    # midpoint, seen by a camera pitched down 30 degrees (pitch and roll only, no cam_rotmat).
    s = np.zeros((1, 24, 4))
    s[0, 2], s[0, 3], s[0, 0] = (-0.1, 0, 5, 1), (0.1, 0, 5, 1), (0, 0.9, 5, 1)  # SPIN: r/l hip, r ankle
    path = tmp_path / "spec-mtp_test.npz"
    np.savez(
        path, imgname=np.array(["a.jpg"]), center=np.array([[100.0, 100.0]]), scale=np.array([1.0]),
        pose=np.zeros((1, 72)), shape=np.zeros((1, 10)), S=s, cam_pitch=np.array([math.radians(30)]),
        cam_roll=np.array([0.0]),
    )  # fmt: skip
    ann = read_dataset(path)
    assert np.allclose(ann["pose"][0, :3], [math.radians(30), 0, 0])  # the root turned by the pitch
    ankle = ann["S"][0, 0, :3] - (ann["S"][0, 2, :3] + ann["S"][0, 3, :3]) / 2
    assert np.allclose(ankle, [0, 0.9 * c30, 0.9 * s30])  # down in the world: down and forward in the camera
    assert np.allclose(ann["gravity_cam"][0], [0, c30, s30])
    assert np.allclose(ann["global_orient_world"][0], 0, atol=1e-9)  # upright in whmr's world frame too
    with np.load(path) as z:
        rolled = {**z, "cam_pitch": np.array([0.0]), "cam_roll": np.array([math.radians(20)])}
    np.savez(path, **rolled)
    assert np.allclose(read_dataset(path)["gravity_cam"][0], [-s20, c20, 0])


def _write_tars(root: Path, tiny: Path, a, layout_part: np.ndarray, s3d: np.ndarray) -> Path:
    shards = root / "aic-train"
    shards.mkdir()
    names = sorted(set(a["imgname"]))
    for t, chunk in enumerate((names[:4], names[4:])):
        with tarfile.open(shards / f"{t:06d}.tar", "w") as tar:
            for name in chunk:
                key = Path(name).stem
                _, jpg = cv2.imencode(".jpg", cv2.imread(str(tiny / name)), [cv2.IMWRITE_JPEG_QUALITY, 100])
                people = [
                    {
                        "center": a["center"][i],
                        "scale": np.array([a["scale"][i], a["scale"][i] * 0.8]),
                        "keypoints_2d": layout_part[i],
                        "keypoints_3d": s3d[i],
                        "body_pose": a["pose"][i],
                        "betas": a["shape"][i],
                        "has_body_pose": np.array(1.0),
                        "has_betas": np.array(1.0),
                        "extra_info": {"source": "synthetic"},
                    }
                    for i in np.flatnonzero(a["imgname"] == name)
                ]
                for member, data in (
                    (f"{key}.jpg", jpg.tobytes()),
                    (f"{key}.data.pyd", pickle.dumps(people)),
                ):
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, __import__("io").BytesIO(data))
    return shards


def test_4dhumans_tars_are_streamed_and_read_safely(tiny_data, whmr_file, tmp_path):  # noqa: F811
    a = whmr_file
    s = np.concatenate([a["joints3d_cam"], np.ones((len(a), 24, 1))], axis=2)
    shards = _write_tars(tmp_path, tiny_data, a, _relayout(a["part"], "hmr2_44"), _relayout(s, "hmr2_44"))
    ann = read_dataset(shards)
    assert ann.format == "hmr2-tars" and ann.joints_layout == "hmr2_44" and len(ann) == len(a)
    assert not any(p.suffix == ".jpg" for p in tmp_path.rglob("*"))  # nothing unpacked
    ds = HumanDataset(shards, tmp_path / "unused", crop_res=64)
    order = [
        int(np.flatnonzero(a["imgname"] == Path(n).name.replace(".jpg", ".png"))[0]) for n in ann["imgname"]
    ]
    ref = HumanDataset(tiny_data / "train.npz", tiny_data, crop_res=64)
    item, want = ds.item(0, AugmentParams()), ref.item(order[0], AugmentParams())
    both = (item["keypoints_full"][:24, 2] > 0) & (want["keypoints_full"][:24, 2] > 0)
    assert int(both.sum()) >= 12
    assert np.allclose(
        item["keypoints_full"][:24][both, :2], want["keypoints_full"][:24][both, :2], atol=1e-3
    )
    assert float(item["has_joints3d"]) == 1 and float(item["has_smpl"]) == 1
    # The same (noise) picture, through JPEG: strongly correlated with it, not with another one's.
    corr = np.corrcoef(item["img"].flatten(), want["img"].flatten())[0, 1]
    other = np.corrcoef(item["img"].flatten(), ref.item(order[-1], AugmentParams())["img"].flatten())[0, 1]
    assert corr > 0.8 and corr > other + 0.3, (corr, other)
    # A .data.pyd that names a class (the way a pickle runs code) is refused, naming the member.
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for member, data in (("x.jpg", b"\xff\xd8"), ("x.data.pyd", pickle.dumps([{"p": Path("/")}]))):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    with pytest.raises(AnnotationError, match=r"x.data.pyd: unreadable \(refusing to load pathlib"):
        read_dataset(evil)


def test_unknown_keys_refused_unless_ignored_and_data_check(tiny_data, whmr_file, tmp_path, capsys):  # noqa: F811
    a = whmr_file
    path = tmp_path / "cliff_extra.npz"
    np.savez(
        path, imgname=a["imgname"], center=a["center"], scale=a["scale"], part=_relayout(a["part"], "spin24"),
        focal_l=a["focal"][:, 0], global_t=a["transl_cam"], my_notes=np.zeros(len(a)),
    )  # fmt: skip
    with pytest.raises(AnnotationError, match=r"my_notes.*unknown to the cliff format"):
        read_dataset(path)
    assert len(read_dataset(path, ignore=["my_notes"])) == len(a)
    text = describe(path, ignore=["my_notes"])
    assert "format: cliff" in text and "global_t (8, 3) float64: transl_cam" in text.replace(
        f"({len(a)}, 3)", "(8, 3)"
    )
    assert "my_notes" in text and "ignored (ignore_fields)" in text
    assert whmr_main(["data", "check", str(path), "--ignore", "my_notes"]) == 0
    out = capsys.readouterr().out
    assert "joints layout: spin24" in out and "labels: 2D joints" in out
    assert whmr_main(["data", "check", str(path)]) == 2  # one line naming the key, no traceback
    err = capsys.readouterr().err
    assert "my_notes" in err and "Traceback" not in err


def test_humman_sequence_posed_in_each_camera(tmp_path):
    import json

    import torch

    from whmr_core.body import resolve
    from whmr_core.data.cameras import camera_rotation

    seq = tmp_path / "p000455_a000986"
    (seq / "smpl_params").mkdir(parents=True)
    (seq / "kinect_color" / "kinect_000").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for f in range(2):
        np.savez(
            seq / "smpl_params" / f"{f:06d}.npz", global_orient=rng.normal(0, 0.3, 3),
            body_pose=rng.normal(0, 0.1, 69), betas=rng.normal(0, 0.5, 10), transl=rng.normal(0, 0.2, 3),
        )  # fmt: skip
        cv2.imwrite(
            str(seq / "kinect_color" / "kinect_000" / f"{f:06d}.png"), np.zeros((480, 640, 3), np.uint8)
        )
    r = camera_rotation(20.0, 5.0)
    k = [[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]
    cams = {
        "kinect_color_000": {"K": k, "D": [0] * 5, "R": r.tolist(), "T": [0.1, -0.2, 3.5]},
        "kinect_depth_000": {},
    }
    (seq / "cameras.json").write_text(json.dumps(cams))
    ann = read_dataset(tmp_path, body="lowres")
    assert (
        ann.format == "humman"
        and len(ann) == 2
        and ann["imgname"][0] == "p000455_a000986/kinect_color/kinect_000/000000.png"
    )
    # The camera-frame parameters pose the same body where the world ones put it, seen by the camera.
    model = resolve("lowres").load()
    p = {
        k: torch.as_tensor(v, dtype=torch.float32)
        for k, v in (("pose", ann["pose"]), ("shape", ann["shape"]))
    }
    with torch.no_grad():
        transl = torch.as_tensor(ann["transl_cam"], dtype=torch.float32)
        cam = model(
            global_orient=p["pose"][:, :3], body_pose=p["pose"][:, 3:], betas=p["shape"], transl=transl
        )
    cam = cam.joints[:, :24]
    assert np.abs(cam.numpy() - ann["S"][..., :3]).max() < 1e-4
    proj = ann["S"][..., :3] @ np.asarray(k).T
    assert np.allclose(proj[..., :2] / proj[..., 2:], ann["part"][..., :2], atol=1e-6)
    item = HumanDataset(tmp_path, tmp_path, crop_res=64, body="lowres")[0]
    assert float(item["has_smpl"]) == 1 and float(item["has_K"]) == 1 and float(item["has_world"]) == 0
    assert "format: humman" in describe(tmp_path, body="lowres")


def test_h36m_protocol_scores_a_file_with_s_only(tiny_data, whmr_file, tmp_path):  # noqa: F811
    """An H36M-style file with 3D joints and no SMPL labels is scored on its labelled 14 joints (it once
    printed an empty table with rc 0); a file with neither is an error."""
    import argparse

    import torch
    from torch.utils.data import DataLoader

    from whmr_core.data.batch import collate
    from whmr_core.evaluation import CropAdapter, eval_main, evaluate
    from whmr_core.model import build_model

    a = whmr_file
    s = np.concatenate([a["joints3d_cam"], np.ones((len(a), 24, 1))], axis=2)
    spin = {
        "imgname": a["imgname"], "center": a["center"], "scale": a["scale"],
        "part": _relayout(a["part"], "spin24"), "S": _relayout(s, "spin24"),
    }  # fmt: skip
    # What H36M files label beyond SMPL's joints: the hips' midpoint (SPIN's MPII pelvis) and a head top.
    lay = get_layout("spin24")
    spin["S"][:, lay.names.index("pelvis_mpii")] = np.concatenate(
        [(a["joints3d_cam"][:, 1] + a["joints3d_cam"][:, 2]) / 2, np.ones((len(a), 1))], axis=1
    )
    spin["S"][:, lay.names.index("head_top_lsp")] = np.concatenate(
        [a["joints3d_cam"][:, 15] - [0, 0.12, 0], np.ones((len(a), 1))], axis=1
    )
    path = tmp_path / "h36m_valid_protocol2.npz"
    np.savez(path, **spin)
    torch.manual_seed(0)
    from whmr_core.body import resolve

    model = build_model("small-cpu", body=resolve("lowres").load()).eval()
    loader = DataLoader(
        HumanDataset(path, tiny_data, crop_res=max(model.crop_hw)), batch_size=4, collate_fn=collate
    )
    m = evaluate(CropAdapter(model), loader, protocol="h36m")
    assert m["samples"] == len(a) and np.isfinite(m["mpjpe"]) and np.isfinite(m["pa_mpjpe"])
    np.savez(tmp_path / "empty.npz", imgname=a["imgname"], center=a["center"], scale=a["scale"])
    args = argparse.Namespace(
        data=str(tmp_path / "empty.npz"), images=str(tiny_data), checkpoint=None, protocol="h36m",
        joint_regressor=None, max_samples=None, batch_size=4, gravity_noise=None, json=None,
    )  # fmt: skip
    assert eval_main(args) == 1

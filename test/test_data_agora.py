"""AGORA's pickled DataFrames read without pandas: tiny files pandas wrote in AGORA's schema
(test/data/agora/make_agora_fixtures.py; pandas 1.5.3 with SMPL joints, 2.2.3 with SMPL-X joints), the older
pandas layout, the camera of each scene, the 1280x720 images, and files that are not AGORA's refused."""

from __future__ import annotations

import math
import os
import pickle
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from whmr_core.data.annotations import AnnotationError
from whmr_core.data.augment import AugmentParams
from whmr_core.data.dataset import HumanDataset
from whmr_core.data.formats import describe, read_dataset
from whmr_core.data.formats.agora import load_dataframe, read_counted
from whmr_ros.cli import main as whmr_main

DATA = Path(__file__).parent / "data" / "agora"
SMPL_FILE = DATA / "train_0_withjv.pkl"  # pandas 1.5.3, 45 SMPL joints
SMPLX_FILE = DATA / "validation_0_withjv.pkl"  # pandas 2.2.3, 127 SMPL-X joints


def test_smpl_dataframe_people_cameras_and_gravity():
    ann, left = read_counted(SMPL_FILE)
    assert ann.format == "agora" and ann.joints_layout == "smpl45"
    # 5 people on 3 images: one not valid (95 % occluded), one standing outside the picture.
    assert (left.not_valid, left.few_joints_in_image) == (1, 1) and len(ann) == 3
    assert list(ann["imgname"]) == [
        "ag_trainset_renderpeople_bfh_archviz_5_10_cam00_00001.png",
        "ag_trainset_3dpeople_bfh_hdri_50mm_5_15_00020.png",
        "ag_trainset_renderpeople_body_brushifyforest_5_15_00040.png",
    ]
    # AGORA's cameras: f = focal_mm / 36 mm x 3840 px, principal point at the centre of 3840x2160.
    for i, focal_mm in enumerate((18.0, 50.0, 28.0)):
        f = focal_mm / 36 * 3840
        assert np.allclose(ann["cam_int"][i], [[f, 0, 1920], [0, f, 1080], [0, 0, 1]])
    # cam00 looks down 30 degrees: gravity is along the image's down axis and forward, (0, cos 30, sin 30).
    assert np.allclose(ann["gravity_cam"][0], [0, math.cos(math.radians(30)), 0.5])
    assert np.allclose(ann["cam_rotation"][0][:, 1], ann["gravity_cam"][0])
    assert np.allclose(ann["gravity_cam"][1:], [0, 1, 0])  # hdri and the other scene: level cameras
    # The 3D joints (camera frame) project with that K onto the 2D joints, which are in the image.
    s, part = ann["S"], ann["part"]
    uvw = np.einsum("nij,nkj->nki", ann["cam_int"], s[..., :3])
    assert np.allclose(uvw[..., :2] / uvw[..., 2:], part[..., :2], atol=1e-6)
    assert (part[..., 2] == 1).all() and (s[..., 3] == 1).all()
    # The box: the in-image SMPL-24 and face points, 1.2 times its longer side.
    lo, hi = part[0, :29, :2].min(0), part[0, :29, :2].max(0)
    assert np.allclose(ann["center"][0], (lo + hi) / 2) and math.isclose(
        ann["scale"][0], (hi - lo).max() * 1.2 / 200
    )


def test_smplx_joints_read_into_smpl45():
    raw = load_dataframe(SMPLX_FILE)
    ann = read_dataset(SMPLX_FILE)
    assert len(ann) == 2 and ann.joints_layout == "smpl45"
    j3d = np.asarray(raw["gt_joints_3d"][0][1])  # (127,3): the row's second person
    assert j3d.shape == (127, 3)
    assert np.allclose(ann["S"][1, :22, :3], j3d[:22])  # SMPL-X's body joints are SMPL's first 22
    assert (ann["S"][1, 22:24, 3] == 0).all() and (ann["part"][1, 22:24, 2] == 0).all()  # SMPL's hands: none
    assert np.allclose(ann["S"][1, 24, :3], j3d[55])  # nose
    assert np.allclose(ann["S"][1, 44, :3], j3d[75])  # right pinky tip
    assert np.allclose(ann["gravity_cam"], [0, 1, 0])  # "flowers": a level 28 mm camera


def test_small_images_are_named_and_labels_scaled(tmp_path):
    ref = read_dataset(SMPL_FILE)
    for name in ref["imgname"]:
        cv2.imwrite(str(tmp_path / name.replace(".png", "_1280x720.png")), np.zeros((720, 1280, 3), np.uint8))
    ds = HumanDataset(SMPL_FILE, tmp_path, crop_res=32)
    ann = ds.ann
    assert all(n.endswith("_1280x720.png") for n in ann["imgname"])
    assert np.allclose(ann["part"][..., :2], ref["part"][..., :2] / 3) and np.allclose(
        ann["scale"], ref["scale"] / 3
    )
    assert np.allclose(ann["cam_int"][:, :2], ref["cam_int"][:, :2] / 3)
    assert np.allclose(ann["S"], ref["S"])  # metres do not change
    item = ds.item(0, AugmentParams())
    assert float(item["has_K"]) == 1 and float(item["has_gravity"]) == 1 and float(item["has_world"]) == 0
    assert float(item["has_joints3d"]) == 1 and float(item["has_smpl"]) == 0


def test_older_pandas_layout_is_read(monkeypatch, tmp_path):
    """pandas < 1.3 pickled the block manager as its "0.14.1" state (no block objects) and the frame's
    manager under ``_mgr`` (1.1, 1.2) or ``_data`` (1.0): the same classes stood in under pandas' names."""

    if "pandas" in sys.modules:
        pytest.skip("pandas is imported: its modules cannot be stood in for")

    def stand_in(module: str, name: str, obj):
        parts = module.split(".")
        for k in range(1, len(parts) + 1):  # pickle imports the package chain
            dotted = ".".join(parts[:k])
            if not isinstance(sys.modules.get(dotted), types.ModuleType) or dotted not in stood_in:
                monkeypatch.setitem(sys.modules, dotted, types.ModuleType(dotted))
                stood_in.add(dotted)
        setattr(sys.modules[module], name, obj)
        obj.__module__, obj.__qualname__ = module, name
        return obj

    stood_in: set[str] = set()

    class DataFrame:
        def __init__(self, key, mgr):
            self.key, self.mgr = key, mgr

        def __getstate__(self):
            return {self.key: self.mgr, "_typ": "dataframe", "_metadata": []}

    class BlockManager:
        def __init__(self, state):
            self.state = state

        def __getstate__(self):
            return self.state

    class Index:
        pass

    def _new_Index(cls, d):
        raise AssertionError("not called when pickling")

    class IndexValue:
        def __init__(self, d):
            self.d = d

        def __reduce__(self):
            return (_new_Index, (Index, self.d))

    stand_in("pandas.core.frame", "DataFrame", DataFrame)
    stand_in("pandas.core.internals.managers", "BlockManager", BlockManager)
    stand_in("pandas.core.indexes.base", "Index", Index)
    stand_in("pandas.core.indexes.base", "_new_Index", _new_Index)
    new = load_dataframe(SMPL_FILE)
    names = ["imgPath", "isValid", "gt_joints_2d", "gt_joints_3d", "camX"]
    objects = np.empty((4, len(new["imgPath"])), dtype=object)
    for k, name in enumerate(names[:4]):
        objects[k] = new[name]
    floats = np.array([new["camX"]], dtype=np.float64)
    columns = IndexValue({"data": np.array(names, dtype=object), "name": None})
    rows = IndexValue({"data": np.arange(len(new["imgPath"])), "name": None})
    state = {"axes": [columns, rows], "blocks": [{"values": objects, "mgr_locs": slice(0, 4, 1)},
                                                 {"values": floats, "mgr_locs": np.array([4])}]}  # fmt: skip
    for key in ("_mgr", "_data"):
        for protocol in (2, 5):
            frame = DataFrame(key, BlockManager(([columns, rows], [objects, floats], [], {"0.14.1": state})))
            path = tmp_path / f"{key}_{protocol}.pkl"
            path.write_bytes(pickle.dumps(frame, protocol=protocol))
            old, ann = load_dataframe(path), read_dataset(path)
            assert old["imgPath"] == new["imgPath"] and old["camX"] == new["camX"]
            assert np.allclose(ann["part"], read_dataset(SMPL_FILE)["part"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_files_that_are_not_agora_dataframes_are_refused(tmp_path, capsys):
    evil = tmp_path / "train_0_withjv.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(AnnotationError, match=r"not an AGORA DataFrame: refusing to load (posix|nt)\.system"):
        read_dataset(evil)
    assert whmr_main(["data", "check", str(evil)]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x80\x05not a pickle at all")
    with pytest.raises(AnnotationError, match="not a readable pickle"):
        read_dataset(junk)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"imgPath": ["a.png"]}))
    with pytest.raises(AnnotationError, match=r"not an AGORA DataFrame .*dict, not a DataFrame"):
        read_dataset(plain)


def test_data_check_lists_columns_and_left_out_people(capsys):
    text = describe(DATA)
    assert "format: agora" in text and "gt_joints_3d: S" in text
    assert "people: 5, joints layout: smpl45; left out: 1 not valid, 1 with < 8 joints" in text
    assert "gravity 5" in text and "SMPL 0" in text
    assert whmr_main(["data", "check", str(SMPL_FILE)]) == 0
    assert "people: 3" in capsys.readouterr().out

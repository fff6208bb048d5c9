"""Annotation files: round trip, standard SPIN/CLIFF files, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from whmr_core.data.annotations import (
    FORMAT_TAG,
    WHMR_FIELDS,
    AnnotationError,
    annotations_from_scenes,
    read_annotations,
    write_annotations,
)
from whmr_core.data.scene import JointRegressors, SceneConfig, sample_scene_at


@pytest.fixture(scope="module")
def columns(body, body_assets):
    regs = JointRegressors.from_assets(body_assets)
    scenes = [sample_scene_at(5, i, body, regs, SceneConfig(num_people=(1, 2))) for i in range(5)]
    names = [f"img_{i:06d}.png" for i in range(5)]
    cols = annotations_from_scenes(scenes, names, depthnames=[n.replace("img", "depth") for n in names])
    return scenes, cols


def test_round_trip(tmp_path: Path, columns):
    scenes, cols = columns
    path = write_annotations(tmp_path / "train.npz", cols)
    ann = read_annotations(path)
    assert ann.layout == "whmr" and ann.joints_layout == "smpl24"
    assert len(ann) == sum(len(s.people) for s in scenes)
    for k, v in cols.items():
        assert np.array_equal(ann[k], v), k
    row = 0
    for s in scenes:
        for p in s.people:
            assert np.array_equal(ann["pose"][row], p.pose)
            assert np.array_equal(ann["cam_rotation"][row], s.R_c)
            assert np.array_equal(ann["part"][row, :, :2], p.joints2d)
            assert ann["scale"][row] == p.scale
            row += 1
    assert set(WHMR_FIELDS) <= set(ann.fields)
    # Nothing left behind: no temporary files.
    assert sorted(x.name for x in tmp_path.iterdir()) == ["train.npz"]


def _write_raw(path: Path, cols: dict) -> Path:
    np.savez(path, **cols)
    return path


def _with_tag(cols: dict) -> dict:
    return {**cols, "format": np.array(FORMAT_TAG), "joints_layout": np.array("smpl24")}


def test_missing_file(tmp_path: Path):
    with pytest.raises(AnnotationError, match=r"nope\.npz: all samples: field -: file not found"):
        read_annotations(tmp_path / "nope.npz")


def test_truncated_file_names_the_field(tmp_path: Path, columns):
    _, cols = columns
    path = _write_raw(tmp_path / "t.npz", _with_tag(cols))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnnotationError) as e:
        read_annotations(path)
    assert e.value.path == str(path) and e.value.field in cols and "truncated" in str(e.value)


def test_inconsistent_lengths(tmp_path: Path, columns):
    _, cols = columns
    n = len(cols["imgname"])
    bad = _with_tag({**cols, "focal": cols["focal"][:-2]})
    with pytest.raises(AnnotationError) as e:
        read_annotations(_write_raw(tmp_path / "l.npz", bad))
    assert (e.value.field, e.value.index) == ("focal", n - 2)
    assert f"sample {n - 2}: field focal" in str(e.value) and "l.npz" in str(e.value)


def test_unknown_missing_and_bad_fields(tmp_path: Path, columns):
    _, cols = columns
    with pytest.raises(AnnotationError, match="field bogus: unknown field"):
        read_annotations(_write_raw(tmp_path / "u.npz", _with_tag({**cols, "bogus": cols["scale"]})))
    ok = read_annotations(
        _write_raw(tmp_path / "u2.npz", _with_tag({**cols, "bogus": cols["scale"]})), extra_ignored=["bogus"]
    )
    assert "bogus" in ok
    missing = _with_tag({k: v for k, v in cols.items() if k != "gravity_cam"})
    with pytest.raises(AnnotationError, match="field gravity_cam: missing"):
        read_annotations(_write_raw(tmp_path / "m.npz", missing))
    nan = {k: v.copy() for k, v in cols.items()}
    nan["joints3d_cam"][3, 5, 1] = np.nan
    with pytest.raises(AnnotationError) as e:
        read_annotations(_write_raw(tmp_path / "n.npz", _with_tag(nan)))
    assert (e.value.index, e.value.field) == (3, "joints3d_cam")
    shape = {**cols, "coco2d": cols["coco2d"][:, :, :2]}
    with pytest.raises(AnnotationError, match=r"field coco2d: expected shape \(N, 17, 3\)"):
        read_annotations(_write_raw(tmp_path / "s.npz", _with_tag(shape)))
    rot = {k: v.copy() for k, v in cols.items()}
    rot["cam_rotation"][2] *= 1.5
    with pytest.raises(AnnotationError) as e:
        read_annotations(_write_raw(tmp_path / "r.npz", _with_tag(rot)))
    assert (e.value.index, e.value.field) == (2, "cam_rotation")
    neg = {k: v.copy() for k, v in cols.items()}
    neg["scale"][1] = 0
    with pytest.raises(AnnotationError) as e:
        write_annotations(tmp_path / "w.npz", neg)  # the writer validates too
    assert (e.value.index, e.value.field) == (1, "scale")
    assert not (tmp_path / "w.npz").exists()
    with pytest.raises(AnnotationError, match="format"):
        read_annotations(_write_raw(tmp_path / "f.npz", {**_with_tag(cols), "format": np.array("other-9")}))


def test_standard_spin_and_cliff_files(tmp_path: Path):
    n = 4
    rng = np.random.default_rng(0)
    spin = {
        "imgname": np.array([f"images/{i}.jpg" for i in range(n)]),
        "center": rng.uniform(100, 200, (n, 2)),
        "scale": rng.uniform(0.5, 1.5, n),
        "part": rng.uniform(0, 300, (n, 24, 3)),
        "openpose": np.zeros((n, 25, 3)),
        "pose": np.zeros((n, 72)),
        "shape": np.zeros((n, 10)),
        "has_smpl": np.ones(n),
        "gender": np.array(["m"] * n),
    }
    ann = read_annotations(_write_raw(tmp_path / "lsp.npz", spin))
    assert ann.layout == "spin" and ann.joints_layout == "spin24" and len(ann) == n
    cliff = read_annotations(_write_raw(tmp_path / "cliff.npz", {**spin, "focal_length": np.full(n, 800.0)}))
    assert cliff["focal_length"].shape == (n, 2) and (cliff["focal_length"] == 800).all()
    with pytest.raises(AnnotationError, match="field center: missing"):
        read_annotations(_write_raw(tmp_path / "bad.npz", {k: v for k, v in spin.items() if k != "center"}))
    # Strings saved as an object array (some releases' imgname) are read, without running a pickle.
    obj = read_annotations(
        _write_raw(tmp_path / "obj.npz", {**spin, "imgname": spin["imgname"].astype(object)})
    )
    assert obj["imgname"].dtype.kind == "U" and list(obj["imgname"]) == list(spin["imgname"])
    hostile = np.array([Path("/etc/passwd")] * n, dtype=object)  # a pickle naming a class: refused
    with pytest.raises(AnnotationError, match="field imgname: object array that is not plain data"):
        read_annotations(_write_raw(tmp_path / "hostile.npz", {**spin, "imgname": hostile}))

"""Loading user SMPL files: chumpy pickles without chumpy, npz, and clear errors for bad files."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from whmr_core.body import load_body_model, shipped_model_path
from whmr_core.body.io import read_model_file


def smpl_like_dict() -> dict:
    with np.load(shipped_model_path("lowres"), allow_pickle=False) as d:
        arrays = {
            k: d[k] for k in ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
        }
    kt = arrays["kintree_table"].astype(np.int64)
    kt[0, 0] = 4294967295  # how SMPL pickles store the root's parent (uint32 -1)
    arrays["kintree_table"] = kt.astype(np.uint32)
    arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"].astype(np.float64))
    arrays["posedirs"] = np.zeros((len(arrays["v_template"]), 3, 207))
    arrays["bs_type"] = "lrotmin"
    return arrays


@pytest.fixture
def chumpy_pickle(tmp_path):
    """A pickle whose arrays are chumpy.ch.Ch objects, written with a fake chumpy module."""
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set()}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), module
    try:
        arrays = smpl_like_dict()
        for key in ("v_template", "shapedirs", "weights", "posedirs"):
            arrays[key] = Ch(arrays[key])
        path = tmp_path / "SMPL_NEUTRAL.pkl"
        path.write_bytes(pickle.dumps(arrays, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return path


def test_chumpy_pickle_loads_without_chumpy(chumpy_pickle):
    assert "chumpy" not in sys.modules
    model = load_body_model(chumpy_pickle)
    ref = load_body_model(variant="lowres")
    with torch.no_grad():
        a, b = model().vertices, ref().vertices
    assert torch.allclose(a, b, atol=1e-5)
    assert "chumpy" not in sys.modules


def test_npz_round_trip(tmp_path):
    arrays = smpl_like_dict()
    arrays["J_regressor"] = arrays["J_regressor"].toarray()
    del arrays["bs_type"]
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    model = load_body_model(path, batch_size=2)
    assert model().vertices.shape == (2, 1229, 3)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pkl"):
        load_body_model(tmp_path / "nope.pkl")


def test_truncated_pickle_names_file(chumpy_pickle):
    data = chumpy_pickle.read_bytes()
    chumpy_pickle.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"SMPL_NEUTRAL\.pkl.*truncated"):
        load_body_model(chumpy_pickle)


def test_truncated_npz_names_file(tmp_path):
    data = shipped_model_path("lowres").read_bytes()
    path = tmp_path / "cut.npz"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"cut\.npz"):
        load_body_model(path)


def test_wrong_shape_is_named(tmp_path):
    arrays = smpl_like_dict()
    arrays["weights"] = np.ones((len(arrays["v_template"]), 16))
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(ValueError, match=r"bad\.pkl: weights must have shape \(1229, 24\)"):
        read_model_file(path)


def test_missing_key_is_named(tmp_path):
    arrays = smpl_like_dict()
    del arrays["shapedirs"]
    path = tmp_path / "nokey.pkl"
    path.write_bytes(pickle.dumps(arrays))
    with pytest.raises(ValueError, match=r"nokey\.pkl: missing SMPL arrays \['shapedirs'\]"):
        load_body_model(path)


def test_pickle_with_foreign_class_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": types.SimpleNamespace()}))
    with pytest.raises(ValueError, match=r"evil\.pkl.*refusing"):
        load_body_model(path)


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        load_body_model(variant="medium")


def _pickle_with_regressor(path, regressor) -> None:
    arrays = smpl_like_dict()
    arrays["J_regressor"] = regressor
    path.write_bytes(pickle.dumps(arrays, protocol=2))


def test_csr_regressor_loads_like_the_dense_one(tmp_path):
    dense = smpl_like_dict()["J_regressor"].toarray()
    path = tmp_path / "csr.pkl"
    _pickle_with_regressor(path, scipy.sparse.csr_matrix(dense))
    np.testing.assert_array_equal(read_model_file(path)["J_regressor"], dense)


def test_sparse_matrix_with_crafted_indices_is_refused_not_a_crash(tmp_path):
    """scipy densifies a pickle's indices unchecked: out-of-range ones wrote out of bounds (rc 139)."""
    import subprocess

    m = smpl_like_dict()["J_regressor"]
    m.indices = m.indices.copy()
    m.indices[:3] = 2**30  # row indices far outside the 24 rows
    path = tmp_path / "crafted.pkl"
    _pickle_with_regressor(path, m)
    code = "import sys; from whmr_core.body.io import read_model_file; read_model_file(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-500:])  # an exception, not a signal
    assert "crafted.pkl: J_regressor: sparse matrix: indices outside [0, 24)" in proc.stderr


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"indptr": np.array([0, 5, 3] + [3] * 1227)}, "indptr is not 1230 non-decreasing"),
        ({"data": np.ones(2)}, "2 values"),
        ({"_shape": (24, -1)}, "invalid shape"),
        ({"indices": np.array(["a"] * 3)}, "integer indices expected"),
        ({"data": None}, "data must be a 1-D array"),
    ],
)
def test_inconsistent_sparse_arrays_are_refused(tmp_path, fields, why):
    m = scipy.sparse.csc_matrix(np.eye(24, 1229))
    m.__dict__.update(fields)  # what a crafted pickle can hold: scipy checks nothing on unpickling
    path = tmp_path / "bad_sparse.pkl"
    _pickle_with_regressor(path, m)
    with pytest.raises(ValueError, match=rf"bad_sparse\.pkl: J_regressor: sparse matrix: {why}"):
        read_model_file(path)


def test_absurd_sparse_shape_is_refused_without_allocating(tmp_path):
    """A (200000, 200000) regressor used to die in a many-GiB allocation (MemoryError traceback)."""
    n = 200_000
    m = scipy.sparse.csc_matrix(([1.0], ([0], [0])), shape=(n, n))
    path = tmp_path / "huge.pkl"
    _pickle_with_regressor(path, m)
    with pytest.raises(
        ValueError, match=r"huge\.pkl: J_regressor: sparse matrix of shape \(200000, 200000\) is too"
    ):
        read_model_file(path)

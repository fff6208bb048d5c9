"""Reading SMPL-format model files (.pkl as distributed by the SMPL authors, or .npz) into numpy arrays.

Official SMPL pickles hold chumpy arrays. chumpy does not install on current Python, so pickles are read
with a restricted unpickler that rebuilds chumpy objects as plain numpy arrays without importing chumpy,
and refuses every other class (a pickle can otherwise run arbitrary code). Sparse matrices (SMPL's
J_regressor) are not built by the unpickler either: their arrays are received by a stand-in and checked
(index ranges, pointer order, dense size) before scipy sees them, as scipy trusts a pickle's indices and
densifying unchecked ones writes out of bounds.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

NUM_JOINTS = 24
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207
REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
# Largest dense matrix a sparse one may expand to (SMPL-X's J_regressor is 55 x 10475 = 0.6 M).
MAX_DENSE_ELEMENTS = 1 << 27


class _ChumpyStandIn:
    """Receives a chumpy object's state; its array is in ``x`` (Ch) or ``a``/``b`` (elementwise ops)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def to_numpy(self) -> np.ndarray:
        for key in ("x", "r", "a"):
            value = self.__dict__.get(key)
            if isinstance(value, np.ndarray):
                return value
            if isinstance(value, _ChumpyStandIn):
                return value.to_numpy()
        raise ValueError(f"chumpy object without an array (fields: {sorted(self.__dict__)})")


class _SparseStandIn:
    """Receives a pickled scipy csr/csc matrix's state; ``to_numpy`` checks it fully, then densifies."""

    major_axis = 0  # csr: rows are compressed

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"sparse matrix state is a {type(state).__name__}, not a dict")
        self.state = state

    def to_numpy(self) -> np.ndarray:
        st = getattr(self, "state", {})
        shape = st.get("_shape", st.get("shape"))
        if not (
            isinstance(shape, tuple)
            and len(shape) == 2
            and all(isinstance(n, (int, np.integer)) and 0 <= n < 2**31 for n in shape)
        ):
            raise ValueError(f"sparse matrix: invalid shape {shape!r}")  # fmt: skip
        rows, cols = int(shape[0]), int(shape[1])
        parts = {k: st.get(k) for k in ("data", "indices", "indptr")}
        for k, a in parts.items():
            if not isinstance(a, np.ndarray) or a.ndim != 1:
                raise ValueError(f"sparse matrix: {k} must be a 1-D array, got {type(a).__name__}")
        data, indices, indptr = parts["data"], parts["indices"], parts["indptr"]
        if not (np.issubdtype(indices.dtype, np.integer) and np.issubdtype(indptr.dtype, np.integer)):
            raise ValueError(f"sparse matrix: integer indices expected, got {indices.dtype}/{indptr.dtype}")
        if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
            raise ValueError(f"sparse matrix: numeric data expected, got {data.dtype}")
        major, minor = (rows, cols) if self.major_axis == 0 else (cols, rows)
        if len(indptr) != major + 1 or indptr[0] != 0 or np.any(np.diff(indptr.astype(np.int64)) < 0):
            raise ValueError(f"sparse matrix: indptr is not {major + 1} non-decreasing offsets from 0")
        if indptr[-1] != len(indices) or len(indices) != len(data):
            raise ValueError(
                f"sparse matrix: {len(data)} values, {len(indices)} indices, indptr ends at {indptr[-1]}"
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= minor):
            raise ValueError(f"sparse matrix: indices outside [0, {minor}) for shape {shape}")
        if rows * cols > MAX_DENSE_ELEMENTS:
            raise ValueError(f"sparse matrix of shape {shape} is too large for a body model")
        cls = scipy.sparse.csr_matrix if self.major_axis == 0 else scipy.sparse.csc_matrix
        m = cls((data, indices.astype(np.int64), indptr.astype(np.int64)), shape=(rows, cols))
        m.check_format(full_check=True)
        return m.toarray()


class _CscStandIn(_SparseStandIn):
    major_axis = 1


_SPARSE_STAND_INS: dict[tuple[str, str], type] = {
    (module, name): cls
    for name, cls in (("csr_matrix", _SparseStandIn), ("csc_matrix", _CscStandIn))
    for module in (f"scipy.sparse.{name[:3]}", f"scipy.sparse._{name[:3]}")
}


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED: frozenset[tuple[str, str]] = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"), ("builtins", "set"), ("__builtin__", "set"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    })  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _ChumpyStandIn
        if (module, name) in _SPARSE_STAND_INS:
            return _SPARSE_STAND_INS[module, name]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a model pickle")


def _to_array(value: Any) -> Any:
    if isinstance(value, (_ChumpyStandIn, _SparseStandIn)):
        return value.to_numpy()
    if scipy.sparse.issparse(value):  # an .npz never holds one; callers passing arrays may
        return value.toarray()
    return value


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Arrays of an SMPL-format file; raises FileNotFoundError / ValueError naming the file and the fault."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"body model file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        elif suffix in (".pkl", ".pickle"):
            with path.open("rb") as fh:
                raw = _RestrictedUnpickler(fh, encoding="latin1").load()
            if not isinstance(raw, dict):
                raise ValueError(f"expected a dict of arrays, got {type(raw).__name__}")
        else:
            raise ValueError(f"unsupported extension {suffix!r} (expected .pkl or .npz)")
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, AttributeError) as exc:
        raise ValueError(f"{path}: unreadable or truncated body model file ({exc})") from exc
    except (ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{path}: {exc or type(exc).__name__}") from exc
    arrays = {}
    for key, value in raw.items():
        try:
            arrays[key] = _to_array(value)
        except (ValueError, TypeError, MemoryError, RecursionError) as exc:
            what = "too large to load" if isinstance(exc, MemoryError) else str(exc) or type(exc).__name__
            raise ValueError(f"{path}: {key}: {what}") from None
    try:
        return validate_model_arrays(arrays, path)
    except MemoryError:
        raise ValueError(f"{path}: arrays too large to load") from None


def validate_model_arrays(arrays: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """Check keys and shapes against the SMPL layout; fill zero posedirs when absent. Returns numpy arrays."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: missing SMPL arrays {missing} (has {sorted(arrays)})")
    out = dict(arrays)
    for key in (*REQUIRED_KEYS, "posedirs"):
        if key in out:
            out[key] = np.asarray(out[key])
    v = out["v_template"]
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 4:
        raise ValueError(f"{source}: v_template must be (V,3), got {v.shape}")
    nv = v.shape[0]

    def expect(key: str, shape: tuple[int | None, ...]) -> None:
        got = out[key].shape
        if len(got) != len(shape) or any(s is not None and g != s for g, s in zip(got, shape, strict=True)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{source}: {key} must have shape {want}, got {got}")

    expect("shapedirs", (nv, 3, None))
    expect("J_regressor", (NUM_JOINTS, nv))
    expect("weights", (nv, NUM_JOINTS))
    expect("kintree_table", (2, NUM_JOINTS))
    expect("f", (None, 3))
    if "posedirs" in out:
        expect("posedirs", (nv, 3, NUM_POSE_BASIS))
    else:
        # Models without pose correctives (the shipped one) store none; smplx needs the full-size buffer.
        out["posedirs"] = np.zeros((nv, 3, NUM_POSE_BASIS), np.float32)
    f = out["f"]
    if f.size == 0:  # min()/max() of nothing raised an error that named no file
        raise ValueError(f"{source}: faces f: none (the mesh has no triangles)")
    for key in ("v_template", "shapedirs", "J_regressor", "weights", "posedirs"):
        if not (np.issubdtype(out[key].dtype, np.floating) or np.issubdtype(out[key].dtype, np.integer)):
            raise ValueError(f"{source}: {key} must hold numbers, got dtype {out[key].dtype}")
    if not np.issubdtype(f.dtype, np.integer) or f.min() < 0 or f.max() >= nv:
        raise ValueError(f"{source}: faces f must be integer indices in [0, {nv}), got {f.dtype} in "
                         f"[{f.min()}, {f.max()}]")  # fmt: skip
    for key in ("v_template", "shapedirs", "J_regressor", "weights", "posedirs"):
        if not np.all(np.isfinite(out[key])):
            raise ValueError(f"{source}: {key} contains non-finite values")
    parents = out["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # SMPL pickles store 4294967295 (uint32 -1) for the root
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, NUM_JOINTS)):
        raise ValueError(
            f"{source}: kintree_table parents must precede their children, got {parents.tolist()}"
        )
    out["kintree_table"] = np.stack([parents, np.arange(NUM_JOINTS)])
    return out

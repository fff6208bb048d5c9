"""Reading SMPL-format model files (.pkl as distributed by the SMPL authors, or .npz) into numpy arrays.

Official SMPL pickles hold chumpy arrays. chumpy does not install on current Python, so pickles are read
with a restricted unpickler that rebuilds chumpy objects as plain numpy arrays without importing chumpy,
and refuses every other class (a pickle can otherwise run arbitrary code).
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


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED: frozenset[tuple[str, str]] = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("scipy.sparse.csc", "csc_matrix"),
        ("scipy.sparse._csc", "csc_matrix"), ("scipy.sparse.csr", "csr_matrix"),
        ("scipy.sparse._csr", "csr_matrix"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"), ("builtins", "set"), ("__builtin__", "set"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    })  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _ChumpyStandIn
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a model pickle")


def _to_array(value: Any) -> Any:
    if isinstance(value, _ChumpyStandIn):
        return value.to_numpy()
    if scipy.sparse.issparse(value):
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
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    arrays = {k: _to_array(v) for k, v in raw.items()}
    return validate_model_arrays(arrays, path)


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

"""Reading the pickles data sets ship (npz object arrays of strings, 4D-Humans' ``.data.pyd``) without
running anything: an unpickler that builds only numpy arrays and Python's plain containers.

``pickle.load`` on a downloaded file can call any function the file names; here every global a pickle asks
for must be on ``ALLOWED`` (numpy's array reconstruction, nothing that touches the system), else
``UnsafePickleError`` names it.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any

import numpy as np

__all__ = ["ALLOWED", "UnsafePickleError", "load_npz_member", "safe_loads"]

ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
    }
)


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside ``ALLOWED``."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(f"refusing to load {module}.{name} (only numpy arrays and plain data)")
        return super().find_class(module, name)


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing numpy arrays, numbers, strings, lists, tuples and dicts only."""
    return _Unpickler(io.BytesIO(data), encoding="latin1").load()


def load_npz_member(npz_path: str, name: str) -> np.ndarray:
    """One member of an npz whose array is an object array (``np.load`` would need ``allow_pickle``),
    unpickled safely; object arrays of strings come back as unicode arrays."""
    with zipfile.ZipFile(npz_path) as z, z.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(f)
        if dtype != np.dtype(object):
            raise ValueError(f"{name}: not an object array ({dtype})")
        arr = safe_loads(f.read())
    arr = np.asarray(arr, dtype=object).reshape(shape, order="F" if fortran else "C")
    if arr.size and all(isinstance(x, str | bytes) for x in arr.flat):
        return np.array([x.decode() if isinstance(x, bytes) else x for x in arr.flat]).reshape(shape)
    return arr

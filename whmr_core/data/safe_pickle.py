"""Reading the pickles data sets ship (npz object arrays of strings, 4D-Humans' ``.data.pyd``, AGORA's
DataFrames) without running anything: an unpickler that builds only numpy arrays and Python's plain
containers.

``pickle.load`` on a downloaded file can call any function the file names; here every global a pickle asks
for must be on ``ALLOWED`` (numpy's array reconstruction, nothing that touches the system) or be one the
caller substitutes with its own plain-data builder (``substitutes``: AGORA's pandas classes), else
``UnsafePickleError`` names it. Allowed numpy globals are resolved here, never imported by the name a file
gives.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # numpy >= 2 keeps these in numpy._core; pickles name either module
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

__all__ = ["ALLOWED", "UnsafePickleError", "load_npz_member", "safe_loads"]


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """Protocol 2 pickles (Python 2's, and Python 3's bytes at protocol 2) spell bytes as
    ``_codecs.encode(text, "latin1")``; no other codec."""
    if encoding != "latin1" or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with {encoding!r} (only latin1 text)")
    return text.encode("latin1")


_RESOLVED: dict[tuple[str, str], Any] = {
    **{
        (module, name): getattr(_multiarray, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    },
    # Protocol 5 pickles (Python >= 3.8) rebuild arrays from their bytes.
    **{
        (module, "_frombuffer"): _numeric._frombuffer
        for module in ("numpy.core.numeric", "numpy._core.numeric")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "slice"): slice,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
}
ALLOWED: frozenset[tuple[str, str]] = frozenset(_RESOLVED)


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside ``ALLOWED``."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, substitutes: Mapping[tuple[str, str], Any]) -> None:
        super().__init__(file, encoding="latin1")
        self._globals = {**_RESOLVED, **substitutes}

    def find_class(self, module: str, name: str) -> Any:
        # Python 2's names (protocol 2 writes them for builtins) mapped as pickle maps them.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = self._globals.get((module, name))
        if found is None:
            raise UnsafePickleError(f"refusing to load {module}.{name} (only numpy arrays and plain data)")
        return found


def safe_loads(data: bytes, substitutes: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle ``data`` allowing numpy arrays, numbers, strings, lists, tuples and dicts only, plus the
    globals ``substitutes`` maps ((module, name) -> the caller's own plain-data builder)."""
    return _Unpickler(io.BytesIO(data), substitutes or {}).load()


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

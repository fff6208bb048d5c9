"""The named inputs and outputs of the exported inference graph: the one contract between the export
(``whmr_core.export``), every engine (``whmr_core.runtime``: TensorRT, ONNX Runtime, PyTorch) and the
Pipeline. It sits below both packages, so neither imports the other for it.

Engines bind tensors by these names, never by position, and hand their outputs over as ``EngineOutputs``
(one typed field per output, checked once when an engine fills it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "OUTPUT_SHAPES",
    "EngineError",
    "EngineOutputs",
    "PersonOutputs",
]

INPUT_NAMES: tuple[str, ...] = ("crops", "glob_info", "cam_rotation")


class EngineError(ValueError):
    """An engine file is unreadable or foreign, or an input or output does not fit the contract."""


def _out(shape: tuple[str | int, ...], doc: str) -> Any:
    # Shape after the person dimension N: "V" = vertices of the body model, "J" = joints, "B" = betas.
    return field(metadata={"shape": shape, "doc": doc})


@dataclass(frozen=True)
class PersonOutputs:
    """One person's network outputs (float64, no person dimension); fields as in ``EngineOutputs``."""

    vertices: np.ndarray = _out(("V", 3), "camera axes, body at the model origin (add t_b to place it)")
    joints: np.ndarray = _out(("J", 3), "camera axes, like vertices")
    rotmats: np.ndarray = _out(("J", 3, 3), "local joint rotations, root = camera-frame root R_b^c")
    betas: np.ndarray = _out(("B",), "shape coefficients")
    cam_crop: np.ndarray = _out((3,), "weak-perspective crop camera (s, t_x, t_y)")
    tz: np.ndarray = _out((), "depth, metres (relative scale: the focal length is predicted)")
    focal: np.ndarray = _out((), "eq. 3 focal length in units of the image diagonal")
    translation: np.ndarray = _out((3,), "t_b, eq. 4, camera optical frame, from the predicted focal")
    cam_root: np.ndarray = _out((3, 3), "R_b^c, body root orientation in the camera frame")
    world_root: np.ndarray = _out((3, 3), "R_b from OrientCorrect (eq. 6), paper frame G (y down)")
    world_vertices: np.ndarray = _out(("V", 3), "frame G, pelvis-centred")
    world_joints: np.ndarray = _out(("J", 3), "frame G, pelvis-centred")


OUTPUT_SHAPES: dict[str, tuple[str | int, ...]] = {f.name: f.metadata["shape"] for f in fields(PersonOutputs)}
OUTPUT_NAMES: tuple[str, ...] = tuple(OUTPUT_SHAPES)


@dataclass(frozen=True)
class EngineOutputs:
    """The outputs of one engine call: for each name in ``OUTPUT_NAMES`` a float32 (N, ...) array.

    Build it with ``from_named``, which checks that every output is there, finite-typed and consistent:
    one person count N, one vertex count V, one joint count J across the fields.
    """

    vertices: np.ndarray
    joints: np.ndarray
    rotmats: np.ndarray
    betas: np.ndarray
    cam_crop: np.ndarray
    tz: np.ndarray
    focal: np.ndarray
    translation: np.ndarray
    cam_root: np.ndarray
    world_root: np.ndarray
    world_vertices: np.ndarray
    world_joints: np.ndarray

    @classmethod
    def from_named(cls, arrays: Mapping[str, Any] | Sequence[Any], where: str = "engine") -> EngineOutputs:
        """From a mapping name -> array, or a sequence in ``OUTPUT_NAMES`` order (a graph's outputs)."""
        if not isinstance(arrays, Mapping):
            if len(arrays) != len(OUTPUT_NAMES):
                raise EngineError(f"{where}: {len(arrays)} outputs, expected {len(OUTPUT_NAMES)}")
            arrays = dict(zip(OUTPUT_NAMES, arrays, strict=True))
        missing = [n for n in OUTPUT_NAMES if n not in arrays]
        if missing:
            raise EngineError(f"{where}: outputs {missing} missing")
        sizes: dict[str, int] = {}
        typed: dict[str, np.ndarray] = {}
        for name, dims in OUTPUT_SHAPES.items():
            a = np.asarray(arrays[name])
            if not np.issubdtype(a.dtype, np.floating):
                raise EngineError(f"{where}: output {name} has dtype {a.dtype}, expected floating point")
            if a.ndim != 1 + len(dims):
                raise EngineError(f"{where}: output {name} has shape {a.shape}, expected (N, *{dims})")
            for size, dim in zip(a.shape, ("N", *dims), strict=True):
                if isinstance(dim, int):
                    if size != dim:
                        raise EngineError(
                            f"{where}: output {name} has shape {a.shape}, expected (N, *{dims})"
                        )
                elif sizes.setdefault(dim, size) != size:
                    raise EngineError(
                        f"{where}: output {name} has {dim} = {size}, other outputs {dim} = {sizes[dim]}"
                    )
            typed[name] = np.ascontiguousarray(a, dtype=np.float32)
        return cls(**typed)

    def __len__(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[1])

    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[1])

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in OUTPUT_NAMES}

    def person(self, i: int) -> PersonOutputs:
        return PersonOutputs(**{n: np.asarray(getattr(self, n)[i], dtype=np.float64) for n in OUTPUT_NAMES})

    @classmethod
    def concatenate(cls, parts: Sequence[EngineOutputs]) -> EngineOutputs:
        """The outputs of consecutive person chunks as one batch."""
        if len(parts) == 1:
            return parts[0]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in OUTPUT_NAMES})

"""``BodyTopology``: the constant part of a body model that a consumer of meshes needs (faces, joint
names, kinematic tree, vertex count), without the model's arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from whmr_core.body.skeleton import SMPL_JOINT_NAMES

__all__ = ["BodyTopology"]


@dataclass(frozen=True)
class BodyTopology:
    faces: np.ndarray  # (F, 3) vertex indices
    parents: np.ndarray  # (J,) parent joint index, -1 for the root
    num_vertices: int
    joint_names: tuple[str, ...] = SMPL_JOINT_NAMES
    model_name: str = "unknown"

    def __post_init__(self) -> None:
        faces = np.asarray(self.faces, dtype=np.int64)
        parents = np.asarray(self.parents, dtype=np.int64).reshape(-1)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces: expected (F, 3), got {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= self.num_vertices):
            raise ValueError(f"faces: indices must lie in [0, {self.num_vertices})")
        if len(parents) != len(self.joint_names):
            raise ValueError(f"parents: {len(parents)} joints but {len(self.joint_names)} joint names")
        if len(parents) and (parents[0] != -1 or (parents[1:] < 0).any() or (parents >= len(parents)).any()):
            raise ValueError("parents: expected -1 for the root (joint 0) and valid indices for the others")
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @classmethod
    def from_body_model(cls, model: Any, model_name: str) -> BodyTopology:
        """From a loaded body model (``whmr_core.body.load_body_model``)."""
        faces = np.asarray(model.faces_tensor.detach().cpu().numpy(), dtype=np.int64)
        parents = np.asarray(model.parents.detach().cpu().numpy(), dtype=np.int64)
        num_vertices = int(model.v_template.shape[0])
        return cls(faces, parents, num_vertices, SMPL_JOINT_NAMES[: len(parents)], model_name)

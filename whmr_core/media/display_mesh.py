"""Display meshes: the full free body posed with a person's predicted pose and shape.

The shipped network regresses the low-resolution body (1,229 vertices), which looks thin and faceted over a
photo. Both shipped resolutions share one skeleton (joints within 2 mm), so the full body (13,492 vertices)
posed with the same local rotations and betas, and placed at the same pelvis, is the same body, smoother.
Used for pictures and exported meshes only; the numbers (joints, translation) stay the network's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from whmr_core.runtime.frames import PersonResult

__all__ = ["DisplayBody", "DisplayMesh"]


@dataclass(frozen=True)
class DisplayMesh:
    vertices_camera: np.ndarray  # (V, 3) camera optical frame, as the person's joints_camera
    vertices_gravity: np.ndarray  # (V, 3) <camera>_gravity (ROS axes, z up), as joints_gravity
    faces: np.ndarray  # (F, 3)


class DisplayBody:
    """``DisplayBody("full")(person) -> DisplayMesh``. ``"network"`` returns the person's own mesh.

    ``body``: ``"full"`` or ``"lowres"`` (the shipped free bodies), a SMPL-format model file, or ``"network"``
    (the body the engine predicted, with the topology's faces)."""

    def __init__(self, body: str | Path = "full", network_faces: np.ndarray | None = None) -> None:
        self.name = str(body)
        self.model = None
        if self.name == "network":
            if network_faces is None:
                raise ValueError("DisplayBody('network'): the network body's faces are needed")
            self.faces = np.asarray(network_faces, dtype=np.int64)
            return
        from whmr_core.body import load_body_model

        if self.name in ("full", "lowres"):
            self.model = load_body_model(variant=self.name)  # type: ignore[arg-type]
        else:
            self.model = load_body_model(self.name)
        self.faces = np.asarray(self.model.faces, dtype=np.int64)

    def __call__(self, person: PersonResult) -> DisplayMesh:
        if self.model is None:
            return DisplayMesh(person.vertices_camera, person.vertices_gravity, self.faces)
        rot = np.asarray(person.local_rotations, dtype=np.float32)
        num_joints = self.model.NUM_BODY_JOINTS + 1
        if rot.shape[0] != num_joints:
            raise ValueError(f"display body {self.name}: {num_joints} joints, the person has {rot.shape[0]}")
        betas = np.zeros((1, self.model.num_betas), np.float32)
        b = np.asarray(person.betas, dtype=np.float32).reshape(-1)[: self.model.num_betas]
        betas[0, : len(b)] = b
        with torch.no_grad():
            out = self.model(
                betas=torch.from_numpy(betas),
                global_orient=torch.eye(3).reshape(1, 1, 3, 3),  # the root is applied below, per frame
                body_pose=torch.from_numpy(rot[None, 1:]),
                pose2rot=False,
            )
        local = out.vertices[0].double().numpy() - out.joints[0, 0].double().numpy()  # pelvis-centred
        return DisplayMesh(
            local @ person.root_orientation_camera.T + person.joints_camera[0],
            local @ person.root_orientation_gravity.T + person.joints_gravity[0],
            self.faces,
        )

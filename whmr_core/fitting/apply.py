"""``FittedOutputs``: a person's network outputs re-posed with its fit, for the Pipeline's decode step.

The fit changes the local rotations (root included), the betas and the translation; everything the
Pipeline composes from them is recomputed here as the network computes it: the full mesh by the network's
``BodyLayer``, the joints by the model's joint regressor on that mesh, the gravity-frame body with the
network's OrientCorrect correction kept (delta = R_world R_cam^T from the network, applied to the fitted
root: the fit moves the body in the camera frame, gravity stays where OrientCorrect put it). The crop
camera, depth and focal outputs stay the network's; the translation is the fit's.

The fitted mesh is the body model posed with the fit (``BodyLayer``). A hybrid network's published mesh
is its vertex regressor's, not the body model posed with its own rotations and betas (on the shipped
network the two differ by up to ~50 px in the keypoints of a test photo): a fit starts from the latter,
and a fitted person's mesh is the parametric one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from whmr_core.fitting.fit import one_torch_thread
from whmr_core.graph_io import PersonOutputs

__all__ = ["FittedOutputs"]


class FittedOutputs:
    """``FittedOutputs(body_model)(outputs, fit) -> PersonOutputs`` (``fit``: a ``PersonFit``).

    ``body_model`` is the network's body (``whmr_core.body.resolve(spec).load()``); build once. A fit that
    fell back (``fit.fitted`` False) returns ``outputs`` itself.
    """

    def __init__(self, body_model: Any) -> None:
        from whmr_core.body.assets import body_assets
        from whmr_core.model.body_layer import BodyLayer

        with torch.inference_mode(False):
            assets = body_assets(body_model)
            self.layer = BodyLayer(body_model, assets)
            self.joint_regressor = assets.joint_regressor.double().numpy()

    @one_torch_thread()
    def __call__(
        self, outputs: PersonOutputs, fit: Any, gravity_from_camera: np.ndarray | None = None
    ) -> PersonOutputs:
        """``gravity_from_camera`` (R_c^T): the fitted root is taken to the gravity frame by calibration
        alone; None: by the network's OrientCorrect correction."""
        if not fit.fitted:
            return outputs
        rotmats = np.asarray(fit.rotmats, dtype=np.float64)
        betas = np.asarray(fit.betas, dtype=np.float64).reshape(-1)
        with torch.no_grad():
            verts, _ = self.layer(
                torch.as_tensor(rotmats[None], dtype=torch.float32),
                torch.as_tensor(betas[None], dtype=torch.float32),
            )
        vertices = verts[0].double().numpy()
        joints = self.joint_regressor @ vertices
        # OrientCorrect's correction of the camera-frame root, as the network applies it (network.py).
        delta = (
            outputs.world_root @ outputs.cam_root.T if gravity_from_camera is None else gravity_from_camera
        )
        cam_root = rotmats[0]
        pelvis = joints[:1]
        return dataclasses.replace(
            outputs,
            vertices=vertices,
            joints=joints,
            rotmats=rotmats,
            betas=betas,
            translation=np.asarray(fit.translation, dtype=np.float64).copy(),
            cam_root=cam_root.copy(),
            world_root=delta @ cam_root,
            world_vertices=(vertices - pelvis) @ delta.T,
            world_joints=(joints - pelvis) @ delta.T,
        )

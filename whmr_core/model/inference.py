"""The inference graph that is exported (DESIGN.md section 8): tensors in, a fixed tuple of tensors out.

Holds backbone -> regressors -> depth head -> OrientCorrect and the final mesh; no auxiliary heads.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from whmr_core.model.network import WHMR

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "InferenceGraph"]

INPUT_NAMES = ("crops", "glob_info", "cam_rotation")
OUTPUT_NAMES = (
    "vertices",
    "joints",
    "rotmats",
    "betas",
    "cam_crop",
    "tz",
    "focal",
    "translation",
    "world_root",
    "world_vertices",
    "world_joints",
)


class InferenceGraph(nn.Module):
    """forward(crops, glob_info, cam_rotation) -> tuple in ``OUTPUT_NAMES`` order (eval mode, no aux)."""

    def __init__(self, model: WHMR) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, crops: torch.Tensor, glob_info: torch.Tensor, cam_rotation: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(crops, glob_info, cam_rotation, return_aux=False)
        return tuple(getattr(out, name) for name in OUTPUT_NAMES)

    def export_onnx(self, path: str, batch: int = 2, opset: int = 17) -> None:
        """Legacy (TorchScript) ONNX export with a dynamic person batch."""
        self.eval()
        h, w = self.model.crop_hw
        ref = next(self.model.parameters())
        args = (
            torch.zeros(batch, 3, h, w, dtype=ref.dtype, device=ref.device),
            torch.tensor([[0.0, 0.0, 0.3, 0.8, 0.6]], dtype=ref.dtype, device=ref.device).expand(batch, 5),
            torch.eye(3, dtype=ref.dtype, device=ref.device).expand(batch, 3, 3),
        )
        axes = {name: {0: "persons"} for name in INPUT_NAMES + OUTPUT_NAMES}
        # The legacy exporter is chosen on purpose (opset 17, no onnxscript; FACTS.md): silence its notice.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning
            )
            torch.onnx.export(
                self,
                args,
                path,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )

"""OrientCorrect (paper eq. 6, DESIGN.md section 4): world-frame root orientation from the camera-frame one.

R_b = orthonormalise(base + FC(phi_3^s, glob_info, R_c (6D), R_b^c)), three FC layers. The residual is
added in the 6D representation (the first two columns) because only those survive orthonormalisation.
An absent camera rotation R_c means a level camera (identity).

``base`` (``OrientConfig.base``): "camera" adds the residual to R_b^c, as the paper's eq. 6, so the FC
layers must learn the camera tilt from R_c's numbers; "calibrated" adds it to the calibration-only
estimate R_c^T R_b^c, which is already exact when gravity and R_b^c are, so the FC layers only learn a
correction (a zero residual gives calibration-only exactly).
"""

from __future__ import annotations

import torch
from torch import nn

from whmr_core.model.config import ORIENT_BASES
from whmr_core.rotations import matrix_to_rot6d, rot6d_to_matrix

__all__ = ["OrientCorrect"]


class OrientCorrect(nn.Module):
    def __init__(self, feat_dim: int, hidden: int, base: str = "camera") -> None:
        super().__init__()
        if base not in ORIENT_BASES:
            raise ValueError(f"OrientCorrect base: one of {', '.join(ORIENT_BASES)}, got {base!r}")
        self.base = base
        self.fc = nn.Sequential(
            nn.Linear(feat_dim + 5 + 6 + 6, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 6),
        )
        nn.init.xavier_uniform_(self.fc[-1].weight, gain=0.01)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(
        self,
        feat: torch.Tensor,
        glob_info: torch.Tensor,
        cam_root: torch.Tensor,
        cam_rotation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """feat (N,D) phi_3^s, glob_info (N,5), R_b^c (N,3,3), R_c (N,3,3) or None -> R_b (N,3,3)."""
        if cam_rotation is None:
            cam_rotation = torch.eye(3, dtype=cam_root.dtype, device=cam_root.device).expand_as(cam_root)
        root6d = matrix_to_rot6d(cam_root)
        delta = self.fc(torch.cat([feat, glob_info, matrix_to_rot6d(cam_rotation), root6d], dim=1))
        if self.base == "calibrated":
            return rot6d_to_matrix(matrix_to_rot6d(cam_rotation.transpose(1, 2) @ cam_root) + delta)
        return rot6d_to_matrix(root6d + delta)  # eq. 6

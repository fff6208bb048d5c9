"""OrientCorrect (paper eq. 6, DESIGN.md section 4): world-frame root orientation from the camera-frame one.

R_b = orthonormalise(R_b^c + FC(phi_3^s, glob_info, R_c (6D), R_b^c)), three FC layers. The residual is
added in the 6D representation (the first two columns) because only those survive orthonormalisation.
An absent camera rotation R_c means a level camera (identity).
"""

from __future__ import annotations

import torch
from torch import nn

from whmr_core.rotations import matrix_to_rot6d, rot6d_to_matrix

__all__ = ["OrientCorrect"]


class OrientCorrect(nn.Module):
    def __init__(self, feat_dim: int, hidden: int) -> None:
        super().__init__()
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
        return rot6d_to_matrix(root6d + delta)  # eq. 6

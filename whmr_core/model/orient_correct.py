"""OrientCorrect (paper eq. 6, DESIGN.md section 4): world-frame root orientation from the camera-frame one.

R_b = orthonormalise(R_b^c + FC(phi_3^s, glob_info, R_c (6D), R_b^c)), three FC layers. By default the
residual is added in the 6D representation (the first two columns) because only those survive
orthonormalisation; ``rotation="matrix"`` is the release's form (R_b^c as 9 numbers, a 9-D residual,
unbiased Gram-Schmidt at eval only). An absent camera rotation R_c means a level camera (identity).
"""

from __future__ import annotations

import torch
from torch import nn

from whmr_core.rotations import matrix_to_rot6d, rot6d_to_matrix, unbiased_gram_schmidt

__all__ = ["OrientCorrect"]


class OrientCorrect(nn.Module):
    def __init__(
        self,
        feat_dim: int,
        hidden: int,
        activation: str = "relu",
        dropout: float = 0.0,
        rotation: str = "rot6d",
    ) -> None:
        super().__init__()
        self.matrix = rotation == "matrix"
        root_dim = 9 if self.matrix else 6

        def act() -> list[nn.Module]:
            layers: list[nn.Module] = [nn.ReLU(inplace=True)] if activation == "relu" else []
            return layers + ([nn.Dropout(dropout)] if dropout > 0 else [])

        self.fc = nn.Sequential(
            nn.Linear(feat_dim + 5 + 6 + root_dim, hidden),
            *act(),
            nn.Linear(hidden, hidden),
            *act(),
            nn.Linear(hidden, root_dim),
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
        root = cam_root.flatten(-2) if self.matrix else matrix_to_rot6d(cam_root)
        delta = self.fc(torch.cat([feat, glob_info, matrix_to_rot6d(cam_rotation), root], dim=1))
        if self.matrix:
            r = (root + delta).reshape(-1, 3, 3)
            return r if self.training else unbiased_gram_schmidt(r)
        return rot6d_to_matrix(root + delta)  # eq. 6

"""OrientCorrect (paper eq. 6, DESIGN.md section 4): world-frame root orientation from the camera-frame one.

R_b = orthonormalise(base + FC(phi_3^s, glob_info, R_c (6D), R_b^c)), three FC layers. By default the
residual is added in the 6D representation (the first two columns) because only those survive
orthonormalisation; ``rotation="matrix"`` is the release's form (the root as 9 numbers, a 9-D residual,
unbiased Gram-Schmidt at eval only). An absent camera rotation R_c means a level camera (identity).

``base`` (``OrientConfig.base``): "camera" adds the residual to R_b^c, as the paper's eq. 6, so the FC
layers must learn the camera tilt from R_c's numbers; "calibrated" adds it to the calibration-only
estimate R_c^T R_b^c, which is already exact when gravity and R_b^c are, so the FC layers only learn a
correction (a zero residual gives calibration-only exactly).
"""

from __future__ import annotations

import torch
from torch import nn

from whmr_core.model.config import ORIENT_BASES
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
        base: str = "camera",
    ) -> None:
        super().__init__()
        if base not in ORIENT_BASES:
            raise ValueError(f"OrientCorrect base: one of {', '.join(ORIENT_BASES)}, got {base!r}")
        self.base = base
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
        if self.base == "calibrated":  # the residual corrects calibration-only R_c^T R_b^c
            calib = cam_rotation.transpose(1, 2) @ cam_root
            root = calib.flatten(-2) if self.matrix else matrix_to_rot6d(calib)
        if self.matrix:
            r = (root + delta).reshape(-1, 3, 3)
            return r if self.training else unbiased_gram_schmidt(r)
        return rot6d_to_matrix(root + delta)  # eq. 6 (base "camera")

"""Priors that keep a fitted body human: a pose prior learnt from whmr's pose generator and joint limits.

``PosePrior``: a Gaussian mixture over the 23 body joints' rotation vectors (``scripts/build_pose_prior.py``
fits it to ``whmr_core.data.poses.sample_pose`` draws; the asset records the command and the generator's
hash). Its energy is SMPLify's max-mixture approximation: the smallest component negative log-likelihood,
shifted so that the best pose of the best component costs 0.

``joint_limit_energy``: squared excess of each rotation-vector component over the anatomical ranges of
``whmr_core.data.poses.JOINT_LIMITS_DEG`` (the box the pose generator clips to), zero inside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from whmr_core.data.poses import JOINT_LIMITS_DEG
from whmr_core.fitting.body import row_chunks

__all__ = ["DEFAULT_PRIOR_PATH", "PosePrior", "joint_limit_energy", "joint_limits_rad"]

DEFAULT_PRIOR_PATH = Path(__file__).resolve().parent.parent / "assets" / "fitting" / "pose_prior.npz"
_KEYS = ("weights", "means", "precision_chol", "nll_const")


class PosePrior(nn.Module):
    """``prior(body_pose (N,23,3) rotation vectors) -> (N,)`` energy, >= 0 (0 at the best mode)."""

    def __init__(self, path: str | Path = DEFAULT_PRIOR_PATH) -> None:
        super().__init__()
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"pose prior {file}: no such file (rebuild: scripts/build_pose_prior.py)")
        try:
            with np.load(file, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k], dtype=np.float32) for k in _KEYS}
                self.metadata = json.loads(str(data["metadata"])) if "metadata" in data.files else {}
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"pose prior {file}: not a pose prior file ({exc})") from exc
        k, d = arrays["means"].shape
        if d != 69 or arrays["precision_chol"].shape != (k, d, d) or arrays["nll_const"].shape != (k,):
            raise ValueError(f"pose prior {file}: expected {k} components over 69 values, got other shapes")
        if not all(np.isfinite(a).all() for a in arrays.values()):
            raise ValueError(f"pose prior {file}: non-finite values")
        self.register_buffer("means", torch.from_numpy(arrays["means"]), persistent=False)
        self.register_buffer("precision_chol", torch.from_numpy(arrays["precision_chol"]), persistent=False)
        const = torch.from_numpy(arrays["nll_const"])
        self.register_buffer("nll_const", const - const.min(), persistent=False)

    def forward(self, body_pose: torch.Tensor, component: torch.Tensor | None = None) -> torch.Tensor:
        """Energy of the best component, or of ``component`` (N,) per pose (a fit picks the component at
        its start and keeps it: a fraction of the cost, and no switching between modes mid-fit)."""
        if component is None:
            # One component at a time: (N,69,69) products stay below ATen's parallel grain (N <= 6).
            return torch.stack([self._nll(body_pose, k) for k in range(len(self.means))], -1).min(-1).values
        return self._nll(body_pose, component)

    def best_component(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(N,) index of the component with the lowest energy for each pose (all components in one product:
        the fit calls this on one torch thread, ``fit.one_torch_thread``)."""
        with torch.no_grad():
            diff = body_pose.reshape(body_pose.shape[0], 1, -1).to(self.means) - self.means  # (N,K,69)
            z = (diff.unsqueeze(-1) * self.precision_chol).sum(-2)
            return (0.5 * (z * z).sum(-1) + self.nll_const).argmin(-1)

    def _nll(self, body_pose: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
        """(N,) shifted negative log-likelihood of component ``k`` (one index, or one per pose)."""
        diff = body_pose.reshape(body_pose.shape[0], -1) - self.means[k]  # (N,69)
        # Mahalanobis distance with precision = L L^T: |L^T d|^2 (in thread-free chunks of poses).
        chol = self.precision_chol[k]
        z = torch.cat([(diff[r].unsqueeze(-1) * chol).sum(-2) for r in row_chunks(len(diff), chol.numel())])
        return 0.5 * (z * z).sum(-1) + self.nll_const[k]


def joint_limits_rad(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) (24,3) radians per joint and rotation-vector component; row 0 (the root) is unbounded."""
    lim = torch.tensor(np.radians(JOINT_LIMITS_DEG), dtype=dtype)
    lo, hi = lim[..., 0].clone(), lim[..., 1].clone()
    lo[0], hi[0] = -float("inf"), float("inf")  # the root's box is the generator's lean, not anatomy
    return lo, hi


def joint_limit_energy(body_pose: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(N,23,3) rotation vectors, limits (23,3) -> (N,) sum of squared excess (radians^2)."""
    excess = torch.relu(body_pose - hi) + torch.relu(lo - body_pose)
    return (excess * excess).sum((-1, -2))

"""``FitObjective``: the fit's energy over one batch of persons, its value and its Gauss-Newton linearisation.

Per person, with the COCO-17 points X_k of the posed body (``KeypointBody``), translation t, camera K,
detected keypoints x_k with weights w_k (confidence, 0 where not confident) and the person's size s:

    E = sum_k w_k rho(|pi_K(X_k + t) - x_k|^2 / s^2; sigma) / sum_k w_k               robust 2D reprojection
      + w_3d sum_k v_k rho(|(X_k - Y_k) - c(X - Y)|^2; sigma_3d) / sum_k v_k         optional 3D keypoints
      + w_prior (1/2 |L^T (theta - mu)|^2 + c)                  the pose prior's component (precision L L^T)
      + w_limits |excess of theta over the joint limits|^2
      + w_pose |theta - theta_0|^2 + w_shape |beta - beta_0|^2 + w_depth log(t_z / t_z0)^2
      + w_up rho(|(I - u u^T) T(X)|^2 / L^2; sigma_up)       optional upright torso (u: up, where known)

with T(X) the hips' midpoint -> shoulders' midpoint and L = ``TORSO_M``; c(.) = sum_k v_k (.)_k / sum_k v_k,
the v-weighted mean: the 3D keypoints Y (any origin) are compared after the translation that fits them
best, not at the hips' midpoint. A 3D keypoint model's points are not the body's joints: BlazePose's hips
lie ~8 cm higher than the body's hip joints and ~2.5 cm outside them (its thighs 40-42 cm against the
body's 31-33 on the real tune frames), so centring both at their hips moved every other target by that
difference (``FitTargets.mode_3d`` "hips": that former comparison, kept for measurements).
rho(e2; sigma) = sigma^2 e2 / (sigma^2 + e2) (Geman-McClure): quadratic for small errors, bounded for
outliers. The unknowns per person, flat (``x``): the root's change omega (3, camera axes: R_0 = exp(omega)
R_0,start), the 23 body joints' rotation vectors theta (69), betas, translation t (3, metres).

``linearise`` returns E with J^T r and J^T J for E = sum r^2, the robust terms by their IRLS weights
(w rho'(e2), whose gradient is the robust term's own): the point Jacobians are analytic
(``KeypointBody.linearised``, chained through the rotation vectors' right Jacobians), the prior, limits
and pulls are quadratic with closed-form blocks. Float64: the normal equations lose half the digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from whmr_core.body.keypoints import COCO17_NAMES
from whmr_core.fitting.body import KeypointBody
from whmr_core.fitting.priors import joint_limit_energy
from whmr_core.fitting.so3 import exp, matmul3, right_jacobian

__all__ = ["FitObjective", "FitTargets", "robust", "robust_weight"]

_LEFT_HIP, _RIGHT_HIP = COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip")
_LEFT_SHOULDER, _RIGHT_SHOULDER = COCO17_NAMES.index("left_shoulder"), COCO17_NAMES.index("right_shoulder")
TORSO_M = 0.5  # metres: the upright term's unit, about an adult's hips-to-shoulders length


def _torso(a: torch.Tensor) -> torch.Tensor:
    """Hips' midpoint -> shoulders' midpoint of COCO-17 points (or their derivatives) along dim 1."""
    return 0.5 * (a[:, _LEFT_SHOULDER] + a[:, _RIGHT_SHOULDER]) - 0.5 * (a[:, _LEFT_HIP] + a[:, _RIGHT_HIP])


NUM_BODY_JOINTS = 23


def robust(e2: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure on squared errors."""
    s2 = sigma * sigma
    return s2 * e2 / (s2 + e2)


def robust_weight(e2: torch.Tensor, sigma: float) -> torch.Tensor:
    """d robust / d e2: the IRLS weight of a squared error."""
    s2 = sigma * sigma
    return (s2 / (s2 + e2)) ** 2


@dataclass(frozen=True)
class FitTargets:
    """What m persons' bodies are fitted to, and the energy's weights (float64 tensors)."""

    keypoints: torch.Tensor  # (m,17,2) pixels
    weights: torch.Tensor  # (m,17) confidence where confident, else 0
    size: torch.Tensor  # (m,) pixels
    camera: torch.Tensor  # (m,3,3) K
    theta_start: torch.Tensor  # (m,23,3) the pose the fit is pulled towards
    betas_start: torch.Tensor  # (m,B)
    depth_start: torch.Tensor  # (m,) the network's t_z
    prior_mean: torch.Tensor  # (m,69) the chosen prior component per person
    prior_precision: torch.Tensor  # (m,69,69)
    prior_const: torch.Tensor  # (m,)
    limits_lo: torch.Tensor  # (23,3) radians
    limits_hi: torch.Tensor  # (23,3)
    sigma: float
    min_depth: float
    w_prior: float
    w_limits: float
    w_pose: float
    w_shape: float
    w_depth: float
    keypoints_3d: torch.Tensor | None = None  # (m,17,3) metres, camera axes, any origin
    weights_3d: torch.Tensor | None = None  # (m,17), 0 for all where either hip is missing
    sigma_3d: float = 0.15
    w_3d: float = 1.0
    mode_3d: str = "centroid"  # 3D keypoints compared about their weighted mean; "hips": hip-centred
    up: torch.Tensor | None = None  # (m,3) unit, opposite gravity in camera axes; None: no upright term
    sigma_up: float = 0.5
    w_up: float = 0.0


class FitObjective:
    """E(x) and its linearisation for m persons whose root rotations start at ``root_start`` (m,3,3)."""

    def __init__(self, body: KeypointBody, targets: FitTargets, root_start: torch.Tensor) -> None:
        self.body = body  # float64
        self.t = targets
        self.root_start = root_start
        self.num_betas = body.num_betas
        self.size = 3 + 3 * NUM_BODY_JOINTS + self.num_betas + 3
        if targets.mode_3d not in ("centroid", "hips"):
            raise ValueError(f"mode_3d: centroid or hips, got {targets.mode_3d!r}")

    def pack(self, omega: torch.Tensor, theta: torch.Tensor, betas: torch.Tensor, t: torch.Tensor):
        return torch.cat([omega, theta.reshape(len(theta), -1), betas, t], 1)

    def unpack(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (rotmats (m,24,3,3) local with the camera-frame root, theta (m,23,3), betas, t (m,3))."""
        m, nb = len(x), self.num_betas
        pose = x[:, :72].reshape(m, 24, 3)
        rot = exp(pose)
        rot = torch.cat([matmul3(rot[:, 0], self.root_start)[:, None], rot[:, 1:]], 1)
        return rot, pose[:, 1:], x[:, 72 : 72 + nb], x[:, 72 + nb :]

    # -- the terms ---------------------------------------------------------------------------------------
    def keypoint_energy(self, points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(m,) the 2D (+3D) keypoint terms of model points (m,17,3) placed at t (m,3)."""
        tg = self.t
        e2 = ((self._project(points + t[:, None]) - tg.keypoints) ** 2).sum(-1) / tg.size[:, None] ** 2
        energy = (tg.weights * robust(e2, tg.sigma)).sum(1) / tg.weights.sum(1)
        if tg.keypoints_3d is not None and tg.w_3d > 0:
            d2 = (self._residual_3d(points) ** 2).sum(-1)
            w3 = tg.weights_3d
            energy = energy + tg.w_3d * (w3 * robust(d2, tg.sigma_3d)).sum(1) / w3.sum(1).clamp_min(1e-9)
        return energy

    def _residual_3d(self, points: torch.Tensor) -> torch.Tensor:
        """(m,17,3) the 3D term's residuals of model points (m,17,3): model minus 3D keypoints, less their
        weighted mean ("centroid") or less the difference at the hips' midpoint ("hips")."""
        if self.t.mode_3d == "hips":
            return self._hip_centred_3d(points)
        d = points - self.t.keypoints_3d
        return d - (self._centring()[..., None] * d).sum(1, keepdim=True)

    def _jacobian_3d(self, d_x: torch.Tensor) -> torch.Tensor:
        """d residual_3d / d x (m,17,3,P) from the points' derivatives d_x (m,17,3,P)."""
        if self.t.mode_3d == "hips":
            return d_x - 0.5 * (d_x[:, _LEFT_HIP] + d_x[:, _RIGHT_HIP])[:, None]
        return d_x - (self._centring()[..., None, None] * d_x).sum(1, keepdim=True)

    def _centring(self) -> torch.Tensor:
        w = self.t.weights_3d
        return w / w.sum(1, keepdim=True).clamp_min(1e-9)  # (m,17)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        rot, theta, betas, t = self.unpack(x)
        points = self.body(rot, betas)
        energy = self.keypoint_energy(points, t) + self._regulariser_energy(theta, betas, t)
        if self._upright_on:
            energy = energy + self.t.w_up * robust((self._sideways(points) ** 2).sum(-1), self.t.sigma_up)
        return energy

    @property
    def _upright_on(self) -> bool:
        return self.t.up is not None and self.t.w_up > 0

    def _sideways(self, points: torch.Tensor) -> torch.Tensor:
        """(m,3) the torso's (hips' midpoint -> shoulders' midpoint) part across the up direction, in units of
        ``TORSO_M``: zero for an upright torso, the sine of its tilt for one of that length."""
        u = self.t.up
        d = _torso(points)
        return (d - (d * u).sum(-1, keepdim=True) * u) / TORSO_M

    def linearise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(E (m,), J^T r (m,P), J^T J (m,P,P)) at x."""
        tg = self.t
        m, nb = len(x), self.num_betas
        rot, theta, betas, t = self.unpack(x)
        # Unknowns per joint as local turns: the root's omega turns the camera axes, exp(omega + d) =
        # exp(J_l d) exp(omega) with J_l = J_r^T, i.e. the local turn R_0^T J_l d; a body joint's theta
        # turns by J_r(theta) d.
        jr = right_jacobian(x[:, :72].reshape(m, 24, 3))
        root_map = matmul3(rot[:, 0].transpose(-1, -2), jr[:, 0].transpose(-1, -2))
        maps = torch.cat([root_map[:, None], jr[:, 1:]], 1)
        points, d_rot, d_betas = self.body.linearised(rot, betas, maps)
        eye = torch.eye(3, dtype=x.dtype).expand(m, 17, 3, 3)
        d_x = torch.cat([d_rot.reshape(m, 17, 3, -1), d_betas, eye], -1)  # (m,17,3,P)

        cam = points + t[:, None]
        z = cam[..., 2]
        in_front = z > tg.min_depth
        zc = z.clamp_min(tg.min_depth)
        fx, fy = tg.camera[:, None, 0, 0], tg.camera[:, None, 1, 1]
        uv = self._project(cam)
        err = (uv - tg.keypoints) / tg.size[:, None, None]  # (m,17,2) in sizes
        e2 = (err**2).sum(-1)
        wsum = tg.weights.sum(1, keepdim=True)
        energy = (tg.weights * robust(e2, tg.sigma)).sum(1) / wsum[:, 0]
        coef = torch.sqrt(tg.weights * robust_weight(e2, tg.sigma) / wsum)  # (m,17)
        # d pixel / d camera point, in sizes; nothing moves a point clamped at the minimum depth.
        zero = torch.zeros_like(zc)
        d_u = torch.stack(
            [fx / zc, zero, torch.where(in_front, -(uv[..., 0] - tg.camera[:, None, 0, 2]) / zc, zero)], -1
        )
        d_v = torch.stack(
            [zero, fy / zc, torch.where(in_front, -(uv[..., 1] - tg.camera[:, None, 1, 2]) / zc, zero)], -1
        )
        d_uv = torch.stack([d_u, d_v], -2) * (coef / tg.size[:, None])[..., None, None]  # (m,17,2,3)
        rows_j = [sum(d_uv[..., c, None] * d_x[:, :, None, c] for c in range(3)).reshape(m, 34, -1)]
        rows_r = [(coef[..., None] * err).reshape(m, 34)]
        if tg.keypoints_3d is not None and tg.w_3d > 0:
            d3 = self._residual_3d(points)  # (m,17,3)
            e3 = (d3**2).sum(-1)
            w3 = tg.weights_3d
            w3sum = w3.sum(1, keepdim=True).clamp_min(1e-9)
            energy = energy + tg.w_3d * (w3 * robust(e3, tg.sigma_3d)).sum(1) / w3sum[:, 0]
            coef3 = torch.sqrt(tg.w_3d * w3 * robust_weight(e3, tg.sigma_3d) / w3sum)
            rows_j.append((coef3[..., None, None] * self._jacobian_3d(d_x)).reshape(m, 51, -1))
            rows_r.append((coef3[..., None] * d3).reshape(m, 51))
        if self._upright_on:
            side = self._sideways(points)  # (m,3)
            e_up = (side**2).sum(-1)
            energy = energy + tg.w_up * robust(e_up, tg.sigma_up)
            coef_up = torch.sqrt(tg.w_up * robust_weight(e_up, tg.sigma_up))  # (m,)
            across = torch.eye(3, dtype=x.dtype) - tg.up[:, :, None] * tg.up[:, None, :]  # (m,3,3)
            d_torso = _torso(d_x)  # (m,3,P): the torso's derivative
            rows_j.append(coef_up[:, None, None] * (across @ d_torso) / TORSO_M)
            rows_r.append(coef_up[:, None] * side)
        jac, res = torch.cat(rows_j, 1), torch.cat(rows_r, 1)
        grad = (jac * res[..., None]).sum(1)
        # numpy's OpenBLAS keeps products this small on the calling thread; torch's MKL wakes its OpenMP
        # pool, which on a busy 2-core machine took milliseconds per product.
        jac_np = jac.numpy()
        hess = torch.from_numpy(np.matmul(jac_np.transpose(0, 2, 1), jac_np))

        # Quadratic terms, closed form: body pose block (3..72), betas, depth.
        pose = slice(3, 72)
        diff = theta.reshape(m, -1) - tg.prior_mean
        p_diff = (tg.prior_precision * diff[:, None]).sum(-1)
        over = torch.relu(theta - tg.limits_hi) - torch.relu(tg.limits_lo - theta)
        hit = (over != 0).to(x.dtype).reshape(m, -1)
        pull = theta - tg.theta_start
        grad[:, pose] += (
            0.5 * tg.w_prior * p_diff + tg.w_limits * over.reshape(m, -1) + tg.w_pose * pull.reshape(m, -1)
        )
        hess[:, pose, pose] += 0.5 * tg.w_prior * tg.prior_precision
        idx = torch.arange(3, 72)
        hess[:, idx, idx] += tg.w_limits * hit + tg.w_pose
        shape = slice(72, 72 + nb)
        grad[:, shape] += tg.w_shape * (betas - tg.betas_start)
        idx = torch.arange(72, 72 + nb)
        hess[:, idx, idx] += tg.w_shape
        tz = t[:, 2].clamp_min(1e-3)
        log_depth = torch.log(tz / tg.depth_start)
        grad[:, -1] += tg.w_depth * log_depth / tz
        hess[:, -1, -1] += tg.w_depth / tz**2
        return energy + self._regulariser_energy(theta, betas, t), grad, hess

    def _regulariser_energy(self, theta: torch.Tensor, betas: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tg = self.t
        m = len(theta)
        diff = theta.reshape(m, -1) - tg.prior_mean
        prior = 0.5 * (diff * (tg.prior_precision * diff[:, None]).sum(-1)).sum(-1) + tg.prior_const
        return (
            tg.w_prior * prior
            + tg.w_limits * joint_limit_energy(theta, tg.limits_lo, tg.limits_hi)
            + tg.w_pose * ((theta - tg.theta_start) ** 2).sum((-1, -2))
            + tg.w_shape * ((betas - tg.betas_start) ** 2).sum(-1)
            + tg.w_depth * torch.log(t[:, 2].clamp_min(1e-3) / tg.depth_start) ** 2
        )

    def _project(self, cam: torch.Tensor) -> torch.Tensor:
        k = self.t.camera
        z = cam[..., 2].clamp_min(self.t.min_depth)
        u = k[:, None, 0, 0] * cam[..., 0] / z + k[:, None, 0, 2]
        v = k[:, None, 1, 1] * cam[..., 1] / z + k[:, None, 1, 2]
        return torch.stack([u, v], -1)

    def _hip_centred_3d(self, points: torch.Tensor) -> torch.Tensor:
        """(m,17,3) hip-centred model points minus hip-centred 3D keypoints."""
        y = self.t.keypoints_3d
        x_c = points - 0.5 * (points[:, _LEFT_HIP] + points[:, _RIGHT_HIP])[:, None]
        y_c = y - 0.5 * (y[:, _LEFT_HIP] + y[:, _RIGHT_HIP])[:, None]
        return x_c - y_c

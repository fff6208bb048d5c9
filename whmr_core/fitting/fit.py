"""``BodyFitter``: the network's bodies fitted to 2D keypoints (and optional 3D ones), batched over persons.

Per person, with COCO-17 points X_k(theta, beta) of the body model (``KeypointBody``), translation t,
camera K (fx, fy, cx, cy), detected keypoints x_k with confidences c_k (w_k = c_k where c_k >= the
threshold, else 0) and the person's size s (the larger side of the confident keypoints' box):

    E = sum_k w_k rho(|pi_K(X_k + t) - x_k| / s) / sum_k w_k                 robust 2D reprojection
      + w_3d sum_k v_k rho3(|(X_k - Y_k) - c(X - Y)|) / sum_k v_k            optional 3D keypoints Y
      + w_prior P(theta) + w_limits L(theta)                                  pose prior, joint limits
      + w_up rho_up(|torso across the up direction u|^2)                     upright torso, where u is known
      + w_pose |theta - theta_0|^2 + w_shape |beta - beta_0|^2 + w_depth log(t_z / t_z0)^2
                                                                              stay near the network

rho(e^2) = sigma^2 e^2 / (sigma^2 + e^2) (Geman-McClure): quadratic for small errors, bounded for outliers.
c(.) is the v-weighted mean over the keypoints: 3D keypoints (any origin) are compared after the
translation that fits them best (a 3D model's hips are not the body's hip joints).
theta are the 23 body joints' rotation vectors; the root is the start's root times a free rotation.
Before the fit: the sideways translation that best places the network body on the keypoints (closed
form), the mirror and turn checks (the network body's depth-ambiguity twin, ``mirror_bodies``, and both
turned in the image plane, against the keypoints), and the warm start where it has the lower energy. A
batched Levenberg-Marquardt (``levenberg_marquardt``: per person damping and acceptance, one linearisation
per iteration) on the energy's analytic Gauss-Newton form (``objective.FitObjective``, float64) runs a
fixed number of iterations. docs/fitting.md has the weights and timings.

Safety: a person with too few confident keypoints, a camera that is not one, or a fit that is not finite,
whose energy grew, whose translation jumped, that came too near, or whose keypoints still miss by more
than a quarter of the person's size gets the network's body back unchanged, with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core.body.keypoints import COCO17_NAMES, POSE_MODEL_HIP_LIFT
from whmr_core.body.skeleton import SMPL_FLIP_PERM
from whmr_core.fitting.body import KeypointBody
from whmr_core.fitting.levenberg_marquardt import levenberg_marquardt
from whmr_core.fitting.objective import FitObjective, FitTargets
from whmr_core.fitting.priors import DEFAULT_PRIOR_PATH, PosePrior, joint_limits_rad
from whmr_core.fitting.so3 import exp, matmul3
from whmr_core.rotations import matrix_to_axis_angle, orthonormalise

__all__ = ["BodyFitter", "FitConfig", "FitResult", "PersonFit", "mirror_bodies", "one_torch_thread"]

NUM_KEYPOINTS = len(COCO17_NAMES)
_LEFT_HIP, _RIGHT_HIP = COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip")


@dataclass(frozen=True)
class FitConfig:
    """Fit settings; the energy's terms are in the module docstring, defaults in docs/fitting.md."""

    iterations: int = 4  # Levenberg-Marquardt iterations (one linearisation each)
    confidence_threshold: float = 0.3  # keypoints below it are ignored
    min_keypoints: int = 6  # confident keypoints needed to fit at all
    robust_sigma: float = 0.4  # Geman-McClure scale, fraction of the person's size
    robust_sigma_3d_m: float = 0.15  # the same for 3D keypoints, metres
    w_keypoints_3d: float = 1.0
    # The body's points matched to the keypoints' hips: its hip joints raised to where 2D pose models put
    # hips (body.keypoints.POSE_MODEL_HIP_LIFT); 0: the hip joints themselves, as before. Demo sequence:
    # MPJPE 64.7 -> 59.0 mm; synthetic people on true boxes, no 3D landmarks: 121.5 -> 112.4 mm.
    coco_hip_lift: float = POSE_MODEL_HIP_LIFT
    # 3D keypoints compared after the translation that fits them best ("centroid"; a 3D model's hips are
    # not the body's) or at the hips' midpoint ("hips", before; objective.FitObjective).
    keypoints_3d_align: str = "centroid"
    # Upright torso where the camera's up is known (gravity): 2D keypoints leave the torso's lean in depth
    # open; this picks the most upright of the bodies that fit them. Robust, so a lying person pays little.
    # Demo sequence: MPJPE 114 -> 61 mm; synthetic poses of every family: median 36.2 -> 36.4 mm.
    w_upright: float = 0.01
    robust_sigma_upright: float = 0.5  # Geman-McClure scale of the torso's sideways share (sin of its tilt)
    w_pose_prior: float = 1e-4
    w_joint_limits: float = 0.1
    w_init_pose: float = 1e-3
    w_shape: float = 1e-4
    w_depth: float = 0.3
    mirror_check: bool = True  # start from the network body's mirror when that fits the keypoints much better
    mirror_ratio: float = 0.5  # ... its data energy below this share of the network body's
    turn_check: bool = True  # also try the bodies turned 90/180/270 degrees in the image plane
    max_translation_jump: float = 0.5  # fallback when the fit moves the body by more than this x its depth
    max_error: float = 0.25  # fallback when the fitted keypoints still miss by more than this x the size
    min_depth_m: float = 0.05  # fallback when the fitted body comes nearer than this (or behind the camera)

    def __post_init__(self) -> None:
        if self.keypoints_3d_align not in ("centroid", "hips"):
            raise ValueError(
                f"FitConfig.keypoints_3d_align: centroid or hips, got {self.keypoints_3d_align!r}"
            )
        if self.iterations < 1 or self.min_keypoints < 1:
            raise ValueError("FitConfig: iterations and min_keypoints must be >= 1")
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError("FitConfig.confidence_threshold must lie in [0, 1]")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not (np.isfinite(v) and v >= 0):
                raise ValueError(f"FitConfig.{f.name} must be finite and >= 0, got {v}")


@dataclass(frozen=True)
class PersonFit:
    """One person's fit (``FitResult.person(i)``): the warm start of its track's next frame."""

    rotmats: np.ndarray  # (J,3,3) local rotations, root = camera-frame root orientation
    betas: np.ndarray  # (B,)
    translation: np.ndarray  # (3,) t_b, camera optical frame
    fitted: bool
    fallback_reason: str | None
    mirrored: bool
    init_source: str
    reprojection_px_before: float
    reprojection_px_after: float


@dataclass(frozen=True)
class FitResult:
    """A batch of fits. Where ``fitted`` is False the body is the network's, unchanged (float64)."""

    rotmats: np.ndarray  # (N,J,3,3) float64 local rotations, root = camera-frame root orientation
    betas: np.ndarray  # (N,B) float64
    translation: np.ndarray  # (N,3) float64, t_b: camera point = model point + t_b
    fitted: np.ndarray  # (N,) bool
    fallback_reason: tuple[str | None, ...]  # why the network's body was kept; None where fitted
    # The network's body was left/right mirrored against the keypoints: the fit started from its mirror.
    mirrored: np.ndarray  # (N,) bool
    # "network", "mirrored", "turned 90|180|270", "mirrored, turned ..." or "warm_start"
    init_source: tuple[str, ...]
    # Confidence-weighted mean distance (pixels) of the confident keypoints to the network's body and to
    # the result; NaN where no keypoint is confident.
    reprojection_px_before: np.ndarray  # (N,)
    reprojection_px_after: np.ndarray  # (N,)
    iterations: int  # iterations run (the batch's, the same for every person)
    energy_before: np.ndarray = field(repr=False)  # (N,) E at the start (NaN where not fitted)
    energy_after: np.ndarray = field(repr=False)  # (N,)

    def __len__(self) -> int:
        return len(self.fitted)

    def person(self, i: int) -> PersonFit:
        return PersonFit(
            self.rotmats[i],
            self.betas[i],
            self.translation[i],
            bool(self.fitted[i]),
            self.fallback_reason[i],
            bool(self.mirrored[i]),
            self.init_source[i],
            float(self.reprojection_px_before[i]),
            float(self.reprojection_px_after[i]),
        )


_M = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))  # body-frame left/right reflection
_D = torch.diag(torch.tensor([1.0, 1.0, -1.0]))  # camera-frame depth reflection
_FLIP = torch.tensor(SMPL_FLIP_PERM)
TURNS_DEG = (90, 180, 270)  # in-plane turns the turn check tries


def mirror_bodies(rotmats: torch.Tensor) -> torch.Tensor:
    """The depth-ambiguity twin of each body: left and right swapped, seen (nearly) the same in the image.

    Local pose mirrored (joint j takes M R_flip(j) M, M the body's left/right reflection: rotation vector
    (x, -y, -z) of its twin, as ``poses.py`` mirrors), root R_0 -> D R_0 M (D reflects depth about the
    pelvis): each point lands at its twin's depth-reflected place, so its projection barely moves while
    its label swaps sides. The translation stays.
    """
    m, d = _M.to(rotmats), _D.to(rotmats)
    local = matmul3(matmul3(m, rotmats.index_select(1, _FLIP.to(rotmats.device))), m)
    root = matmul3(matmul3(d, rotmats[:, 0]), m)
    return torch.cat([root[:, None], local[:, 1:]], 1)


def solve_translation(
    points: torch.Tensor,
    keypoints: torch.Tensor,
    weights: torch.Tensor,
    K: torch.Tensor,
    t_start: torch.Tensor,
) -> torch.Tensor:
    """The sideways translation that best places model points (N,P,3) on pixels (N,P,2) at the depth of
    ``t_start`` (N,3), in closed form.

    With normalised rays (a, b) = ((u - cx) / fx, (v - cy) / fy), X + t lies on the ray where
    X_x + t_x = a (X_z + t_z) and X_y + t_y = b (X_z + t_z): with t_z fixed, t_x and t_y are weighted
    means. The depth is left alone: 2D keypoints give it only through the body's size, which the network
    knows no better than its depth (on real photos letting them set it doubled the depth error).
    """
    z = points[..., 2] + t_start[:, None, 2]
    w = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
    a = (keypoints[..., 0] - K[:, None, 0, 2]) / K[:, None, 0, 0]
    b = (keypoints[..., 1] - K[:, None, 1, 2]) / K[:, None, 1, 1]
    tx = (w * (a * z - points[..., 0])).sum(1)
    ty = (w * (b * z - points[..., 1])).sum(1)
    return torch.stack([tx, ty, t_start[:, 2]], 1)


def _project(points: torch.Tensor, t: torch.Tensor, K: torch.Tensor, min_depth: float) -> torch.Tensor:
    """Pinhole projection of model points (N,P,3) placed at t (N,3) with K (N,3,3) -> (N,P,2) pixels."""
    cam = points + t[:, None]
    z = cam[..., 2].clamp_min(min_depth)
    u = K[:, None, 0, 0] * cam[..., 0] / z + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * cam[..., 1] / z + K[:, None, 1, 2]
    return torch.stack([u, v], -1)


class one_torch_thread(contextlib.ContextDecorator):
    """torch on one intra-op thread for the call, restored after: the fit's tensors are tiny, and on a busy
    2-core machine every op that woke the second thread (gathers, BLAS) cost tens of microseconds to
    milliseconds (1 person, 4 iterations, load 8: 28 ms of CPU on two threads, 18 on one; re-posing one
    low-res body through BLAS: 47 ms on two, 1 ms on one). The setting is process-wide: the caller runs no
    other torch work at the same time (true of the Pipeline, whose network runs on ONNX Runtime or runs
    before the fit)."""

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)


class BodyFitter:
    """``BodyFitter(body_model)(rotmats, betas, translation, keypoints, confidences, K) -> FitResult``.

    ``body_model`` is the network's body (an ``smplx.SMPL`` from ``whmr_core.body.resolve(spec).load()``);
    build the fitter once and call it per frame. Threads and grad mode outside are left as they are.
    """

    def __init__(
        self, body_model: Any, config: FitConfig | None = None, prior_path: str | Path = DEFAULT_PRIOR_PATH
    ) -> None:
        self.config = config or FitConfig()
        with torch.inference_mode(False):  # buffers must be usable by autograd whatever the caller's mode
            self.body = KeypointBody(body_model, self.config.coco_hip_lift)
            # The fit itself runs in float64.
            self.body64 = KeypointBody(body_model, self.config.coco_hip_lift).double()
            self.prior = PosePrior(prior_path)
            chol = self.prior.precision_chol.double()
            self._prior_precision = chol @ chol.transpose(-1, -2)  # (K,69,69)
            self._prior_mean = self.prior.means.double()
            self._prior_const = self.prior.nll_const.double()
            self._limits_lo, self._limits_hi = (x[1:] for x in joint_limits_rad(torch.float64))
        self.num_joints = self.body.num_joints
        self.num_betas = self.body.num_betas

    # -- inputs ----------------------------------------------------------------------------------------
    def _as_rotmats(self, pose: Any) -> torch.Tensor:
        p = torch.as_tensor(np.asarray(pose, dtype=np.float32) if not torch.is_tensor(pose) else pose)
        p = p.detach().to(torch.float32)
        if p.ndim == 3 and p.shape[1:] == (self.num_joints, 3):
            return exp(p.clone())
        if p.ndim == 4 and p.shape[1:] == (self.num_joints, 3, 3):
            return p.clone()
        raise ValueError(
            f"pose: expected rotation matrices (N,{self.num_joints},3,3) or axis-angle "
            f"(N,{self.num_joints},3), got {tuple(p.shape)}"
        )

    @staticmethod
    def _as_f32(name: str, a: Any, shape: tuple[int, ...]) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(a, dtype=np.float32) if not torch.is_tensor(a) else a)
        t = t.detach().to(torch.float32)
        if tuple(t.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
        return t.clone()

    # -- the fit ---------------------------------------------------------------------------------------
    @torch.inference_mode(False)  # the fit's tensors are made outside a caller's inference mode
    @one_torch_thread()
    def __call__(
        self,
        rotmats: Any,
        betas: Any,
        translation: Any,
        keypoints: Any,
        confidences: Any,
        K: Any,
        *,
        keypoints_3d: Any | None = None,
        confidences_3d: Any | None = None,
        warm_start: Sequence[PersonFit | None] | None = None,
        up: Any | None = None,
    ) -> FitResult:
        """Fit N persons of one frame.

        rotmats (N,J,3,3) local rotations with the camera-frame root (``PersonOutputs.rotmats``) or
        axis-angle (N,J,3); betas (N,B); translation (N,3) t_b in the camera optical frame; keypoints
        (N,17,2) COCO-17 pixels and confidences (N,17) in [0,1] (non-finite keypoints count as missing);
        K (3,3) or (N,3,3) pinhole intrinsics (skew ignored). Optional keypoints_3d (N,17,3) metres in
        camera axes, any origin (compared hip-centred), with confidences_3d (N,17) (default: confidences);
        warm_start: per person a previous ``PersonFit`` of its track, or None. up: (3,) or (N,3) the
        direction opposite gravity in camera axes, where known (the upright term, ``w_upright``). Works
        under any grad mode, ``torch.inference_mode`` included (the fit's tensors are made outside it).
        """
        cfg = self.config
        rot_net = self._as_rotmats(rotmats)
        n = rot_net.shape[0]
        beta_net = self._as_f32("betas", betas, (n, self.num_betas))
        t_net = self._as_f32("translation", translation, (n, 3))
        kp = self._as_f32("keypoints", keypoints, (n, NUM_KEYPOINTS, 2))
        conf = self._as_f32("confidences", confidences, (n, NUM_KEYPOINTS))
        k_arr = torch.as_tensor(np.asarray(K, dtype=np.float64)).to(torch.float32)
        if k_arr.shape == (3, 3):
            k_arr = k_arr.expand(n, 3, 3).clone()
        if tuple(k_arr.shape) != (n, 3, 3):
            raise ValueError(f"K: expected (3,3) or ({n},3,3), got {tuple(k_arr.shape)}")
        kp3 = None
        if keypoints_3d is not None:
            kp3 = self._as_f32("keypoints_3d", keypoints_3d, (n, NUM_KEYPOINTS, 3))
            conf3 = (
                conf if confidences_3d is None else self._as_f32("confidences_3d", confidences_3d, conf.shape)
            )
        if warm_start is not None and len(warm_start) != n:
            raise ValueError(f"warm_start: expected {n} entries (None for none), got {len(warm_start)}")
        up_dir = None
        if up is not None:
            try:
                up_arr = torch.as_tensor(np.asarray(up, dtype=np.float64))
            except (TypeError, ValueError) as e:
                raise ValueError(f"up: not numbers ({e})") from e
            if up_arr.shape == (3,):
                up_arr = up_arr.expand(n, 3)
            if (
                tuple(up_arr.shape) != (n, 3)
                or not torch.isfinite(up_arr).all()
                or (up_arr.norm(dim=-1) <= 1e-9).any()
            ):
                raise ValueError(
                    f"up: expected a finite, non-zero (3,) or ({n},3), got shape {tuple(up_arr.shape)}"
                )
            up_dir = up_arr / up_arr.norm(dim=-1, keepdim=True)

        # Missing or unusable keypoints weigh nothing.
        conf = torch.nan_to_num(conf, nan=0.0).clamp(0.0, 1.0)
        ok_kp = torch.isfinite(kp).all(-1)
        w2d = torch.where(ok_kp & (conf >= cfg.confidence_threshold), conf, torch.zeros_like(conf))
        kp = torch.where(ok_kp[..., None], kp, torch.zeros_like(kp))
        if kp3 is not None:
            conf3 = torch.nan_to_num(conf3, nan=0.0).clamp(0.0, 1.0)
            ok3 = torch.isfinite(kp3).all(-1)
            w3d = torch.where(ok3 & (conf3 >= cfg.confidence_threshold), conf3, torch.zeros_like(conf3))
            hips_ok = (w3d[:, _LEFT_HIP] > 0) & (w3d[:, _RIGHT_HIP] > 0)
            w3d = w3d * hips_ok[:, None]  # hip-centred comparison needs both hips
            kp3 = torch.where(ok3[..., None], kp3, torch.zeros_like(kp3))

        reasons: list[str | None] = [None] * n
        fx, fy = k_arr[:, 0, 0], k_arr[:, 1, 1]
        body_finite = (
            torch.isfinite(rot_net).flatten(1).all(1)
            & torch.isfinite(beta_net).all(1)
            & torch.isfinite(t_net).all(1)
        )
        k_ok = torch.isfinite(k_arr).flatten(1).all(1) & (fx > 0) & (fy > 0)
        num_conf = (w2d > 0).sum(1)
        for i in range(n):
            if not body_finite[i]:
                reasons[i] = "network body is not finite"
            elif not k_ok[i]:
                reasons[i] = "camera K is not a camera (non-finite or non-positive focal length)"
            elif int(num_conf[i]) < cfg.min_keypoints:
                reasons[i] = (
                    f"too few confident keypoints ({int(num_conf[i])} >= {cfg.confidence_threshold:g}, "
                    f"need {cfg.min_keypoints})"
                )
            elif float(t_net[i, 2]) < cfg.min_depth_m:
                reasons[i] = f"network body is not in front of the camera (depth {float(t_net[i, 2]):.3g} m)"

        def reprojection_px(points: torch.Tensor, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            d = (
                _project(points, t, k_arr.index_select(0, idx), cfg.min_depth_m) - kp.index_select(0, idx)
            ).norm(dim=-1)
            w = w2d.index_select(0, idx)
            return (w * d).sum(1) / w.sum(1)  # NaN where no keypoint is confident

        all_idx = torch.arange(n)
        with torch.inference_mode(False), torch.no_grad():
            px_before = torch.full((n,), float("nan"))
            usable = body_finite & k_ok
            if usable.any():
                ui = all_idx[usable]
                px_before[ui] = reprojection_px(
                    self.body(rot_net.index_select(0, ui), beta_net.index_select(0, ui)),
                    t_net.index_select(0, ui),
                    ui,
                )

        rot_out, beta_out, t_out = rot_net.double().clone(), beta_net.double().clone(), t_net.double().clone()
        fitted = np.zeros(n, bool)
        mirrored = np.zeros(n, bool)
        init_source = ["network"] * n
        px_after = px_before.clone()
        e_before = torch.full((n,), float("nan"))
        e_after = torch.full((n,), float("nan"))
        iterations = 0
        active = [i for i in range(n) if reasons[i] is None]
        if active:
            idx = torch.tensor(active)

            # The network's rotations are only nearly orthonormal: the fit starts from Gram-Schmidt's (as
            # the Pipeline's decode does), so a fitted body is made of rotations.
            def rows(a: torch.Tensor) -> torch.Tensor:
                return a.index_select(0, idx)

            res = self._fit(
                orthonormalise(rows(rot_net)), rows(beta_net), rows(t_net), rows(kp), rows(w2d), rows(k_arr),
                None if kp3 is None else (rows(kp3), rows(w3d)),
                None if warm_start is None else [warm_start[i] for i in active],
                None if up_dir is None else rows(up_dir),
            )  # fmt: skip
            iterations = res["iterations"]
            with torch.no_grad():
                px_fit = reprojection_px(self.body(res["rotmats"], res["betas"]), res["translation"], idx)
            for a, i in enumerate(active):
                reason = self._check(res, a, t_net[i])
                size = float(res["size"][a])
                if reason is None and not float(px_fit[a]) <= cfg.max_error * size:
                    reason = (
                        f"fit does not reach the keypoints: {float(px_fit[a]):.3g} px off, person "
                        f"{size:.3g} px (wrong camera or keypoints of someone else?)"
                    )
                mirrored[i] = bool(res["mirrored"][a])
                e_before[i] = res["energy_before"][a]
                e_after[i] = res["energy_after"][a]
                if reason is not None:
                    reasons[i] = reason
                    continue
                fitted[i] = True
                init_source[i] = res["init_source"][a]
                rot_out[i] = res["rotmats"][a].double()
                beta_out[i] = res["betas"][a].double()
                t_out[i] = res["translation"][a].double()
                px_after[i] = px_fit[a]
        # Fallbacks return the network's body exactly as given.
        rot_in = rotmats if not torch.is_tensor(rotmats) else rotmats.detach().cpu().numpy()
        rot_in = np.asarray(rot_in, dtype=np.float64)
        rot_np = rot_out.numpy()
        if rot_in.ndim == 4:
            rot_np[~fitted] = rot_in[~fitted]
        beta_in = np.asarray(
            betas if not torch.is_tensor(betas) else betas.detach().cpu().numpy(), np.float64
        )
        t_in = np.asarray(
            translation if not torch.is_tensor(translation) else translation.detach().cpu().numpy(),
            np.float64,
        )
        beta_np, t_np = beta_out.numpy(), t_out.numpy()
        beta_np[~fitted], t_np[~fitted] = beta_in[~fitted], t_in[~fitted]
        return FitResult(
            rotmats=rot_np,
            betas=beta_np,
            translation=t_np,
            fitted=fitted,
            fallback_reason=tuple(reasons),
            mirrored=mirrored,
            init_source=tuple(init_source),
            reprojection_px_before=px_before.double().numpy(),
            reprojection_px_after=px_after.double().numpy(),
            iterations=iterations,
            energy_before=e_before.double().numpy(),
            energy_after=e_after.double().numpy(),
        )

    def _check(self, res: dict[str, Any], a: int, t0: torch.Tensor) -> str | None:
        """Why person ``a``'s fit is not to be trusted (``t0``: the network's translation), or None."""
        cfg = self.config
        for name in ("rotmats", "betas", "translation"):
            if not torch.isfinite(res[name][a]).all():
                return f"fit diverged: non-finite {name}"
        eb, ea = float(res["energy_before"][a]), float(res["energy_after"][a])
        if not np.isfinite(ea) or ea > eb * (1 + 1e-4) + 1e-9:
            return f"fit diverged: energy grew from {eb:.4g} to {ea:.4g}"
        t = res["translation"][a]
        if float(t[2]) < cfg.min_depth_m:
            return f"fit diverged: depth {float(t[2]):.3g} m"
        jump = float((t - t0).norm())
        if jump > cfg.max_translation_jump * float(t0[2]):
            return f"fit diverged: translation jumped {jump:.3g} m (depth {float(t0[2]):.3g} m)"
        return None

    def _targets(
        self,
        rows: torch.Tensor,
        inputs: dict[str, torch.Tensor],
        theta_start: torch.Tensor,
        components: torch.Tensor,
        kp3: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> FitTargets:
        """The energy's targets for persons ``rows`` (indices into ``inputs``, repeats allowed)."""
        cfg = self.config

        def take(a: torch.Tensor) -> torch.Tensor:
            return a.index_select(0, rows)

        return FitTargets(
            keypoints=take(inputs["keypoints"]),
            weights=take(inputs["weights"]),
            size=take(inputs["size"]),
            camera=take(inputs["camera"]),
            theta_start=theta_start,
            betas_start=take(inputs["betas"]),
            depth_start=take(inputs["translation"])[:, 2],
            prior_mean=self._prior_mean.index_select(0, components),
            prior_precision=self._prior_precision.index_select(0, components),
            prior_const=self._prior_const.index_select(0, components),
            limits_lo=self._limits_lo,
            limits_hi=self._limits_hi,
            sigma=cfg.robust_sigma,
            min_depth=cfg.min_depth_m,
            w_prior=cfg.w_pose_prior,
            w_limits=cfg.w_joint_limits,
            w_pose=cfg.w_init_pose,
            w_shape=cfg.w_shape,
            w_depth=cfg.w_depth,
            keypoints_3d=None if kp3 is None else take(kp3[0]),
            weights_3d=None if kp3 is None else take(kp3[1]),
            sigma_3d=cfg.robust_sigma_3d_m,
            w_3d=cfg.w_keypoints_3d,
            mode_3d=cfg.keypoints_3d_align,
            up=None if "up" not in inputs else take(inputs["up"]),
            sigma_up=cfg.robust_sigma_upright,
            w_up=cfg.w_upright,
        )

    def _fit(
        self,
        rot_net: torch.Tensor,
        beta_net: torch.Tensor,
        t_net: torch.Tensor,
        kp: torch.Tensor,
        w2d: torch.Tensor,
        k_cam: torch.Tensor,
        kp3: tuple[torch.Tensor, torch.Tensor] | None,
        warm: list[PersonFit | None] | None,
        up: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Fit the m persons given (all usable); the returned tensors are per person, float32."""
        cfg = self.config
        m = rot_net.shape[0]
        rot_net, beta_net, t_net = rot_net.double(), beta_net.double(), t_net.double()
        kp, w2d, k_cam = kp.double(), w2d.double(), k_cam.double()
        kp3 = None if kp3 is None or cfg.w_keypoints_3d <= 0 else (kp3[0].double(), kp3[1].double())
        # The person's size in the image: the larger side of the confident keypoints' box.
        big = torch.tensor(float("inf"), dtype=kp.dtype)
        lo = torch.where(w2d[..., None] > 0, kp, big).amin(1)
        hi = torch.where(w2d[..., None] > 0, kp, -big).amax(1)
        size = (hi - lo).amax(-1).clamp_min(10.0)  # (m,)
        inputs = {"keypoints": kp, "weights": w2d, "size": size, "camera": k_cam, "betas": beta_net}
        inputs["translation"] = t_net
        if up is not None and cfg.w_upright > 0:
            inputs["up"] = up.double()
        body = self.body64
        everyone = torch.arange(m)

        def objective(
            rows: torch.Tensor, root: torch.Tensor, pull_to: torch.Tensor, prior_at: torch.Tensor
        ) -> FitObjective:
            """The energy of persons ``rows`` (root rotations ``root``), the pose pulled towards ``pull_to``,
            the prior's component the best one at ``prior_at``."""
            components = self.prior.best_component(prior_at.float())
            return FitObjective(body, self._targets(rows, inputs, pull_to, components, kp3), root)

        with torch.no_grad():
            # Candidate starts: the network's body and, with the mirror check, its depth-ambiguity twin;
            # with the turn check each of them also turned in the image plane about its pelvis (a
            # handstand or a person lying down, where the network gives upright bodies). Each gets the
            # sideways translation that best fits it (closed form; the network's where that fits better);
            # a candidate replaces the network's body only where its keypoint energy is below
            # ``mirror_ratio`` times the network's.
            cands, names = [rot_net], [("network", False)]
            if cfg.mirror_check:
                cands.append(mirror_bodies(rot_net))
                names.append(("mirrored", True))
            for turn in TURNS_DEG if cfg.turn_check else ():
                spin = exp(torch.tensor([[0.0, 0.0, float(np.radians(turn))]], dtype=torch.float64))[0]
                for cand, (name, twin) in list(zip(cands, names, strict=True))[: 1 + cfg.mirror_check]:
                    cands.append(torch.cat([matmul3(spin, cand[:, :1]), cand[:, 1:]], 1))
                    names.append((f"{name}, turned {turn}" if twin else f"turned {turn}", twin))
            c = len(cands)
            stacked = torch.stack(cands)  # (c,m,J,3,3)
            pts = body(stacked.reshape(c * m, *rot_net.shape[1:]), beta_net.repeat(c, 1))
            t_rep = t_net.repeat(c, 1)
            t_lin = solve_translation(pts, kp.repeat(c, 1, 1), w2d.repeat(c, 1), k_cam.repeat(c, 1, 1), t_rep)
            good = torch.isfinite(t_lin).all(1, keepdim=True) & (t_lin[:, 2:] > cfg.min_depth_m)
            t_lin = torch.where(good, t_lin, t_rep)
            check = FitObjective(
                body,
                self._targets(
                    everyone.repeat(c), inputs, torch.zeros(c * m, 23, 3, dtype=kp.dtype),
                    torch.zeros(c * m, dtype=torch.long), kp3,
                ),
                stacked[:, :, 0].reshape(c * m, 3, 3),
            )  # fmt: skip
            e_lin, e_keep = check.keypoint_energy(pts, t_lin), check.keypoint_energy(pts, t_rep)
            t_c = torch.where((e_lin < e_keep)[:, None], t_lin, t_rep).reshape(c, m, 3)
            e_c = torch.minimum(e_lin, e_keep).reshape(c, m)
            best = e_c[1:].argmin(0) + 1 if c > 1 else torch.zeros(m, dtype=torch.long)
            e_best = e_c.gather(0, best[None])[0]
            pick = torch.where(e_best < cfg.mirror_ratio * e_c[0], best, torch.zeros_like(best))  # (m,)
            anchor = stacked[pick, everyone]
            t_anchor = t_c[pick, everyone]
            mirrored = torch.tensor([names[int(k)][1] for k in pick], dtype=torch.bool)
            source = [names[int(k)][0] for k in pick]
            theta_anchor = matrix_to_axis_angle(anchor[:, 1:])

            # Starting point per person: the anchor (network body or a candidate) or the warm start,
            # whichever has the lower energy.
            init_rot, init_beta, init_t = anchor.clone(), beta_net.clone(), t_anchor.clone()
            theta0 = theta_anchor.clone()
            usable = [
                a
                for a, p in enumerate(warm or [])
                if p is not None
                and p.fitted
                and np.shape(p.rotmats) == tuple(anchor.shape[1:])
                and np.shape(p.betas) == tuple(beta_net.shape[1:])
            ]
            if usable:
                rows = torch.tensor(usable)
                w_rot = torch.stack(
                    [torch.as_tensor(np.asarray(warm[a].rotmats, np.float64)) for a in usable]
                )  # type: ignore[index]
                w_beta = torch.stack([torch.as_tensor(np.asarray(warm[a].betas, np.float64)) for a in usable])  # type: ignore[index]
                w_t = torch.stack(
                    [torch.as_tensor(np.asarray(warm[a].translation, np.float64)) for a in usable]
                )  # type: ignore[index]
                w_theta = matrix_to_axis_angle(w_rot[:, 1:])
                zero = torch.zeros(len(usable), 3, dtype=torch.float64)
                # Both scored with the pull towards the anchor, as the fit itself would score them.
                pull = theta_anchor.index_select(0, rows)
                a_obj = objective(rows, anchor.index_select(0, rows)[:, 0], pull, pull)
                e0 = a_obj.energy(
                    a_obj.pack(zero, pull, beta_net.index_select(0, rows), t_anchor.index_select(0, rows))
                )
                w_obj = objective(rows, w_rot[:, 0], pull, w_theta)
                e_warm = w_obj.energy(w_obj.pack(zero, w_theta, w_beta, w_t))
                for r, a in enumerate(usable):
                    if torch.isfinite(e_warm[r]) and e_warm[r] < e0[r]:
                        init_rot[a], init_beta[a], init_t[a], theta0[a] = (
                            w_rot[r],
                            w_beta[r],
                            w_t[r],
                            w_theta[r],
                        )
                        source[a] = "warm_start"

        # The prior's component is the one nearest the start, kept for the whole fit (no switching
        # between modes mid-fit); the pose is pulled towards the anchor.
        fit = objective(everyone, init_rot[:, 0], theta_anchor, theta0)
        x0 = fit.pack(torch.zeros(m, 3, dtype=torch.float64), theta0, init_beta, init_t)
        with torch.no_grad():
            x, e_start, e_end, iterations = levenberg_marquardt(fit.linearise, x0, cfg.iterations)
            rot, _, beta, t = fit.unpack(x)
        return {
            "rotmats": rot.float(),
            "betas": beta.float(),
            "translation": t.float(),
            "size": size.float(),
            "energy_before": e_start.float(),
            "energy_after": e_end.float(),
            "mirrored": mirrored,
            "init_source": source,
            "iterations": iterations,
        }

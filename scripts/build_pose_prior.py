#!/usr/bin/env python
"""Build the fitting's pose prior: a Gaussian mixture over the 23 body joints' rotation vectors.

The poses come from whmr's own pose generator (``whmr_core.data.poses.sample_pose``: every family, its
default jitter, clipped to the joint limits), so the prior knows the same poses the network was trained on
and nothing the project did not write. The mixture is fitted with a plain EM (k-means++ start, full
covariances floored at ``--floor-deg`` per component so that joints the generator barely moves still get a
usable spread). Stored as float32 in a small ``.npz`` with its provenance (this command, the generator
file's sha256, the seed), read by ``whmr_core.fitting.priors.PosePrior``.

    python scripts/build_pose_prior.py            # writes whmr_core/assets/fitting/pose_prior.npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from whmr_core.data.poses import FAMILIES, sample_pose

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "whmr_core" / "assets" / "fitting" / "pose_prior.npz"


def sample_poses(num: int, seed: int) -> np.ndarray:
    """(num, 69) rotation vectors of joints 1..23, families drawn uniformly."""
    rng = np.random.default_rng(seed)
    families = sorted(FAMILIES)
    out = np.empty((num, 69))
    for i in range(num):
        out[i] = sample_pose(rng, families[int(rng.integers(len(families)))])[1:].reshape(-1)
    return out


def _log_gauss(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(N, K) log N(x | mean_k, cov_k)."""
    n, d = x.shape
    out = np.empty((n, len(means)))
    for k, (m, c) in enumerate(zip(means, covs, strict=True)):
        chol = np.linalg.cholesky(c)
        z = np.linalg.solve(chol, (x - m).T)
        out[:, k] = -0.5 * (z * z).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * d * np.log(2 * np.pi)
    return out


def fit_gmm(x: np.ndarray, k: int, floor: float, iters: int, seed: int) -> tuple[np.ndarray, ...]:
    """EM for a full-covariance mixture; returns (weights (K,), means (K,D), covs (K,D,D), mean log-lik)."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    # k-means++ start.
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(n, p=d2 / d2.sum())])
    resp = np.zeros((n, k))
    resp[np.arange(n), np.argmin([((x - c) ** 2).sum(1) for c in centres], axis=0)] = 1.0
    floor_cov = floor**2 * np.eye(d)
    ll_prev = -np.inf
    ll = -np.inf
    for _ in range(iters):
        nk = resp.sum(0) + 1e-9
        weights = nk / n
        means = (resp.T @ x) / nk[:, None]
        covs = np.stack([((resp[:, j, None] * (x - means[j])).T @ (x - means[j])) / nk[j] for j in range(k)])
        covs += floor_cov
        logp = _log_gauss(x, means, covs) + np.log(weights)
        top = logp.max(1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logp - top).sum(1))
        resp = np.exp(logp - log_norm[:, None])
        ll = float(log_norm.mean())
        if ll - ll_prev < 1e-4:
            break
        ll_prev = ll
    return weights, means, covs, ll


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--num", type=int, default=20000, help="poses drawn from the generator")
    ap.add_argument("--components", type=int, default=8)
    ap.add_argument("--floor-deg", type=float, default=10.0, help="std floor per component and axis")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.time()
    x = sample_poses(args.num, args.seed)
    weights, means, covs, ll = fit_gmm(x, args.components, np.radians(args.floor_deg), args.iters, args.seed)
    # Stored as the Cholesky factor of each precision (what the prior's quadratic form needs) and the
    # constant -log w_k + 0.5 log det cov_k of each component's negative log-likelihood.
    prec_chol = np.stack([np.linalg.cholesky(np.linalg.inv(c)) for c in covs])
    const = -np.log(weights) + 0.5 * np.array([np.linalg.slogdet(c)[1] for c in covs])
    poses_py = REPO / "whmr_core" / "data" / "poses.py"
    metadata = {
        "what": "Gaussian mixture over SMPL joints 1..23 rotation vectors (radians), whmr_core.fitting",
        "command": "python scripts/build_pose_prior.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "generator": "whmr_core/data/poses.py sample_pose, all families uniform, default jitter",
        "generator_sha256": hashlib.sha256(poses_py.read_bytes()).hexdigest(),
        "num_poses": args.num,
        "components": args.components,
        "floor_deg": args.floor_deg,
        "seed": args.seed,
        "mean_log_likelihood": round(ll, 3),
        "licence": "generated by whmr from its own code (same licence as whmr)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        weights=weights.astype(np.float32),
        means=means.astype(np.float32),
        precision_chol=prec_chol.astype(np.float32),
        nll_const=const.astype(np.float32),
        metadata=np.array(json.dumps(metadata)),
    )
    print(f"{args.out}: {args.components} components, mean log-likelihood {ll:.2f}, {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

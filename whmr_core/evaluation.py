"""Evaluation of a network on an annotated dataset: the paper's camera-frame metrics, SPEC's world-frame
metrics, root-orientation errors and (where K is known) the focal length, plus the calibration-only baseline
R_c^T R_b^c that OrientCorrect is compared against. Millimetres and degrees.

Camera-frame joints follow each data set's protocol (the authors' evaluation): 3DPW and Human3.6M compare
14 joints regressed from the meshes with the H36M regressor, MPI-INF-3DHP 17, AGORA (and our synthetic
sets) the body's 24 joints. Both skeletons are aligned at the pelvis; PVE compares the untranslated meshes
as they come, without alignment.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from whmr_core import geometry as G
from whmr_core import metrics as M
from whmr_core.body.joint_layouts import SUPERVISION_NAMES, supervision_points
from whmr_core.rotations import axis_angle_to_matrix

__all__ = [
    "METRIC_NAMES",
    "PROTOCOLS",
    "CropAdapter",
    "EvalProtocol",
    "evaluate",
    "format_table",
    "load_joint_regressor",
    "perturb_rotation",
    "protocol_joints",
]

METRIC_NAMES = (
    "mpjpe",
    "pa_mpjpe",
    "pve",
    "w_mpjpe",
    "w_pve",
    "root_cam_deg",
    "root_world_deg",
    "w_mpjpe_calib_only",
    "root_world_deg_calib_only",
    "focal_rel_error",
    "focal_corr",
)


# H36M-17 joint order (whmr_core.body.regressors.H36M_NAMES) -> the evaluation order of the 17 joints of
# MPI-INF-3DHP, whose first 14 are the LSP-14 joints of 3DPW/Human3.6M (SPIN's and the release's tables).
H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14 = H36M_TO_J17[:14]


@dataclass(frozen=True)
class EvalProtocol:
    """Which camera-frame joints MPJPE / PA-MPJPE compare on one data set."""

    name: str
    joints: str  # "body24": the body's own joints; "h36m14" / "h36m17": through the H36M regressor

    @property
    def uses_h36m(self) -> bool:
        return self.joints != "body24"


PROTOCOLS: dict[str, EvalProtocol] = {
    p.name: p
    for p in (
        EvalProtocol("synthetic", "body24"),  # whmr synth: the labelled 24 body joints
        EvalProtocol("agora", "body24"),
        EvalProtocol("3dpw", "h36m14"),
        EvalProtocol("h36m", "h36m14"),
        EvalProtocol("mpi-inf-3dhp", "h36m17"),
    )
}


# The protocols' 17 joints (LSP-14, pelvis, spine, jaw) as supervision points (joint_layouts).
_J17_POINTS = tuple(
    SUPERVISION_NAMES.index(n)
    for n in (
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
        "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top",
        "mid_hip", "spine_h36m", "jaw_h36m",
    )
)  # fmt: skip
_MID_HIP = SUPERVISION_NAMES.index("mid_hip")


def protocol_points(protocol: EvalProtocol) -> tuple[int, ...]:
    """The protocol's 14 or 17 joints as supervision points: what a file without SMPL labels is scored on."""
    return _J17_POINTS[:14] if protocol.joints == "h36m14" else _J17_POINTS


def protocol_joints(h36m: torch.Tensor, protocol: EvalProtocol) -> torch.Tensor:
    """(N,17,3) H36M-order joints -> the protocol's 14 or 17 joints, centred at the H36M pelvis."""
    keep = list(H36M_TO_J14 if protocol.joints == "h36m14" else H36M_TO_J17)
    return h36m[:, keep] - h36m[:, :1]


def load_joint_regressor(path: str | Path, num_vertices: int) -> torch.Tensor:
    """A (17,V) H36M regressor from a .npy file (no pickles), checked against the body's vertex count."""
    try:
        arr = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"joint regressor {path}: cannot read it as a .npy array ({err})") from err
    if arr.ndim != 2 or arr.shape != (17, num_vertices):
        raise ValueError(
            f"joint regressor {path}: expected shape (17, {num_vertices}) for this body, got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"joint regressor {path}: holds non-finite values")
    return torch.from_numpy(arr.astype(np.float32))


def perturb_rotation(cam_rotation: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """R_c seen through an IMU with ``degrees`` of tilt error: rotated about a random horizontal axis of G."""
    n = cam_rotation.shape[0]
    angle = torch.full((n,), math.radians(degrees), dtype=cam_rotation.dtype)
    yaw = torch.rand(n, generator=generator, dtype=cam_rotation.dtype) * 2 * math.pi
    axis = torch.stack([torch.cos(yaw), torch.zeros_like(yaw), torch.sin(yaw)], -1)  # horizontal in G
    err = axis_angle_to_matrix(axis * angle[:, None])
    return cam_rotation @ err.transpose(1, 2)


@torch.no_grad()
def evaluate(
    model: Any,
    loader: Any,
    *,
    device: str | torch.device = "cpu",
    gravity_noise_deg: float = 0.0,
    seed: int = 0,
    max_batches: int | None = None,
    protocol: str | EvalProtocol = "synthetic",
    h36m_regressor: torch.Tensor | None = None,
) -> dict[str, float]:
    """Mean metrics over ``loader`` (batches of HumanDataset items). ``gravity_noise_deg`` perturbs the
    camera rotation given to OrientCorrect (and to the baseline) by that many degrees of tilt.
    ``protocol`` names the data set's joint protocol (``PROTOCOLS``); the H36M protocols use
    ``h36m_regressor`` (17,V) when given, else the body's own H36M-style regressor."""
    if isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: expected one of {sorted(PROTOCOLS)}, got {protocol!r}")
        protocol = PROTOCOLS[protocol]
    # Restore each module's own mode afterwards: a plain model.train() would wake up the BatchNorm layers
    # that a training stage froze in eval mode (stage III).
    modes = {m: m.training for m in model.modules()}
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    sums: dict[str, list[np.ndarray]] = defaultdict(list)
    focal_pairs: list[np.ndarray] = []
    for b, batch in enumerate(loader):
        if max_batches is not None and b >= max_batches:
            break
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        r_c = batch["cam_rotation"].float()
        has_g = batch["has_gravity"] > 0
        r_c = torch.where(has_g[:, None, None], r_c, torch.eye(3, device=r_c.device).expand_as(r_c))
        if gravity_noise_deg > 0:
            r_c = perturb_rotation(r_c.cpu(), gravity_noise_deg, gen).to(device)
        out = model(batch["img"], batch["glob_info"], r_c)
        n = out.joints.shape[0]
        body = model.body
        pose = axis_angle_to_matrix(batch["pose"].reshape(n, -1, 3).float())
        gt_verts, _ = body(pose, batch["betas"].float())
        # Labels come in the supervision layout (joint_layouts): SMPL-24 first, then 9 further points.
        gt_joints, gt_conf = batch["joints3d"][..., :3], batch["joints3d"][..., 3]
        has_3d = (batch["has_joints3d"] > 0).cpu().numpy()
        has_body24 = has_3d & (gt_conf[:, :24] > 0).all(dim=1).cpu().numpy()
        has_smpl = (batch["has_smpl"] > 0).cpu().numpy()
        has_world = (batch["has_world"] > 0).cpu().numpy()

        def keep(name: str, values: torch.Tensor, mask: np.ndarray) -> None:
            sums[name].append(values.detach().cpu().numpy()[mask])

        if protocol.uses_h36m:  # both skeletons from the meshes, as the authors' evaluation
            if h36m_regressor is None:  # the body's own H36M-style regressor
                pred_h, gt_h = out.h36m_joints, model.regress_joints(gt_verts)[2]
            else:
                reg = h36m_regressor.to(gt_verts)
                pred_h, gt_h = reg @ out.vertices, reg @ gt_verts
            pred_j, gt_j = protocol_joints(pred_h, protocol), protocol_joints(gt_h, protocol)
            keep("mpjpe", M.mpjpe(pred_j, gt_j, root=None) * 1000, has_smpl)
            keep("pa_mpjpe", M.pa_mpjpe(pred_j, gt_j) * 1000, has_smpl)
            # Without SMPL labels (an H36M / MPI-INF-3DHP file with ``S`` only): the labelled joints
            # against the same points of the prediction, both centred at the hips' midpoint.
            idx = [*protocol_points(protocol), _MID_HIP]
            labelled = has_3d & (gt_conf[:, idx] > 0).all(dim=1).cpu().numpy() & ~has_smpl
            if labelled.any():
                pred_s = supervision_points(out.joints, out.coco_joints, out.h36m_joints)
                pred_l = pred_s[:, idx[:-1]] - pred_s[:, _MID_HIP : _MID_HIP + 1]
                gt_l = gt_joints[:, idx[:-1]] - gt_joints[:, _MID_HIP : _MID_HIP + 1]
                keep("mpjpe", M.mpjpe(pred_l, gt_l, root=None) * 1000, labelled)
                keep("pa_mpjpe", M.pa_mpjpe(pred_l, gt_l) * 1000, labelled)
        else:
            keep("mpjpe", M.mpjpe(out.joints, gt_joints[:, :24]) * 1000, has_body24)
            keep("pa_mpjpe", M.pa_mpjpe(out.joints, gt_joints[:, :24]) * 1000, has_body24)
            # No 24 labelled joints but SMPL labels (BEDLAM, AGORA files): the joints of the labelled mesh.
            from_mesh = has_smpl & ~has_body24
            if from_mesh.any():
                mesh_joints = model.regress_joints(gt_verts)[0]
                keep("mpjpe", M.mpjpe(out.joints, mesh_joints) * 1000, from_mesh)
                keep("pa_mpjpe", M.pa_mpjpe(out.joints, mesh_joints) * 1000, from_mesh)
        keep("pve", M.pve(out.vertices, gt_verts) * 1000, has_smpl)
        pelvis = model.joint_regressors[:1]
        keep("root_cam_deg", M.rotation_angle_deg(out.cam_root, pose[:, 0]), has_smpl)

        # World frame (G): OrientCorrect vs the calibration-only baseline R_c^T R_b^c.
        gt_jw = batch["joints3d_world"]
        keep("w_mpjpe", M.w_mpjpe(out.world_joints, gt_jw) * 1000, has_world)
        world_pose = pose.clone()
        world_pose[:, 0] = axis_angle_to_matrix(batch["global_orient_world"].float())
        gt_wv, _ = body(world_pose, batch["betas"].float())
        gt_wv = gt_wv - (pelvis @ gt_wv)
        keep(
            "w_pve",
            M.w_pve(out.world_vertices, gt_wv, out.world_joints[:, 0], (pelvis @ gt_wv)[:, 0]) * 1000,
            has_world & has_smpl,
        )
        keep("root_world_deg", M.rotation_angle_deg(out.world_root, world_pose[:, 0]), has_world)
        calib = r_c.transpose(1, 2)
        calib_joints = (out.joints - out.joints[:, :1]) @ calib.transpose(1, 2)
        keep("w_mpjpe_calib_only", M.w_mpjpe(calib_joints, gt_jw) * 1000, has_world)
        keep(
            "root_world_deg_calib_only",
            M.rotation_angle_deg(calib @ out.cam_root, world_pose[:, 0]),
            has_world,
        )

        has_k = (batch["has_K"] > 0).cpu().numpy()
        if has_k.any():
            f_pred = G.focal_to_pixels(out.focal, batch["image_wh"])
            f_true = batch["focal"].mean(-1)
            keep("focal_rel_error", M.relative_focal_error(f_pred, f_true), has_k)
            focal_pairs.append(torch.stack([f_pred, f_true], -1).cpu().numpy()[has_k])

    result = {k: float(np.concatenate(v).mean()) for k, v in sums.items() if sum(len(x) for x in v)}
    result["samples"] = float(sum(len(x) for x in sums.get("mpjpe", [])))
    if focal_pairs:
        pairs = np.concatenate(focal_pairs)
        if len(pairs) > 2 and pairs[:, 0].std() > 0 and pairs[:, 1].std() > 0:
            result["focal_corr"] = float(np.corrcoef(np.log(pairs[:, 0]), np.log(pairs[:, 1]))[0, 1])
    for m, training in modes.items():
        m.training = training
    return result


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table: one row per run name, one column per metric present."""
    cols = [m for m in METRIC_NAMES if any(m in r for r in rows.values())]
    head = "| run | " + " | ".join(cols) + " |"
    sep = "|---|" + "---|" * len(cols)
    lines = [head, sep]
    for name, r in rows.items():
        cells = [
            f"{r[c]:.3f}"
            if c in ("focal_rel_error", "focal_corr") and c in r
            else (f"{r[c]:.1f}" if c in r else "-")
            for c in cols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class CropAdapter(torch.nn.Module):
    """The network seen through square dataset crops (evaluation feeds the dataset's crops as they are)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(
        self, img: torch.Tensor, glob_info: torch.Tensor, cam_rotation: torch.Tensor | None = None
    ) -> Any:
        from whmr_core.data.batch import network_crops

        return self.model(network_crops(self.model.crop_hw, img), glob_info, cam_rotation)


def _annotation_file(data: Any) -> Any:
    """The annotation file to evaluate: ``data`` itself, or a ``whmr synth`` folder's val.npz, else its
    train.npz (said, as those numbers are not held out)."""
    if data.is_dir() and (
        any(data.glob("*.tar")) or (data / "cameras.json").is_file() or any(data.glob("*/cameras.json"))
    ):
        return data  # webdataset shards or HuMMan sequences: the folder is the data set
    if not data.is_dir():
        if not data.is_file():
            raise FileNotFoundError(f"{data}: no annotation file (give a .npz or a whmr synth folder)")
        return data
    for split in ("val", "train"):
        ann = data / f"{split}.npz"
        if ann.is_file():
            if split != "val":
                print(f"whmr eval: {data} has no val.npz; evaluating its {split} split ({ann.name})")
            return ann
    raise FileNotFoundError(f"{data}: neither val.npz nor train.npz (not a whmr synth folder?)")


def eval_main(args: Any) -> int:
    """``whmr eval``: metrics of a checkpoint (default: the shipped one) on an annotated data set."""
    import json
    from pathlib import Path

    from torch.utils.data import DataLoader

    from whmr_core.data.batch import collate
    from whmr_core.data.dataset import HumanDataset
    from whmr_core.model_io import build_from_checkpoint

    ann = _annotation_file(Path(args.data))
    model = build_from_checkpoint(args.checkpoint)
    protocol = getattr(args, "protocol", None) or "synthetic"
    if protocol not in PROTOCOLS:
        print(f"whmr eval: --protocol: expected one of {', '.join(sorted(PROTOCOLS))}, got {protocol!r}")
        return 2
    reg = None
    if getattr(args, "joint_regressor", None):
        try:
            reg = load_joint_regressor(args.joint_regressor, int(model.joint_regressors.shape[1]))
        except ValueError as err:
            print(f"whmr eval: {err}")
            return 2
    ds = HumanDataset(ann, args.images or ann.parent, crop_res=max(model.crop_hw))
    if args.max_samples and len(ds) > args.max_samples:
        ds = torch.utils.data.Subset(ds, range(args.max_samples))
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=False, collate_fn=collate)
    kw = {"protocol": protocol, "h36m_regressor": reg}
    rows = {"exact gravity": evaluate(CropAdapter(model), loader, **kw)}
    for deg in args.gravity_noise or []:
        rows[f"gravity +{deg:g} deg error"] = evaluate(
            CropAdapter(model), loader, gravity_noise_deg=deg, **kw
        )
    if not rows["exact gravity"].get("samples"):
        print(
            f"whmr eval: {ann}: no sample has the labels the {protocol} protocol scores "
            "(SMPL parameters, or its joints in S)"
        )
        return 1
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0

"""Import the authors' released W-HMR weights (GitHub yw0208/W-HMR at 6dd6c49, MIT) into a whmr checkpoint.

The release's ViT "P" network is whmr's ``vitb-param-release`` config: the same modules with the release's
options (see ``whmr_core.model.config``). This module maps the release's state_dict onto it:

- names: ``feature_extractor.backbone.*`` -> ``backbone.*``, ``deconv_layers.{0,1,3,4,6,7}`` ->
  ``pyramid.blocks.{0,1,2}.{0,1}``, ``maf_extractor.i.convL`` (1x1 Conv1d) -> ``point_mlps.i.layers.L``
  (Linear), ``regressor.i.{fc1,fc2,decpose,decshape,deccam}`` -> ``param_regressors.i.{trunk.0,trunk.2,
  dec_pose,dec_betas,dec_cam}``, ``conv/transformer_decoder/est_Tz`` -> ``depth_head.{conv,block,fc,bn}``,
  ``global_orient.{fc1,fc2,decrot}`` -> ``orient_correct.fc.{0,2,4}``;
- feature columns: the release flattens point features channel-major (c * P + p), whmr point-major
  (p * C + c), so the point-feature columns of the regressors' and OrientCorrect's first layers are permuted;
- the depth head's dead biases (``est_Tz.1`` right before BatchNorm, and ``est_Tz.0`` and the block's MLP
  output bias, which reach it only linearly) are folded into the running mean (exact in eval);
- Theta_0 is the checkpoint's ``regressor.0.init_*`` (the release loads them from the checkpoint too);
- dropped: ``cam_model.*`` (SPEC's CamCalib: whmr takes R_c from gravity), ``dp_head.*`` (training only),
  every ``*.smpl.*`` buffer (SMPL data embedded in the file: never kept or redistributed), ``Dmap*``,
  ``vertex_joint_selector``, the duplicate ``init_*`` of regressors 1-2 and OrientCorrect, ``points_grid``
  (checked against the release grid).

Anything else unexpected, a missing key or a wrong shape refuses the file with the reason.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from whmr_core.model.config import ModelConfig, config_to_dict, get_config
from whmr_core.model.depth_head import fold_dead_bias
from whmr_core.model.pyramid import release_grid
from whmr_core.model.theta0 import MeanParams, load_marker_ids, load_mean_params
from whmr_core.rotations import matrix_to_rot6d

__all__ = [
    "RELEASE_CONFIG",
    "ReleaseImportError",
    "add_import_release_arguments",
    "convert_release_state",
    "import_release",
    "load_release_state",
    "release_camera_angles",
    "release_camera_rotation",
    "release_network",
    "run_import_release",
]

RELEASE_CONFIG = "vitb-param-release"

# Groups of the release's state_dict that whmr does not keep, and why (see the module docstring).
_DROPPED = (
    (re.compile(r"^cam_model\."), "SPEC CamCalib (R_c comes from gravity)"),
    (re.compile(r"^dp_head\."), "IUV head (training only)"),
    (re.compile(r"^regressor\.\d+\.smpl\."), "SMPL model data (never kept)"),
    (re.compile(r"^regressor\.\d+\.(Dmap\d|J_regressor)"), "mesh downsampling / SMPL data"),
    (re.compile(r"^regressor\.\d+\.vertex_joint_selector\."), "smplx joint selector"),
    (re.compile(r"^maf_extractor\.\d+\.Dmap$"), "mesh downsampling"),
    (re.compile(r"^regressor\.0\.init_(pose|shape|cam)$"), "mean parameters (read into Theta_0)"),
    (re.compile(r"^regressor\.[12]\.init_(pose|shape|cam)$"), "duplicate mean parameters"),
    (re.compile(r"^global_orient\.init_pose$"), "unused mean root"),
    (re.compile(r"^points_grid$"), "first grid (checked, rebuilt by whmr)"),
)


class ReleaseImportError(ValueError):
    """The file is not the released W-HMR network (or is damaged); the message says why."""


def load_release_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The release's state_dict from ``path``: ``{'model': state_dict, ...}`` as the release's trainer saves
    it (optimizer state, epoch and counters beside it), or a bare state_dict. Loaded with
    ``torch.load(weights_only=True)``: only tensors and plain containers/numbers, no code, are allowed."""
    path = Path(path)
    if not path.is_file():
        raise ReleaseImportError(f"{path}: file not found")
    from whmr_core.checkpoint import load_torch_file

    try:
        obj = load_torch_file(path)  # archive sizes checked before torch inflates anything
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        what = f"it needs {found.group(1)}" if found else str(err).strip().splitlines()[0]
        raise ReleaseImportError(
            f"{path}: refused: the file holds objects other than tensors and plain containers ({what}; "
            "loading it would run code from the file)"
        ) from err
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ReleaseImportError(
            f"{path}: not a readable PyTorch file (truncated or damaged?): {err}"
        ) from err
    if isinstance(obj, Mapping) and "model" in obj:
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj:
        raise ReleaseImportError(
            f"{path}: expected {{'model': state_dict}} or a state_dict, got {type(obj).__name__}"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ReleaseImportError(f"{path}: the state_dict holds non-tensor entries, e.g. {bad[:3]}")
    state = dict(obj)
    if any(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def release_camera_rotation(pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """The release's camera rotation (N,3,3) from CamCalib's (pitch, roll) in radians:
    R_c = Rx(pitch) Rz(roll) (PARE's batch_euler2matrix of (pitch, 0, roll)); X_C = R_c X_G as whmr's R_c."""
    cp, sp, cr, sr = torch.cos(pitch), torch.sin(pitch), torch.cos(roll), torch.sin(roll)
    z, o = torch.zeros_like(pitch), torch.ones_like(pitch)
    rx = torch.stack([o, z, z, z, cp, -sp, z, sp, cp], -1).reshape(-1, 3, 3)
    rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).reshape(-1, 3, 3)
    return rx @ rz


def release_camera_angles(gravity_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pitch, roll) of the release's convention for gravity (N,3) in the camera frame:
    pitch = atan2(g_z, g_y), roll = -asin(g_x). ``release_camera_rotation`` of them has the same gravity
    column as whmr's ``geometry.camera_rotation_from_gravity``; the two differ by a yaw about gravity (0 for
    pure pitch or pure roll, 1.8 degrees at pitch 17 / roll 6), which only turns the world frame about the
    vertical."""
    g = gravity_cam / torch.linalg.vector_norm(gravity_cam, dim=-1, keepdim=True)
    return torch.atan2(g[:, 2], g[:, 1]), -torch.asin(g[:, 0].clamp(-1, 1))


def _name_map(n_blocks: int) -> dict[str, str]:
    """whmr name -> release name for every mapped parameter/buffer (except the permuted fc1 columns)."""
    m: dict[str, str] = {}
    for k in (
        "pos_embed",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "last_norm.weight",
        "last_norm.bias",
    ):
        m[f"backbone.{k}"] = f"feature_extractor.backbone.{k}"
    for i in range(n_blocks):
        for k in (
            "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
            "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
            "mlp.fc2.weight", "mlp.fc2.bias",
        ):  # fmt: skip
            m[f"backbone.blocks.{i}.{k}"] = f"feature_extractor.backbone.blocks.{i}.{k}"
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for b in range(3):
        m[f"pyramid.blocks.{b}.0.weight"] = f"deconv_layers.{3 * b}.weight"
        for k in bn:
            m[f"pyramid.blocks.{b}.1.{k}"] = f"deconv_layers.{3 * b + 1}.{k}"
    for i in range(3):
        for layer in range(3):
            for k in ("weight", "bias"):
                m[f"point_mlps.{i}.layers.{layer}.{k}"] = f"maf_extractor.{i}.conv{layer}.{k}"
        for k in ("weight", "bias"):
            m[f"param_regressors.{i}.trunk.0.{k}"] = f"regressor.{i}.fc1.{k}"
            m[f"param_regressors.{i}.trunk.2.{k}"] = f"regressor.{i}.fc2.{k}"
            for ours, theirs in (("dec_pose", "decpose"), ("dec_betas", "decshape"), ("dec_cam", "deccam")):
                m[f"param_regressors.{i}.{ours}.{k}"] = f"regressor.{i}.{theirs}.{k}"
    m["depth_head.conv.0.weight"] = "conv.0.weight"
    m["depth_head.conv.1.weight"] = "conv.1.weight"
    for k in (
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
        "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
    ):  # fmt: skip
        m[f"depth_head.block.{k}"] = f"transformer_decoder.{k}"
    m["depth_head.fc.0.weight"] = "est_Tz.0.weight"
    m["depth_head.fc.1.weight"] = "est_Tz.1.weight"
    for k in bn:
        m[f"depth_head.bn.{k}"] = f"est_Tz.2.{k}"
    for ours, theirs in (("0", "fc1"), ("2", "fc2"), ("4", "decrot")):
        for k in ("weight", "bias"):
            m[f"orient_correct.fc.{ours}.{k}"] = f"global_orient.{theirs}.{k}"
    return m


def _fold_depth_biases(release: dict[str, torch.Tensor], where: str) -> None:
    """Fold the depth head's dead biases into its BN running mean (see ``ReleaseDepthHead``): the block's
    MLP output bias b2 and est_Tz's biases b0, b1 shift the BN input by W1 (W0 b2 + b0) + b1."""
    keys = ("transformer_decoder.mlp.fc2.bias", "est_Tz.0.bias", "est_Tz.0.weight", "est_Tz.1.weight")
    missing = [k for k in keys if k not in release]
    if missing:
        raise ReleaseImportError(f"{where}: missing {missing[0]} (not the released ViT-P W-HMR network?)")
    b2 = release.pop(keys[0]).double()
    b0 = release.pop(keys[1]).double()
    w0, w1 = release[keys[2]].double(), release[keys[3]].double()
    if w0.shape[1:] != b2.shape or w0.shape[:1] != b0.shape or w1.shape[1:] != b0.shape:
        raise ReleaseImportError(
            f"{where}: the depth head's layers have shapes {tuple(w0.shape)}, {tuple(w1.shape)}"
        )
    key = "est_Tz.2.running_mean"
    if key not in release:
        raise ReleaseImportError(f"{where}: missing {key} (not the released ViT-P W-HMR network?)")
    release[key] = (release[key].double() - w1 @ (w0 @ b2 + b0)).to(release[key].dtype)
    fold_dead_bias(release, "est_Tz.1.bias", "est_Tz.2.")


def _point_major(weight: torch.Tensor, num_points: int, per_point: int) -> torch.Tensor:
    """First-layer columns [point features (channel-major: c * P + p) | rest] -> point-major (p * C + c)."""
    n = num_points * per_point
    feat = weight[:, :n].reshape(-1, per_point, num_points).transpose(1, 2).reshape(-1, n)
    return torch.cat([feat, weight[:, n:]], dim=1)


def _mean_from_checkpoint(state: Mapping[str, torch.Tensor], where: str) -> MeanParams:
    try:
        pose, shape, cam = (state[f"regressor.0.init_{k}"] for k in ("pose", "shape", "cam"))
    except KeyError as err:
        raise ReleaseImportError(f"{where}: missing {err.args[0]} (the release's mean parameters)") from None
    if pose.numel() != 24 * 9 or shape.numel() != 10 or cam.numel() != 3:
        raise ReleaseImportError(
            f"{where}: regressor.0.init_* do not hold 24 rotations, 10 betas and a camera"
        )
    return MeanParams(
        matrix_to_rot6d(pose.float().reshape(24, 3, 3)), shape.float().reshape(10), cam.float().reshape(3)
    )


def convert_release_state(
    release: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    *,
    num_points: int,
    grid_hw: tuple[int, int],
    per_point: int,
    where: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """Map the release's state_dict onto a ``vitb-param-release`` network's ``own`` state_dict (names,
    shapes and the buffers the network keeps: Theta_0 and marker ids are taken from ``own``)."""
    release = dict(release)
    _fold_depth_biases(release, where)
    n_blocks = len({k.split(".")[3] for k in release if k.startswith("feature_extractor.backbone.blocks.")})
    names = _name_map(n_blocks)
    used = set()
    out: dict[str, torch.Tensor] = {}
    for ours in own:
        if ours in ("marker_ids", "mean_pose6d", "mean_betas", "mean_cam"):
            out[ours] = own[ours]
            continue
        theirs = names.get(ours)
        if theirs is None:
            raise ReleaseImportError(f"{where}: whmr's {ours} has no counterpart in the release (not ViT-P?)")
        if theirs not in release:
            raise ReleaseImportError(f"{where}: missing {theirs} (not the released ViT-P W-HMR network?)")
        v = release[theirs]
        used.add(theirs)
        if ours.startswith("point_mlps.") and ours.endswith(".weight"):
            v = v.squeeze(-1)  # Conv1d(k=1) -> Linear
        if ours.endswith("trunk.0.weight") or ours == "orient_correct.fc.0.weight":
            points = grid_hw[0] * grid_hw[1] if ours.startswith("param_regressors.0.") else num_points
            if v.dim() != 2 or v.shape[1] < points * per_point:
                raise ReleaseImportError(
                    f"{where}: {theirs} has shape {tuple(v.shape)}, too few input columns"
                )
            v = _point_major(v, points, per_point)
        if tuple(v.shape) != tuple(own[ours].shape):
            raise ReleaseImportError(
                f"{where}: {theirs} has shape {tuple(v.shape)}, whmr's {ours} needs {tuple(own[ours].shape)}"
                f" (a different marker count or network size?)"
            )
        out[ours] = v.to(own[ours].dtype).clone()
    rest = [k for k in release if k not in used and not any(p.search(k) for p, _ in _DROPPED)]
    if rest:
        raise ReleaseImportError(
            f"{where}: unexpected entries {sorted(rest)[:5]} (not the released ViT-P W-HMR?)"
        )
    if "points_grid" in release:
        grid = release["points_grid"].float().reshape(2, -1).T
        if grid.shape != (grid_hw[0] * grid_hw[1], 2) or not torch.allclose(
            grid, release_grid(grid_hw), atol=1e-6
        ):
            raise ReleaseImportError(
                f"{where}: points_grid is not the release's {grid_hw[1]} x {grid_hw[0]} grid"
            )
    return out


def release_network(
    release: Mapping[str, torch.Tensor], body: Any, marker_ids: torch.Tensor, where: str = "checkpoint"
) -> torch.nn.Module:
    """The ``vitb-param-release`` network on ``body`` ((smplx model, assets)) holding the release's weights
    ``release`` (its state_dict), sampling ``marker_ids``; in eval mode."""
    from whmr_core.model import build_model
    from whmr_core.model_io import load_state

    theta0 = _mean_from_checkpoint(release, where)  # fails fast on a file that is not the release
    config: ModelConfig = get_config(RELEASE_CONFIG)
    net = build_model(config, body, marker_ids=marker_ids, mean_params=theta0)
    state = convert_release_state(
        release, net.state_dict(), num_points=int(marker_ids.numel()), grid_hw=config.pyramid.grid_hw,
        per_point=config.pyramid.mlp_dims[-1], where=where,
    )  # fmt: skip
    load_state(net, state, where, config.name)
    return net.eval()


def import_release(
    checkpoint: str | Path,
    smpl: str | Path,
    markers: str | Path,
    out: str | Path,
    mean_params: str | Path | None = None,
) -> Path:
    """Convert the released checkpoint into a whmr checkpoint directory ``out`` (config
    ``vitb-param-release``) that ``build_from_checkpoint(out, body=smpl)`` loads. ``mean_params`` (SPIN's
    file) is checked against the checkpoint's own mean parameters, which the network uses (as the release)."""
    from whmr_core.body import body_assets, load_body_model
    from whmr_core.checkpoint import save_checkpoint

    where = str(checkpoint)
    release = load_release_state(checkpoint)
    model_body = load_body_model(smpl)
    nv = int(model_body.v_template.shape[0])
    ids = load_marker_ids(markers, nv)
    if mean_params is not None:
        from whmr_core.rotations import rot6d_to_matrix

        given, theta0 = load_mean_params(mean_params, 24, 10), _mean_from_checkpoint(release, where)
        diff = max(
            float((rot6d_to_matrix(given.pose6d) - rot6d_to_matrix(theta0.pose6d)).abs().max()),
            float((given.betas - theta0.betas).abs().max()),
            float((given.cam - theta0.cam).abs().max()),
        )
        if diff > 1e-4:
            raise ReleaseImportError(
                f"{mean_params}: differs from the checkpoint's mean parameters by {diff:.3g} (another file?)"
            )
    net = release_network(release, (model_body, body_assets(model_body)), ids, where)
    config = net.config
    info = {"name": config.name, "model": config_to_dict(config), "body": str(smpl), "body_vertices": nv}
    meta = {
        "source": "W-HMR release (github.com/yw0208/W-HMR @6dd6c49, MIT)",
        "imported_from": str(checkpoint),
        "markers": str(markers),
    }
    return save_checkpoint(out, net.state_dict(), config=info, meta=meta)


def add_import_release_arguments(parser: Any) -> None:
    parser.add_argument(
        "--checkpoint", required=True, help="the release's checkpoint ({'model': state_dict})"
    )
    parser.add_argument("--smpl", required=True, help="SMPL_NEUTRAL.pkl (your licensed SMPL model file)")
    parser.add_argument(
        "--markers", required=True, help="the release's data/smpl/smpl_ssm.npy (67 vertex ids)"
    )
    parser.add_argument(
        "--mean-params", default=None, help="SPIN's smpl_mean_params.npz, checked against the file"
    )
    parser.add_argument("--out", required=True, help="whmr checkpoint directory to write")


def run_import_release(args: Any) -> int:
    """``whmr import-release``: one line on success, one line naming the fault otherwise."""
    import sys

    from whmr_core.checkpoint import CheckpointError

    try:
        out = import_release(args.checkpoint, args.smpl, args.markers, args.out, args.mean_params)
    except (ReleaseImportError, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"whmr import-release: error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {out} (config {RELEASE_CONFIG}); run it with: whmr bag --model {out} --body-model {args.smpl}"
    )
    return 0

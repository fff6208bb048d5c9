"""Write test/data/release_parity.npz: the official W-HMR code's outputs on weights from a rule.

    python scripts/make_release_fixture.py --official DEST [--seed 0] [--out test/data/release_parity.npz]

DEST is a CPU-runnable copy of the release (GitHub yw0208/W-HMR at 6dd6c49, MIT) with stand-in data, made
as /work/shared/release-parity/README.md describes (``setup.sh CHECKOUT DEST``, then ``make_data.py`` in
DEST). The official code is imported from DEST only; nothing of it is copied into whmr. The fixture holds
the state_dict's names, shapes and dtypes, the seed of ``test/release_rule.py`` that generates every
weight, the few data entries the converter reads (mean parameters, first grid), the inputs (batch 2,
different boxes in a 1280x720 image, CamCalib stand-in angles) and the official outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))
from release_rule import is_rule_entry, rule_weight  # noqa: E402

PITCH, ROLL = 0.3, 0.1  # radians: the CamCalib stand-in's angles (R_c = Rx(pitch) Rz(roll))
OUTPUTS = ("local_smpl_vertices", "smpl_vertices", "pred_cam_t", "focal_length", "cam_rotmat")
KEEP_DATA = ("points_grid", "regressor.0.init_pose", "regressor.0.init_shape", "regressor.0.init_cam")


def inputs(n: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 256, 256, generator=g)[:, :, :, 32:-32]  # the middle 192 columns of a 256 crop
    w, h = 1280.0, 720.0
    center = torch.tensor([[700.0, 420.0]]).repeat(n, 1) + torch.rand(n, 2, generator=g) * 200
    side = 150.0 + torch.rand(n, generator=g) * 200
    diag = math.hypot(w, h)
    bbox_info = torch.cat(
        [center - torch.tensor([w / 2, h / 2]), side[:, None], torch.tensor([[w, h]]).repeat(n, 1)], 1
    )
    return dict(
        x=x.contiguous(), meta_masks=None, center=center, scale=side / 200.0, bbox_height=side,
        orig_shape=torch.tensor([[h, w]]).repeat(n, 1), bbox_info=bbox_info / diag, is_train=False,
        J_regressor=None, full_x=torch.zeros(n, 3, 8, 8),
    )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, help="CPU-runnable copy of the release (see the docstring)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "test" / "data" / "release_parity.npz"))
    args = ap.parse_args()
    official = Path(args.official).resolve()
    if (
        not (official / "models" / "whmr.py").is_file()
        or not (official / "data" / "smpl_mean_params.npz").is_file()
    ):
        raise SystemExit(f"{official}: not an assembled release copy with stand-in data (see the docstring)")
    out_path = Path(args.out).resolve()
    os.chdir(official)  # the release opens data/... relative to its root
    sys.path.insert(0, str(official))
    warnings.simplefilter("ignore")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with contextlib.redirect_stdout(io.StringIO()):
        import models.cam_model as cam_model
        from models.whmr import WHMR

        net = WHMR("data/smpl_mean_params.npz").eval()
    sd = net.state_dict()
    spec = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in sd.items()]
    new = {k: (rule_weight(k, tuple(v.shape), args.seed) if is_rule_entry(k) else v) for k, v in sd.items()}
    net.load_state_dict(new)
    cam_model.CAM_ANGLES.update(pitch=PITCH, roll=ROLL)
    inp = inputs(seed=args.seed)
    with torch.no_grad():
        out = net(**inp)
    arrays = {
        "spec": np.array(json.dumps(spec)),
        "seed": np.array(args.seed),
        **{f"data/{k}": sd[k].numpy() for k in KEEP_DATA},
        **{f"in/{k}": inp[k].numpy() for k in ("x", "center", "bbox_height", "orig_shape", "bbox_info")},
        **{f"out/{k}": out[k].numpy() for k in OUTPUTS},
    }
    np.savez_compressed(out_path, **arrays)
    print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB): {len(spec)} entries, seed {args.seed}")
    for k in ("local_smpl_vertices", "pred_cam_t", "focal_length"):
        print(f"  {k} {tuple(out[k].shape)} mean |.| {float(out[k].abs().mean()):.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

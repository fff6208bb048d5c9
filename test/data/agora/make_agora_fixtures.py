#!/usr/bin/env python3
"""Write the tiny AGORA DataFrames the tests read (``test_data_agora.py``): pickled pandas DataFrames in the
schema of AGORA's Camera dataframes with joints (``Cam/*_withjv.pkl``, agora_evaluation's
docs/gt_dataframe.md): one row per image, one list entry per person. Needs pandas (not a whmr dependency);
the files were written with pandas 1.5.3 (SMPL joints) and 2.2.3 (SMPL-X joints):

    python test/data/agora/make_agora_fixtures.py --smpl test/data/agora/train_0_withjv.pkl
    python test/data/agora/make_agora_fixtures.py --smplx test/data/agora/validation_0_withjv.pkl

Joints are random points in front of each camera, projected with AGORA's camera of that image name
(sensor 36 x 20.25 mm, 3840x2160 pixels; focal 18 mm for cam00-cam03, 50 mm for hdri, 28 mm otherwise):
the test checks whmr's K against these projections. ``gt_verts`` holds 10 points per person instead of a
mesh's 6890 or 10475 (whmr ignores it), to keep the files small.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

W, H = 3840, 2160


def focal_px(name: str) -> float:
    mm = 18.0 if any(f"cam0{k}" in name for k in range(4)) else 50.0 if "hdri" in name else 28.0
    return mm / 36.0 * W


def person(rng: np.random.Generator, name: str, joints: int, centre: tuple[float, float, float]):
    j3d = np.asarray(centre) + rng.uniform(-0.4, 0.4, size=(joints, 3)) * np.array([1.0, 2.0, 0.5])
    f = focal_px(name)
    uv = f * j3d[:, :2] / j3d[:, 2:] + np.array([W / 2, H / 2])
    return uv, j3d


def frame(rows: list[dict], joints: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in (
        "imgPath", "X", "Y", "Z", "Yaw", "camX", "camY", "camZ", "camYaw", "gender", "kid", "occlusion",
        "isValid", "gt_path_smpl", "gt_path_smplx", "gt_joints_2d", "gt_joints_3d", "gt_verts",
    )}  # fmt: skip
    for row in rows:
        name, people = row["imgPath"], row["people"]
        out["imgPath"].append(name)
        for key in ("camX", "camY", "camZ", "camYaw"):
            out[key].append(float(rng.uniform(-500, 500)))
        cols: dict[str, list] = {k: [] for k in out if k not in ("imgPath", "camX", "camY", "camZ", "camYaw")}
        for p in people:
            uv, j3d = person(rng, name, joints, p["centre"])
            cols["X"].append(float(rng.uniform(-500, 500)))
            cols["Y"].append(float(rng.uniform(-500, 500)))
            cols["Z"].append(0.0)
            cols["Yaw"].append(float(rng.uniform(0, 360)))
            cols["gender"].append(p.get("gender", "female"))
            cols["kid"].append(p.get("kid", False))
            cols["occlusion"].append(p.get("occlusion", 10.0))
            cols["isValid"].append(p.get("occlusion", 10.0) <= 90.0)
            cols["gt_path_smpl"].append("smpl_gt/trainset_renderpeople_adults_bfh/rp_aaron_posed_002_0_0.obj")
            cols["gt_path_smplx"].append(
                "smplx_gt/trainset_renderpeople_adults_bfh/rp_aaron_posed_002_0_0.obj"
            )
            cols["gt_joints_2d"].append(uv)
            cols["gt_joints_3d"].append(j3d)
            cols["gt_verts"].append(j3d[:10].copy())
        for k, v in cols.items():
            out[k].append(v)
    return pd.DataFrame(out)


SMPL_ROWS = [
    {  # cam00: pitched down 30 degrees; the second person is 95 % occluded (isValid False)
        "imgPath": "ag_trainset_renderpeople_bfh_archviz_5_10_cam00_00001.png",
        "people": [{"centre": (0.5, 0.3, 8.0)}, {"centre": (-1.0, 0.2, 9.0), "occlusion": 95.0}],
    },
    {  # hdri: level camera, 50 mm; a kid
        "imgPath": "ag_trainset_3dpeople_bfh_hdri_50mm_5_15_00020.png",
        "people": [{"centre": (-0.3, 0.1, 12.0), "kid": True, "gender": "male"}],
    },
    {  # another scene: 28 mm, level; the person stands left of the picture, fewer than 8 joints inside
        "imgPath": "ag_trainset_renderpeople_body_brushifyforest_5_15_00040.png",
        "people": [{"centre": (-6.0, 0.0, 7.0)}, {"centre": (0.8, 0.4, 6.0)}],
    },
]
SMPLX_ROWS = [
    {
        "imgPath": "ag_validationset_renderpeople_bfh_flowers_5_15_00003.png",
        "people": [{"centre": (0.2, 0.3, 7.5)}, {"centre": (-0.9, 0.3, 10.0), "gender": "male"}],
    },
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smpl", help="write the SMPL-joints (45) DataFrame here")
    p.add_argument("--smplx", help="write the SMPL-X-joints (127) DataFrame here")
    args = p.parse_args()
    if args.smpl:
        frame(SMPL_ROWS, 45, seed=1).to_pickle(args.smpl)
    if args.smplx:
        frame(SMPLX_ROWS, 127, seed=2).to_pickle(args.smplx)


if __name__ == "__main__":
    main()

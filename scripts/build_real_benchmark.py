#!/usr/bin/env python3
"""Build ``test/data/real_images/`` (the real-image benchmark) from public pose-estimation test fixtures.

    python scripts/build_real_benchmark.py --mmpose /path/to/mmpose/.git [--out test/data/real_images]

Every image and every number comes from open-mmlab/mmpose's ``tests/data/`` at the pinned commit
``MMPOSE_COMMIT`` (read with ``git show COMMIT:path``, so any clone holding that commit works; each blob's
git id is checked). Nothing is chosen by hand except which fixtures are used (all the fixtures of real
people whose annotations give body joints, see ``IMAGES``) and which images have every person labelled
(``ALL_PEOPLE_LABELLED``, by each data set's own labelling rule). The output is:

* ``images/<dataset>_<name>``: the fixture's bytes, unchanged;
* ``labels.json``: the schema of ``test/data/real_images/README.md``, one record per image;

Where each number comes from, per data set (``convert_*`` below):

* boxes: the annotation's ``bbox`` (x, y, w, h -> x1, y1, x2, y2, clipped to the image) where it has one
  (``box_source: "dataset"``); MPII, Human3.6M and MPI-INF-3DHP give only a centre and scale, so their
  box is the extent of the labelled 2D joints padded by ``KEYPOINT_BOX_PAD`` of its larger side on every
  side, clipped to the image (``box_source: "keypoints"``: an approximation of the person's box).
* COCO-17 keypoints: the annotation's joints renamed into COCO-17 order by each data set's joint names
  (mmpose's ``configs/_base_/datasets/<name>.py``); a joint the data set does not have, or did not label,
  is (0, 0, 0). Visibility follows COCO: 2 visible, 1 labelled but occluded; data sets with only a
  labelled/unlabelled flag (MPII, H36M, MPI-INF-3DHP, JHMDB, PoseTrack) give 2 for every labelled joint.
* 3D joints (Human3.6M, MPI-INF-3DHP): ``S`` of mmpose's ``test_h36m_body3d.npz`` / ``test_3dhp_*.npz``,
  camera frame, metres, the data set's 17 joints with names; its 4th column is the joint's validity.
* K: ``f`` and ``c`` of mmpose's ``cameras.pkl`` / ``cameras_{train,test}.pkl`` for that subject and
  camera (the images are not undistorted: Human3.6M's lens distortion is ignored, as pinhole projection
  of ``S`` with this K lands within 2.5 px of the 2D labels; the build checks that bound).

Split: within each data set the images are ordered by the sha256 of their bytes and the first third
(rounded, at least one when the set has two or more) form the "tune" set; the rest are "heldout", the set
results are reported on. No result decided the split.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whmr_core.body.keypoints import COCO17_NAMES  # noqa: E402

MMPOSE_REPO = "open-mmlab/mmpose"
MMPOSE_COMMIT = "759b39c13fea6ba094afc1fa932f51dc1b11cbf9"  # main, 2025-08-04
MMPOSE_LICENCE = "Apache-2.0"
SCHEMA = "whmr-real-images/1"
KEYPOINT_BOX_PAD = 0.08  # of the joints' extent (larger side), each side: joints lie inside the body
MAX_REPROJECTION_PX = 2.5

# Data set -> (annotation file(s) under tests/data, images under tests/data). Only real photographs of
# people: HumanArt's digital-art and garage-kit images are left out.
IMAGES: dict[str, list[str]] = {
    "coco": ["coco/000000000785.jpg", "coco/000000040083.jpg", "coco/000000196141.jpg",
             "coco/000000197388.jpg"],
    "crowdpose": ["crowdpose/103319.jpg", "crowdpose/106848.jpg"],
    "mpii": ["mpii/004645041.jpg", "mpii/005808361.jpg", "mpii/051423444.jpg", "mpii/052475643.jpg",
             "mpii/060754485.jpg"],
    "ochuman": ["ochuman/000817.jpg", "ochuman/003799.jpg", "ochuman/003896.jpg"],
    "aic": ["aic/054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg",
            "aic/fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg",
            "aic/ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg"],
    "mhp": ["mhp/10084.jpg", "mhp/10112.jpg"],
    "humanart": ["humanart/real_human/acrobatics/000000000590.jpg"],
    "exlpose": ["exlpose/imgs_0212_hwangridan_vid000020_exp1200_dark_000052__gain_3.40_exposure_417.png",
                "exlpose/imgs_0212_hwangridan_vid000020_exp400_dark_000052__gain_3.40_exposure_1250.png"],
    "posetrack18": ["posetrack18/images/val/003418_mpii_test/000000.jpg",
                    "posetrack18/images/val/009473_mpii_test/000000.jpg",
                    "posetrack18/images/val/012834_mpii_test/000000.jpg"],
    "jhmdb": ["jhmdb/Frisbee_catch_f_cm_np1_ri_med_0/00001.png",
              "jhmdb/Frisbee_catch_f_cm_np1_ri_med_1/00001.png",
              "jhmdb/Goalkeeper_Training_Day_@_7_catch_f_cm_np1_ri_med_0/00001.png"],
    "h36m": ["h36m/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg",
             "h36m/S5/S5_SittingDown.54138969/S5_SittingDown.54138969_002061.jpg",
             "h36m/S7/S7_Greeting.55011271/S7_Greeting.55011271_000396.jpg",
             "h36m/S8/S8_WalkDog_1.55011271/S8_WalkDog_1.55011271_000026.jpg"],
    "mpi_inf_3dhp": ["mpi_inf_3dhp/S4_Seq2_Cam0_001033.jpg", "mpi_inf_3dhp/S8_Seq1_Cam8_002165.jpg",
                     "mpi_inf_3dhp/TS1_002001.jpg", "mpi_inf_3dhp/TS2_001850.jpg"],
}  # fmt: skip

ANNOTATIONS: dict[str, list[str]] = {
    "coco": ["coco/test_coco.json"],
    "crowdpose": ["crowdpose/test_crowdpose.json"],
    "mpii": ["mpii/test_mpii.json"],
    "ochuman": ["ochuman/test_ochuman.json"],
    "aic": ["aic/test_aic.json"],
    "mhp": ["mhp/test_mhp.json"],
    "humanart": ["humanart/test_humanart.json"],
    "exlpose": ["exlpose/test_exlpose.json"],
    "posetrack18": ["posetrack18/annotations/test_posetrack18_val.json"],
    "jhmdb": ["jhmdb/test_jhmdb_sub1.json"],
    "h36m": ["h36m/test_h36m_body3d.npz", "h36m/cameras.pkl"],
    "mpi_inf_3dhp": ["mpi_inf_3dhp/test_3dhp_train.npz", "mpi_inf_3dhp/test_3dhp_test.npz",
                     "mpi_inf_3dhp/cameras_train.pkl", "mpi_inf_3dhp/cameras_test.pkl"],
}  # fmt: skip

# Images where the data set labels every person (COCO-style sets label everyone, small or crowded ones
# with few or no joints); False where its rule leaves people out: MPII and PoseTrack label only some
# people (PoseTrack marks the rest with ignore regions), so detections of other people there are not
# counted against precision. OCHuman labels only the people in its occlusion pairs and AI Challenger leaves
# small background people out (both visible in these fixtures).
ALL_PEOPLE_LABELLED: dict[str, bool] = {
    "coco": True, "crowdpose": True, "mpii": False, "ochuman": False, "aic": False, "mhp": True,
    "humanart": True, "exlpose": True, "posetrack18": False, "jhmdb": True, "h36m": True,
    "mpi_inf_3dhp": True,
}  # fmt: skip

# Each data set's joint names, in its annotation order (mmpose configs/_base_/datasets/<name>.py).
JOINT_NAMES: dict[str, tuple[str, ...]] = {
    "crowdpose": ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                  "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                  "right_ankle", "top_head", "neck"),
    "exlpose": ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                "right_ankle", "head", "neck"),
    "aic": ("right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
            "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top",
            "neck"),
    "mpii": ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
             "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
             "left_shoulder", "left_elbow", "left_wrist"),
    "jhmdb": ("neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
              "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
              "right_ankle", "left_ankle"),
    # head_bottom/head_top sit where COCO has the eyes: not eyes, so they are not kept
    "posetrack18": ("nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder",
                    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"),
    # H36M's 17-joint "foot" joints are the ankles; "neck_base" is H36M's Neck/Nose point, not the nose
    "h36m": ("root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot",
             "spine", "thorax", "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist",
             "right_shoulder", "right_elbow", "right_wrist"),
    "mpi_inf_3dhp": ("head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
                     "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
                     "left_knee", "left_ankle", "root", "spine", "head"),
}  # fmt: skip
JOINT_NAMES["mhp"] = JOINT_NAMES["mpii"]
# Data sets whose flag says only "labelled" (PoseTrack gives 1 to every labelled joint, JHMDB 2).
LABELLED_FLAG_ONLY = frozenset({"posetrack18", "jhmdb"})
COCO_ALIASES = {"left_foot": "left_ankle", "right_foot": "right_ankle"}

DATASET_TERMS: dict[str, dict[str, str]] = {
    "coco": {
        "name": "COCO 2017 (val)", "homepage": "https://cocodataset.org",
        "terms": "annotations CC BY 4.0; each image keeps its Flickr licence (per image below); COCO's "
                 "terms of use also apply",
    },
    "crowdpose": {
        "name": "CrowdPose", "homepage": "https://github.com/Jeff-sjtu/CrowdPose",
        "terms": "images drawn from MSCOCO, MPII and AI Challenger (their terms apply); for research use",
    },
    "mpii": {
        "name": "MPII Human Pose", "homepage": "http://human-pose.mpi-inf.mpg.de/",
        "terms": "annotations under the Simplified BSD licence; images are YouTube video frames, "
                 "copyright of their owners; for research use",
    },
    "ochuman": {
        "name": "OCHuman", "homepage": "https://github.com/liruilong940607/OCHumanApi",
        "terms": "for research use (no licence file found upstream)",
    },
    "aic": {
        "name": "AI Challenger 2017 keypoints", "homepage": "https://github.com/AIChallenger/AI_Challenger_2017",
        "terms": "for non-commercial research use; images are web photos, copyright of their owners",
    },
    "mhp": {
        "name": "LV-MHP v2", "homepage": "https://lv-mhp.github.io/dataset",
        "terms": "for non-commercial research use",
    },
    "humanart": {
        "name": "Human-Art (real_human subset only)", "homepage": "https://idea-research.github.io/HumanArt/",
        "terms": "Human-Art licence: non-commercial research use; images copyright of their owners",
    },
    "exlpose": {
        "name": "ExLPose (low-light)", "homepage": "https://arxiv.org/abs/2303.15410",
        "terms": "for non-commercial research use (POSTECH CG Lab)",
    },
    "posetrack18": {
        "name": "PoseTrack 2018 (val)", "homepage": "https://posetrack.net",
        "terms": "PoseTrack licence: non-commercial research use; videos are MPII Human Pose's",
    },
    "jhmdb": {
        "name": "JHMDB (sub1)", "homepage": "http://jhmdb.is.tue.mpg.de/",
        "terms": "for research use; frames from HMDB51 (web videos, copyright of their owners)",
    },
    "h36m": {
        "name": "Human3.6M", "homepage": "http://vision.imar.ro/human3.6m/",
        "terms": "Human3.6M licence: academic non-commercial research only; the licence restricts "
                 "redistribution (these 4 frames are the ones mmpose itself redistributes as test fixtures)",
    },
    "mpi_inf_3dhp": {
        "name": "MPI-INF-3DHP", "homepage": "https://vcai.mpi-inf.mpg.de/3dhp-dataset/",
        "terms": "MPI-INF-3DHP licence: non-commercial research only; redistribution restricted (these 4 "
                 "frames are the ones mmpose itself redistributes as test fixtures)",
    },
}  # fmt: skip


# --- reading the pinned sources --------------------------------------------------------------------------


class Source:
    """Files of mmpose's ``tests/data`` at ``MMPOSE_COMMIT``, with their git blob ids."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.blobs: dict[str, str] = {}

    def read(self, rel: str) -> bytes:
        path = f"tests/data/{rel}"
        spec = f"{MMPOSE_COMMIT}:{path}"
        git = ["git", f"--git-dir={self.git_dir}"]
        try:
            blob = subprocess.run([*git, "rev-parse", spec], capture_output=True, check=True, text=True)
            data = subprocess.run([*git, "cat-file", "blob", spec], capture_output=True, check=True).stdout
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"{self.git_dir}: cannot read {spec} ({e.stderr.strip()!s})") from e
        blob_id = blob.stdout.strip()
        check = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if check != blob_id:
            raise SystemExit(f"{spec}: content does not match its git blob id")
        self.blobs[rel] = blob_id
        return data

    def json(self, rel: str):
        return json.loads(self.read(rel))

    def npz(self, rel: str) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.read(rel)), allow_pickle=False) as d:
            return {k: d[k] for k in d.files}

    def cameras(self, rel: str) -> dict:
        return _NumpyOnlyUnpickler(io.BytesIO(self.read(rel))).load()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The camera files are pickled dicts of numpy arrays: refuse any other object."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    })  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"camera file: refusing to load {module}.{name}")
        return super().find_class(module, name)


# --- conversions -----------------------------------------------------------------------------------------


def coco17_from(names: tuple[str, ...], joints: np.ndarray, visible_flag: bool) -> np.ndarray:
    """(17, 3) COCO-17 (x, y, v) from a data set's (J, 3) joints named ``names``: unlabelled -> 0."""
    out = np.zeros((17, 3))
    for j, name in enumerate(names):
        name = COCO_ALIASES.get(name, name)
        if name not in COCO17_NAMES:
            continue
        x, y, v = joints[j]
        if v > 0 and np.isfinite([x, y]).all():
            out[COCO17_NAMES.index(name)] = (x, y, v if visible_flag else 2)
    return out


def keypoint_box(points_xy: np.ndarray, w: int, h: int) -> list[float]:
    """The joints' extent padded by KEYPOINT_BOX_PAD of its larger side, clipped to the image."""
    lo, hi = points_xy.min(0), points_xy.max(0)
    pad = KEYPOINT_BOX_PAD * float((hi - lo).max())
    return [
        max(lo[0] - pad, 0.0),
        max(lo[1] - pad, 0.0),
        min(hi[0] + pad, float(w)),
        min(hi[1] + pad, float(h)),
    ]


def xywh_to_xyxy(b, w: int, h: int) -> list[float]:
    """A data set's (x, y, w, h) box, clipped to the image (a cut-off person's box may reach past it)."""
    x, y, bw, bh = (float(v) for v in b)
    return [max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))]


def person(box, box_source: str, coco17: np.ndarray, joints3d: dict | None = None) -> dict:
    return {
        "box_xyxy": [round(v, 2) for v in box],
        "box_source": box_source,
        "keypoints_coco17": [[round(float(x), 2), round(float(y), 2), int(v)] for x, y, v in coco17],
        "joints3d": joints3d,
    }


def convert_coco_style(src: Source, dataset: str, rel_images: list[str]) -> dict[str, dict]:
    """COCO-format annotation files: boxes and keypoints as given, renamed into COCO-17."""
    ann = src.json(ANNOTATIONS[dataset][0])
    names = JOINT_NAMES.get(dataset, COCO17_NAMES)
    by_name = {Path(im["file_name"]).as_posix(): im for im in ann["images"]}
    out = {}
    for rel in rel_images:
        key = next(k for k in by_name if rel.endswith(k.removeprefix("HumanArt/images/")))
        im = by_name[key]
        people = []
        for a in ann["annotations"]:
            if a["image_id"] != im["id"] or a.get("iscrowd"):
                continue
            k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)[: len(names)]
            box = xywh_to_xyxy(a["bbox"], im["width"], im["height"])
            people.append(person(box, "dataset", coco17_from(names, k, dataset not in LABELLED_FLAG_ONLY)))
        meta = {"width": int(im["width"]), "height": int(im["height"])}
        if dataset == "coco":
            lic = {x["id"]: x for x in ann["licenses"]}[im["license"]]
            meta["image_licence"] = f"{lic['name']} ({lic['url']}); {im['flickr_url']}"
        out[rel] = {**meta, "people": people}
    return out


def convert_mpii(src: Source, rel_images: list[str]) -> dict[str, dict]:
    """MPII's list of people: joints (-1 or vis 0 where unlabelled), no box (keypoint box)."""
    ann = src.json(ANNOTATIONS["mpii"][0])
    out = {}
    for rel in rel_images:
        w, h = image_size(src.read(rel))
        people = []
        for a in ann:
            if a["image"] != Path(rel).name:
                continue
            j = np.asarray(a["joints"], dtype=np.float64)
            vis = np.asarray(a["joints_vis"], dtype=np.float64) * (j > 0).all(1)
            k = np.concatenate([j, vis[:, None]], 1)
            people.append(person(keypoint_box(j[vis > 0], w, h), "keypoints",
                                 coco17_from(JOINT_NAMES["mpii"], k, False)))  # fmt: skip
        out[rel] = {"width": w, "height": h, "people": people}
    return out


def convert_3d(src: Source, dataset: str, rel_images: list[str]) -> dict[str, dict]:
    """Human3.6M / MPI-INF-3DHP: 2D ``part`` and 3D ``S`` (camera frame, m) of mmpose's npz, K from its
    camera file for the image's subject/sequence and camera."""
    files = ANNOTATIONS[dataset]
    npzs = [src.npz(f) for f in files if f.endswith(".npz")]
    cams = [src.cameras(f) for f in files if f.endswith(".pkl")]
    names = JOINT_NAMES[dataset]
    out = {}
    for rel in rel_images:
        base = Path(rel).name
        hit = [(d, i) for d in npzs for i, n in enumerate(d["imgname"]) if Path(str(n)).name == base]
        if len(hit) != 1:
            raise SystemExit(f"{dataset}: {base} found {len(hit)} times in the annotations")
        d, i = hit[0]
        if dataset == "h36m":  # S1_Directions_1.54138969_000001.jpg -> ("S1", "54138969")
            key = (base.split("_")[0], base.split(".")[1].split("_")[0])
        else:  # S4_Seq2_Cam0_001033.jpg -> "S4_Seq2_Cam0"; TS1_002001.jpg -> "TS1"
            key = "_".join(base.split("_")[:3]) if not base.startswith("TS") else base.split("_")[0]
        cam = next(c[key] for c in cams if key in c)
        f, c = np.ravel(cam["f"]).astype(float), np.ravel(cam["c"]).astype(float)
        K = [[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]]
        part, S = d["part"][i], d["S"][i]
        valid = (S[:, 3] > 0) & (part[:, 2] > 0)
        uv = S[:, :2] / S[:, 2:3] * f + c
        err = float(np.abs(uv - part[:, :2])[valid].max())
        if err > MAX_REPROJECTION_PX:
            raise SystemExit(f"{dataset} {base}: S projects {err:.1f} px from the 2D labels with this K")
        w, h = image_size(src.read(rel))
        joints3d = {
            "skeleton": f"{dataset}17",
            "names": list(names),
            "xyz_m": [[round(float(v), 5) for v in p] for p in S[:, :3]],
            "valid": [bool(v) for v in valid],
        }
        k2 = np.concatenate([part[:, :2], valid[:, None].astype(float)], 1)
        people = [person(keypoint_box(part[valid, :2], w, h), "keypoints", coco17_from(names, k2, False),
                         joints3d)]  # fmt: skip
        out[rel] = {"width": w, "height": h, "K": [[round(v, 4) for v in row] for row in K], "people": people}
    return out


def image_size(data: bytes) -> tuple[int, int]:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit("an image OpenCV cannot read")
    return int(img.shape[1]), int(img.shape[0])


def local_name(dataset: str, rel: str) -> str:
    """images/<dataset>_<folder>_<file>: flat, ASCII, no spaces or '@'."""
    parts = Path(rel).parts[1:]
    keep = parts[-2:] if dataset in ("posetrack18", "jhmdb") else parts[-1:]
    stem = "_".join(keep)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}_{stem}").replace("__", "_")


def tune_count(n: int) -> int:
    return 0 if n < 2 else max(1, round(n / 3))


def build(git_dir: Path, out: Path, exclude: frozenset[str] = frozenset()) -> dict:
    src = Source(git_dir)
    records: list[dict] = []
    for dataset, rels in IMAGES.items():
        if dataset in exclude:
            continue
        if dataset == "mpii":
            conv = convert_mpii(src, rels)
        elif dataset in ("h36m", "mpi_inf_3dhp"):
            conv = convert_3d(src, dataset, rels)
        else:
            conv = convert_coco_style(src, dataset, rels)
        blobs = {rel: src.read(rel) for rel in rels}
        sha = {rel: hashlib.sha256(b).hexdigest() for rel, b in blobs.items()}
        order = sorted(rels, key=lambda r: sha[r])
        tune = set(order[: tune_count(len(rels))])
        for rel in rels:
            w, h = image_size(blobs[rel])
            rec = conv[rel]
            if (rec["width"], rec["height"]) != (w, h):
                raise SystemExit(f"{rel}: annotation says {rec['width']}x{rec['height']}, image is {w}x{h}")
            name = local_name(dataset, rel)
            (out / "images").mkdir(parents=True, exist_ok=True)
            (out / "images" / name).write_bytes(blobs[rel])
            records.append({
                "file": f"images/{name}",
                "dataset": dataset,
                "split": "tune" if rel in tune else "heldout",
                "sha256": sha[rel],
                "width": w,
                "height": h,
                "K": rec.get("K"),
                "all_people_labelled": ALL_PEOPLE_LABELLED[dataset],
                "source": {"repo": MMPOSE_REPO, "commit": MMPOSE_COMMIT, "path": f"tests/data/{rel}",
                           "git_blob": src.blobs[rel]},
                **({"image_licence": rec["image_licence"]} if "image_licence" in rec else {}),
                "people": rec["people"],
            })  # fmt: skip
    annotations = {
        d: [{"path": f"tests/data/{f}", "git_blob": src.blobs[f]} for f in files]
        for d, files in ANNOTATIONS.items()
        if d not in exclude
    }
    return {
        "schema": SCHEMA,
        "coco17_names": list(COCO17_NAMES),
        "source": {"repo": MMPOSE_REPO, "commit": MMPOSE_COMMIT, "licence": MMPOSE_LICENCE,
                   "annotations": annotations},
        "datasets": {d: t for d, t in DATASET_TERMS.items() if d not in exclude},
        "keypoint_box_pad": KEYPOINT_BOX_PAD,
        "images": records,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mmpose", type=Path, required=True, help="a git dir (or clone) of open-mmlab/mmpose")
    p.add_argument("--out", type=Path, default=ROOT / "test/data/real_images")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        choices=sorted(IMAGES),
        metavar="DATASET",
        help="leave these data sets out (e.g. where their terms do not suit the project)",
    )
    args = p.parse_args(argv)
    git_dir = args.mmpose / ".git" if (args.mmpose / ".git").is_dir() else args.mmpose
    labels = build(git_dir, args.out, frozenset(args.exclude))
    (args.out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")
    people = sum(len(r["people"]) for r in labels["images"])
    held = sum(r["split"] == "heldout" for r in labels["images"])
    print(f"{len(labels['images'])} images ({held} held out), {people} labelled people -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Why the fitted body scores worse in 3D than the BlazePose landmarks it is fitted to (issue 22).

The Pipeline runs on the labelled (true) boxes of ``test/data/real_images`` as ``bench_real_images.py``'s
"network on true boxes" does (MoveNet Thunder's keypoints, BlazePose's 3D landmarks, the fit), once per fit
variant (``FitConfig`` fields as ``name=value``); per variant it prints PCK@0.1/0.2 on every counted person
and, per 3D-labelled person, PA-MPJPE of the fitted body's joints, of BlazePose's landmarks, and the fitted
body's COCO-17 limb points' hip-centred distance to the landmarks (what the fit's 3D term measures), with
per-joint errors after the similarity alignment (``--joints``).

    python scripts/exp_fit3d.py [--split tune] [--model DIR] [--joints] base keypoints_3d_align=hips ...
    python scripts/exp_fit3d.py --synthetic 200 [--model DIR] base keypoints_3d_align=hips nofit3d

A variant is a space-free list of ``field=value`` joined by ``,``; ``base`` is the shipped FitConfig;
``nofit3d`` runs without the 3D landmarks, ``nofit`` without the fit.

``--synthetic N``: instead, the first N people of whmr's synthetic validation split (``data/synth1``, made by
``whmr synth --out data/synth1 --num 8000 --seed 0 --split-val 0.1 --body lowres --max-people 1``; images the
shipped network never trained on, cameras of 10-100 degrees field of view), each on the box of its true
COCO-17 points padded by 8 %, with its K; scored against its true joints, which are the body model's own
(no joint-definition mismatch): PA-MPJPE and hip-aligned MPJPE over the 14 joints, mean and median.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whmr_core import metrics  # noqa: E402
from whmr_core.evaluation_real import (  # noqa: E402
    JOINTS14,
    joints14_from_coco17,
    joints14_from_smpl,
    load_labels,
    pck_counts,
    persons_from_record,
)

LABELS = ROOT / "test/data/real_images/labels.json"
NAMES14 = [j[0] for j in JOINTS14]
LIMBS10 = np.array([not n.endswith("hip") and n not in ("neck", "pelvis") for n in NAMES14])


def pa_per_joint(pred: np.ndarray, true: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per-joint error (mm) after the similarity alignment of pred to true over the valid joints."""
    import torch

    p, t = torch.as_tensor(pred[ok])[None], torch.as_tensor(true[ok])[None]
    aligned = metrics.procrustes_align(p, t)[0].numpy()
    out = np.full(len(pred), np.nan)
    out[ok] = 1000 * np.linalg.norm(aligned - true[ok], axis=1)
    return out


BONES = {"hipw": ("left_hip", "right_hip"), "shw": ("left_shoulder", "right_shoulder"),
         "thighL": ("left_hip", "left_knee"), "thighR": ("right_hip", "right_knee"),
         "shinL": ("left_knee", "left_ankle"), "shinR": ("right_knee", "right_ankle"),
         "uarmL": ("left_shoulder", "left_elbow"), "uarmR": ("right_shoulder", "right_elbow"),
         "farmL": ("left_elbow", "left_wrist"), "farmR": ("right_elbow", "right_wrist"),
         "torso": ("neck", "pelvis")}  # fmt: skip


def bones(j14: np.ndarray) -> dict[str, float]:
    """Bone lengths (mm) of JOINTS14 points."""
    return {
        k: 1000 * float(np.linalg.norm(j14[NAMES14.index(a)] - j14[NAMES14.index(b)]))
        for k, (a, b) in BONES.items()
    }


def parse_variant(text: str) -> tuple[dict, dict]:
    """``a=1,b=0.5,nofit3d`` -> (FitConfig fields, PipelineConfig fields); a name that is a PipelineConfig
    field (``fit_iterations``) goes to the Pipeline."""
    from whmr_core.fitting import FitConfig
    from whmr_core.runtime.config import PipelineConfig

    fit, pipe = {}, {}
    if text == "base":
        return fit, pipe
    for item in text.split(","):
        if item in ("nofit3d", "nofit"):
            pipe["fit_3d" if item == "nofit3d" else "fit"] = False
            continue
        k, v = item.split("=")
        owner, into = (FitConfig(), fit) if hasattr(FitConfig(), k) else (PipelineConfig(), pipe)
        kind = type(getattr(owner, k))
        into[k] = v in ("1", "true", "True") if kind is bool else kind(v)
    return fit, pipe


class Recorder:
    """Wraps the Pipeline's BlazePoseWorld: keeps what it returned (boxes, landmarks, scores) per call."""

    def __init__(self, inner, seen: list) -> None:
        self.inner, self.seen = inner, seen

    def __call__(self, image, boxes):
        out = self.inner(image, boxes)
        self.seen.append((np.asarray(boxes).copy(), out[0].copy(), out[1].copy()))
        return out


def synthetic(args: argparse.Namespace) -> int:
    import torch

    from whmr_core.media.image import read_image
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.factory import load_engine, load_topology
    from whmr_core.runtime.frames import Detections, Frame
    from whmr_core.runtime.movenet import BlazePoseWorld
    from whmr_core.runtime.pipeline import Pipeline

    root = ROOT / "data/synth1"
    d = np.load(root / "val.npz", allow_pickle=True)
    n = args.synthetic
    engine = load_engine("auto", args.model or None, threads=1)
    topology = load_topology(engine=engine)
    world = BlazePoseWorld(1)
    people = []
    for i in range(len(d["imgname"])):
        if len(people) == n:
            break
        kp = d["coco2d"][i]
        seen = kp[:, 2] > 0
        if seen[5:].sum() < 10 or not seen[11:13].all():  # most of the body in view, both hips
            continue
        lo, hi = kp[seen, :2].min(0), kp[seen, :2].max(0)
        pad = 0.08 * (hi - lo).max()
        box = np.r_[lo - pad, hi + pad]
        K = np.array([[d["focal"][i, 0], 0, d["principal_point"][i, 0]], [0, d["focal"][i, 1],
                      d["principal_point"][i, 1]], [0, 0, 1.0]])  # fmt: skip
        truth = joints14_from_smpl(d["joints3d_cam"][i])
        people.append((read_image(root / d["imgname"][i]), box, K, truth))
    hips = [NAMES14.index("left_hip"), NAMES14.index("right_hip")]

    def scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
        p, t = torch.as_tensor(pred)[None], torch.as_tensor(truth)[None]
        return 1000 * float(metrics.pa_mpjpe(p, t)[0]), 1000 * float(metrics.mpjpe(p, t, root=tuple(hips))[0])

    lm = [scores(joints14_from_coco17(world(im, box[None])[0][0]), truth) for im, box, _, truth in people]
    lm = np.array(lm)
    n = len(people)
    print(f"BlazePose landmarks ({n} people; its hips and neck are not the body's)  PA-MPJPE mean "
          f"{lm[:, 0].mean():.1f} median {np.median(lm[:, 0]):.1f}  MPJPE {lm[:, 1].mean():.1f}")  # fmt: skip
    for variant in args.variants:
        fit_kw, pipe_kw = parse_variant(variant)
        config = dataclasses.replace(PipelineConfig(), **{"max_persons": 4, "fit_3d": True, **pipe_kw})
        pipe = Pipeline(engine, topology, config)
        got, fitted = [], 0
        for im, box, K, truth in people:
            pipe.reset()
            if pipe._fitter() is not None and fit_kw:
                pipe._fit_config = dataclasses.replace(pipe._fit_config, **fit_kw)
            res = pipe.process(Frame(im, 0, K=K, detections=Detections.of(box[None])))
            if not res.persons:
                got.append((np.nan, np.nan))
                continue
            person = res.persons[0]
            fitted += int(person.fit == "fitted")
            got.append(scores(joints14_from_smpl(np.asarray(person.joints_camera, np.float64)), truth))
        got = np.array(got)
        pa_mean, pa_median = np.nanmean(got[:, 0]), np.nanmedian(got[:, 0])
        print(f"{variant:45s} PA-MPJPE mean {pa_mean:.1f} median {pa_median:.1f}  "
              f"MPJPE mean {np.nanmean(got[:, 1]):.1f} median {np.nanmedian(got[:, 1]):.1f}  "
              f"({int(np.isfinite(got[:, 0]).sum())} scored, {fitted} fitted)", flush=True)  # fmt: skip
    return 0


def main() -> int:
    from whmr_core.media.image import read_image
    from whmr_core.media.results import frame_record
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.factory import load_engine, load_topology
    from whmr_core.runtime.frames import Detections, Frame
    from whmr_core.runtime.movenet import crop_to_camera
    from whmr_core.runtime.pipeline import Pipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="*", default=["base"])
    ap.add_argument("--split", default="tune", choices=("tune", "heldout", "all"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--joints", action="store_true", help="per-joint errors of the 3D people")
    ap.add_argument("--synthetic", type=int, default=0, help="people of data/synth1's val split")
    args = ap.parse_args()
    if args.synthetic:
        return synthetic(args)
    images = [im for im in load_labels(LABELS) if args.split == "all" or im.split == args.split]
    engine = load_engine("auto", args.model or None, threads=1)
    topology = load_topology(engine=engine)
    pixels = {im.file: read_image(LABELS.parent / im.file) for im in images}
    for variant in args.variants:
        fit_kw, pipe_kw = parse_variant(variant)
        config = dataclasses.replace(PipelineConfig(), **{"max_persons": 64, "fit_3d": True, **pipe_kw})
        pipe = Pipeline(engine, topology, config)
        seen_world: list = []
        hits = {0.1: [0, 0], 0.2: [0, 0]}
        rows = []
        for im in images:
            pipe.reset()
            if pipe._fitter() is not None and fit_kw:
                pipe._fit_config = dataclasses.replace(pipe._fit_config, **fit_kw)
            if pipe._world is None and config.fit_3d and config.fit:
                from whmr_core.runtime.movenet import BlazePoseWorld

                pipe._world = BlazePoseWorld(1)
            if pipe._world is not None and not isinstance(pipe._world, Recorder):
                pipe._world = Recorder(pipe._world, seen_world)
            seen_world.clear()
            boxes = np.array([q.box for q in im.people])
            res = pipe.process(Frame(pixels[im.file], 0, K=im.K, detections=Detections.of(boxes)))
            preds = persons_from_record(frame_record(res, focal_px=res.focal_px))
            for label in im.people:
                if not label.counted:
                    continue
                # the prediction for this label: the one whose box is this label's
                pi = int(np.argmin([np.abs(p.box - label.box).sum() for p in preds]))
                pred = preds[pi]
                for a in hits:
                    h, n = pck_counts(pred.keypoints, label, a)
                    hits[a][0] += h
                    hits[a][1] += n
                if label.joints3d is None:
                    continue
                ok = label.joints3d_valid
                body = pa_per_joint(pred.joints3d, label.joints3d, ok)
                row = {"file": im.file.split("/")[-1], "body": body}
                only = ok & LIMBS10
                row["body10"] = pa_per_joint(pred.joints3d, label.joints3d, only)
                # the body's neck and pelvis as the landmarks' are: the shoulders' and hips' midpoints
                mid = pred.joints3d.copy()
                for name, pair in (("neck", "shoulder"), ("pelvis", "hip")):
                    mid[NAMES14.index(name)] = 0.5 * (mid[NAMES14.index(f"left_{pair}")]
                                                      + mid[NAMES14.index(f"right_{pair}")])  # fmt: skip
                row["body_mid"] = pa_per_joint(mid, label.joints3d, ok)
                if seen_world:
                    b3, w3, s3 = seen_world[-1]
                    k = int(np.argmin(np.abs(b3 - label.box).sum(1)))
                    lm14 = joints14_from_coco17(w3[k])
                    row["landmarks"] = pa_per_joint(lm14, label.joints3d, ok)
                    row["landmarks10"] = pa_per_joint(lm14, label.joints3d, only)
                    # the fitted body's limb points vs the landmarks (in the camera's axes, as the fit is
                    # given them), hip-centred
                    hips = [NAMES14.index("left_hip"), NAMES14.index("right_hip")]
                    cam14 = joints14_from_coco17(crop_to_camera(w3[k : k + 1], b3[k : k + 1], im.K)[0])
                    bc = pred.joints3d - pred.joints3d[hips].mean(0)
                    lc = cam14 - cam14[hips].mean(0)
                    row["fit_vs_landmarks"] = 1000 * np.linalg.norm(bc - lc, axis=1)
                    row["vis"] = s3[k]
                    row["bones"] = {
                        n: (bones(x))
                        for n, x in (("label", label.joints3d), ("body", pred.joints3d), ("landmarks", lm14))
                    }
                rows.append(row)
        pck = " / ".join(f"{100 * h / max(n, 1):.1f}" for h, n in hits.values())
        pa = [np.nanmean(r["body"]) for r in rows]
        pa10 = [float(np.nanmean(r["body10"])) for r in rows]
        pa_mid = [float(np.nanmean(r["body_mid"])) for r in rows]
        lm10 = [float(np.nanmean(r["landmarks10"])) for r in rows if "landmarks10" in r]
        lm = [np.nanmean(r["landmarks"]) for r in rows if "landmarks" in r]
        fvl = [np.nanmean(r["fit_vs_landmarks"][:12]) for r in rows if "fit_vs_landmarks" in r]
        print(f"{variant:50s} PCK@0.1/0.2 {pck}  body PA {np.round(pa, 1)} mean {np.mean(pa):.1f}  "
              f"landmarks PA {np.round(lm, 1)}  body PA, neck/pelvis as midpoints {np.round(pa_mid, 1)}"
              f"  | 10 limb joints (no hips, neck, pelvis): "
              f"body {np.round(pa10, 1)} "
              f"landmarks {np.round(lm10, 1)} | fit-vs-landmarks (limbs, hip-centred) {np.round(fvl, 1)}",
              flush=True)  # fmt: skip
        if args.joints:
            for r in rows:
                print("  ", r["file"])
                for key in ("body", "landmarks", "fit_vs_landmarks"):
                    if key in r:
                        print(
                            f"     {key:18s}",
                            " ".join(f"{n[:9]}:{v:4.0f}" for n, v in zip(NAMES14, r[key], strict=True)),
                        )
                if "vis" in r:
                    print("     visibility (COCO-17)", np.round(r["vis"], 2))
                    for n, b in r["bones"].items():
                        print(f"     bones {n:10s}", " ".join(f"{k}:{v:4.0f}" for k, v in b.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

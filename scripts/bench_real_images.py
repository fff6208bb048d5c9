#!/usr/bin/env python3
"""Score whmr on the real-image benchmark (``test/data/real_images``), with its references.

    python scripts/bench_real_images.py [--split heldout|tune|all] [--out out/bench_real] [whmr image options]

Sources, each scored by ``whmr_core.evaluation_real`` (definitions there):

* ``whmr``: ``whmr image`` as a user runs it (``whmr_core.media.image.run_images``, the same options and
  defaults; each image on its own with its K where the labels have one);
* ``keypoint model``: the ``keypoints_2d`` (COCO-17 x, y, score) of the same ``whmr image`` records, when
  the records have them;
* ``network on true boxes``: the same pipeline given the labelled boxes as detections (no detector; no
  cap on the number of people), and ``keypoint model on true boxes`` when its records have keypoints;
* ``BlazePose landmarks on true boxes``: BlazePose full (the model behind ``whmr image``'s 3D fit term,
  ``runtime.movenet.BlazePoseWorld``) run alone on each labelled box: its 2D landmarks at the COCO-17 points
  for PCK, its 3D world landmarks (hip-centred metres, no placement: no depth) for MPJPE / PA-MPJPE,
  mapped to the 14 joints by ``joints14_from_coco17`` (neck and pelvis: the shoulders' and hips' midpoints);
* ``average pose in true box``: the network's mean body (its Theta_0 pose and shape, facing the camera),
  its mesh's 2D extent stretched onto each labelled box; with K its depth is the one at which the mesh's
  height fills the box.

Results are reported on the held-out images (``--split heldout``, the default); the tune images are for
tuning. Writes ``<out>/results.json`` (every figure, per split and source) and ``<out>/table.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whmr_core.evaluation_real import (  # noqa: E402
    LabelledImage,
    PredictedPerson,
    coco17_from_smpl_2d,
    format_table,
    joints14_from_coco17,
    joints14_from_smpl,
    load_labels,
    persons_from_record,
    score_source,
)

LABELS = ROOT / "test/data/real_images/labels.json"
WHMR = "whmr"
KEYPOINTS = "keypoint model"
TRUE_BOXES = "network on true boxes"
KEYPOINTS_TRUE = "keypoint model on true boxes"
BLAZEPOSE_TRUE = "BlazePose landmarks on true boxes"
MEAN_POSE = "average pose in true box"
SOURCES = (WHMR, KEYPOINTS, TRUE_BOXES, KEYPOINTS_TRUE, BLAZEPOSE_TRUE, MEAN_POSE)
# recall/precision say nothing about these
GIVEN_BOXES = (TRUE_BOXES, KEYPOINTS_TRUE, BLAZEPOSE_TRUE, MEAN_POSE)


def mean_body(model_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The network's mean body (Theta_0): SMPL joints (J, 3) and vertices (V, 3), camera orientation."""
    import torch

    from whmr_core.model_io import build_from_checkpoint

    model = build_from_checkpoint(model_path or None)
    with torch.no_grad():
        p = model.mean_params(1)
        verts, joints = model.body(model.pose_rotmats(p.pose), p.betas)
    return joints[0].double().numpy(), verts[0].double().numpy()


def mean_pose_people(img: LabelledImage, joints: np.ndarray, verts: np.ndarray) -> list[PredictedPerson]:
    lo, hi = verts[:, :2].min(0), verts[:, :2].max(0)
    out = []
    for person in img.people:
        b = person.box
        scale = (b[2:] - b[:2]) / (hi - lo)  # the mesh's 2D extent stretched onto the box
        j2 = b[:2] + (joints[:, :2] - lo) * scale
        j3 = joints - np.r_[(lo + hi) / 2, verts[:, 2].mean()]
        metric = img.K is not None
        if metric:  # the depth at which the mesh's height fills the box, centred on it
            fx, fy, cx, cy = img.K[0, 0], img.K[1, 1], img.K[0, 2], img.K[1, 2]
            z = fy * (hi[1] - lo[1]) / (b[3] - b[1])
            centre = (b[:2] + b[2:]) / 2
            j3 = j3 + np.array([(centre[0] - cx) * z / fx, (centre[1] - cy) * z / fy, z])
        out.append(PredictedPerson(b.copy(), coco17_from_smpl_2d(j2), joints14_from_smpl(j3), metric))
    return out


def blazepose_people(img: LabelledImage, image: np.ndarray, blazepose) -> list[PredictedPerson]:
    """BlazePose alone on each labelled box: 2D landmarks (COCO-17 points) and 3D world landmarks."""
    boxes = np.array([q.box for q in img.people]).reshape(-1, 4)
    world, _, image_points = blazepose.landmarks(image, boxes)
    return [
        PredictedPerson(b.copy(), kp, joints14_from_coco17(w))
        for b, kp, w in zip(boxes, image_points, world, strict=True)
    ]


def _brief(summary: dict) -> dict:
    keep = ("counted_people", "found", "precision", "pck@0.2", "mirrored", "pa_mpjpe_mm", "depth_ratio_range")
    return {k: summary[k] for k in keep}


def k4(img: LabelledImage) -> tuple[float, float, float, float] | None:
    return None if img.K is None else (img.K[0, 0], img.K[1, 1], img.K[0, 2], img.K[1, 2])


def main(argv: list[str] | None = None) -> int:
    from whmr_core.media.image import (
        PHOTO_MODEL_DEFAULTS,
        ImageOptions,
        add_model_arguments,
        pipeline_from_args,
        read_image,
        run_images,
    )
    from whmr_core.media.results import frame_record
    from whmr_core.runtime.frames import Detections, Frame
    from whmr_core.runtime.movenet import BlazePoseWorld
    from whmr_core.runtime.pipeline import Pipeline

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--split", choices=("heldout", "tune", "all"), default="heldout")
    p.add_argument("--out", type=Path, default=Path("out/bench_real"))
    add_model_arguments(p, mesh_default="network", **PHOTO_MODEL_DEFAULTS)  # as whmr image
    args = p.parse_args(argv)
    try:
        images = load_labels(args.labels)
    except ValueError as e:
        print(f"bench_real_images: {e}")
        return 2
    if args.split != "all":
        images = [im for im in images if im.split == args.split]
    pipeline = pipeline_from_args(args)
    given_boxes = Pipeline(pipeline.engine, pipeline.topology, replace(pipeline.config, max_persons=64))
    joints, verts = mean_body(args.model)
    blazepose = BlazePoseWorld(args.threads)
    preds: dict[str, dict[str, list[PredictedPerson]]] = {name: {} for name in SOURCES}
    seconds = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for img in images:
            path = args.labels.parent / img.file
            options = ImageOptions(
                out=Path(tmp), K=k4(img), overlay=False, mesh_format="none", mesh="network"
            )
            t0 = time.perf_counter()
            (summary,) = run_images([path], pipeline, options, progress=False, echo=lambda *_: None)
            seconds.append(time.perf_counter() - t0)
            if summary.error:
                print(f"warning: {summary.error}")
                continue
            record = json.loads((Path(tmp) / f"{path.stem}.json").read_text(encoding="utf-8"))
            preds[WHMR][img.file] = persons_from_record(record)
            preds[KEYPOINTS][img.file] = persons_from_record(record, keypoints="model")
            given_boxes.reset()  # the network alone on the labelled boxes
            boxes = Detections.of(np.array([q.box for q in img.people]))
            pixels = read_image(path)
            result = given_boxes.process(Frame(pixels, 0, K=img.K, detections=boxes))
            record = frame_record(result, focal_px=result.focal_px)
            preds[TRUE_BOXES][img.file] = persons_from_record(record)
            preds[KEYPOINTS_TRUE][img.file] = persons_from_record(record, keypoints="model")
            preds[BLAZEPOSE_TRUE][img.file] = blazepose_people(img, pixels, blazepose)
            preds[MEAN_POSE][img.file] = mean_pose_people(img, joints, verts)
            print(f"{img.file}: {len(preds[WHMR][img.file])} found, {len(img.people)} labelled "
                  f"[{seconds[-1]:.2f} s]", flush=True)  # fmt: skip
    for name in (KEYPOINTS, KEYPOINTS_TRUE):  # records without keypoints: no keypoint model ran
        if not any(preds[name].values()):
            del preds[name]
    summaries = {name: score_source(images, by_image).summary() for name, by_image in preds.items()}
    per_image = {
        im.file: {name: _brief(score_source([im], by_image).summary()) for name, by_image in preds.items()}
        for im in images
    }
    table = format_table(summaries, true_boxes=GIVEN_BOXES)
    n_people = sum(len(im.people) for im in images)
    head = (f"{len(images)} {args.split} images, {n_people} labelled people; detector {args.detector}; "
            f"whmr image {np.median(seconds):.2f} s per image (median)")  # fmt: skip
    (args.out / "table.md").write_text(head + "\n\n" + table + "\n", encoding="utf-8")
    report = {"split": args.split, "images": [im.file for im in images], "detector": args.detector,
              "model": args.model or "shipped", "seconds_per_image": seconds, "sources": summaries,
              "per_image": per_image}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(head + "\n\n" + table)
    print(f"-> {args.out}/table.md, {args.out}/results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""The body network alone on dark frames: the tune photos darkened as a low-light camera sees them
(``bench_dark_frames.darkened``: linear light scaled to a mean of ``--levels`` grey levels, shot and read
noise, seeded), each labelled person given as a box (no detector, no fit), the network's 2D joints scored
against the labels (PCK@0.2 on the 12 limb points, mirrored share), with the crops of a brightened frame
bilinear (before) and averaged over the pixels each crop pixel covers (now: ``extract_crops(average=...)``,
as MoveNet Thunder's). The bright tune photos as they are, last: the same crops both ways.

Tune split only (decisions are made there). One thread.

    .venv/bin/python scripts/bench_dark_network.py [--levels 0.25 0.5 1 2 4] [--seeds 0 1 2] [--model DIR]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_dark_frames import LABELS, darkened  # noqa: E402

from whmr_core import crops  # noqa: E402
from whmr_core.evaluation_real import coco17_from_smpl_2d, is_mirrored, load_labels, pck_counts  # noqa: E402
from whmr_core.media.image import add_model_arguments, pipeline_from_args  # noqa: E402
from whmr_core.media.image_files import read_image  # noqa: E402
from whmr_core.runtime import pipeline as pipeline_module  # noqa: E402
from whmr_core.runtime.frames import Detections, Frame  # noqa: E402
from whmr_core.runtime.pipeline import Pipeline  # noqa: E402
from whmr_core.tracking import iou_matrix  # noqa: E402


def bilinear_crops(image, centres, sides, crop_hw, average=False):
    """The network's crops before: bilinear on brightened frames too."""
    return crops.extract_crops(image, centres, sides, crop_hw)


def score(pipe: Pipeline, frames) -> tuple[float, int, int]:
    """(PCK@0.2, mirrored, people decided) of the network's joints on the counted people's true boxes."""
    hit = total = mirrored = decided = 0
    for image, img in frames:
        people = [p for p in img.people if p.counted]
        boxes = np.stack([p.box for p in people])
        pipe.reset()
        result = pipe.process(Frame(image, 0, K=img.K, detections=Detections.of(boxes)))
        if not result.persons:
            total += sum(pck_counts(None, p, 0.2)[1] for p in people)
            continue
        iou = iou_matrix(boxes, np.stack([q.box_xyxy for q in result.persons]))
        for i, person in enumerate(people):
            j = int(np.argmax(iou[i]))
            kp = coco17_from_smpl_2d(result.persons[j].joints_2d) if iou[i, j] > 0.5 else None
            a, b = pck_counts(kp, person, 0.2)
            hit, total = hit + a, total + b
            m = is_mirrored(kp, person)
            if m is not None:
                mirrored, decided = mirrored + int(m), decided + 1
    return hit / max(total, 1), mirrored, decided


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--levels", type=float, nargs="*", default=[0.25, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    add_model_arguments(p, mesh_default="network", movenet_sides="256", fit_3d=False, max_persons=64,
                        crowd_tiles=False)  # fmt: skip
    args = p.parse_args(argv)
    args.no_fit, args.threads = True, 1
    base = pipeline_from_args(args)
    pipe = Pipeline(base.engine, base.topology, replace(base.config, max_persons=64))
    images = [i for i in load_labels(args.labels) if i.split == "tune" and i.dataset != "exlpose"]
    images = [i for i in images if any(q.counted for q in i.people)]
    photos = {im.file: read_image(args.labels.parent / im.file) for im in images}
    sets = {}
    for level in args.levels:
        frames = []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            frames += [(darkened(photos[im.file], level, rng, 3.0, 2.0), im) for im in images]
        sets[f"darkened to {level:g} levels"] = frames
    sets["bright tune photos as they are"] = [(photos[im.file], im) for im in images]
    print("| frames | crops | PCK@0.2 | mirrored |\n|---|---|---|---|")
    for name, frames in sets.items():
        for crop_name, fn in (("bilinear (before)", bilinear_crops), ("averaged (now)", crops.extract_crops)):
            pipeline_module.extract_crops = fn
            pck, mirrored, decided = score(pipe, frames)
            print(f"| {name} | {crop_name} | {100 * pck:.1f} % | {mirrored} of {decided} |", flush=True)
    pipeline_module.extract_crops = crops.extract_crops
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

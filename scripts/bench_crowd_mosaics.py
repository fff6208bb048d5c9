#!/usr/bin/env python3
"""People found in crowds beyond MoveNet MultiPose's 6: mosaics of the real-image benchmark's photos.

A crowd photo with labels is rare; a mosaic of labelled photos is a crowd whose every person is labelled.
Each mosaic puts 6 photos of one split (a seeded draw) on a 3 x 2 grid of 640 x 480 cells (each photo scaled
to fit its cell, centred; 1920 x 960 in all), the labels moved with them. The box step of ``whmr image``
(MultiPose at 256 and 512, 16 people at most) runs on each mosaic without the crowd tiles, with them for
saturated runs only (``small_person`` 0), with one level of them (the default: saturated runs and small
people), and with a saturated tile tiled again; each run's people are paired with the labels as the benchmark
pairs them (``whmr_core.evaluation_real``: IoU >= 0.5; counted people have at least 7 of 12 limb points
labelled). Prints, per setting: counted people found (recall), people returned, returned people paired with
nobody (false alarms or unlabelled people), false alarms (those in a photo whose data set labels everyone),
precision = 1 - false alarms / returned (a bound: unpaired people in other photos are not counted against
it), the CPU time per mosaic, and for the counted people missed, their best IoU with any returned box.

    .venv/bin/python scripts/bench_crowd_mosaics.py [--split tune] [--mosaics 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whmr_core.evaluation_real import (  # noqa: E402
    LabelledImage,
    LabelledPerson,
    PredictedPerson,
    box_iou,
    load_labels,
    match_people,
)
from whmr_core.media.image_files import read_image  # noqa: E402

LABELS = ROOT / "test/data/real_images/labels.json"
CELL_W, CELL_H, COLS, ROWS = 640, 480, 3, 2
PHOTO_SIDES = (256, 512)  # whmr image's MultiPose sizes
PHOTO_MAX_PEOPLE = 16


def mosaic(
    images: list[LabelledImage], labels_dir: Path
) -> tuple[np.ndarray, list[LabelledPerson], list[bool]]:
    """The photos on the grid, row by row, their people in mosaic pixels, and per cell whether its data set
    labels everyone."""
    canvas = np.zeros((ROWS * CELL_H, COLS * CELL_W, 3), np.uint8)
    people: list[LabelledPerson] = []
    for k, img in enumerate(images):
        rgb = read_image(labels_dir / img.file)
        s = min(CELL_W / rgb.shape[1], CELL_H / rgb.shape[0])
        w, h = max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))
        x0 = (k % COLS) * CELL_W + (CELL_W - w) // 2
        y0 = (k // COLS) * CELL_H + (CELL_H - h) // 2
        canvas[y0 : y0 + h, x0 : x0 + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        sx, sy = w / rgb.shape[1], h / rgb.shape[0]
        for p in img.people:
            box = p.box * [sx, sy, sx, sy] + [x0, y0, x0, y0]
            kp = p.keypoints.copy()
            kp[:, :2] = kp[:, :2] * [sx, sy] + [x0, y0]
            people.append(LabelledPerson(box, kp))
    return canvas, people, [img.all_people_labelled for img in images]


def false_alarms(boxes: np.ndarray, unpaired: list[int], everyone_labelled: list[bool]) -> int:
    """Unpaired boxes whose centre lies in a cell whose photo labels everyone."""
    n = 0
    for i in unpaired:
        cx, cy = (boxes[i, 0] + boxes[i, 2]) / 2, (boxes[i, 1] + boxes[i, 3]) / 2
        col, row = min(int(cx // CELL_W), COLS - 1), min(int(cy // CELL_H), ROWS - 1)
        n += everyone_labelled[max(row, 0) * COLS + max(col, 0)]
    return n


def main(argv: list[str] | None = None) -> int:
    from whmr_core.runtime.movenet import MultiPoseDetector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--split", choices=("tune", "heldout"), default="tune")
    p.add_argument("--mosaics", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    images = [i for i in load_labels(args.labels) if i.split == args.split]
    rng = np.random.default_rng(args.seed)
    mosaics = [
        mosaic([images[j] for j in rng.choice(len(images), COLS * ROWS, replace=False)], args.labels.parent)
        for _ in range(args.mosaics)
    ]
    settings = {  # MultiPoseDetector keywords
        "no tiles": {"tile_crowds": False},
        "crowd tiles for saturated runs only": {"small_person": 0.0},
        "crowd tiles, one level": {},
        "crowd tiles, two levels": {"tile_depth": 2},
    }
    report = {"split": args.split, "mosaics": args.mosaics, "seed": args.seed, "settings": {}}
    for name, kw in settings.items():
        det = MultiPoseDetector(sides=PHOTO_SIDES, max_persons=PHOTO_MAX_PEOPLE, **kw)
        found = counted = returned = unpaired = alarms = 0
        cpu, missed_iou = [], []
        for canvas, people, everyone in mosaics:
            t0 = time.process_time()
            boxes, scores, _ = det(canvas)
            cpu.append(time.process_time() - t0)
            m = match_people(
                people, [PredictedPerson(b, score=float(s)) for b, s in zip(boxes, scores, strict=True)]
            )
            found, counted = found + len(m.pairs), counted + m.counted
            returned, unpaired = returned + len(boxes), unpaired + len(m.unpaired)
            alarms += false_alarms(boxes, m.unpaired, everyone)
            paired = {i for i, _ in m.pairs}
            for i, person in enumerate(people):
                if person.counted and i not in paired:
                    iou = box_iou(person.box[None], boxes) if len(boxes) else np.zeros((1, 1))
                    missed_iou.append(round(float(iou.max()), 2))
        report["settings"][name] = {
            "found": found,
            "counted": counted,
            "recall": round(found / max(counted, 1), 3),
            "returned": returned,
            "paired_with_nobody": unpaired,
            "false_alarms": alarms,
            "precision": round(1 - alarms / max(returned, 1), 3),
            "cpu_ms_per_mosaic_median": round(float(np.median(cpu)) * 1e3, 1),
            "missed_best_iou": sorted(missed_iou),
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

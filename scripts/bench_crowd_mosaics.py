#!/usr/bin/env python3
"""People found in crowds beyond MoveNet MultiPose's 6: mosaics of the real-image benchmark's photos.

A crowd photo with labels is rare; a mosaic of labelled photos is a crowd whose every person is labelled.
Each mosaic puts a seeded draw of one split's photos on a grid (``--layout``): 3 x 2 cells of 640 x 480
(1920 x 960), or the dense 4 x 3 cells of 480 x 480 and 4 x 4 cells of 480 x 360 (1920 x 1440: people
40-130 px at the 512 input, more than 6 in every crowd tile; 16 cells hold a 12-photo split's photos again,
mirrored).
Each photo is scaled to fit its cell, centred, its labels moved with it. The box step of ``whmr image``
(MultiPose at 256 and 512; 32 people at most, as whmr image's detector keeps) runs on each mosaic without the
crowd tiles, with them for saturated runs only (``small_person`` 0), with one level of them (saturated runs
and small people), with a saturated tile tiled again, and with one level plus NanoDet's boxes on the tiles
(``crowd_boxes``: whmr image's default); each run's people are paired with the labels as the benchmark
pairs them (``whmr_core.evaluation_real``: IoU >= 0.5; counted people have at least 7 of 12 limb points
labelled). Prints, per setting: counted people found (recall), people returned, returned people paired with
nobody (false alarms or unlabelled people), false alarms (those in a photo whose data set labels everyone),
precision = 1 - false alarms / returned (a bound: unpaired people in other photos are not counted against
it), the CPU time per mosaic (median and mean), and for the counted people missed, their best IoU with any
returned box.

    .venv/bin/python scripts/bench_crowd_mosaics.py [--split tune] [--layout 4x4] [--mosaics 6] [--seed 0]
        [--threads 1] [--settings NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
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
from whmr_core.media.image import PHOTO_MAX_PERSONS, PHOTO_MOVENET_SIDES  # noqa: E402
from whmr_core.media.image_files import read_image  # noqa: E402

LABELS = ROOT / "test/data/real_images/labels.json"
# whmr image's detector keeps 2 x its 16 people (the pipeline then keeps the best-scoring 16): a dense mosaic
# holds more than 16.
PHOTO_MAX_PEOPLE = 2 * PHOTO_MAX_PERSONS
SETTINGS = {  # MultiPoseDetector keywords
    "no tiles": {"tile_crowds": False},
    "crowd tiles for saturated runs only": {"small_person": 0.0},
    "crowd tiles, one level": {},
    "crowd tiles, two levels": {"tile_depth": 2},
    "crowd tiles + crowd boxes (NanoDet)": {"crowd_boxes": True},
}


@dataclass(frozen=True)
class Layout:
    """A mosaic's grid: ``cols`` x ``rows`` cells of ``cell_w`` x ``cell_h`` pixels."""

    cols: int
    rows: int
    cell_w: int
    cell_h: int

    @property
    def cells(self) -> int:
        return self.cols * self.rows


# 3x2: the first measurements' mosaics (people 0.05-0.25 of the 1920 side). 4x3 and 4x4: dense crowds (1920 x
# 1440, a crowd tile holds ~6-9 cells, people 40-130 px at the 512 input); 4x4 holds 16 photos, so a split of
# 12 repeats some, mirrored.
LAYOUTS = {
    "3x2": Layout(3, 2, 640, 480),
    "4x3": Layout(4, 3, 480, 480),
    "4x4": Layout(4, 4, 480, 360),
}


def draw(images: list[LabelledImage], rng: np.random.Generator, layout: Layout) -> list[LabelledImage]:
    """A seeded draw of ``layout.cells`` photos: without repeats while the split has enough of them, then
    further permutations (``mosaic`` mirrors a photo's repeats)."""
    n = len(images)
    if layout.cells <= n:
        return [images[j] for j in rng.choice(n, layout.cells, replace=False)]
    order: list[int] = []
    while len(order) < layout.cells:
        order += list(rng.permutation(n))
    return [images[j] for j in order[: layout.cells]]


def mosaic(
    images: list[LabelledImage], labels_dir: Path, layout: Layout = LAYOUTS["3x2"]
) -> tuple[np.ndarray, list[LabelledPerson], list[bool]]:
    """The photos on the grid, row by row, their people in mosaic pixels, and per cell whether its data set
    labels everyone. A photo's second appearance is mirrored left-right (its labels with it)."""
    cw, ch = layout.cell_w, layout.cell_h
    canvas = np.zeros((layout.rows * ch, layout.cols * cw, 3), np.uint8)
    people: list[LabelledPerson] = []
    seen: set[str] = set()
    for k, img in enumerate(images):
        rgb = read_image(labels_dir / img.file)
        mirror = img.file in seen
        seen.add(img.file)
        s = min(cw / rgb.shape[1], ch / rgb.shape[0])
        w, h = max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))
        x0 = (k % layout.cols) * cw + (cw - w) // 2
        y0 = (k // layout.cols) * ch + (ch - h) // 2
        cell = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        canvas[y0 : y0 + h, x0 : x0 + w] = cell[:, ::-1] if mirror else cell
        sx, sy = w / rgb.shape[1], h / rgb.shape[0]
        for p in img.people:
            box = p.box * [sx, sy, sx, sy]
            kp = p.keypoints.copy()
            kp[:, :2] = kp[:, :2] * [sx, sy]
            if mirror:  # pixel edges: x -> w - x; the keypoints' names stay (matching uses boxes)
                box = np.array([w - box[2], box[1], w - box[0], box[3]])
                kp[:, 0] = w - 1 - kp[:, 0]
            people.append(LabelledPerson(box + np.array([x0, y0, x0, y0]), kp + np.array([x0, y0, 0])))
    return canvas, people, [img.all_people_labelled for img in images]


def false_alarms(
    boxes: np.ndarray, unpaired: list[int], everyone_labelled: list[bool], layout: Layout = LAYOUTS["3x2"]
) -> int:
    """Unpaired boxes whose centre lies in a cell whose photo labels everyone."""
    n = 0
    for i in unpaired:
        cx, cy = (boxes[i, 0] + boxes[i, 2]) / 2, (boxes[i, 1] + boxes[i, 3]) / 2
        col = min(int(cx // layout.cell_w), layout.cols - 1)
        row = min(int(cy // layout.cell_h), layout.rows - 1)
        n += everyone_labelled[max(row, 0) * layout.cols + max(col, 0)]
    return n


def main(argv: list[str] | None = None) -> int:
    from whmr_core.runtime.movenet import MultiPoseDetector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--split", choices=("tune", "heldout"), default="tune")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="3x2", help="grid (cols x rows)")
    p.add_argument("--mosaics", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: its own)")
    p.add_argument(
        "--settings",
        nargs="*",
        choices=sorted(SETTINGS),
        default=list(SETTINGS),
        help="which detector settings to run (default: all)",
    )
    args = p.parse_args(argv)

    layout = LAYOUTS[args.layout]
    images = [i for i in load_labels(args.labels) if i.split == args.split]
    rng = np.random.default_rng(args.seed)
    mosaics = [mosaic(draw(images, rng, layout), args.labels.parent, layout) for _ in range(args.mosaics)]
    report = {"split": args.split, "layout": args.layout, "mosaics": args.mosaics, "seed": args.seed,
              "settings": {}}  # fmt: skip
    for name in args.settings:
        det = MultiPoseDetector(
            sides=PHOTO_MOVENET_SIDES, max_persons=PHOTO_MAX_PEOPLE, threads=args.threads, **SETTINGS[name]
        )
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
            alarms += false_alarms(boxes, m.unpaired, everyone, layout)
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
            "cpu_ms_per_mosaic_mean": round(float(np.mean(cpu)) * 1e3, 1),
            "missed_best_iou": sorted(missed_iou),
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

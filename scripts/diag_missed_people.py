#!/usr/bin/env python3
"""Who MoveNet MultiPose's box step misses, and why: a table of the missed labelled people.

Runs ``whmr image``'s box step (``MultiPoseDetector`` at 256 and 512, crowd tiles, 16 people at most) on the
real-image benchmark's photos of one split and on that split's crowd mosaics (``bench_crowd_mosaics``: 6
photos on a 3 x 2 grid, seeded draws), pairs its people with the counted labelled people as the benchmark
does (IoU >= 0.5), and for each counted person it misses prints:

* size: the labelled box's height in pixels, as a share of the image's longer side (what the network's
  input scales with), and in pixels of the 512 input;
* cut: whether the labelled box reaches its photo's edge; dark: the median luma (0-255) inside the box;
  seen: labelled limb points visible (v = 2) / labelled, of 12;
* per run (256, 512, and each crowd tile, whether or not the tiles ran): the best IoU of any of the run's 6
  people with the label, and that person's score (every person of every run, the score threshold set to 0);
* why: ``shared box`` (an output box pairs with it, but was paired with a neighbour it overlaps more),
  ``merge`` (a run's person above the threshold paired with it, none in the output: whmr's merge of the
  runs, its cap, or a tile edge), ``low score`` (a run's person paired with it only below the threshold),
  ``tiles not run`` (a crowd tile's person above the threshold pairs with it, but the tiles did not run),
  ``box`` (a run's person overlaps it by IoU 0.3-0.5: there, but its box does not match), ``nothing``.

Only for the tune split (decisions are made there). Light: one thread.

    .venv/bin/python scripts/diag_missed_people.py [--split tune] [--layout 3x2] [--mosaics 6] [--seeds 0 1 2]
    .venv/bin/python scripts/diag_missed_people.py --compare boxes:crowd_boxes=1 two:tile_depth=2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_crowd_mosaics import (  # noqa: E402
    LABELS,
    LAYOUTS,
    PHOTO_MAX_PEOPLE,
    draw,
    false_alarms,
    mosaic,
)

from whmr_core.evaluation_real import (  # noqa: E402
    LIMB_POINTS,
    MATCH_IOU,
    LabelledPerson,
    PredictedPerson,
    box_iou,
    load_labels,
    match_people,
)
from whmr_core.media.image import PHOTO_MOVENET_SIDES  # noqa: E402
from whmr_core.media.image_files import read_image  # noqa: E402

NEAR_IOU = 0.3


def person_facts(image: np.ndarray, person: LabelledPerson) -> dict:
    """Size-free facts of a labelled person in its own photo: cut by its edge, darkness, joints seen."""
    h, w = image.shape[:2]
    b = person.box
    cut = bool(b[0] <= 2 or b[1] <= 2 or b[2] >= w - 3 or b[3] >= h - 3)
    x0, y0 = int(max(b[0], 0)), int(max(b[1], 0))
    x1, y1 = int(min(b[2], w)), int(min(b[3], h))
    crop = image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    luma = float(np.median(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))) if crop.size else float("nan")
    v = person.keypoints[list(LIMB_POINTS), 2]
    return {"cut": cut, "dark": luma, "seen": f"{int((v == 2).sum())}/{int((v > 0).sum())}"}


def runs_of(det, image: np.ndarray) -> list[tuple[str, object, bool]]:
    """(name, PoseSet at threshold 0 in image pixels, cut-by-tile-edge mask or None) for 256, 512, tiles."""
    from whmr_core.runtime.movenet import PoseSet, crowd_tiles, cut_by_tile_edge, exposure_normalised

    image = exposure_normalised(image)
    h, w = image.shape[:2]
    out = [(str(s), det._run(image, s), None) for s in det.sides]
    for k, tile in enumerate(crowd_tiles(w, h)):
        x0, y0, x1, y1 = tile
        p = det._run(np.ascontiguousarray(image[y0:y1, x0:x1]), max(det.sides))
        cut = cut_by_tile_edge(p.boxes, tile, w, h)
        moved = PoseSet(p.boxes + np.array([x0, y0, x0, y0]), p.scores, p.keypoints + np.array([x0, y0, 0]))
        out.append((f"t{k}", moved, cut))
    return out


def diagnose(
    name: str, image: np.ndarray, people: list[LabelledPerson], facts: list[dict], det, det0
) -> list:
    """Rows for the counted people the detector misses in ``image``; also (found, counted, returned)."""
    from whmr_core.runtime.movenet import PoseSet

    final = det.detect(image)
    m = match_people(people, [PredictedPerson(b) for b in final.boxes])
    paired = {i for i, _ in m.pairs}
    runs = runs_of(det0, image)
    thr = det.score_threshold
    whole = [PoseSet(p.boxes[p.scores >= thr], p.scores[p.scores >= thr], p.keypoints[p.scores >= thr])
             for n, p, _ in runs if n.isdigit()]  # fmt: skip
    saturated = det.tile_crowds and det._wants_tiles(whole, image.shape[1], image.shape[0])
    longer = max(image.shape[:2])
    rows = []
    for i, person in enumerate(people):
        if not person.counted or i in paired:
            continue
        hgt = person.box[3] - person.box[1]
        cells, why_hit, why_low, why_tile, best_any = [], False, False, False, 0.0
        for rname, p, cut in runs:
            if not len(p.scores):
                cells.append(f"{rname}:-")
                continue
            iou = box_iou(person.box[None], p.boxes)[0]
            j = int(np.argmax(iou))
            best_any = max(best_any, float(iou[j]))
            ok = iou >= MATCH_IOU
            usable = ok & (p.scores >= thr)
            if cut is not None:
                usable &= ~cut
                if not saturated:  # the tiles did not run
                    why_tile |= bool(usable.any())
                    usable &= False
            why_hit |= bool(usable.any())
            why_low |= bool((ok & (p.scores < thr)).any())
            mark = "x" if cut is not None and cut[j] else ""
            cells.append(f"{rname}:{iou[j]:.2f}/{p.scores[j]:.2f}{mark}")
        out_iou = float(box_iou(person.box[None], final.boxes)[0].max()) if len(final.boxes) else 0.0
        if out_iou >= MATCH_IOU:
            why = "shared box"
        elif why_hit:
            why = "merge"
        elif why_tile:
            why = "tiles not run"
        elif why_low:
            why = "low score"
        elif best_any >= NEAR_IOU:
            why = "box"
        else:
            why = "nothing"
        f = facts[i]
        rows.append(
            [name, f"{hgt:.0f}", f"{hgt / longer:.2f}", f"{hgt * 512 / longer:.0f}", "y" if f["cut"] else "",
             f"{f['dark']:.0f}", f["seen"], f"{out_iou:.2f}", "y" if saturated else "", why, " ".join(cells)]
        )  # fmt: skip
    return rows, (len(m.pairs), m.counted, len(final.boxes))


def measure(
    det, scenes: list[tuple[str, np.ndarray, list[LabelledPerson], object]], layout=LAYOUTS["3x2"]
) -> dict:
    """Recall, precision and CPU of ``det`` on scenes (name, image, labels, everyone-labelled: a bool for a
    photo, the per-cell list for a mosaic)."""
    import time

    found = counted = returned = alarms = 0
    cpu = []
    for _, image, people, everyone in scenes:
        t0 = time.process_time()
        boxes = det.detect(image).boxes
        cpu.append(time.process_time() - t0)
        m = match_people(people, [PredictedPerson(b) for b in boxes])
        found, counted, returned = found + len(m.pairs), counted + m.counted, returned + len(boxes)
        if isinstance(everyone, list):
            alarms += false_alarms(boxes, m.unpaired, everyone, layout)
        else:
            alarms += len(m.unpaired) if everyone else 0
    return {"found": found, "counted": counted, "returned": returned, "false_alarms": alarms,
            "cpu_ms_median": round(float(np.median(cpu)) * 1e3, 1),
            "cpu_ms_mean": round(float(np.mean(cpu)) * 1e3, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from whmr_core.runtime.movenet import MultiPoseDetector

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--split", choices=("tune",), default="tune")  # held-out: never for choosing
    p.add_argument("--mosaics", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="3x2", help="mosaic grid (cols x rows)")
    p.add_argument("--no-photos", action="store_true")
    p.add_argument(
        "--set", default="", metavar="KEY=VALUE,...", help="MultiPoseDetector keywords for the table"
    )
    p.add_argument(
        "--compare",
        nargs="*",
        metavar="NAME:KEY=VALUE,...",
        help="instead of the table: recall, false alarms and CPU of detector settings (MultiPoseDetector "
        "keywords, e.g. small:small_person=0.2), beside the defaults",
    )
    args = p.parse_args(argv)

    images = [i for i in load_labels(args.labels) if i.split == args.split]
    layout = LAYOUTS[args.layout]
    kw = {k: float(v) for k, v in (item.split("=") for item in args.set.split(",") if item)}
    det = MultiPoseDetector(sides=PHOTO_MOVENET_SIDES, max_persons=PHOTO_MAX_PEOPLE, threads=1, **kw)
    det0 = MultiPoseDetector(sides=PHOTO_MOVENET_SIDES, threads=1, **{**kw, "score_threshold": 0.0})
    photos = {im.file: read_image(args.labels.parent / im.file) for im in images}
    facts = {im.file: [person_facts(photos[im.file], q) for q in im.people] for im in images}
    if args.compare is not None:
        scenes = {"photos": [(im.file, photos[im.file], list(im.people), im.all_people_labelled)
                             for im in images]}  # fmt: skip
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            for k in range(args.mosaics):
                canvas, people, everyone = mosaic(draw(images, rng, layout), args.labels.parent, layout)
                scenes.setdefault("mosaics", []).append((f"s{seed}m{k}", canvas, people, everyone))
        for spec in ["defaults:", *args.compare]:
            name, _, kws = spec.partition(":")
            kw = {k: float(v) for k, v in (item.split("=") for item in kws.split(",") if item)}
            d = MultiPoseDetector(sides=PHOTO_MOVENET_SIDES, max_persons=PHOTO_MAX_PEOPLE, threads=1, **kw)
            print(name, {k: measure(d, v, layout) for k, v in scenes.items()}, flush=True)
        return 0
    rows, totals = [], {}
    if not args.no_photos:
        t = [0, 0, 0]
        for im in images:
            r, (f, c, n) = diagnose(Path(im.file).stem[:28], photos[im.file], list(im.people), facts[im.file],
                                    det, det0)  # fmt: skip
            rows += r
            t = [t[0] + f, t[1] + c, t[2] + n]
        totals["photos"] = t
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        t = [0, 0, 0]
        for k in range(args.mosaics):
            chosen = draw(images, rng, layout)
            canvas, people, _ = mosaic(chosen, args.labels.parent, layout)
            f_all = [f for im in chosen for f in facts[im.file]]
            names = ",".join(im.dataset[:4] for im in chosen)
            r, (f, c, n) = diagnose(f"s{seed}m{k} {names}", canvas, people, f_all, det, det0)
            rows += r
            t = [t[0] + f, t[1] + c, t[2] + n]
        totals[f"mosaics seed {seed}"] = t
    head = ["image", "h px", "h/long", "h@512", "cut", "dark", "seen", "out IoU", "tiles", "why",
            "runs: IoU/score"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in sorted(rows, key=lambda r: (r[9], r[0])):
        print("| " + " | ".join(r) + " |")
    for k, (f, c, n) in totals.items():
        print(f"{k}: found {f} of {c} counted, {n} returned")
    whys = {}
    for r in rows:
        whys[r[9]] = whys.get(r[9], 0) + 1
    print("missed by cause:", whys)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

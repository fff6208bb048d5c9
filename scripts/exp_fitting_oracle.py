#!/usr/bin/env python
"""The keypoint fit on real photographs with the LABELLED keypoints standing in for a keypoint model.

The shipped network runs on the labelled boxes of ``test/data/real_images`` (as ``bench_real_images.py``'s
"network on true boxes"); each person's outputs are then fitted (``whmr_core.fitting``) to the labelled
COCO-17 keypoints (confidence 1 where labelled, 0 elsewhere) with the person's camera, re-posed
(``FittedOutputs``) and composed as the Pipeline does, and everything is scored by
``whmr_core.evaluation_real``. An upper bound for what fitting does with a perfect keypoint model, and the
data the fit's defaults were chosen on (``--split tune``; docs/fitting.md reports ``--split heldout``).

    python scripts/exp_fitting_oracle.py [--split heldout] [--iterations 6 10 15] [--no-mirror-check]

The Pipeline has no hook between its decode steps, so the script wraps its ``compose_person`` to see each
person's outputs and camera (experiment only; the Pipeline's own fitting step replaces this).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import whmr_core.runtime.pipeline as pipeline_module  # noqa: E402
from whmr_core.body import resolve  # noqa: E402
from whmr_core.evaluation_real import (  # noqa: E402
    PredictedPerson,
    box_iou,
    coco17_from_smpl_2d,
    format_table,
    joints14_from_smpl,
    load_labels,
    score_source,
)
from whmr_core.fitting import BodyFitter, FitConfig, FittedOutputs  # noqa: E402

LABELS = ROOT / "test/data/real_images/labels.json"


def network_people(images, engine_kind: str) -> tuple[str, list]:
    """Per labelled box: (image file, PersonBox, PersonOutputs, CameraSolution, R_c) from the Pipeline."""
    from whmr_core.media.image import read_image
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.factory import default_engine, load_topology
    from whmr_core.runtime.frames import Detections, Frame

    engine = default_engine(engine_kind)
    config = PipelineConfig(max_persons=64, fit=False)  # the network alone: this script fits
    pipe = pipeline_module.Pipeline(engine, load_topology(engine=engine), config)
    seen: list = []
    compose = pipeline_module.compose_person
    current = [""]

    def spy(o, box, camera, R_c, track_id=0):
        seen.append((current[0], box, o, camera, R_c))
        return compose(o, box, camera, R_c, track_id)

    pipeline_module.compose_person = spy
    try:
        for img in images:
            current[0] = img.file
            pipe.reset()
            boxes = Detections.of(np.array([q.box for q in img.people]))
            pipe.process(Frame(read_image(LABELS.parent / img.file), 0, K=img.K, detections=boxes))
    finally:
        pipeline_module.compose_person = compose
    return engine.body, seen


def predicted(o, box, camera, R_c) -> PredictedPerson:
    p = pipeline_module.compose_person(o, box, camera, R_c)
    return PredictedPerson(
        np.asarray(p.box_xyxy), coco17_from_smpl_2d(p.joints_2d), joints14_from_smpl(p.joints_camera),
        bool(p.translation_is_metric),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("heldout", "tune", "all"), default="heldout")
    ap.add_argument("--iterations", type=int, nargs="+", default=[FitConfig().iterations])
    ap.add_argument("--no-mirror-check", action="store_true")
    ap.add_argument("--engine", default="auto", help="engine kind (default_engine)")
    args = ap.parse_args(argv)
    images = [im for im in load_labels(LABELS) if args.split in ("all", im.split)]
    by_file = {im.file: im for im in images}
    body, people = network_people(images, args.engine)
    model = resolve(body).load()
    repose = FittedOutputs(model)
    preds: dict[str, dict[str, list[PredictedPerson]]] = {"network on true boxes": {}}
    notes = []
    for file, box, o, camera, R_c in people:
        preds["network on true boxes"].setdefault(file, []).append(predicted(o, box, camera, R_c))
    for iterations in args.iterations:
        cfg = FitConfig(iterations=iterations, mirror_check=not args.no_mirror_check)
        fitter, name = BodyFitter(model, cfg), f"+ fit, {iterations} iterations"
        preds[name] = {}
        reasons, seconds = Counter(), []
        for file, box, o, camera, R_c in people:
            labels = by_file[file].people
            iou = box_iou(np.asarray(box.box_xyxy)[None], np.stack([q.box for q in labels]))[0]
            label = labels[int(np.argmax(iou))]
            (fx, fy), (cx, cy) = camera.focal_xy, camera.principal_point
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
            conf = (label.keypoints[:, 2] > 0).astype(np.float64)
            t0 = time.perf_counter()
            fit = fitter(o.rotmats[None], o.betas[None], camera.translation[None],
                         label.keypoints[None, :, :2], conf[None], K).person(0)  # fmt: skip
            seconds.append(time.perf_counter() - t0)
            reasons[(fit.fallback_reason or "fitted").split(" (")[0].split(":")[0]] += 1
            camera = dataclasses.replace(camera, translation=fit.translation)
            preds[name].setdefault(file, []).append(predicted(repose(o, fit), box, camera, R_c))
        notes.append(f"{name}: {dict(reasons)}; fit {1e3 * np.median(seconds):.0f} ms per person (median)")
    for source in preds.values():
        for im in images:
            source.setdefault(im.file, [])
    summaries = {name: score_source(images, by_image).summary() for name, by_image in preds.items()}
    print(f"{len(images)} {args.split} images, {len(people)} labelled boxes; keypoints: the labels\n")
    print(format_table(summaries, true_boxes=tuple(preds)))
    print("\n" + "\n".join(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Shipped person detector (BlazePose on LiteRT) latency on this machine, per image size.

A square photo is one network pass; a wide one (beyond 3:2) is several overlapping squares. Medians of
``--repeats`` calls after two warm-up calls, on the test photographs (test/data/photos) and their side-by-side
composite, at common camera sizes. Prints a JSON report; ``persons`` is how many it found (the photographer,
cut by his photo's left edge and leaning, scores near the threshold: in the 16:9 frame, beside the grey
border, he is missed).

    .venv/bin/python scripts/bench_detector.py [--threads 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

PHOTOS = Path(__file__).resolve().parents[1] / "test" / "data" / "photos"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    from whmr_core.runtime.blazepose import BlazePoseDetector, tiles

    det = BlazePoseDetector(threads=args.threads)
    a = cv2.imread(str(PHOTOS / "astronaut.jpg"))[:, :, ::-1]
    c = cv2.imread(str(PHOTOS / "camera.jpg"))[:, :, ::-1]
    two = np.concatenate([c, a], axis=1)
    hd = np.full((1080, 1920, 3), 128, np.uint8)
    hd[108:972, 96:1824] = cv2.resize(two, (1728, 864))  # the two people in a 16:9 frame
    cases = {"512x512": a, "640x480": cv2.resize(a, (640, 480)), "1024x512": two, "1920x1080": hd}
    report = {"threads": args.threads, "repeats": args.repeats, "sizes": {}}
    for name, img in cases.items():
        img = np.ascontiguousarray(img)
        for _ in range(2):
            det(img)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            boxes, _ = det(img)
            times.append((time.perf_counter() - t0) * 1000)
        report["sizes"][name] = {
            "passes": len(tiles(img.shape[1], img.shape[0])),
            "persons": len(boxes),
            "median_ms": round(float(np.median(times)), 1),
            "p90_ms": round(float(np.percentile(times, 90)), 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

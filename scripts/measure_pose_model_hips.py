#!/usr/bin/env python
"""Where a 2D pose model trained on COCO puts a body's hips (and shoulders), on whmr's synthetic renders,
whose joints are known: the measurement behind ``whmr_core.body.keypoints.POSE_MODEL_HIP_LIFT``.

MoveNet Thunder runs on each fully visible person's box (their true COCO-17 points' extent, as
``ThunderKeypoints`` crops it); its hips (score >= 0.3) are compared in the image with points on the true
body. Two models of the point, fitted by robust least squares on the 2D residuals (in units of the box):

* linear in the joints: hip + a (hip - other hip) + b (pelvis - hips' midpoint); ``b`` is the lift the fit
  uses, ``a`` a sideways widening; fitted on all people and on each half (its spread);
* offsets in the body's pelvis frame (outward, up, forward; metres), for the hips and the shoulders.

    whmr synth --out data/synth1 --num 8000 --seed 0 --split-val 0.1 --body lowres --max-people 1
    python scripts/measure_pose_model_hips.py --data data/synth1 [--split val] [--max 800] [--threads 1]

At commit time: 590 people of data/synth1's 800 val images, b = 1.38 (halves 1.43 / 1.33), a = 0.00
(-0.01 / 0.01); the hips 9.0 cm up, 0.1 cm out, -0.9 cm forward; median residual 0.071 -> 0.032 of the box;
the shoulders 3.9 cm up, 1.5 cm out, 3.7 cm forward (0.058 -> 0.044).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whmr_core.body.keypoints import COCO17_NAMES  # noqa: E402
from whmr_core.body.skeleton import SMPL_JOINT_NAMES  # noqa: E402

MIN_SCORE = 0.3
LIMBS = range(COCO17_NAMES.index("left_shoulder"), len(COCO17_NAMES))
PELVIS, LEFT_HIP, RIGHT_HIP = (SMPL_JOINT_NAMES.index(n) for n in ("pelvis", "left_hip", "right_hip"))


def _both_sides(part: str) -> tuple[tuple[int, int, int, float], ...]:
    """Per side: (COCO point, its SMPL joint, the other side's joint, outward sign along the right->left
    axis)."""
    left, right = (SMPL_JOINT_NAMES.index(f"{side}_{part}") for side in ("left", "right"))
    return (
        (COCO17_NAMES.index(f"left_{part}"), left, right, 1.0),
        (COCO17_NAMES.index(f"right_{part}"), right, left, -1.0),
    )


HIPS, SHOULDERS = _both_sides("hip"), _both_sides("shoulder")


def measure(data: Path, split: str, limit: int, threads: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Per fully visible person: (24 true joints in the camera frame, Thunder's 17 points, box size)."""
    import cv2

    from whmr_core.runtime.movenet import ThunderKeypoints

    ann = np.load(data / f"{split}.npz")
    thunder = ThunderKeypoints(threads)
    people = []
    for i in range(min(limit, len(ann["imgname"]))):
        kp = ann["coco2d"][i]
        if (kp[list(LIMBS), 2] <= 0).any():
            continue
        image = cv2.cvtColor(cv2.imread(str(data / str(ann["imgname"][i]))), cv2.COLOR_BGR2RGB)
        seen = kp[kp[:, 2] > 0, :2]
        box = np.r_[seen.min(0), seen.max(0)]
        found = thunder(image, box[None])[0]
        f, c = ann["focal"][i], ann["principal_point"][i]
        people.append((ann["joints3d_cam"][i], found, float(max(box[2:] - box[:2])), f, c))
    return people


def _project(X: np.ndarray, f: np.ndarray, c: np.ndarray) -> np.ndarray:
    return f * X[:2] / X[2] + c


def linear_residuals(x: np.ndarray, people) -> np.ndarray:
    out = []
    for j, found, size, f, c in people:
        mid = 0.5 * (j[LEFT_HIP] + j[RIGHT_HIP])
        for k, me, other, _ in HIPS:
            if found[k, 2] >= MIN_SCORE:
                X = j[me] + x[0] * (j[me] - j[other]) + x[1] * (j[PELVIS] - mid)
                out.append((_project(X, f, c) - found[k, :2]) / size)
    return np.concatenate(out)


def frame_residuals(x: np.ndarray, people, pairs) -> np.ndarray:
    out = []
    for j, found, size, f, c in people:
        across = j[LEFT_HIP] - j[RIGHT_HIP]  # right hip -> left hip
        lateral = across / np.linalg.norm(across)
        up = j[PELVIS] - 0.5 * (j[LEFT_HIP] + j[RIGHT_HIP])
        up = up - lateral * (up @ lateral)
        up /= np.linalg.norm(up)
        forward = np.cross(lateral, up)  # the body's x (left) cross y (up): its facing direction
        for k, me, _, out_sign in pairs:
            if found[k, 2] >= MIN_SCORE:
                X = j[me] + x[0] * out_sign * lateral + x[1] * up + x[2] * forward
                out.append((_project(X, f, c) - found[k, :2]) / size)
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    from scipy.optimize import least_squares

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a `whmr synth` output folder")
    p.add_argument("--split", default="val")
    p.add_argument("--max", type=int, default=800, help="images read at most")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if not (args.data / f"{args.split}.npz").is_file():
        print(f"measure_pose_model_hips: no {args.split}.npz in {args.data} (make it with `whmr synth`)")
        return 2
    people = measure(args.data, args.split, args.max, args.threads)
    if len(people) < 20:
        print(f"measure_pose_model_hips: only {len(people)} fully visible people; need 20")
        return 2

    def fit(fn, n):
        return least_squares(fn, np.zeros(n), loss="soft_l1", f_scale=0.02).x

    def median(r: np.ndarray) -> float:
        return float(np.median(np.linalg.norm(r.reshape(-1, 2), axis=1)))

    half = len(people) // 2
    ab = fit(lambda x: linear_residuals(x, people), 2)
    halves = [fit(lambda x, h=h: linear_residuals(x, h), 2) for h in (people[:half], people[half:])]
    print(f"{len(people)} fully visible people ({args.data}/{args.split}), Thunder's points with score "
          f">= {MIN_SCORE}")  # fmt: skip
    a, b = ab
    (a1, b1), (a2, b2) = halves
    print(f"hips = hip + a (hip - other hip) + b (pelvis - hips' midpoint): a {a:.2f}, b {b:.2f} "
          f"(halves: a {a1:.2f} / {a2:.2f}, b {b1:.2f} / {b2:.2f})")  # fmt: skip
    for name, pairs in (("hips", HIPS), ("shoulders", SHOULDERS)):
        x = fit(lambda x, pairs=pairs: frame_residuals(x, people, pairs), 3)
        before = median(frame_residuals(np.zeros(3), people, pairs))
        after = median(frame_residuals(x, people, pairs))
        print(f"{name}: out {100 * x[0]:.1f} cm, up {100 * x[1]:.1f} cm, forward {100 * x[2]:.1f} cm of "
              f"the body's joints; median residual {before:.3f} -> {after:.3f} of the box")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

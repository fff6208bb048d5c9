#!/usr/bin/env python3
"""People found in dark frames: the real-image tune photos darkened as a camera in low light would see them.

Each tune photo (the low-light ExLPose frame, already dark, is kept apart and scored as it is) is turned into
a low-light frame, seeded: its sRGB values are decoded to linear light, scaled so that the frame's mean would
be ``--levels`` grey levels (of 255, in the sRGB curve's linear toe, where 1 level is 1 / (12.92 x 255) of
full scale), turned into photo-electrons (``--electrons-per-level``) drawn with Poisson shot noise, given
Gaussian read noise (``--read-noise`` electrons), encoded with the sRGB curve and quantised to uint8. Optional
``--lamp``: a light in the scene, a street lamp (top right: a saturated disc of that share of the frame, its
glare, ``--glare`` of full scale at its edge, falling off with the squared distance); ``--spotlit``: the
labelled people's boxes keep the photo's own light (people in a spotlight, the scene around them dark).

The box step of ``whmr image`` (MultiPose at 256 and 512, crowd tiles, 16 people at most; ``--video``: 256
alone, no tiles, as the node) runs on each frame with each brightening rule; its people are paired with the
labels as the benchmark pairs them (IoU >= 0.5, counted people only). Prints per rule and darkness: counted
people found, returned, false alarms (unpaired people in photos whose data set labels everyone), the PCK@0.2
of MoveNet Thunder's keypoints and of BlazePose's 2D landmarks on the counted people's true boxes (the crop
models: Thunder gives the keypoints where the detector has none, BlazePose the fit's 3D term), and the box
step's CPU time per frame. It also prints, per set, how MultiPose's 512 input differs when the gain is
applied after an area resize in float instead of on the full-size uint8 frame. Rules (``--rules``):

* ``no gain``: the dark frame as it is;
* ``all values' bright end, bilinear crops (before)``: the rule before this work: a gain that puts the 99.5th
  percentile of all values at 230 (``cv2.convertScaleAbs`` on the full-size uint8 frame), bilinear crops;
* ``all values' bright end, area-averaged Thunder crops``: Thunder's crop of a brightened frame averages the
  pixels each crop pixel covers;
* ``unsaturated bright end, area-averaged Thunder crops (now)``: ``movenet.exposure_normalised`` as shipped
  (values >= ``SATURATED``, a lamp's core, left out of the percentile) and the averaged Thunder crops;
* ``now, BlazePose's crops averaged too``;
* ``now, float area resize, gain, then round``: MultiPose's input area-resized from the float frame, gained
  and rounded there (the gain after the resize; a light's pixels keep their energy);
* ``bright end: 3rd-brightest region's``: the third-highest 99.5th percentile of a 4 x 4 grid of regions (a
  lamp's one or two regions left out);
* ``bright end: 4x4-area frame's``: the 99.5th percentile of the frame area-averaged 4 x 4.

Tune split only (decisions are made there). One thread.

    .venv/bin/python scripts/bench_dark_frames.py [--levels 0.25 0.5 1 2 4] [--seeds 0 1 2] [--lamp 0.01]
        [--spotlit] [--video] [--rules NAME ...] [--no-crops]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whmr_core.evaluation_real import (  # noqa: E402
    PredictedPerson,
    load_labels,
    match_people,
    pck_counts,
)
from whmr_core.media.image import PHOTO_MAX_PERSONS, PHOTO_MOVENET_SIDES  # noqa: E402
from whmr_core.media.image_files import read_image  # noqa: E402
from whmr_core.runtime import movenet  # noqa: E402

LABELS = ROOT / "test/data/real_images/labels.json"
TOE = 12.92 * 255  # sRGB levels per unit of linear light in the curve's linear toe


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = v / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 255.0 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def darkened(
    rgb: np.ndarray, level: float, rng: np.random.Generator, e_per_level: float, read_noise: float,
    lamp: float = 0.0, glare: float = 0.01,
) -> np.ndarray:  # fmt: skip
    """``rgb`` as a low-light camera frame whose mean is about ``level`` grey levels (see the module doc)."""
    lin = srgb_to_linear(rgb.astype(np.float64))
    lin *= level / (TOE * max(float(lin.mean()), 1e-6))
    if lamp > 0:  # full scale within radius r0, glare x (r0 / r)^2 around it
        h, w = lin.shape[:2]
        r0 = np.sqrt(lamp * h * w / np.pi)
        yy, xx = np.mgrid[:h, :w]
        r2 = (xx - 0.9 * w) ** 2 + (yy - 0.1 * h) ** 2
        lin += np.where(r2 <= r0 * r0, 1.0, glare * r0 * r0 / np.maximum(r2, 1e-9))[..., None]
    full = e_per_level * TOE  # electrons at full scale
    electrons = rng.poisson(lin * full) + rng.normal(0.0, read_noise, lin.shape)
    return np.clip(np.rint(linear_to_srgb(electrons / full)), 0, 255).astype(np.uint8)


def spotlit(frame: np.ndarray, rgb: np.ndarray, img) -> np.ndarray:
    """``frame`` with the labelled people's boxes as bright as in ``rgb``: people in a spotlight, the scene
    around them dark."""
    out = frame.copy()
    h, w = out.shape[:2]
    for person in img.people:
        x0, y0, x1, y1 = np.clip(np.round(person.box).astype(int), 0, [w, h, w, h])
        out[y0:y1, x0:x1] = rgb[y0:y1, x0:x1]
    return out


def gain_rule(percentile_of):
    """A rule as ``movenet.exposure_normalised``, its bright end measured by ``percentile_of``."""

    def rule(image: np.ndarray) -> np.ndarray:
        gain = movenet.exposure_gain(percentile_of(image))
        return image if gain is None else cv2.convertScaleAbs(image, alpha=gain)

    return rule


def regional_p995(image: np.ndarray) -> float:
    """The third-highest of the 99.5th percentiles of a 4 x 4 grid of regions: a light in one or two regions
    does not set the frame's gain."""
    sub = image[::4, ::4]
    h, w = sub.shape[:2]
    ends = [np.percentile(sub[h * i // 4 : h * (i + 1) // 4, w * j // 4 : w * (j + 1) // 4], 99.5)
            for i in range(4) for j in range(4)]  # fmt: skip
    return float(np.sort(ends)[-3])


def all_values_p995(image: np.ndarray) -> float:
    """The bright end before ``movenet.SATURATED``: the 99.5th percentile of every value, a lamp's too."""
    return float(np.percentile(image[::4, ::4], 99.5))


def area_4x4_p995(image: np.ndarray) -> float:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    return float(np.percentile(small, 99.5))


_DARK_FRAME = [False]  # whether the frame the crop models see now was brightened


def noting(rule):
    """``rule``, noting in ``_DARK_FRAME`` whether it brightened the frame."""

    def noted(image: np.ndarray) -> np.ndarray:
        out = rule(image)
        _DARK_FRAME[0] = out is not image
        return out

    return noted


def bilinear_crop(image: np.ndarray, box: np.ndarray, size: int, average: bool = False):
    """The crop models' crops before this change: bilinear on dark frames too."""
    return SHIPPED_CROP(image, box, size)


def averaged_crop(image: np.ndarray, box: np.ndarray, size: int, average: bool = False):
    """Area-averaged crops of every brightened frame, for BlazePose too."""
    return SHIPPED_CROP(image, box, size, average=_DARK_FRAME[0])


def float_gain(image: np.ndarray) -> np.ndarray:
    """The shipped gain kept in float32, not clipped: the model's input is area-resized first, then rounded
    and clipped (``FloatInputDetector``), so a light's pixels above 255 x gain keep their energy."""
    gain = movenet.exposure_gain(movenet.bright_end(image))
    return image if gain is None else image.astype(np.float32) * np.float32(gain)


class FloatInputDetector(movenet.MultiPoseDetector):
    """MultiPose that also takes a float image: letterbox-resized (area) in float, rounded and clipped to
    uint8 at the input's size, then run as usual (a uint8 image takes the shipped path unchanged)."""

    def _run(self, image: np.ndarray, side: int) -> movenet.PoseSet:
        if image.dtype == np.uint8:
            return super()._run(image, side)
        h, w = image.shape[:2]
        s = side / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        p = super()._run(np.clip(np.rint(small), 0, 255).astype(np.uint8), side)
        # Pixel centres at integers: the input's x is (x + 0.5) * w / nw - 0.5 in the frame.
        fx, fy = w / nw, h / nh
        boxes = (p.boxes + 0.5) * [fx, fy, fx, fy] - 0.5
        kp = p.keypoints.copy()
        kp[..., :2] = (kp[..., :2] + 0.5) * [fx, fy] - 0.5
        return movenet.PoseSet(boxes, p.scores, kp)


SHIPPED_CROP = movenet._square_crop
SHIPPED_RULE = movenet.exposure_normalised
BEFORE = gain_rule(all_values_p995)
RULES = {  # name: (brightening rule for MultiPose, for the crop models, the crop models' crop)
    "no gain": (lambda im: im, lambda im: im, SHIPPED_CROP),
    "all values' bright end, bilinear crops (before)": (BEFORE, BEFORE, bilinear_crop),
    "all values' bright end, area-averaged Thunder crops": (BEFORE, BEFORE, SHIPPED_CROP),
    "unsaturated bright end, area-averaged Thunder crops (now)": (SHIPPED_RULE, SHIPPED_RULE, SHIPPED_CROP),
    "now, BlazePose's crops averaged too": (SHIPPED_RULE, noting(SHIPPED_RULE), averaged_crop),
    "now, float area resize, gain, then round": (float_gain, SHIPPED_RULE, SHIPPED_CROP),
    "bright end: 3rd-brightest region's": (gain_rule(regional_p995), gain_rule(regional_p995), SHIPPED_CROP),
    "bright end: 4x4-area frame's": (gain_rule(area_4x4_p995), gain_rule(area_4x4_p995), SHIPPED_CROP),
}


def input_levels(image: np.ndarray, side: int) -> tuple[int, int, float]:
    """MultiPose's input at ``side`` made from the gain on the full-size uint8 frame (shipped) and from the
    float frame area-resized first with the gain after, rounded: (levels in the first, max |difference| when
    the float saturates at 255 before the resize, share of input pixels that differ when it does not)."""
    gain = movenet.BRIGHT_TARGET / max(movenet.bright_end(image), 1.0)
    s = side / max(image.shape[:2])
    size = (round(image.shape[1] * s), round(image.shape[0] * s))
    first = cv2.resize(cv2.convertScaleAbs(image, alpha=gain), size, interpolation=cv2.INTER_AREA)
    lit = image.astype(np.float32) * np.float32(gain)
    after = [cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (np.minimum(lit, 255.0), lit)]
    after = [np.clip(np.rint(x), 0, 255) for x in after]
    return len(np.unique(first)), int(np.abs(first - after[0]).max()), float((first != after[1]).mean())


def score(det, crop_models, frames, rule) -> dict:
    """Counted people found, returned, false alarms, each crop model's PCK@0.2 on the counted people's true
    boxes, box-step CPU."""
    found = counted = returned = alarms = 0
    hits = {name: [0, 0] for name in crop_models}
    cpu = []
    for image, img in frames:
        movenet.exposure_normalised = rule[0]
        t0 = time.process_time()
        boxes = det.detect(image).boxes
        cpu.append(time.process_time() - t0)
        m = match_people(list(img.people), [PredictedPerson(b) for b in boxes])
        found, counted, returned = found + len(m.pairs), counted + m.counted, returned + len(boxes)
        alarms += len(m.unpaired) if img.all_people_labelled else 0
        people = [p for p in img.people if p.counted]
        if not people:
            continue
        movenet.exposure_normalised, movenet._square_crop = rule[1], rule[2]
        for name, model in crop_models.items():
            kps = model(image, np.stack([p.box for p in people]))
            for kp, person in zip(kps, people, strict=True):
                a, b = pck_counts(kp, person, 0.2)
                hits[name] = [hits[name][0] + a, hits[name][1] + b]
        movenet._square_crop = SHIPPED_CROP
    pck = {k: a / max(b, 1) for k, (a, b) in hits.items()}
    return {"found": found, "counted": counted, "returned": returned, "false_alarms": alarms, "pck": pck,
            "cpu_ms": 1e3 * float(np.mean(cpu))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=Path, default=LABELS)
    p.add_argument("--levels", type=float, nargs="*", default=[0.25, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--electrons-per-level", type=float, default=3.0)
    p.add_argument("--read-noise", type=float, default=2.0, help="electrons, rms")
    p.add_argument("--lamp", type=float, default=0.0, help="a lamp's share of the frame")
    p.add_argument("--glare", type=float, default=0.01, help="the lamp's glare at its edge, of full scale")
    p.add_argument("--spotlit", action="store_true", help="the labelled people keep their light")
    p.add_argument("--video", action="store_true", help="the node's box step: MultiPose 256, no tiles")
    p.add_argument("--rules", nargs="*", default=list(RULES), choices=list(RULES))
    p.add_argument("--no-crops", action="store_true", help="box step only (no Thunder / BlazePose)")
    args = p.parse_args(argv)

    images = [i for i in load_labels(args.labels) if i.split == "tune"]  # held-out: never for choosing
    photos = {im.file: read_image(args.labels.parent / im.file) for im in images}
    real_dark = [im for im in images if im.dataset == "exlpose"]
    bright = [im for im in images if im.dataset != "exlpose"]
    kw = {"sides": (256,), "tile_crowds": False} if args.video else {"sides": PHOTO_MOVENET_SIDES}
    det = FloatInputDetector(max_persons=PHOTO_MAX_PERSONS, threads=1, **kw)
    crop_models = {}
    if not args.no_crops:
        blazepose = movenet.BlazePoseWorld(threads=1)
        crop_models = {"Thunder": movenet.ThunderKeypoints(threads=1),
                       "BlazePose": lambda im, b: blazepose.landmarks(im, b)[2]}  # fmt: skip
    sets = {"tune's own dark frame (ExLPose)": [(photos[im.file], im) for im in real_dark]}
    for level in args.levels:
        frames = []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            for im in bright:
                frame = darkened(photos[im.file], level, rng, args.electrons_per_level, args.read_noise,
                                 args.lamp, args.glare)  # fmt: skip
                if args.spotlit:
                    frame = spotlit(frame, photos[im.file], im)
                frames.append((frame, im))
        stats = np.array([[f.mean(), np.percentile(f, 99.5)] for f, _ in frames]).mean(0)
        sets[f"darkened to {level:g} levels (mean {stats[0]:.2f}, p99.5 {stats[1]:.1f})"] = frames
    sets["bright tune photos as they are"] = [(photos[im.file], im) for im in bright]
    print(
        "Gain before or after the resize, MultiPose's 512 input: grey levels in it; max |difference| "
        "between the gain on the full-size uint8 frame and a float area-resize with the gain after (the "
        "float saturating at 255 first); share of input pixels that differ when it does not saturate first"
    )
    for name, frames in sets.items():
        if "bright" not in name:
            c = np.array([input_levels(f, 512) for f, _ in frames])
            print(
                f"  {name}: levels {c[:, 0].min():.0f}-{c[:, 0].max():.0f}; max |difference| "
                f"{c[:, 1].max():.0f}; differing {100 * c[:, 2].mean():.2f} %"
            )
    print(f"box step: {kw}; darkening: {args.electrons_per_level:g} e-/level, read noise {args.read_noise:g} "
          f"e-, lamp {args.lamp:g} (glare {args.glare:g}), seeds {args.seeds}")  # fmt: skip
    print("| frames | rule | found / counted | returned | false alarms | "
          + "".join(f"{k} PCK@0.2 (true boxes) | " for k in crop_models) + "box step CPU ms |")  # fmt: skip
    print("|---|---|---|---|---|" + "---|" * len(crop_models) + "---|")
    try:
        for name, frames in sets.items():
            for rule in args.rules:
                s = score(det, crop_models, frames, RULES[rule])
                cells = [name, rule, f"{s['found']} / {s['counted']}", s["returned"], s["false_alarms"],
                         *(f"{100 * v:.0f} %" for v in s["pck"].values()), f"{s['cpu_ms']:.0f}"]  # fmt: skip
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    finally:
        movenet.exposure_normalised, movenet._square_crop = SHIPPED_RULE, SHIPPED_CROP
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

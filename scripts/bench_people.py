#!/usr/bin/env python3
"""Per-frame cost of the Pipeline with people in view, step by step, as ``whmr video`` and the node run it.

Renders whmr's synthetic walking sequence (one or several people in every frame, a moving camera: the
demo's bag), then runs the shipped Pipeline over it (MoveNet MultiPose boxes and keypoints, the body network
on ONNX Runtime, the keypoint fit) with and without the fit. Prints the median and p90 of each step
(``FrameResult.stage_s``: boxes = the detector, keypoints, network, fit, decode), the frame total and the
FPS that follows. Frames are rendered first, so rendering is not timed. CPU time per frame is printed beside
the wall time (robust when other work shares the machine).

    .venv/bin/python scripts/bench_people.py [--frames 60] [--walkers 1] [--threads 2]
    .venv/bin/python scripts/bench_people.py --crowd [--frames 20]

``--crowd`` times the box step alone (MoveNet MultiPose) on a real crowd instead: the real-image tune set's AI
Challenger photo (3 people) repeated 2 x 2 (1900 x 1282, 12 people, more than one MultiPose run returns), at
video's size (256) and whmr image's (256 and 512), with and without the crowd tiles; median and p90 ms and
the people found (CPU time beside the wall time: robust when other work shares the machine).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np


def render(frames: int, walkers: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from whmr_core.body import body_assets
    from whmr_core.data.scene import JointRegressors
    from whmr_core.data.sequence import SequenceConfig, make_sequence, render_frames
    from whmr_core.data.synth import load_body
    from whmr_core.render import Renderer

    cfg = SequenceConfig()
    cfg = replace(cfg, seconds=frames / cfg.fps, walkers=walkers)
    model = load_body("lowres")
    seq = make_sequence(model, JointRegressors.from_assets(body_assets(model)), 0, cfg)
    out = []
    for scene, synth in zip(seq.scenes, render_frames(seq, Renderer(), model), strict=True):
        out.append((synth.image, scene.camera.K))
    return out[:frames]


def run(frames, fit: bool, threads: int | None) -> dict:
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.factory import default_engine, load_topology
    from whmr_core.runtime.frames import Frame
    from whmr_core.runtime.pipeline import Pipeline

    engine = default_engine(threads=threads)
    pipe = Pipeline(engine, load_topology(engine=engine), PipelineConfig(fit=fit))
    stages: dict[str, list[float]] = {}
    wall, cpu, persons = [], [], []
    for k, (image, K) in enumerate(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        r = pipe.process(Frame(image, int(k * 33_333_333), K=K))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        persons.append(len(r.persons))
        for name, s in r.stage_s.items():
            stages.setdefault(name, []).append(s)
    skip = 3  # warm-up frames (first ONNX Runtime calls, the fitter's first build)
    ms = lambda v, q: round(1e3 * float(np.quantile(v[skip:], q)), 1)  # noqa: E731
    return {
        "fit": fit,
        "frames": len(frames),
        "persons_per_frame": round(float(np.mean(persons)), 2),
        "fits": {"fallbacks": pipe.fit_fallbacks},
        "stages_ms_p50": {n: ms(v, 0.5) for n, v in stages.items()},
        "stages_ms_p90": {n: ms(v, 0.9) for n, v in stages.items()},
        "frame_ms_p50": ms(wall, 0.5),
        "frame_ms_p90": ms(wall, 0.9),
        "cpu_ms_per_frame_p50": ms(cpu, 0.5),
        "fps_from_p50": round(1e3 / ms(wall, 0.5), 1),
    }


def crowd(repeats: int) -> dict:
    from pathlib import Path

    import cv2

    from whmr_core.runtime.movenet import MultiPoseDetector

    root = Path(__file__).resolve().parents[1] / "test" / "data" / "real_images" / "images"
    (photo,) = root.glob("aic_ff945ae2*.jpg")
    image = np.tile(cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB), (2, 2, 1))
    report = {"image": f"{image.shape[1]}x{image.shape[0]}", "people": 12, "runs": []}
    for sides in ((256,), (256, 512)):
        for tiles in (False, True):
            det = MultiPoseDetector(sides=sides, max_persons=32, tile_crowds=tiles)
            found, wall, cpu = 0, [], []
            for _ in range(repeats + 2):  # two warm-up calls
                t0, c0 = time.perf_counter(), time.process_time()
                found = len(det.detect(image).boxes)
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            p50, p90 = np.quantile(wall[2:], [0.5, 0.9])
            report["runs"].append(
                {
                    "sides": sides,
                    "tiles": tiles,
                    "found": found,
                    "ms_p50": round(1e3 * p50, 1),
                    "ms_p90": round(1e3 * p90, 1),
                    "cpu_ms_p50": round(1e3 * float(np.median(cpu[2:])), 1),
                }
            )
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--walkers", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads of the body network")
    p.add_argument(
        "--crowd", action="store_true", help="the box step alone on a real crowd of 12 (see above)"
    )
    args = p.parse_args()
    if args.crowd:
        print(json.dumps(crowd(args.frames), indent=1))
        return
    frames = render(args.frames, args.walkers)
    report = {"walkers": args.walkers, "image": f"{frames[0][0].shape[1]}x{frames[0][0].shape[0]}"}
    report["runs"] = [run(frames, fit, args.threads) for fit in (True, False)]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

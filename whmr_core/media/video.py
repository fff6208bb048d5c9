"""``whmr video SOURCE [--out DIR]``: body meshes for a video file or a webcam, tracked across frames.

SOURCE is a video file OpenCV can read or a camera index (``0`` = the first webcam). One ``Pipeline`` runs
over the frames in order (stamps from the video's clock), so people keep their track ids. ``DIR`` gets
``<stem>.jsonl`` (one ``whmr_core.media.results`` record per frame), ``<stem>_overlay.mp4`` (the meshes over
the frames, boxes and ids) and, at the end, FPS and latency percentiles on the console and in
``<stem>_summary.json``. A webcam runs until ``--max-frames`` or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from whmr_core.media.image import (
    LEVEL_GRAVITY,
    add_model_arguments,
    intrinsics_arg,
    intrinsics_matrix,
    pipeline_from_args,
)
from whmr_core.media.paths import opencv_path, shown
from whmr_core.runtime.frames import Frame, InputError
from whmr_core.runtime.pipeline import Pipeline

__all__ = ["VideoSummary", "add_video_arguments", "run_video", "video_main"]

log = logging.getLogger(__name__)


@dataclass
class VideoSummary:
    frames: int = 0
    processed: int = 0
    persons: int = 0
    track_ids: set[int] = field(default_factory=set)
    latency_ms: list[float] = field(default_factory=list)  # per frame: detector + pipeline
    wall_s: float = 0.0
    files: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # frames the pipeline refused, by reason
    ended_early: str = ""  # why fewer frames were read than the file declares ("" = all of them)

    def report(self) -> dict:
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        return {
            "frames": self.frames,
            "processed": self.processed,
            "persons": self.persons,
            "tracks": len(self.track_ids),
            "pipeline_fps": round(1000.0 / float(lat.mean()), 2) if self.latency_ms else 0.0,
            "overall_fps": round(self.processed / self.wall_s, 2) if self.wall_s > 0 else 0.0,
            "latency_ms": {k: round(float(np.percentile(lat, q)), 1) for k, q in (("p50", 50), ("p90", 90))}
            | {"max": round(float(lat.max()), 1)},
            "files": self.files,
            "dropped": self.dropped,
            "ended_early": self.ended_early,
        }


def open_source(source: str) -> tuple[cv2.VideoCapture, str, bool]:
    """(capture, output stem, is_camera); ValueError naming the source when it cannot be opened.

    A file is opened through ``opencv_path`` (OpenCV crashes on names that are not UTF-8; a UTF-8 name, a
    device or a stream URL is passed as it is); the link it may use can go once the file is open."""
    is_camera = source.isdigit()
    if is_camera:
        cap = cv2.VideoCapture(int(source))
    else:
        with opencv_path(source) as name:
            cap = cv2.VideoCapture(name)
    if not cap.isOpened():
        if is_camera:
            raise ValueError(
                f"camera {source}: cannot be opened (no such camera, or another program uses it)"
            )
        if "://" in source:
            raise ValueError(f"{shown(source)}: the stream cannot be opened")
        if not Path(source).exists():
            raise ValueError(f"{shown(source)}: no such file")
        raise ValueError(f"{shown(source)}: not a video file OpenCV can read")
    return cap, (f"camera{source}" if is_camera else Path(source).stem), is_camera


def run_video(
    source: str,
    pipeline: Pipeline,
    out: Path,
    *,
    K: np.ndarray | None = None,
    gravity: tuple[float, float, float] | None = None,
    mesh: str = "full",
    overlay: bool = True,
    max_frames: int | None = None,
    progress: bool = True,
    overlay_max_side: int = 960,
) -> VideoSummary:
    from tqdm import tqdm

    from whmr_core.media.display_mesh import DisplayBody
    from whmr_core.media.pictures import draw_overlay
    from whmr_core.media.results import frame_record

    cap, stem, is_camera = open_source(source)
    out.mkdir(parents=True, exist_ok=True)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if np.isfinite(fps) and fps > 0 else 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not is_camera else 0
    total = min(total, max_frames) if max_frames and total else (max_frames or total or None)
    display = DisplayBody(mesh, network_faces=pipeline.topology.faces)
    renderer = None
    if overlay:
        from whmr_core.render import Renderer

        renderer = Renderer()
    summary = VideoSummary()
    writer = None
    jsonl = (out / f"{stem}.jsonl").open("w", encoding="utf-8")
    summary.files.append(jsonl.name)
    bar = tqdm(total=total, unit="frame", desc="whmr video", disable=not progress)
    t_start = time.perf_counter()
    pipeline.reset()
    try:
        while max_frames is None or summary.frames < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            index = summary.frames
            summary.frames += 1
            bar.update(1)
            # The video's clock: each frame's position (ms), else its index at the nominal rate.
            pos_ms = cap.get(cv2.CAP_PROP_POS_MSEC) if not is_camera else 0.0
            stamp = int(pos_ms * 1e6) if pos_ms and pos_ms > 0 else round(index * 1e9 / fps)
            if is_camera:
                stamp = int((time.perf_counter() - t_start) * 1e9)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # ~50x faster than numpy's reversed view copied
            t0 = time.perf_counter()
            try:
                result = pipeline.process(Frame(rgb, stamp, K=K, gravity=gravity))
            except InputError as e:  # counted by reason; said once per reason, not once per frame
                reason = str(e)
                if reason not in summary.dropped:
                    log.warning("frame %d dropped: %s (later frames dropped for this are counted)", index, e)
                summary.dropped[reason] = summary.dropped.get(reason, 0) + 1
                continue
            summary.latency_ms.append((time.perf_counter() - t0) * 1000)
            summary.processed += 1
            summary.persons += len(result.persons)
            summary.track_ids.update(p.track_id for p in result.persons)
            focal = result.focal_px
            record = frame_record(result, focal_px=focal)
            record["frame"] = index
            jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
            if renderer is not None:
                meshes = [display(p) for p in result.persons]
                pic = draw_overlay(rgb, result, meshes, max_side=overlay_max_side, renderer=renderer)
                if writer is None:
                    path = out / f"{stem}_overlay.mp4"
                    size = (pic.shape[1], pic.shape[0])
                    with opencv_path(path) as name:  # FFmpeg opens the file here
                        writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    if not writer.isOpened():
                        raise ValueError(f"{shown(path)}: OpenCV cannot write an mp4 video here")
                    summary.files.append(str(path))
                writer.write(cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
    except KeyboardInterrupt:
        log.warning("stopped by Ctrl-C after %d frames", summary.frames)
    else:
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if not is_camera else 0
        wanted = min(declared, max_frames) if max_frames else declared
        if wanted - summary.frames > 1:  # container counts may be estimates: one frame of slack
            summary.ended_early = (
                f"{shown(source)}: only {summary.frames} of the {declared} frames it declares could be read "
                "(a truncated or damaged file?)"
            )
    finally:
        summary.wall_s = time.perf_counter() - t_start
        bar.close()
        jsonl.close()
        cap.release()
        if writer is not None:
            writer.release()
        if renderer is not None:
            renderer.release()
    report = summary.report()
    (out / f"{stem}_summary.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return summary


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="a video file, or a camera index (0: the first webcam)")
    p.add_argument("--out", default="out/video", help="output folder (default: %(default)s)")
    p.add_argument(
        "--K", type=intrinsics_arg, default=None, metavar="FX,FY,CX,CY",
        help="camera intrinsics in pixels: metric depth",
    )  # fmt: skip
    p.add_argument("--level", action="store_true", help="the camera is level (gravity along image down)")
    add_model_arguments(p, mesh_default="full")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--no-overlay", action="store_true", help="no overlay video (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def video_main(args: argparse.Namespace) -> int:
    """``whmr video``: 0 when frames were processed, 1 when none was, 2 when the source cannot be opened."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    K = intrinsics_matrix(tuple(args.K) if args.K else None)  # type: ignore[arg-type]
    cap, _, _ = open_source(args.source)  # ValueError: one line on stderr, exit 2 (cli.main)
    cap.release()
    pipeline = pipeline_from_args(args)
    s = run_video(
        args.source,
        pipeline,
        Path(args.out),
        K=K,
        gravity=LEVEL_GRAVITY if args.level else None,
        mesh=args.mesh,
        overlay=not args.no_overlay,
        max_frames=args.max_frames,
        progress=not args.quiet,
    )
    r = s.report()
    lat = r["latency_ms"]
    print(
        f"whmr video: {r['frames']} frames, {r['processed']} processed, {r['persons']} bodies in "
        f"{r['tracks']} tracks; {r['pipeline_fps']:.1f} FPS pipeline (detector + network), "
        f"{r['overall_fps']:.1f} FPS with pictures; latency p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms "
        f"-> {shown(args.out)}"
    )
    for reason, n in s.dropped.items():
        print(f"whmr video: warning: {n} frames dropped: {reason}", file=sys.stderr)
    if s.ended_early:
        print(f"whmr video: warning: {s.ended_early}; processed what was readable", file=sys.stderr)
    if not s.processed:  # a run that produced nothing is no success, whatever the reason
        why = "no frame could be read" if not s.frames else f"all {s.frames} frames dropped"
        print(f"whmr video: error: no frame processed ({why})", file=sys.stderr)
        return 1
    return 0

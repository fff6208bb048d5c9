"""``whmr image PATH... [--out DIR]``: body meshes for photos, each image on its own.

For every image: the shipped person detector (MoveNet MultiPose) finds the people, the pipeline recovers their
bodies (one camera per image: with ``--K`` metric, else one fused focal length), and ``DIR`` receives
``<stem>.json`` (``whmr_core.media.results``), ``<stem>_overlay.png`` (the photo, the meshes over it, a
gravity-frame side view) and one mesh per person (``<stem>_<k>.obj`` or ``.ply``, camera frame). The
pipeline is reset before each image, so no track or box carries from one photo into the next.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from whmr_core.media.image_files import ImageFileError, read_image, write_image
from whmr_core.media.paths import expand_glob, has_magic, output_stems, shown
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.frames import Frame, FrameResult, InputError
from whmr_core.runtime.pipeline import Pipeline

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageOptions",
    "ImageSummary",
    "add_image_arguments",
    "collect_images",
    "describe",
    "image_main",
    "read_image",
    "run_images",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
LEVEL_GRAVITY = (0.0, 1.0, 0.0)  # gravity along the camera's +y (image down): a level camera
# whmr image's most people per photo: a group photo's crowd (video keeps PipelineConfig's, for its rate).
PHOTO_MAX_PERSONS = 16
# whmr image's MultiPose input sides: the second, larger pass finds small people in crowds.
PHOTO_MOVENET_SIDES = (256, 512)
# add_model_arguments' defaults for photos (whmr image, and the real-image benchmark as whmr image): a second
# MultiPose pass at 512 finds small people in crowds (not worth its ~40 ms in video); a crowd photo may hold
# more people than a video frame is allowed to cost, and its crowd is worth tiles.
PHOTO_MODEL_DEFAULTS = {
    "movenet_sides": ",".join(map(str, PHOTO_MOVENET_SIDES)),
    "fit_3d": True,
    "max_persons": PHOTO_MAX_PERSONS,
    "crowd_tiles": True,
    "crowd_boxes": True,
}


@dataclass(frozen=True)
class ImageOptions:
    out: Path = Path("out/images")
    K: tuple[float, float, float, float] | None = None  # fx, fy, cx, cy for every image
    gravity: tuple[float, float, float] | None = None  # gravity in the camera frame; None: level assumed
    mesh: str = "full"  # display/export body: full | lowres | network | a SMPL-format file
    mesh_format: str = "obj"  # obj | ply | none
    overlay: bool = True
    overlay_max_side: int = 960


@dataclass
class ImageSummary:
    path: Path
    persons: int = 0
    focal_px: float | None = None
    line: str = ""
    files: list[str] = field(default_factory=list)
    error: str = ""


def collect_images(paths: Sequence[str], missing: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Files, folders (their image files, sorted) and globs -> (image paths, warnings for what is skipped).

    Names need not be UTF-8 (warnings print them with ``\\xNN`` escapes); ``**`` never follows a link
    to a folder (``paths.expand_glob``). Paths that name nothing are also appended to ``missing``."""
    files: list[Path] = []
    warnings: list[str] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            try:
                inside = sorted(q for q in p.iterdir() if q.is_file())
            except OSError as e:
                warnings.append(f"{shown(p)}: cannot list this folder ({e.strerror or e})")
                continue
            imgs = [q for q in inside if q.suffix.lower() in IMAGE_SUFFIXES]
            if len(inside) > len(imgs):
                warnings.append(
                    f"{shown(p)}: skipped {len(inside) - len(imgs)} files that are not images by name"
                )
            if not imgs:
                warnings.append(f"{shown(p)}: no images in this folder")
            files += imgs
        elif p.is_file():
            files.append(p)
        elif has_magic(arg):
            matched = expand_glob(arg)
            if not matched:
                warnings.append(f"{shown(arg)}: no file matches")
                if missing is not None:
                    missing.append(arg)
            files += [m for m in matched if m.suffix.lower() in IMAGE_SUFFIXES]
            if len(matched) > (n := sum(m.suffix.lower() in IMAGE_SUFFIXES for m in matched)):
                warnings.append(
                    f"{shown(arg)}: skipped {len(matched) - n} matches that are not images by name"
                )
        else:
            warnings.append(f"{shown(arg)}: no such file or folder")
            if missing is not None:
                missing.append(arg)
    unique: dict[Path, Path] = {}  # a file named twice (a folder and a glob) is processed once
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values()), warnings


def intrinsics_matrix(k: tuple[float, float, float, float] | None) -> np.ndarray | None:
    """K from (fx, fy, cx, cy)."""
    if k is None:
        return None
    fx, fy, cx, cy = k
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def describe(name: str, result: FrameResult, focal: float | None, seconds: float) -> str:
    """The one-line summary of an image."""
    n = len(result.persons)
    who = f"{n} person{'s' if n != 1 else ''}"
    if n:
        where = ", ".join(f"{p.translation_camera[2]:.1f}" for p in result.persons)
        metric = result.persons[0].translation_is_metric
        who += f" at depth {where} m" + ("" if metric else " (relative scale, no K)")
        if focal is not None:
            how = "from K" if result.K is not None else ("fused" if n > 1 else "predicted")
            who += f", focal {focal:.0f} px ({how})"
        else:
            who += ", focal per person"
    elif result.box_source == "detector":
        who += " (the detector found nobody)"
    else:
        who += f" (boxes: {result.box_source})"
    dropped = f", {len(result.dropped)} dropped" if result.dropped else ""
    return f"{name}: {who}{dropped} [{result.image_wh[0]}x{result.image_wh[1]}, {seconds:.2f} s]"


def run_images(
    files: Sequence[Path],
    pipeline: Pipeline,
    options: ImageOptions,
    *,
    progress: bool = True,
    echo=print,
) -> list[ImageSummary]:
    """Process ``files`` one by one into ``options.out``; returns a summary per file (errors included)."""
    from tqdm import tqdm

    from whmr_core.media.display_mesh import DisplayBody

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    display = DisplayBody(options.mesh, network_faces=pipeline.topology.faces)
    K = intrinsics_matrix(options.K)
    renderer = None
    if options.overlay:
        from whmr_core.render import Renderer

        renderer = Renderer()
    summaries = []
    bar = tqdm(list(zip(files, output_stems(files), strict=True)), unit="img", desc="whmr image",
               disable=not progress)  # fmt: skip
    write = tqdm.write if progress else echo
    for path, stem in bar:
        summary = ImageSummary(path)
        summaries.append(summary)
        t0 = time.perf_counter()
        try:
            image = read_image(path)  # size, pixel count and every read error checked there
        except ImageFileError as e:
            summary.error = str(e)
            write(f"warning: skipped {e}")
            continue
        pipeline.reset()  # every image on its own: no track or box from the previous photo
        try:
            result = pipeline.process(Frame(image, 0, K=K, gravity=options.gravity))
        except InputError as e:
            summary.error = f"{shown(path)}: {e}"
            write(f"warning: skipped {summary.error}")
            continue
        try:
            _write_outputs(summary, image, result, stem, out, display, renderer, options)
        except OSError as e:  # a full disk or a read-only folder: this image's files are incomplete
            summary.error = (
                f"{shown(path)}: cannot write its results ({e.strerror or e}: {shown(e.filename or out)})"
            )
            write(f"warning: {summary.error}")
            continue
        summary.line = describe(shown(path.name), result, summary.focal_px, time.perf_counter() - t0)
        write(summary.line)
    if renderer is not None:
        renderer.release()
    return summaries


def _write_outputs(
    summary: ImageSummary,
    image: np.ndarray,
    result: FrameResult,
    stem: str,
    out: Path,
    display,
    renderer,
    options: ImageOptions,
) -> None:
    """``<stem>.json``, the meshes and the overlay of one image into ``out``; fills ``summary``."""
    from whmr_core.media.results import frame_record, write_mesh

    focal = result.focal_px  # K's or the fused one; None with --per-person-focal
    meshes = [display(p) for p in result.persons]
    names = []
    if options.mesh_format != "none":
        for k, m in enumerate(meshes):  # the order of "persons" in the JSON
            name = f"{stem}_{k}.{options.mesh_format}"
            write_mesh(out / name, m.vertices_camera, m.faces)
            names.append(name)
    record = frame_record(
        result, focal_px=focal, source=shown(summary.path), meshes=[shown(n) for n in names]
    )
    for k, rec in enumerate(record["persons"]):  # images stand alone: an index, not a track id
        del rec["track_id"]
        rec["index"] = k
    record["mesh_body"] = display.name
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    summary.files = [f"{stem}.json", *names]
    if options.overlay and renderer is not None:
        from whmr_core.media.pictures import draw_overlay, side_view

        over = draw_overlay(
            image, result, meshes, max_side=options.overlay_max_side, renderer=renderer, by_index=True
        )
        photo = cv2.resize(image, (over.shape[1], over.shape[0]), interpolation=cv2.INTER_AREA)
        panels = [photo, over, side_view(meshes, over.shape[0], renderer=renderer)]
        write_image(out / f"{stem}_overlay.png", np.concatenate(panels, axis=1))
        summary.files.append(f"{stem}_overlay.png")
    summary.persons, summary.focal_px = len(result.persons), focal


def float_list(n: int, what: str):
    """An argparse type: ``n`` comma-separated finite numbers."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != n or not all(np.isfinite(values)):
            raise argparse.ArgumentTypeError(f"{what}: expected {n} comma-separated numbers, got {text!r}")
        return values

    return parse


def intrinsics_arg(text: str) -> tuple[float, ...]:
    """An argparse type: ``FX,FY,CX,CY`` with positive focal lengths and a principal point not left of or
    above the image (checked once here, not refused frame after frame)."""
    fx, fy, cx, cy = values = float_list(4, "--K")(text)
    if fx <= 0 or fy <= 0 or cx < 0 or cy < 0:
        raise argparse.ArgumentTypeError(
            f"--K: focal lengths must be > 0 and the principal point >= 0 (pixels), got {text!r}"
        )
    return values


def add_image_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs ('photos/*.jpg')")
    p.add_argument("--out", default="out/images", help="output folder (default: %(default)s)")
    p.add_argument(
        "--K",
        type=intrinsics_arg,
        default=None,
        metavar="FX,FY,CX,CY",
        help="camera intrinsics in pixels for every image: metric depth (default: none)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--level", action="store_true", help="the camera was level (gravity along image down)")
    g.add_argument(
        "--gravity",
        type=float_list(3, "--gravity"),
        default=None,
        metavar="GX,GY,GZ",
        help="gravity direction in the camera optical frame (x right, y down, z forward)",
    )
    add_model_arguments(p, mesh_default="full", **PHOTO_MODEL_DEFAULTS)
    p.add_argument(
        "--mesh-format",
        choices=("obj", "ply", "none"),
        default="obj",
        help="per-person mesh files, camera frame (default: %(default)s)",
    )
    p.add_argument("--no-overlay", action="store_true", help="no <stem>_overlay.png pictures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def positive_int(what: str):
    """An argparse type: an integer >= 1."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what}: expected a whole number >= 1, got {text!r}")
        return value

    return parse


def add_model_arguments(
    p: argparse.ArgumentParser,
    mesh_default: str,
    movenet_sides: str = "256",
    fit_3d: bool = False,
    max_persons: int | None = None,
    crowd_tiles: bool = False,
    crowd_boxes: bool = False,
) -> None:
    """Engine, model, detector and focal options shared by ``whmr image`` and ``whmr video``
    (``movenet_sides``, ``fit_3d``, ``max_persons``, ``crowd_tiles``, ``crowd_boxes``: defaults; photos take
    a second, larger MultiPose pass, the 3D landmarks, more people, crowd tiles and NanoDet's boxes on them,
    which video leaves out for its rate)."""
    p.add_argument("--engine", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    p.add_argument("--model", default="", help="model file (default: the shipped checkpoint)")
    p.add_argument("--body-model", default=None, help="the network's body model (default: the checkpoint's)")
    p.add_argument(
        "--mesh",
        default=mesh_default,
        help="body drawn and exported: full | lowres | network | a SMPL-format file "
        "(default: %(default)s, the network's pose and shape on the full free body)",
    )
    p.add_argument(
        "--detector",
        default="movenet",
        help="person boxes: movenet (shipped MoveNet MultiPose, default), blazepose (shipped), a YOLO .onnx "
        "file, or none (whole image)",
    )
    p.add_argument(
        "--no-fit", action="store_true", help="the network's bodies alone (no fit to the 2D keypoints)"
    )
    p.add_argument(
        "--fit-3d",
        action=argparse.BooleanOptionalAction,
        default=fit_3d,
        help="the fit also matches BlazePose's 3D world landmarks (one more model run per person; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--crowd-tiles",
        action=argparse.BooleanOptionalAction,
        default=crowd_tiles,
        help="when MultiPose returns its most (6 people), or small people in a large image, run it again "
        "on overlapping tiles of the image (2-4 more runs) for the people it left out (default: %(default)s)",
    )
    p.add_argument(
        "--crowd-boxes",
        action=argparse.BooleanOptionalAction,
        default=crowd_boxes,
        help="where the crowd tiles run, NanoDet's person boxes on them too: the people MultiPose left out "
        "(6 per run) are added with MoveNet Thunder's keypoints (default: %(default)s)",
    )
    p.add_argument(
        "--movenet-sides",
        default=movenet_sides,
        help="MultiPose input sizes: one, or two for small people in crowds (a second pass, persons merged; "
        "default: %(default)s)",
    )
    p.add_argument(
        "--keypoints",
        default="auto",
        choices=("auto", "thunder", "detector", "none"),
        help="2D keypoints per person: auto (MultiPose's own with its boxes, else MoveNet Thunder on each "
        "box; default), thunder, detector, none",
    )
    p.add_argument(
        "--detector-score",
        type=float,
        default=None,
        help="detector score threshold (default: 0.2 for movenet, 0.5 for the others)",
    )
    p.add_argument(
        "--per-person-focal",
        action="store_true",
        help="without --K keep each person's own predicted focal length (the paper's behaviour) "
        "instead of one fused focal per image",
    )
    p.add_argument(
        "--max-persons",
        type=positive_int("--max-persons"),
        default=max_persons or PipelineConfig().max_persons,
        help="most people per image, best scores first (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")


def pipeline_from_args(args: argparse.Namespace, base: PipelineConfig | None = None) -> Pipeline:
    """The engine, topology and box/focal settings of ``whmr image``/``video`` options."""
    from whmr_core.runtime.factory import load_engine, load_topology

    det = str(args.detector)
    score = 0.5 if args.detector_score is None else args.detector_score
    if det == "none":
        kw = {"detector": "none", "whole_image_fallback": True}
    elif det == "movenet":
        kw = {"detector": "movenet", "whole_image_fallback": False}
        if args.detector_score is not None:
            kw["movenet_score"] = args.detector_score
        if args.movenet_sides:
            try:
                sides = [int(v) for v in str(args.movenet_sides).split(",")]
            except ValueError:
                raise ValueError(
                    f"--movenet-sides: one or two integers, e.g. 256,512; got {args.movenet_sides!r}"
                ) from None
            if len(sides) > 2:
                raise ValueError(f"--movenet-sides: at most two sizes, got {args.movenet_sides!r}")
            kw.update(movenet_side=sides[0], movenet_extra_side=sides[1] if len(sides) > 1 else 0)
    elif det == "blazepose":
        kw = {"detector": "blazepose", "detector_score": score, "whole_image_fallback": False}
    else:
        kw = {"detector": "yolo", "detector_model": det, "detector_score": score,
              "whole_image_fallback": False}  # fmt: skip
    kw["keypoints"] = str(args.keypoints)
    kw["max_persons"] = int(args.max_persons)
    kw["fit"] = not args.no_fit
    kw["fit_3d"] = bool(args.fit_3d)
    kw["movenet_crowd_tiles"] = bool(args.crowd_tiles)
    kw["movenet_crowd_boxes"] = bool(args.crowd_boxes)
    config = replace(base or PipelineConfig(), per_person_focal=bool(args.per_person_focal), **kw)
    engine = load_engine(args.engine, args.model, threads=args.threads)
    return Pipeline(engine, load_topology(args.body_model, engine=engine), config)


def image_main(args: argparse.Namespace) -> int:
    """``whmr image``: returns 0 when every image was processed, 1 when some were skipped (or a path
    named nothing), 2 if none."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    missing: list[str] = []
    files, warnings = collect_images(args.paths, missing)
    out_dir = Path(args.out).resolve()
    ours = [f for f in files if f.resolve().parent == out_dir]  # our own overlays from an earlier run
    if ours:
        warnings.append(f"skipped {len(ours)} images in the output folder {shown(args.out)}")
        files = [f for f in files if f not in ours]
    for w in warnings:
        print(f"warning: {w}")
    if not files:
        print("whmr image: no images to process")
        return 2
    gravity = LEVEL_GRAVITY if args.level else (tuple(args.gravity) if args.gravity else None)
    options = ImageOptions(
        out=Path(args.out),
        K=tuple(args.K) if args.K else None,  # type: ignore[arg-type]
        gravity=gravity,  # type: ignore[arg-type]
        mesh=args.mesh,
        mesh_format=args.mesh_format,
        overlay=not args.no_overlay,
    )
    pipeline = pipeline_from_args(args)
    summaries = run_images(files, pipeline, options, progress=not args.quiet)
    done = [s for s in summaries if not s.error]
    people = sum(s.persons for s in done)
    print(f"whmr image: {len(done)} of {len(summaries)} images, {people} persons -> {shown(options.out)}")
    if not done:
        return 2
    return 0 if len(done) == len(summaries) and not missing else 1

"""The ``whmr`` command line: one subcommand per job, each a thin wrapper over whmr_core and whmr_ros.

It lives in whmr_ros because some subcommands (demo, bag) need the ROS message layer; whmr_core
knows no ROS."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from whmr_core._version import __version__


def _runs(target: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand that hands its arguments to ``module:function``, imported only when it runs (so
    ``whmr --help`` stays fast and one subcommand's dependencies never load for another)."""

    def run(args: argparse.Namespace) -> int:
        module, function = target.split(":")
        return getattr(importlib.import_module(module), function)(args)

    return run


def _cmd_demo(args: argparse.Namespace) -> int:
    from whmr_ros.demo import run_demo

    return run_demo(out=args.out, seconds=args.seconds, seed=args.seed, checkpoint=args.checkpoint)


def _cmd_synth(args: argparse.Namespace) -> int:
    if args.sequence:
        if not args.bag:
            raise SystemExit("whmr synth --sequence: --bag OUT.mcap is required")
        from whmr_core.data.sequence import SequenceConfig
        from whmr_ros.synth_bag import write_sequence_bag

        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            config = SequenceConfig(image_wh=(w, h), walkers=args.walkers)
        except ValueError as err:
            raise SystemExit(f"whmr synth --sequence: {err} (--size WxH, --walkers N >= 1)") from None
        info = write_sequence_bag(
            args.bag, seconds=args.seconds, seed=args.seed, body=args.body or "lowres", config=config
        )
        print(f"wrote {info['path']}: {info['counts']}")
        return 0
    if not args.out or args.num is None:
        raise SystemExit("whmr synth: --out DIR and --num N are required (or --sequence --bag OUT.mcap)")
    from dataclasses import replace

    from whmr_core.data.synth import generate_dataset, synth_profile

    try:
        cfg = replace(synth_profile(args.profile), image_format=args.format)
    except ValueError as err:
        raise SystemExit(f"whmr synth: {err}") from None
    if args.max_people is not None:
        lo = min(cfg.scene.num_people[0], args.max_people)
        cfg = replace(cfg, scene=replace(cfg.scene, num_people=(lo, args.max_people)))
    summary = generate_dataset(
        args.out, args.num, args.seed, split_val=args.split_val, workers=args.workers,
        body=args.body or "full", config=cfg,
    )  # fmt: skip
    rate = summary["images_per_second"]
    print(f"wrote {args.out}: {summary['splits']} in {summary['seconds']} s ({rate} img/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whmr",
        description="World-frame human mesh recovery (W-HMR) for robots.",
    )
    parser.add_argument("--version", action="version", version=f"whmr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the main job on the embedded default and print a summary")
    demo.add_argument("--out", default="out/demo", help="output directory (default: %(default)s)")
    demo.add_argument("--seconds", type=float, default=4.0, help="length of the sample sequence (default: 4)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the sample sequence (default: 0)")
    demo.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped one)")
    demo.set_defaults(func=_cmd_demo)

    from whmr_core.media.image import add_image_arguments
    from whmr_core.media.video import add_video_arguments

    image = sub.add_parser(
        "image", help="body meshes for photos: files, folders or globs, each image on its own",
        description="Per image: DIR/<stem>.json, DIR/<stem>_overlay.png and one mesh per person. "
        "People are found by the shipped BlazePose detector; without --K one focal length per image.",
    )  # fmt: skip
    add_image_arguments(image)
    image.set_defaults(func=_runs("whmr_core.media.image:image_main"))
    video = sub.add_parser("video", help="body meshes for a video file or a webcam, tracked across frames")
    add_video_arguments(video)
    video.set_defaults(func=_runs("whmr_core.media.video:video_main"))

    from whmr_ros.bag_runner import build_bag_parser

    bag = sub.add_parser("bag", help="run the pipeline over a ROS 2 bag (mcap/sqlite3), no ROS needed")
    build_bag_parser(bag)
    bag.set_defaults(func=_runs("whmr_ros.bag_runner:run_from_args"))
    synth = sub.add_parser(
        "synth",
        help="render synthetic people with exact cameras and gravity (a data set, or a ROS 2 bag sequence)",
        description="Data set: whmr synth --out DIR --num N --seed S. "
        "Sequence: whmr synth --sequence --bag OUT.mcap [--seconds T] [--seed S]. See docs/synth.md.",
    )
    synth.add_argument("--out", help="data set directory (images/, maps/, train.npz, val.npz)")
    synth.add_argument("--num", type=int, help="number of images")
    synth.add_argument("--seed", type=int, default=0, help="sample i depends only on (seed, i) (default: 0)")
    synth.add_argument(
        "--split-val", type=float, default=0.0, metavar="FRACTION",
        help="fraction of the images (the last ones) written to val.npz (default: 0)",
    )  # fmt: skip
    synth.add_argument("--workers", type=int, default=2, help="worker processes, 0 = in-process (default: 2)")
    synth.add_argument(
        "--body", help="lowres | full | PATH to a SMPL model file (default: full; lowres for bags)"
    )
    synth.add_argument(
        "--profile", default="default",
        help="named generator settings of cameras, people and looks (docs/synth.md lists them)",
    )  # fmt: skip
    synth.add_argument(
        "--max-people", type=int, default=None, help="at most N people per image (default: the profile's)"
    )
    synth.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image format (default: jpg)")
    synth.add_argument("--sequence", action="store_true", help="write a ROS 2 bag sequence instead")
    synth.add_argument("--bag", help="output .mcap file of --sequence")
    synth.add_argument("--seconds", type=float, default=4.0, help="sequence length (default: 4)")
    synth.add_argument("--walkers", type=int, default=1, help="people in a --sequence (default: 1)")
    synth.add_argument("--size", default="320x240", help="image size WxH of a --sequence (default: 320x240)")
    synth.set_defaults(func=_cmd_synth)

    from whmr_core.export.commands import add_export_arguments
    from whmr_core.runtime.bench import add_bench_arguments

    export = sub.add_parser("export", help="export a checkpoint to ONNX, a TensorRT engine or torch2trt")
    add_export_arguments(export)
    export.set_defaults(func=_runs("whmr_core.export.commands:run_export"))

    bench = sub.add_parser("bench", help="latency/throughput of every available engine vs eager PyTorch")
    add_bench_arguments(bench)
    bench.set_defaults(func=_runs("whmr_core.runtime.bench:bench_main"))

    from whmr_core.model.release_import import add_import_release_arguments

    imp = sub.add_parser(
        "import-release", help="convert the authors' released W-HMR checkpoint to whmr's format"
    )
    add_import_release_arguments(imp)
    imp.set_defaults(func=_runs("whmr_core.model.release_import:run_import_release"))

    ev = sub.add_parser("eval", help="MPJPE, PA-MPJPE, PVE, W-MPJPE, W-PVE, orientation and focal errors")
    ev.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the shipped one)")
    ev.add_argument("--data", required=True, help="annotation .npz, or a whmr synth folder (uses val.npz)")
    ev.add_argument("--images", default=None, help="image folder (default: the annotation file's folder)")
    ev.add_argument("--json", default=None, help="write the metrics here")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--max-samples", type=int, default=None)
    ev.add_argument(
        "--protocol",
        default="synthetic",
        help="joint protocol: synthetic, agora (24 joints), 3dpw, h36m (14 H36M joints), mpi-inf-3dhp (17)",
    )
    ev.add_argument(
        "--joint-regressor", default=None, help="(17,V) H36M regressor .npy for the H36M protocols"
    )
    ev.add_argument(
        "--gravity-noise", type=float, nargs="*", default=None, metavar="DEG",
        help="also evaluate with this much IMU tilt error on the camera rotation (e.g. 3 5)",
    )  # fmt: skip
    ev.set_defaults(func=_runs("whmr_core.evaluation:eval_main"))

    data = sub.add_parser("data", help="training data files: what they hold and what whmr reads of them")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="check")
    check = data_sub.add_parser(
        "check", help="a file's format, its keys, what whmr uses, what it ignores, and the labels it gives"
    )
    check.add_argument("file", help="annotation .npz, a webdataset .tar or a folder of them")
    check.add_argument(
        "--ignore", nargs="*", default=[], metavar="KEY", help="keys to leave out (ignore_fields)"
    )
    check.set_defaults(func=_runs("whmr_core.data.formats:check_main"))
    for command in sub.choices.values():  # ``whmr bag ... --debug`` works as well as ``whmr --debug bag``
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _ordinary_errors() -> tuple[type[BaseException], ...]:
    """What a user's input causes (a bad or missing file, a wrong option or topic, a corrupt bag): one
    line, exit 2. Anything else is a fault of whmr's: one line too, exit 1, the traceback behind --debug."""
    errors: list[type[BaseException]] = [ValueError, OSError, LookupError, EOFError]
    try:
        from rosbags.highlevel import AnyReaderError
        from rosbags.rosbag2 import ReaderError, WriterError

        errors += [AnyReaderError, ReaderError, WriterError]
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """``whmr`` itself: one error handler for every subcommand (``whmr <cmd>: error: <what>``)."""
    _printable_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    if args.debug:
        return int(args.func(args) or 0)
    cmd = f"whmr {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{cmd}: interrupted", file=sys.stderr)
        return 130
    except _ordinary_errors() as e:
        print(f"{cmd}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        print(f"{cmd}: internal error: {type(e).__name__}: {_one_line(e)} (--debug shows the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1


def _printable_streams() -> None:
    """A file name that is not UTF-8 reaches Python as lone surrogates, which a UTF-8 stdout refuses
    (UnicodeEncodeError, after the work is done): print them as escapes instead, wherever they occur."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "") == "strict":
            reconfigure(errors="backslashreplace")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text += f": {e.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())

"""Run the Pipeline over a recorded ROS 2 bag without ROS: ``whmr bag --input IN --output OUT``.

Reads mcap or sqlite3 bags with rosbags' AnyReader (Image, CameraInfo, Imu, TF, optional detections),
feeds the same ``WhmrHost``/``Pipeline`` as the node, in image-stamp order, and writes an mcap bag with the
node's outputs (BodyMeshArray, BodyModelTopology, MarkerArray, TF, diagnostics, optional overlay) plus the
input topics asked for. Each image waits until the bag has been read ``lookahead_s`` past its stamp, so the
IMU readings after it (for interpolation) and its detections (often logged later) are in.

What is written when (topology once, markers throttled on bag time, diagnostics every second of bag
time) is the node's ``OutputScheduler``; topic names, QoS and the bag version are ``bag_format``'s.

A run is never lost: a frame or record that fails is dropped with a diagnostic (as the node does); the
output is written to ``OUT.partial`` and renamed to ``OUT`` at the end; on SIGINT/SIGTERM or a fatal
error the writer is closed cleanly, so ``OUT.partial`` is a valid bag of what was processed (a rerun
replaces it). A truncated input (a recording cut short) is read up to the cut (``bag_input``), processed
and reported; a last ``/diagnostics`` message closes every output bag.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from whmr_core.body.topology import BodyTopology
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.engines import Engine
from whmr_core.runtime.pipeline import Pipeline
from whmr_ros.bag_format import BAG_VERSION, INPUT_TOPICS, OUTPUT_TOPICS, qos_profiles
from whmr_ros.bag_input import open_bag
from whmr_ros.conversions import MessageError, header_stamp_ns
from whmr_ros.host import HostConfig, WhmrHost
from whmr_ros.message_kit import RosbagsKit
from whmr_ros.message_types import typestore
from whmr_ros.scheduler import OutputRates, OutputScheduler
from whmr_ros.tf_buffer import TransformBuffer

__all__ = [
    "BagRunConfig",
    "BagRunError",
    "BagSummary",
    "BagTopics",
    "bag_main",
    "build_bag_parser",
    "run_bag",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BagTopics:
    """Input topics (``detections`` empty: none) and output topics (``overlay`` empty: not written)."""

    image: str = INPUT_TOPICS["image"]
    camera_info: str = INPUT_TOPICS["camera_info"]
    imu: str = INPUT_TOPICS["imu"]
    detections: str = ""
    tf: str = INPUT_TOPICS["tf"]
    tf_static: str = INPUT_TOPICS["tf_static"]
    bodies: str = OUTPUT_TOPICS["bodies"]
    topology: str = OUTPUT_TOPICS["topology"]
    markers: str = OUTPUT_TOPICS["markers"]
    out_tf: str = OUTPUT_TOPICS["tf"]
    diagnostics: str = OUTPUT_TOPICS["diagnostics"]
    overlay: str = ""


@dataclass(frozen=True)
class BagRunConfig:
    """Everything a bag run is configured with besides its files, engine and body topology.

    ``outputs`` throttles run on bag time (image stamps); the overlay is written when ``topics.overlay``
    names a topic. ``lookahead_s``: an image waits until the bag has been read this far past its stamp;
    ``max_pending``: images held at most while waiting (stamps that never catch up must not fill memory).
    """

    topics: BagTopics = field(default_factory=BagTopics)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    host: HostConfig = field(default_factory=HostConfig)
    outputs: OutputRates = field(default_factory=lambda: OutputRates(marker_rate_hz=10.0))
    copy_topics: tuple[str, ...] = ()
    lookahead_s: float = 0.05
    max_pending: int = 64
    progress: bool = True
    distro: str = "ROS2_JAZZY"


# The message type each input topic must hold (checked before reading: a CompressedImage topic given as
# the image would otherwise drop every frame one by one).
INPUT_TYPES = {
    "image": ("sensor_msgs/msg/Image",),
    "camera_info": ("sensor_msgs/msg/CameraInfo",),
    "imu": ("sensor_msgs/msg/Imu",),
    "detections": ("vision_msgs/msg/Detection2DArray",),
    "tf": ("tf2_msgs/msg/TFMessage",),
    "tf_static": ("tf2_msgs/msg/TFMessage",),
}


@dataclass
class BagSummary:
    images: int = 0
    frames_with_output: int = 0
    bodies: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    last_problem: dict[str, str] = field(default_factory=dict)
    copied: int = 0
    latency_ms: list[float] = field(default_factory=list)  # per processed image: pipeline wall time
    output: Path | None = None  # the output bag: OUT, or OUT.partial when the run stopped early
    truncated: str = ""  # why the input could not be read to its end ("" = read completely)
    interrupted: str = ""  # "SIGINT" / "SIGTERM" when a signal stopped the run

    def no_output_reason(self) -> str:
        """Why no frame was processed (the most frequent problems), for the command line."""
        if not self.images:
            return "the image topic holds no messages"
        worst = sorted(self.dropped.items(), key=lambda kv: -kv[1])[:3]
        return "; ".join(f"{k}: {self.last_problem.get(k, '')} ({n}x)" for k, n in worst) or "unknown"


class BagRunError(RuntimeError):
    """A fatal error ended the run; the output up to it is a valid bag at ``summary.output``."""

    def __init__(self, message: str, summary: BagSummary) -> None:
        super().__init__(message)
        self.summary = summary


class _StopRequest:
    """SIGINT/SIGTERM ask the run to stop after the current record (the writer then closes cleanly);
    a second signal stops at once (KeyboardInterrupt, still closing the writer)."""

    def __init__(self) -> None:
        self.signal = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        log.warning(
            "%s: stopping after this frame and closing the output (again to stop at once)", self.signal
        )

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _OutputError(RuntimeError):
    """Writing the output bag failed; ends the run (after closing the writer)."""


class _BagSink:
    """The scheduler's sink: one writer connection per output; every output the bag has is wanted."""

    def __init__(self, writer: Any, store: Any, connections: dict[str, Any]) -> None:
        self.writer, self.store, self.connections = writer, store, connections
        self.log_time = 0  # the log time of the image being answered

    def publish(self, name: str, msg: Any) -> None:
        raw = msg if isinstance(msg, bytes) else self.store.serialize_cdr(msg, msg.__msgtype__)
        try:
            self.writer.write(self.connections[name], self.log_time, raw)
        except Exception as e:  # the output itself failed (disk full): fatal, not one frame's problem
            raise _OutputError(f"writing {name}: {e}") from e

    def wanted(self, name: str) -> bool:
        return name in self.connections


class _BagRun:
    """One pass over an input bag: messages in, outputs out through the shared ``OutputScheduler``."""

    def __init__(
        self,
        engine: Engine,
        topology: BodyTopology,
        config: BagRunConfig,
        on_frame: Callable[[int, Any], None] | None,
    ) -> None:
        self.config = config
        self.topics = config.topics
        self.store = typestore(config.distro)
        self.tf_buffer = TransformBuffer()
        self.host = WhmrHost(
            # With a detections topic the boxes come from there: no detector runs unless one is named.
            Pipeline(engine, topology, config.pipeline.for_detections_topic(bool(config.topics.detections))),
            config.host,
            RosbagsKit(self.store),
            lookup=self.tf_buffer.lookup,
            warn=log.warning,
        )
        self.on_frame = on_frame
        self.summary = BagSummary()
        self.pending: list[tuple[int, int, int, Any]] = []  # (stamp, sequence, log time, image message)
        self._seq = 0
        self.last_stamp: int | None = None
        self.copied: dict[str, Any] = {}
        t = self.topics
        self.inputs = {t.image, t.camera_info, t.imu, t.tf, t.tf_static, t.detections} - {""}

    def open_outputs(self, writer: Any, by_topic: dict[str, Any]) -> None:
        t, store = self.topics, self.store

        def output(topic: str, msgtype: str, latched: bool = False) -> Any:
            return writer.add_connection(
                topic, msgtype, typestore=store, offered_qos_profiles=qos_profiles(latched)
            )

        conn = {
            "bodies": output(t.bodies, "whmr_ros/msg/BodyMeshArray"),
            "topology": output(t.topology, "whmr_ros/msg/BodyModelTopology", latched=True),
            "diagnostics": output(t.diagnostics, "diagnostic_msgs/msg/DiagnosticArray"),
        }
        rates = self.config.outputs
        if rates.markers and rates.marker_rate_hz > 0:
            conn["markers"] = output(t.markers, "visualization_msgs/msg/MarkerArray")
        for topic in self.config.copy_topics:
            c = by_topic[topic]
            self.copied[topic] = writer.add_connection(
                topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest, offered_qos_profiles=qos_profiles()
            )
        # /tf may also be copied from the input: then our transforms share that connection.
        conn["tf"] = self.copied.get(t.out_tf) or output(t.out_tf, "tf2_msgs/msg/TFMessage")
        if t.overlay:
            conn["overlay"] = output(t.overlay, "sensor_msgs/msg/Image")
        self.sink = _BagSink(writer, store, conn)
        self.scheduler = OutputScheduler(self.host, replace(rates, overlay=bool(t.overlay)), self.sink)

    def feed(self, reader: Any, writer: Any, c: Any, log_time: int, raw: bytes) -> None:
        """One input record: copy it, route it to the host, then answer the images it lets through."""
        host = self.host
        if c.topic in self.copied:
            writer.write(self.copied[c.topic], log_time, raw)
            self.summary.copied += 1
        if c.topic not in self.inputs:
            return
        try:
            msg = reader.deserialize(raw, c.msgtype)
        except Exception as e:  # a corrupt record must not end the run
            host.problem(c.topic, f"undecodable {c.msgtype}: {e}")
            return
        try:
            self._route(c, log_time, msg)
        except _OutputError:
            raise
        except Exception as e:  # an unforeseen fault in one record costs that record, not the run
            host.problem(c.topic, f"dropped: {type(e).__name__}: {e}")

    def _route(self, c: Any, log_time: int, msg: Any) -> None:
        t, host = self.topics, self.host
        if c.topic == t.image:
            self.summary.images += 1
            try:  # queued raw: K, IMU and detections logged just after it are then in
                heapq.heappush(self.pending, (header_stamp_ns(msg), self._seq, log_time, msg))
                self._seq += 1
            except MessageError:
                host.on_image(msg)  # drops it, counted, with the reason
        elif c.topic == t.camera_info:
            host.on_camera_info(msg)
        elif c.topic == t.imu:
            host.on_imu(msg)
        elif c.topic == t.detections:
            host.on_detections(msg)
        elif c.topic in (t.tf, t.tf_static):
            for why in self.tf_buffer.add_message(msg, static=c.topic == t.tf_static):
                host.problem("tf", f"transform dropped: {why}")
        # Read position in the image clock: stamps of stamped messages (TF has none).
        try:
            self.flush(header_stamp_ns(msg))
        except MessageError:
            pass
        lookahead = int(self.config.lookahead_s * 1e9)
        while len(self.pending) > self.config.max_pending:
            self.flush(self.pending[0][0] + lookahead)

    def flush(self, until_ns: int | None) -> None:
        """Answer the queued images whose lookahead the bag has been read past (all with None)."""
        lookahead = int(self.config.lookahead_s * 1e9)
        while self.pending and (until_ns is None or self.pending[0][0] + lookahead <= until_ns):
            stamp, _, log_time, image = heapq.heappop(self.pending)
            self.sink.log_time = log_time
            self.last_stamp = stamp
            try:
                self._answer(stamp, image)
                self.scheduler.tick(stamp)
            except _OutputError:
                raise
            except Exception as e:  # e.g. a parameter the pipeline cannot work with: this frame is lost
                self.host.problem("frame", f"dropped: {type(e).__name__}: {e}")

    def finish(self, truncated: str, interrupted: str) -> None:
        """A last diagnostics message, so the bag ends on what went wrong (throttled ones may not)."""
        if truncated:
            self.host.problem("bag", f"input truncated: {truncated}")
        if interrupted:
            self.host.problem("bag", f"stopped by {interrupted}: the rest of the input was not processed")
        if self.last_stamp is not None:
            self.sink.publish("diagnostics", self.host.diagnostics(self.last_stamp))

    def _answer(self, stamp: int, image: Any) -> None:
        prepared = self.host.on_image(image)
        if prepared is None:
            return
        t0 = time.perf_counter()
        out = self.host.process(prepared)
        if out is None:
            return
        s = self.summary
        s.latency_ms.append((time.perf_counter() - t0) * 1000)
        if self.on_frame is not None:
            self.on_frame(stamp, out.result)
        s.frames_with_output += 1
        s.bodies += len(out.result.persons)
        self.scheduler.on_frame(out, prepared)


def run_bag(
    input_path: str | Path,
    output_path: str | Path,
    engine: Engine,
    topology: BodyTopology,
    config: BagRunConfig | None = None,
    *,
    on_frame: Callable[[int, Any], None] | None = None,
) -> BagSummary:
    """Process ``input_path`` (a bag directory or file) into a new mcap bag at ``output_path``.

    ``on_frame(stamp_ns, FrameResult)`` is called for every processed image (the demo's metrics).
    Returns the summary (``interrupted`` set when a signal stopped it: the output is then at
    ``OUT.partial``); raises ``BagRunError`` after closing the output cleanly when a fatal error ended it.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    config = config or BagRunConfig()
    run = _BagRun(engine, topology, config, on_frame)
    output_path = Path(output_path)
    if output_path.exists():
        raise FileExistsError(f"{output_path}: output exists; remove it or choose another path")
    partial = output_path.with_name(output_path.name + ".partial")
    summary = run.summary
    summary.output = partial
    fatal: BaseException | None = None
    with open_bag(input_path, run.store) as bag:
        by_topic = {c.topic: c for c in bag.connections}
        _check_topics(input_path, by_topic, config)
        wanted = [c for c in bag.connections if c.topic in run.inputs or c.topic in config.copy_topics]
        if partial.exists():  # left by a run that was killed outright: this run replaces it
            log.warning("%s: replacing the partial output of an earlier run", partial)
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        with _StopRequest() as stop:
            writer = Writer(partial, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
            try:
                writer.open()
            except Exception:
                _remove(partial)  # nothing was written yet
                raise
            try:
                run.open_outputs(writer, by_topic)
                messages: Any = bag.messages(wanted)
                if config.progress:
                    from tqdm import tqdm

                    messages = tqdm(
                        messages, total=sum(c.msgcount for c in wanted), unit="msg", desc="whmr bag"
                    )
                for c, log_time, raw in messages:
                    run.feed(bag, writer, c, log_time, raw)
                    if stop.signal:
                        break
                else:
                    run.flush(None)
            except KeyboardInterrupt:
                stop.signal = stop.signal or "SIGINT"
            except Exception as e:  # the writer, disk full, a bug: keep what was written
                fatal = e
            summary.truncated, summary.interrupted = bag.truncated, stop.signal
            try:
                run.finish(bag.truncated, stop.signal)
            except Exception as e:
                fatal = fatal or e
            # Closing writes the mcap summary and metadata.yaml: the error of a full disk often comes here.
            unclosed = _close(writer)
    summary.dropped = dict(run.host.dropped)
    summary.last_problem = dict(run.host.last_problem)
    if unclosed is not None:
        _remove(partial)  # an mcap cut mid-record without metadata.yaml is no bag: none is better
        summary.output = None
        first = fatal if fatal is not None else unclosed
        raise BagRunError(
            f"{_describe(first)}; {partial} removed: the output could not be completed into a valid bag "
            f"({_describe(unclosed)} while closing it)",
            summary,
        ) from first
    if fatal is not None:
        raise BagRunError(
            f"{_describe(fatal)} (the {summary.frames_with_output} frames processed before are in {partial}, "
            "a valid bag)",
            summary,
        ) from fatal
    if not summary.interrupted:
        summary.output = _finalise(partial, output_path)
    return summary


def _close(writer: Any) -> BaseException | None:
    """Close the writer; the error if that failed (the writer is then aborted, its file left as it is)."""
    try:
        writer.close()
    except Exception as e:
        with contextlib.suppress(Exception):
            writer.abort()
        return e
    return None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _describe(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, _OutputError):  # "writing <output>: <the writer's error>"
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _check_topics(input_path: str | Path, by_topic: dict[str, Any], config: BagRunConfig) -> None:
    """The image topic must exist, every input topic present must hold its type, copies must exist."""
    t = config.topics
    if t.image not in by_topic:
        raise ValueError(f"{input_path}: no image topic {t.image!r}; topics: {sorted(by_topic)}")
    for name, types in INPUT_TYPES.items():
        topic = getattr(t, name)
        c = by_topic.get(topic) if topic else None
        if c is not None and c.msgtype not in types:
            hint = " (whmr reads raw images; decompress it with image_transport republish)" if (
                name == "image" and "Compressed" in c.msgtype) else ""  # fmt: skip
            raise ValueError(
                f"{input_path}: {name} topic {topic!r} holds {c.msgtype}, expected {' or '.join(types)}{hint}"
            )
    missing = sorted(set(config.copy_topics) - set(by_topic))
    if missing:
        raise ValueError(f"{input_path}: topics to copy not in the bag: {missing}")


def _finalise(partial: Path, output: Path) -> Path:
    """Rename the complete ``OUT.partial`` to ``OUT``, its mcap file with it (metadata.yaml follows)."""
    inner = partial / f"{partial.name}.mcap"
    meta = partial / "metadata.yaml"
    if inner.is_file() and meta.is_file():
        inner.rename(partial / f"{output.name}.mcap")
        meta.write_text(meta.read_text(encoding="utf-8").replace(inner.name, f"{output.name}.mcap"), "utf-8")
    partial.rename(output)
    return output


def build_bag_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The ``whmr bag`` options (pass the subcommand's parser to add them there)."""
    p = parser or argparse.ArgumentParser(prog="whmr bag", description=__doc__.split("\n\n")[0])
    d = BagTopics()
    p.add_argument("--input", required=True, help="input ROS 2 bag (directory, .mcap or .db3)")
    p.add_argument("--output", required=True, help="output bag directory (mcap); must not exist")
    p.add_argument("--engine", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"))
    p.add_argument(
        "--model",
        default="",
        help="model file: .onnx, TensorRT engine or checkpoint (default: the shipped checkpoint)",
    )
    p.add_argument("--network-config", default=None, help="network config name for PyTorch weights")
    p.add_argument(
        "--body-model",
        default=None,
        help="body model file; default: the one the model records (a given one must match it)",
    )
    p.add_argument(
        "--params", default=None, help="node parameter YAML (whmr.params.yaml): pipeline/host keys"
    )
    # Input topics: None = the default name if the bag has it, else found by type (whmr_ros.bag_topics).
    p.add_argument(
        "--image", default=None, help=f"sensor_msgs/Image topic (default: {d.image} or found by type)"
    )
    p.add_argument(
        "--camera-info", default=None, help=f"CameraInfo topic (default: {d.camera_info} or by type)"
    )
    p.add_argument("--imu", default=None, help=f"sensor_msgs/Imu topic (default: {d.imu} or by type)")
    p.add_argument(
        "--detections", default=None,
        help="vision_msgs/Detection2DArray topic (default: the bag's only one, if exactly one; '' = none)",
    )  # fmt: skip
    p.add_argument(
        "--detector", default=None,
        help="person boxes for images without detections: movenet or blazepose (shipped), a YOLO .onnx "
        "file, or none (tracked boxes, then the whole image); default: the params file's, else movenet "
        "(none when a detections topic is used)",
    )  # fmt: skip
    p.add_argument(
        "--no-fit", action="store_true", help="the network's bodies alone (no fit to the 2D keypoints)"
    )
    p.add_argument("--overlay", default="", help="write an overlay image topic with this name")
    p.add_argument(
        "--copy", nargs="*", default=[], metavar="TOPIC", help="input topics to copy to the output"
    )
    p.add_argument(
        "--marker-rate", type=float, default=10.0, help="MarkerArray rate in Hz of bag time (0: none)"
    )
    p.add_argument("--no-mesh-markers", action="store_true", help="skeleton and labels only (smaller bags)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def bag_main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``whmr bag``; returns the exit status."""
    return run_from_args(build_bag_parser().parse_args(argv))


def pick_topics(input_path: str | Path, args: argparse.Namespace) -> BagTopics:
    """The input topics of ``args`` with those not given found in the bag by type; prints the picks."""
    from whmr_ros.bag_topics import select_topics

    d = BagTopics()
    roles = ("image", "camera_info", "imu", "detections")
    with open_bag(input_path, typestore()) as bag:  # a cut-short recording too
        available = {c.topic: c.msgtype for c in bag.connections}
    choice = select_topics(available, {r: getattr(args, r) for r in roles}, {r: getattr(d, r) for r in roles})
    for note in choice.notes:
        print(f"whmr bag: {note}", file=sys.stderr)
    if choice.errors:
        raise ValueError(f"{input_path}: " + "; ".join(choice.errors))
    return replace(d, **choice.topics)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the bag runner with parsed ``whmr bag`` options."""
    from whmr_core.runtime.factory import load_engine, load_topology
    from whmr_ros.params import load_params

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    # Before the minutes a model can take to load: the files a typo gets wrong.
    if not Path(args.input).exists():
        raise FileNotFoundError(f"{args.input}: input bag not found")
    if Path(args.output).exists():
        raise FileExistsError(f"{args.output}: output exists; remove it or choose another path")
    params = load_params(args.params) if args.params else None
    engine = load_engine(args.engine, args.model, threads=args.threads, config=args.network_config)
    topology = load_topology(args.body_model, engine=engine)
    topics = replace(pick_topics(args.input, args), overlay=args.overlay)
    pipeline = params.pipeline if params else PipelineConfig()
    if args.detector:  # the flag beats the params file
        det = str(args.detector)
        kind = det if det in ("movenet", "blazepose", "none") else "yolo"
        pipeline = replace(pipeline, detector=kind, detector_model=det if kind == "yolo" else "")
    if args.no_fit:
        pipeline = replace(pipeline, fit=False)
    config = BagRunConfig(
        topics=topics,
        pipeline=pipeline,
        host=params.host if params else HostConfig(),
        outputs=OutputRates(marker_rate_hz=args.marker_rate, markers_mesh=not args.no_mesh_markers),
        copy_topics=tuple(args.copy),
        progress=not args.quiet,
    )
    try:
        summary = run_bag(args.input, args.output, engine, topology, config)
    except BagRunError as e:  # says what happened to the output (kept as a valid bag, or removed)
        print(f"whmr bag: error: {e}", file=sys.stderr)
        return 1
    done = f"{summary.images} images, {summary.frames_with_output} processed, {summary.bodies} bodies"
    print(f"{done} -> {summary.output}")
    for k, v in sorted(summary.dropped.items()):
        print(f"  dropped/fallback {k}: {v} (last: {summary.last_problem.get(k, '')})")
    if summary.truncated:
        print(f"whmr bag: warning: input truncated: {summary.truncated}; processed what was readable",
              file=sys.stderr)  # fmt: skip
    if summary.interrupted:
        n = summary.frames_with_output
        print(f"whmr bag: stopped by {summary.interrupted}: the {n} processed frames are in "
              f"{summary.output} (a valid bag; a rerun replaces it)", file=sys.stderr)  # fmt: skip
        return 128 + signal.Signals[summary.interrupted].value
    if not summary.frames_with_output:
        print(f"whmr bag: error: no frame processed ({summary.no_output_reason()})", file=sys.stderr)
        return 1
    return 0

"""Run the Pipeline over a recorded ROS 2 bag without ROS: ``whmr bag --input IN --output OUT``.

Reads mcap or sqlite3 bags with rosbags' AnyReader (Image, CameraInfo, Imu, TF, optional detections),
feeds the same ``WhmrHost``/``Pipeline`` as the node, in image-stamp order, and writes an mcap bag with the
node's outputs (BodyMeshArray, BodyModelTopology, MarkerArray, TF, diagnostics, optional overlay) plus the
input topics asked for. Each image waits until the bag has been read ``lookahead_s`` past its stamp, so the
IMU readings after it (for interpolation) and its detections (often logged later) are in.

The output uses rosbag2 metadata version 9: ``ros2 bag play`` on Humble needs ``ros2 bag reindex`` first.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whmr_core.body.topology import BodyTopology
from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.engines import Engine
from whmr_core.runtime.pipeline import Pipeline
from whmr_ros.conversions import MessageError, header_stamp_ns
from whmr_ros.host import HostConfig, WhmrHost
from whmr_ros.message_kit import RosbagsKit
from whmr_ros.message_types import typestore
from whmr_ros.tf_buffer import TransformBuffer

__all__ = ["BagSummary", "BagTopics", "bag_main", "build_bag_parser", "run_bag"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BagTopics:
    """Input topics (``detections`` empty: none) and output topics (``overlay`` empty: not written)."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    imu: str = "/imu/data"
    detections: str = ""
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    bodies: str = "/whmr/bodies"
    topology: str = "/whmr/body_topology"
    markers: str = "/whmr/markers"
    out_tf: str = "/tf"
    diagnostics: str = "/diagnostics"
    overlay: str = ""


@dataclass
class BagSummary:
    images: int = 0
    frames_with_output: int = 0
    bodies: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    last_problem: dict[str, str] = field(default_factory=dict)
    copied: int = 0
    latency_ms: list[float] = field(default_factory=list)  # per processed image: pipeline wall time


def _qos(transient_local: bool = False) -> list[Any]:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    durability = QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE
    return [
        Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, durability, zero, zero,
            QosLiveliness.AUTOMATIC, zero, False)
    ]  # fmt: skip


def run_bag(
    input_path: str | Path,
    output_path: str | Path,
    engine: Engine,
    topology: BodyTopology,
    *,
    topics: BagTopics | None = None,
    pipeline_config: PipelineConfig | None = None,
    host_config: HostConfig | None = None,
    copy_topics: Sequence[str] = (),
    marker_rate_hz: float = 10.0,
    markers_mesh: bool = True,
    lookahead_s: float = 0.05,
    progress: bool = True,
    distro: str = "ROS2_JAZZY",
    max_pending: int = 64,
    on_frame: Callable[[int, Any], None] | None = None,
) -> BagSummary:
    """Process ``input_path`` (a bag directory or file) into a new mcap bag at ``output_path``.

    ``on_frame(stamp_ns, FrameResult)`` is called for every processed image (the demo's metrics)."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    topics = topics or BagTopics()
    store = typestore(distro)
    kit = RosbagsKit(store)
    tf_buffer = TransformBuffer()
    host = WhmrHost(
        Pipeline(engine, topology, pipeline_config),
        host_config or HostConfig(),
        kit,
        lookup=tf_buffer.lookup,
        warn=log.warning,
    )
    summary = BagSummary()
    output_path = Path(output_path)
    if output_path.exists():
        raise FileExistsError(f"{output_path}: output exists; remove it or choose another path")
    inputs = {topics.image, topics.camera_info, topics.imu, topics.tf, topics.tf_static, topics.detections}
    inputs.discard("")

    with AnyReader([Path(input_path)], default_typestore=store) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        if topics.image not in by_topic:
            raise ValueError(f"{input_path}: no image topic {topics.image!r}; topics: {sorted(by_topic)}")
        missing = sorted(set(copy_topics) - set(by_topic))
        if missing:
            raise ValueError(f"{input_path}: topics to copy not in the bag: {missing}")
        wanted = [c for c in reader.connections if c.topic in inputs or c.topic in copy_topics]
        writer = Writer(output_path, version=9, storage_plugin=StoragePlugin.MCAP)
        with writer:

            def output(topic: str, msgtype: str, latched: bool = False) -> Any:
                return writer.add_connection(
                    topic, msgtype, typestore=store, offered_qos_profiles=_qos(latched)
                )

            conn = {
                "bodies": output(topics.bodies, "whmr_ros/msg/BodyMeshArray"),
                "topology": output(topics.topology, "whmr_ros/msg/BodyModelTopology", latched=True),
                "markers": output(topics.markers, "visualization_msgs/msg/MarkerArray"),
                "diagnostics": output(topics.diagnostics, "diagnostic_msgs/msg/DiagnosticArray"),
            }
            copied = {}
            for t in copy_topics:
                c = by_topic[t]
                copied[t] = writer.add_connection(
                    t, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest, offered_qos_profiles=_qos()
                )
            # /tf may also be copied from the input: then our transforms share that connection.
            if topics.out_tf in copied:
                conn["tf"] = copied[topics.out_tf]
            else:
                conn["tf"] = output(topics.out_tf, "tf2_msgs/msg/TFMessage")
            if topics.overlay:
                conn["overlay"] = output(topics.overlay, "sensor_msgs/msg/Image")

            def write(name: str, msg: Any, log_time: int) -> None:
                writer.write(conn[name], log_time, store.serialize_cdr(msg, msg.__msgtype__))

            pending: list[tuple[int, int, int, Any]] = []  # (stamp, sequence, log time, image message)
            state: dict[str, Any] = {"topology": False, "marker_due": None, "diag_ns": -(10**30)}
            marker_period = int(1e9 / marker_rate_hz) if marker_rate_hz > 0 else None

            def flush(until_ns: int | None) -> None:
                lookahead = int(lookahead_s * 1e9)
                while pending and (until_ns is None or pending[0][0] + lookahead <= until_ns):
                    stamp, _, log_time, image = heapq.heappop(pending)
                    prepared = host.on_image(image)
                    if prepared is None:
                        continue
                    if not state["topology"]:
                        write("topology", host.topology(stamp), log_time)
                        state["topology"] = True
                    t0 = time.perf_counter()
                    out = host.process(prepared)
                    if out is None:
                        continue
                    summary.latency_ms.append((time.perf_counter() - t0) * 1000)
                    if on_frame is not None:
                        on_frame(stamp, out.result)
                    summary.frames_with_output += 1
                    summary.bodies += len(out.result.persons)
                    write("bodies", out.bodies, log_time)
                    write("tf", out.tf, log_time)
                    due = state["marker_due"]
                    if marker_period is not None and (due is None or stamp >= due):
                        write("markers", host.markers(out, mesh=markers_mesh), log_time)
                        # Next one due a period after this one's slot (not after this frame), so a 30 Hz
                        # camera gives the asked rate rather than every 4th frame for 10 Hz.
                        nxt = (stamp if due is None else due) + marker_period
                        state["marker_due"] = nxt if nxt > stamp else stamp + marker_period
                    if "overlay" in conn:
                        write("overlay", host.overlay(out, prepared), log_time)
                    if stamp - state["diag_ns"] >= 1_000_000_000:
                        write("diagnostics", host.diagnostics(stamp), log_time)
                        state["diag_ns"] = stamp

            messages = reader.messages(connections=wanted)
            if progress:
                from tqdm import tqdm

                messages = tqdm(messages, total=sum(c.msgcount for c in wanted), unit="msg", desc="whmr bag")
            seq = 0
            for c, log_time, raw in messages:
                if c.topic in copied:
                    writer.write(copied[c.topic], log_time, raw)
                    summary.copied += 1
                if c.topic not in inputs:
                    continue
                try:
                    msg = reader.deserialize(raw, c.msgtype)
                except Exception as e:  # a corrupt record must not end the run
                    host.problem(c.topic, f"undecodable {c.msgtype}: {e}")
                    continue
                if c.topic == topics.image:
                    summary.images += 1
                    try:  # queued raw: K, IMU and detections logged just after it are then in
                        heapq.heappush(pending, (header_stamp_ns(msg), seq, log_time, msg))
                        seq += 1
                    except MessageError:
                        host.on_image(msg)  # drops it, counted, with the reason
                elif c.topic == topics.camera_info:
                    host.on_camera_info(msg)
                elif c.topic == topics.imu:
                    host.on_imu(msg)
                elif c.topic == topics.detections:
                    host.on_detections(msg)
                elif c.topic in (topics.tf, topics.tf_static):
                    for why in tf_buffer.add_message(msg, static=c.topic == topics.tf_static):
                        host.problem("tf", f"transform dropped: {why}")
                # Read position in the image clock: stamps of stamped messages (TF has none).
                try:
                    flush(header_stamp_ns(msg))
                except MessageError:
                    pass
                while len(pending) > max_pending:  # stamps that never catch up must not fill memory
                    flush(pending[0][0] + int(lookahead_s * 1e9))
            flush(None)
    summary.dropped = dict(host.dropped)
    summary.last_problem = dict(host.last_problem)
    return summary


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
    p.add_argument("--body-model", default=None, help="body model file (default: the shipped free model)")
    p.add_argument(
        "--params", default=None, help="node parameter YAML (whmr.params.yaml): pipeline/host keys"
    )
    p.add_argument("--image", default=d.image)
    p.add_argument("--camera-info", default=d.camera_info)
    p.add_argument("--imu", default=d.imu)
    p.add_argument("--detections", default=d.detections, help="vision_msgs/Detection2DArray topic, if any")
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


def run_from_args(args: argparse.Namespace) -> int:
    """Run the bag runner with parsed ``whmr bag`` options."""
    from whmr_core.runtime.factory import load_engine, load_topology
    from whmr_ros.params import load_params

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    params = load_params(args.params) if args.params else None
    engine = load_engine(args.engine, args.model, threads=args.threads, config=args.network_config)
    topology = load_topology(args.body_model)
    topics = BagTopics(
        image=args.image,
        camera_info=args.camera_info,
        imu=args.imu,
        detections=args.detections,
        overlay=args.overlay,
    )
    summary = run_bag(
        args.input,
        args.output,
        engine,
        topology,
        topics=topics,
        pipeline_config=params.pipeline if params else None,
        host_config=params.host if params else None,
        copy_topics=args.copy,
        marker_rate_hz=args.marker_rate,
        markers_mesh=not args.no_mesh_markers,
        progress=not args.quiet,
    )
    done = f"{summary.images} images, {summary.frames_with_output} processed, {summary.bodies} bodies"
    print(f"{done} -> {args.output}")
    for k, v in sorted(summary.dropped.items()):
        print(f"  dropped/fallback {k}: {v} (last: {summary.last_problem.get(k, '')})")
    return 0

#!/usr/bin/env python3
"""Throughput and latency of the ROS 2 node with people in view (a benchmark, not a test).

Builds the package with colcon into each ``--ws`` (incremental), starts the installed ``whmr_node`` as its own
process (shipped checkpoint, default params file plus ``--param``), and plays a rendered sequence bag from
``whmr synth --sequence`` (640x480, one walker or several; rendered once into ``--cache``) to it over DDS:
the camera at 15 or 30 Hz (every 2nd or every frame of the 30 fps bag), CameraInfo with each image, the
bag's 200 Hz IMU, its detections (with ``--boxes detections``, the node's ``use_detections``) and its static
camera <- IMU transform, all stamped with the wall clock at publication, looping the bag. Each case reports:
images answered (a ``~/bodies`` with that stamp), latency from publication to receipt (p50/p90, p50 per
quarter of the run: it must not grow), bodies per answer, the node's CPU, the node's own per-stage times
(from its ``/diagnostics``: stamp -> taken by its worker, IMU/CameraInfo/detections batch, convert,
Pipeline, message build, publish, markers), and with ``+rviz`` a subscriber to ``~/markers`` as RViz has
(reliable, depth 10).

Cases: ``N@HZ`` (N walkers at HZ, e.g. ``1@15``, ``3@30``), ``empty@HZ`` (a flat grey image: nobody to
find, so the body network never runs), ``+rviz`` appended for the marker subscriber. ``--variant LABEL=WS``
runs the same cases on another workspace (e.g. one built from an older commit: A/B in one run), and
``--reps`` alternates the variants, so both see the same machine load.

    source ../shared/ros2/activate
    .venv/bin/python scripts/bench_ros.py --cases 1@15,1@30+rviz --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))
STAGES = ("wait", "inputs", "convert", "detect", "pipeline", "build", "publish", "markers")
BAG_TOPICS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "imu": "/imu/data",
    "detections": "/detections",
    "tf_static": "/tf_static",
}


@dataclass
class Bag:
    """A sequence bag as rclpy messages: per frame (image, camera_info, detections), IMU by bag time."""

    frames: list[tuple[float, object, object, object]]  # (seconds from start, image, info, detections)
    imu: list[tuple[float, object]]
    tf_static: object
    duration_s: float
    rgb: list[np.ndarray] = field(repr=False, default_factory=list)
    K: np.ndarray | None = None


def render_bag(cache: Path, walkers: int, seconds: float) -> Path:
    path = cache / f"bench-{walkers}p-640x480-{seconds:g}s.mcap"
    if not path.is_file():
        from whmr_core.data.sequence import SequenceConfig
        from whmr_ros.synth_bag import write_sequence_bag

        cfg = SequenceConfig(image_wh=(640, 480), walkers=walkers)
        write_sequence_bag(path, seconds=seconds, seed=1, config=cfg)
    return path


def load_bag(path: Path, empty: bool = False) -> Bag:
    """The bag's messages deserialized by rclpy (the CDR is the same); ``empty``: flat grey images."""
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from rosidl_runtime_py.utilities import get_message

    from whmr_ros.conversions import image_to_rgb

    by_topic: dict[str, list[tuple[int, object]]] = {k: [] for k in BAG_TOPICS}
    names = {v: k for k, v in BAG_TOPICS.items()}
    with Reader(path) as reader:
        for conn, t, raw in reader.messages():
            if conn.topic in names:
                by_topic[names[conn.topic]].append((t, deserialize_message(raw, get_message(conn.msgtype))))
    t0 = by_topic["image"][0][0]
    frames, rgbs = [], []
    for (t, img), (_, info), (_, det) in zip(
        by_topic["image"], by_topic["camera_info"], by_topic["detections"], strict=True
    ):
        if empty:
            img.data = bytes([128]) * len(img.data)
            det.detections = []
        frames.append(((t - t0) * 1e-9, img, info, det))
        rgbs.append(image_to_rgb(img))
    imu = [((t - t0) * 1e-9, m) for t, m in by_topic["imu"]]
    duration = len(frames) / 30.0
    K = np.array(by_topic["camera_info"][0][1].k).reshape(3, 3)
    return Bag(frames, imu, by_topic["tf_static"][0][1], duration, rgbs, K)


def _stamp(header, ns: int) -> None:
    header.stamp.sec, header.stamp.nanosec = divmod(ns, 1_000_000_000)


def build(ws: Path, repo: Path) -> dict[str, str]:
    from ros_helpers import build_workspace

    return build_workspace(ws, repo).env


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (/proc, no psutil)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """The robot side and the observer: publishers, ~/bodies, ~/markers and /diagnostics subscribers."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, Imu
        from tf2_msgs.msg import TFMessage
        from vision_msgs.msg import Detection2DArray
        from visualization_msgs.msg import MarkerArray
        from whmr_ros.msg import BodyMeshArray

        self.node = rclpy.create_node("whmr_bench")
        n, sensor = self.node, qos_profile_sensor_data
        self.p_img = n.create_publisher(Image, "/bench/image", sensor)
        self.p_info = n.create_publisher(CameraInfo, "/bench/camera_info", sensor)
        self.p_imu = n.create_publisher(Imu, "/bench/imu", sensor)
        self.p_det = n.create_publisher(Detection2DArray, "/bench/detections", sensor)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.p_tf = n.create_publisher(TFMessage, "/tf_static", latched)
        self.lock = threading.Lock()
        self.received: dict[int, tuple[float, int]] = {}  # stamp -> (receipt wall time, bodies)
        self.markers = 0
        self.diagnostics: dict[str, str] = {}
        n.create_subscription(BodyMeshArray, "/whmr/bodies", self._on_bodies, 50)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._marker_type = MarkerArray
        self._marker_sub = None
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(n)
        self._spin = threading.Thread(target=self.ex.spin, daemon=True)
        self._spin.start()

    def _on_bodies(self, m) -> None:
        now = time.time()
        with self.lock:
            self.received.setdefault(
                m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, (now, len(m.bodies))
            )

    def _on_diagnostics(self, m) -> None:
        for s in m.status:
            if s.name.endswith(": pipeline"):
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in s.values}

    def _on_markers(self, m) -> None:
        with self.lock:
            self.markers += 1

    def rviz(self, on: bool) -> None:
        if on and self._marker_sub is None:
            self._marker_sub = self.node.create_subscription(
                self._marker_type, "/whmr/markers", self._on_markers, 10
            )
        elif not on and self._marker_sub is not None:
            self.node.destroy_subscription(self._marker_sub)
            self._marker_sub = None

    def stage_totals(self) -> tuple[int, dict[str, float]]:
        with self.lock:
            d = dict(self.diagnostics)
        totals = {s: float(d.get(f"stage_{s}_total_s", "nan")) for s in STAGES}
        return int(d.get("frames_processed", 0)), totals

    def play(
        self, bag: Bag, rate: float, seconds: float, boxes: str, start_wall: float | None = None
    ) -> list[int]:
        """Publish the looping bag in real time for ``seconds``; returns the image stamps sent."""
        step = round(30 / rate)
        start = time.monotonic() if start_wall is None else start_wall
        sent: list[int] = []
        imu_i, frame_i = 0, 0
        n_imu, n_frames = len(bag.imu), len(bag.frames)
        while True:
            t = time.monotonic() - start
            if t >= seconds:
                return sent
            loop_imu, k_imu = divmod(imu_i, n_imu)
            t_imu = loop_imu * bag.duration_s + bag.imu[k_imu][0]
            loop_f, k_f = divmod(frame_i * step, n_frames)
            t_img = loop_f * bag.duration_s + bag.frames[k_f][0]
            if t_imu <= t_img:
                if t_imu > t:
                    time.sleep(t_imu - t)
                msg = bag.imu[k_imu][1]
                _stamp(msg.header, time.time_ns())
                self.p_imu.publish(msg)
                imu_i += 1
            else:
                if t_img > t:
                    time.sleep(t_img - t)
                _, img, info, det = bag.frames[k_f]
                s = time.time_ns()
                for m in (img, info, det):
                    _stamp(m.header, s)
                for d in det.detections:
                    _stamp(d.header, s)
                if boxes == "detections":
                    self.p_det.publish(det)
                self.p_info.publish(info)
                self.p_img.publish(img)
                sent.append(s)
                frame_i += 1


def start_node(ws: Path, env: dict[str, str], params: list[str], boxes: str) -> subprocess.Popen:
    cmd = [str(ws / "install/whmr_ros/lib/whmr_ros/whmr_node"), "--ros-args",
           "-r", "image:=/bench/image", "-r", "camera_info:=/bench/camera_info", "-r", "imu:=/bench/imu",
           "-r", "detections:=/bench/detections",
           "--params-file", str(ws / "install/whmr_ros/share/whmr_ros/config/whmr.params.yaml"),
           "-p", f"use_detections:={'true' if boxes == 'detections' else 'false'}"]  # fmt: skip
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, env=env, start_new_session=True, cwd=ws, stdout=subprocess.DEVNULL)


def warm_up(client: Client, bag: Bag, boxes: str) -> None:
    """Until the node answers (engine loaded, first inferences done)."""

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        client.p_tf.publish(bag.tf_static)
        sent = client.play(bag, 15, 1.0, boxes)
        time.sleep(0.5)
        with client.lock:
            if sum(s in client.received for s in sent) >= len(sent) // 2:
                return
    raise RuntimeError("the node never answered")


def run_case(client: Client, pid: int, bag: Bag, rate: float, seconds: float, boxes: str, rviz: bool) -> dict:
    client.rviz(rviz)
    time.sleep(1.0)  # discovery of the marker subscription; the node finishes the previous frames
    with client.lock:
        client.received.clear()
        client.markers = 0
    n0, tot0 = client.stage_totals()
    cpu0, wall0 = _cpu_s(pid), time.monotonic()
    load0 = os.getloadavg()[0]
    sent = client.play(bag, rate, seconds, boxes)
    time.sleep(1.5)  # the last answers; then one more diagnostics period
    cpu1, wall1 = _cpu_s(pid), time.monotonic()
    time.sleep(1.0)
    n1, tot1 = client.stage_totals()
    client.rviz(False)
    with client.lock:
        got = dict(client.received)
        markers = client.markers
    answered = [s for s in sent if s in got]
    lat = np.array([(got[s][0] - s * 1e-9) * 1e3 for s in answered])
    bodies = [got[s][1] for s in answered]
    quarters = [float(np.median(q)) for q in np.array_split(lat, 4) if len(q)] if len(lat) else []
    frames = max(n1 - n0, 1)
    stages = {s: round((tot1[s] - tot0[s]) / frames * 1e3, 1) for s in STAGES}
    pct = lambda q: round(float(np.percentile(lat, q)), 1) if len(lat) else None  # noqa: E731
    return {
        "sent": len(sent),
        "answered": len(answered),
        "answered_pct": round(100 * len(answered) / max(len(sent), 1), 1),
        "latency_ms": {"p50": pct(50), "p90": pct(90), "max": pct(100)},
        "p50_by_quarter_ms": [round(q, 1) for q in quarters],
        "bodies_per_answer": round(float(np.mean(bodies)), 2) if bodies else 0.0,
        "node_cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "node_cpu_ms_per_answer": round(1e3 * (cpu1 - cpu0) / max(len(answered), 1), 1),
        "node_stage_ms": stages,
        "marker_arrays_received": markers,
        "load_avg_1min": round((load0 + os.getloadavg()[0]) / 2, 2),
    }


def _pipeline_settings(params: list[str]) -> dict:
    """``pipeline.NAME:=VALUE`` node parameters as PipelineConfig settings (YAML scalars, as ROS has them)."""
    import yaml

    out = {}
    for p in params:
        name, _, value = p.partition(":=")
        if name.startswith("pipeline."):
            out[name.removeprefix("pipeline.")] = yaml.safe_load(value)
    return out


def pipeline_alone(bag: Bag, boxes: str, threads: int, params: list[str], n: int = 40) -> float:
    """The Pipeline's median time per frame on the bag's frames (K, the truth's gravity, its boxes)."""
    from whmr_core.gravity import GravityEstimate
    from whmr_core.runtime.config import PipelineConfig
    from whmr_core.runtime.factory import load_engine, load_topology
    from whmr_core.runtime.frames import Detections
    from whmr_core.runtime.pipeline import Frame, Pipeline

    settings = _pipeline_settings(params)
    if boxes == "detections":
        settings.setdefault("detector", "none")  # what the node does with a detections topic
    cfg = PipelineConfig.from_mapping(settings)
    engine = load_engine("auto", "", threads=threads or None)
    pipe = Pipeline(engine, load_topology(engine=engine), cfg)
    times = []
    g = GravityEstimate(np.array([0.0, 1.0, 0.0]), "parameter")
    for k in range(n):
        _, _, _, det = bag.frames[k % len(bag.frames)]
        boxes_xyxy = [
            [d.bbox.center.position.x - d.bbox.size_x / 2, d.bbox.center.position.y - d.bbox.size_y / 2,
             d.bbox.center.position.x + d.bbox.size_x / 2, d.bbox.center.position.y + d.bbox.size_y / 2]
            for d in det.detections
        ]  # fmt: skip
        dets = Detections.of(np.array(boxes_xyxy).reshape(-1, 4)) if boxes == "detections" else None
        frame = Frame(
            bag.rgb[k % len(bag.rgb)], 1_000_000_000 + k * 33_333_333, K=bag.K, gravity=g, detections=dets
        )
        t0 = time.perf_counter()
        pipe.process(frame)
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times[5:]) * 1e3), 1)


def parse_case(case: str) -> tuple[str, float, bool]:
    rviz = case.endswith("+rviz")
    who, hz = case.removesuffix("+rviz").split("@")
    return who, float(hz), rviz


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="empty@30,1@15,1@30,3@15,3@30,1@15+rviz,1@30+rviz,3@15+rviz")
    ap.add_argument("--seconds", type=float, default=20.0, help="per case")
    ap.add_argument("--boxes", choices=("detections", "detector"), default="detections",
                    help="the bag's detections (use_detections) or the node's built-in detector")  # fmt: skip
    ap.add_argument("--param", action="append", default=[], help="node parameter name:=value (repeatable)")
    ap.add_argument("--ws", default="/tmp/whmr_bench_ws", help="workspace of this checkout")
    variant_help = (
        "LABEL=WS[:REPO][@NAME:=VALUE,...]: also a workspace built from REPO (default: WS/src/whmr)"
    )
    ap.add_argument("--variant", action="append", default=[], help=variant_help)
    ap.add_argument("--skip-this", action="store_true", help="run only the --variant workspaces")
    ap.add_argument("--reps", type=int, default=1, help="alternate the variants this many times")
    ap.add_argument("--cache", default="/tmp/whmr_bench_bags")
    ap.add_argument("--no-pipeline-alone", action="store_true")
    ap.add_argument("--json", default="", help="also write the report here")
    ap.add_argument(
        "--domain", type=int, default=None, help="ROS_DOMAIN_ID (default from the pid): for an outside client"
    )
    args = ap.parse_args()

    cases = [parse_case(c) for c in args.cases.split(",")]
    variants = [("this", Path(args.ws), ROOT, [])]
    for v in args.variant:
        label, rest = v.split("=", 1)
        rest, _, extra = rest.partition("@")
        ws, _, repo = rest.partition(":")
        params = [p for p in extra.split(",") if p]
        variants.append((label, Path(ws), Path(repo) if repo else Path(ws) / "src" / "whmr", params))
    envs: dict[Path, dict[str, str]] = {}
    for _, ws, repo, _ in variants:
        if ws not in envs:
            envs[ws] = build(ws, repo)

    from ros_helpers import Workspace, use_built_messages

    use_built_messages(Workspace(Path(args.ws), Path(args.ws) / "install/whmr_ros", envs[Path(args.ws)]))
    import rclpy

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    walkers = sorted(
        {int(w) for w, _, _ in cases if w != "empty"}
        | ({1} if any(w == "empty" for w, _, _ in cases) else set())
    )
    bags = {str(w): load_bag(render_bag(cache, w, 2.0)) for w in walkers}
    if any(w == "empty" for w, _, _ in cases):
        bags["empty"] = load_bag(render_bag(cache, 1, 2.0), empty=True)

    domain = str(args.domain if args.domain is not None else 70 + os.getpid() % 10)
    os.environ["ROS_DOMAIN_ID"] = domain
    rclpy.init()
    client = Client()
    report: dict = {"boxes": args.boxes, "params": args.param, "seconds": args.seconds, "runs": []}
    for rep in range(args.reps):
        for label, ws, _, extra in variants[1:] if args.skip_this else variants:
            env = dict(envs[ws], ROS_DOMAIN_ID=domain)
            proc = start_node(ws, env, args.param + extra, args.boxes)
            try:
                warm_up(client, bags[next(iter(bags))], args.boxes)
                for who, hz, rviz in cases:
                    r = run_case(client, proc.pid, bags[who], hz, args.seconds, args.boxes, rviz)
                    name = f"{who}@{hz:g}" + ("+rviz" if rviz else "")
                    row = {"variant": label, "rep": rep, "case": name, **r}
                    report["runs"].append(row)
                    print(json.dumps(row), flush=True)
            finally:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    threads = next((int(p.split(":=")[1]) for p in args.param if p.startswith("threads:=")), 0)
    if not args.no_pipeline_alone:
        report["pipeline_alone_ms"] = {
            w: pipeline_alone(b, args.boxes, threads, args.param) for w, b in bags.items()
        }
        print(json.dumps({"pipeline_alone_ms": report["pipeline_alone_ms"]}), flush=True)
    report["load_average_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    client.ex.shutdown()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

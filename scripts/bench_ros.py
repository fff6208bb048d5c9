#!/usr/bin/env python3
"""Throughput and latency of the ROS 2 node (a benchmark, not a test): camera + IMU in, ``~/bodies`` out.

Builds the package with colcon into ``--ws`` (incremental), starts the installed ``whmr_node`` as its own
process on the shipped checkpoint (default params file), then publishes a ``--rate`` Hz ``--width`` x
``--height`` rgb8 camera with CameraInfo, a 200 Hz IMU and the static camera <- IMU transform for
``--seconds``, and reports: images answered, output rate, latency from the image stamp to the receipt of
its ``~/bodies`` (p50/p90/max, and per quarter of the run, to show it does not grow), the node's
queue drops and CPU use, and the Pipeline's own time per frame in this process for comparison.

    source ../shared/ros2/activate && .venv/bin/python scripts/bench_ros.py --rate 30 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W_CAM = "bench_cam_optical"


def build(ws: Path) -> dict[str, str]:
    (ws / "src").mkdir(parents=True, exist_ok=True)
    if not (ws / "src" / "whmr").is_symlink():
        (ws / "src" / "whmr").symlink_to(ROOT)
    venv = Path(sys.executable).parent
    env = dict(os.environ, VIRTUAL_ENV=str(venv.parent), PATH=f"{venv}:{os.environ['PATH']}")
    subprocess.run(["colcon", "build", "--packages-select", "whmr_ros"], cwd=ws, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    dump = subprocess.run(["bash", "-c", f"source {ws}/install/setup.bash && env -0"], env=env,
                          capture_output=True, check=True)  # fmt: skip
    return dict(kv.split("=", 1) for kv in dump.stdout.decode().split("\0") if "=" in kv)


def pipeline_ms(width: int, height: int, n: int = 30) -> float:
    """The Pipeline's own median time per frame (engine as the node loads it), in this process."""
    from whmr_core.gravity import GravityEstimate
    from whmr_core.runtime.factory import load_engine, load_topology
    from whmr_core.runtime.pipeline import Frame, Pipeline

    pipe = Pipeline(load_engine("auto", ""), load_topology(None))
    rgb = np.full((height, width, 3), 100, np.uint8)
    times = []
    for k in range(n):
        g = GravityEstimate(np.array([0.0, 1.0, 0.0]), "parameter")
        t0 = time.perf_counter()
        pipe.process(Frame(rgb, 1_000_000_000 + k * 33_000_000, gravity=g))
        times.append(time.perf_counter() - t0)
    return float(np.median(times[5:]) * 1e3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ws", default="/tmp/whmr_bench_ws")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--json", default="", help="also write the report here")
    args = ap.parse_args()

    import psutil
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, Imu
    from tf2_msgs.msg import TFMessage

    env = build(Path(args.ws))
    sys.path.insert(0, str(ROOT / "test"))
    from whmr_fakes import camera_info_msg, imu_msg, static_tf_msg

    from whmr_ros.conversions import numpy_to_image
    from whmr_ros.message_kit import RclpyKit

    domain = str(1 + (os.getpid() + 50) % 100)
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["LD_LIBRARY_PATH"] = env.get("LD_LIBRARY_PATH", "")
    node_proc = subprocess.Popen(
        [f"{args.ws}/install/whmr_ros/lib/whmr_ros/whmr_node", "--ros-args", "-r", "image:=/bench/image",
         "-r", "camera_info:=/bench/camera_info", "-r", "imu:=/bench/imu", "--params-file",
         f"{args.ws}/install/whmr_ros/share/whmr_ros/config/whmr.params.yaml"],
        env=dict(env, ROS_DOMAIN_ID=domain), start_new_session=True, cwd=args.ws,
    )  # fmt: skip
    import ctypes
    import glob

    todo = sorted(glob.glob(f"{args.ws}/install/whmr_ros/lib/lib*.so"))
    while todo:
        left = [f for f in todo if not _try_load(ctypes, f)]
        if len(left) == len(todo):
            raise OSError(left)
        todo = left
    import whmr_ros

    whmr_ros.__path__.append(f"{args.ws}/install/whmr_ros/lib/python3.11/site-packages/whmr_ros")
    from whmr_ros.msg import BodyMeshArray

    rclpy.init()
    node = rclpy.create_node("whmr_bench")
    kit = RclpyKit()
    sensor = qos_profile_sensor_data
    p_img = node.create_publisher(Image, "/bench/image", sensor)
    p_info = node.create_publisher(CameraInfo, "/bench/camera_info", sensor)
    p_imu = node.create_publisher(Imu, "/bench/imu", sensor)
    p_tf = node.create_publisher(
        TFMessage, "/tf_static", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    )
    received: dict[int, float] = {}

    def on_bodies(m) -> None:
        received.setdefault(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, time.time())

    node.create_subscription(BodyMeshArray, "/whmr/bodies", on_bodies, 50)
    K = np.array([[500.0, 0, args.width / 2], [0, 500.0, args.height / 2], [0, 0, 1]])
    rgb = (np.random.default_rng(0).integers(0, 255, (args.height, args.width, 3))).astype(np.uint8)
    t_wait = time.monotonic()
    while p_img.get_subscription_count() == 0 and time.monotonic() - t_wait < 120:
        rclpy.spin_once(node, timeout_sec=0.1)
    # Warm-up: until the node answers (engine loaded, first inference done).
    p_tf.publish(static_tf_msg(kit, time.time_ns(), "imu", W_CAM, (-0.5, 0.5, -0.5, 0.5)))
    while not received and time.monotonic() - t_wait < 180:
        s = time.time_ns()
        p_imu.publish(imu_msg(kit, s, quat_xyzw=(0.0, 0.0, 0.0, 1.0), frame_id="imu"))
        p_img.publish(numpy_to_image(rgb, "rgb8", s, W_CAM, kit.types, data_factory=kit.uint8s))
        rclpy.spin_once(node, timeout_sec=0.3)
    received.clear()
    proc = psutil.Process(node_proc.pid)
    cpu0, wall0 = proc.cpu_times(), time.monotonic()
    sent: list[int] = []
    start = time.monotonic()
    next_img, next_imu = start, start
    while time.monotonic() - start < args.seconds:
        now = time.monotonic()
        if now >= next_imu:
            p_imu.publish(imu_msg(kit, time.time_ns(), quat_xyzw=(0.0, 0.0, 0.0, 1.0), frame_id="imu"))
            next_imu += 1 / 200
        if now >= next_img:
            s = time.time_ns()
            p_info.publish(camera_info_msg(kit, K, (args.width, args.height), s, W_CAM))
            p_img.publish(numpy_to_image(rgb, "rgb8", s, W_CAM, kit.types, data_factory=kit.uint8s))
            sent.append(s)
            next_img += 1 / args.rate
        rclpy.spin_once(node, timeout_sec=max(0.0, min(next_img, next_imu) - time.monotonic()))
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    cpu1, wall1 = proc.cpu_times(), time.monotonic()
    os.killpg(node_proc.pid, signal.SIGINT)
    node_proc.wait(timeout=20)

    answered = [s for s in sent if s in received]
    lat = np.array([(received[s] - s * 1e-9) * 1e3 for s in answered])
    quarters = [np.median(q) if len(q) else float("nan") for q in np.array_split(lat, 4)] if len(lat) else []
    report = {
        "camera_hz": args.rate,
        "image": f"{args.width}x{args.height}",
        "seconds": args.seconds,
        "images_sent": len(sent),
        "images_answered": len(answered),
        "answered_fraction": len(answered) / max(len(sent), 1),
        "output_hz": len(answered) / args.seconds,
        "latency_ms": {
            k: float(np.percentile(lat, q)) if len(lat) else None
            for k, q in (("p50", 50), ("p90", 90), ("max", 100))
        },
        "latency_p50_by_quarter_ms": [round(float(q), 1) for q in quarters],
        "dropped": len(sent) - len(answered),
        "node_cpu_percent": 100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (wall1 - wall0),
        "pipeline_ms_per_frame_here": pipeline_ms(args.width, args.height),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _try_load(ctypes, f: str) -> bool:
    try:
        ctypes.CDLL(f, mode=ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())

"""``whmr demo``: the main job on the embedded default, on a machine with no GPU, no ROS and no SMPL.

1. makes a sample ROS 2 bag: a person walking in front of a tilted, moving camera (30 Hz images,
   CameraInfo, 200 Hz IMU, /tf_static, simulated detector boxes, exact ground truth);
2. runs the bag runner on the best available engine (TensorRT on a GPU, else ONNX Runtime) with the
   shipped checkpoint and the shipped free body model;
3. writes the output bag, an overlay GIF, a side view of the world-frame meshes on the ground plane
   and a latency plot, and prints frames, persons, FPS, latency percentiles and, since the ground
   truth is known, MPJPE / PA-MPJPE / W-MPJPE.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 300 * 1024 * 1024  # bags, GIF and ONNX of a 4 s demo take ~100 MB


def _check_output(out: Path) -> str | None:
    """Why ``out`` cannot take the demo's files, or None."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create output directory {out}: {exc}. Pass --out with a writable folder."
    try:
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as exc:
        return f"output directory {out} is not writable: {exc}. Pass --out with a writable folder."
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        return (
            f"only {free / 2**20:.0f} MiB free under {out}; the demo needs about "
            f"{MIN_FREE_BYTES / 2**20:.0f} MiB. Free some space or pass --out elsewhere."
        )
    return None


def _ground_truth(seq: Any) -> dict[int, Any]:
    """Stamp -> the (single) ground-truth person of that frame."""
    return {int(s): scene.people[0] for s, scene in zip(seq.frame_stamps_ns, seq.scenes, strict=True)}


def _metrics(results: dict[int, Any], truth: dict[int, Any]) -> dict[str, float]:
    import torch

    from whmr_core import metrics as M
    from whmr_core.geometry import GRAVITY_FROM_G

    cam_p, cam_t, w_p, w_t = [], [], [], []
    for stamp, res in results.items():
        gt = truth.get(stamp)
        if gt is None or not res.persons:
            continue
        person = max(res.persons, key=lambda p: p.score)
        cam_p.append(person.joints_camera)
        cam_t.append(gt.joints_cam)
        w_p.append(person.joints_gravity)
        w_t.append(np.asarray(gt.joints_world) @ GRAVITY_FROM_G.T)
    if not cam_p:
        return {}

    def t(x: list) -> torch.Tensor:
        return torch.as_tensor(np.stack(x), dtype=torch.float64)

    return {
        "mpjpe_mm": float(M.mpjpe(t(cam_p), t(cam_t)).mean() * 1000),
        "pa_mpjpe_mm": float(M.pa_mpjpe(t(cam_p), t(cam_t)).mean() * 1000),
        "w_mpjpe_mm": float(M.w_mpjpe(t(w_p), t(w_t)).mean() * 1000),
        "frames_scored": len(cam_p),
    }


def _images(bag: Path, topic: str) -> dict[int, np.ndarray]:
    from rosbags.highlevel import AnyReader

    from whmr_ros.conversions import header_stamp_ns, image_to_rgb

    frames = {}
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        for c, _, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, c.msgtype)
            frames[header_stamp_ns(msg)] = image_to_rgb(msg)
    return frames


def _pictures(
    out: Path, results: dict[int, Any], images: dict[int, np.ndarray], faces: np.ndarray, latency: list[float]
) -> list[str]:
    import cv2
    from PIL import Image

    from whmr_core.render import Mesh, PinholeCamera, Renderer, overlay_meshes, render_world_view

    renderer = Renderer()
    stamps = sorted(s for s in results if s in images)
    gif = []
    for s in stamps[::2]:
        res, img = results[s], images[s]
        meshes = [Mesh(p.vertices_camera, faces, color=(1.0, 0.55, 0.1)) for p in res.persons]
        if res.K is not None:
            cam = PinholeCamera.from_K(res.K, img.shape[1], img.shape[0])
        else:
            p = res.persons[0] if res.persons else None
            f = p.focal_px if p else float(np.hypot(*img.shape[:2]))
            cam = PinholeCamera(f, f, img.shape[1] / 2, img.shape[0] / 2, img.shape[1], img.shape[0])
        frame = overlay_meshes(img, meshes, cam, alpha=0.7, renderer=renderer) if meshes else img
        gif.append(Image.fromarray(np.concatenate([img, frame], axis=1)))  # input | meshes over it
    files = []
    if gif:
        gif[0].save(out / "overlay.gif", save_all=True, append_images=gif[1:], duration=66, loop=0)
        files.append("overlay.gif")
    # World view: a few frames' gravity-frame bodies (ROS axes, z up), back in G for the renderer.
    from whmr_core.geometry import GRAVITY_FROM_G

    picks = stamps[:: max(1, len(stamps) // 5)][:5]
    world = []
    colours = [(0.9, 0.4, 0.3), (0.9, 0.7, 0.2), (0.4, 0.8, 0.4), (0.3, 0.6, 0.9), (0.6, 0.4, 0.9)]
    for k, s in enumerate(picks):
        for p in results[s].persons:
            verts_g = p.vertices_gravity @ GRAVITY_FROM_G  # ROS gravity axes -> G (y down)
            world.append(Mesh(verts_g, faces, color=colours[k % len(colours)]))
    if world:
        # Meshes are given in G with the camera at the origin: a level camera's gravity is +y.
        view = render_world_view(world, np.array([0.0, 1.0, 0.0]), width=800, height=480, renderer=renderer)
        Image.fromarray(view).save(out / "world_view.png")
        files.append("world_view.png")
    if latency:
        h, w, pad = 240, 640, 40
        plot = np.full((h, w, 3), 255, np.uint8)
        top = max(latency) * 1.1
        pts = [
            (pad + int(i * (w - 2 * pad) / max(1, len(latency) - 1)), h - pad - int(v / top * (h - 2 * pad)))
            for i, v in enumerate(latency)
        ]
        cv2.polylines(plot, [np.array(pts, np.int32)], False, (40, 90, 200), 2)
        cv2.line(plot, (pad, h - pad), (w - pad, h - pad), (0, 0, 0), 1)
        cv2.line(plot, (pad, pad), (pad, h - pad), (0, 0, 0), 1)
        cv2.putText(
            plot,
            f"per-frame latency (ms), max {max(latency):.0f}, median {np.median(latency):.0f}",
            (pad, 25),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 0),
            1,
        )
        cv2.putText(plot, "0", (10, h - pad), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(plot, f"{top:.0f}", (5, pad + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(plot, "frame", (w - pad - 40, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        Image.fromarray(plot).save(out / "latency.png")
        files.append("latency.png")
    renderer.release()
    return files


def run_demo(
    out: str | Path = "out/demo",
    *,
    seconds: float = 4.0,
    seed: int = 0,
    checkpoint: str | None = None,
    threads: int | None = None,
) -> int:
    out = Path(out)
    problem = _check_output(out)
    if problem:
        print(f"whmr demo: {problem}")
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from whmr_core.model_io import checkpoint_info, shipped_checkpoint
    from whmr_core.runtime.factory import default_engine, load_topology
    from whmr_ros.bag_runner import BagRunConfig, BagTopics, run_bag
    from whmr_ros.synth_bag import write_sequence_bag

    t_start = time.perf_counter()
    ckpt = checkpoint or shipped_checkpoint()
    body = checkpoint_info(ckpt).get("body", "lowres") if ckpt else "lowres"
    print(f"[1/3] sample bag: {seconds:g} s of a person walking in front of a tilted, moving camera")
    bag = out / "input.mcap"
    info = write_sequence_bag(bag, seconds=seconds, seed=seed, body=body)
    truth = _ground_truth(info["sequence"])

    threads = threads or min(4, os.cpu_count() or 1)
    engine = default_engine("auto", threads=threads, checkpoint=ckpt)  # TensorRT on a GPU, else ONNX Runtime
    print(f"[2/3] bag runner on {engine.describe()}; checkpoint: {ckpt or 'untrained small-cpu'}")
    topology = load_topology(engine=engine)
    output = out / "output"
    if output.exists():
        shutil.rmtree(output)
    results: dict[int, Any] = {}
    summary = run_bag(
        bag,
        output,
        engine,
        topology,
        BagRunConfig(topics=BagTopics(detections="/detections")),
        on_frame=lambda stamp, res: results.__setitem__(stamp, res),
    )

    print("[3/3] pictures and metrics")
    files = _pictures(
        out, results, _images(bag, BagTopics().image), np.asarray(topology.faces), summary.latency_ms
    )
    lat = np.asarray(summary.latency_ms) if summary.latency_ms else np.zeros(1)
    report = {
        "frames": summary.images,
        "frames_with_output": summary.frames_with_output,
        "persons": summary.bodies,
        "engine": engine.describe(),
        "fps": float(1000.0 / lat.mean()) if summary.latency_ms else 0.0,
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "max": float(lat.max()),
        },
        **_metrics(results, truth),
        "dropped": summary.dropped,
        "files": ["input.mcap", "output/", *files],
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    print(f"\nwhmr demo summary ({out})")
    lat_ms = report["latency_ms"]
    print(
        f"  frames {report['frames']}, with bodies {report['frames_with_output']}, "
        f"persons {report['persons']}"
    )
    print(
        f"  engine {report['engine']}: {report['fps']:.1f} FPS, latency p50 {lat_ms['p50']:.1f} ms, "
        f"p90 {lat_ms['p90']:.1f} ms"
    )
    if "mpjpe_mm" in report:
        print(
            f"  vs ground truth: MPJPE {report['mpjpe_mm']:.1f} mm, PA-MPJPE {report['pa_mpjpe_mm']:.1f} mm, "
            f"W-MPJPE {report['w_mpjpe_mm']:.1f} mm ({report['frames_scored']} frames)"
        )
    print(f"  files: {', '.join(report['files'])}, summary.json")
    return 0

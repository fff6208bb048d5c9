"""Write a synthetic sequence (``whmr_core.data.sequence``) as a ROS 2 bag in one ``.mcap`` file (rosbags).

Topics (frames: ``camera_optical_frame``, ``imu_link``, ``camera_gravity``):

- ``/camera/image_raw``: sensor_msgs/Image (rgb8) at ``fps`` (30 Hz); ``/camera/camera_info`` with each;
- ``/imu/data``: sensor_msgs/Imu at 200 Hz (REP 145: orientation in a z-up world, covariances);
- ``/tf_static``: tf2_msgs/TFMessage camera_optical_frame <- imu_link, once (transient local);
- ``/detections``: vision_msgs/Detection2DArray, simulated person boxes (jittered ground truth), per image;
- ``/whmr/ground_truth``: whmr_ros/msg/BodyMeshArray in ``camera_gravity`` (x = z_G, y = -x_G, z = -y_G).

rosbags' stores do not carry vision_msgs, so its message definitions (vision_msgs 4.x, as on Humble and
Jazzy) are registered from their text below; the bag embeds every definition, so readers need no ROS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.rotations import matrix_to_quaternion_xyzw
from whmr_ros.bag_format import BAG_VERSION, INPUT_TOPICS, qos_profiles
from whmr_ros.conversions import make_header, numpy_to_image
from whmr_ros.message_types import typestore

__all__ = [
    "CAMERA_FRAME",
    "GRAVITY_FRAME",
    "IMU_FRAME",
    "TOPICS",
    "write_sequence_bag",
]

CAMERA_FRAME = "camera_optical_frame"
IMU_FRAME = "imu_link"
GRAVITY_FRAME = "camera_gravity"
TOPICS = {
    **{k: INPUT_TOPICS[k] for k in ("image", "camera_info", "imu", "tf_static", "detections")},
    "ground_truth": "/whmr/ground_truth",
}


def _quat(T: Any, matrix: np.ndarray) -> Any:
    x, y, z, w = matrix_to_quaternion_xyzw(matrix)
    return T["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))


def _vec3(T: Any, v: np.ndarray) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _camera_info(T: Any, scene: Any, stamp: int) -> Any:
    w, h = scene.camera.image_wh
    K = scene.camera.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    return T["sensor_msgs/msg/CameraInfo"](
        header=make_header(stamp, CAMERA_FRAME, T), height=h, width=w, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )  # fmt: skip


def _imu_msg(T: Any, imu: Any, i: int, noise: Any) -> Any:
    q = imu.orientation_xyzw[i]
    # Diagonal covariances from the simulator's noise model (exact readings: tiny, not unknown).
    o_var = np.deg2rad(noise.orientation_std_deg) ** 2 if noise else 1e-12
    g_var = noise.gyro_std**2 if noise else 1e-12
    a_var = noise.accel_std**2 if noise else 1e-12
    return T["sensor_msgs/msg/Imu"](
        header=make_header(int(imu.stamps_ns[i]), IMU_FRAME, T),
        orientation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        orientation_covariance=np.diag([o_var] * 3).reshape(-1),
        angular_velocity=_vec3(T, imu.gyro[i]),
        angular_velocity_covariance=np.diag([g_var] * 3).reshape(-1),
        linear_acceleration=_vec3(T, imu.accel[i]),
        linear_acceleration_covariance=np.diag([a_var] * 3).reshape(-1),
    )


def _tf_static(T: Any, cfg: Any, stamp: int) -> Any:
    tf = T["geometry_msgs/msg/TransformStamped"](
        header=make_header(stamp, CAMERA_FRAME, T),
        child_frame_id=IMU_FRAME,
        transform=T["geometry_msgs/msg/Transform"](
            translation=_vec3(T, np.asarray(cfg.imu_offset_m)), rotation=_quat(T, cfg.camera_from_imu)
        ),
    )
    return T["tf2_msgs/msg/TFMessage"](transforms=[tf])


def _detections(T: Any, scene: Any, synth: Any, stamp: int, rng: np.random.Generator) -> Any:
    header = make_header(stamp, CAMERA_FRAME, T)
    dets = []
    w, h = scene.camera.image_wh
    for k, person in enumerate(scene.people):
        if synth.visible_pixels[k] == 0:
            continue
        x0, y0, x1, y1 = person.tight_bbox
        size = np.array([x1 - x0, y1 - y0])
        # A detector's box: the tight box with a few percent of jitter, clipped to the image.
        c = (np.array([x0 + x1, y0 + y1]) / 2 + rng.normal(0, 0.03, 2) * size).clip(0, [w - 1, h - 1])
        size = size * rng.uniform(0.95, 1.08, 2)
        hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](
                class_id="person", score=float(rng.uniform(0.8, 1))
            ),
            pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                    orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
                covariance=np.zeros(36),
            ),
        )
        bbox = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](
                position=T["vision_msgs/msg/Point2D"](x=float(c[0]), y=float(c[1])), theta=0.0
            ),
            size_x=float(size[0]), size_y=float(size[1]),
        )  # fmt: skip
        dets.append(T["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox, id=str(k + 1)))
    return T["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)


def _ground_truth(T: Any, scene: Any, stamp: int) -> Any:
    """BodyMeshArray in the gravity frame (ROS axes), exact."""
    cam = scene.camera
    bodies = []
    for k, p in enumerate(scene.people):
        R_w = Rotation.from_rotvec(p.global_orient_world).as_matrix()
        root_ros = GRAVITY_FROM_G @ R_w  # body -> ROS gravity frame
        local = Rotation.from_rotvec(
            np.concatenate([[Rotation.from_matrix(root_ros).as_rotvec()], p.body_pose])
        )
        pelvis = GRAVITY_FROM_G @ p.joints_world[0]
        bodies.append(
            T["whmr_ros/msg/BodyMesh"](
                header=make_header(stamp, GRAVITY_FRAME, T),
                camera_frame_id=CAMERA_FRAME,
                track_id=k + 1,
                score=1.0,
                vertices=(p.vertices_world @ GRAVITY_FROM_G.T).astype(np.float32).reshape(-1),
                joints=(p.joints_world @ GRAVITY_FROM_G.T).astype(np.float32).reshape(-1),
                pose=local.as_quat().astype(np.float32).reshape(-1),
                betas=p.betas.astype(np.float32),
                root_pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=pelvis[0], y=pelvis[1], z=pelvis[2]),
                    orientation=_quat(T, root_ros),
                ),
                root_orientation_camera=_quat(T, Rotation.from_rotvec(p.global_orient_cam).as_matrix()),
                translation_camera=_vec3(T, p.transl_cam),
                translation_is_metric=True,
                focal_length=float(cam.K[0, 0]),
                focal_from_camera_info=True,
                camera_rotation=_quat(T, cam.R_c),
                bbox_center_x=float(p.bbox_center[0]),
                bbox_center_y=float(p.bbox_center[1]),
                bbox_size=float(p.bbox_size),
                keypoints_2d=np.zeros(0, np.float32),  # ground truth: no keypoint model ran
                fit="off",
            )
        )
    return T["whmr_ros/msg/BodyMeshArray"](
        header=make_header(stamp, GRAVITY_FRAME, T), gravity_source="ground_truth", bodies=bodies
    )


def write_sequence_bag(
    path: str | os.PathLike,
    *,
    seconds: float = 4.0,
    seed: int = 0,
    body: str | os.PathLike = "lowres",
    config: Any = None,
    distro: str = "ROS2_JAZZY",
) -> dict[str, Any]:
    """Render the sequence of ``seed`` and write it to the single file ``path`` (``.mcap``).

    Returns ``{"path", "counts" (messages per topic), "sequence"}``. An existing file is replaced.
    """
    from dataclasses import replace

    from rosbags.rosbag2 import StoragePlugin, Writer

    from whmr_core.body import body_assets
    from whmr_core.data.scene import JointRegressors
    from whmr_core.data.sequence import SequenceConfig, make_sequence, render_frames
    from whmr_core.data.synth import load_body
    from whmr_core.render import Renderer

    out = Path(path)
    if out.suffix != ".mcap":
        raise ValueError(f"path: expected a .mcap file name, got {out}")
    cfg = replace(config or SequenceConfig(), seconds=float(seconds))
    model = load_body(body)
    seq = make_sequence(model, JointRegressors.from_assets(body_assets(model)), seed, cfg)
    store = typestore(distro)
    T = store.types
    rng = np.random.default_rng([int(seed), 11])

    t0 = int(seq.frame_stamps_ns[0])
    messages: list[tuple[int, str, Any]] = [(t0, "tf_static", _tf_static(T, cfg, t0))]
    for i in range(len(seq.imu.stamps_ns)):
        messages.append((int(seq.imu.stamps_ns[i]), "imu", _imu_msg(T, seq.imu, i, cfg.imu_noise)))
    renderer = Renderer()
    frames = render_frames(seq, renderer, model)
    for scene, stamp, synth in zip(seq.scenes, seq.frame_stamps_ns, frames, strict=True):
        s = int(stamp)
        messages.append((s, "image", numpy_to_image(synth.image, "rgb8", s, CAMERA_FRAME, T)))
        messages.append((s, "camera_info", _camera_info(T, scene, s)))
        messages.append((s, "detections", _detections(T, scene, synth, s, rng)))
        messages.append((s, "ground_truth", _ground_truth(T, scene, s)))
    messages.sort(key=lambda m: m[0])  # stable: per stamp, the order above

    msgtypes = {
        "image": "sensor_msgs/msg/Image",
        "camera_info": "sensor_msgs/msg/CameraInfo",
        "imu": "sensor_msgs/msg/Imu",
        "tf_static": "tf2_msgs/msg/TFMessage",
        "detections": "vision_msgs/msg/Detection2DArray",
        "ground_truth": "whmr_ros/msg/BodyMeshArray",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.stem + ".", dir=out.parent))
    counts: dict[str, int] = {}
    try:
        bag_dir = tmp / out.stem
        with Writer(bag_dir, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
            conns = {
                key: writer.add_connection(
                    TOPICS[key],
                    msgtype,
                    typestore=store,
                    offered_qos_profiles=qos_profiles(latched=key == "tf_static"),
                )
                for key, msgtype in msgtypes.items()
            }
            for stamp, key, msg in messages:
                writer.write(conns[key], stamp, store.serialize_cdr(msg, msgtypes[key]))
                counts[TOPICS[key]] = counts.get(TOPICS[key], 0) + 1
        # rosbag2 writes a directory; a single .mcap file is what `ros2 bag play FILE.mcap` and readers take.
        (mcap_file,) = bag_dir.glob("*.mcap")
        os.replace(mcap_file, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"path": str(out), "counts": counts, "sequence": seq}

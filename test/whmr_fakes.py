"""A geometrically exact stand-in for the network, for pipeline, output and bag tests.

``FakeEngine`` "sees" a scene of stick bodies given in the camera optical frame (pelvis position P_C and
camera-frame root orientation R_b^c): for each crop it picks the body whose projected pelvis is nearest
the crop centre and returns the weak-perspective camera, depth, focal and translation that eq. 2-4 give
for that body (so a calibrated K recovers P_C exactly), the camera-frame mesh, and world outputs from the
camera rotation it was given (world root = R_c^T R_b^c), as a perfect OrientCorrect would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from whmr_core.body.topology import BodyTopology
from whmr_core.graph_io import EngineOutputs
from whmr_core.runtime.engines import Engine

# Stick body in its own frame, pelvis at the origin, G axes (y down = up is -y, z = facing direction).
TEMPLATE_VERTICES = np.array(
    [
        [0.0, 0.0, 0.0],  # pelvis
        [0.0, -0.8, 0.0],  # top of head
        [0.15, 0.9, 0.0],  # left foot
        [-0.15, 0.9, 0.0],  # right foot
        [0.5, -0.4, 0.0],  # left hand
        [-0.5, -0.4, 0.0],  # right hand
        [0.0, -0.6, 0.1],  # nose (the body faces +z)
        [0.0, -0.3, -0.1],  # back
    ]
)
TEMPLATE_JOINTS = np.array([[0.0, 0.0, 0.0], [0.0, -0.7, 0.0], [0.0, 0.9, 0.0]])  # pelvis, head, feet
TOPOLOGY = BodyTopology(
    faces=np.array([[0, 1, 4], [0, 5, 1], [0, 2, 3], [1, 6, 7]]),
    parents=np.array([-1, 0, 0]),
    num_vertices=len(TEMPLATE_VERTICES),
    joint_names=("pelvis", "head", "feet"),
    model_name="stick",
)


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass
class SeenBody:
    position: np.ndarray  # pelvis in the camera optical frame, metres
    root: np.ndarray = field(default_factory=lambda: np.eye(3))  # R_b^c


class FakeEngine(Engine):
    kind = "fake"

    def __init__(
        self,
        image_wh: tuple[int, int],
        focal: float,
        principal_point: tuple[float, float] | None = None,
        crop_hw: tuple[int, int] = (16, 12),
        relative_depth: float = 5.0,
    ) -> None:
        self.image_wh = image_wh
        self.f = float(focal)
        self.pp = np.array(principal_point if principal_point else (image_wh[0] / 2, image_wh[1] / 2))
        self.crop_hw = crop_hw
        self.relative_depth = relative_depth
        self.bodies: list[SeenBody] = []
        self.calls: list[dict[str, np.ndarray]] = []
        self.poison: str | None = None  # an output name to fill with NaN
        self.scene_fn: Callable[[int], list[SeenBody]] | None = None  # call index -> bodies (sequences)

    def project(self, p: np.ndarray) -> np.ndarray:
        return self.f * p[:2] / p[2] + self.pp

    def _run(self, inputs: dict[str, np.ndarray]) -> EngineOutputs:
        if self.scene_fn is not None:
            self.bodies = self.scene_fn(len(self.calls))
        self.calls.append(inputs)
        w, h = self.image_wh
        diag = math.hypot(w, h)
        outs: dict[str, list[np.ndarray]] = {}
        for gi, r_c in zip(inputs["glob_info"].astype(np.float64), inputs["cam_rotation"], strict=True):
            centre = gi[:2] * diag + (w / 2, h / 2)
            b = gi[2] * diag
            body = min(self.bodies, key=lambda bd: float(np.linalg.norm(self.project(bd.position) - centre)))
            p = body.position
            s = 2 * self.f / (p[2] * b)  # eq. 3 with the true focal length and depth
            txy = p[:2] - (centre - self.pp) * p[2] / self.f  # eq. 4 solved for the crop translation
            tz = self.relative_depth
            translation = np.array([*(txy + 2 * (centre - (w / 2, h / 2)) / (s * b)), tz])
            r_bc = body.root
            world_root = r_c.astype(np.float64).T @ r_bc
            rotmats = np.repeat(np.eye(3)[None], len(TEMPLATE_JOINTS), 0)
            rotmats[0] = r_bc
            values = {
                "vertices": TEMPLATE_VERTICES @ r_bc.T,
                "joints": TEMPLATE_JOINTS @ r_bc.T,
                "rotmats": rotmats,
                "betas": np.zeros(10),
                "cam_crop": np.array([s, *txy]),
                "tz": np.array(tz),
                "focal": np.array(s * b * tz / 2 / diag),
                "translation": translation,
                "cam_root": r_bc,
                "world_root": world_root,
                "world_vertices": TEMPLATE_VERTICES @ world_root.T,
                "world_joints": TEMPLATE_JOINTS @ world_root.T,
            }
            for k, v in values.items():
                outs.setdefault(k, []).append(v)
        result = {k: np.stack(v).astype(np.float32) for k, v in outs.items()}
        if self.poison:
            result[self.poison][:] = np.nan
        return EngineOutputs.from_named(result, "fake engine")

    def box_of(self, body: SeenBody, half: float = 60.0) -> list[float]:
        """A detection box centred on the body's projected pelvis."""
        u, v = self.project(body.position)
        return [u - half, v - half, u + half, v + half]


def camera_rotation_for(gravity_cam: np.ndarray) -> np.ndarray:
    import torch

    from whmr_core.geometry import camera_rotation_from_gravity

    return camera_rotation_from_gravity(torch.as_tensor(gravity_cam, dtype=torch.float64)[None])[0].numpy()


# --- ROS messages with rosbags classes ----------------------------------------------------------------


def ros_kit(distro: str = "ROS2_JAZZY"):
    from whmr_ros.message_kit import RosbagsKit
    from whmr_ros.message_types import typestore

    return RosbagsKit(typestore(distro))


def header(kit, stamp_ns: int, frame_id: str):
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return kit.new("std_msgs/msg/Header", stamp=kit.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                   frame_id=frame_id)  # fmt: skip


def image_msg(kit, rgb: np.ndarray, stamp_ns: int, frame_id: str = "cam_optical"):
    from whmr_ros.conversions import numpy_to_image

    return numpy_to_image(rgb, "rgb8", stamp_ns, frame_id, kit.types)


def camera_info_msg(kit, K: np.ndarray, wh: tuple[int, int], stamp_ns: int, frame_id: str = "cam_optical"):
    return kit.new("sensor_msgs/msg/CameraInfo", header=header(kit, stamp_ns, frame_id), width=wh[0],
                   height=wh[1], k=np.asarray(K, dtype=np.float64).reshape(9), distortion_model="plumb_bob",
                   d=np.zeros(5))  # fmt: skip


def imu_msg(kit, stamp_ns: int, quat_xyzw=None, accel=None, frame_id: str = "imu", orientation_cov=None):
    cov_o = np.zeros(9) if orientation_cov is None else np.asarray(orientation_cov, dtype=np.float64)
    if quat_xyzw is None:
        cov_o[0], quat_xyzw = -1.0, (0.0, 0.0, 0.0, 1.0)
    a = (0.0, 0.0, 9.81) if accel is None else accel
    return kit.new(
        "sensor_msgs/msg/Imu",
        header=header(kit, stamp_ns, frame_id),
        orientation=kit.new("geometry_msgs/msg/Quaternion", x=quat_xyzw[0], y=quat_xyzw[1], z=quat_xyzw[2],
                            w=quat_xyzw[3]),
        orientation_covariance=cov_o,
        linear_acceleration=kit.new("geometry_msgs/msg/Vector3", x=a[0], y=a[1], z=a[2]),
    )  # fmt: skip


def static_tf_msg(kit, stamp_ns: int, parent: str, child: str, quat_xyzw, xyz=(0.0, 0.0, 0.0)):
    tr = kit.new(
        "geometry_msgs/msg/TransformStamped",
        header=header(kit, stamp_ns, parent),
        child_frame_id=child,
        transform=kit.new(
            "geometry_msgs/msg/Transform",
            translation=kit.new("geometry_msgs/msg/Vector3", x=xyz[0], y=xyz[1], z=xyz[2]),
            rotation=kit.new("geometry_msgs/msg/Quaternion", x=quat_xyzw[0], y=quat_xyzw[1], z=quat_xyzw[2],
                             w=quat_xyzw[3]),
        ),
    )  # fmt: skip
    return kit.new("tf2_msgs/msg/TFMessage", transforms=[tr])


def register_vision_msgs(store) -> None:
    """Add vision_msgs to a store that lacks them (whmr's own typestore() already has them)."""
    from rosbags.typesys import get_types_from_msg

    from whmr_ros.message_types import VISION_MSGS

    types: dict = {}
    for name, text in VISION_MSGS.items():
        if name not in store.types:
            types.update(get_types_from_msg(text, name))
    store.register(types)


def detections_msg(
    kit, stamp_ns: int, boxes, scores, class_id: str = "person", frame_id: str = "cam_optical"
):
    dets = []
    for (x1, y1, x2, y2), s in zip(boxes, scores, strict=True):
        hyp = kit.new(
            "vision_msgs/msg/ObjectHypothesisWithPose",
            hypothesis=kit.new("vision_msgs/msg/ObjectHypothesis", class_id=class_id, score=s),
        )
        centre = kit.new(
            "vision_msgs/msg/Pose2D",
            position=kit.new("vision_msgs/msg/Point2D", x=(x1 + x2) / 2, y=(y1 + y2) / 2),
        )
        bbox = kit.new("vision_msgs/msg/BoundingBox2D", center=centre, size_x=x2 - x1, size_y=y2 - y1)
        dets.append(
            kit.new(
                "vision_msgs/msg/Detection2D",
                header=header(kit, stamp_ns, frame_id),
                results=[hyp],
                bbox=bbox,
            )
        )
    return kit.new(
        "vision_msgs/msg/Detection2DArray", header=header(kit, stamp_ns, frame_id), detections=dets
    )

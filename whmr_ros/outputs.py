"""Pipeline results -> the ROS 2 messages whmr publishes, for rclpy or rosbags classes (``MessageKit``).

Published geometry is in the ``<camera>_gravity`` frame (x forward, y left, z up; child of the camera
optical frame) unless a gravity-aligned fixed frame is configured, in which case the caller passes the
``Placement`` (fixed <- gravity frame) it looked up in TF. Every header carries the image stamp.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from whmr_core.body.keypoints import COCO17_NAMES
from whmr_core.body.topology import BodyTopology
from whmr_core.media.pictures import draw_keypoints
from whmr_core.rotations import matrix_to_quaternion_xyzw
from whmr_core.runtime.frames import FrameResult, PersonResult
from whmr_ros.conversions import NS_PER_S, numpy_to_image
from whmr_ros.message_kit import MessageKit

__all__ = [
    "DiagnosticStatusReport",
    "Placement",
    "body_mesh_array",
    "body_model_topology",
    "diagnostic_array",
    "draw_overlay",
    "marker_array",
    "marker_array_cdr",
    "overlay_image",
    "tf_message",
    "transforms",
]

# Marker constants (visualization_msgs/Marker), the same in every distro.
_LINE_LIST, _TEXT, _TRIANGLE_LIST, _ADD, _DELETEALL = 5, 9, 11, 0, 3


@dataclass(frozen=True)
class Placement:
    """Where output geometry is expressed: ``frame_id`` and the rigid map from the gravity frame into it.

    X_out = rotation @ X_gravity + translation. The default is the gravity frame itself.
    """

    frame_id: str
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def points(self, x: np.ndarray) -> np.ndarray:
        return x @ self.rotation.T + self.translation


def _quaternion(kit: MessageKit, r: np.ndarray):
    x, y, z, w = (float(v) for v in matrix_to_quaternion_xyzw(r))
    return kit.new("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def _point(kit: MessageKit, p: np.ndarray, name: str = "geometry_msgs/msg/Point"):
    return kit.new(name, x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _header(kit: MessageKit, stamp_ns: int, frame_id: str):
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return kit.new(
        "std_msgs/msg/Header",
        stamp=kit.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec),
        frame_id=frame_id,
    )


def _check_finite(name: str, *arrays: np.ndarray) -> None:
    # The pipeline already drops non-finite bodies; this guards the last step against a broken Placement.
    for a in arrays:
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: refusing to publish non-finite values")


# --- whmr_ros/msg ------------------------------------------------------------------------------------


def body_mesh(
    kit: MessageKit, result: FrameResult, person: PersonResult, camera_frame_id: str, place: Placement
):
    verts = place.points(person.vertices_gravity)
    joints = place.points(person.joints_gravity)
    root = place.rotation @ person.root_orientation_gravity
    _check_finite("body", verts, joints, root)
    return kit.new(
        "whmr_ros/msg/BodyMesh",
        header=_header(kit, result.stamp_ns, place.frame_id),
        camera_frame_id=camera_frame_id,
        track_id=int(person.track_id),
        score=float(person.score),
        vertices=kit.float32s(verts),
        joints=kit.float32s(joints),
        pose=kit.float32s(person.local_quaternions_xyzw()),
        betas=kit.float32s(person.betas),
        root_pose=kit.new(
            "geometry_msgs/msg/Pose", position=_point(kit, joints[0]), orientation=_quaternion(kit, root)
        ),
        root_orientation_camera=_quaternion(kit, person.root_orientation_camera),
        translation_camera=_point(kit, person.translation_camera, "geometry_msgs/msg/Vector3"),
        translation_is_metric=bool(person.translation_is_metric),
        focal_length=float(person.focal_px),
        focal_from_camera_info=bool(person.translation_is_metric),  # K fixes both, or neither
        camera_rotation=_quaternion(kit, result.camera_rotation),
        bbox_center_x=float(person.bbox_center[0]),
        bbox_center_y=float(person.bbox_center[1]),
        bbox_size=float(person.bbox_size),
        keypoints_2d=kit.float32s(np.zeros((0, 3)) if person.keypoints_2d is None else person.keypoints_2d),
        fit=person.fit,
    )


def body_mesh_array(kit: MessageKit, result: FrameResult, camera_frame_id: str, place: Placement):
    """``whmr_ros/BodyMeshArray`` of every body in the frame (possibly none), stamped with the image."""
    return kit.new(
        "whmr_ros/msg/BodyMeshArray",
        header=_header(kit, result.stamp_ns, place.frame_id),
        gravity_source=result.gravity_source,
        bodies=[body_mesh(kit, result, p, camera_frame_id, place) for p in result.persons],
    )


def body_model_topology(kit: MessageKit, topology: BodyTopology, stamp_ns: int, frame_id: str = ""):
    """``whmr_ros/BodyModelTopology``: faces, joint names and parents, published once (latched)."""
    return kit.new(
        "whmr_ros/msg/BodyModelTopology",
        header=_header(kit, stamp_ns, frame_id),
        model_name=topology.model_name,
        num_vertices=int(topology.num_vertices),
        faces=kit.uint32s(topology.faces),
        joint_names=list(topology.joint_names),
        keypoint_names=list(COCO17_NAMES),
        joint_parents=kit.int32s(topology.parents),
    )


# --- TF ----------------------------------------------------------------------------------------------


def _transform(kit: MessageKit, stamp_ns: int, parent: str, child: str, r: np.ndarray, t: np.ndarray):
    _check_finite("transform", r, t)
    return kit.new(
        "geometry_msgs/msg/TransformStamped",
        header=_header(kit, stamp_ns, parent),
        child_frame_id=child,
        transform=kit.new(
            "geometry_msgs/msg/Transform",
            translation=_point(kit, t, "geometry_msgs/msg/Vector3"),
            rotation=_quaternion(kit, r),
        ),
    )


def transforms(
    kit: MessageKit,
    result: FrameResult,
    camera_frame_id: str,
    gravity_frame_id: str,
    place: Placement,
    body_frame_prefix: str = "whmr_body_",
) -> list:
    """TransformStamped: camera optical -> ``<camera>_gravity`` (rotation only), and one frame per body
    (its root joint, world root orientation) as a child of the output frame."""
    out = [
        _transform(
            kit, result.stamp_ns, camera_frame_id, gravity_frame_id, result.camera_from_gravity, np.zeros(3)
        )
    ]
    for p in result.persons:
        out.append(
            _transform(
                kit,
                result.stamp_ns,
                place.frame_id,
                f"{body_frame_prefix}{p.track_id}",
                place.rotation @ p.root_orientation_gravity,
                place.points(p.joints_gravity[0]),
            )
        )
    return out


def tf_message(kit: MessageKit, transforms_: Sequence) -> object:
    return kit.new("tf2_msgs/msg/TFMessage", transforms=list(transforms_))


# --- RViz markers ------------------------------------------------------------------------------------


def _colour(kit: MessageKit, track_id: int, alpha: float = 1.0):
    # Golden-ratio hue steps: neighbouring ids get clearly different colours.
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.6, 0.95)
    return kit.new("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=alpha)


def _marker(kit: MessageKit, header, ns: str, marker_id: int, kind: int, **fields):
    identity = kit.new("geometry_msgs/msg/Pose", orientation=kit.new("geometry_msgs/msg/Quaternion", w=1.0))
    fields.setdefault("pose", identity)
    fields.setdefault("scale", kit.new("geometry_msgs/msg/Vector3", x=1.0, y=1.0, z=1.0))
    return kit.new(
        "visualization_msgs/msg/Marker", header=header, ns=ns, id=marker_id, type=kind, action=_ADD, **fields
    )


def marker_array(
    kit: MessageKit,
    result: FrameResult,
    topology: BodyTopology,
    place: Placement,
    *,
    mesh: bool = True,
    skeleton: bool = True,
    labels: bool = True,
    mesh_alpha: float = 0.8,
):
    """MarkerArray: a DELETEALL (bodies that left), then per body a TRIANGLE_LIST mesh, a LINE_LIST
    skeleton and a TEXT_VIEW_FACING id label, coloured by track id. Points as Point messages, ~90 ms per
    SMPL mesh in rclpy: hosts publish ``marker_array_cdr`` instead, the same message as bytes."""
    return _markers(kit, result, topology, place, mesh, skeleton, labels, mesh_alpha, placeholders=False)[0]


def marker_array_cdr(
    kit: MessageKit,
    result: FrameResult,
    topology: BodyTopology,
    place: Placement,
    *,
    mesh: bool = True,
    skeleton: bool = True,
    labels: bool = True,
    mesh_alpha: float = 0.8,
) -> bytes:
    """``marker_array`` serialized (CDR, as publishers and bag writers take it), its points written straight
    from numpy: a few ms for a mesh instead of ~90 ms of Point messages.

    Each points marker is built with one placeholder point (unique values), the array is serialized by the
    kit, and each placeholder is replaced by the marker's float64 (x, y, z) rows with its sequence length.
    Point is three float64 (8-byte aligned) and a replacement changes the size by a multiple of 24 bytes, so
    every later field keeps its alignment: the bytes equal those of the array built with Point messages."""
    msg, points = _markers(
        kit, result, topology, place, mesh, skeleton, labels, mesh_alpha, placeholders=True
    )
    raw = kit.serialize(msg, "visualization_msgs/msg/MarkerArray")
    if raw[:2] != b"\x00\x01":  # CDR little-endian: what every ROS 2 serializer here writes
        raise ValueError(f"marker_array_cdr: unexpected CDR encapsulation {raw[:4].hex()}")
    parts, pos = [], 0
    for k, xyz in enumerate(points):
        at = raw.find(_placeholder(k).tobytes(), pos)
        if at < 0:
            raise ValueError(f"marker_array_cdr: placeholder {k} not found in the serialized array")
        count_at = at - 4 if _u32(raw, at - 4) == 1 else at - 8  # the length, 4 bytes of padding or none
        if _u32(raw, count_at) != 1:
            raise ValueError(f"marker_array_cdr: no sequence length before placeholder {k}")
        parts += [raw[pos:count_at], np.uint32(len(xyz)).tobytes(), raw[count_at + 4 : at], xyz.tobytes()]
        pos = at + 24
    parts.append(raw[pos:])
    return b"".join(parts)


def _u32(raw: bytes, at: int) -> int:
    return int.from_bytes(raw[at : at + 4], "little")


def _placeholder(k: int) -> np.ndarray:
    return np.array([-1.2345678901234567e300, float(k), 9.876543210987654e299], dtype="<f8")


def _markers(kit, result, topology, place, mesh, skeleton, labels, mesh_alpha, placeholders: bool):
    """The MarkerArray and, in order, the (n, 3) float64 points of its points markers; with
    ``placeholders`` those markers hold one placeholder point each instead of their points."""
    header = _header(kit, result.stamp_ns, place.frame_id)
    markers = [kit.new("visualization_msgs/msg/Marker", header=header, action=_DELETEALL)]
    arrays: list[np.ndarray] = []

    def points(xyz: np.ndarray) -> list:
        xyz = np.ascontiguousarray(xyz, dtype="<f8")
        arrays.append(xyz)
        if placeholders:
            return [_point(kit, _placeholder(len(arrays) - 1))]
        return [kit.new("geometry_msgs/msg/Point", x=x, y=y, z=z) for x, y, z in xyz.tolist()]

    bones = np.array([(int(p), j) for j, p in enumerate(topology.parents) if p >= 0], dtype=np.intp)
    for person in result.persons:
        tid = int(person.track_id)
        verts = place.points(person.vertices_gravity)
        joints = place.points(person.joints_gravity)
        _check_finite("marker", verts, joints)
        if mesh and len(topology.faces):
            markers.append(
                _marker(kit, header, "whmr_mesh", tid, _TRIANGLE_LIST, color=_colour(kit, tid, mesh_alpha),
                        points=points(verts[topology.faces.reshape(-1)]))
            )  # fmt: skip
        if skeleton and len(bones):
            markers.append(
                _marker(kit, header, "whmr_skeleton", tid, _LINE_LIST, color=_colour(kit, tid),
                        points=points(joints[bones.reshape(-1)]),
                        scale=kit.new("geometry_msgs/msg/Vector3", x=0.02))
            )  # fmt: skip
        if labels:
            top = verts[np.argmax(verts[:, 2])] + np.array([0.0, 0.0, 0.15])
            pose = kit.new(
                "geometry_msgs/msg/Pose",
                position=_point(kit, top),
                orientation=kit.new("geometry_msgs/msg/Quaternion", w=1.0),
            )
            markers.append(
                _marker(kit, header, "whmr_id", tid, _TEXT, pose=pose, text=f"{tid}",
                        scale=kit.new("geometry_msgs/msg/Vector3", z=0.2), color=_colour(kit, tid))
            )  # fmt: skip
    return kit.new("visualization_msgs/msg/MarkerArray", markers=markers), arrays


# --- overlay image -----------------------------------------------------------------------------------


def draw_overlay(image_rgb: np.ndarray, result: FrameResult, topology: BodyTopology) -> np.ndarray:
    """A copy of the image with each body's box, projected skeleton and track id drawn in."""
    import cv2

    out = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    for p in result.persons:
        r, g, b = colorsys.hsv_to_rgb((p.track_id * 0.618034) % 1.0, 0.6, 0.95)
        colour = (int(r * 255), int(g * 255), int(b * 255))
        x1, y1, x2, y2 = (round(float(v)) for v in p.box_xyxy)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1)
        uv = np.round(p.joints_2d).astype(int)
        for j, parent in enumerate(topology.parents):
            if parent >= 0:
                cv2.line(out, tuple(uv[parent]), tuple(uv[j]), colour, 2)
        draw_keypoints(out, p.keypoints_2d, (255, 255, 255))
        cv2.putText(out, str(p.track_id), (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    return out


def overlay_image(
    kit: MessageKit, image_rgb: np.ndarray, result: FrameResult, topology: BodyTopology, frame_id: str
):
    """sensor_msgs/Image (rgb8) of ``draw_overlay``, stamped with the source image."""
    drawn = draw_overlay(image_rgb, result, topology)
    return numpy_to_image(drawn, "rgb8", result.stamp_ns, frame_id, kit.types, data_factory=kit.uint8s)


# --- diagnostics -------------------------------------------------------------------------------------

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass(frozen=True)
class DiagnosticStatusReport:
    name: str
    level: int  # OK, WARN, ERROR, STALE
    message: str
    values: Mapping[str, str]
    hardware_id: str = ""


def diagnostic_array(kit: MessageKit, stamp_ns: int, reports: Sequence[DiagnosticStatusReport]):
    """diagnostic_msgs/DiagnosticArray (``/diagnostics``, read by rqt_runtime_monitor and aggregators)."""
    statuses = [
        kit.new(
            "diagnostic_msgs/msg/DiagnosticStatus",
            level=kit.byte(r.level),
            name=r.name,
            message=r.message,
            hardware_id=r.hardware_id,
            values=[
                kit.new("diagnostic_msgs/msg/KeyValue", key=k, value=str(v)) for k, v in r.values.items()
            ],
        )
        for r in reports
    ]
    return kit.new("diagnostic_msgs/msg/DiagnosticArray", header=_header(kit, stamp_ns, ""), status=statuses)

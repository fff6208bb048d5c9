"""Output messages (CDR round trips on Humble and Jazzy types) and the ROS-free host's input handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from whmr_fakes import (
    TOPOLOGY,
    FakeEngine,
    SeenBody,
    camera_info_msg,
    detections_msg,
    image_msg,
    imu_msg,
    register_vision_msgs,
    ros_kit,
    static_tf_msg,
)

from whmr_core.runtime.config import PipelineConfig
from whmr_core.runtime.pipeline import Pipeline
from whmr_ros.conversions import image_to_rgb
from whmr_ros.host import HostConfig, WhmrHost
from whmr_ros.tf_buffer import TransformBuffer

W, H = 320, 240
K = np.array([[250.0, 0.0, 160.0], [0.0, 250.0, 120.0], [0.0, 0.0, 1.0]])
RGB = np.full((H, W, 3), 90, dtype=np.uint8)


def _host(distro="ROS2_JAZZY", config=None, lookup=None, warnings=None, **pipe_kw):
    engine = FakeEngine((W, H), focal=250.0)
    engine.bodies = [SeenBody(np.array([0.2, 0.5, 3.0]))]
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(**{"detector": "none", **pipe_kw}))
    warn = warnings.append if warnings is not None else None
    host = WhmrHost(pipe, config or HostConfig(), ros_kit(distro), lookup=lookup, warn=warn)
    return host, engine


def _roundtrip(kit, msg):
    store = kit.store
    raw = store.serialize_cdr(msg, msg.__msgtype__)
    return store.deserialize_cdr(raw, msg.__msgtype__), len(raw)


@pytest.mark.parametrize("distro", ["ROS2_HUMBLE", "ROS2_JAZZY"])
def test_every_published_message_survives_a_cdr_round_trip(distro):
    host, _ = _host(distro)
    kit = host.kit
    host.on_camera_info(camera_info_msg(kit, K, (W, H), 5))
    prepared = host.on_image(image_msg(kit, RGB, 1_500_000_007))
    out = host.process(prepared)
    (person,) = out.result.persons

    bodies, _ = _roundtrip(kit, out.bodies)
    assert bodies.header.frame_id == "cam_optical_gravity"
    assert (bodies.header.stamp.sec, bodies.header.stamp.nanosec) == (1, 500_000_007)
    assert bodies.gravity_source == "parameter"
    (b,) = bodies.bodies
    assert b.camera_frame_id == "cam_optical" and b.track_id == person.track_id
    np.testing.assert_allclose(b.vertices.reshape(-1, 3), person.vertices_gravity, atol=1e-6)
    np.testing.assert_allclose(b.joints.reshape(-1, 3), person.joints_gravity, atol=1e-6)
    assert b.pose.shape == (TOPOLOGY.num_joints * 4,) and b.betas.shape == (10,)
    assert b.translation_is_metric and b.focal_from_camera_info and b.focal_length == 250.0
    np.testing.assert_allclose([b.translation_camera.x, b.translation_camera.y, b.translation_camera.z],
                               [0.2, 0.5, 3.0], atol=1e-5)  # fmt: skip
    np.testing.assert_allclose([b.root_pose.position.x, b.root_pose.position.z], [3.0, -0.5], atol=1e-5)
    q = b.root_pose.orientation
    assert math.isclose(q.x**2 + q.y**2 + q.z**2 + q.w**2, 1.0, rel_tol=1e-9)

    topo, _ = _roundtrip(kit, host.topology(0))
    np.testing.assert_array_equal(topo.faces.reshape(-1, 3), TOPOLOGY.faces)
    assert list(topo.joint_names) == list(TOPOLOGY.joint_names) and topo.num_vertices == 8
    np.testing.assert_array_equal(topo.joint_parents, TOPOLOGY.parents)

    markers = kit.store.deserialize_cdr(host.markers(out), "visualization_msgs/msg/MarkerArray")  # CDR bytes
    kinds = [(m.ns, m.type, m.action) for m in markers.markers]
    assert kinds[0][2] == 3  # DELETEALL first: bodies that left disappear
    assert ("whmr_mesh", 11, 0) in kinds and ("whmr_skeleton", 5, 0) in kinds and ("whmr_id", 9, 0) in kinds
    mesh = next(m for m in markers.markers if m.ns == "whmr_mesh")
    assert len(mesh.points) == TOPOLOGY.faces.size and mesh.header.frame_id == "cam_optical_gravity"
    v0 = TOPOLOGY.faces[0, 0]
    np.testing.assert_allclose([mesh.points[0].x, mesh.points[0].y, mesh.points[0].z],
                               person.vertices_gravity[v0], atol=1e-9)  # fmt: skip

    tf, _ = _roundtrip(kit, out.tf)
    frames = [(t.header.frame_id, t.child_frame_id) for t in tf.transforms]
    assert frames == [
        ("cam_optical", "cam_optical_gravity"),
        ("cam_optical_gravity", f"whmr_body_{b.track_id}"),
    ]
    r = tf.transforms[0].transform.rotation
    assert all(math.isfinite(v) for v in (r.x, r.y, r.z, r.w))

    diag, _ = _roundtrip(kit, host.diagnostics(1_500_000_007))
    names = [s.name for s in diag.status]
    assert names == ["whmr: pipeline", "whmr: gravity", "whmr: inputs"]
    values = {kv.key: kv.value for kv in diag.status[0].values}
    assert values["frames_processed"] == "1" and values["engine"].startswith("fake")
    assert diag.status[1].level == 1  # level camera assumed: a warning, not silence

    overlay, _ = _roundtrip(kit, host.overlay(out, prepared))
    drawn = image_to_rgb(overlay)
    assert drawn.shape == (H, W, 3) and (drawn != RGB).any()


@pytest.mark.parametrize("distro", ["ROS2_HUMBLE", "ROS2_JAZZY"])
def test_markers_written_from_numpy_are_the_bytes_of_the_point_messages(distro):
    from whmr_ros.outputs import marker_array, marker_array_cdr

    host, engine = _host(distro)
    engine.bodies = [SeenBody(np.array([x, 0.5, 4.0])) for x in (-1.2, 0.0, 1.2)]  # three bodies
    kit = host.kit
    register_vision_msgs(kit.store)
    boxes = [engine.box_of(b, 40) for b in engine.bodies]
    host.on_detections(detections_msg(kit, 1_000, boxes, [0.9, 0.9, 0.9]))
    out = host.process(host.on_image(image_msg(kit, RGB, 1_000)))
    assert len(out.result.persons) == 3
    topo = host.pipeline.topology
    for mesh in (True, False):
        slow_msg = marker_array(kit, out.result, topo, out.placement, mesh=mesh)
        slow = kit.serialize(slow_msg, "visualization_msgs/msg/MarkerArray")
        fast = marker_array_cdr(kit, out.result, topo, out.placement, mesh=mesh)
        assert fast == slow
    msg = kit.store.deserialize_cdr(fast, "visualization_msgs/msg/MarkerArray")
    skeleton = [m for m in msg.markers if m.ns == "whmr_skeleton"]
    assert len(skeleton) == 3 and len(skeleton[0].points) == 2 * (TOPOLOGY.num_joints - 1)


def test_empty_frames_still_publish_an_empty_array():
    host, _engine = _host(whole_image_fallback=False)
    out = host.process(host.on_image(image_msg(host.kit, RGB, 10)))
    msg, _ = _roundtrip(host.kit, out.bodies)
    assert list(msg.bodies) == [] and msg.header.stamp.nanosec == 10


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: setattr(m, "encoding", "yuv422"), "encoding"),
        (lambda m: setattr(m, "step", m.step - 1), "step"),
        (lambda m: setattr(m, "data", m.data[:-7]), "truncated"),
    ],
)
def test_bad_images_are_dropped_with_a_throttled_warning(mutate, field):
    warnings: list[str] = []
    host, _ = _host(warnings=warnings)
    for k in range(3):
        msg = image_msg(host.kit, RGB, k)
        mutate(msg)
        assert host.on_image(msg) is None
    assert host.dropped["image"] == 3 and field in host.last_problem["image"]
    assert len(warnings) == 1  # throttled
    diag = host.diagnostics(0)
    assert diag.status[2].level == 1 and any(kv.value == "3" for kv in diag.status[2].values)


def test_zero_focal_camera_info_is_dropped_and_depth_stays_relative():
    host, _ = _host()
    host.on_camera_info(camera_info_msg(host.kit, np.diag([0.0, 0.0, 1.0]), (W, H), 1))
    assert host.dropped["camera_info"] == 1 and "focal" in host.last_problem["camera_info"]
    out = host.process(host.on_image(image_msg(host.kit, RGB, 2)))
    assert not out.bodies.bodies[0].translation_is_metric


def test_camera_info_of_another_size_is_not_used():
    host, _ = _host()
    host.on_camera_info(camera_info_msg(host.kit, K, (640, 480), 1))
    out = host.process(host.on_image(image_msg(host.kit, RGB, 2)))
    assert not out.result.persons[0].translation_is_metric and "ignored" in host.last_problem["camera_info"]


def test_nan_imu_is_dropped_and_gravity_falls_back_with_a_reason():
    host, _ = _host(config=HostConfig(camera_from_imu=(0.0, 0.0, 0.0, 1.0)))
    host.on_imu(imu_msg(host.kit, 1, accel=(math.nan, 0.0, 9.8)))
    host.on_imu(imu_msg(host.kit, 2, quat_xyzw=(0.0, 0.0, 0.0, 0.0)))  # zero quaternion: rejected
    assert host.dropped["imu"] == 2
    out = host.process(host.on_image(image_msg(host.kit, RGB, 3)))
    assert out.result.gravity_source == "imu_accel"  # the second message's accelerometer was fine
    host2, _ = _host(config=HostConfig(camera_from_imu=(0.0, 0.0, 0.0, 1.0)))
    out2 = host2.process(host2.on_image(image_msg(host2.kit, RGB, 3)))
    assert out2.result.gravity_source == "parameter" and "no IMU messages" in out2.result.gravity_reason
    assert "gravity" in host2.dropped


def test_imu_through_static_tf_gives_gravity_from_orientation():
    buf = TransformBuffer()
    host, _engine = _host(lookup=buf.lookup)
    kit = host.kit
    # IMU mounted like a body frame (x forward, z up); camera <- imu is (0.5, -0.5, 0.5, 0.5).
    buf.add_message(static_tf_msg(kit, 0, "imu", "cam_optical", (-0.5, 0.5, -0.5, 0.5)), static=True)
    pitch = 0.3  # camera (and IMU) pitched down: rotation about the IMU's y axis by +pitch
    q = (0.0, math.sin(pitch / 2), 0.0, math.cos(pitch / 2))
    for k in range(5):
        host.on_imu(imu_msg(kit, k * 5_000_000, quat_xyzw=q))
    out = host.process(host.on_image(image_msg(kit, RGB, 10_000_000)))
    assert out.result.gravity_source == "imu_orientation" and not out.result.gravity_reason
    g = out.result.camera_rotation[:, 1]  # gravity in the camera frame
    np.testing.assert_allclose(g, [0.0, math.cos(pitch), math.sin(pitch)], atol=1e-9)


def test_detections_topic_boxes_and_outside_boxes():
    host, engine = _host()
    kit = host.kit
    register_vision_msgs(kit.store)
    body = engine.bodies[0]
    boxes = [engine.box_of(body, 40), [900.0, 900.0, 990.0, 990.0]]
    host.on_detections(detections_msg(kit, 7, boxes, [0.9, 0.8]))
    host.on_detections(detections_msg(kit, 8, [boxes[0]], [0.9], class_id="car"))
    out = host.process(host.on_image(image_msg(kit, RGB, 7)))
    assert out.result.box_source == "detection" and len(out.result.persons) == 1
    assert "outside the image" in host.last_problem["person"]
    # A detections message holding only another class: no person in this image, nobody published.
    host2, _engine2 = _host(config=HostConfig(detection_class_ids=("person",)))
    host2.on_detections(detections_msg(kit, 8, [boxes[0]], [0.9], class_id="car"))
    out2 = host2.process(host2.on_image(image_msg(kit, RGB, 8)))
    assert out2.result.box_source == "detection" and not out2.result.persons


def test_no_nan_is_ever_published():
    host, engine = _host()
    engine.poison = "world_joints"
    out = host.process(host.on_image(image_msg(host.kit, RGB, 1)))
    assert len(out.bodies.bodies) == 0 and "non-finite" in host.last_problem["person"]
    raw = host.kit.store.serialize_cdr(out.bodies, out.bodies.__msgtype__)
    assert b"\x00\x00\xc0\x7f" not in bytes(raw)  # float32 NaN


def test_output_in_a_fixed_frame_through_tf():
    buf = TransformBuffer()
    host, _ = _host(config=HostConfig(output_frame="odom"), lookup=buf.lookup)
    kit = host.kit
    # odom <- camera: camera 1.2 m up, level, looking along odom's x.
    buf.add_message(
        static_tf_msg(kit, 0, "odom", "cam_optical", (-0.5, 0.5, -0.5, 0.5), (0.0, 0.0, 1.2)), True
    )
    host.on_camera_info(camera_info_msg(kit, K, (W, H), 0))  # metric depth
    out = host.process(host.on_image(image_msg(kit, RGB, 1)))
    b = out.bodies.bodies[0]
    assert b.header.frame_id == "odom"
    # Body pelvis at camera (0.2, 0.5, 3.0) -> odom (3.0, -0.2, 1.2 - 0.5).
    np.testing.assert_allclose([b.root_pose.position.x, b.root_pose.position.y, b.root_pose.position.z],
                               [3.0, -0.2, 0.7], atol=1e-5)  # fmt: skip
    assert out.tf.transforms[1].header.frame_id == "odom"


def test_a_time_jump_is_known_by_its_type_and_resets_under_the_input_lock():
    from whmr_core.runtime.frames import InputError
    from whmr_core.runtime.pipeline import StampWentBackError

    host, _ = _host(config=HostConfig(camera_from_imu=(0.0, 0.0, 0.0, 1.0)))
    resets = []
    real_reset = host.gravity.reset

    def reset():  # the IMU callbacks fill this buffer on another thread in the node
        resets.append(host._inputs_lock._is_owned())
        real_reset()

    host.gravity.reset = reset
    assert host.process(host.on_image(image_msg(host.kit, RGB, 2_000_000_000))) is not None
    # A frame older than the last: tracks restart and it is processed; the IMU buffer is kept.
    assert host.process(host.on_image(image_msg(host.kit, RGB, 1_000_000_000))) is not None
    assert host.dropped["time"] == 1 and resets == []
    # The pipeline's own time-jump error (by type) resets gravity, holding the input lock.
    real_process = host.pipeline.process

    def jumped(frame, detected=None):
        raise StampWentBackError("older than the previous frame")

    host.pipeline.process = jumped
    assert host.process(host.on_image(image_msg(host.kit, RGB, 1_100_000_000))) is None
    assert resets == [True] and host.dropped["frame"] == 1

    # Another unusable frame whose text happens to mention the previous frame is not a time jump.
    def unusable(frame, detected=None):
        raise InputError("stamp is before the previous frame")

    host.pipeline.process = unusable
    assert host.process(host.on_image(image_msg(host.kit, RGB, 1_200_000_000))) is None
    assert resets == [True] and host.dropped["frame"] == 2
    host.pipeline.process = real_process
    assert host.process(host.on_image(image_msg(host.kit, RGB, 1_300_000_000))) is not None


def test_imu_rejections_are_judged_by_code():
    warnings: list[str] = []
    host, _ = _host(config=HostConfig(camera_from_imu=(0.0, 0.0, 0.0, 1.0)), warnings=warnings)
    for k in range(3):  # an IMU without orientation flags it on every message: not a problem
        host.on_imu(imu_msg(host.kit, k + 1))
    assert "imu" not in host.dropped and warnings == []
    host.on_imu(imu_msg(host.kit, 10, accel=(0.0, 0.0, 0.0)))  # a zero accelerometer reading is
    assert host.dropped["imu"] == 1 and "linear_acceleration" in warnings[-1]
    (why,) = host.gravity.add_imu(11, None, (0.0, 0.0, 0.0))
    assert why.code == "accel_norm"

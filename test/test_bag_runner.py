"""Bag runner end to end: a sqlite3 bag (image 30 Hz, CameraInfo, IMU 200 Hz, /tf_static) -> an mcap bag."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from whmr_fakes import (
    TEMPLATE_JOINTS,
    TOPOLOGY,
    FakeEngine,
    SeenBody,
    camera_info_msg,
    camera_rotation_for,
    image_msg,
    imu_msg,
    ros_kit,
    static_tf_msg,
)

from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.rotations import matrix_to_quaternion
from whmr_ros.bag_runner import BagRunConfig, BagTopics, run_bag

W, H = 160, 120
K = np.array([[120.0, 0.0, 80.0], [0.0, 120.0, 60.0], [0.0, 0.0, 1.0]])
PITCH = 0.25  # camera pitched down (rad)
T0 = 1_700_000_000_000_000_000
N_IMAGES = 30


def _world_from_imu() -> np.ndarray:
    # IMU axes = body frame (x forward, y left, z up), pitched down: rotation about y by +PITCH.
    c, s = math.cos(PITCH), math.sin(PITCH)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _pelvis_g(k: int) -> np.ndarray:
    """The walking person in G (y down): 4 m ahead, 1 m below the camera, moving right 1 m/s."""
    return np.array([-0.5 + k / 30.0, 1.0, 4.0])


def _write_input_bag(path: Path, kit) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = kit.store
    q_wi = np.roll(matrix_to_quaternion(torch.as_tensor(_world_from_imu())).numpy(), -1)
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as w:
        c_img = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        c_info = w.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store)
        c_imu = w.add_connection("/imu/data", "sensor_msgs/msg/Imu", typestore=store)
        c_tf = w.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=store)

        def put(conn, msg, t):
            w.write(conn, t, store.serialize_cdr(msg, msg.__msgtype__))

        # camera optical <- imu: the optical frame's pose in the IMU (body) frame is the usual
        # (-0.5, 0.5, -0.5, 0.5); published as parent imu, child cam_optical.
        put(c_tf, static_tf_msg(kit, T0, "imu", "cam_optical", (-0.5, 0.5, -0.5, 0.5)), T0)
        events = []
        for i in range(int(N_IMAGES / 30 * 200) + 20):
            t = T0 + i * 5_000_000
            events.append((t + 1_000_000, c_imu, imu_msg(kit, t, quat_xyzw=q_wi)))  # logged 1 ms late
        for k in range(N_IMAGES):
            t = T0 + 20_000_000 + k * 33_333_333
            rgb = np.full((H, W, 3), k, dtype=np.uint8)
            events.append((t + 3_000_000, c_img, image_msg(kit, rgb, t)))  # logged 3 ms late
            events.append((t + 3_000_000, c_info, camera_info_msg(kit, K, (W, H), t)))
        for t, conn, msg in sorted(events, key=lambda e: e[0]):
            put(conn, msg, t)


@pytest.mark.slow
def test_bag_to_bag_end_to_end(tmp_path):
    kit = ros_kit()
    src = tmp_path / "in"
    _write_input_bag(src, kit)

    r_c = camera_rotation_for(_world_from_imu_to_gravity_cam())
    engine = FakeEngine((W, H), focal=120.0, principal_point=(80.0, 60.0))
    engine.scene_fn = lambda k: [SeenBody(r_c @ _pelvis_g(k), r_c.copy())]  # upright in the world
    out = tmp_path / "out"
    config = BagRunConfig(
        topics=BagTopics(overlay="/whmr/overlay"), copy_topics=("/camera/camera_info",), progress=False
    )
    summary = run_bag(src, out, engine, TOPOLOGY, config)
    assert summary.images == N_IMAGES and summary.frames_with_output == N_IMAGES
    assert summary.bodies == N_IMAGES and summary.copied == N_IMAGES
    assert "gravity" not in summary.dropped, summary.last_problem

    from rosbags.highlevel import AnyReader

    got: dict[str, list] = {}
    with AnyReader([out]) as reader:
        assert reader.connections[0].msgtype  # readable
        for conn, t, raw in reader.messages():
            got.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    assert len(got["/whmr/body_topology"]) == 1 and len(got["/camera/camera_info"]) == N_IMAGES
    assert len(got["/whmr/bodies"]) == N_IMAGES and len(got["/whmr/overlay"]) == N_IMAGES
    assert 9 <= len(got["/whmr/markers"]) <= 11  # 10 Hz of 1 s
    assert len(got["/diagnostics"]) >= 1 and len(got["/tf"]) == N_IMAGES

    for k, (_, msg) in enumerate(got["/whmr/bodies"]):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert stamp == T0 + 20_000_000 + k * 33_333_333  # image stamps, in order
        assert msg.gravity_source == "imu_orientation"
        (body,) = msg.bodies
        joints = body.joints.reshape(-1, 3)
        # Upright in the gravity frame (z up) despite the pitched camera, and moving with the person.
        expected = (TEMPLATE_JOINTS + _pelvis_g(k)) @ GRAVITY_FROM_G.T
        np.testing.assert_allclose(joints, expected, atol=2e-3)
        assert joints[1, 2] > joints[0, 2] > joints[2, 2]
        assert body.translation_is_metric

    import mcap.reader
    from mcap_ros2.decoder import DecoderFactory

    mcap_file = next(out.glob("*.mcap"))
    with mcap_file.open("rb") as f:
        reader = mcap.reader.make_reader(f, decoder_factories=[DecoderFactory()])
        decoded = list(reader.iter_decoded_messages(topics=["/whmr/bodies", "/whmr/body_topology"]))
    bodies = [m for _, c, _, m in decoded if c.topic == "/whmr/bodies"]
    assert (
        len(bodies) == N_IMAGES
        and bodies[0].bodies[0].track_id == got["/whmr/bodies"][0][1].bodies[0].track_id
    )
    topo = next(m for _, c, _, m in decoded if c.topic == "/whmr/body_topology")
    assert list(topo.joint_names) == list(TOPOLOGY.joint_names)


def _world_from_imu_to_gravity_cam() -> np.ndarray:
    """Gravity in the camera optical frame implied by the IMU mount and orientation."""
    camera_from_imu = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    return camera_from_imu @ _world_from_imu().T @ np.array([0.0, 0.0, -1.0])


def test_output_must_not_exist_and_image_topic_must(tmp_path):
    kit = ros_kit()
    src = tmp_path / "in"
    _write_input_bag(src, kit)
    engine = FakeEngine((W, H), focal=120.0)
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        run_bag(src, tmp_path / "exists", engine, TOPOLOGY, BagRunConfig(progress=False))
    with pytest.raises(ValueError, match="no image topic"):
        run_bag(
            src,
            tmp_path / "o",
            engine,
            TOPOLOGY,
            BagRunConfig(topics=BagTopics(image="/nope"), progress=False),
        )


def test_bag_main_cli_hook(tmp_path, monkeypatch, capsys):
    import whmr_core.runtime.factory as factory
    from whmr_ros.bag_runner import bag_main

    kit = ros_kit()
    src = tmp_path / "in"
    _write_input_bag(src, kit)
    engine = FakeEngine((W, H), focal=120.0, principal_point=(80.0, 60.0))
    engine.bodies = [SeenBody(np.array([0.0, 0.5, 4.0]))]
    seen = {}

    def fake_engine(kind, path, **kw):
        seen["engine"] = (kind, path)
        return engine

    monkeypatch.setattr(factory, "load_engine", fake_engine)
    monkeypatch.setattr(factory, "load_topology", lambda body_model=None, engine=None: TOPOLOGY)
    params = Path(__file__).resolve().parents[1] / "config" / "whmr.params.yaml"
    rc = bag_main(["--input", str(src), "--output", str(tmp_path / "out"), "--model", "m.onnx",
                   "--params", str(params), "--quiet", "--no-mesh-markers"])  # fmt: skip
    assert rc == 0 and seen["engine"] == ("auto", "m.onnx")
    assert f"{N_IMAGES} images, {N_IMAGES} processed" in capsys.readouterr().out
    assert list((tmp_path / "out").glob("*.mcap"))

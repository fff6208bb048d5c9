"""whmr's .msg files: parsed by rosbags, CDR round trips, and a tiny mcap bag read back two ways."""

from __future__ import annotations

import numpy as np
import pytest

from whmr_ros.message_types import MESSAGE_NAMES, message_definitions, typestore


@pytest.fixture(scope="module")
def store():
    return typestore()


def make_messages(store):
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    Pose = store.types["geometry_msgs/msg/Pose"]
    Point = store.types["geometry_msgs/msg/Point"]
    Quaternion = store.types["geometry_msgs/msg/Quaternion"]
    Vector3 = store.types["geometry_msgs/msg/Vector3"]
    BodyMesh = store.types["whmr_ros/msg/BodyMesh"]
    BodyMeshArray = store.types["whmr_ros/msg/BodyMeshArray"]
    Topology = store.types["whmr_ros/msg/BodyModelTopology"]

    header = Header(stamp=Time(sec=12, nanosec=345_000_000), frame_id="camera_gravity")
    quat = Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)
    rng = np.random.default_rng(0)
    body = BodyMesh(
        header=header,
        camera_frame_id="camera_optical_frame",
        track_id=7,
        score=0.9,
        vertices=rng.normal(size=300).astype(np.float32),
        joints=rng.normal(size=72).astype(np.float32),
        pose=np.tile(np.array([0, 0, 0, 1], np.float32), 24),
        betas=np.zeros(10, np.float32),
        root_pose=Pose(position=Point(x=3.0, y=0.5, z=0.9), orientation=quat),
        root_orientation_camera=Quaternion(x=0.7071068, y=0.0, z=0.0, w=0.7071068),
        translation_camera=Vector3(x=-0.5, y=0.9, z=3.0),
        translation_is_metric=True,
        focal_length=615.5,
        focal_from_camera_info=True,
        camera_rotation=quat,
        bbox_center_x=320.0,
        bbox_center_y=240.0,
        bbox_size=180.0,
        keypoints_2d=rng.uniform(0, 480, size=51).astype(np.float32),
        fit="fallback: 3 keypoints seen, 6 needed",
    )
    array = BodyMeshArray(header=header, gravity_source="imu_orientation", bodies=[body, body])
    topo = Topology(
        header=header,
        model_name="test",
        num_vertices=100,
        faces=np.arange(30, dtype=np.uint32),
        joint_names=["pelvis", "left_hip"],
        joint_parents=np.array([-1, 0], np.int32),
        keypoint_names=["nose", "left_eye"],
    )
    return {"BodyMesh": body, "BodyMeshArray": array, "BodyModelTopology": topo}


def test_every_msg_file_parses(store):
    defs = message_definitions()
    assert set(defs) == {f"whmr_ros/msg/{n}" for n in MESSAGE_NAMES}
    for name in defs:
        assert name in store.types


def test_cdr_round_trip(store):
    for name, msg in make_messages(store).items():
        full = f"whmr_ros/msg/{name}"
        raw = store.serialize_cdr(msg, full)
        back = store.deserialize_cdr(raw, full)
        assert store.serialize_cdr(back, full).tobytes() == raw.tobytes()
    body = store.deserialize_cdr(
        store.serialize_cdr(make_messages(store)["BodyMesh"], "whmr_ros/msg/BodyMesh"),
        "whmr_ros/msg/BodyMesh",
    )
    assert body.vertices.dtype == np.float32 and body.vertices.shape == (300,)
    assert body.track_id == 7 and body.translation_is_metric


def test_mcap_bag_round_trip_read_by_rosbags_and_mcap(tmp_path, store):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    msgs = make_messages(store)
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for name, msg in msgs.items():
            full = f"whmr_ros/msg/{name}"
            conn = writer.add_connection(f"/whmr/{name}", full, typestore=store)
            writer.write(conn, 12_345_000_000, store.serialize_cdr(msg, full))

    with AnyReader([bag]) as reader:
        seen = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()}
    assert set(seen) == {f"/whmr/{n}" for n in msgs}
    assert seen["/whmr/BodyMeshArray"].bodies[1].focal_length == pytest.approx(615.5)
    np.testing.assert_array_equal(seen["/whmr/BodyMesh"].vertices, msgs["BodyMesh"].vertices)

    mcap_files = list(bag.glob("*.mcap"))
    assert len(mcap_files) == 1
    with open(mcap_files[0], "rb") as f:
        decoded = {
            ch.topic: m
            for _, ch, _, m in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()
        }
    assert decoded["/whmr/BodyModelTopology"].joint_names == ["pelvis", "left_hip"]
    assert decoded["/whmr/BodyMesh"].bbox_size == pytest.approx(180.0)

"""Synthetic sequence bags read back with rosbags and with the mcap library; IMU gravity matches the truth."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from whmr_core.geometry import camera_rotation_from_gravity
from whmr_core.gravity import as_rotation_matrix, gravity_from_orientation
from whmr_ros.conversions import camera_info_to_intrinsics, header_stamp_ns, image_to_rgb
from whmr_ros.synth_bag import TOPICS, write_sequence_bag

SECONDS = 1.0


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bag") / "seq.mcap"
    write_sequence_bag(path, seconds=SECONDS, seed=3, body="lowres")
    return path


@pytest.fixture(scope="module")
def messages(bag) -> dict[str, list]:
    from rosbags.highlevel import AnyReader

    out: dict[str, list] = defaultdict(list)
    with AnyReader([bag]) as reader:
        for conn, stamp, raw in reader.messages():
            out[conn.topic].append((stamp, reader.deserialize(raw, conn.msgtype)))
    return out


def _quat_matrix(q) -> np.ndarray:
    return as_rotation_matrix(np.array([q.x, q.y, q.z, q.w]))


def test_rosbags_reads_every_topic_at_its_rate(bag, messages):
    assert bag.is_file() and bag.suffix == ".mcap"
    n = round(30 * SECONDS)
    assert len(messages[TOPICS["image"]]) == n
    assert len(messages[TOPICS["camera_info"]]) == n
    assert len(messages[TOPICS["detections"]]) == n
    assert len(messages[TOPICS["ground_truth"]]) == n
    assert len(messages[TOPICS["imu"]]) == round(200 * SECONDS)
    assert len(messages[TOPICS["tf_static"]]) == 1
    stamps = [header_stamp_ns(m) for _, m in messages[TOPICS["image"]]]
    np.testing.assert_allclose(np.diff(stamps), 1e9 / 30, atol=1e3)
    imu_stamps = [header_stamp_ns(m) for _, m in messages[TOPICS["imu"]]]
    assert np.all(np.diff(imu_stamps) == 5_000_000)
    _, img = messages[TOPICS["image"]][0]
    rgb = image_to_rgb(img)
    assert img.encoding == "rgb8" and rgb.shape == (240, 320, 3) and rgb.std() > 5


def test_mcap_library_decodes_the_same_bag(bag, messages):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    counts: Counter = Counter()
    with bag.open("rb") as f:
        for _schema, channel, _message, msg in make_reader(
            f, decoder_factories=[DecoderFactory()]
        ).iter_decoded_messages():
            counts[channel.topic] += 1
            if channel.topic == TOPICS["image"] and counts[channel.topic] == 1:
                assert (msg.height, msg.width, msg.encoding) == (240, 320, "rgb8")
                assert bytes(msg.data) == bytes(messages[TOPICS["image"]][0][1].data)
            if channel.topic == TOPICS["ground_truth"] and counts[channel.topic] == 1:
                assert msg.header.frame_id == "camera_gravity" and len(msg.bodies) == 1
            if channel.topic == TOPICS["detections"] and counts[channel.topic] == 1:
                assert msg.detections[0].results[0].hypothesis.class_id == "person"
    assert counts == Counter({t: len(v) for t, v in messages.items()})


def test_imu_gravity_agrees_with_the_ground_truth_camera_rotation(messages):
    ((_, tf_msg),) = messages[TOPICS["tf_static"]]
    tf = tf_msg.transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("camera_optical_frame", "imu_link")
    camera_from_imu = _quat_matrix(tf.transform.rotation)
    imu = [(header_stamp_ns(m), m) for _, m in messages[TOPICS["imu"]]]
    imu_stamps = np.array([s for s, _ in imu])
    errors = []
    for _, gt in messages[TOPICS["ground_truth"]]:
        stamp = header_stamp_ns(gt)
        R_c = _quat_matrix(gt.bodies[0].camera_rotation)
        m = imu[int(np.argmin(np.abs(imu_stamps - stamp)))][1]
        assert m.orientation_covariance[0] > 0  # REP 145: orientation present
        q = np.array([m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w])
        g = gravity_from_orientation(q, camera_from_imu)
        R_imu = camera_rotation_from_gravity(torch.as_tensor(g)[None])[0].numpy()
        errors.append(np.degrees(np.arccos(np.clip((np.trace(R_imu.T @ R_c) - 1) / 2, -1, 1))))
    # Orientation noise is 0.3 deg per axis; the camera tilts by up to ~20 deg/s between stamps.
    assert np.max(errors) < 1.5, np.max(errors)
    # Not trivially level: pitch and roll vary over the sequence.
    gs = [_quat_matrix(gt.bodies[0].camera_rotation)[:, 1] for _, gt in messages[TOPICS["ground_truth"]]]
    assert np.degrees(np.arccos(np.clip(np.dot(gs[0], gs[-1]), -1, 1))) > 3


def test_ground_truth_projects_into_its_detection_box(messages):
    R_ros_from_g = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    for (_, info), (_, gt), (_, det) in zip(
        messages[TOPICS["camera_info"]], messages[TOPICS["ground_truth"]], messages[TOPICS["detections"]],
        strict=True,
    ):  # fmt: skip
        K = camera_info_to_intrinsics(info).K
        body = gt.bodies[0]
        R_c = _quat_matrix(body.camera_rotation)
        joints_g = np.asarray(body.joints, dtype=np.float64).reshape(-1, 3) @ R_ros_from_g  # ROS -> G
        joints_c = joints_g @ R_c.T
        p = joints_c[:, :2] / joints_c[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
        box = det.detections[0].bbox
        c = np.array([box.center.position.x, box.center.position.y])
        half = np.array([box.size_x, box.size_y]) / 2 * 1.25
        assert np.all(np.abs(p - c) <= half), (p, c, half)
        # Pelvis: root_pose.position is joint 0 in the gravity frame (ROS axes).
        pos = body.root_pose.position
        np.testing.assert_allclose([pos.x, pos.y, pos.z], np.asarray(body.joints[:3]), atol=1e-5)

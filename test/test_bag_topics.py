"""``whmr bag`` without topic flags: topics found by type, the bag's detections used, fallbacks said."""

from __future__ import annotations

import numpy as np
import pytest
from whmr_fakes import (
    TOPOLOGY,
    FakeEngine,
    SeenBody,
    camera_info_msg,
    detections_msg,
    image_msg,
    ros_kit,
)

from whmr_core.runtime.config import PipelineConfig
from whmr_ros.bag_runner import BagRunConfig, BagTopics, bag_main, run_bag
from whmr_ros.bag_topics import select_topics

IMG, INFO, IMU, DET = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "sensor_msgs/msg/Imu",
    "vision_msgs/msg/Detection2DArray",
)
DEFAULTS = {
    "image": "/camera/image_raw",
    "camera_info": "/camera/camera_info",
    "imu": "/imu/data",
    "detections": "",
}
NOTHING_GIVEN = dict.fromkeys(DEFAULTS)


def test_defaults_present_are_used_without_a_word():
    bag = {"/camera/image_raw": IMG, "/camera/camera_info": INFO, "/imu/data": IMU}
    c = select_topics(bag, NOTHING_GIVEN, DEFAULTS)
    assert c.topics == {**DEFAULTS} and c.errors == []
    assert c.notes == []


def test_topics_found_by_type_when_the_defaults_are_absent():
    bag = {"/cam/color/image_raw": IMG, "/cam/color/camera_info": INFO, "/robot/imu": IMU, "/people": DET}
    c = select_topics(bag, NOTHING_GIVEN, DEFAULTS)
    assert c.topics == {"image": "/cam/color/image_raw", "camera_info": "/cam/color/camera_info",
                        "imu": "/robot/imu", "detections": "/people"}  # fmt: skip
    assert any(n.startswith("detections: /people") for n in c.notes)
    assert any("/camera/image_raw absent" in n for n in c.notes)


def test_ambiguous_choices_are_left_to_the_user():
    bag = {"/a/image": IMG, "/b/image": IMG, "/a/camera_info": INFO, "/b/camera_info": INFO,
           "/d1": DET, "/d2": DET}  # fmt: skip
    c = select_topics(bag, NOTHING_GIVEN, DEFAULTS)
    assert c.errors and "pass --image" in c.errors[0]
    # Given the image, its CameraInfo is the one beside it; two detection topics stay unused.
    c = select_topics(bag, {**NOTHING_GIVEN, "image": "/b/image"}, DEFAULTS)
    assert c.errors == [] and c.topics["camera_info"] == "/b/camera_info"
    assert c.topics["detections"] == "" and any("pass --detections" in n for n in c.notes)
    # A default name holding another type is kept when nothing else fits (the runner says what it holds).
    c = select_topics({"/camera/image_raw": "sensor_msgs/msg/CompressedImage"}, NOTHING_GIVEN, DEFAULTS)
    assert c.errors == [] and c.topics["image"] == "/camera/image_raw"
    # A flag always wins, '' included (no detections).
    c = select_topics({"/x": IMG, "/people": DET}, {**NOTHING_GIVEN, "detections": ""}, DEFAULTS)
    assert c.topics["detections"] == "" and c.topics["image"] == "/x"


W, H = 160, 120
K = np.array([[120.0, 0.0, 80.0], [0.0, 120.0, 60.0], [0.0, 0.0, 1.0]])
T0 = 1_700_000_000_000_000_000
N = 6
BODY = SeenBody(np.array([0.5, 0.3, 4.0]))


def _bag(path, *, detections: bool):
    from rosbags.rosbag2 import StoragePlugin, Writer

    kit = ros_kit()
    store = kit.store
    engine = FakeEngine((W, H), focal=120.0, principal_point=(80.0, 60.0))
    box = engine.box_of(BODY, 20.0)
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        c_img = w.add_connection("/cam/color/image_raw", IMG, typestore=store)
        c_info = w.add_connection("/cam/color/camera_info", INFO, typestore=store)
        c_det = w.add_connection("/people", DET, typestore=store) if detections else None
        for k in range(N):
            t = T0 + k * 33_333_333
            for conn, msg in ((c_img, image_msg(kit, np.zeros((H, W, 3), np.uint8), t)),
                              (c_info, camera_info_msg(kit, K, (W, H), t)),
                              (c_det, detections_msg(kit, t, [box], [0.9]) if c_det else None)):  # fmt: skip
                if conn is not None:
                    w.write(conn, t, store.serialize_cdr(msg, msg.__msgtype__))
    return box


@pytest.fixture
def fake_models(monkeypatch):
    import whmr_core.runtime.factory as factory

    engine = FakeEngine((W, H), focal=120.0, principal_point=(80.0, 60.0))
    engine.bodies = [BODY]
    monkeypatch.setattr(factory, "load_engine", lambda *a, **kw: engine)
    monkeypatch.setattr(factory, "load_topology", lambda body_model=None, **kw: TOPOLOGY)
    return engine


def test_whmr_bag_uses_the_bags_only_detections_topic_and_says_so(tmp_path, fake_models, capsys):
    from rosbags.highlevel import AnyReader

    src = tmp_path / "in"
    box = _bag(src, detections=True)
    assert bag_main(["--input", str(src), "--output", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr()
    err = printed.err
    assert "image: /cam/color/image_raw" in err and "camera_info: /cam/color/camera_info" in err
    assert "detections: /people" in err
    assert f"{N} images, {N} processed, {N} bodies" in printed.out
    with AnyReader([tmp_path / "out"]) as reader:
        conns = [c for c in reader.connections if c.topic == "/whmr/bodies"]
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    (b,) = msgs[0].bodies
    # The crop came from the detection (its centre); K made the depth metric: 4 m, as the camera saw.
    assert (b.bbox_center_x, b.bbox_center_y) == pytest.approx(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
    assert b.translation_is_metric and b.translation_camera.z == pytest.approx(4.0, abs=1e-3)


def test_falling_back_to_the_whole_image_is_never_silent(tmp_path, fake_models, caplog):
    src = tmp_path / "in"
    _bag(src, detections=False)
    topics = BagTopics(image="/cam/color/image_raw", camera_info="/cam/color/camera_info")
    config = BagRunConfig(topics=topics, pipeline=PipelineConfig(detector="none"), progress=False)
    with caplog.at_level("WARNING"):
        summary = run_bag(src, tmp_path / "out", fake_models, TOPOLOGY, config)
    # The first image has no box at all; the later ones follow the body found there (tracked boxes).
    assert summary.bodies == N
    assert summary.dropped.get("boxes") == 1 and "whole image" in summary.last_problem["boxes"]
    warnings = [r.getMessage() for r in caplog.records if "whole image" in r.getMessage()]
    assert len(warnings) == 1
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "out"]) as reader:
        conns = [c for c in reader.connections if c.topic == "/diagnostics"]
        diag = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    inputs = [st for d in diag for st in d.status if st.name.endswith("inputs")]
    assert inputs and "whole image" in inputs[-1].message
    assert {kv.key: kv.value for kv in inputs[-1].values}["dropped_boxes"] == "1"


def test_no_image_topic_is_a_clear_error(tmp_path, fake_models, capsys):
    from rosbags.rosbag2 import StoragePlugin, Writer

    kit = ros_kit()
    src = tmp_path / "in"
    with Writer(src, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/cam/camera_info", INFO, typestore=kit.store)
        msg = camera_info_msg(kit, K, (W, H), T0)
        w.write(c, T0, kit.store.serialize_cdr(msg, msg.__msgtype__))
    with pytest.raises(ValueError, match="no sensor_msgs/msg/Image topic"):
        bag_main(["--input", str(src), "--output", str(tmp_path / "out"), "--quiet"])

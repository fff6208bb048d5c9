"""What the host does with bad sensor input: each bad part judged on its own, counted in the diagnostics,
warned about (throttled), and the good parts still used."""

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
)

from whmr_core.runtime.pipeline import Pipeline, PipelineConfig
from whmr_ros.host import HostConfig, WhmrHost

W, H = 320, 240
RGB = np.full((H, W, 3), 90, dtype=np.uint8)
MS = 1_000_000
IDENTITY = (0.0, 0.0, 0.0, 1.0)
ROLL_90 = (math.sin(math.pi / 4), 0.0, 0.0, math.cos(math.pi / 4))  # 90 degrees off a level IMU
LEVEL_ACCEL = (0.0, 0.0, 9.81)  # at rest, reads +g up


def make_host(config: HostConfig | None = None, warnings: list[str] | None = None, **pipe_kw):
    engine = FakeEngine((W, H), focal=250.0)
    engine.bodies = [SeenBody(np.array([0.2, 0.5, 3.0]))]
    pipe = Pipeline(engine, TOPOLOGY, PipelineConfig(**pipe_kw))
    warn = warnings.append if warnings is not None else None
    return WhmrHost(pipe, config or HostConfig(), ros_kit(), warn=warn), engine


def imu_host(**kw) -> WhmrHost:
    # IMU axes = camera axes: gravity in the camera frame is the IMU's down direction.
    host, _ = make_host(HostConfig(camera_from_imu=IDENTITY, **kw))
    return host


def feed_imu(host: WhmrHost, quat, accel=LEVEL_ACCEL, cov=None, n: int = 10) -> None:
    for k in range(n):
        host.on_imu(imu_msg(host.kit, k * 5 * MS, quat_xyzw=quat, accel=accel, orientation_cov=cov))


def gravity_of(host: WhmrHost, stamp: int = 40 * MS):
    out = host.process(host.on_image(image_msg(host.kit, RGB, stamp)))
    return out.result.gravity_source, out.result.camera_rotation[:, 1], out.result.gravity_reason


def inputs_status(host: WhmrHost):
    return host.diagnostics(0).status[2]


# --- IMU ---------------------------------------------------------------------------------------------


def test_a_nan_quaternion_does_not_discard_the_good_accelerometer():
    host = imu_host()
    feed_imu(host, (math.nan, 0.0, 0.0, 1.0))
    source, g, reason = gravity_of(host)
    assert source == "imu_accel" and "non-finite" in reason
    np.testing.assert_allclose(g, [0.0, 0.0, -1.0], atol=1e-9)
    assert host.dropped["imu"] == 10 and "orientation: contains non-finite" in host.last_problem["imu"]


def test_an_orientation_with_huge_tilt_variance_is_rejected():
    """A 90-degree-wrong quaternion with covariance 1e6 rad^2 used to be used, diagnostics "all usable"."""
    host = imu_host()
    feed_imu(host, ROLL_90, cov=np.eye(3).ravel() * 1e6)
    source, g, _ = gravity_of(host)
    assert source == "imu_accel"
    np.testing.assert_allclose(g, [0.0, 0.0, -1.0], atol=1e-9)
    status = inputs_status(host)
    assert status.level == 1 and "roll/pitch variance 1e+06 rad^2" in status.message


def test_an_orientation_disagreeing_with_the_accelerometer_is_rejected():
    host = imu_host()
    feed_imu(host, ROLL_90, cov=np.eye(3).ravel() * 1e-4)  # confident, and wrong
    source, g, reason = gravity_of(host)
    assert source == "imu_accel" and "disagrees with the low-passed accelerometer by 90 deg" in reason
    np.testing.assert_allclose(g, [0.0, 0.0, -1.0], atol=1e-9)
    assert inputs_status(host).level == 1


def test_an_unknown_yaw_does_not_reject_a_good_orientation():
    host = imu_host()
    feed_imu(host, IDENTITY, cov=np.diag([1e-4, 1e-4, 1e6]).ravel())  # no magnetometer: yaw unknown
    source, _, reason = gravity_of(host)
    assert source == "imu_orientation" and not reason and "imu" not in host.dropped


def test_a_small_disagreement_is_accepted_and_the_threshold_is_a_parameter():
    tilt = math.radians(20)
    quat = (math.sin(tilt / 2), 0.0, 0.0, math.cos(tilt / 2))
    assert gravity_of(_fed(imu_host(), quat))[0] == "imu_orientation"  # 20 < 30 degrees
    assert gravity_of(_fed(imu_host(imu_max_disagreement_deg=10.0), quat))[0] == "imu_accel"


def _fed(host: WhmrHost, quat) -> WhmrHost:
    feed_imu(host, quat)
    return host


def test_no_imu_at_all_says_so():
    host, _ = make_host()  # camera <- imu from TF, and no IMU topic recorded
    source, _, reason = gravity_of(host)
    assert source == "parameter"
    assert "imu_orientation: no IMU messages" in reason and "rotation unknown" not in reason


def test_orientation_flagged_invalid_still_uses_the_accelerometer():
    host = imu_host()
    feed_imu(host, ROLL_90, cov=[-1.0] + [0.0] * 8)
    assert gravity_of(host)[0] == "imu_accel" and "imu" not in host.dropped  # not a problem: documented


# --- CameraInfo --------------------------------------------------------------------------------------

K = np.array([[250.0, 0.0, 160.0], [0.0, 250.0, 120.0], [0.0, 0.0, 1.0]])


def _camera_info(host, k=K, d=(0.0,) * 5, stamp=1):
    msg = camera_info_msg(host.kit, k, (W, H), stamp)
    msg.d = np.asarray(d, dtype=np.float64)
    return msg


def test_a_non_physical_focal_length_is_refused_and_depth_stays_relative():
    """fx = 1e-6 used to be taken, and every person dropped as "a joint lies behind the camera"."""
    host, _ = make_host()
    k = K.copy()
    k[0, 0] = 1e-6
    host.on_camera_info(_camera_info(host, k))
    out = host.process(host.on_image(image_msg(host.kit, RGB, 2)))
    assert len(out.result.persons) == 1 and not out.result.persons[0].translation_is_metric
    assert "field of view" in host.last_problem["camera_info"] and "person" not in host.dropped


def test_a_principal_point_outside_the_image_is_refused():
    host, _ = make_host()
    k = K.copy()
    k[0, 2] = 1600.0  # full-sensor K for a cropped image
    host.on_camera_info(_camera_info(host, k))
    assert host.intrinsics is None and "outside the 320x240 image" in host.last_problem["camera_info"]


def test_lens_distortion_is_warned_about_once_per_lens_and_shows_in_diagnostics():
    warnings: list[str] = []
    host, _ = make_host(warnings=warnings)
    for stamp in range(5):
        host.on_camera_info(_camera_info(host, d=(-0.3, 0.1, 0.0, 0.0, 0.0), stamp=stamp))
    assert host.dropped["camera_info"] == 1 and len(warnings) == 1
    assert "distortion ignored (plumb_bob, up to" in warnings[0] and "rectified image" in warnings[0]
    assert host.intrinsics is not None  # K is still used: the warning is about the corners
    assert inputs_status(host).level == 1


def test_negligible_distortion_is_not_a_problem():
    host, _ = make_host()
    host.on_camera_info(_camera_info(host, d=(1e-7, 0.0, 0.0, 0.0, 0.0)))
    assert "camera_info" not in host.dropped


# --- detections --------------------------------------------------------------------------------------


def _detector_host(warnings=None):
    host, engine = make_host(warnings=warnings)
    register_vision_msgs(host.kit.store)
    return host, engine


def test_a_nan_score_is_a_counted_drop_not_a_silent_zero():
    host, engine = _detector_host()
    box = engine.box_of(engine.bodies[0], 40)
    host.on_detections(detections_msg(host.kit, 7, [box], [math.nan]))
    out = host.process(host.on_image(image_msg(host.kit, RGB, 7)))
    assert not out.result.persons and host.dropped["person"] == 1
    assert "not finite" in host.last_problem["person"] and inputs_status(host).level == 1


def test_detections_that_never_match_an_image_are_a_problem_with_a_throttled_warning():
    """An offset clock: every detection 0.5 s off its image. Used to fall back silently, diagnostics OK."""
    warnings: list[str] = []
    host, engine = _detector_host(warnings)
    box = engine.box_of(engine.bodies[0], 40)
    for k in range(5):
        stamp = 1_000 * MS + k * 33 * MS
        host.on_detections(detections_msg(host.kit, stamp + 500 * MS, [box], [0.9]))
        out = host.process(host.on_image(image_msg(host.kit, RGB, stamp)))
        assert out.result.box_source != "detection"
    assert host.dropped["detections"] == 5 and len([w for w in warnings if w.startswith("detections")]) == 1
    status = inputs_status(host)
    assert status.level == 1 and "none within detection_max_age_s=0.02 s of the image stamp" in status.message


def test_detections_matching_their_image_are_no_problem():
    host, engine = _detector_host()
    box = engine.box_of(engine.bodies[0], 40)
    host.on_detections(detections_msg(host.kit, 7 * MS, [box], [0.9]))
    out = host.process(host.on_image(image_msg(host.kit, RGB, 7 * MS + 5 * MS)))
    assert out.result.box_source == "detection" and "detections" not in host.dropped


# --- time jumps --------------------------------------------------------------------------------------


def test_a_time_jump_back_restarts_tracks_but_keeps_gravity_from_the_imu():
    """A looping bag: the first looped frames used to be dropped and then fall back to parameter gravity,
    with a message telling a bag user to "call reset()"."""
    host = imu_host()
    warnings: list[str] = []
    host._warn = warnings.append

    def second(t0: int):
        outs = []
        for k in range(30):
            t = t0 + k * 33 * MS
            for j in range(7):
                host.on_imu(imu_msg(host.kit, t + j * 5 * MS, quat_xyzw=IDENTITY, accel=LEVEL_ACCEL))
            outs.append(host.process(host.on_image(image_msg(host.kit, RGB, t + 10 * MS))))
        return outs

    first = second(0)
    looped = second(0)  # the same second again
    assert all(o is not None for o in looped)
    assert {o.result.gravity_source for o in looped} == {"imu_orientation"}
    assert looped[0].result.persons[0].track_id != first[-1].result.persons[0].track_id  # tracks restarted
    assert host.dropped["time"] == 1 and "jumped back 0.957 s" in host.last_problem["time"]
    assert "frame" not in host.dropped and not any("reset()" in w for w in warnings)


def test_a_frame_with_a_k_no_camera_has_is_refused_by_the_pipeline_with_the_reason():
    """Hosts other than the ROS ones (scripts, ``whmr image``) hand K to the Pipeline directly."""
    from whmr_core.runtime.pipeline import Frame, InputError

    host, _ = make_host()
    k = K.copy()
    k[0, 0] = 1e-6
    with pytest.raises(InputError, match="K: fx=1e-06 px gives a 180 deg field of view"):
        host.pipeline.process(Frame(RGB, 1, K=k))
    assert host.pipeline.process(Frame(RGB, 2, K=K)).persons[0].translation_is_metric

"""What the host does with bad sensor input: each bad part judged on its own, counted in the diagnostics,
warned about (throttled), and the good parts still used."""

from __future__ import annotations

import math

import numpy as np
from whmr_fakes import TOPOLOGY, FakeEngine, SeenBody, image_msg, imu_msg, ros_kit

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

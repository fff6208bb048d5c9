"""Gravity in the camera optical frame from IMU orientation / accelerometer / TF / parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from whmr_core.gravity import (
    GravityEstimator,
    GravityUnavailableError,
    as_rotation_matrix,
    gravity_from_accel,
    gravity_from_fixed_frame,
    gravity_from_orientation,
    slerp_xyzw,
)

# IMU mounted as the camera's body frame (REP 103: x forward, y left, z up); optical = (-y, -z, x).
CAM_FROM_IMU = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
G = 9.80665
MS = 1_000_000  # ns


def q_pitch(deg: float) -> np.ndarray:
    """Rotation about the body y axis (xyzw); positive pitch points the nose (camera) down."""
    h = math.radians(deg) / 2
    return np.array([0.0, math.sin(h), 0.0, math.cos(h)])


def q_roll(deg: float) -> np.ndarray:
    """Rotation about the body x axis (xyzw); positive roll lowers the right side."""
    h = math.radians(deg) / 2
    return np.array([math.sin(h), 0.0, 0.0, math.cos(h)])


def q_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def accel_pitch(deg: float) -> np.ndarray:
    """Accelerometer at rest in the IMU frame pitched by ``deg``: +g along world up, seen in I."""
    t = math.radians(deg)
    return G * np.array([-math.sin(t), 0.0, math.cos(t)])


def expected_pitch(deg: float) -> np.ndarray:
    """Hand-derived: pitched down by t, gravity in the optical frame is (0, cos t, sin t)."""
    t = math.radians(deg)
    return np.array([0.0, math.cos(t), math.sin(t)])


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


# --- pure functions ----------------------------------------------------------------------------------


def test_level_camera_gravity_is_plus_y_and_rotation_identity() -> None:
    g = gravity_from_orientation([0, 0, 0, 1], CAM_FROM_IMU)
    np.testing.assert_allclose(g, [0, 1, 0], atol=1e-12)
    est = GravityEstimator(CAM_FROM_IMU)
    est.add_imu(0, [0, 0, 0, 1])
    np.testing.assert_allclose(est.gravity_at(0).camera_rotation(), np.eye(3), atol=1e-12)


@pytest.mark.parametrize("deg", [-40.0, 10.0, 30.0, 75.0])
def test_pitch_from_orientation_and_accel(deg: float) -> None:
    np.testing.assert_allclose(
        gravity_from_orientation(q_pitch(deg), CAM_FROM_IMU), expected_pitch(deg), atol=1e-12
    )
    np.testing.assert_allclose(
        gravity_from_accel(accel_pitch(deg), CAM_FROM_IMU), expected_pitch(deg), atol=1e-12
    )


def test_pitch_30_hand_numbers() -> None:
    np.testing.assert_allclose(
        gravity_from_orientation(q_pitch(30), CAM_FROM_IMU), [0, 0.8660254, 0.5], atol=1e-7
    )


def test_roll_lowers_right_side() -> None:
    # Right side down by 20 deg: gravity leans to +x (image right): (sin 20, cos 20, 0).
    g = gravity_from_orientation(q_roll(20), CAM_FROM_IMU)
    np.testing.assert_allclose(g, [0.34202014, 0.93969262, 0.0], atol=1e-7)


def test_yaw_does_not_change_gravity() -> None:
    yaw = np.array([0.0, 0.0, math.sin(0.6), math.cos(0.6)])  # 68.8 deg about world z
    q = q_mul(yaw, q_mul(q_pitch(25), q_roll(-15)))
    np.testing.assert_allclose(
        gravity_from_orientation(q, CAM_FROM_IMU),
        gravity_from_orientation(q_mul(q_pitch(25), q_roll(-15)), CAM_FROM_IMU),
        atol=1e-12,
    )


def test_fixed_frame_matches_orientation() -> None:
    q = q_mul(q_pitch(25), q_roll(-15))
    world_from_imu = as_rotation_matrix(q)
    camera_from_world = CAM_FROM_IMU @ world_from_imu.T
    np.testing.assert_allclose(
        gravity_from_fixed_frame(camera_from_world), gravity_from_orientation(q, CAM_FROM_IMU), atol=1e-12
    )


def test_pitched_camera_rotation_maps_gravity_axis() -> None:
    est = GravityEstimator(CAM_FROM_IMU)
    est.add_imu(0, q_pitch(30))
    r = est.gravity_at(0).camera_rotation()
    np.testing.assert_allclose(r @ [0, 1, 0], expected_pitch(30), atol=1e-9)  # y_G is gravity
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)


def test_slerp_halfway_and_short_arc() -> None:
    np.testing.assert_allclose(slerp_xyzw(q_pitch(10), q_pitch(30), 0.5), q_pitch(20), atol=1e-12)
    # -q is the same rotation: interpolation must still stay between 10 and 30 degrees.
    np.testing.assert_allclose(slerp_xyzw(q_pitch(10), -q_pitch(30), 0.25), q_pitch(15), atol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [np.eye(3) * 2, np.diag([1.0, 1.0, -1.0]), np.full((3, 3), np.nan), np.zeros(4), np.ones(2)],
)
def test_as_rotation_matrix_rejects(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        as_rotation_matrix(bad)


# --- estimator: interpolation, staleness, invalid readings, fallbacks -------------------------------


def test_orientation_interpolated_at_image_stamp() -> None:
    est = GravityEstimator(CAM_FROM_IMU)
    assert est.add_imu(0, q_pitch(10)) == []
    assert est.add_imu(10 * MS, q_pitch(20)) == []
    for t_ms, deg in [(0.0, 10.0), (2.5, 12.5), (5.0, 15.0), (10.0, 20.0)]:
        e = est.gravity_at(int(t_ms * MS))
        assert e.source == "imu_orientation" and e.reason == "" and not e.is_fallback
        np.testing.assert_allclose(e.gravity, expected_pitch(deg), atol=1e-9)
    assert est.gravity_at(int(2.5 * MS)).age_ns == int(2.5 * MS)


def test_accel_interpolated_without_filter() -> None:
    est = GravityEstimator(CAM_FROM_IMU, sources=("imu_accel", "parameter"), accel_time_constant_s=0.0)
    est.add_imu(0, accel=accel_pitch(10))
    est.add_imu(10 * MS, accel=accel_pitch(20))
    e = est.gravity_at(5 * MS)
    assert e.source == "imu_accel"
    np.testing.assert_allclose(e.gravity, expected_pitch(15), atol=1e-9)


def test_accel_low_pass_time_constant_and_noise() -> None:
    tau = 0.2
    est = GravityEstimator(CAM_FROM_IMU, sources=("imu_accel",), accel_time_constant_s=tau)
    rng = np.random.default_rng(0)
    period = 5 * MS  # 200 Hz
    raw_err, filt_err = [], []
    for i in range(200):  # 1 s at rest, 10 deg pitch, noisy (0.5 m/s^2 per axis)
        a = accel_pitch(10) + rng.normal(0, 0.5, 3)
        est.add_imu(i * period, accel=a)
        if i > 100:
            raw_err.append(angle_deg(gravity_from_accel(a, CAM_FROM_IMU), expected_pitch(10)))
            filt_err.append(angle_deg(est.gravity_at(i * period).gravity, expected_pitch(10)))
    assert np.mean(filt_err) < 0.25 * np.mean(raw_err)
    # Step to 40 deg: after one time constant the filter has gone about 1 - 1/e of the way.
    t0 = 200 * period
    steps = round(tau * 1e9 / period)
    for i in range(steps + 1):
        est.add_imu(t0 + i * period, accel=accel_pitch(40))
    pitch = math.degrees(math.atan2(*est.gravity_at(t0 + steps * period).gravity[[2, 1]]))
    assert 10 + 30 * 0.5 < pitch < 10 + 30 * 0.75, pitch


def test_holds_last_reading_within_age_then_falls_back() -> None:
    est = GravityEstimator(CAM_FROM_IMU, max_age_ns=100 * MS)
    for i in range(11):
        est.add_imu(i * 10 * MS, q_pitch(30))
    held = est.gravity_at(150 * MS)  # 50 ms after the last reading: held, not extrapolated
    assert held.source == "imu_orientation" and held.age_ns == 50 * MS
    stale = est.gravity_at(300 * MS, tf_gravity=expected_pitch(5))
    assert stale.source == "tf"
    assert "imu_orientation: stale" in stale.reason and "200.0 ms" in stale.reason
    assert "imu_accel: no readings" in stale.reason
    np.testing.assert_allclose(stale.gravity, expected_pitch(5))
    before = est.gravity_at(-200 * MS)
    assert before.source == "parameter" and "stale" in before.reason and "tf: no gravity" in before.reason
    np.testing.assert_allclose(before.gravity, [0, 1, 0])


def test_gap_between_readings_holds_nearest() -> None:
    est = GravityEstimator(CAM_FROM_IMU, max_age_ns=20 * MS)
    est.add_imu(0, q_pitch(10))
    est.add_imu(500 * MS, q_pitch(50))
    e = est.gravity_at(10 * MS)  # 10 ms after the first, 490 ms before the second: no interpolation
    np.testing.assert_allclose(e.gravity, expected_pitch(10), atol=1e-12)
    assert est.gravity_at(250 * MS).source == "parameter"


def test_invalid_orientation_flag_falls_back_to_accel_with_reason() -> None:
    est = GravityEstimator(CAM_FROM_IMU, accel_time_constant_s=0.0)
    problems = est.add_imu(0, q_pitch(60), accel_pitch(20), orientation_covariance0=-1.0)
    assert problems == ["orientation: flagged invalid (orientation_covariance[0] == -1)"]
    e = est.gravity_at(0)
    assert e.source == "imu_accel" and e.is_fallback
    assert "imu_orientation: no readings (last rejected: orientation: flagged invalid" in e.reason
    np.testing.assert_allclose(e.gravity, expected_pitch(20), atol=1e-9)
    assert est.rejected == 1


@pytest.mark.parametrize(
    ("orientation", "accel", "needle"),
    [
        ([0, 0, 0, 0], None, "quaternion norm"),
        ([np.nan, 0, 0, 1], None, "non-finite"),
        ([0, 0, 0, 3], None, "quaternion norm"),
        (None, [0, 0, 0], "norm 0"),
        (None, [np.nan, 0, 9.8], "3 finite values"),
        (None, [0, 0, 30.0], "outside"),
    ],
)
def test_zero_nan_readings_rejected(orientation: list | None, accel: list | None, needle: str) -> None:
    est = GravityEstimator(CAM_FROM_IMU)
    problems = est.add_imu(0, orientation, accel)
    assert len(problems) == 1 and needle in problems[0], problems
    assert est.rejected == 1 and est.last_rejection == problems[0]
    e = est.gravity_at(0)
    assert e.source == "parameter" and "last rejected" in e.reason


def test_out_of_order_readings_rejected() -> None:
    est = GravityEstimator(CAM_FROM_IMU)
    est.add_imu(10 * MS, q_pitch(10), accel_pitch(10))
    problems = est.add_imu(5 * MS, q_pitch(40), accel_pitch(40))
    assert len(problems) == 2 and all("not after" in p for p in problems)
    np.testing.assert_allclose(est.gravity_at(10 * MS).gravity, expected_pitch(10), atol=1e-9)


def test_unknown_camera_from_imu_falls_back_until_set() -> None:
    est = GravityEstimator()
    est.add_imu(0, q_pitch(30))
    e = est.gravity_at(0)
    assert e.source == "parameter" and "camera <- imu rotation unknown" in e.reason
    # The usual static TF body -> optical has rotation (-0.5, 0.5, -0.5, 0.5): the optical frame's pose in
    # the body frame, i.e. body <- optical. Camera <- IMU is its conjugate, as lookup_transform(camera, imu)
    # returns it.
    est.set_camera_from_imu([0.5, -0.5, 0.5, 0.5])
    np.testing.assert_allclose(est.camera_from_imu, CAM_FROM_IMU, atol=1e-12)
    np.testing.assert_allclose(est.gravity_at(0).gravity, expected_pitch(30), atol=1e-9)


def test_no_parameter_source_raises() -> None:
    est = GravityEstimator(CAM_FROM_IMU, sources=("imu_orientation", "tf"))
    with pytest.raises(GravityUnavailableError, match="imu_orientation: no IMU messages; tf: no gravity"):
        est.gravity_at(0)
    assert est.gravity_at(0, tf_gravity=[0, 2, 0]).source == "tf"


def test_bad_tf_gravity_falls_through() -> None:
    est = GravityEstimator(CAM_FROM_IMU, sources=("tf", "parameter"), parameter_gravity=(0, 0, 1))
    e = est.gravity_at(0, tf_gravity=[0, 0, 0])
    assert e.source == "parameter" and "tf: tf_gravity: zero vector" in e.reason
    np.testing.assert_allclose(e.gravity, [0, 0, 1])


def test_buffer_window_and_reset() -> None:
    est = GravityEstimator(CAM_FROM_IMU, buffer_ns=100 * MS, max_age_ns=1_000 * MS)
    for i in range(100):  # 1 s at 100 Hz; only the last 100 ms are kept
        est.add_imu(i * 10 * MS, q_pitch(i * 0.5))
    assert len(est._orientation.stamps) <= 11
    est.reset()
    assert est.gravity_at(990 * MS).source == "parameter"
    est.add_imu(0, q_pitch(5))  # after a reset an earlier stamp (bag loop) is accepted
    np.testing.assert_allclose(est.gravity_at(0).gravity, expected_pitch(5), atol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sources": ("imu", "parameter")},
        {"sources": ()},
        {"sources": ("tf", "tf")},
        {"max_age_ns": 0},
        {"accel_norm_range": (5.0, 1.0)},
        {"parameter_gravity": (0, 0, 0)},
    ],
)
def test_bad_configuration_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GravityEstimator(CAM_FROM_IMU, **kwargs)


def test_an_imu_clock_jump_back_restarts_the_buffers_instead_of_rejecting_every_reading() -> None:
    est = GravityEstimator(CAM_FROM_IMU)
    for i in range(100):
        est.add_imu(i * 10 * MS, q_pitch(10))
    assert est.add_imu(5 * MS, q_pitch(30)) == []  # 985 ms back: a bag loop, not a late reading
    assert est.clock_resets == 1
    np.testing.assert_allclose(est.gravity_at(5 * MS).gravity, expected_pitch(30), atol=1e-9)

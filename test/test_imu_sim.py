"""Simulated IMU readings agree with the gravity estimator and with hand-computed tilts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from whmr_core.data.imu_sim import GRAVITY, ImuNoise, simulate_imu
from whmr_core.gravity import gravity_from_accel, gravity_from_orientation
from whmr_core.rotations import axis_angle_to_matrix


def cam_rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    # Positive pitch looks down: gravity leans towards +z_C.
    pitch = axis_angle_to_matrix(torch.tensor([[math.radians(pitch_deg), 0.0, 0.0]], dtype=torch.float64))
    roll = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.radians(roll_deg)]], dtype=torch.float64))
    return (roll @ pitch)[0].numpy()


# Camera <- IMU of a typical body-mounted IMU (x forward, y left, z up) seen from the optical frame.
R_CI = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def test_static_level_camera_reads_plus_g_up():
    stamps = np.arange(5) * 5_000_000
    imu = simulate_imu(stamps, np.repeat(np.eye(3)[None], 5, 0), camera_from_imu=R_CI)
    np.testing.assert_allclose(imu.accel, np.tile([0.0, 0.0, GRAVITY], (5, 1)), atol=1e-12)
    np.testing.assert_allclose(imu.gyro, 0.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(imu.orientation_xyzw[:, 3]), 1.0, atol=1e-12)  # identity


@pytest.mark.parametrize(("pitch", "roll"), [(30.0, 0.0), (-20.0, 10.0), (45.0, -15.0)])
def test_gravity_recovered_from_accel_and_orientation(pitch, roll):
    r_c = cam_rotation(pitch, roll)
    stamps = np.arange(3) * 5_000_000
    imu = simulate_imu(stamps, np.repeat(r_c[None], 3, 0), camera_from_imu=R_CI)
    want = r_c[:, 1]  # gravity (down) seen from the camera
    np.testing.assert_allclose(gravity_from_accel(imu.accel[0], R_CI), want, atol=1e-9)
    np.testing.assert_allclose(gravity_from_orientation(imu.orientation_xyzw[0], R_CI), want, atol=1e-9)


def test_pitch_30_by_hand():
    g = cam_rotation(30.0, 0.0)[:, 1]
    np.testing.assert_allclose(g, [0.0, math.cos(math.radians(30)), math.sin(math.radians(30))], atol=1e-12)


def test_gyro_measures_a_constant_pitch_rate():
    rate = math.radians(20.0)  # rad/s about the camera x axis
    stamps = np.arange(11) * 10_000_000
    r_c = np.stack([cam_rotation(math.degrees(rate * i * 0.01), 0.0) for i in range(11)])
    imu = simulate_imu(stamps, r_c)  # IMU frame = camera frame
    np.testing.assert_allclose(np.linalg.norm(imu.gyro, axis=1), rate, rtol=1e-9)
    assert abs(abs(imu.gyro[0, 0]) - rate) < 1e-9


def test_noise_is_bounded_and_reproducible():
    stamps = np.arange(400) * 5_000_000
    r_c = np.repeat(cam_rotation(10, 5)[None], 400, 0)
    a = simulate_imu(stamps, r_c, noise=ImuNoise(), rng=np.random.default_rng(3))
    b = simulate_imu(stamps, r_c, noise=ImuNoise(), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.accel, b.accel)
    exact = simulate_imu(stamps, r_c)
    err = a.accel.mean(0) - exact.accel.mean(0)
    np.testing.assert_allclose(err, a.accel_bias, atol=0.01)  # white noise averages out, bias stays


def test_bad_input():
    with pytest.raises(ValueError, match="cam_rotation"):
        simulate_imu(np.arange(3), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="stamps_ns"):
        simulate_imu(np.array([0, 0]), np.repeat(np.eye(3)[None], 2, 0))

"""Simulated IMU readings for a moving camera (synthetic bags), following REP 145.

Frames: gravity frame G (y down along gravity, DESIGN.md section 4), camera optical frame C with
``X_C = R_c X_G``, IMU frame I rigidly attached to the camera with ``X_C = R_CI X_I``, and the z-up world
frame W the orientation is reported in (x = z_G, y = -x_G, z = -y_G; yaw is arbitrary and unobservable).

An accelerometer measures specific force: linear acceleration minus gravity, so at rest it reads
+9.81 m/s^2 upward. Readings carry white noise and a constant per-sequence bias, as real MEMS IMUs do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from whmr_core.geometry import GRAVITY_FROM_G
from whmr_core.rotations import matrix_to_quaternion_xyzw

__all__ = ["GRAVITY", "G_FROM_WORLD", "ImuNoise", "SimulatedImu", "simulate_imu"]

GRAVITY = 9.80665
# W's axes in G (x_W = z_G, y_W = -x_G, z_W = -y_G), the ROS gravity frame: X_G = G_FROM_WORLD X_W.
G_FROM_WORLD = GRAVITY_FROM_G.T


@dataclass(frozen=True)
class ImuNoise:
    """Noise model (defaults are typical of a consumer MEMS IMU such as a BMI088 at 200 Hz)."""

    accel_std: float = 0.02  # m/s^2 white noise per sample
    gyro_std: float = 0.002  # rad/s
    accel_bias_std: float = 0.05  # m/s^2, drawn once per sequence
    gyro_bias_std: float = 0.002  # rad/s
    orientation_std_deg: float = 0.3  # error of a fused orientation estimate


@dataclass(frozen=True)
class SimulatedImu:
    stamps_ns: np.ndarray  # (T,) int64
    accel: np.ndarray  # (T,3) specific force in I, m/s^2
    gyro: np.ndarray  # (T,3) angular velocity of I in I, rad/s
    orientation_xyzw: np.ndarray  # (T,4) orientation of I in W (REP 145), ROS order
    accel_bias: np.ndarray  # (3,) the bias used
    gyro_bias: np.ndarray  # (3,)


def _small_rotations(rng: np.random.Generator, n: int, std_rad: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rng.normal(0.0, std_rad, size=(n, 3))).as_matrix()


def simulate_imu(
    stamps_ns: np.ndarray,
    cam_rotation: np.ndarray,
    camera_accel_g: np.ndarray | None = None,
    camera_from_imu: np.ndarray | None = None,
    noise: ImuNoise | None = None,
    rng: np.random.Generator | None = None,
) -> SimulatedImu:
    """IMU readings at ``stamps_ns`` (T,) for camera rotations R_c (T,3,3) and camera linear
    acceleration in G (T,3, default zero). ``noise=None`` gives exact readings."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    r_c = np.asarray(cam_rotation, dtype=np.float64)
    t = stamps.shape[0]
    if r_c.shape != (t, 3, 3):
        raise ValueError(f"cam_rotation: expected shape ({t}, 3, 3), got {r_c.shape}")
    if t < 2 or np.any(np.diff(stamps) <= 0):
        raise ValueError("stamps_ns: need at least two strictly increasing stamps")
    acc_g = np.zeros((t, 3)) if camera_accel_g is None else np.asarray(camera_accel_g, dtype=np.float64)
    r_ci = np.eye(3) if camera_from_imu is None else np.asarray(camera_from_imu, dtype=np.float64)
    # I <- G: X_I = R_CI^T R_c X_G.
    imu_from_g = np.einsum("ji,tjk->tik", r_ci, r_c)
    gravity_g = np.array([0.0, GRAVITY, 0.0])
    specific_g = acc_g - gravity_g
    accel = np.einsum("tij,tj->ti", imu_from_g, specific_g)
    # Angular velocity of I in I from consecutive orientations: R_GI(k+1) = R_GI(k) exp([w]x dt).
    from scipy.spatial.transform import Rotation

    g_from_imu = imu_from_g.transpose(0, 2, 1)
    rel = np.einsum("tji,tjk->tik", g_from_imu[:-1], g_from_imu[1:])
    dt = np.diff(stamps).astype(np.float64) * 1e-9
    w = Rotation.from_matrix(rel).as_rotvec() / dt[:, None]
    gyro = np.vstack([w, w[-1:]])
    orient = np.einsum("ji,tjk->tik", G_FROM_WORLD, g_from_imu)  # W <- I
    accel_bias = np.zeros(3)
    gyro_bias = np.zeros(3)
    if noise is not None:
        rng = rng if rng is not None else np.random.default_rng(0)
        accel_bias = rng.normal(0.0, noise.accel_bias_std, 3)
        gyro_bias = rng.normal(0.0, noise.gyro_bias_std, 3)
        accel = accel + accel_bias + rng.normal(0.0, noise.accel_std, accel.shape)
        gyro = gyro + gyro_bias + rng.normal(0.0, noise.gyro_std, gyro.shape)
        orient = orient @ _small_rotations(rng, t, np.deg2rad(noise.orientation_std_deg))
    return SimulatedImu(stamps, accel, gyro, matrix_to_quaternion_xyzw(orient), accel_bias, gyro_bias)

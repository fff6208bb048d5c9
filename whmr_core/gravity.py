"""Gravity direction in the camera optical frame from an IMU, TF or a parameter (DESIGN.md section 4).

Frames: the camera optical frame C (x right, y down, z forward); the IMU frame I; a gravity-aligned
world frame W with z up (ENU, REP 103/145). Rotations are 3x3 matrices acting on column vectors,
``camera_from_imu`` maps IMU-frame vectors into C (X_C = R_CI X_I). Quaternions at this boundary are
ROS's (x, y, z, w); ``whmr_core.rotations`` uses (w, x, y, z) internally. Time stamps are int nanoseconds.

Sources, in the default order of preference:
  ``imu_orientation``  IMU orientation (REP 145: orientation of I w.r.t. W), unless flagged invalid, its
                       roll/pitch variance is above ``max_tilt_variance`` or its down direction disagrees
                       with the low-passed accelerometer by more than ``max_disagreement_deg``;
  ``imu_accel``        low-passed accelerometer (at rest it reads +g upward, so gravity is -a/|a|);
  ``tf``               a gravity-aligned fixed frame looked up in TF at the image stamp (by the caller);
  ``parameter``        a fixed gravity vector (default: level camera, gravity along +y).
Every fallback carries a reason, so the caller can warn and report it; nothing falls back silently.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from whmr_core.geometry import camera_rotation_from_gravity

__all__ = [
    "SOURCES",
    "GravityEstimate",
    "GravityEstimator",
    "GravityUnavailableError",
    "ImuRejection",
    "as_rotation_matrix",
    "gravity_from_accel",
    "gravity_from_fixed_frame",
    "gravity_from_orientation",
    "slerp_xyzw",
    "unit_vector",
]

SOURCES = ("imu_orientation", "imu_accel", "tf", "parameter")
WORLD_DOWN = np.array([0.0, 0.0, -1.0])  # gravity in a z-up world frame (ENU)
LEVEL_CAMERA_GRAVITY = (0.0, 1.0, 0.0)  # optical frame: y points down
# (value before, value after, interpolation weight in [0, 1], age of the nearer reading in ns)
_Sample = tuple[np.ndarray, np.ndarray, float, int]


class ImuRejection(str):
    """Why part of an IMU reading was not used: the text, plus a ``code`` to act on without parsing it.

    Codes: ``orientation_flagged_invalid`` (covariance[0] == -1: the IMU has no orientation, said on every
    message), ``orientation_invalid``, ``orientation_out_of_order``, ``orientation_uncertain``,
    ``orientation_disagrees``, ``accel_invalid``, ``accel_norm``, ``accel_out_of_order``."""

    code: str

    def __new__(cls, code: str, text: str) -> ImuRejection:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj


class GravityUnavailableError(RuntimeError):
    """No configured source could give gravity (only when ``parameter`` is not among the sources)."""


def unit_vector(v: Sequence[float] | np.ndarray, name: str, eps: float = 1e-9) -> np.ndarray:
    """``v`` / |v| for a finite (3,) vector; ValueError naming ``name`` otherwise. Scaled by its largest
    component first: the norm of (1e308, 1e308, 0) overflows to infinity and would give a zero vector."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (3,):
        raise ValueError(f"{name}: expected shape (3,), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: contains non-finite values")
    scale = float(np.abs(v).max())
    if scale == 0.0 or scale * float(np.linalg.norm(v / scale)) <= eps:
        raise ValueError(f"{name}: zero vector, direction undefined")
    u = v / scale
    return u / np.linalg.norm(u)


def _check_xyzw(q: Sequence[float] | np.ndarray, name: str, norm_tol: float = 0.1) -> np.ndarray:
    """Validated unit (x, y, z, w) quaternion; a norm far from 1 means a broken reading, not a rotation."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"{name}: expected (x, y, z, w) of shape (4,), got {q.shape}")
    if not np.isfinite(q).all():
        raise ValueError(f"{name}: contains non-finite values")
    n = float(np.linalg.norm(q))
    if abs(n - 1.0) > norm_tol:
        raise ValueError(f"{name}: quaternion norm {n:.4g} is not ~1 (zero quaternion = no orientation?)")
    return q / n


def _xyzw_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """``rotations.quaternion_to_matrix`` for one (x, y, z, w) quaternion, in plain floats: it runs for every
    IMU reading (200 Hz), where torch's per-op overhead cost ~1 ms a reading."""
    x, y, z, w = (float(v) for v in q_xyzw)
    n = max(math.sqrt(x * x + y * y + z * z + w * w), 1e-12)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def as_rotation_matrix(rotation: Sequence[float] | np.ndarray, name: str = "rotation") -> np.ndarray:
    """A 3x3 rotation matrix, or a ROS (x, y, z, w) quaternion, as a validated 3x3 float64 matrix."""
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape == (4,):
        return _xyzw_to_matrix(_check_xyzw(r, name))
    if r.shape != (3, 3):
        raise ValueError(f"{name}: expected a 3x3 matrix or an (x, y, z, w) quaternion, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError(f"{name}: contains non-finite values")
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise ValueError(f"{name}: not a rotation matrix (R^T R != I or det < 0)")
    return r


def gravity_from_orientation(
    orientation_xyzw: Sequence[float] | np.ndarray, camera_from_imu: np.ndarray
) -> np.ndarray:
    """Unit gravity in C from an IMU orientation (REP 145, I w.r.t. a z-up world): R_CI R_WI^T (0, 0, -1)."""
    world_from_imu = _xyzw_to_matrix(_check_xyzw(orientation_xyzw, "orientation"))
    return as_rotation_matrix(camera_from_imu, "camera_from_imu") @ (world_from_imu.T @ WORLD_DOWN)


def gravity_from_accel(accel: Sequence[float] | np.ndarray, camera_from_imu: np.ndarray) -> np.ndarray:
    """Unit gravity in C from a (low-passed) accelerometer reading in I: the IMU at rest reads +g up."""
    return as_rotation_matrix(camera_from_imu, "camera_from_imu") @ -unit_vector(accel, "linear_acceleration")


def gravity_from_fixed_frame(camera_from_fixed: Sequence[float] | np.ndarray) -> np.ndarray:
    """Unit gravity in C from the rotation C <- F of a gravity-aligned, z-up fixed frame F (odom, map)."""
    return as_rotation_matrix(camera_from_fixed, "camera_from_fixed") @ WORLD_DOWN


def slerp_xyzw(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shorter arc, t in [0, 1]."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # q and -q are the same rotation: take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: lerp is exact enough and avoids dividing by sin(~0)
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(dot, 1.0))
    s = math.sin(theta)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / s


@dataclass(frozen=True)
class GravityEstimate:
    """Gravity at one image stamp.

    ``gravity``: unit (3,) vector in the camera optical frame. ``source``: one of ``SOURCES``.
    ``reason``: why preferred sources were skipped ("" when the first configured source was used).
    ``age_ns``: |image stamp - nearest sample stamp| for IMU sources, None otherwise.
    """

    gravity: np.ndarray
    source: str
    reason: str = ""
    age_ns: int | None = None

    @property
    def is_fallback(self) -> bool:
        return bool(self.reason)

    def camera_rotation(self) -> np.ndarray:
        """R_c = [x_G | g | z_G] (DESIGN.md section 4), 3x3, X_C = R_c X_G."""
        g = torch.as_tensor(self.gravity, dtype=torch.float64)[None]
        return camera_rotation_from_gravity(g)[0].numpy()


class _TimeSeries:
    """Time-ordered samples within a window; stamps strictly increase."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.stamps: list[int] = []
        self.values: list[np.ndarray] = []

    def append(self, stamp_ns: int, value: np.ndarray) -> None:
        self.stamps.append(stamp_ns)
        self.values.append(value)
        # Drop what has left the window (amortised: the list is short, a few hundred entries).
        cut = bisect.bisect_left(self.stamps, stamp_ns - self.window_ns)
        if cut:
            del self.stamps[:cut]
            del self.values[:cut]

    @property
    def last_stamp(self) -> int | None:
        return self.stamps[-1] if self.stamps else None

    def neighbours(self, stamp_ns: int) -> tuple[int | None, int | None]:
        """Indices of the last sample at or before and the first sample after ``stamp_ns``."""
        i = bisect.bisect_right(self.stamps, stamp_ns)
        return (i - 1 if i > 0 else None), (i if i < len(self.stamps) else None)

    def clear(self) -> None:
        self.stamps.clear()
        self.values.clear()


class GravityEstimator:
    """Buffers IMU readings and gives gravity in the camera frame at image stamps, with fallbacks.

    IMU readings (100-400 Hz) are not synchronised with images: they are buffered and gravity is
    interpolated between the two readings around the image stamp (slerp for orientation, normalised
    lerp for the low-passed accelerometer). A reading is used only if one within ``max_age_ns`` of the
    image stamp exists; a newer image than the last reading holds that reading, never extrapolates.
    """

    def __init__(
        self,
        camera_from_imu: Sequence[float] | np.ndarray | None = None,
        *,
        sources: Sequence[str] = SOURCES,
        parameter_gravity: Sequence[float] = LEVEL_CAMERA_GRAVITY,
        max_age_ns: int = 100_000_000,
        buffer_ns: int = 2_000_000_000,
        accel_time_constant_s: float = 0.5,
        accel_norm_range: tuple[float, float] = (4.9, 14.7),
        max_tilt_variance: float = 0.03,
        max_disagreement_deg: float = 30.0,
    ) -> None:
        unknown = [s for s in sources if s not in SOURCES]
        if unknown or not sources or len(set(sources)) != len(sources):
            raise ValueError(f"sources: expected distinct names from {SOURCES}, got {tuple(sources)}")
        if max_age_ns <= 0 or buffer_ns <= 0:
            raise ValueError("max_age_ns and buffer_ns: must be > 0")
        if accel_time_constant_s < 0:
            raise ValueError("accel_time_constant_s: must be >= 0")
        lo, hi = accel_norm_range
        if not 0 < lo < hi:
            raise ValueError(f"accel_norm_range: expected 0 < low < high, got {accel_norm_range}")
        if not max_tilt_variance > 0:
            raise ValueError(f"max_tilt_variance: must be > 0 rad^2, got {max_tilt_variance}")
        if not 0 < max_disagreement_deg <= 180:
            raise ValueError(f"max_disagreement_deg: must be in (0, 180], got {max_disagreement_deg}")
        self.sources = tuple(sources)
        self.parameter_gravity = unit_vector(
            np.asarray(parameter_gravity, dtype=np.float64), "parameter_gravity"
        )
        self.max_age_ns = int(max_age_ns)
        self.accel_time_constant_s = float(accel_time_constant_s)
        self.accel_norm_range = (float(lo), float(hi))
        self.max_tilt_variance = float(max_tilt_variance)
        self.max_disagreement_deg = float(max_disagreement_deg)
        self.camera_from_imu: np.ndarray | None = None
        if camera_from_imu is not None:
            self.set_camera_from_imu(camera_from_imu)
        self._orientation = _TimeSeries(buffer_ns)  # unit (x, y, z, w) quaternions, W <- I
        self._accel = _TimeSeries(buffer_ns)  # low-passed unit gravity direction in I
        self._accel_state: np.ndarray | None = None
        self.rejected = 0
        self.last_rejection = ""
        self.messages = 0  # IMU readings offered (kept across reset: it tells "no IMU" from "no TF")
        self.clock_resets = 0  # times the IMU clock jumped back and the buffers restarted
        self._last_problem: dict[str, str] = {}  # per IMU source, to explain an empty buffer

    def set_camera_from_imu(self, rotation: Sequence[float] | np.ndarray) -> None:
        """Camera <- IMU rotation (3x3 or xyzw), from a static TF or a parameter; may arrive late.

        That is the rotation of ``lookup_transform(target=camera_optical, source=imu)``: it maps IMU-frame
        vectors into the camera frame (the inverse of the IMU's pose in the camera frame).
        """
        self.camera_from_imu = as_rotation_matrix(rotation, "camera_from_imu")

    def reset(self) -> None:
        """Forget all readings (e.g. after the clock jumped back when a bag loops)."""
        self._orientation.clear()
        self._accel.clear()
        self._accel_state = None
        self._last_problem.clear()

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        self.last_rejection = reason

    def add_imu(
        self,
        stamp_ns: int,
        orientation_xyzw: Sequence[float] | np.ndarray | None = None,
        accel: Sequence[float] | np.ndarray | None = None,
        *,
        orientation_covariance0: float = 0.0,
        orientation_covariance: Sequence[float] | np.ndarray | None = None,
    ) -> list[ImuRejection]:
        """Add one IMU reading; returns the reasons its parts were rejected ([] when all were used).

        Orientation and acceleration are judged separately: a bad one never discards the other.
        ``orientation_covariance`` (9 values, roll/pitch/yaw about the fixed axes, rad^2, REP 145) or its
        first value ``orientation_covariance0``: -1 flags the orientation invalid (sensor_msgs/Imu); only
        roll and pitch variances are judged (gravity does not depend on yaw, often unknown). Rejected
        parts are counted in ``rejected`` with the last reason in ``last_rejection``.
        """
        stamp_ns = int(stamp_ns)
        self.messages += 1
        newest = max((x for x in (self._orientation.last_stamp, self._accel.last_stamp) if x is not None),
                     default=None)  # fmt: skip
        if newest is not None and stamp_ns < newest - self.max_age_ns:
            # The IMU clock jumped back (a bag loops, a simulation resets), not a late reading: start
            # afresh on the new clock instead of rejecting every reading until it catches up.
            self.reset()
            self.clock_resets += 1
        problems: list[ImuRejection] = []
        if accel is not None:  # first: the orientation is checked against the filter including it
            problem = self._add_accel(stamp_ns, accel)
            if problem:
                problems.append(problem)
                self._last_problem["imu_accel"] = problem
        cov = None if orientation_covariance is None else np.asarray(orientation_covariance, np.float64)
        if cov is not None and cov.size:
            orientation_covariance0 = float(cov.reshape(-1)[0])
        problem = ""
        if orientation_covariance0 == -1:
            text = "orientation: flagged invalid (orientation_covariance[0] == -1)"
            problem = ImuRejection("orientation_flagged_invalid", text)
        elif orientation_xyzw is not None:
            problem = self._add_orientation(stamp_ns, orientation_xyzw, cov)
        if problem:
            problems.append(problem)
            self._last_problem["imu_orientation"] = problem
        for p in problems:
            self._reject(p)
        return problems

    def _add_orientation(self, stamp_ns: int, orientation_xyzw: Any, cov: np.ndarray | None) -> str:
        last = self._orientation.last_stamp
        if last is not None and stamp_ns <= last:
            text = f"orientation: stamp {stamp_ns} not after the previous {last}"
            return ImuRejection("orientation_out_of_order", text)
        try:
            q = _check_xyzw(orientation_xyzw, "orientation")
        except ValueError as e:
            return ImuRejection("orientation_invalid", str(e))
        if cov is not None and cov.size == 9:
            tilt_var = max(cov[0], cov[4])
            if not np.isfinite(tilt_var) or tilt_var > self.max_tilt_variance:
                text = (f"orientation: roll/pitch variance {tilt_var:.3g} rad^2 above max_tilt_variance "
                        f"{self.max_tilt_variance:.3g} (the IMU says it does not know its tilt)")  # fmt: skip
                return ImuRejection("orientation_uncertain", text)
        accel_last = self._accel.last_stamp
        if self._accel_state is not None and accel_last is not None:
            if abs(stamp_ns - accel_last) <= self.max_age_ns:
                down = _xyzw_to_matrix(q).T @ WORLD_DOWN  # gravity in I by the orientation
                cos = float(np.clip(np.dot(down, self._accel_state), -1.0, 1.0))
                off = math.degrees(math.acos(cos))
                if off > self.max_disagreement_deg:
                    text = (f"orientation: disagrees with the low-passed accelerometer by {off:.0f} deg "
                            f"(max_disagreement_deg {self.max_disagreement_deg:g})")  # fmt: skip
                    return ImuRejection("orientation_disagrees", text)
        self._orientation.append(stamp_ns, q)
        return ""

    def _add_accel(self, stamp_ns: int, accel: Sequence[float] | np.ndarray) -> str:
        a = np.asarray(accel, dtype=np.float64)
        if a.shape != (3,) or not np.isfinite(a).all():
            text = f"linear_acceleration: expected 3 finite values, got {a.tolist()}"
            return ImuRejection("accel_invalid", text)
        n = float(np.linalg.norm(a))
        lo, hi = self.accel_norm_range
        if not lo <= n <= hi:
            # Zero is a missing reading; far from g the IMU is accelerating and -a is not gravity.
            text = f"linear_acceleration: norm {n:.3g} m/s^2 outside [{lo:.3g}, {hi:.3g}] (zero or moving)"
            return ImuRejection("accel_norm", text)
        last = self._accel.last_stamp
        if last is not None and stamp_ns <= last:
            text = f"linear_acceleration: stamp {stamp_ns} not after the previous {last}"
            return ImuRejection("accel_out_of_order", text)
        down = -a / n
        if self._accel_state is None or last is None or stamp_ns - last > self.max_age_ns:
            self._accel_state = down  # (re)start the filter after a gap instead of blending stale data
        else:
            # First-order low-pass with a time constant, so the cut-off does not depend on the IMU rate.
            dt = (stamp_ns - last) * 1e-9
            tau = self.accel_time_constant_s
            alpha = 1.0 if tau == 0 else 1.0 - math.exp(-dt / tau)
            state = self._accel_state + alpha * (down - self._accel_state)
            self._accel_state = state / np.linalg.norm(state)
        self._accel.append(stamp_ns, self._accel_state)
        return ""

    def _sample(self, series: _TimeSeries, stamp_ns: int, name: str) -> tuple[_Sample | None, str]:
        """((a, b, t, age_ns) for interpolation, "") or (None, reason)."""
        if not series.stamps:
            last = self._last_problem.get(name)
            return None, f"{name}: no readings" + (f" (last rejected: {last})" if last else "")
        i, j = series.neighbours(stamp_ns)
        near = [k for k in (i, j) if k is not None and abs(series.stamps[k] - stamp_ns) <= self.max_age_ns]
        if not near:
            age = min(abs(series.stamps[k] - stamp_ns) for k in (i, j) if k is not None)
            last = self._last_problem.get(name)
            return None, f"{name}: stale, nearest reading {age / 1e6:.1f} ms from the image stamp" + (
                f" (last rejected: {last})" if last else ""
            )
        if len(near) == 2 and series.stamps[j] != series.stamps[i]:
            t = (stamp_ns - series.stamps[i]) / (series.stamps[j] - series.stamps[i])
            age = min(stamp_ns - series.stamps[i], series.stamps[j] - stamp_ns)
            return (series.values[i], series.values[j], t, age), ""
        k = near[0]
        return (series.values[k], series.values[k], 0.0, abs(series.stamps[k] - stamp_ns)), ""

    def _from_orientation(self, stamp_ns: int) -> tuple[np.ndarray | None, int | None, str]:
        if not self.messages:
            return None, None, "imu_orientation: no IMU messages"
        if self.camera_from_imu is None:
            return None, None, "imu_orientation: camera <- imu rotation unknown"
        s, why = self._sample(self._orientation, stamp_ns, "imu_orientation")
        if s is None:
            return None, None, why
        q0, q1, t, age = s
        return gravity_from_orientation(slerp_xyzw(q0, q1, t), self.camera_from_imu), age, ""

    def _from_accel(self, stamp_ns: int) -> tuple[np.ndarray | None, int | None, str]:
        if not self.messages:
            return None, None, "imu_accel: no IMU messages"
        if self.camera_from_imu is None:
            return None, None, "imu_accel: camera <- imu rotation unknown"
        s, why = self._sample(self._accel, stamp_ns, "imu_accel")
        if s is None:
            return None, None, why
        d0, d1, t, age = s
        down = (1 - t) * d0 + t * d1  # normalised lerp of two nearby unit vectors
        return self.camera_from_imu @ unit_vector(down, "interpolated accel direction"), age, ""

    def gravity_at(
        self, stamp_ns: int, tf_gravity: Sequence[float] | np.ndarray | None = None
    ) -> GravityEstimate:
        """Gravity in C at an image stamp from the first source that works, with the skipped ones' reasons.

        ``tf_gravity`` is gravity in C from a TF lookup of a gravity-aligned fixed frame at this stamp
        (see ``gravity_from_fixed_frame``), or None when the caller has no such frame or the lookup failed.
        """
        stamp_ns = int(stamp_ns)
        reasons: list[str] = []
        for source in self.sources:
            age: int | None = None
            g: np.ndarray | None = None
            if source == "imu_orientation":
                g, age, why = self._from_orientation(stamp_ns)
            elif source == "imu_accel":
                g, age, why = self._from_accel(stamp_ns)
            elif source == "tf":
                why = "tf: no gravity-aligned frame available"
                if tf_gravity is not None:
                    try:
                        g, why = unit_vector(np.asarray(tf_gravity, dtype=np.float64), "tf_gravity"), ""
                    except ValueError as e:
                        why = f"tf: {e}"
            else:
                g, why = self.parameter_gravity, ""
            if g is not None:
                return GravityEstimate(g.copy(), source, "; ".join(reasons), age)
            reasons.append(why)
        raise GravityUnavailableError("no gravity source available: " + "; ".join(reasons))

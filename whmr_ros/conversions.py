"""ROS 2 messages <-> numpy, without rclpy.

Works on any object with ROS 2 field names: rclpy messages on the robot, ``rosbags`` message classes in
the bag runner and the tests. Malformed input raises ``MessageError`` naming the field and the reason,
so the node can drop the message with a diagnostic instead of dying or publishing garbage.

Image decoding is written here rather than taken from ``rosbags-image``: that package needs OpenCV,
ignores ``step`` (rows with padding come out sheared) and byte-swaps big-endian data inside the
message's own buffer; ours is numpy only, honours both and validates sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from whmr_core.geometry import camera_matrix_problem

__all__ = [
    "ENCODINGS",
    "CameraIntrinsics",
    "ImuReading",
    "MessageError",
    "camera_info_to_intrinsics",
    "cv_bridge_image_to_rgb",
    "header_stamp_ns",
    "image_to_numpy",
    "image_to_rgb",
    "imu_to_reading",
    "make_header",
    "ns_to_time",
    "numpy_to_image",
    "time_to_ns",
]

NS_PER_S = 1_000_000_000


class MessageError(ValueError):
    """A message that cannot be used; ``field`` names the offending field, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class _Encoding:
    dtype: str  # numpy base type, little-endian form
    channels: int
    order: str  # channel letters: "RGB", "BGRA", "L" (luminance) ...


# sensor_msgs/image_encodings names; 8UC1 is the generic name drivers use for mono8. 16UC1 is not here:
# it is what depth cameras publish (REP 118), and read as a grey photo it gave bodies in noise.
ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding("u1", 3, "RGB"),
    "bgr8": _Encoding("u1", 3, "BGR"),
    "rgba8": _Encoding("u1", 4, "RGBA"),
    "bgra8": _Encoding("u1", 4, "BGRA"),
    "mono8": _Encoding("u1", 1, "L"),
    "8UC1": _Encoding("u1", 1, "L"),
    "rgb16": _Encoding("u2", 3, "RGB"),
    "bgr16": _Encoding("u2", 3, "BGR"),
    "rgba16": _Encoding("u2", 4, "RGBA"),
    "bgra16": _Encoding("u2", 4, "BGRA"),
    "mono16": _Encoding("u2", 1, "L"),
}
DEPTH_ENCODINGS = {"16UC1": "millimetres", "32FC1": "metres"}  # REP 118 depth images


def _get(msg: object, name: str, path: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise MessageError(path, "missing field") from None


def _int_field(msg: object, name: str, path: str, minimum: int = 0) -> int:
    value = _get(msg, name, path)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MessageError(path, f"expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise MessageError(path, f"must be >= {minimum}, got {value}")
    return int(value)


def _float_array(msg: object, name: str, path: str, size: int | None) -> np.ndarray:
    try:
        a = np.asarray(_get(msg, name, path), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise MessageError(path, "expected numbers") from None
    if size is not None and a.size != size:
        raise MessageError(path, f"expected {size} values, got {a.size}")
    return a


def _vector3(msg: object, name: str, path: str) -> np.ndarray:
    v = _get(msg, name, path)
    try:
        return np.array([float(v.x), float(v.y), float(v.z)])
    except (AttributeError, TypeError, ValueError):
        raise MessageError(path, "expected a vector with numeric x, y, z") from None


# --- time --------------------------------------------------------------------------------------------


def time_to_ns(stamp: object, path: str = "stamp") -> int:
    """builtin_interfaces/Time -> int nanoseconds."""
    sec = _get(stamp, "sec", f"{path}.sec")
    nanosec = _int_field(stamp, "nanosec", f"{path}.nanosec")
    if isinstance(sec, bool) or not isinstance(sec, (int, np.integer)):
        raise MessageError(f"{path}.sec", f"expected an integer, got {type(sec).__name__}")
    if nanosec >= NS_PER_S:
        raise MessageError(f"{path}.nanosec", f"must be < 1e9, got {nanosec}")
    return int(sec) * NS_PER_S + nanosec


def header_stamp_ns(msg: object) -> int:
    """``msg.header.stamp`` in int nanoseconds."""
    return time_to_ns(_get(_get(msg, "header", "header"), "stamp", "header.stamp"), "header.stamp")


def ns_to_time(stamp_ns: int, time_cls: Callable[..., Any]) -> Any:
    """int nanoseconds -> a Time message of ``time_cls`` (floor division keeps nanosec in [0, 1e9))."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return time_cls(sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str, types: Mapping[str, Callable[..., Any]]) -> Any:
    """A std_msgs/Header; ``types`` maps 'std_msgs/msg/Header', 'builtin_interfaces/msg/Time' to classes."""
    stamp = ns_to_time(stamp_ns, types["builtin_interfaces/msg/Time"])
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


# --- images ------------------------------------------------------------------------------------------


def _checked_image(msg: object) -> tuple[_Encoding, int, int, int, np.ndarray]:
    """(encoding, height, width, step, data bytes) of a well-formed Image; MessageError naming the field."""
    encoding = _get(msg, "encoding", "encoding")
    enc = ENCODINGS.get(encoding) if isinstance(encoding, str) else None
    if encoding in DEPTH_ENCODINGS:
        raise MessageError(
            "encoding",
            f"{encoding} is a depth image (REP 118: depth in {DEPTH_ENCODINGS[encoding]}), not a camera "
            "picture: give whmr the colour or mono stream (a 16-bit mono camera: mono16)",
        )
    if enc is None:
        raise MessageError(
            "encoding", f"unsupported encoding {encoding!r} (supported: {', '.join(ENCODINGS)})"
        )
    height = _int_field(msg, "height", "height", 1)
    width = _int_field(msg, "width", "width", 1)
    step = _int_field(msg, "step", "step")
    bigendian = _int_field(msg, "is_bigendian", "is_bigendian")
    if bigendian not in (0, 1):
        raise MessageError("is_bigendian", f"expected 0 or 1, got {bigendian}")
    itemsize = np.dtype(enc.dtype).itemsize
    row_bytes = width * enc.channels * itemsize
    if step < row_bytes:
        raise MessageError("step", f"{step} is less than width * bytes per pixel = {row_bytes}")
    raw = _get(msg, "data", "data")
    try:  # zero-copy for numpy arrays (rosbags), bytes and array.array (rclpy)
        data = np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)
    except (TypeError, ValueError):
        try:
            data = np.asarray(raw, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise MessageError("data", f"expected bytes, got {type(raw).__name__}") from None
    if data.size != step * height:
        kind = "truncated" if data.size < step * height else "too long"
        raise MessageError("data", f"{kind}: {data.size} bytes, expected step * height = {step * height}")
    return enc, height, width, step, data


def image_to_numpy(msg: object) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, C) array in the message's channel order and native byte order.

    mono encodings give (H, W). The result owns its memory (the message buffer may be reused).
    """
    enc, height, width, step, data = _checked_image(msg)
    row_bytes = width * enc.channels * np.dtype(enc.dtype).itemsize
    rows = data.reshape(height, step)[:, :row_bytes]  # drop the row padding
    order = ">" if msg.is_bigendian else "<"  # type: ignore[attr-defined]
    pixels = np.ascontiguousarray(rows).view(order + enc.dtype).astype(enc.dtype, copy=True)
    if enc.channels == 1:
        return pixels.reshape(height, width)
    return pixels.reshape(height, width, enc.channels)


# 8-bit channel orders -> the OpenCV conversion to RGB (one SIMD pass instead of numpy's fancy indexing).
_TO_RGB_CV2 = {
    "BGR": "COLOR_BGR2RGB",
    "RGBA": "COLOR_RGBA2RGB",
    "BGRA": "COLOR_BGRA2RGB",
    "L": "COLOR_GRAY2RGB",
}


def _rgb8(pixels: np.ndarray, enc: _Encoding) -> np.ndarray:
    """Pixels in the message's channel order -> (H, W, 3) RGB uint8 (one rule for both converters).

    Contiguous rgb8 pixels come back as they are (no copy)."""
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if enc.order == "RGB":
        return np.ascontiguousarray(pixels)
    import cv2

    src = pixels.reshape(pixels.shape[:2]) if enc.channels == 1 else pixels
    return cv2.cvtColor(src, getattr(cv2, _TO_RGB_CV2[enc.order]))


def image_to_rgb(msg: object) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) RGB uint8, what the pipeline consumes.

    Alpha is dropped, mono is replicated to three channels, 16-bit keeps its high byte. An rgb8 image
    without row padding comes back as a view of the message's buffer (no copy; read-only when the buffer
    is): the pipeline only reads it, and whoever wants to draw on it copies first.
    """
    enc, height, width, step, data = _checked_image(msg)
    if enc.dtype != "u1":
        return _rgb8(image_to_numpy(msg), enc)
    rows = data.reshape(height, step)[:, : width * enc.channels]  # without the row padding: a view
    return _rgb8(rows.reshape(height, width, enc.channels), enc)


def cv_bridge_image_to_rgb() -> Callable[[object], np.ndarray] | None:
    """``image_to_rgb`` done by cv_bridge (the robot's own Image decoding) when it is importable, else None.

    The message is checked by whmr first (same reasons for dropping it); cv_bridge then decodes rows,
    padding and byte order ("passthrough"), and the channel rule is ``image_to_rgb``'s, so both give the
    same array for every supported encoding.
    """
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    bridge = CvBridge()

    def convert(msg: object) -> np.ndarray:
        enc = _checked_image(msg)[0]
        try:
            pixels = np.asarray(bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
        except Exception as e:  # CvBridgeError and what numpy raises on odd buffers
            raise MessageError("data", f"cv_bridge: {e}") from None
        return _rgb8(pixels.astype(enc.dtype, copy=False), enc)

    return convert


def _uint8_array(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8).copy()


def numpy_to_image(
    array: np.ndarray,
    encoding: str,
    stamp_ns: int,
    frame_id: str,
    types: Mapping[str, Callable[..., Any]],
    *,
    data_factory: Callable[[bytes], Any] = _uint8_array,
) -> Any:
    """(H, W[, C]) array -> sensor_msgs/Image in little-endian, unpadded rows.

    ``types`` maps 'sensor_msgs/msg/Image', 'std_msgs/msg/Header' and 'builtin_interfaces/msg/Time' to
    message classes (a rosbags typestore's ``types`` works as is). ``data_factory`` builds the ``data``
    field from bytes: numpy uint8 for rosbags (the default); rclpy wants ``array.array('B', b)``.
    """
    enc = ENCODINGS.get(encoding)
    if enc is None:
        raise MessageError("encoding", f"unsupported encoding {encoding!r}")
    a = np.asarray(array)
    want_dims = 2 if enc.channels == 1 else 3
    if a.ndim != want_dims or (enc.channels > 1 and a.shape[2] != enc.channels):
        shape = "(H, W)" if enc.channels == 1 else f"(H, W, {enc.channels})"
        raise MessageError("data", f"encoding {encoding} expects an array of shape {shape}, got {a.shape}")
    if a.dtype != np.dtype(enc.dtype):
        raise MessageError("data", f"encoding {encoding} expects dtype {np.dtype(enc.dtype)}, got {a.dtype}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise MessageError("data", f"empty image of shape {a.shape}")
    le = np.ascontiguousarray(a, dtype=np.dtype(enc.dtype).newbyteorder("<"))
    height, width = a.shape[:2]
    return types["sensor_msgs/msg/Image"](
        header=make_header(stamp_ns, frame_id, types),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * enc.channels * le.itemsize,
        data=data_factory(le.tobytes()),
    )


# --- camera info -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the published (binned, ROI-cropped) image: K (3x3), size, distortion."""

    K: np.ndarray
    width: int
    height: int
    distortion_model: str
    D: np.ndarray
    frame_id: str

    @property
    def focal(self) -> tuple[float, float]:
        return float(self.K[0, 0]), float(self.K[1, 1])

    @property
    def principal_point(self) -> tuple[float, float]:
        return float(self.K[0, 2]), float(self.K[1, 2])

    def distortion_px(self) -> float:
        """How far the lens moves the image corners from where a pinhole camera with K puts them (pixels):
        what treating the image as pinhole costs. 0 for no or all-zero D; inf for an unknown model."""
        if not self.D.size or not np.any(self.D):
            return 0.0
        import cv2

        w, h = self.width, self.height
        corners = np.array([[[0.0, 0.0]], [[w - 1.0, 0.0]], [[0.0, h - 1.0]], [[w - 1.0, h - 1.0]]])
        model = self.distortion_model
        if model in ("plumb_bob", "rational_polynomial") and self.D.size in (4, 5, 8, 12, 14):
            undistorted = cv2.undistortPoints(corners, self.K, self.D, P=self.K)
        elif model == "equidistant" and self.D.size == 4:
            undistorted = cv2.fisheye.undistortPoints(corners, self.K, self.D, P=self.K)
        else:
            return math.inf
        shift = np.linalg.norm(undistorted.reshape(-1, 2) - corners.reshape(-1, 2), axis=1)
        return float(shift.max()) if np.isfinite(shift).all() else math.inf


def camera_info_to_intrinsics(msg: object) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> CameraIntrinsics, with K adjusted for ROI and binning (REP 104).

    Raises MessageError for a missing/zero focal length (an uncalibrated camera publishes K = 0),
    a non-finite K or D, or a zero image size.
    """
    k = _float_array(msg, "k", "k", 9)
    if not np.isfinite(k).all():
        raise MessageError("k", "contains non-finite values")
    K = k.reshape(3, 3).copy()
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageError(
            "k", f"focal lengths must be > 0, got fx={K[0, 0]:g}, fy={K[1, 1]:g} (uncalibrated?)"
        )
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise MessageError(
            "k", f"not an upper-triangular camera matrix with last row (0, 0, 1): {k.tolist()}"
        )
    width = _int_field(msg, "width", "width", 1)
    height = _int_field(msg, "height", "height", 1)
    d = _float_array(msg, "d", "d", None)
    if not np.isfinite(d).all():
        raise MessageError("d", "contains non-finite values")
    model = _get(msg, "distortion_model", "distortion_model")
    header = _get(msg, "header", "header")
    frame_id = str(_get(header, "frame_id", "header.frame_id"))

    # REP 104: K describes the full-resolution sensor; the image is the ROI, then binned.
    roi = getattr(msg, "roi", None)
    if (
        roi is not None
        and _int_field(roi, "width", "roi.width") > 0
        and _int_field(roi, "height", "roi.height") > 0
    ):
        K[0, 2] -= _int_field(roi, "x_offset", "roi.x_offset")
        K[1, 2] -= _int_field(roi, "y_offset", "roi.y_offset")
        width, height = int(roi.width), int(roi.height)
    bx = max(_int_field(msg, "binning_x", "binning_x"), 1) if hasattr(msg, "binning_x") else 1
    by = max(_int_field(msg, "binning_y", "binning_y"), 1) if hasattr(msg, "binning_y") else 1
    if bx > 1 or by > 1:
        K[0, :] /= bx
        K[1, :] /= by
        width, height = width // bx, height // by
    _check_physical(K, width, height)
    return CameraIntrinsics(K, width, height, str(model), d, frame_id)


def _check_physical(K: np.ndarray, width: int, height: int) -> None:
    problem = camera_matrix_problem(K, width, height)
    if problem:
        raise MessageError("k", problem)


# --- IMU ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImuReading:
    """sensor_msgs/Imu as numpy. A part whose covariance[0] is -1 ("not provided") is None."""

    stamp_ns: int
    orientation_xyzw: np.ndarray | None
    orientation_valid: bool
    accel: np.ndarray | None
    gyro: np.ndarray | None
    frame_id: str
    orientation_covariance0: float
    orientation_covariance: np.ndarray | None = None  # (9,) row-major, rad^2


def imu_to_reading(msg: object) -> ImuReading:
    """sensor_msgs/Imu -> ImuReading; a missing field or a non-numeric part raises MessageError naming it.

    Zero and non-finite values pass through: judging each part (a NaN quaternion, a zero acceleration) is
    the gravity estimator's job, which rejects that part only, falls back and says why.
    """
    stamp_ns = header_stamp_ns(msg)
    frame_id = str(_get(_get(msg, "header", "header"), "frame_id", "header.frame_id"))

    cov_o = _float_array(msg, "orientation_covariance", "orientation_covariance", 9)
    orientation = None
    valid = bool(cov_o[0] != -1)
    if valid:
        q = _get(msg, "orientation", "orientation")
        try:
            orientation = np.array([float(q.x), float(q.y), float(q.z), float(q.w)])
        except (AttributeError, TypeError, ValueError):
            raise MessageError("orientation", "expected a quaternion with numeric x, y, z, w") from None

    def part(name: str, cov_name: str) -> np.ndarray | None:
        if _float_array(msg, cov_name, cov_name, 9)[0] == -1:
            return None
        return _vector3(msg, name, name)

    accel = part("linear_acceleration", "linear_acceleration_covariance")
    gyro = part("angular_velocity", "angular_velocity_covariance")
    return ImuReading(stamp_ns, orientation, valid, accel, gyro, frame_id, float(cov_o[0]), cov_o)

"""ROS message <-> numpy conversions against the pure-Python rosbags message classes (no rclpy)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from whmr_core.gravity import GravityEstimator
from whmr_ros.conversions import (
    ENCODINGS,
    MessageError,
    camera_info_to_intrinsics,
    header_stamp_ns,
    image_to_numpy,
    image_to_rgb,
    imu_to_reading,
    make_header,
    ns_to_time,
    numpy_to_image,
    time_to_ns,
)

TS = get_typestore(Stores.ROS2_JAZZY)
T = TS.types
Image = T["sensor_msgs/msg/Image"]
CameraInfo = T["sensor_msgs/msg/CameraInfo"]
Imu = T["sensor_msgs/msg/Imu"]
ROI = T["sensor_msgs/msg/RegionOfInterest"]
Quaternion = T["geometry_msgs/msg/Quaternion"]
Vector3 = T["geometry_msgs/msg/Vector3"]
STAMP_NS = 1_732_400_000_123_456_789


def header(stamp_ns: int = STAMP_NS, frame_id: str = "camera_optical") -> object:
    return make_header(stamp_ns, frame_id, T)


def rgb_reference(h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def raw_pixels(rgb16: np.ndarray, encoding: str) -> np.ndarray:
    """Hand-build the pixel array an encoding stores for an RGB image (uint16 input, any encoding)."""
    order, depth = {
        "rgb8": ("RGB", 8),
        "bgr8": ("BGR", 8),
        "rgba8": ("RGBA", 8),
        "bgra8": ("BGRA", 8),
        "mono8": ("L", 8),
        "8UC1": ("L", 8),
        "rgb16": ("RGB", 16),
        "bgr16": ("BGR", 16),
        "rgba16": ("RGBA", 16),
        "bgra16": ("BGRA", 16),
        "mono16": ("L", 16),
    }[encoding]
    src = rgb16 if depth == 16 else (rgb16 >> 8)
    dtype = np.uint16 if depth == 16 else np.uint8
    alpha = np.full(src.shape[:2], 0xFFFF if depth == 16 else 0xFF)
    chans = {"R": src[..., 0], "G": src[..., 1], "B": src[..., 2], "A": alpha, "L": src[..., 1]}
    out = np.stack([chans[c] for c in order], axis=-1).astype(dtype)
    return out[..., 0] if order == "L" else out


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> object:
    """Image message built by hand: explicit byte order and ``pad`` junk bytes after every row."""
    h, w = pixels.shape[:2]
    dt = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = pixels.astype(dt).reshape(h, -1).view(np.uint8)
    junk = np.full((h, pad), 0xAB, dtype=np.uint8)
    data = np.concatenate([rows, junk], axis=1).reshape(-1)
    return Image(
        header=header(),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=rows.shape[1] + pad,
        data=data,
    )


# --- images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_encoding_decodes(encoding: str, pad: int, bigendian: bool) -> None:
    rgb16 = np.random.default_rng(1).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    pixels = raw_pixels(rgb16, encoding)
    msg = make_image(pixels, encoding, pad=pad, bigendian=bigendian)
    before = msg.data.copy()
    out = image_to_numpy(msg)
    np.testing.assert_array_equal(out, pixels)
    assert out.dtype == pixels.dtype and out.dtype.isnative
    np.testing.assert_array_equal(msg.data, before)  # the message buffer is not modified

    rgb = image_to_rgb(msg)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    want = (rgb16 >> 8).astype(np.uint8)
    if ENCODINGS[encoding].channels == 1:
        want = np.repeat(want[..., 1:2], 3, axis=2)  # mono carries the green channel in raw_pixels
    np.testing.assert_array_equal(rgb, want)


def test_cv_bridge_and_whmr_conversions_agree_for_every_encoding() -> None:
    from whmr_ros.conversions import cv_bridge_image_to_rgb

    convert = cv_bridge_image_to_rgb()
    if convert is None:
        pytest.skip("cv_bridge is not importable here (the node then uses whmr's own conversion)")
    rgb16 = np.random.default_rng(2).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    for encoding in ENCODINGS:
        for pad, bigendian in ((0, False), (3, False), (0, True)):
            msg = make_image(raw_pixels(rgb16, encoding), encoding, pad=pad, bigendian=bigendian)
            np.testing.assert_array_equal(convert(msg), image_to_rgb(msg), err_msg=f"{encoding} {pad}")


def test_big_endian_flag_changes_16bit_values() -> None:
    pixels = np.array([[0x0102, 0xA0B0]], dtype=np.uint16)
    msg = make_image(pixels, "mono16", bigendian=True)
    assert bytes(msg.data) == b"\x01\x02\xa0\xb0"
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)
    msg.is_bigendian = 0  # same bytes read as little-endian: swapped values
    np.testing.assert_array_equal(image_to_numpy(msg), [[0x0201, 0xB0A0]])


def test_padding_bytes_never_leak_into_pixels() -> None:
    rgb = rgb_reference()
    msg = make_image(rgb, "rgb8", pad=5)
    assert msg.step == 7 * 3 + 5
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)
    # Ignoring step (as rosbags-image does) would shear the rows: the second row would start 5 bytes early.
    sheared = np.asarray(msg.data)[: 5 * 21].reshape(5, 7, 3)
    assert not np.array_equal(sheared, rgb)


def test_unpadded_rgb8_is_a_view_of_the_message_buffer() -> None:
    rgb = rgb_reference()
    msg = make_image(rgb, "rgb8")
    out = image_to_rgb(msg)
    assert np.shares_memory(out, msg.data)  # no copy of a 900 KB camera image per frame
    np.testing.assert_array_equal(out, rgb)
    padded = make_image(rgb, "rgb8", pad=5)
    assert not np.shares_memory(image_to_rgb(padded), padded.data)  # contiguous rows: a copy


def test_bgr8_is_swapped_to_rgb() -> None:
    msg = make_image(np.array([[[10, 20, 30]]], dtype=np.uint8), "bgr8")
    np.testing.assert_array_equal(image_to_rgb(msg), [[[30, 20, 10]]])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_round_trip_through_cdr(encoding: str) -> None:
    rgb16 = np.random.default_rng(2).integers(0, 65536, (3, 5, 3), dtype=np.uint16)
    pixels = raw_pixels(rgb16, encoding)
    msg = numpy_to_image(pixels, encoding, STAMP_NS, "cam_optical", T)
    assert msg.is_bigendian == 0 and msg.step == 5 * ENCODINGS[encoding].channels * pixels.itemsize
    back = TS.deserialize_cdr(TS.serialize_cdr(msg, Image.__msgtype__), Image.__msgtype__)
    np.testing.assert_array_equal(image_to_numpy(back), pixels)
    assert header_stamp_ns(back) == STAMP_NS and back.header.frame_id == "cam_optical"


def test_numpy_to_image_accepts_custom_data_factory_and_non_contiguous() -> None:
    rgb = rgb_reference()[:, ::-1]  # a negative-stride view
    msg = numpy_to_image(rgb, "rgb8", 0, "c", T, data_factory=lambda b: np.frombuffer(b, np.uint8).copy())
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)
    msg.data = bytes(msg.data)  # rclpy-style bytes-like data decodes too
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)


@pytest.mark.parametrize(
    ("field", "changes", "needle"),
    [
        ("encoding", {"encoding": "yuv422"}, "unsupported encoding 'yuv422'"),
        ("encoding", {"encoding": ""}, "unsupported encoding"),
        ("step", {"step": 7 * 3 - 1}, "less than width * bytes per pixel = 21"),
        ("data", {"data": np.zeros(5 * 21 - 1, dtype=np.uint8)}, "truncated: 104 bytes, expected"),
        ("data", {"data": np.zeros(5 * 21 + 7, dtype=np.uint8)}, "too long"),
        ("data", {"step": 22}, "truncated"),  # step says padded rows that the data does not have
        ("height", {"height": 0}, "must be >= 1"),
        ("width", {"width": -3}, "must be >= 1"),
        ("is_bigendian", {"is_bigendian": 2}, "expected 0 or 1"),
        ("height", {"height": 5.0}, "expected an integer"),
        ("data", {"data": ["x"]}, "expected bytes"),
    ],
)
def test_malformed_images_raise_message_error(field: str, changes: dict, needle: str) -> None:
    msg = make_image(rgb_reference(), "rgb8")
    for k, v in changes.items():
        setattr(msg, k, v)
    with pytest.raises(MessageError) as e:
        image_to_rgb(msg)
    assert e.value.field == field and needle in e.value.reason, str(e.value)
    assert isinstance(e.value, ValueError) and str(e.value).startswith(f"{field}: ")


def test_missing_field_raises_message_error() -> None:
    class NoStep:
        encoding, height, width, is_bigendian, data = "mono8", 1, 1, 0, b"\x00"

    with pytest.raises(MessageError, match="step: missing field"):
        image_to_numpy(NoStep())


@pytest.mark.parametrize(
    ("array", "encoding", "needle"),
    [
        (np.zeros((2, 2, 3), np.uint8), "yuv422", "unsupported"),
        (np.zeros((2, 2), np.uint8), "rgb8", "shape (H, W, 3)"),
        (np.zeros((2, 2, 4), np.uint8), "rgb8", "shape (H, W, 3)"),
        (np.zeros((2, 2, 3), np.uint16), "rgb8", "dtype uint8"),
        (np.zeros((2, 2), np.uint8), "mono16", "dtype uint16"),
        (np.zeros((0, 2, 3), np.uint8), "rgb8", "empty"),
    ],
)
def test_numpy_to_image_rejects(array: np.ndarray, encoding: str, needle: str) -> None:
    with pytest.raises(MessageError, match=re.escape(needle)):
        numpy_to_image(array, encoding, 0, "c", T)


# --- time --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, STAMP_NS, -1, -1_500_000_000])
def test_time_round_trip(ns: int) -> None:
    t = ns_to_time(ns, T["builtin_interfaces/msg/Time"])
    assert 0 <= t.nanosec < 1_000_000_000
    assert time_to_ns(t) == ns
    back = TS.deserialize_cdr(TS.serialize_cdr(header(ns), "std_msgs/msg/Header"), "std_msgs/msg/Header")
    assert time_to_ns(back.stamp) == ns


def test_time_rejects_bad_nanosec() -> None:
    t = T["builtin_interfaces/msg/Time"](sec=1, nanosec=1_000_000_000)
    with pytest.raises(MessageError, match=r"stamp\.nanosec: must be < 1e9"):
        time_to_ns(t)


# --- camera info -------------------------------------------------------------------------------------


def camera_info(**changes: object) -> object:
    fields = dict(
        header=header(),
        height=480,
        width=640,
        distortion_model="plumb_bob",
        d=np.array([0.1, -0.05, 0.0, 0.0, 0.0]),
        k=np.array([500.0, 0, 320, 0, 510.0, 240, 0, 0, 1]),
        r=np.eye(3).reshape(-1),
        p=np.array([500.0, 0, 320, 0, 0, 510.0, 240, 0, 0, 0, 1, 0]),
        binning_x=0,
        binning_y=0,
        roi=ROI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )
    fields.update(changes)
    return CameraInfo(**fields)


def test_camera_info_to_intrinsics() -> None:
    ci = camera_info_to_intrinsics(camera_info())
    np.testing.assert_array_equal(ci.K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    assert (ci.width, ci.height, ci.focal, ci.principal_point) == (640, 480, (500.0, 510.0), (320.0, 240.0))
    assert ci.distortion_model == "plumb_bob" and ci.D.shape == (5,) and ci.frame_id == "camera_optical"
    back = TS.deserialize_cdr(TS.serialize_cdr(camera_info(), CameraInfo.__msgtype__), CameraInfo.__msgtype__)
    np.testing.assert_array_equal(camera_info_to_intrinsics(back).K, ci.K)


def test_camera_info_roi_and_binning() -> None:
    roi = ROI(x_offset=100, y_offset=40, height=200, width=300, do_rectify=False)
    ci = camera_info_to_intrinsics(camera_info(roi=roi, binning_x=2, binning_y=2))
    np.testing.assert_allclose(ci.K, [[250, 0, 110], [0, 255, 100], [0, 0, 1]])
    assert (ci.width, ci.height) == (150, 100)


@pytest.mark.parametrize(
    ("changes", "field", "needle"),
    [
        ({"k": np.zeros(9)}, "k", "focal lengths must be > 0"),
        ({"k": np.array([500.0, 0, 320, 0, 0.0, 240, 0, 0, 1])}, "k", "fy=0"),
        ({"k": np.array([np.nan, 0, 320, 0, 500, 240, 0, 0, 1])}, "k", "non-finite"),
        ({"k": np.array([500.0, 0, 320, 0, 500, 240, 0, 0, 2])}, "k", "last row (0, 0, 1)"),
        ({"k": np.ones(6)}, "k", "expected 9 values, got 6"),
        ({"width": 0}, "width", "must be >= 1"),
        ({"d": np.array([np.inf, 0.0])}, "d", "non-finite"),
        (
            {"k": np.array([500.0, 0, 5000, 0, 510, 240, 0, 0, 1])},
            "k",
            "principal point (5000, 240) lies outside",
        ),
        (
            {"k": np.array([500.0, 0, 320, 0, 510, -1, 0, 0, 1])},
            "k",
            "principal point (320, -1) lies outside",
        ),
        (
            {"k": np.array([1e-6, 0, 320, 0, 510, 240, 0, 0, 1])},
            "k",
            "fx=1e-06 px gives a 180 deg field of view",
        ),
        ({"k": np.array([500.0, 0, 320, 0, 1e9, 240, 0, 0, 1])}, "k", "fy=1e+09 px"),
    ],
)
def test_camera_info_malformed(changes: dict, field: str, needle: str) -> None:
    with pytest.raises(MessageError) as e:
        camera_info_to_intrinsics(camera_info(**changes))
    assert e.value.field == field and needle in e.value.reason, str(e.value)


# --- IMU ---------------------------------------------------------------------------------------------


def imu(
    q=(0.0, 0.0, 0.0, 1.0), a=(0.0, 0.0, 9.81), w=(0.01, 0.02, 0.03), cov=(0.0, 0.0, 0.0), stamp=STAMP_NS
):
    def c(v: float) -> np.ndarray:
        m = np.zeros(9)
        m[0] = v
        return m

    return Imu(
        header=header(stamp, "imu_link"),
        orientation=Quaternion(x=q[0], y=q[1], z=q[2], w=q[3]),
        orientation_covariance=c(cov[0]),
        angular_velocity=Vector3(x=w[0], y=w[1], z=w[2]),
        angular_velocity_covariance=c(cov[1]),
        linear_acceleration=Vector3(x=a[0], y=a[1], z=a[2]),
        linear_acceleration_covariance=c(cov[2]),
    )


def test_imu_reading_and_cdr_round_trip() -> None:
    msg = TS.deserialize_cdr(TS.serialize_cdr(imu(), Imu.__msgtype__), Imu.__msgtype__)
    r = imu_to_reading(msg)
    assert r.stamp_ns == STAMP_NS and r.frame_id == "imu_link" and r.orientation_valid
    np.testing.assert_array_equal(r.orientation_xyzw, [0, 0, 0, 1])
    np.testing.assert_array_equal(r.accel, [0, 0, 9.81])
    np.testing.assert_array_equal(r.gyro, [0.01, 0.02, 0.03])


def test_imu_parts_flagged_not_provided_are_none() -> None:
    r = imu_to_reading(imu(q=(np.nan,) * 4, a=(np.nan,) * 3, w=(np.nan,) * 3, cov=(-1.0, -1.0, -1.0)))
    assert r.orientation_xyzw is None and not r.orientation_valid and r.orientation_covariance0 == -1.0
    assert r.accel is None and r.gyro is None


def test_imu_non_finite_parts_pass_through_to_be_judged_one_by_one() -> None:
    r = imu_to_reading(imu(q=(0.0, np.nan, 0.0, 1.0), w=(np.nan, 0.0, 0.0)))
    assert np.isnan(r.orientation_xyzw[1]) and np.isnan(r.gyro[0])
    np.testing.assert_array_equal(r.accel, [0, 0, 9.81])  # the good part survives the bad one
    assert r.orientation_covariance.shape == (9,)


def test_imu_non_numeric_quaternion_raises() -> None:
    msg = imu()
    msg.orientation = None
    with pytest.raises(MessageError) as e:
        imu_to_reading(msg)
    assert e.value.field == "orientation"


def test_imu_zero_reading_passes_to_estimator_which_falls_back() -> None:
    cam_from_imu = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    est = GravityEstimator(cam_from_imu)
    r = imu_to_reading(imu(q=(0.0, 0.0, 0.0, 0.0), a=(0.0, 0.0, 0.0)))
    problems = est.add_imu(
        r.stamp_ns, r.orientation_xyzw, r.accel, orientation_covariance0=r.orientation_covariance0
    )
    assert len(problems) == 2
    assert est.gravity_at(r.stamp_ns).source == "parameter"


def test_imu_message_to_gravity_end_to_end() -> None:
    # IMU pitched 30 deg nose down; orientation flagged invalid, so gravity comes from the accelerometer.
    t = math.radians(30)
    cam_from_imu = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    est = GravityEstimator(cam_from_imu, accel_time_constant_s=0.0)
    r = imu_to_reading(imu(a=(-9.81 * math.sin(t), 0.0, 9.81 * math.cos(t)), cov=(-1.0, 0.0, 0.0)))
    est.add_imu(r.stamp_ns, r.orientation_xyzw, r.accel, orientation_covariance0=r.orientation_covariance0)
    e = est.gravity_at(r.stamp_ns)
    assert e.source == "imu_accel" and "flagged invalid" in e.reason
    np.testing.assert_allclose(e.gravity, [0.0, math.cos(t), math.sin(t)], atol=1e-12)


@pytest.mark.parametrize(
    ("model", "d", "low", "high"),
    [
        ("plumb_bob", [0.0] * 5, 0.0, 0.0),
        ("plumb_bob", [1e-7, 0, 0, 0, 0], 0.0, 0.01),
        ("plumb_bob", [-0.3, 0.1, 0, 0, 0], 20.0, 200.0),  # a wide-angle lens: tens of pixels
        ("equidistant", [0.1, 0.0, 0.0, 0.0], 5.0, 500.0),
        ("unknown_model", [0.1], math.inf, math.inf),
    ],
)
def test_distortion_is_measured_at_the_image_corners(model: str, d: list, low: float, high: float) -> None:
    ci = camera_info_to_intrinsics(camera_info(distortion_model=model, d=np.array(d, dtype=np.float64)))
    assert low <= ci.distortion_px() <= high

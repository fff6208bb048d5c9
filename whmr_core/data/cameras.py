"""Random pinhole cameras with exact intrinsics and gravity (synthetic data).

Frames (DESIGN.md section 4): camera optical frame C (x right, y down, z forward); gravity-aligned frame G
with its origin at the camera, y_G along gravity (down) and z_G the camera's forward axis made horizontal,
so a sampled camera has no yaw in G. ``X_C = R_c X_G`` and gravity in C is ``R_c[:, 1]``.

Pixel convention: OpenCV's, pixel (i, j) has its centre at (x, y) = (i, j); a horizontal flip maps x to
``W - 1 - x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Camera", "CameraConfig", "camera_rotation", "focal_from_hfov", "sample_camera"]


@dataclass(frozen=True)
class CameraConfig:
    """Ranges the camera sampler draws from (angles in degrees, lengths in metres, sizes in pixels)."""

    # (width, height) ratios: landscape, portrait and square, as phones, webcams and robot heads give them.
    aspect_ratios: tuple[tuple[int, int], ...] = ((4, 3), (3, 4), (16, 9), (9, 16), (1, 1), (3, 2), (2, 3))
    # Long image side; modest because CPU training works on small crops.
    long_side: tuple[int, int] = (320, 640)
    # Horizontal field of view, wide angle to telephoto; the focal length is drawn log-uniformly between.
    hfov_deg: tuple[float, float] = (10.0, 100.0)
    # Principal point offset from the image centre, as a fraction of each side (std, clip).
    principal_point_std: float = 0.02
    principal_point_max: float = 0.05
    pitch_deg: tuple[float, float] = (-45.0, 45.0)  # positive looks down
    # Positive roll tips the camera's x axis down, so the scene appears turned counter-clockwise.
    roll_deg: tuple[float, float] = (-15.0, 15.0)
    height_m: tuple[float, float] = (0.3, 3.0)  # optical centre above the ground plane

    def __post_init__(self) -> None:
        for name in ("long_side", "hfov_deg", "pitch_deg", "roll_deg", "height_m"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"CameraConfig.{name}: lower bound {lo} above upper bound {hi}")
        if not (0 < self.hfov_deg[0] and self.hfov_deg[1] < 180):
            raise ValueError(f"CameraConfig.hfov_deg: must lie in (0, 180), got {self.hfov_deg}")
        if self.long_side[0] < 16:
            raise ValueError(f"CameraConfig.long_side: too small, got {self.long_side}")
        if not self.aspect_ratios:
            raise ValueError("CameraConfig.aspect_ratios: empty")


@dataclass(frozen=True)
class Camera:
    """One sampled camera. Arrays are float64; ``K`` is the OpenCV pinhole matrix."""

    image_wh: tuple[int, int]
    K: np.ndarray = field(repr=False)  # (3,3)
    R_c: np.ndarray = field(repr=False)  # (3,3), X_C = R_c X_G
    height: float  # metres above the ground plane (the ground is y_G = height)
    pitch_deg: float
    roll_deg: float

    @property
    def gravity_cam(self) -> np.ndarray:
        """Unit gravity (down) in the camera frame, (3,): the second column of R_c."""
        return self.R_c[:, 1].copy()

    @property
    def focal(self) -> np.ndarray:
        """(f_x, f_y) in pixels."""
        return np.array([self.K[0, 0], self.K[1, 1]])

    @property
    def principal_point(self) -> np.ndarray:
        """(c_x, c_y) in pixels."""
        return np.array([self.K[0, 2], self.K[1, 2]])

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.image_wh[0] / (2 * self.K[0, 0])))

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Pinhole projection of camera-frame points (..., 3) to pixels (..., 2)."""
        p = np.asarray(points_cam, dtype=np.float64)
        return p[..., :2] / p[..., 2:3] * self.focal + self.principal_point

    def ray_world(self, pixels: np.ndarray) -> np.ndarray:
        """Unit viewing rays in G through pixels (..., 2) -> (..., 3)."""
        xy = (np.asarray(pixels, dtype=np.float64) - self.principal_point) / self.focal
        rays = np.concatenate([xy, np.ones_like(xy[..., :1])], axis=-1) @ self.R_c  # R_c^T r per row
        return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def focal_from_hfov(width: float, hfov_deg: float) -> float:
    """Focal length in pixels giving a horizontal field of view of ``hfov_deg`` over ``width`` pixels."""
    return width / (2 * math.tan(math.radians(hfov_deg) / 2))


def camera_rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """R_c (X_C = R_c X_G) of a camera pitched down by ``pitch_deg`` then rolled about its optical axis.

    Built from the camera's axes expressed in G (no yaw), independently of
    ``geometry.camera_rotation_from_gravity`` so the tests can compare the two.
    """
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    # Pitched-only camera: forward tips down (+y_G), image-down axis tips back towards the camera.
    x0 = np.array([1.0, 0.0, 0.0])
    y0 = np.array([0.0, math.cos(p), -math.sin(p)])
    z0 = np.array([0.0, math.sin(p), math.cos(p)])
    # Roll about the optical axis: the camera's x/y axes turn within their plane.
    x_c = math.cos(r) * x0 + math.sin(r) * y0
    y_c = -math.sin(r) * x0 + math.cos(r) * y0
    # Rows of R_c are the camera axes in G, so R_c maps G coordinates to C coordinates.
    return np.stack([x_c, y_c, z0])


def sample_camera(rng: np.random.Generator, config: CameraConfig | None = None) -> Camera:
    """Draw image size, focal length, principal point, pitch, roll and height."""
    cfg = config or CameraConfig()
    aw, ah = cfg.aspect_ratios[int(rng.integers(len(cfg.aspect_ratios)))]
    long_side = int(rng.integers(cfg.long_side[0], cfg.long_side[1] + 1))
    # Even sizes so a centred crop and downsampling stay symmetric.
    if aw >= ah:
        w = long_side
        h = round(long_side * ah / aw)
    else:
        h = long_side
        w = round(long_side * aw / ah)
    w, h = w - w % 2, h - h % 2
    f_wide = focal_from_hfov(w, cfg.hfov_deg[1])
    f_tele = focal_from_hfov(w, cfg.hfov_deg[0])
    f = math.exp(rng.uniform(math.log(f_wide), math.log(f_tele)))
    off = np.clip(
        rng.normal(0.0, cfg.principal_point_std, 2), -cfg.principal_point_max, cfg.principal_point_max
    )
    cx, cy = w / 2 + off[0] * w, h / 2 + off[1] * h
    K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    pitch = float(rng.uniform(*cfg.pitch_deg))
    roll = float(rng.uniform(*cfg.roll_deg))
    height = float(rng.uniform(*cfg.height_m))
    return Camera(
        image_wh=(w, h), K=K, R_c=camera_rotation(pitch, roll), height=height, pitch_deg=pitch, roll_deg=roll
    )

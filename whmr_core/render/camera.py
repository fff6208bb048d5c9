"""OpenCV pinhole camera for the renderer and its exact OpenGL clip-space matrix.

Convention (OpenCV and ROS ``_optical``): camera frame x right, y down, z forward, metres; a point
projects to ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` with integer (u, v) at pixel *centres*,
so image row 0 is the top row. OpenGL puts pixel centres at half-integers, hence the ``+ 0.5`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PinholeCamera", "look_at", "pose_matrix"]


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] for a ``width`` x ``height`` image.

    ``near``/``far`` (metres) bound what is drawn; depth resolution of the 24-bit depth test at distance
    z is about z^2 / (near * 2^24), 0.2 mm at 12 m with the default near plane.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    near: float = 0.05
    far: float = 200.0

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy", "near", "far"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"PinholeCamera.{name}: must be finite, got {getattr(self, name)}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"PinholeCamera: focal lengths must be > 0, got fx={self.fx}, fy={self.fy}")
        if int(self.width) != self.width or int(self.height) != self.height:
            raise ValueError(f"PinholeCamera: width/height must be integers, got {self.width}x{self.height}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"PinholeCamera: image size must be positive, got {self.width}x{self.height}")
        if not 0 < self.near < self.far:
            raise ValueError(f"PinholeCamera: need 0 < near < far, got near={self.near}, far={self.far}")

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int, near: float = 0.05, far: float = 200.0):
        """Build from a 3x3 intrinsic matrix (skew must be zero)."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K: expected shape (3, 3), got {K.shape}")
        if abs(K[0, 1]) > 1e-9 or np.any(K[2] != (0.0, 0.0, 1.0)):
            raise ValueError(f"K: expected [[fx,0,cx],[0,fy,cy],[0,0,1]], got {K.tolist()}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height, near, far)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float, near: float = 0.05, far: float = 200.0):
        """Square pixels, principal point at the image centre (W/2, H/2) as in DESIGN.md eq. 2."""
        f = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
        return cls(float(f), float(f), width / 2, height / 2, width, height, near, far)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.width), int(self.height)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (..., 2) pixel coordinates (OpenCV convention)."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack(
            [self.fx * p[..., 0] / p[..., 2] + self.cx, self.fy * p[..., 1] / p[..., 2] + self.cy], -1
        )

    def gl_projection(self) -> np.ndarray:
        """4x4 matrix taking camera-frame (x, y, z, 1) to GL clip space, with clip w = z.

        NDC x = 2 (u + 0.5) / W - 1 puts OpenCV pixel u at GL pixel centre u + 0.5; likewise for v.
        There is no y flip: GL window row 0 (the first row glReadPixels returns) is image row 0, so the
        read-back array is already top-down. The flip it avoids also mirrors triangle winding; the
        renderer draws both faces, so winding does not matter.
        """
        W, H, n, f = float(self.width), float(self.height), self.near, self.far
        return np.array(
            [
                [2 * self.fx / W, 0, (2 * self.cx + 1) / W - 1, 0],
                [0, 2 * self.fy / H, (2 * self.cy + 1) / H - 1, 0],
                [0, 0, (f + n) / (f - n), -2 * f * n / (f - n)],
                [0, 0, 1, 0],
            ],
            dtype=np.float64,
        )


def pose_matrix(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform ``X_out = R X_in + t``."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64).reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def look_at(eye: np.ndarray, target: np.ndarray, down: np.ndarray) -> np.ndarray:
    """World->camera 4x4 pose of an optical-frame camera at ``eye`` looking at ``target``.

    ``down`` is the world direction that should appear downwards in the image (gravity for a level
    picture). Raises ValueError when the view direction is parallel to ``down``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(np.asarray(down, dtype=np.float64), fwd)
    norm = np.linalg.norm(right)
    if norm < 1e-9:
        raise ValueError("look_at: view direction is parallel to 'down'; pick another eye position")
    right /= norm
    R = np.stack([right, np.cross(fwd, right), fwd])  # rows: camera x (right), y (down), z (forward)
    return pose_matrix(R, -R @ eye)

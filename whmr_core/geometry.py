"""Camera geometry of W-HMR (DESIGN.md sections 3 and 4), as pure functions on batched tensors.

Conventions: image W x H pixels, person box centre (c_x, c_y) and square side b in pixels, crop
coordinates in [-1, 1], camera optical frame x right / y down / z forward. Every function keeps the
dtype and device of its inputs and is differentiable.

Shapes: points (N,J,3), cam_crop (N,3) = (s, t_x, t_y), bbox_center (N,2), bbox_size (N,),
image_wh (N,2), tz (N,), focal (N,) or (N,2), principal_point (N,2), gravity_cam (N,3).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from whmr_core._checks import check_batch, check_positive, check_tensor
from whmr_core.rotations import cross

__all__ = [
    "FOV_RANGE_DEG",
    "GRAVITY_FROM_G",
    "camera_matrix_problem",
    "camera_rotation_from_gravity",
    "depth_from_focal",
    "focal_from_depth",
    "focal_to_pixels",
    "full2d_weights",
    "full_image_translation",
    "glob_info",
    "image_centre",
    "normalise_full_image",
    "perspective_project",
    "pseudo_focal",
    "weak_perspective_project",
]


# The published gravity frame <camera>_gravity uses ROS axes (x forward, y left, z up); G has y down and z
# forward (section 4): rows are the ROS axes in G, X_ros = GRAVITY_FROM_G X_G.
GRAVITY_FROM_G = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _focal_xy(focal: torch.Tensor) -> torch.Tensor:
    """(N,) or (N,2) focal length -> (N,2) (f_x, f_y)."""
    if focal.dim() == 1:
        return torch.stack([focal, focal], dim=-1)
    return focal


def _check_focal(focal: torch.Tensor, n: int | None = None) -> torch.Tensor:
    if isinstance(focal, torch.Tensor) and focal.dim() == 1:
        check_tensor("focal", focal, (), batch_dims=1)
    else:
        check_tensor("focal", focal, (2,), batch_dims=1)
    return check_positive("focal", focal)


def image_centre(image_wh: torch.Tensor) -> torch.Tensor:
    """Default principal point (W/2, H/2), (N,2)."""
    check_tensor("image_wh", image_wh, (2,), batch_dims=1)
    return image_wh / 2


def focal_from_depth(scale: torch.Tensor, bbox_size: torch.Tensor, tz: torch.Tensor) -> torch.Tensor:
    """Eq. 3: focal length f = s * b * t_z / 2 in pixels, (N,)."""
    check_tensor("scale", scale, (), batch_dims=1)
    check_positive("bbox_size", check_tensor("bbox_size", bbox_size, (), batch_dims=1))
    check_tensor("tz", tz, (), batch_dims=1)
    check_batch(("scale", "bbox_size", "tz"), scale, bbox_size, tz)
    return scale * bbox_size * tz / 2


def depth_from_focal(scale: torch.Tensor, bbox_size: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """Eq. 3 solved for depth: t_z = 2 f / (s b), (N,). Metric when f comes from a calibrated K.

    A (N,2) focal (f_x, f_y) uses their mean: the box is square, so one focal length stands for both axes.
    """
    check_tensor("scale", scale, (), batch_dims=1)
    check_positive("bbox_size", check_tensor("bbox_size", bbox_size, (), batch_dims=1))
    _check_focal(focal)
    check_batch(("scale", "bbox_size", "focal"), scale, bbox_size, focal)
    if not torch.jit.is_tracing() and bool((scale == 0).any()):
        raise ValueError("scale: must be non-zero to recover depth from focal length")
    f = focal if focal.dim() == 1 else focal.mean(dim=-1)
    return 2 * f / (scale * bbox_size)


def full_image_translation(
    cam_crop: torch.Tensor,
    bbox_center: torch.Tensor,
    bbox_size: torch.Tensor,
    image_wh: torch.Tensor,
    tz: torch.Tensor,
    principal_point: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 4: camera translation of the body in the full image, (N,3).

    t_b = (t_x + 2 (c_x - p_x) / (s b), t_y + 2 (c_y - p_y) / (s b), t_z) with the principal point p at
    the image centre (W/2, H/2) unless given (calibrated K).
    """
    check_tensor("cam_crop", cam_crop, (3,), batch_dims=1)
    check_tensor("bbox_center", bbox_center, (2,), batch_dims=1)
    check_positive("bbox_size", check_tensor("bbox_size", bbox_size, (), batch_dims=1))
    check_tensor("tz", tz, (), batch_dims=1)
    if principal_point is None:
        principal_point = image_centre(image_wh)
    else:
        check_tensor("image_wh", image_wh, (2,), batch_dims=1)
        check_tensor("principal_point", principal_point, (2,), batch_dims=1)
    check_batch(
        ("cam_crop", "bbox_center", "bbox_size", "image_wh", "tz"),
        cam_crop,
        bbox_center,
        bbox_size,
        image_wh,
        tz,
    )
    s = cam_crop[:, 0:1]
    if not torch.jit.is_tracing() and bool((s == 0).any()):
        raise ValueError("cam_crop: scale s must be non-zero")
    txy = cam_crop[:, 1:3] + 2 * (bbox_center - principal_point) / (s * bbox_size[:, None])
    return torch.cat([txy, tz[:, None]], dim=-1)


def perspective_project(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal: torch.Tensor,
    principal_point: torch.Tensor,
) -> torch.Tensor:
    """Eq. 2: full-perspective projection p = f (X + t)_xy / (X_z + t_z) + c, pixels, (N,J,2)."""
    check_tensor("points", points, (None, 3), batch_dims=1)
    check_tensor("translation", translation, (3,), batch_dims=1)
    _check_focal(focal)
    check_tensor("principal_point", principal_point, (2,), batch_dims=1)
    check_batch(
        ("points", "translation", "focal", "principal_point"), points, translation, focal, principal_point
    )
    cam = points + translation[:, None, :]
    return _focal_xy(focal)[:, None, :] * cam[..., :2] / cam[..., 2:3] + principal_point[:, None, :]


def weak_perspective_project(points: torch.Tensor, cam_crop: torch.Tensor) -> torch.Tensor:
    """Weak-perspective camera in the crop (SPIN/PyMAF): x = s (X_xy + (t_x, t_y)), crop coords, (N,J,2)."""
    check_tensor("points", points, (None, 3), batch_dims=1)
    check_tensor("cam_crop", cam_crop, (3,), batch_dims=1)
    check_batch(("points", "cam_crop"), points, cam_crop)
    return cam_crop[:, None, 0:1] * (points[..., :2] + cam_crop[:, None, 1:3])


def normalise_full_image(points2d: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """Eq. 5 (FULL^2 term): full-image pixels to [-1, 1] as p / (W/2, H/2) - 1, (N,J,2)."""
    check_tensor("points2d", points2d, (None, 2), batch_dims=1)
    check_positive("image_wh", check_tensor("image_wh", image_wh, (2,), batch_dims=1))
    check_batch(("points2d", "image_wh"), points2d, image_wh)
    return points2d / (image_wh[:, None, :] / 2) - 1


def full2d_weights(bbox_size: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """Eq. 5 (FULL^2 term): per-axis weights (W / w_bbox, H / h_bbox) with a square box, (N,2)."""
    check_positive("bbox_size", check_tensor("bbox_size", bbox_size, (), batch_dims=1))
    check_positive("image_wh", check_tensor("image_wh", image_wh, (2,), batch_dims=1))
    check_batch(("bbox_size", "image_wh"), bbox_size, image_wh)
    return image_wh / bbox_size[:, None]


def glob_info(bbox_center: torch.Tensor, bbox_size: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """Eq. 7: [c_x - W/2, c_y - H/2, b, W, H] / sqrt(W^2 + H^2), (N,5)."""
    check_tensor("bbox_center", bbox_center, (2,), batch_dims=1)
    check_positive("bbox_size", check_tensor("bbox_size", bbox_size, (), batch_dims=1))
    check_positive("image_wh", check_tensor("image_wh", image_wh, (2,), batch_dims=1))
    check_batch(("bbox_center", "bbox_size", "image_wh"), bbox_center, bbox_size, image_wh)
    info = torch.cat([bbox_center - image_wh / 2, bbox_size[:, None], image_wh], dim=-1)
    return info / pseudo_focal(image_wh)[:, None]


def pseudo_focal(image_wh: torch.Tensor) -> torch.Tensor:
    """Eq. 8: stage-I pseudo focal label sqrt(W^2 + H^2), (N,)."""
    check_positive("image_wh", check_tensor("image_wh", image_wh, (2,), batch_dims=1))
    return torch.linalg.vector_norm(image_wh, dim=-1)


def focal_to_pixels(focal: torch.Tensor, image_wh: torch.Tensor) -> torch.Tensor:
    """The network's focal length, in units of the image diagonal (it sees glob_info / diagonal), in
    pixels, (N,): the one conversion between the two."""
    check_tensor("focal", focal, (), batch_dims=1)
    return focal * pseudo_focal(image_wh)


def camera_rotation_from_gravity(gravity_cam: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Section 4: R_c = [x_G | g | z_G] (columns in the camera frame), X_C = R_c X_G, (N,3,3).

    ``gravity_cam`` is the direction of gravity (down) in the camera optical frame, any length.
    z_G is the camera's forward axis projected onto the horizontal plane; when the camera looks
    straight up or down that projection vanishes and the image's up direction (-y for a camera
    looking down, +y looking up) takes its place, which is the limit of the projection there.
    A level camera (gravity along +y) gives the identity.
    """
    check_tensor("gravity_cam", gravity_cam, (3,), batch_dims=1)
    norm = torch.linalg.vector_norm(gravity_cam, dim=-1, keepdim=True)
    if not torch.jit.is_tracing() and bool((norm <= eps).any()):
        raise ValueError("gravity_cam: zero (or near-zero) gravity vector, direction undefined")
    g = gravity_cam / norm
    z_cam = g.new_tensor([0.0, 0.0, 1.0]).expand_as(g)
    y_cam = g.new_tensor([0.0, 1.0, 0.0]).expand_as(g)
    fwd = z_cam - g[:, 2:3] * g
    fwd_norm = torch.linalg.vector_norm(fwd, dim=-1, keepdim=True)
    # Camera looking straight down (g ~ +z) or up (g ~ -z): use the image's up axis instead.
    alt = -torch.sign(g[:, 2:3]) * y_cam
    alt = alt - (alt * g).sum(-1, keepdim=True) * g
    degenerate = fwd_norm < 1e-4
    fwd = torch.where(degenerate, alt, fwd)
    z_g = fwd / torch.linalg.vector_norm(fwd, dim=-1, keepdim=True)
    x_g = cross(g, z_g)
    return torch.stack([x_g, g, z_g], dim=-1)


# A pinhole camera's field of view lies between these (degrees, per axis): a focal length outside is a
# unit mistake (metres, millimetres) or a corrupt K, not a lens.
FOV_RANGE_DEG = (0.5, 179.0)


def camera_matrix_problem(K: np.ndarray, width: int, height: int) -> str:
    """Why a 3x3 camera matrix cannot describe a ``width`` x ``height`` image ("" when it can): a
    principal point outside the image, or a focal length no lens has (``FOV_RANGE_DEG``)."""
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if not (0.0 <= cx <= width and 0.0 <= cy <= height):
        return f"principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} image"
    lo, hi = FOV_RANGE_DEG
    for axis, f, size in (("fx", float(K[0, 0]), width), ("fy", float(K[1, 1]), height)):
        fov = math.degrees(2 * math.atan(size / (2 * f))) if f > 0 else math.inf
        if not lo <= fov <= hi:
            return (f"{axis}={f:g} px gives a {fov:.3g} deg field of view over {size} px, not a camera's "
                    f"({lo:g} to {hi:g} deg)")  # fmt: skip
    return ""

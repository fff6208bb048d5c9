"""Person crops for the network: the one crop convention shared by inference and the datasets.

A person is a square box (centre c, side b pixels). The box is resized to a square of side
S = max(crop_h, crop_w); a non-square crop (e.g. 256x192, H x W) is the middle crop_h x crop_w window of
that square, so the crop keeps the square's scale b / S and its centre c. Pixels are RGB floats normalised
with the ImageNet mean/std, channels first.

Image coordinates follow OpenCV and ROS's CameraInfo K: integer coordinates are pixel centres, so the
same box and K can be used in eq. 2-4 without half-pixel offsets.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "crop_to_image",
    "crop_to_image_affine",
    "extract_crops",
    "image_to_crop_affine",
    "normalise_pixels",
    "square_boxes",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _check_crop_hw(crop_hw: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in crop_hw)
    if h < 1 or w < 1:
        raise ValueError(f"crop_hw: expected positive (H, W), got {crop_hw}")
    return h, w


def square_boxes(
    boxes_xyxy: np.ndarray, crop_hw: tuple[int, int], scale: float = 1.2
) -> tuple[np.ndarray, np.ndarray]:
    """(x1, y1, x2, y2) person boxes -> square boxes (centres (N,2), sides (N,)) for ``crop_hw`` crops.

    The side is chosen so the person box, enlarged by ``scale`` (context around the person, as in
    SPIN/PyMAF), fits in the visible crop window, which for a non-square crop is narrower than the square.
    """
    h, w = _check_crop_hw(crop_hw)
    if scale <= 0:
        raise ValueError(f"scale: must be > 0, got {scale}")
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    s = max(h, w)
    centres = (b[:, :2] + b[:, 2:]) / 2
    sides = scale * np.maximum((b[:, 3] - b[:, 1]) * s / h, (b[:, 2] - b[:, 0]) * s / w)
    return centres, sides


def crop_to_image_affine(centre: np.ndarray, size: float, crop_hw: tuple[int, int]) -> np.ndarray:
    """(2,3) affine taking crop pixel coordinates (u, v) to image pixel coordinates (x, y)."""
    h, w = _check_crop_hw(crop_hw)
    if not size > 0:
        raise ValueError(f"size: must be > 0, got {size}")
    k = float(size) / max(h, w)  # image pixels per crop pixel
    cx, cy = (float(v) for v in centre)
    # The crop's centre ((w-1)/2, (h-1)/2) lands on the box centre; the square's margins are cut equally.
    return np.array([[k, 0.0, cx - k * (w - 1) / 2], [0.0, k, cy - k * (h - 1) / 2]])


def image_to_crop_affine(
    centre: np.ndarray, size: float, crop_hw: tuple[int, int], rotation: np.ndarray | None = None
) -> np.ndarray:
    """(2,3) affine taking image pixels to crop pixels: the inverse of ``crop_to_image_affine``, after an
    optional in-plane ``rotation`` (2x2) of the image about the box centre (training augmentation)."""
    m = crop_to_image_affine(centre, size, crop_hw)
    k, offset = m[0, 0], m[:, 2]
    r = np.eye(2) if rotation is None else np.asarray(rotation, dtype=np.float64)
    c = np.asarray(centre, dtype=np.float64)
    # crop = (R (x - c) + c - offset) / k
    return np.concatenate([r / k, ((c - r @ c - offset) / k)[:, None]], axis=1)


def crop_to_image(
    points_uv: np.ndarray, centre: np.ndarray, size: float, crop_hw: tuple[int, int]
) -> np.ndarray:
    """Crop pixel coordinates (..., 2) -> image pixel coordinates (..., 2)."""
    m = crop_to_image_affine(centre, size, crop_hw)
    p = np.asarray(points_uv, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def normalise_pixels(rgb_hwc: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) RGB uint8 -> (..., 3, H, W) float32 normalised with the ImageNet mean/std."""
    x = (np.asarray(rgb_hwc, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def extract_crops(
    image: np.ndarray, centres: np.ndarray, sizes: np.ndarray, crop_hw: tuple[int, int]
) -> np.ndarray:
    """Crops of an (H, W, 3) RGB uint8 image -> (N, 3, crop_h, crop_w) float32, ImageNet-normalised.

    Outside the image the crop is black (zero pixels, before normalisation), as in training.
    """
    h, w = _check_crop_hw(crop_hw)
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(sizes, dtype=np.float64).reshape(-1)
    if len(c) != len(s):
        raise ValueError(f"centres/sizes: {len(c)} centres but {len(s)} sizes")
    out = np.empty((len(c), h, w, 3), dtype=np.uint8)
    for i in range(len(c)):
        m = crop_to_image_affine(c[i], s[i], crop_hw)
        # WARP_INVERSE_MAP: the matrix maps destination (crop) pixels to source (image) pixels.
        out[i] = cv2.warpAffine(
            img,
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
    return normalise_pixels(out)

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
    "compose_affine",
    "crop_to_image",
    "crop_to_image_affine",
    "extract_crops",
    "image_to_crop_affine",
    "normalise_pixels",
    "shrunk_window",
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


def shrunk_window(
    image: np.ndarray, x0: float, y0: float, x1: float, y1: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The image's pixels under the window [x0, x1] x [y0, y1] (a pixel more around, clipped to the image)
    area-resized by about ``scale`` (< 1: each new pixel the mean of the pixels it covers), and the (2, 3)
    affine taking image pixel coordinates to the shrunk region's. A crop warped from the region instead of
    the image averages the image's pixels rather than sampling 2 x 2 of them: the sensor noise of a
    brightened dark frame averages out (``runtime.movenet.exposure_normalised``)."""
    h, w = image.shape[:2]
    left, top = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
    right, bottom = min(int(np.ceil(x1)) + 2, w), min(int(np.ceil(y1)) + 2, h)
    if right <= left or bottom <= top:  # the window lies outside the image: black either way
        left, top, right, bottom = 0, 0, w, h
    rw, rh = max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale))
    region = cv2.resize(image[top:bottom, left:right], (rw, rh), interpolation=cv2.INTER_AREA)
    # Pixel centres at integers: image x is the region's u = (x - left + 0.5) fx - 0.5.
    fx, fy = rw / (right - left), rh / (bottom - top)
    to_region = np.array([[fx, 0.0, (0.5 - left) * fx - 0.5], [0.0, fy, (0.5 - top) * fy - 0.5]])
    return region, to_region


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``outer`` after (2, 3) affine ``inner``."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def extract_crops(
    image: np.ndarray,
    centres: np.ndarray,
    sizes: np.ndarray,
    crop_hw: tuple[int, int],
    average: bool = False,
) -> np.ndarray:
    """Crops of an (H, W, 3) RGB uint8 image -> (N, 3, crop_h, crop_w) float32, ImageNet-normalised.

    Outside the image the crop is black (zero pixels, before normalisation), as in training. Bilinear, as in
    training; ``average`` (a brightened dark frame): where the crop shrinks the image, each crop pixel is the
    mean of the image pixels it covers (``shrunk_window``).
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
        source = img
        k = m[0, 0]  # image pixels per crop pixel
        if average and k > 1:
            # The crop's window: its corner pixels' centres -+ half a crop pixel.
            x0, y0 = m[:, 2] - k / 2
            x1, y1 = m[:, :2] @ [w - 1, h - 1] + m[:, 2] + k / 2
            source, to_region = shrunk_window(img, x0, y0, x1, y1, 1.0 / k)
            m = compose_affine(to_region, m)
        # WARP_INVERSE_MAP: the matrix maps destination (crop) pixels to source (image) pixels.
        out[i] = cv2.warpAffine(
            source,
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
    return normalise_pixels(out)

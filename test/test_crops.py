"""The crop convention: square box -> S x S (S = max(H, W)), middle H x W window, ImageNet normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from whmr_core.crops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_to_image,
    extract_crops,
    square_boxes,
)


def _denormalise(crops: np.ndarray) -> np.ndarray:
    """(N,3,H,W) normalised -> (N,H,W,3) in 0..255."""
    x = np.moveaxis(crops, 1, -1)
    return (x * IMAGENET_STD + IMAGENET_MEAN) * 255.0


def test_known_pixel_lands_where_expected_at_unit_scale():
    img = np.zeros((100, 120, 3), dtype=np.uint8)
    img[40, 70] = (255, 128, 0)  # row 40, column 70
    crop_hw = (8, 6)  # non-square: middle 6 columns of an 8x8 square
    # Unit scale (b = S = 8): crop pixel (u, v) = (2, 5) must sample image (x, y) = (70, 40).
    u, v = 2, 5
    centre = np.array([70 - (u - (6 - 1) / 2), 40 - (v - (8 - 1) / 2)])
    crops = extract_crops(img, centre[None], np.array([8.0]), crop_hw)
    assert crops.shape == (1, 3, 8, 6) and crops.dtype == np.float32
    pix = _denormalise(crops)[0]
    np.testing.assert_allclose(pix[v, u], (255, 128, 0), atol=1e-3)
    pix[v, u] = 0
    assert np.abs(pix).max() < 1e-3  # nothing else lit
    np.testing.assert_allclose(crop_to_image(np.array([u, v]), centre, 8.0, crop_hw), (70, 40))


def test_scaled_crop_samples_a_linear_image_exactly():
    # On an image linear in x and y, bilinear sampling is exact: every crop pixel shows its image point
    # (up to uint8 rounding and OpenCV's 1/32-pixel interpolation grid; a half-pixel slip would be 2 here).
    h, w = 200, 240
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.stack([xs, ys, np.full_like(xs, 7)], axis=-1).astype(np.uint8)
    centre, size, crop_hw = np.array([121.0, 97.5]), 96.0, (32, 24)
    crops = _denormalise(extract_crops(img, centre[None], np.array([size]), crop_hw))[0]
    vv, uu = np.mgrid[0:32, 0:24]
    xy = crop_to_image(np.stack([uu, vv], -1), centre, size, crop_hw)
    np.testing.assert_allclose(crops[..., 0], xy[..., 0], atol=0.6)
    np.testing.assert_allclose(crops[..., 1], xy[..., 1], atol=0.6)
    # The visible window is (24/32) of the square box in x, the whole box in y.
    assert xy[..., 0].max() - xy[..., 0].min() == pytest.approx(size * 23 / 32)
    assert xy[..., 1].max() - xy[..., 1].min() == pytest.approx(size * 31 / 32)
    # The box centre is the crop's centre.
    np.testing.assert_allclose(xy[..., 0].mean(), centre[0])
    np.testing.assert_allclose(xy[..., 1].mean(), centre[1])


def test_outside_the_image_is_black():
    img = np.full((50, 50, 3), 200, dtype=np.uint8)
    crops = _denormalise(extract_crops(img, np.array([[-100.0, -100.0]]), np.array([40.0]), (16, 16)))
    assert np.abs(crops).max() < 1e-3


def test_square_boxes_fit_the_visible_window():
    boxes = np.array([[10.0, 20.0, 50.0, 180.0], [0.0, 0.0, 90.0, 30.0]])
    centres, sides = square_boxes(boxes, (256, 192), scale=1.0)
    np.testing.assert_allclose(centres, [[30, 100], [45, 15]])
    # Tall box: height limits (160); wide box: the visible width 192/256 of the side must hold 90.
    np.testing.assert_allclose(sides, [160.0, 90 * 256 / 192])
    _, square = square_boxes(boxes, (224, 224), scale=1.2)
    np.testing.assert_allclose(square, [192.0, 108.0])


def test_averaged_crops_lie_where_bilinear_ones_do_and_average_the_noise():
    """``average``: where a crop shrinks the image, each crop pixel is the mean of the pixels it covers; on a
    smooth ramp it equals the bilinear crop (same place), on noise its spread falls by ~ the pixels averaged;
    a crop that enlarges the image is bilinear either way."""
    yy, xx = np.mgrid[:400, :600]
    ramp = np.repeat((0.3 * xx + 0.2 * yy)[..., None], 3, axis=2).astype(np.uint8)
    centre, side = np.array([[310.0, 190.0]]), np.array([240.0])  # 10 image pixels a crop pixel
    averaged = _denormalise(extract_crops(ramp, centre, side, (24, 24), average=True))[0]
    sampled = _denormalise(extract_crops(ramp, centre, side, (24, 24)))[0]
    assert np.abs(averaged - sampled)[2:-2, 2:-2].max() <= 1.5  # the same place, to a grey level
    noise = np.random.default_rng(0).integers(0, 256, size=(400, 600, 3), dtype=np.uint8)
    a = _denormalise(extract_crops(noise, centre, side, (24, 24), average=True))
    b = _denormalise(extract_crops(noise, centre, side, (24, 24)))
    assert a.std() < 0.25 * b.std()  # 100 pixels a crop pixel against bilinear's 2 x 2
    big = np.array([12.0])  # half an image pixel a crop pixel: nothing to average
    np.testing.assert_array_equal(
        extract_crops(noise, centre, big, (24, 24), average=True), extract_crops(noise, centre, big, (24, 24))
    )


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="image"):
        extract_crops(np.zeros((4, 4), np.uint8), np.zeros((1, 2)), np.ones(1), (8, 8))
    with pytest.raises(ValueError, match="uint8"):
        extract_crops(np.zeros((4, 4, 3), np.float32), np.zeros((1, 2)), np.ones(1), (8, 8))
    with pytest.raises(ValueError, match="size"):
        extract_crops(np.zeros((4, 4, 3), np.uint8), np.zeros((1, 2)), np.zeros(1), (8, 8))

"""Tests for models/mask_refinement.py: cases worked by hand, and agreement with the
bilinear paste wherever the nearest box-mask cells agree."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.joint_bilateral import JointBilateralParams
from models.mask_paste import paste_masks
from tests.masks import paste_windows

SHARP = JointBilateralParams(radius=2, sigma_spatial=1.5, sigma_range=10.0)
FULL_BOX = np.array([[0.0, 0.0, 1.0, 1.0]], np.float32)
# A 4x4 box mask whose left two columns are in the mask and right two are not.
LEFT_HALF = np.array([[[1.0, 1.0, 0.0, 0.0]] * 4], np.float32)


def _guided(
    box_masks: np.ndarray,
    boxes: np.ndarray,
    image: np.ndarray,
    threshold: float = 0.5,
    params: JointBilateralParams = SHARP,
) -> np.ndarray:
    height, width = image.shape[:2]
    out = paste_masks(box_masks, boxes, tf.constant([height, width]), threshold, image, params)
    return paste_windows(
        out["masks"].numpy(), out["mask_sizes"].numpy(), out["mask_offsets"].numpy(), height, width
    )


def _bilinear(box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    out = paste_masks(box_masks, boxes, tf.constant([height, width]), 0.5)
    return paste_windows(
        out["masks"].numpy(), out["mask_sizes"].numpy(), out["mask_offsets"].numpy(), height, width
    )


def test_outline_follows_the_image_edge() -> None:
    # The box is the whole 8x16 image, so the paste samples pixel column x at box-mask
    # column x / 15 * 3 = x / 5: cell c sits on pixel 5c. Bilinear crosses 0.5 at mask
    # column 1.5, pixel 7.5, so it keeps columns 0-7. The image is black up to column 4
    # and white from 5: cell 0 is black, cells 2 and 3 white, cell 1 (pixels ~0-10)
    # grey. Pixels 5-9 read the mixed cells 1 and 2; white, they match only the white
    # cells 2 and 3, which are out of the mask. So the mask ends at the colour edge.
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, 5:] = 255
    expected = np.zeros((8, 16), bool)
    expected[:, :5] = True
    np.testing.assert_array_equal(_guided(LEFT_HALF, FULL_BOX, image)[0], expected)
    assert _bilinear(LEFT_HALF, FULL_BOX, 8, 16)[0, :, :8].all()


def test_uniform_image_keeps_the_bilinear_outline() -> None:
    # No colour edge: the weights are spatial only and symmetric about mask column 1.5
    # (pixel 7.5), so pixel 7 (column 1.4) is in and pixel 8 (column 1.6) is out.
    image = np.full((8, 16, 3), 90, np.uint8)
    np.testing.assert_array_equal(
        _guided(LEFT_HALF, FULL_BOX, image), _bilinear(LEFT_HALF, FULL_BOX, 8, 16)
    )


def test_threshold_other_than_one_half() -> None:
    # Mask values 0.4 | 0.2 with threshold 0.3: the cells' own sides are in | out, and on
    # a uniform image the outline is at the midpoint, where bilinear reaches 0.3.
    image = np.full((8, 16, 3), 90, np.uint8)
    box_mask = np.array([[[0.4, 0.4, 0.2, 0.2]] * 4], np.float32)
    expected = np.zeros((8, 16), bool)
    expected[:, :8] = True
    np.testing.assert_array_equal(_guided(box_mask, FULL_BOX, image, threshold=0.3)[0], expected)


def test_nothing_outside_the_box() -> None:
    # An all-ones mask in a box of rows 2.5-9.5 of 13 and columns 3.5-11.5 of 16 (pixel
    # y is sampled at y / 12): every quad agrees, so the mask is exactly the pixels the
    # paste samples inside the box, rows 3-9 and columns 4-11, even though the cells at
    # the box's edge say "in" and joint bilateral reads neighbours clipped to them.
    image = np.random.default_rng(0).integers(0, 256, (13, 16, 3), dtype=np.uint8)
    box = np.array([[2.5 / 12, 3.5 / 15, 9.5 / 12, 11.5 / 15]], np.float32)
    expected = np.zeros((13, 16), bool)
    expected[3:10, 4:12] = True
    out = _guided(np.ones((1, 5, 5), np.float32), box, image)
    np.testing.assert_array_equal(out[0], expected)


@pytest.mark.parametrize(("height", "width", "threshold"), [(40, 57, 0.5), (90, 33, 0.3)])
def test_agrees_with_the_bilinear_paste_where_the_nearest_cells_agree(
    height: int, width: int, threshold: float
) -> None:
    # Where the two nearest box-mask cells on each axis (floor(r) and floor(r) + 1, the
    # positions computed here from OD-API's sampling rule) are all on one side of the
    # threshold, the result is that side, whatever the image; outside the box, nothing.
    rng = np.random.default_rng(height)
    count, size = 6, 7
    corners = rng.uniform(-0.2, 1.2, size=(count, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    boxes[0] = [0.0, 0.0, 1.0, 1.0]
    box_masks = rng.random((count, size, size)).astype(np.float32)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    params = JointBilateralParams(radius=3, sigma_spatial=2.0, sigma_range=20.0)
    out = _guided(box_masks, boxes.astype(np.float32), image, threshold, params)
    checked = 0
    for mask, box_mask, (ymin, xmin, ymax, xmax) in zip(out, box_masks, boxes, strict=True):
        r = (np.arange(height) / (height - 1) - ymin) / (ymax - ymin) * (size - 1)
        c = (np.arange(width) / (width - 1) - xmin) / (xmax - xmin) * (size - 1)
        # Skip pixels within float rounding of a cell or of the box's edge.
        clear_r = np.abs(r - np.round(r)) > 1e-3
        clear_c = np.abs(c - np.round(c)) > 1e-3
        inside_r, inside_c = (r > 0) & (r < size - 1), (c > 0) & (c < size - 1)
        outside = ~inside_r[:, None] | ~inside_c[None, :]
        assert not mask[outside & clear_r[:, None] & clear_c[None, :]].any()
        side = box_mask > threshold
        for y in np.flatnonzero(inside_r & clear_r):
            for x in np.flatnonzero(inside_c & clear_c):
                i, j = int(r[y]), int(c[x])
                quad = side[i : i + 2, j : j + 2]
                if quad.all() or not quad.any():
                    assert mask[y, x] == quad[0, 0], (y, x)
                    checked += 1
    assert checked > 500


@pytest.mark.parametrize(("height", "width"), [(1, 17), (13, 1)])
def test_one_pixel_high_or_wide_images_keep_the_bilinear_paste(height: int, width: int) -> None:
    rng = np.random.default_rng(height + width)
    box_masks = rng.random((3, 5, 5)).astype(np.float32)
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.2, 0.1, 0.9, 0.6], [0.4, 0.3, 0.7, 0.95]])
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    guided = _guided(box_masks, boxes.astype(np.float32), image)
    np.testing.assert_array_equal(
        guided, _bilinear(box_masks, boxes.astype(np.float32), height, width)
    )
    assert guided.any()

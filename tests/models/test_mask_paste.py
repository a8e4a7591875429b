"""Tests for models/mask_paste.py against OD-API's full-image reframe, rebuilt from TF ops."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.mask_paste import paste_masks
from tests.masks import paste_windows


def _od_api_reframe(
    box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int
) -> np.ndarray:
    """OD-API's reframe_box_masks_to_image_masks (full-image masks), for reference."""
    ymin, xmin, ymax, xmax = boxes.T
    box_h = np.maximum(ymax - ymin, 1e-4)
    box_w = np.maximum(xmax - xmin, 1e-4)
    corners = np.stack([-ymin / box_h, -xmin / box_w, (1 - ymin) / box_h, (1 - xmin) / box_w], 1)
    pasted = tf.image.crop_and_resize(
        box_masks[..., None],
        corners.astype(np.float32),
        tf.range(len(boxes)),
        [height, width],
        extrapolation_value=0.0,
    )
    return pasted.numpy()[..., 0]


@pytest.mark.parametrize(("height", "width"), [(37, 53), (64, 64), (300, 120), (1, 17), (13, 1)])
def test_paste_masks_matches_od_api_full_image_reframe(height: int, width: int) -> None:
    rng = np.random.default_rng(height * 1000 + width)
    count = 12
    corners = rng.uniform(-0.2, 1.2, size=(count, 2, 2)).astype(np.float32)
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    boxes[0] = [0.3, 0.3, 0.3 + 1e-5, 0.3 + 1e-5]  # Degenerate box: OD-API's 1e-4 floor.
    boxes[1] = [0.0, 0.0, 1.0, 1.0]
    box_masks = rng.random((count, 7, 5)).astype(np.float32)
    out = paste_masks(box_masks, boxes, tf.constant([height, width]), 0.5)
    ours = paste_windows(
        out["masks"].numpy(),
        out["mask_sizes"].numpy(),
        out["mask_offsets"].numpy(),
        height,
        width,
    )
    reference = _od_api_reframe(box_masks, boxes, height, width)
    # Float rounding may flip only pixels whose interpolated value is at the threshold.
    disagree = ours != (reference > 0.5)
    assert not np.any(disagree & (np.abs(reference - 0.5) > 1e-4))
    assert ours.any()


def test_paste_masks_without_detections() -> None:
    out = paste_masks(
        np.zeros([0, 4, 4], np.float32), np.zeros([0, 4], np.float32), tf.constant([5, 6]), 0.5
    )
    assert out["masks"].shape == (0,)
    assert out["mask_sizes"].shape == (0, 2)

"""Tests for models/preprocess.py: expected values by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import preprocess
from models.spec import MeanStd


@pytest.mark.parametrize(
    ("image_hw", "size", "offset"),
    [
        # 37x53 into 32x32: scale 32/53, height round(37 * 32 / 53) = round(22.34) = 22.
        ((37, 53), (22, 32), (5, 0)),
        # 300x120: scale 32/300, width round(12.8) = 13, left padding (32 - 13) // 2 = 9.
        ((300, 120), (32, 13), (0, 9)),
        ((64, 64), (32, 32), (0, 0)),
    ],
)
def test_letterbox_layout(
    image_hw: tuple[int, int], size: tuple[int, int], offset: tuple[int, int]
) -> None:
    layout = preprocess.letterbox_layout(
        tf.constant(image_hw[0]), tf.constant(image_hw[1]), (32, 32)
    )
    assert tuple(layout["size"].numpy()) == size
    assert tuple(layout["offset"].numpy()) == offset


def test_resize_image_letterbox_pads_and_reports_the_content_box() -> None:
    image = tf.fill([2, 4, 3], tf.constant(255, tf.uint8))
    out = preprocess.resize_image(image, (4, 4), "letterbox")
    expected = np.zeros([4, 4, 3], np.float32)
    expected[1:3] = 255.0  # Scale 1: rows 1..2 hold the image, rows 0 and 3 are padding.
    np.testing.assert_array_equal(out["image"].numpy(), expected)
    np.testing.assert_allclose(out["content_box"].numpy(), [0.25, 0.0, 0.75, 1.0])


def test_resize_image_stretch_is_half_pixel_bilinear() -> None:
    image = tf.constant([[[0, 0, 0], [255, 255, 255]]], tf.uint8)  # 1x2.
    out = preprocess.resize_image(image, (1, 4), "stretch")
    # Output centres 0.5..3.5 sample input x = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    np.testing.assert_allclose(out["image"].numpy()[0, :, 0], [0.0, 63.75, 191.25, 255.0])
    np.testing.assert_array_equal(out["content_box"].numpy(), [0.0, 0.0, 1.0, 1.0])


def test_resize_image_none_keeps_the_image() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = preprocess.resize_image(tf.constant(image), None, "none")
    np.testing.assert_array_equal(out["image"].numpy(), image.astype(np.float32))


@pytest.mark.parametrize(
    ("input_range", "expected"),
    [
        ("uint8", [51.0, 0.0, 255.0]),
        ("unit", [0.2, 0.0, 1.0]),
        ("symmetric", [-0.6, -1.0, 1.0]),
        (MeanStd(mean=(50.0, 10.0, 5.0), std=(1.0, 2.0, 10.0)), [1.0, -5.0, 25.0]),
        (MeanStd(mean=(51.0,), std=(51.0,)), [0.0, -1.0, 4.0]),
    ],
)
def test_normalize(input_range: str | MeanStd, expected: list[float]) -> None:
    pixels = tf.constant([[[51.0, 0.0, 255.0]]])
    out = preprocess.normalize(pixels, input_range).numpy()[0, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_preprocess_fn_rounds_for_integer_inputs() -> None:
    preprocess_fn = preprocess.make_preprocess_fn((1, 4), "stretch", "uint8", tf.uint8)
    out = preprocess_fn(tf.constant([[[0, 0, 0], [255, 255, 255]]], tf.uint8))
    assert out["image"].dtype == tf.uint8
    np.testing.assert_array_equal(out["image"].numpy()[0, :, 0], [0, 64, 191, 255])

"""Tests for test-time mirror averaging (models.mirror_average), against hand-worked maps."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.mirror_average import mirror_averaged


def _column_ramp(images: tf.Tensor) -> dict[str, tf.Tensor]:
    """logits[..., 0] = column index: a map that ignores the image content."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    columns = tf.broadcast_to(tf.range(width, dtype=tf.float32), [batch, height, width])
    return {"logits": columns[..., None]}


def _offsets_to_brightest_column(images: tf.Tensor) -> dict[str, tf.Tensor]:
    """offsets = (0, c - x): every pixel points at the brightest column c of its row 0."""
    width = images.shape[2]
    brightest = tf.cast(tf.argmax(images[:, 0, :, 0], axis=-1), tf.float32)  # [B]
    dx = brightest[:, None] - tf.range(width, dtype=tf.float32)  # [B, W]
    dx = tf.broadcast_to(dx[:, None, :], [tf.shape(images)[0], images.shape[1], width])
    return {"offsets": tf.stack([tf.zeros_like(dx), dx], axis=-1)}


def test_a_map_that_ignores_the_image_averages_to_the_mirror_mean():
    images = tf.zeros([2, 3, 4, 3], tf.uint8)
    logits = mirror_averaged(_column_ramp, images)["logits"].numpy()
    # Columns 0..3 and, mirrored back, 3..0: every cell averages to 1.5.
    assert logits.shape == (2, 3, 4, 1)
    np.testing.assert_array_equal(logits, np.full([2, 3, 4, 1], 1.5))


def test_offsets_of_an_equivariant_network_survive_with_their_sign():
    image = np.zeros([1, 2, 5, 3], np.uint8)
    image[0, 0, 1] = 255  # The brightest column is 1; mirrored, it is column 3.
    offsets = mirror_averaged(_offsets_to_brightest_column, tf.constant(image))["offsets"]
    # Both views agree once dx of the mirrored one is negated: 1 - x in every row.
    expected_dx = np.array([1.0, 0.0, -1.0, -2.0, -3.0])
    np.testing.assert_array_equal(offsets.numpy()[0, :, :, 1], [expected_dx, expected_dx])
    np.testing.assert_array_equal(offsets.numpy()[0, :, :, 0], np.zeros([2, 5]))


def test_without_the_sign_flip_the_same_offsets_would_cancel():
    image = np.zeros([1, 1, 5, 3], np.uint8)
    image[0, 0, 1] = 255
    averaged = mirror_averaged(
        _offsets_to_brightest_column, tf.constant(image), vector_outputs=frozenset()
    )
    # Mirrored back, the second view's dx is x - 1: the mean is 0 everywhere.
    np.testing.assert_array_equal(averaged["offsets"].numpy()[0, 0, :, 1], np.zeros(5))


def test_each_image_of_the_batch_is_averaged_with_its_own_mirror():
    images = np.zeros([2, 1, 4, 3], np.uint8)
    images[0, 0, 0] = 255  # Brightest column 0.
    images[1, 0, 2] = 255  # Brightest column 2.
    dx = mirror_averaged(_offsets_to_brightest_column, tf.constant(images))["offsets"][..., 1]
    expected = [[0.0, -1.0, -2.0, -3.0], [2.0, 1.0, 0.0, -1.0]]
    np.testing.assert_array_equal(dx.numpy()[:, 0], expected)

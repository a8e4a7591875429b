"""Tests for models/semantic_postprocess.py: expected values by hand or from tf.image.resize."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import semantic_postprocess as semantic
from models.joint_bilateral import DEFAULT_PARAMS, joint_bilateral_class_map

FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)


def test_bilinear_through_a_full_box_matches_tf_resize() -> None:
    # The general path must agree with the full-box fast path (tf.image.resize).
    rng = np.random.default_rng(0)
    maps = rng.random((8, 6, 3)).astype(np.float32)
    for size in [(37, 53), (5, 3), (8, 6), (300, 120)]:
        general = semantic.resize_bilinear_through_box(maps, FULL_BOX, tf.constant(size))
        dispatched = semantic.resize_bilinear_to_original(maps, FULL_BOX, tf.constant(size))
        reference = tf.image.resize(maps, size, method="bilinear")
        np.testing.assert_allclose(general.numpy(), reference.numpy(), atol=1e-5)
        np.testing.assert_allclose(dispatched.numpy(), reference.numpy(), atol=1e-6)


def test_bilinear_to_original_maps_through_the_content_box() -> None:
    # A map whose value is its own position (cell centre r + 0.5 rows, 100 * (c + 0.5)
    # columns): bilinear sampling of a linear function returns the sample position.
    rows = np.arange(8, dtype=np.float32)[:, None] + 0.5
    cols = np.arange(8, dtype=np.float32)[None, :] + 0.5
    maps = (rows + 100.0 * cols)[:, :, None]
    box = np.array([0.25, 0.125, 0.75, 0.875], np.float32)
    out = semantic.resize_bilinear_to_original(maps, box, tf.constant([10, 7])).numpy()[..., 0]
    # Pixel (i, j) centre -> map row 8 * (0.25 + (i + 0.5) / 10 * 0.5), column
    # 8 * (0.125 + (j + 0.5) / 7 * 0.75); all inside the map's interior.
    expected_rows = 2.0 + (np.arange(10) + 0.5) * 0.4
    expected_cols = 1.0 + (np.arange(7) + 0.5) * 6.0 / 7.0
    np.testing.assert_allclose(
        out, expected_rows[:, None] + 100.0 * expected_cols[None, :], rtol=1e-5
    )


def test_nearest_to_original() -> None:
    class_map = (10 * np.arange(4)[:, None] + np.arange(4)[None, :]).astype(np.int32)
    doubled = semantic.resize_nearest_to_original(class_map, FULL_BOX, tf.constant([8, 8]))
    np.testing.assert_array_equal(doubled.numpy(), np.repeat(np.repeat(class_map, 2, 0), 2, 1))
    box = np.array([0.25, 0.0, 0.75, 1.0], np.float32)
    letterboxed = semantic.resize_nearest_to_original(class_map, box, tf.constant([4, 4]))
    # Row centres map to 1 + (i + 0.5) / 2 = 1.25, 1.75, 2.25, 2.75 -> rows 1, 1, 2, 2.
    np.testing.assert_array_equal(letterboxed.numpy(), class_map[[1, 1, 2, 2]])


def test_semantic_class_map_formats() -> None:
    size = tf.constant([2, 2])
    probability = np.array([[0.2, 0.6], [0.5, 0.49]], np.float32)[:, :, None]
    foreground = semantic.semantic_class_map(
        probability, FULL_BOX, size, "foreground_probability", 0.5, 3
    )
    np.testing.assert_array_equal(foreground.numpy(), [[3, 4], [4, 3]])
    indices = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)[:, :, None]
    classes = semantic.semantic_class_map(
        indices, FULL_BOX, tf.constant([4, 4]), "class_map", 0.5, -1
    )
    np.testing.assert_array_equal(
        classes.numpy(), [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    )
    logits = np.zeros([2, 2, 3], np.float32)
    logits[0, 0, 2] = logits[0, 1, 1] = logits[1, 0, 0] = logits[1, 1, 2] = 5.0
    argmax = semantic.semantic_class_map(logits, FULL_BOX, size, "logits", 0.5, 10)
    np.testing.assert_array_equal(argmax.numpy(), [[12, 11], [10, 12]])


def test_postprocess_fn_returns_the_transposed_class_map() -> None:
    # The compiled function transposes the small model output first; its result must be
    # exactly the transpose of semantic_class_map on the untransposed output, for every
    # format, for full and letterboxed content boxes and non-square sizes.
    rng = np.random.default_rng(3)
    cases = {
        "logits": rng.normal(size=(8, 6, 5)).astype(np.float32),
        "foreground_probability": rng.random((8, 6, 1)).astype(np.float32),
        "class_map": rng.integers(0, 5, size=(8, 6, 1)).astype(np.float32),
    }
    boxes = [FULL_BOX, np.array([0.25, 0.125, 0.75, 0.875], np.float32)]
    for output_format, raw in cases.items():
        fn = semantic.make_semantic_postprocess_fn(output_format, 0.5, 1)
        for box in boxes:
            for size in [(37, 53), (300, 120), (8, 6)]:
                size_t = tf.constant(size, tf.int32)
                image = np.zeros((*size, 3), np.uint8)  # Bilinear never reads it.
                expected = semantic.semantic_class_map(raw, box, size_t, output_format, 0.5, 1)
                transposed = fn(raw, box, size_t, image)["class_map_transposed"].numpy()
                assert transposed.shape == size[::-1]
                np.testing.assert_array_equal(transposed.T, expected.numpy())


@pytest.mark.parametrize("output_format", ["logits", "probabilities"])
def test_joint_bilateral_postprocess_fn(output_format: str) -> None:
    # The compiled function with joint bilateral upsampling: the transpose of
    # joint_bilateral_class_map on the untransposed probabilities and image (softmax of
    # logits first), plus the label offset; and it differs from bilinear on this case.
    rng = np.random.default_rng(5)
    logits = tf.image.resize(rng.normal(size=(1, 3, 4, 4)), (8, 6)).numpy()[0] * 4
    raw = logits if output_format == "logits" else tf.nn.softmax(logits).numpy()
    raw = raw.astype(np.float32)
    blocks = rng.integers(0, 256, (1, 4, 3, 3)).astype(np.float32)
    size = (37, 53)
    image = tf.image.resize(blocks, size, "nearest").numpy()[0].astype(np.uint8)
    box = np.array([0.0, 0.125, 1.0, 0.875], np.float32)
    fn = semantic.make_semantic_postprocess_fn(output_format, 0.5, 1, upsampling="joint_bilateral")
    out = fn(raw, box, tf.constant(size), image)["class_map_transposed"].numpy().T
    probabilities = tf.nn.softmax(logits).numpy().astype(np.float32)
    expected = joint_bilateral_class_map(probabilities, image, box, DEFAULT_PARAMS).numpy() + 1
    np.testing.assert_array_equal(out, expected)
    bilinear = semantic.make_semantic_postprocess_fn(output_format, 0.5, 1)
    assert np.any(
        out != bilinear(raw, box, tf.constant(size), image)["class_map_transposed"].numpy().T
    )


def test_joint_bilateral_needs_the_image() -> None:
    with pytest.raises(ValueError, match="needs the original image"):
        semantic.semantic_class_map(
            np.zeros((2, 2, 3), np.float32),
            FULL_BOX,
            tf.constant([4, 4]),
            "logits",
            0.5,
            0,
            upsampling="joint_bilateral",
        )

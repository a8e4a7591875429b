"""Tests for models/postprocess.py: expected values by hand or from independent TF ops."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import postprocess
from models.spec import MeanStd

FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)


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
    layout = postprocess.letterbox_layout(
        tf.constant(image_hw[0]), tf.constant(image_hw[1]), (32, 32)
    )
    assert tuple(layout["size"].numpy()) == size
    assert tuple(layout["offset"].numpy()) == offset


def test_resize_image_letterbox_pads_and_reports_the_content_box() -> None:
    image = tf.fill([2, 4, 3], tf.constant(255, tf.uint8))
    out = postprocess.resize_image(image, (4, 4), "letterbox")
    expected = np.zeros([4, 4, 3], np.float32)
    expected[1:3] = 255.0  # Scale 1: rows 1..2 hold the image, rows 0 and 3 are padding.
    np.testing.assert_array_equal(out["image"].numpy(), expected)
    np.testing.assert_allclose(out["content_box"].numpy(), [0.25, 0.0, 0.75, 1.0])


def test_resize_image_stretch_is_half_pixel_bilinear() -> None:
    image = tf.constant([[[0, 0, 0], [255, 255, 255]]], tf.uint8)  # 1x2.
    out = postprocess.resize_image(image, (1, 4), "stretch")
    # Output centres 0.5..3.5 sample input x = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    np.testing.assert_allclose(out["image"].numpy()[0, :, 0], [0.0, 63.75, 191.25, 255.0])
    np.testing.assert_array_equal(out["content_box"].numpy(), FULL_BOX)


def test_resize_image_none_keeps_the_image() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = postprocess.resize_image(tf.constant(image), None, "none")
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
    out = postprocess.normalize(pixels, input_range).numpy()[0, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_preprocess_fn_rounds_for_integer_inputs() -> None:
    preprocess = postprocess.make_preprocess_fn((1, 4), "stretch", "uint8", tf.uint8)
    out = preprocess(tf.constant([[[0, 0, 0], [255, 255, 255]]], tf.uint8))
    assert out["image"].dtype == tf.uint8
    np.testing.assert_array_equal(out["image"].numpy()[0, :, 0], [0, 64, 191, 255])


def test_bilinear_through_a_full_box_matches_tf_resize() -> None:
    # The general path must agree with the full-box fast path (tf.image.resize).
    rng = np.random.default_rng(0)
    maps = rng.random((8, 6, 3)).astype(np.float32)
    for size in [(37, 53), (5, 3), (8, 6), (300, 120)]:
        general = postprocess.resize_bilinear_through_box(maps, FULL_BOX, tf.constant(size))
        dispatched = postprocess.resize_bilinear_to_original(maps, FULL_BOX, tf.constant(size))
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
    out = postprocess.resize_bilinear_to_original(maps, box, tf.constant([10, 7])).numpy()[..., 0]
    # Pixel (i, j) centre -> map row 8 * (0.25 + (i + 0.5) / 10 * 0.5), column
    # 8 * (0.125 + (j + 0.5) / 7 * 0.75); all inside the map's interior.
    expected_rows = 2.0 + (np.arange(10) + 0.5) * 0.4
    expected_cols = 1.0 + (np.arange(7) + 0.5) * 6.0 / 7.0
    np.testing.assert_allclose(
        out, expected_rows[:, None] + 100.0 * expected_cols[None, :], rtol=1e-5
    )


def test_nearest_to_original() -> None:
    class_map = (10 * np.arange(4)[:, None] + np.arange(4)[None, :]).astype(np.int32)
    doubled = postprocess.resize_nearest_to_original(class_map, FULL_BOX, tf.constant([8, 8]))
    np.testing.assert_array_equal(doubled.numpy(), np.repeat(np.repeat(class_map, 2, 0), 2, 1))
    box = np.array([0.25, 0.0, 0.75, 1.0], np.float32)
    letterboxed = postprocess.resize_nearest_to_original(class_map, box, tf.constant([4, 4]))
    # Row centres map to 1 + (i + 0.5) / 2 = 1.25, 1.75, 2.25, 2.75 -> rows 1, 1, 2, 2.
    np.testing.assert_array_equal(letterboxed.numpy(), class_map[[1, 1, 2, 2]])


def test_semantic_class_map_formats() -> None:
    size = tf.constant([2, 2])
    probability = np.array([[0.2, 0.6], [0.5, 0.49]], np.float32)[:, :, None]
    foreground = postprocess.semantic_class_map(
        probability, FULL_BOX, size, "foreground_probability", 0.5, 3
    )
    np.testing.assert_array_equal(foreground.numpy(), [[3, 4], [4, 3]])
    indices = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)[:, :, None]
    classes = postprocess.semantic_class_map(
        indices, FULL_BOX, tf.constant([4, 4]), "class_map", 0.5, -1
    )
    np.testing.assert_array_equal(
        classes.numpy(), [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    )
    logits = np.zeros([2, 2, 3], np.float32)
    logits[0, 0, 2] = logits[0, 1, 1] = logits[1, 0, 0] = logits[1, 1, 2] = 5.0
    argmax = postprocess.semantic_class_map(logits, FULL_BOX, size, "logits", 0.5, 10)
    np.testing.assert_array_equal(argmax.numpy(), [[12, 11], [10, 12]])


def test_boxes_to_original_undoes_letterbox() -> None:
    box = np.array([[0.25, 0.1, 0.5, 0.4]], np.float32)
    content = np.array([0.25, 0.0, 0.75, 1.0], np.float32)
    out = postprocess.boxes_to_original(box, content).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.1, 0.5, 0.4]], atol=1e-7)


def test_model_garden_boxes_to_input() -> None:
    # Fed 100x200, scaled by 0.5 to 50x100: a box at (10, 20, 30, 40) in the scaled
    # image is (20, 40, 60, 80) in the fed image, i.e. (0.2, 0.2, 0.6, 0.4) normalised.
    info = np.array([[100, 200], [50, 100], [0.5, 0.5], [0, 0]], np.float32)
    out = postprocess.model_garden_boxes_to_input(np.array([[10, 20, 30, 40]], np.float32), info)
    np.testing.assert_allclose(out.numpy(), [[0.2, 0.2, 0.6, 0.4]], rtol=1e-6)


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


def _full_masks(out: dict[str, tf.Tensor], height: int, width: int) -> np.ndarray:
    sizes = out["mask_sizes"].numpy()
    offsets = out["mask_offsets"].numpy()
    flat = out["masks"].numpy()
    masks = np.zeros([len(sizes), height, width], bool)
    start = 0
    for i, ((h, w), (top, left)) in enumerate(zip(sizes, offsets, strict=True)):
        assert top >= 0
        assert left >= 0
        assert top + h <= height
        assert left + w <= width
        masks[i, top : top + h, left : left + w] = flat[start : start + h * w].reshape(h, w)
        start += h * w
    assert start == flat.size
    return masks


@pytest.mark.parametrize(("height", "width"), [(37, 53), (64, 64), (300, 120), (1, 17), (13, 1)])
def test_paste_masks_matches_od_api_full_image_reframe(height: int, width: int) -> None:
    rng = np.random.default_rng(height * 1000 + width)
    count = 12
    corners = rng.uniform(-0.2, 1.2, size=(count, 2, 2)).astype(np.float32)
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    boxes[0] = [0.3, 0.3, 0.3 + 1e-5, 0.3 + 1e-5]  # Degenerate box: OD-API's 1e-4 floor.
    boxes[1] = [0.0, 0.0, 1.0, 1.0]
    box_masks = rng.random((count, 7, 5)).astype(np.float32)
    out = postprocess.paste_masks(box_masks, boxes, tf.constant([height, width]), 0.5)
    ours = _full_masks(out, height, width)
    reference = _od_api_reframe(box_masks, boxes, height, width)
    # Float rounding may flip only pixels whose interpolated value is at the threshold.
    disagree = ours != (reference > 0.5)
    assert not np.any(disagree & (np.abs(reference - 0.5) > 1e-4))
    assert ours.any()


def test_paste_masks_without_detections() -> None:
    out = postprocess.paste_masks(
        np.zeros([0, 4, 4], np.float32), np.zeros([0, 4], np.float32), tf.constant([5, 6]), 0.5
    )
    assert out["masks"].shape == (0,)
    assert out["mask_sizes"].shape == (0, 2)


def test_instance_postprocess_filters_sorts_and_offsets_classes() -> None:
    fn = postprocess.make_instance_postprocess_fn("od_api", 0.5, 0.5, -1)
    boxes = np.tile(np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), [4, 1])
    boxes[3] = [0.0, 0.0, 1.0, 1.0]
    out = fn(
        boxes=boxes,
        scores=np.array([0.4, 0.9, 0.6, 0.9], np.float32),
        classes=np.array([1, 2, 3, 4], np.float32),
        masks=np.ones([4, 3, 3], np.float32),
        image_info=np.zeros([4, 2], np.float32),
        content_box=FULL_BOX,
        size=np.array([10, 20], np.int32),
    )
    # Kept: indices 1, 3 (score 0.9, in input order) then 2 (0.6); 0 is below 0.5.
    np.testing.assert_array_equal(out["class_ids"].numpy(), [1, 3, 2])
    np.testing.assert_allclose(out["scores"].numpy(), [0.9, 0.9, 0.6])
    # (ymin, xmin, ymax, xmax) = (0.1, 0.2, 0.5, 0.6) on 10x20 -> x 4, y 1, w 8, h 4.
    np.testing.assert_allclose(
        out["boxes"].numpy(), [[4, 1, 8, 4], [0, 0, 20, 10], [4, 1, 8, 4]], rtol=1e-6
    )
    full = _full_masks(out, 10, 20)
    assert full[1].all()  # The whole-image box with an all-ones mask covers the image.

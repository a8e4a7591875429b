"""Tests for benchmarks/peer_rows.py: the peer's rows agree with the pipeline's maps and masks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from pycocotools import mask as coco_mask

from benchmarks.peer_rows import ImageKey, instance_rows, semantic_rows
from models.postprocess import make_instance_postprocess_fn, make_semantic_postprocess_fn
from models.preprocess import FULL_CONTENT_BOX
from tests.masks import paste_windows


@pytest.mark.parametrize("upsampling", ["bilinear", "joint_bilateral"])
def test_semantic_rows_decode_to_the_pipelines_class_map(upsampling: str) -> None:
    rng = np.random.default_rng(2)
    logits = (tf.image.resize(rng.normal(size=(1, 3, 4, 3)), (8, 12)).numpy()[0] * 4).astype(
        np.float32
    )
    blocks = rng.integers(0, 256, (1, 3, 4, 3)).astype(np.float32)
    pixels = tf.image.resize(blocks, (30, 41), "nearest").numpy()[0].astype(np.uint8)
    key = ImageKey("img", "shard", 30, 41, "f.jpg", "s", "sha", pixels)
    _, out = semantic_rows(
        (key, PredictionResult(None, {"logits": logits})), {0: "a", 1: "b", 2: "c"}, upsampling
    )
    decoded = np.full((30, 41), -1)
    for row in out.mask_rows:
        rle = {"size": [30, 41], "counts": row["rle"].encode()}
        decoded[coco_mask.decode(rle).astype(bool)] = row["class_id"]
    postprocess = make_semantic_postprocess_fn("logits", 0.5, 0, upsampling=upsampling)
    expected = postprocess(logits, np.array(FULL_CONTENT_BOX, np.float32), [30, 41], pixels)
    np.testing.assert_array_equal(decoded, expected["class_map_transposed"].numpy().T)
    assert sum(out.pixel_counts.values()) == 30 * 41


@pytest.mark.parametrize("upsampling", ["bilinear", "joint_bilateral"])
def test_instance_rows_decode_to_the_pipelines_masks(upsampling: str) -> None:
    rng = np.random.default_rng(3)
    count, height, width = 5, 33, 47
    corners = rng.uniform(0.0, 1.0, size=(count, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)
    box_masks = tf.image.resize(rng.random((count, 3, 3, 1)), (9, 9)).numpy()[..., 0]
    scores = np.array([0.9, 0.2, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([1, 2, 2, 1, 2], np.float32)
    blocks = rng.integers(0, 256, (1, 4, 5, 3)).astype(np.float32)
    pixels = tf.image.resize(blocks, (height, width), "nearest").numpy()[0].astype(np.uint8)
    key = ImageKey("img", "shard", height, width, "f.jpg", "s", "sha", pixels)
    inference = {
        "num_detections": np.float32(count),
        "detection_boxes": boxes,
        "detection_scores": scores,
        "detection_classes": classes,
        "detection_masks": box_masks.astype(np.float32),
    }
    _, out = instance_rows(
        (key, PredictionResult(None, inference)), {0: "a", 1: "b"}, (0.5, 0.5), -1, upsampling
    )
    postprocess = make_instance_postprocess_fn("od_api", 0.5, 0.5, -1, upsampling)
    expected = postprocess(
        boxes,
        scores,
        classes,
        box_masks.astype(np.float32),
        np.zeros([4, 2], np.float32),
        np.array(FULL_CONTENT_BOX, np.float32),
        np.array([height, width], np.int32),
        pixels,
    )
    masks = paste_windows(
        expected["masks"].numpy(),
        expected["mask_sizes"].numpy(),
        expected["mask_offsets"].numpy(),
        height,
        width,
    )
    nonempty = [i for i, mask in enumerate(masks) if mask.any()]
    assert len(out.rows) == len(nonempty) >= 2
    for row, index in zip(out.rows, nonempty, strict=True):
        rle = {"size": [height, width], "counts": row["rle"].encode()}
        np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), masks[index])
        assert row["class_id"] == expected["class_ids"].numpy()[index]

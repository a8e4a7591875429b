"""Tests for benchmarks/peer_rows.py: the peer's semantic rows agree with the pipeline's maps."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from pycocotools import mask as coco_mask

from benchmarks.peer_rows import ImageKey, semantic_rows
from models.postprocess import make_semantic_postprocess_fn
from models.preprocess import FULL_CONTENT_BOX


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

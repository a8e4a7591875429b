"""Tests for transforms/instance.py: a TestPipeline over a tiny OD-API-style SavedModel.

Expected masks come from the closed forms in tests/models/tiny_models.py;
RLE strings, bboxes and areas from pycocotools.
"""

from __future__ import annotations

import dataclasses
import logging

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from pycocotools import mask as mask_utils

from models.spec import ModelSpec
from tests.models import tiny_models as tm
from tests.transforms.inference_helpers import committed_metric, decoded
from transforms.elements import STAGE_DECODE, Instance, InstanceResult, StageError
from transforms.instance import METRICS_NAMESPACE, InstanceSegmentation

SIZES = {"a": (37, 53), "b": (256, 256), "c": (300, 120)}


def _instance(mask: np.ndarray, class_id: int, score: float) -> Instance:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = mask_utils.toBbox(rle)
    return Instance(
        class_id=class_id,
        score=float(np.float32(score)),
        bbox_x=float(x),
        bbox_y=float(y),
        bbox_w=float(w),
        bbox_h=float(h),
        area=int(mask.sum()),
        rle=rle["counts"].decode(),
    )


def _box_b_mask(height: int, width: int) -> np.ndarray:
    """Detection 1's all-ones box mask pasted: pixels whose (y/(H-1), x/(W-1)) is in BOX_B."""
    ymin, xmin, ymax, xmax = tm.BOX_B
    rows = np.arange(height) / (height - 1)
    cols = np.arange(width) / (width - 1)
    return ((rows >= ymin) & (rows <= ymax))[:, None] & ((cols >= xmin) & (cols <= xmax))[None, :]


def _batches() -> list[tuple]:
    rng = np.random.default_rng(2)
    images = [
        decoded(name, rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        for name, (h, w) in SIZES.items()
    ]
    errored = decoded("skipped", None, error=StageError(STAGE_DECODE, "Corrupt", "bad"))
    return [(images[0], errored, images[1]), (images[2],)]


def _metric(result: beam.runners.runner.PipelineResult, name: str) -> object:
    return committed_metric(result, METRICS_NAMESPACE, name)


def test_instance_segmentation_default_threshold(instance_spec: ModelSpec) -> None:
    pipeline = TestPipeline()
    results = (
        pipeline
        | beam.Create(_batches())
        | InstanceSegmentation(instance_spec, batch_size=8)
        | beam.FlatMap(lambda batch: batch.results)
    )
    # Detection 0 only: 1 scores 0.3 < 0.5, and 2's mask is empty (dropped).
    expected = [
        InstanceResult(name, h, w, (_instance(tm.expected_box_a_mask(h, w), 0, 0.9),))
        for name, (h, w) in SIZES.items()
    ]
    assert_that(results, equal_to(expected))
    result = pipeline.run()
    result.wait_until_finish()
    assert _metric(result, "images_inferred") == 3
    assert _metric(result, "instances_detected") == 3
    assert _metric(result, "empty_masks_dropped") == 3


def test_instance_segmentation_threshold_override(instance_spec: ModelSpec) -> None:
    pipeline = TestPipeline()
    results = (
        pipeline
        | beam.Create(_batches())
        | InstanceSegmentation(instance_spec, batch_size=8, score_threshold=0.2)
        | beam.FlatMap(lambda batch: batch.results)
    )
    expected = [
        InstanceResult(
            name,
            h,
            w,
            (
                _instance(tm.expected_box_a_mask(h, w), 0, 0.9),
                _instance(_box_b_mask(h, w), 1, 0.3),  # Score order: 0.9, (0.7 empty), 0.3.
            ),
        )
        for name, (h, w) in SIZES.items()
    ]
    assert_that(results, equal_to(expected))
    pipeline.run().wait_until_finish()


def test_rejects_a_semantic_spec() -> None:
    spec = ModelSpec(task="semantic", format="saved_model", path="/nowhere")
    with pytest.raises(ValueError, match="needs an instance model spec"):
        InstanceSegmentation(spec, batch_size=4)


def test_rejects_a_bad_threshold(instance_spec: ModelSpec) -> None:
    with pytest.raises(ValueError, match=r"`score_threshold` must be in \[0, 1\]"):
        InstanceSegmentation(instance_spec, batch_size=4, score_threshold=1.5)


def test_unlabeled_class_ids_are_kept_and_counted(
    instance_spec: ModelSpec, caplog: pytest.LogCaptureFixture
) -> None:
    # The label map names class 0 only; detection 1 (class 2.0 - 1 = 1) has no label.
    labelled = dataclasses.replace(instance_spec, labels=((0, "person"),), labels_source="inline")
    pipeline = TestPipeline()
    results = (
        pipeline
        | beam.Create(_batches())
        | InstanceSegmentation(labelled, batch_size=8, score_threshold=0.2)
        | beam.FlatMap(lambda batch: batch.results)
    )
    kept = results | beam.Map(lambda result: [i.class_id for i in result.instances])
    assert_that(kept, equal_to([[0, 1]] * 3))
    with caplog.at_level(logging.WARNING, logger="transforms._inference"):
        result = pipeline.run()
        result.wait_until_finish()
    assert _metric(result, "unlabeled_predictions") == 3
    assert "predicted class id 1, which its label map (inline) lacks" in caplog.text

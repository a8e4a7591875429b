"""Tests for transforms/semantic.py: a TestPipeline over a tiny SavedModel.

Expected masks are built by hand (tests/models/tiny_models.py explains the
split model's boundary) and encoded with pycocotools.
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from models.spec import ModelSpec
from tests.masks import coco_counts
from tests.models import tiny_models as tm
from tests.models.model_files import ModelFiles
from tests.transforms.inference_helpers import committed_metric, decoded
from transforms.elements import STAGE_DECODE, ClassMask, SemanticResult, StageError
from transforms.semantic import METRICS_NAMESPACE, SemanticSegmentation


def _expected(image_id: str, height: int, width: int) -> SemanticResult:
    boundary = tm.SPLIT_BOUNDARY_IN_LOGIT_COLUMNS * width / tm.SPLIT_LOGITS_SIZE
    left = np.repeat((np.arange(width) + 0.5 < boundary)[None, :], height, axis=0)
    return SemanticResult(
        image_id=image_id,
        height=height,
        width=width,
        classes=(
            ClassMask(2, int(left.sum()), coco_counts(left)),
            ClassMask(4, int((~left).sum()), coco_counts(~left)),
        ),
    )


def test_semantic_segmentation(semantic_spec: ModelSpec) -> None:
    rng = np.random.default_rng(1)
    pixels = {
        name: rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        for name, (h, w) in {"a": (37, 53), "b": (256, 256), "c": (300, 120), "d": (8, 9)}.items()
    }
    batches = [
        (
            decoded("a", pixels["a"]),
            decoded("skipped", None, error=StageError(STAGE_DECODE, "Corrupt", "bad bytes")),
            decoded("b", pixels["b"]),
            decoded("c", pixels["c"]),
        ),
        # One image the model cannot take: only it fails, "d" still gets a result.
        (decoded("d", pixels["d"]), decoded("bad", np.zeros((4, 4, 3), np.float32))),
        # Height/width disagreeing with the pixels: the class map cannot be encoded.
        (decoded("mismatch", pixels["d"], height=99),),
    ]
    pipeline = TestPipeline()
    per_batch = pipeline | beam.Create(batches) | SemanticSegmentation(semantic_spec, batch_size=2)
    # One element per batch, named by its first record; nothing spilled without a spill_dir.
    assert_that(
        per_batch | "Batches" >> beam.Map(lambda b: (b.batch_id, len(b.results), b.spill)),
        equal_to([("a", 3, None), ("d", 2, None), ("mismatch", 1, None)]),
        label="OnePerBatch",
    )
    results = per_batch | "Results" >> beam.FlatMap(lambda b: b.results)
    good = results | "Good" >> beam.Filter(lambda r: r.error is None)
    assert_that(
        good,
        equal_to(
            [
                _expected("a", 37, 53),
                _expected("b", 256, 256),
                _expected("c", 300, 120),
                _expected("d", 8, 9),
            ]
        ),
        label="GoodResults",
    )
    failed = results | "Failed" >> beam.Filter(lambda r: r.error is not None)
    assert_that(
        failed
        | beam.Map(
            lambda r: (r.image_id, r.error.stage, r.error.error_type, r.error.message, r.classes)
        ),
        equal_to(
            [
                (
                    "bad",
                    "infer",
                    "ValueError",
                    "expected a non-empty uint8 RGB image [H, W, 3], got float32 (4, 4, 3)",
                    (),
                ),
                (
                    "mismatch",
                    "encode",
                    "ValueError",
                    "class map is (8, 9) but the image is 99x9",
                    (),
                ),
            ]
        ),
        label="FailedResults",
    )
    result = pipeline.run()
    result.wait_until_finish()

    def metric(name: str) -> object:
        return committed_metric(result, METRICS_NAMESPACE, name)

    assert metric("images_inferred") == 5  # a, b, c, d, mismatch.
    assert metric("infer_errors") == 1
    assert metric("encode_errors") == 1
    # Model calls that succeeded: [a, b], [c], retry [d] alone, [mismatch].
    assert metric("inference_latency_ms").count == 4


def test_rejects_an_instance_spec(tmp_path: Path) -> None:
    spec = ModelSpec(
        task="instance", format="saved_model", path=str(tmp_path), output_format="od_api"
    )
    with pytest.raises(ValueError, match="needs a semantic model spec"):
        SemanticSegmentation(spec, batch_size=4)


def test_unlabeled_class_map_values_are_kept_and_counted(model_files: ModelFiles) -> None:
    # DeepLab-style class_map model: 15 where red >= 128, else 0; only 0 has a label.
    spec = ModelSpec(
        task="semantic",
        format="saved_model",
        path=model_files["class_map"],
        input_key="ImageTensor",
        output_format="class_map",
        output_key="SemanticPredictions",
        labels=((0, "background"),),
        labels_source="inline",
        batch_size=1,
    )
    red = np.zeros((6, 4, 3), np.uint8)
    red[:2, :, 0] = 200
    images = [decoded("red", red), decoded("black", np.zeros((3, 3, 3), np.uint8))]
    pipeline = TestPipeline()
    results = (
        pipeline
        | beam.Create([tuple(images)])
        | SemanticSegmentation(spec, batch_size=8)
        | beam.FlatMap(lambda batch: batch.results)
    )
    ids = results | beam.Map(lambda result: (result.image_id, [m.class_id for m in result.classes]))
    assert_that(ids, equal_to([("red", [0, 15]), ("black", [0])]))
    result = pipeline.run()
    result.wait_until_finish()
    assert committed_metric(result, METRICS_NAMESPACE, "unlabeled_predictions") == 1

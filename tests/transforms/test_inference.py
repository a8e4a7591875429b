"""Tests for transforms/_inference.py: in-process workers reuse the driver's validated model."""

from __future__ import annotations

from typing import NoReturn

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from models.loader import load_validated_model
from models.spec import ModelSpec
from tests.models.model_files import ModelFiles
from tests.models.tiny_specs import split_semantic_spec
from tests.transforms.inference_helpers import decoded
from transforms import _inference
from transforms.semantic import SemanticSegmentation


def _run_semantic(spec: ModelSpec) -> None:
    pixels = np.zeros((20, 30, 3), np.uint8)
    pipeline = TestPipeline()
    results = (
        pipeline
        | beam.Create([(decoded("a", pixels), decoded("b", pixels))])
        | SemanticSegmentation(spec, batch_size=2)
        | beam.FlatMap(lambda batch: [(r.image_id, r.error is None) for r in batch.results])
    )
    assert_that(results, equal_to([("a", True), ("b", True)]))
    pipeline.run().wait_until_finish()


def test_workers_take_the_model_the_driver_handed_over(
    model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spec no other test uses, so no earlier pipeline's shared model answers for it.
    spec = split_semantic_spec(model_files["split"], batch_size=5)
    model = load_validated_model(spec)
    _inference.hand_over_validated_model(spec, model)

    def load_again(_spec: ModelSpec) -> NoReturn:
        raise AssertionError("the worker loaded a second copy instead of the driver's model")

    monkeypatch.setattr(_inference, "load_model", load_again)
    try:
        _run_semantic(spec)
        assert _inference.model_tag(spec) not in _inference._VALIDATED_MODELS
    finally:
        _inference.discard_validated_models()


def test_workers_load_their_own_model_when_none_was_handed_over(
    model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = split_semantic_spec(model_files["split"], batch_size=6)
    loads = []
    real_load = _inference.load_model

    def counting_load(s: ModelSpec) -> object:
        loads.append(s)
        return real_load(s)

    monkeypatch.setattr(_inference, "load_model", counting_load)
    _run_semantic(spec)
    assert loads == [spec]

"""Fixtures for the tests of the segmentation transforms: specs of tiny test models."""

from __future__ import annotations

import pytest

from models.spec import ModelSpec
from tests.models.model_files import ModelFiles
from tests.models.tiny_specs import od_api_spec, split_semantic_spec


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """The tiny test models, built on first use and shared by the session (read-only)."""
    return ModelFiles(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def semantic_spec(model_files: ModelFiles) -> ModelSpec:
    """The "split" semantic model (tests/models/tiny_models.py), stretched to 32x32."""
    return split_semantic_spec(model_files["split"])


@pytest.fixture(scope="session")
def instance_spec(model_files: ModelFiles) -> ModelSpec:
    """The OD-API instance model, fed one image per call at its own size."""
    return od_api_spec(model_files["od"], batch_size=1)

"""Fixtures shared by the tests of the models package."""

from __future__ import annotations

import pytest

from tests.models.model_files import ModelFiles


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> ModelFiles:
    """The tiny test models, built on first use and shared by the session (read-only)."""
    return ModelFiles(tmp_path_factory.mktemp("tiny_models"))

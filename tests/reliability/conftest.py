"""Fixtures shared by the whole-pipeline reliability tests: tiny models and the bad-input corpus."""

from __future__ import annotations

import pytest

from tests.bad_inputs import Corpus, build_corpus
from tests.reliability.runs import TinyModels, build_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))

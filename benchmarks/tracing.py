"""Counts how often the loader's compiled pre/post-processing functions are traced.

Each model gets three `tf.function`s from `models.postprocess` (preprocess,
semantic or instance post-process). A trace costs tens to hundreds of
milliseconds, so a function retraced per image size would dominate a run of
varied sizes; with the loader's `input_signature`s each should trace once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from models import postprocess

_FACTORIES = (
    "make_preprocess_fn",
    "make_semantic_postprocess_fn",
    "make_instance_postprocess_fn",
)


class TraceCounter:
    """Records the tf.functions the loader builds while `install`ed; reports their traces."""

    def __init__(self) -> None:
        self._functions: list[tuple[str, Any]] = []

    def _recording(self, name: str, factory: Callable[..., Any]) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> Any:
            function = factory(*args, **kwargs)
            self._functions.append((name, function))
            return function

        return build

    @contextlib.contextmanager
    def install(self) -> Iterator[TraceCounter]:
        """Patches the factories in `models.postprocess` (which the loader calls) for the block."""
        originals = {name: getattr(postprocess, name) for name in _FACTORIES}
        try:
            for name, factory in originals.items():
                setattr(postprocess, name, self._recording(name, factory))
            yield self
        finally:
            for name, factory in originals.items():
                setattr(postprocess, name, factory)

    def counts(self) -> dict[str, list[int]]:
        """Factory name -> tracing count of each function it built (one per model loaded)."""
        result: dict[str, list[int]] = {}
        for name, function in self._functions:
            result.setdefault(name, []).append(function.experimental_get_tracing_count())
        return result

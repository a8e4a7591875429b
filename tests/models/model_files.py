"""The tiny test models (tests/models/tiny_models.py), each built on first use, then reused.

A SavedModel takes a second or two to write, so the test modules that only
read models share one `ModelFiles` per session (the `model_files` fixture in
tests/models/conftest.py and tests/transforms/conftest.py). A test that
changes a model's files must copy it first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.models import tiny_models as tm

# Model name -> (file or directory name, builder writing it there).
_BUILDERS: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "split": ("split", tm.save_split_semantic_model),
    "garden_semantic": (
        "garden_semantic",
        lambda path: tm.save_split_semantic_model(path, "inputs"),
    ),
    "red": ("red", tm.save_red_foreground_model),
    "od": ("od", tm.save_od_api_model),
    "garden": ("garden", tm.save_model_garden_model),
    "classifier": ("classifier", tm.save_classifier_model),
    "wrong_batch": ("wrong_batch", tm.save_wrong_batch_model),
    "class_map": ("deeplab", tm.save_class_map_model),
    "keras_logits": ("rgb.keras", tm.save_keras_rgb_logits_model),
    "keras_red": ("red.keras", tm.save_keras_red_foreground_model),
    "tflite_red": ("red.tflite", tm.save_tflite_red_foreground_model),
}


class ModelFiles:
    """Paths of the tiny models by name (see _BUILDERS), building each on first access."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._paths: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._paths:
            filename, build = _BUILDERS[name]
            self._paths[name] = str(build(self._root / filename))
        return self._paths[name]

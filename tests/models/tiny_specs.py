"""ModelSpecs that run the tiny test models (tests/models/tiny_models.py) as built."""

from __future__ import annotations

from typing import Any

from models.spec import ModelSpec


def split_semantic_spec(path: str, **changes: Any) -> ModelSpec:
    """The "split" semantic model: images uint8 [B, 32, 32, 3] -> logits [B, 8, 8, 7], stretched."""
    keys: dict[str, Any] = {
        "task": "semantic",
        "format": "saved_model",
        "path": path,
        "input_key": "images",
        "input_size": (32, 32),
        "resize": "stretch",
        "output_format": "logits",
        "output_key": "logits",
    }
    return ModelSpec(**{**keys, **changes})


def od_api_spec(path: str, **changes: Any) -> ModelSpec:
    """The OD-API model, fed at each image's size; its classes are 1-based (label_offset -1)."""
    keys: dict[str, Any] = {
        "task": "instance",
        "format": "saved_model",
        "path": path,
        "input_key": "input_tensor",
        "output_format": "od_api",
        "label_offset": -1,
    }
    return ModelSpec(**{**keys, **changes})

"""Reads and type-checks the raw values of a model spec (parsed JSON/YAML or detected).

Each reader takes the raw mapping, the key and the spec's source (for the
message) and returns the typed value, or None when the key is absent. A value
of the wrong type raises `spec_error`, naming the key and what it must be.
Range checks that need several keys at once (e.g. `resize` vs `input_size`)
are the ModelSpec's own, in `models.spec`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models import labels as label_maps
from models.spec_keys import INPUT_RANGES, TASK_INSTANCE, TASK_SEMANTIC, MeanStd, spec_error

RawSpec = Mapping[str, Any]


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `true` in a spec file is a typo, not a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def read_string(raw: RawSpec, key: str, source: str) -> str | None:
    """A non-empty string, or None when absent."""
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise spec_error(source, key, f"must be a non-empty string, got {value!r}")
    return value


def read_integer(raw: RawSpec, key: str, source: str) -> int | None:
    """An integer (not a bool), or None when absent."""
    value = raw.get(key)
    if value is not None and not _is_int(value):
        raise spec_error(source, key, f"must be an integer, got {value!r}")
    return value


def read_fraction(raw: RawSpec, key: str, source: str) -> float | None:
    """A number as float, or None when absent; ModelSpec checks it lies in [0, 1]."""
    value = raw.get(key)
    if value is None:
        return None
    if not _is_real(value):
        raise spec_error(source, key, f"must be a number in [0, 1], got {value!r}")
    return float(value)


def read_input_size(raw: RawSpec, source: str) -> tuple[int, int] | None:
    """`input_size` as (height, width) of positive ints, or None when absent."""
    value = raw.get("input_size")
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(_is_int(v) and v > 0 for v in value)
    ):
        raise spec_error(
            source, "input_size", f"must be [height, width], two positive ints; got {value!r}"
        )
    return int(value[0]), int(value[1])


def _channel_values(value: object, source: str, name: str) -> tuple[float, ...]:
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (1, 3)
        or not all(_is_real(v) for v in value)
    ):
        raise spec_error(
            source, f"input_range.{name}", f"must be a list of 1 or 3 numbers, got {value!r}"
        )
    return tuple(float(v) for v in value)


def read_input_range(raw: RawSpec, source: str) -> str | MeanStd:
    """`input_range`: a range name (checked by ModelSpec) or {mean, std}; default "uint8"."""
    value = raw.get("input_range", "uint8")
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping) or set(value) != {"mean", "std"}:
        raise spec_error(
            source,
            "input_range",
            f"must be one of {INPUT_RANGES} or a mapping with exactly `mean` and `std`, "
            f"got {value!r}",
        )
    mean = _channel_values(value["mean"], source, "mean")
    std = _channel_values(value["std"], source, "std")
    if any(s <= 0 for s in std):
        raise spec_error(source, "input_range.std", f"values must be > 0, got {list(std)}")
    return MeanStd(mean=mean, std=std)


def read_labels(raw: RawSpec, base_dir: Path, source: str) -> tuple[dict[int, str], str]:
    """The label map and where it came from.

    Returns:
      (id -> name, the label file's absolute path or "inline"); ({}, "") when
      `labels` is absent.
    """
    value = raw.get("labels")
    if value is None:
        return {}, ""
    try:
        names = label_maps.load_labels(value, base_dir)
    except ValueError as e:
        raise spec_error(source, "labels", f"is invalid: {e}") from e
    label_source = str((base_dir / value).resolve()) if isinstance(value, str) else "inline"
    return names, label_source


def check_task_keys(raw: RawSpec, task: str, source: str) -> None:
    """Refuses keys that only the other task reads: a silently ignored key hides a mistake."""
    if task == TASK_INSTANCE and "output_key" in raw:
        raise spec_error(
            source,
            "output_key",
            "applies only to semantic models; instance outputs "
            "are read by their od_api / model_garden names, so remove it",
        )
    if task == TASK_SEMANTIC and "score_threshold" in raw:
        raise spec_error(source, "score_threshold", "applies only to instance models; remove it")

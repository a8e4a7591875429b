"""The model spec's vocabulary: its keys, the values they take, and the error they raise.

`models.spec` documents what each key means; this module holds the names, so
the spec dataclass and the raw-value readers (`models.spec_parsing`,
`models.spec_files`) share one definition without importing each other.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

TASK_SEMANTIC = "semantic"
TASK_INSTANCE = "instance"
TASKS = (TASK_SEMANTIC, TASK_INSTANCE)

RESIZE_STRETCH = "stretch"
RESIZE_LETTERBOX = "letterbox"
RESIZE_NONE = "none"
RESIZE_MODES = (RESIZE_STRETCH, RESIZE_LETTERBOX, RESIZE_NONE)

INPUT_RANGES = ("uint8", "unit", "symmetric")
SEMANTIC_OUTPUT_FORMATS = ("logits", "probabilities", "foreground_probability", "class_map")
INSTANCE_OUTPUT_FORMATS = ("od_api", "model_garden")
UPSAMPLING_BILINEAR = "bilinear"
UPSAMPLING_JOINT_BILATERAL = "joint_bilateral"
UPSAMPLING_MODES = (UPSAMPLING_BILINEAR, UPSAMPLING_JOINT_BILATERAL)
# The semantic output formats that joint bilateral upsampling applies to.
PER_CLASS_OUTPUT_FORMATS = ("logits", "probabilities")
OUTPUT_FORMATS = {TASK_SEMANTIC: SEMANTIC_OUTPUT_FORMATS, TASK_INSTANCE: INSTANCE_OUTPUT_FORMATS}

SPEC_KEYS = (
    "format",
    "path",
    "signature",
    "input_key",
    "input_size",
    "resize",
    "input_range",
    "output_format",
    "output_key",
    "labels",
    "label_offset",
    "score_threshold",
    "mask_threshold",
    "batch_size",
    "upsampling",
)
SPEC_FILE_SUFFIXES = (".json", ".yaml", ".yml")
# Label files looked for next to a model given by path (no spec file).
DEFAULT_LABEL_FILES = ("labels.txt", "labels.json", "labels.pbtxt", "label_map.pbtxt")


@dataclass(frozen=True)
class MeanStd:
    """Per-channel normalisation (pixel - mean) / std, on pixels in 0..255."""

    mean: tuple[float, ...]  # 1 or 3 values.
    std: tuple[float, ...]  # 1 or 3 values, all > 0.


def spec_error(source: str, key: str, problem: str) -> ValueError:
    """The error for one bad spec key: "<spec file or model path>: `<key>` <problem>"."""
    return ValueError(f"{source}: `{key}` {problem}")


def check_choice(
    source: str, key: str, value: object, allowed: Collection[str], described: str = ""
) -> None:
    """Raises spec_error unless `value` is one of `allowed`.

    Args:
      source: The spec file or model path, for the message.
      key: The spec key holding `value`.
      value: The value given.
      allowed: The values the key takes.
      described: How the message lists the allowed values (default: `allowed` itself).
    """
    if value not in allowed:
        raise spec_error(source, key, f"must be one of {described or allowed}, got {value!r}")

"""Where a model spec's values come from: the spec file, the model's files and its signature.

`read_spec_file` parses a `.json` / `.yaml` spec; `format_from_path` and
`check_model_path` check that `path` holds a model of the right format;
`default_label_file` finds a label map next to a model given by path; and
`fill_from_signature` loads the model only when keys its signature can tell
(input key, output key and format, fixed input size) are missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from models.adapters import FORMAT_KERAS, FORMAT_SAVED_MODEL, FORMAT_TFLITE, open_backend
from models.adapters.conventions import detect_conventions
from models.spec_keys import (
    DEFAULT_LABEL_FILES,
    RESIZE_NONE,
    RESIZE_STRETCH,
    SPEC_FILE_SUFFIXES,
    SPEC_KEYS,
    TASK_SEMANTIC,
    spec_error,
)

# Formats stored as one file, and the suffix that file must have.
_FILE_SUFFIXES = {FORMAT_KERAS: ".keras", FORMAT_TFLITE: ".tflite"}
_FORMAT_BY_SUFFIX = {suffix: model_format for model_format, suffix in _FILE_SUFFIXES.items()}


def read_spec_file(path: Path) -> dict[str, Any]:
    """Parses a spec file and checks its keys (unknown keys and a missing `path` fail)."""
    if not path.is_file():
        raise ValueError(
            f"model spec file {path} does not exist; pass 'none', a spec file "
            f"({', '.join(SPEC_FILE_SUFFIXES)}) or a model path"
        )
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"model spec file {path} cannot be parsed: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(
            f"model spec file {path} must hold a mapping of spec keys, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(
            f"model spec file {path} has unknown keys {unknown}; the keys are {list(SPEC_KEYS)}"
        )
    if "path" not in raw:
        raise ValueError(
            f"model spec file {path} has no `path`; add the model's path "
            "(relative to the spec file)"
        )
    return raw


def _missing_model(path: Path, source: str) -> ValueError:
    return spec_error(
        source,
        "path",
        f"{path} does not exist; fix the path (relative paths resolve against the spec "
        "file's directory)",
    )


def format_from_path(path: Path, source: str) -> str:
    """The format a model path implies: its suffix, or a directory for a SavedModel."""
    if not path.exists():
        raise _missing_model(path, source)
    if path.suffix in _FORMAT_BY_SUFFIX:
        return _FORMAT_BY_SUFFIX[path.suffix]
    if path.is_dir():
        return FORMAT_SAVED_MODEL
    raise spec_error(
        source,
        "path",
        f"{path} is neither a SavedModel directory, a .keras file nor a .tflite file; "
        "set `format` or fix the path",
    )


def check_model_path(path: Path, model_format: str, source: str) -> None:
    """Checks that `path` exists and holds a model of format `model_format`."""
    if not path.exists():
        raise _missing_model(path, source)
    if model_format == FORMAT_SAVED_MODEL and not (
        (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    ):
        raise spec_error(
            source,
            "path",
            f"{path} holds no saved_model.pb; point it at the SavedModel directory itself",
        )
    suffix = _FILE_SUFFIXES.get(model_format)
    if suffix and (not path.is_file() or path.suffix != suffix):
        raise spec_error(
            source, "path", f"{path} must be a {suffix} file for format {model_format!r}"
        )


def default_label_file(model_path: Path) -> str | None:
    """The first of DEFAULT_LABEL_FILES inside a model directory or next to a model file."""
    folder = model_path if model_path.is_dir() else model_path.parent
    for name in DEFAULT_LABEL_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    return None


def fill_from_signature(
    raw: dict[str, Any], task: str, model_format: str, path: Path
) -> dict[str, Any]:
    """`raw` plus the keys the model's signature tells, loading the model only if some are unset.

    Keys already in `raw` win over anything detected.
    """
    needed = ["input_key", "output_format"] + (["output_key"] if task == TASK_SEMANTIC else [])
    if all(key in raw for key in needed):
        return raw
    backend = open_backend(model_format, str(path), raw.get("signature", "serving_default"))
    detected = detect_conventions(backend.info, task, raw)
    if raw.get("resize") == RESIZE_NONE:
        # A fixed-size model fed at each image's size: the loader explains the clash.
        detected.pop("input_size", None)
    elif "input_size" in detected and "resize" not in raw:
        detected["resize"] = RESIZE_STRETCH
    return {**raw, **detected}

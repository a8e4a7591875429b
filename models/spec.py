"""Model specs: how to run one segmentation model, validated before any work starts.

A spec is given as `--semantic_model` / `--instance_model`, whose value is one of
  * "none": that model is not run;
  * a spec file (`.json`, `.yaml`, `.yml`) with the keys below;
  * a model path (SavedModel directory, `.keras` or `.tflite` file): the
    conventions are read from the model's own signature where it shows them.

Spec keys (all optional but `path`):
  format          saved_model | keras | tflite (default: from the path).
  path            The model; relative paths resolve against the spec file's directory.
                  Models inside the `models` package (the bundled ones) are stored
                  relative to it, so they resolve wherever the package is installed.
  signature       SavedModel / TFLite signature (default serving_default).
  input_key       The signature input that takes the images (default: the only input).
  input_size      [h, w] the model is fed at; absent = each image at its own size.
  resize          stretch | letterbox | none (default: stretch with input_size, else none).
  input_range     uint8 (0..255) | unit (0..1) | symmetric (-1..1) |
                  {"mean": [...], "std": [...]}, applied as (pixel - mean) / std to
                  pixels in 0..255 (default uint8).
  output_format   semantic: logits | probabilities | foreground_probability | class_map;
                  instance: od_api | model_garden (default: from the signature).
  output_key      Semantic only: the output holding the segmentation.
  labels          Inline list, inline {id: name}, or a .pbtxt / .json / .txt file.
  label_offset    Added to the model's raw class index to get the label-map id.
  score_threshold Instance only: keep detections scoring at least this (default 0.5).
  mask_threshold  Mask / foreground probability threshold (default 0.5).
  batch_size      Most images per model call (default: no limit beyond the pipeline's).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from models import labels as label_maps
from models.adapters import FORMAT_KERAS, FORMAT_SAVED_MODEL, FORMAT_TFLITE, FORMATS

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
)
SPEC_FILE_SUFFIXES = (".json", ".yaml", ".yml")
# Label files looked for next to a model given by path (no spec file).
DEFAULT_LABEL_FILES = ("labels.txt", "labels.json", "labels.pbtxt", "label_map.pbtxt")

MODELS_DIR = Path(__file__).resolve().parent
# The bundled specs, located from the models package (absolute, so they work as flag defaults).
BUNDLED_SEMANTIC_SPEC = str(MODELS_DIR / "bundled" / "semantic.json")
BUNDLED_INSTANCE_SPEC = str(MODELS_DIR / "bundled" / "instance.json")


def portable_model_path(path: Path) -> str:
    """How a ModelSpec stores an absolute model path.

    A model inside the `models` package is stored relative to it (POSIX
    separators): the driver's absolute path would not exist on a remote worker
    where the package is installed elsewhere (e.g. Dataflow with --setup_file).
    Any other model keeps its absolute path.
    """
    try:
        return path.relative_to(MODELS_DIR).as_posix()
    except ValueError:
        return str(path)


def resolve_model_path(path: str) -> Path:
    """The local path of a ModelSpec's `path`, resolved in the current process."""
    stored = Path(path)
    return stored if stored.is_absolute() else MODELS_DIR / stored


@dataclass(frozen=True)
class MeanStd:
    """Per-channel normalisation (pixel - mean) / std, on pixels in 0..255."""

    mean: tuple[float, ...]  # 1 or 3 values.
    std: tuple[float, ...]  # 1 or 3 values, all > 0.


def _fail(source: str, key: str, problem: str) -> ValueError:
    return ValueError(f"{source}: `{key}` {problem}")


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec (see the module docstring for each key's meaning).

    `labels` holds (id, name) pairs so the spec stays hashable and picklable;
    `class_names` gives them as a dict.
    """

    task: str
    format: str
    # Absolute, or relative to the models package (see portable_model_path); open `local_path`.
    path: str
    signature: str = "serving_default"
    input_key: str | None = None
    input_size: tuple[int, int] | None = None
    resize: str = RESIZE_NONE
    input_range: str | MeanStd = "uint8"
    output_format: str = "logits"
    output_key: str | None = None
    labels: tuple[tuple[int, str], ...] = ()
    labels_source: str = ""  # The label file, "inline", or "" when there is no label map.
    label_offset: int = 0
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    batch_size: int | None = None
    source: str = field(default="", compare=False)  # The spec file or model path given.

    def __post_init__(self) -> None:
        self._check_choices(self.source or self.path)
        self._check_numbers(self.source or self.path)

    def _check_choices(self, where: str) -> None:
        if self.task not in TASKS:
            raise _fail(where, "task", f"must be one of {TASKS}, got {self.task!r}")
        if self.format not in FORMATS:
            raise _fail(where, "format", f"must be one of {FORMATS}, got {self.format!r}")
        if self.resize not in RESIZE_MODES:
            raise _fail(where, "resize", f"must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.resize == RESIZE_NONE and self.input_size is not None:
            raise _fail(
                where,
                "resize",
                "is 'none' (feed each image at its own size) but input_size is set; "
                "remove input_size or use resize 'stretch' or 'letterbox'",
            )
        if self.resize != RESIZE_NONE and self.input_size is None:
            raise _fail(where, "resize", f"{self.resize!r} needs `input_size: [h, w]`")
        if isinstance(self.input_range, str) and self.input_range not in INPUT_RANGES:
            raise _fail(
                where,
                "input_range",
                f"must be one of {INPUT_RANGES} or {{mean: [...], std: [...]}}, "
                f"got {self.input_range!r}",
            )
        formats = OUTPUT_FORMATS[self.task]
        if self.output_format not in formats:
            raise _fail(
                where,
                "output_format",
                f"must be one of {formats} for a {self.task} model, got {self.output_format!r}",
            )

    def _check_numbers(self, where: str) -> None:
        for key in ("score_threshold", "mask_threshold"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise _fail(where, key, f"must be in [0, 1], got {getattr(self, key)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise _fail(where, "batch_size", f"must be >= 1, got {self.batch_size}")

    @property
    def local_path(self) -> str:
        """The model's path in this process (resolved here, not on the driver)."""
        return str(resolve_model_path(self.path))

    @property
    def class_names(self) -> dict[int, str]:
        """Label id -> class name."""
        return dict(self.labels)

    def class_name(self, class_id: int) -> str:
        """The class's name, or "class_<id>" for an id the label map lacks."""
        return self.class_names.get(class_id, f"class_{class_id}")

    def fingerprint(self) -> str:
        """SHA-256 (hex) over the model's files: relative paths and contents, in sorted order.

        Independent of where the model is installed: only paths inside it are hashed.
        """
        root = Path(self.local_path)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        digest = hashlib.sha256()
        for file in files:
            relative = file.relative_to(root).as_posix() if root.is_dir() else file.name
            digest.update(relative.encode() + b"\0")
            with file.open("rb") as stream:
                for chunk in iter(lambda s=stream: s.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()

    def to_json_dict(self) -> dict[str, Any]:
        """The resolved spec as JSON-serialisable values, for the run manifest."""
        input_range: Any = self.input_range
        if isinstance(input_range, MeanStd):
            input_range = {"mean": list(input_range.mean), "std": list(input_range.std)}
        return {
            "task": self.task,
            "source": self.source,
            "format": self.format,
            "path": self.path,
            "resolved_path": self.local_path,
            "signature": self.signature,
            "input_key": self.input_key,
            "input_size": None if self.input_size is None else list(self.input_size),
            "resize": self.resize,
            "input_range": input_range,
            "output_format": self.output_format,
            "output_key": self.output_key,
            "labels": {str(k): v for k, v in self.labels},
            "labels_source": self.labels_source,
            "label_offset": self.label_offset,
            "score_threshold": self.score_threshold,
            "mask_threshold": self.mask_threshold,
            "batch_size": self.batch_size,
        }


# ---------------------------------------------------------------- raw value checks


def _string(raw: Mapping[str, Any], key: str, source: str) -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(source, key, f"must be a non-empty string, got {value!r}")
    return value


def _integer(raw: Mapping[str, Any], key: str, source: str) -> int | None:
    value = raw.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(source, key, f"must be an integer, got {value!r}")
    return value


def _number(raw: Mapping[str, Any], key: str, source: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(source, key, f"must be a number in [0, 1], got {value!r}")
    return float(value)


def _input_size(raw: Mapping[str, Any], source: str) -> tuple[int, int] | None:
    value = raw.get("input_size")
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise _fail(
            source, "input_size", f"must be [height, width], two positive ints; got {value!r}"
        )
    return int(value[0]), int(value[1])


def _channel_values(value: object, source: str, name: str) -> tuple[float, ...]:
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (1, 3)
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(
            source, f"input_range.{name}", f"must be a list of 1 or 3 numbers, got {value!r}"
        )
    return tuple(float(v) for v in value)


def _input_range(raw: Mapping[str, Any], source: str) -> str | MeanStd:
    value = raw.get("input_range", "uint8")
    if isinstance(value, str):
        return value  # Checked against INPUT_RANGES by ModelSpec.
    if not isinstance(value, Mapping) or set(value) != {"mean", "std"}:
        raise _fail(
            source,
            "input_range",
            f"must be one of {INPUT_RANGES} or a mapping with exactly `mean` and `std`, "
            f"got {value!r}",
        )
    mean = _channel_values(value["mean"], source, "mean")
    std = _channel_values(value["std"], source, "std")
    if any(s <= 0 for s in std):
        raise _fail(source, "input_range.std", f"values must be > 0, got {list(std)}")
    return MeanStd(mean=mean, std=std)


# ---------------------------------------------------------------- paths and files


def _missing_model(path: Path, source: str) -> ValueError:
    return _fail(
        source,
        "path",
        f"{path} does not exist; fix the path (relative paths resolve against the spec "
        "file's directory)",
    )


def _format_from_path(path: Path, source: str) -> str:
    if not path.exists():
        raise _missing_model(path, source)
    if path.suffix == ".keras":
        return FORMAT_KERAS
    if path.suffix == ".tflite":
        return FORMAT_TFLITE
    if path.is_dir():
        return FORMAT_SAVED_MODEL
    raise _fail(
        source,
        "path",
        f"{path} is neither a SavedModel directory, a .keras file nor a .tflite file; "
        "set `format` or fix the path",
    )


def _check_model_path(path: Path, model_format: str, source: str) -> None:
    if not path.exists():
        raise _missing_model(path, source)
    if model_format == FORMAT_SAVED_MODEL and not (
        (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    ):
        raise _fail(
            source,
            "path",
            f"{path} holds no saved_model.pb; point it at the SavedModel directory itself",
        )
    expected_suffix = {FORMAT_KERAS: ".keras", FORMAT_TFLITE: ".tflite"}.get(model_format)
    if expected_suffix and (not path.is_file() or path.suffix != expected_suffix):
        raise _fail(
            source, "path", f"{path} must be a {expected_suffix} file for format {model_format!r}"
        )


def _read_spec_file(path: Path) -> dict[str, Any]:
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


def _labels(raw: Mapping[str, Any], base_dir: Path, source: str) -> tuple[dict[int, str], str]:
    value = raw.get("labels")
    if value is None:
        return {}, ""
    try:
        names = label_maps.load_labels(value, base_dir)
    except ValueError as e:
        raise _fail(source, "labels", f"is invalid: {e}") from e
    label_source = str((base_dir / value).resolve()) if isinstance(value, str) else "inline"
    return names, label_source


def _default_labels(model_path: Path) -> str | None:
    folder = model_path if model_path.is_dir() else model_path.parent
    for name in DEFAULT_LABEL_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    return None


# ---------------------------------------------------------------- assembly


def _task_specific_checks(raw: Mapping[str, Any], task: str, source: str) -> None:
    if task == TASK_INSTANCE and "output_key" in raw:
        raise _fail(
            source,
            "output_key",
            "applies only to semantic models; instance outputs "
            "are read by their od_api / model_garden names, so remove it",
        )
    if task == TASK_SEMANTIC and "score_threshold" in raw:
        raise _fail(source, "score_threshold", "applies only to instance models; remove it")


def _detect(raw: dict[str, Any], task: str, model_format: str, path: Path) -> dict[str, Any]:
    """Fills keys the signature can tell, loading the model only when some are missing."""
    needed = ["input_key", "output_format"] + (["output_key"] if task == TASK_SEMANTIC else [])
    if all(key in raw for key in needed):
        return raw
    from models.adapters import open_backend
    from models.adapters.conventions import detect_conventions

    backend = open_backend(model_format, str(path), raw.get("signature", "serving_default"))
    detected = detect_conventions(backend.info, task, raw)
    if raw.get("resize") == RESIZE_NONE:
        # A fixed-size model fed at each image's size: the loader explains the clash.
        detected.pop("input_size", None)
    elif "input_size" in detected and "resize" not in raw:
        detected["resize"] = RESIZE_STRETCH
    return {**raw, **detected}


def _build(raw: dict[str, Any], task: str, base_dir: Path, source: str) -> ModelSpec:
    _task_specific_checks(raw, task, source)
    path_value = _string(raw, "path", source)
    model_path = (base_dir / path_value).resolve()
    model_format = _string(raw, "format", source) or _format_from_path(model_path, source)
    if model_format not in FORMATS:
        raise _fail(source, "format", f"must be one of {FORMATS}, got {model_format!r}")
    _check_model_path(model_path, model_format, source)
    for key in ("signature", "input_key", "output_key", "output_format", "resize"):
        _string(raw, key, source)  # Checked before detection reads them.
    raw = _detect(raw, task, model_format, model_path)
    input_size = _input_size(raw, source)
    names, labels_source = _labels(raw, base_dir, source)
    optional = {
        "score_threshold": _number(raw, "score_threshold", source),
        "mask_threshold": _number(raw, "mask_threshold", source),
        "label_offset": _integer(raw, "label_offset", source),
        "batch_size": _integer(raw, "batch_size", source),
        "signature": _string(raw, "signature", source),
    }
    return ModelSpec(
        task=task,
        format=model_format,
        path=portable_model_path(model_path),
        input_key=_string(raw, "input_key", source),
        input_size=input_size,
        resize=_string(raw, "resize", source) or (RESIZE_STRETCH if input_size else RESIZE_NONE),
        input_range=_input_range(raw, source),
        output_format=_string(raw, "output_format", source) or OUTPUT_FORMATS[task][0],
        output_key=_string(raw, "output_key", source),
        labels=tuple(names.items()),
        labels_source=labels_source,
        source=source,
        **{k: v for k, v in optional.items() if v is not None},
    )


def load_model_spec(value: str, task: Literal["semantic", "instance"]) -> ModelSpec | None:
    """Parses and validates a `--semantic_model` / `--instance_model` value.

    Args:
      value: "none", a spec file (.json/.yaml/.yml) or a model path.
      task: Which model this is: "semantic" or "instance".

    Returns:
      The validated spec, or None for "none".

    Raises:
      ValueError: Naming the bad key or file and how to fix it.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if value.strip().lower() == "none":
        return None
    path = Path(value).expanduser()
    if path.suffix.lower() in SPEC_FILE_SUFFIXES:
        path = path.resolve()
        return _build(_read_spec_file(path), task, path.parent, str(path))
    path = path.resolve()
    if not path.exists():
        raise ValueError(
            f"model {value!r} does not exist; pass 'none', a spec file "
            f"({', '.join(SPEC_FILE_SUFFIXES)}) or a SavedModel directory / .keras / .tflite path"
        )
    raw: dict[str, Any] = {"path": str(path)}
    labels = _default_labels(path)
    if labels is not None:
        raw["labels"] = labels
    return _build(raw, task, path.parent, str(path))

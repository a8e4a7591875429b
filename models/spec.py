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
  upsampling      bilinear | joint_bilateral (default bilinear): how semantic logits /
                  probabilities or instance box masks reach the original image's pixels.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from models.adapters import FORMATS
from models.spec_files import (
    check_model_path,
    default_label_file,
    fill_from_signature,
    format_from_path,
    read_spec_file,
)
from models.spec_keys import (
    DEFAULT_LABEL_FILES,
    INPUT_RANGES,
    INSTANCE_OUTPUT_FORMATS,
    OUTPUT_FORMATS,
    PER_CLASS_OUTPUT_FORMATS,
    RESIZE_LETTERBOX,
    RESIZE_MODES,
    RESIZE_NONE,
    RESIZE_STRETCH,
    SEMANTIC_OUTPUT_FORMATS,
    SPEC_FILE_SUFFIXES,
    SPEC_KEYS,
    TASK_INSTANCE,
    TASK_SEMANTIC,
    TASKS,
    UPSAMPLING_BILINEAR,
    UPSAMPLING_MODES,
    MeanStd,
    check_choice,
    spec_error,
)
from models.spec_parsing import (
    RawSpec,
    check_task_keys,
    read_fraction,
    read_input_range,
    read_input_size,
    read_integer,
    read_labels,
    read_string,
)

__all__ = [
    "BUNDLED_INSTANCE_SPEC",
    "BUNDLED_SEMANTIC_SHARED_SPEC",
    "BUNDLED_SEMANTIC_SPEC",
    "DEFAULT_LABEL_FILES",
    "INPUT_RANGES",
    "INSTANCE_OUTPUT_FORMATS",
    "MODELS_DIR",
    "OUTPUT_FORMATS",
    "RESIZE_LETTERBOX",
    "RESIZE_MODES",
    "RESIZE_NONE",
    "RESIZE_STRETCH",
    "SEMANTIC_OUTPUT_FORMATS",
    "SPEC_FILE_SUFFIXES",
    "SPEC_KEYS",
    "TASKS",
    "TASK_INSTANCE",
    "TASK_SEMANTIC",
    "MeanStd",
    "ModelSpec",
    "load_model_spec",
    "portable_model_path",
    "resolve_model_path",
    "shared_semantic_spec",
]

MODELS_DIR = Path(__file__).resolve().parent
# The bundled specs, located from the models package (absolute, so they work as flag defaults).
BUNDLED_SEMANTIC_SPEC = str(MODELS_DIR / "bundled" / "semantic.json")
BUNDLED_INSTANCE_SPEC = str(MODELS_DIR / "bundled" / "instance.json")
# The semantic logits the bundled instance export also returns (models.export).
BUNDLED_SEMANTIC_SHARED_SPEC = str(MODELS_DIR / "bundled" / "semantic_shared.json")


def shared_semantic_spec(semantic_model: str, instance_model: str) -> str:
    """The semantic model to load, given the --semantic_model and --instance_model flags.

    The bundled instance export runs the semantic network anyway and returns its
    logits, so a run with both bundled models reads its semantic maps from that
    export (BUNDLED_SEMANTIC_SHARED_SPEC): the same maps, one network call per batch
    for both transforms instead of two (models.adapters.shared_calls). Any other
    choice, a semantic-only run among them, is returned as given.
    """
    bundled = os.path.abspath(semantic_model) == os.path.abspath(BUNDLED_SEMANTIC_SPEC)
    with_bundled_instance = os.path.abspath(instance_model) == os.path.abspath(
        BUNDLED_INSTANCE_SPEC
    )
    return BUNDLED_SEMANTIC_SHARED_SPEC if bundled and with_bundled_instance else semantic_model


# String keys that convention detection reads, so they are type-checked before it runs.
_KEYS_READ_BY_DETECTION = ("signature", "input_key", "output_key", "output_format", "resize")


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
    upsampling: str = UPSAMPLING_BILINEAR
    source: str = field(default="", compare=False)  # The spec file or model path given.

    def __post_init__(self) -> None:
        where = self.source or self.path
        check_choice(where, "task", self.task, TASKS)
        check_choice(where, "format", self.format, FORMATS)
        self._check_resize(where)
        self._check_value_conventions(where)
        self._check_numbers(where)

    def _check_resize(self, where: str) -> None:
        check_choice(where, "resize", self.resize, RESIZE_MODES)
        if self.resize == RESIZE_NONE and self.input_size is not None:
            raise spec_error(
                where,
                "resize",
                "is 'none' (feed each image at its own size) but input_size is set; "
                "remove input_size or use resize 'stretch' or 'letterbox'",
            )
        if self.resize != RESIZE_NONE and self.input_size is None:
            raise spec_error(where, "resize", f"{self.resize!r} needs `input_size: [h, w]`")

    def _check_value_conventions(self, where: str) -> None:
        if isinstance(self.input_range, str):
            check_choice(
                where,
                "input_range",
                self.input_range,
                INPUT_RANGES,
                f"{INPUT_RANGES} or {{mean: [...], std: [...]}}",
            )
        formats = OUTPUT_FORMATS[self.task]
        check_choice(
            where,
            "output_format",
            self.output_format,
            formats,
            f"{formats} for a {self.task} model",
        )
        check_choice(where, "upsampling", self.upsampling, UPSAMPLING_MODES)
        resamples = self.task == TASK_INSTANCE or self.output_format in PER_CLASS_OUTPUT_FORMATS
        if self.upsampling != UPSAMPLING_BILINEAR and not resamples:
            raise spec_error(
                where,
                "upsampling",
                f"{self.upsampling!r} resamples per-class maps, so it needs output_format "
                f"{' or '.join(PER_CLASS_OUTPUT_FORMATS)}, not {self.output_format!r}; "
                "remove upsampling",
            )

    def _check_numbers(self, where: str) -> None:
        for key in ("score_threshold", "mask_threshold"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise spec_error(where, key, f"must be in [0, 1], got {getattr(self, key)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise spec_error(where, "batch_size", f"must be >= 1, got {self.batch_size}")

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
            "upsampling": self.upsampling,
        }


def _model_location(raw: RawSpec, base_dir: Path, source: str) -> tuple[Path, str]:
    """The model's absolute path and its format (given, or implied by the path)."""
    model_path = (base_dir / read_string(raw, "path", source)).resolve()
    model_format = read_string(raw, "format", source) or format_from_path(model_path, source)
    check_choice(source, "format", model_format, FORMATS)
    check_model_path(model_path, model_format, source)
    return model_path, model_format


def _build(raw: dict[str, Any], task: str, base_dir: Path, source: str) -> ModelSpec:
    """Checks raw spec values, fills what the signature tells, and builds the spec."""
    check_task_keys(raw, task, source)
    model_path, model_format = _model_location(raw, base_dir, source)
    for key in _KEYS_READ_BY_DETECTION:
        read_string(raw, key, source)
    raw = fill_from_signature(raw, task, model_format, model_path)
    input_size = read_input_size(raw, source)
    resize = read_string(raw, "resize", source) or (RESIZE_STRETCH if input_size else RESIZE_NONE)
    names, labels_source = read_labels(raw, base_dir, source)
    # Absent keys keep ModelSpec's defaults.
    optional = {
        "score_threshold": read_fraction(raw, "score_threshold", source),
        "mask_threshold": read_fraction(raw, "mask_threshold", source),
        "label_offset": read_integer(raw, "label_offset", source),
        "batch_size": read_integer(raw, "batch_size", source),
        "signature": read_string(raw, "signature", source),
        "upsampling": read_string(raw, "upsampling", source),
    }
    return ModelSpec(
        task=task,
        format=model_format,
        path=portable_model_path(model_path),
        input_key=read_string(raw, "input_key", source),
        input_size=input_size,
        resize=resize,
        input_range=read_input_range(raw, source),
        output_format=read_string(raw, "output_format", source) or OUTPUT_FORMATS[task][0],
        output_key=read_string(raw, "output_key", source),
        labels=tuple(names.items()),
        labels_source=labels_source,
        source=source,
        **{k: v for k, v in optional.items() if v is not None},
    )


def _spec_for_model_path(path: Path, value: str) -> dict[str, Any]:
    """The raw spec of a model given by path: the path, and a label file found next to it."""
    if not path.exists():
        raise ValueError(
            f"model {value!r} does not exist; pass 'none', a spec file "
            f"({', '.join(SPEC_FILE_SUFFIXES)}) or a SavedModel directory / .keras / .tflite path"
        )
    raw: dict[str, Any] = {"path": str(path)}
    labels = default_label_file(path)
    if labels is not None:
        raw["labels"] = labels
    return raw


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
    is_spec_file = path.suffix.lower() in SPEC_FILE_SUFFIXES
    path = path.resolve()
    raw = read_spec_file(path) if is_spec_file else _spec_for_model_path(path, value)
    return _build(raw, task, path.parent, str(path))

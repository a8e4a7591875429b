"""README.md's model spec section stays true: every example spec in it loads and validates.

The doc marks each example spec with `<!-- spec-example: <task> -->` and each label
file it shows with `<!-- label-file: <name> -->`, right before the fenced block.
Here every example is written to a file next to a tiny model with the signature the
doc describes (and the doc's own label files), then loaded with `load_model_spec`
and checked with `validate_model`, which loads the model and runs it once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from models.adapters import FORMATS
from models.loader import validate_model
from models.spec import (
    INSTANCE_OUTPUT_FORMATS,
    SEMANTIC_OUTPUT_FORMATS,
    SPEC_KEYS,
    ModelSpec,
    load_model_spec,
)
from tests.models import tiny_models as tm

DOC = Path(__file__).resolve().parents[2] / "README.md"
_MARKED_BLOCK = re.compile(
    r"<!-- (?P<kind>spec-example|label-file): (?P<arg>\S+) -->\n"
    r"```(?P<language>\w+)\n(?P<text>.*?)```",
    re.DOTALL,
)


class DocBlock(NamedTuple):
    """One marked fenced block of the doc."""

    kind: str  # "spec-example" or "label-file".
    arg: str  # The task ("semantic" / "instance") or the label file's name.
    language: str  # The fence's language: json, yaml or text.
    text: str


def _blocks(kind: str) -> list[DocBlock]:
    blocks = [DocBlock(**m.groupdict()) for m in _MARKED_BLOCK.finditer(DOC.read_text())]
    return [block for block in blocks if block.kind == kind]


def _parse(block: DocBlock) -> dict[str, Any]:
    return json.loads(block.text) if block.language == "json" else yaml.safe_load(block.text)


EXAMPLES = _blocks("spec-example")

# Each example's `path` -> a tiny model with the signature the doc states for it.
MODEL_BUILDERS: dict[str, Callable[[Path], Path]] = {
    "deeplab_v3plus": lambda p: tm.save_split_semantic_model(p, "inputs", (512, 512)),
    "segformer_b0.keras": tm.save_keras_probabilities_model,
    "selfie_segmenter.tflite": tm.save_tflite_red_foreground_model,
    "deeplabv3_pascal": tm.save_class_map_model,
    "mask_rcnn_inception_resnet_v2": tm.save_od_api_model,
    "maskrcnn_resnet_fpn": tm.save_model_garden_model,
    "semantic": lambda p: tm.save_split_semantic_model(p, "images", (320, 640)),
    "instance": lambda p: tm.save_od_api_model(p, "images", (None, 320, 640, 3)),
}


@pytest.fixture(scope="module")
def doc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The doc's example specs and label files, next to the tiny models they name."""
    root = tmp_path_factory.mktemp("doc_examples")
    for block in _blocks("label-file"):
        (root / block.arg).write_text(block.text)
    for index, block in enumerate(EXAMPLES):
        path = _parse(block)["path"]
        if not (root / path).exists():
            MODEL_BUILDERS[path](root / path)
        suffix = ".json" if block.language == "json" else ".yaml"
        (root / f"example_{index}{suffix}").write_text(block.text)
    return root


def _load(doc_dir: Path, index: int) -> ModelSpec:
    block = EXAMPLES[index]
    suffix = ".json" if block.language == "json" else ".yaml"
    spec = load_model_spec(str(doc_dir / f"example_{index}{suffix}"), block.arg)  # type: ignore[arg-type]
    assert spec is not None
    return spec


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) == 8
    assert {block.arg for block in EXAMPLES} == {"semantic", "instance"}
    assert all(block.language in ("json", "yaml") for block in EXAMPLES)


@pytest.mark.parametrize(
    "index", range(len(EXAMPLES)), ids=[_parse(block)["path"] for block in EXAMPLES]
)
def test_example_loads_and_validates(doc_dir: Path, index: int) -> None:
    spec = _load(doc_dir, index)
    raw = _parse(EXAMPLES[index])
    resolved = spec.to_json_dict()
    for key in ("format", "input_key", "output_format", "label_offset", "batch_size"):
        if key in raw:
            assert resolved[key] == raw[key], key
    info = validate_model(spec)
    assert spec.input_key is None or info.input(spec.input_key) is not None


def test_examples_cover_every_convention(doc_dir: Path) -> None:
    specs = [_load(doc_dir, index) for index in range(len(EXAMPLES))]
    raws = [_parse(block) for block in EXAMPLES]
    assert {spec.output_format for spec in specs} == {
        *SEMANTIC_OUTPUT_FORMATS,
        *INSTANCE_OUTPUT_FORMATS,
    }
    assert {spec.format for spec in specs} == set(FORMATS)
    label_kinds = {
        Path(raw["labels"]).suffix if isinstance(raw["labels"], str) else type(raw["labels"])
        for raw in raws
    }
    assert label_kinds == {".txt", ".json", ".pbtxt", list, dict}
    assert any(spec.label_offset != 0 for spec in specs)
    assert {block.language for block in EXAMPLES} == {"json", "yaml"}


def test_every_spec_key_is_in_the_keys_table() -> None:
    text = DOC.read_text()
    missing = [key for key in SPEC_KEYS if f"| `{key}` |" not in text]
    assert missing == []


def test_bundled_examples_are_the_exported_specs() -> None:
    from models.export import INSTANCE_SPEC, SEMANTIC_SPEC  # Writes models/bundled/*.json.

    by_path = {_parse(block)["path"]: _parse(block) for block in EXAMPLES}
    assert by_path["semantic"] == SEMANTIC_SPEC
    assert by_path["instance"] == INSTANCE_SPEC

"""models.export: what `export_models` writes is a model directory the pipeline loads."""

from __future__ import annotations

from pathlib import Path

from models.export import DEFAULT_POSTPROCESS, export_models
from models.loader import validate_model
from models.networks import instance_net, semantic_net
from models.spec import load_model_spec
from tests.models.project_labels import PROJECT_CLASS_NAMES


def test_export_into_a_new_directory_writes_the_label_map_the_specs_name(tmp_path: Path) -> None:
    # `python -m models.train --output DIR` trains for half an hour before it exports:
    # a DIR with no label map in it must not fail there (it did until this test).
    output = tmp_path / "not_yet_created"
    export_models(semantic_net(), instance_net(), output, DEFAULT_POSTPROCESS, mirror_average=False)

    assert (output / "labels.txt").read_text().split() == list(PROJECT_CLASS_NAMES.values())
    for task in ("semantic", "instance"):
        spec = load_model_spec(str(output / f"{task}.json"), task)
        assert spec is not None
        assert spec.class_names == PROJECT_CLASS_NAMES
        assert Path(spec.labels_source) == (output / "labels.txt").resolve()
        validate_model(spec)  # Loads the SavedModel and runs it on a blank image.

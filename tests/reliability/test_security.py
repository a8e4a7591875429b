"""Security: inputs can't make segbeam write outside --output, run code, or exhaust memory."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from models.adapters import open_backend
from pipeline.run import run
from tests.bad_inputs import (
    ESCAPING_FILENAME,
    PICKLE_MARKER,
    bomb_png,
    encode_image,
    red_left_rgb,
    tf_example,
    write_tfrecord,
)
from tests.reliability.runs import REPO_ROOT, read_all_tables, segbeam_argv, snapshot

# Calls that would run code or unpickle objects if they were given input bytes.
_FORBIDDEN = {
    r"\b(c?pickle|cloudpickle|dill|joblib|marshal|shelve|torch)\.(load|loads|open)\(": "unpickling",
    r"allow_pickle\s*=\s*True": "numpy unpickling",
    r"\byaml\.(load|unsafe_load|full_load)\(": "YAML that builds arbitrary objects",
    r"\b(eval|exec)\(": "evaluating strings as code",
    r"safe_mode\s*=\s*False": "Keras lambda layers",
}
_SOURCE_DIRS = ("pipeline", "transforms", "models")


def test_nothing_is_written_outside_the_output_directory(tmp_path, corpus, tiny_models):
    output = tmp_path / "deep" / "er" / "out"
    corpus_before = snapshot(corpus.directory)
    models_before = snapshot(tiny_models.semantic_spec.parent)
    outside_before = snapshot(tmp_path)

    run(segbeam_argv(f"{corpus.directory}/*", output, tiny_models))

    assert snapshot(corpus.directory) == corpus_before
    assert snapshot(tiny_models.semantic_spec.parent) == models_before
    assert snapshot(tmp_path, skip=output) == outside_before
    # The record named "../../evil" is an images row; its name was never a path.
    evil = [r for r in read_all_tables(output)["images"] if r["filename"] == ESCAPING_FILENAME]
    assert len(evil) == 1
    assert not list(tmp_path.parent.rglob("evil*"))
    assert not (Path.cwd() / ESCAPING_FILENAME).resolve().exists()


def test_pickled_inputs_are_refused_not_unpickled(tmp_path, corpus, tiny_models):
    output = tmp_path / "out"

    run(segbeam_argv(f"{corpus.directory}/*", output, tiny_models))

    assert not (corpus.directory / PICKLE_MARKER).exists()
    errors = {(r["source"], r["record_index"]): r for r in read_all_tables(output)["errors"]}
    for case in (corpus.case("pickle.jpg"), corpus.case("mixed shard ü.tfrecord#5")):
        error = errors[(case.source, case.record_index)]
        assert error["error_type"] == "UnsupportedFormat", case.name


def _source_files() -> list[Path]:
    files = []
    for directory in _SOURCE_DIRS:
        files += [p for p in (REPO_ROOT / directory).rglob("*.py") if "bundled" not in p.parts]
    files.append(REPO_ROOT / "run_pipeline.py")
    return files


def test_no_code_executing_loader_in_the_source():
    found = []
    for path in _source_files():
        text = path.read_text()
        for pattern, why in _FORBIDDEN.items():
            found += [
                f"{path.relative_to(REPO_ROOT)}: {match.group(0)} ({why})"
                for match in re.finditer(pattern, text)
            ]
    assert not found
    assert len(_source_files()) > 20  # The scan saw the code base, not an empty directory.


def test_keras_model_with_a_lambda_layer_is_refused(tmp_path):
    # A Lambda layer stores Python bytecode in the .keras file; safe mode refuses to load it.
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)

    with pytest.raises(ValueError, match=r"(?i)lambda"):
        open_backend("keras", str(path), "serving_default")


def test_ground_truth_bomb_is_one_error_row_under_evaluate(tmp_path, tiny_models):
    png = encode_image(Image.fromarray(red_left_rgb(10, 12)), "PNG")
    good_truth = encode_image(Image.fromarray(np.zeros((10, 12), np.uint8)), "PNG")
    shard = tmp_path / "truth.tfrecord"
    write_tfrecord(
        shard,
        [
            tf_example(image__encoded=png, image__segmentation__class__encoded=good_truth),
            tf_example(
                image__encoded=png, image__segmentation__class__encoded=bomb_png(30000, 30000)
            ),
        ],
    )

    run(segbeam_argv(str(shard), tmp_path / "out", tiny_models, "--evaluate"))

    tables = read_all_tables(tmp_path / "out")
    assert [r["record_index"] for r in tables["images"]] == [0]
    assert [r["record_index"] for r in tables["errors"]] == [1]

"""The bad-input corpus through the whole pipeline: every record is one images or one errors row.

One run over tests/bad_inputs.py's corpus (image files and TFRecord shards)
with tiny models; each test checks one promise of issue 5 against the tables.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pycocotools.mask
import pytest

from pipeline.run import RunOutcome, run
from tests.bad_inputs import Corpus, Expected
from tests.reliability.runs import (
    FOREGROUND_CLASS,
    Rows,
    TinyModels,
    committed_files,
    read_all_tables,
    relative_files,
    segbeam_argv,
)


@pytest.fixture(scope="module")
def corpus_run(
    tmp_path_factory: pytest.TempPathFactory, corpus: Corpus, tiny_models: TinyModels
) -> tuple[RunOutcome, Path]:
    output = tmp_path_factory.mktemp("corpus_run") / "out"
    outcome = run(segbeam_argv(f"{corpus.directory}/*", output, tiny_models))
    return outcome, output


@pytest.fixture(scope="module")
def tables(corpus_run: tuple[RunOutcome, Path]) -> dict[str, Rows]:
    return read_all_tables(corpus_run[1])


def _rows_of(rows: Rows, case: Expected) -> Rows:
    return [r for r in rows if (r["source"], r["record_index"]) == (case.source, case.record_index)]


def test_every_record_is_exactly_one_images_or_errors_row(corpus, tables):
    for case in corpus.cases:
        images = _rows_of(tables["images"], case)
        errors = _rows_of(tables["errors"], case)
        if case.error_type is None:
            assert (len(images), len(errors)) == (1, 0), (case.name, errors)
            assert (images[0]["width"], images[0]["height"]) == case.size, case.name
            expected_name = case.path.name if case.filename is None else case.filename
            assert images[0]["filename"] == expected_name, case.name
        else:
            assert (len(images), len(errors)) == (0, 1), (case.name, images)
            assert errors[0]["error_type"] == case.error_type, (case.name, errors[0]["message"])
    # Nothing beyond the corpus: every row belongs to a case.
    assert len(tables["images"]) + len(tables["errors"]) == len(corpus.cases)


def test_error_messages_say_what_was_wrong(corpus, tables):
    def message(name: str) -> str:
        (row,) = _rows_of(tables["errors"], corpus.case(name))
        return row["message"]

    assert "looks like text" in message("page.jpg")
    assert "0 bytes" in message("zero bytes.jpg")
    assert "truncated" in message("truncated.jpg")
    assert "--max_image_pixels" in message("bomb.png")
    assert "10000x10000 = 100000000 pixels, over the limit of 89478485" in message("bomb_100m.png")
    assert "checksum" in message("mixed shard ü.tfrecord#2")
    assert "'image/encoded'" in message("mixed shard ü.tfrecord#3")
    assert "int64_list" in message("mixed shard ü.tfrecord#4")
    assert "rest of the shard could not be read" in message("truncated.tfrecord#2")


def test_records_after_a_corrupt_record_are_still_read(corpus, tables):
    shard = corpus.case("mixed shard ü.tfrecord#2").source
    indices = sorted(
        r["record_index"] for r in tables["images"] + tables["errors"] if r["source"] == shard
    )
    assert indices == list(range(9))
    (summary,) = [r for r in tables["shards"] if r["source"] == shard]
    assert (summary["num_records"], summary["num_read_errors"]) == (9, 3)


def test_a_truncated_shard_counts_what_it_lost(corpus, tables):
    shard = corpus.case("truncated.tfrecord#0").source
    (summary,) = [r for r in tables["shards"] if r["source"] == shard]
    # Two records read, plus one error row standing for the unreadable rest.
    assert (summary["num_records"], summary["num_read_errors"]) == (3, 1)


def _class_mask(tables: dict[str, Rows], image_id: str, height: int, width: int) -> np.ndarray:
    rows = [
        r
        for r in tables["semantic_masks"]
        if r["image_id"] == image_id and r["class_id"] == FOREGROUND_CLASS
    ]
    if not rows:
        return np.zeros((height, width), bool)
    (row,) = rows
    rle = {"size": [height, width], "counts": row["rle"].encode()}
    return pycocotools.mask.decode(rle).astype(bool)


def test_masks_are_of_the_displayed_image(corpus, tables):
    # The red-foreground model marks red pixels, so each mask must equal the
    # red area of the image as a viewer shows it: EXIF rotation applied, first
    # GIF frame, palette expanded, 16-bit scaled, alpha ignored.
    checked = 0
    for case in corpus.cases:
        if case.foreground is None:
            continue
        (image,) = _rows_of(tables["images"], case)
        mask = _class_mask(tables, image["image_id"], image["height"], image["width"])
        np.testing.assert_array_equal(mask, case.foreground, err_msg=case.name)
        checked += 1
    assert checked == sum(c.error_type is None for c in corpus.cases)


def test_exif_rotated_jpeg_has_the_red_half_on_top(corpus, tables):
    # By hand: stored 40x24 with red on the left, orientation 6 turns it 90 degrees
    # clockwise, so the displayed 24x40 image is red on top (JPEG blurs the middle rows).
    (image,) = _rows_of(tables["images"], corpus.case("exif_rotated.jpg"))
    mask = _class_mask(tables, image["image_id"], 40, 24)
    assert mask[:18].all()
    assert not mask[22:].any()


def test_ledger_in_manifest_holds(corpus, corpus_run):
    outcome, output = corpus_run
    manifest = json.loads((output / "manifest.json").read_text())
    expected_errors = collections.Counter(c.error_type for c in corpus.cases if c.error_type)
    ledger = manifest["ledger"]
    assert ledger["input_files"] == len(corpus.sources)
    assert ledger["records_read"] == len(corpus.cases)
    assert ledger["images"] == sum(c.error_type is None for c in corpus.cases)
    assert ledger["errors_by_type"] == dict(expected_errors)
    assert outcome.ledger.to_json_dict() == ledger


def test_run_directory_holds_only_the_committed_files(corpus_run):
    _, output = corpus_run
    # No temporary dot-files, no staging left behind.
    assert relative_files(output) == committed_files(output)


def test_pixel_limit_is_configurable(tmp_path, corpus, tiny_models):
    small, large = corpus.case("gray.png"), corpus.case("rgba.png")  # 24x16 and 30x20 pixels.
    inputs = f"{small.path},{large.path}"
    output = tmp_path / "out"

    run(segbeam_argv(inputs, output, tiny_models, f"--max_image_pixels={24 * 16}"))

    tables = read_all_tables(output)
    assert [r["source"] for r in tables["images"]] == [small.source]
    assert [(r["source"], r["error_type"]) for r in tables["errors"]] == [
        (large.source, "ImageTooLarge")
    ]

"""Spilling mask rows (transforms/spill.py): same tables as inline, no orphans, no duplicates.

The segmentation transforms given a spill directory write each batch's mask
rows to one file and send a SpillRef on; the writer copies the files' rows
into the part files, keeping only the rows of images that got an `images` row.
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from models.spec import ModelSpec
from pipeline import schemas
from tests.transforms.inference_helpers import decoded
from transforms._inference import TfThreads
from transforms.elements import (
    STAGE_DECODE,
    STAGE_INFER,
    BatchResults,
    InstanceResult,
    JoinInputRef,
    ShardSummary,
    SpillRef,
    StageError,
    batch_id,
    batch_partition_key,
)
from transforms.instance import InstanceSegmentation
from transforms.rows import AssembleTableRows, TableRows, instance_rows, semantic_mask_rows
from transforms.semantic import SemanticSegmentation, _SemanticDoFn
from transforms.spill import (
    read_join_input,
    read_spill,
    spill_path,
    write_join_input,
    write_spill,
)
from transforms.write import WriteTables

# Class 4 is deliberately unlabelled: spilled rows must name it like the join does.
NAMES = {2: "left", 7: "box"}
MASK_TABLES = ("semantic_masks", "instances")


def _batches() -> list[tuple]:
    rng = np.random.default_rng(5)

    def image(name: str, height: int, width: int):
        return decoded(name, rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))

    failed = decoded("broken", None, error=StageError(STAGE_DECODE, "Corrupt", "bad bytes"))
    return [(image("a", 37, 53), failed, image("b", 64, 64)), (image("c", 30, 12),)]


def _table_rows(directory: Path, table: str) -> list[dict]:
    rows = pq.read_table(directory / table).to_pylist()
    return sorted(rows, key=repr)  # Rows keep the schema's column order: repr is a total key.


def _name(class_id: int) -> str:
    return NAMES.get(class_id, f"class_{class_id}")


def test_spilled_rows_and_tables_equal_the_inline_ones(
    semantic_spec: ModelSpec, instance_spec: ModelSpec, tmp_path: Path
) -> None:
    spill_dir = str(tmp_path / "staging" / "_spill")
    summary = ShardSummary("/data/a.png", 1, 0, 10)
    with TestPipeline() as p:
        batches = p | "Batches" >> beam.Create(_batches())
        summaries = p | "Summaries" >> beam.Create([summary])
        for mode, spill in (("inline", None), ("spilled", spill_dir)):
            semantic = batches | f"Semantic{mode}" >> SemanticSegmentation(
                semantic_spec, 2, spill_dir=spill, class_names=NAMES
            )
            instance = batches | f"Instance{mode}" >> InstanceSegmentation(
                instance_spec, 2, 0.2, spill_dir=spill, class_names=NAMES
            )
            inputs = {
                "decoded": batches,
                "summaries": summaries,
                "semantic": semantic,
                "instance": instance,
            }
            # Spilled mode spills the join's rows too: every table then comes from files.
            rows = inputs | f"Rows{mode}" >> AssembleTableRows(NAMES, True, True, spill_dir=spill)
            _ = rows | f"Write{mode}" >> WriteTables(str(tmp_path / mode), 2)
            if spill is None:
                inline = (semantic, instance)
            else:
                spilled = (semantic, instance)

        # The spill files hold exactly the rows the join builds from inline results.
        expected = (
            inline
            | "AllInline" >> beam.Flatten()
            | "InlineResults" >> beam.FlatMap(lambda batch: batch.results)
            | "InlineRows" >> beam.FlatMap(_inline_mask_rows)
        )
        spilled_all = spilled | "AllSpilled" >> beam.Flatten()
        spill_refs = spilled_all | "Refs" >> beam.FlatMap(lambda b: [b.spill] if b.spill else [])
        actual = spill_refs | "ReadSpills" >> beam.FlatMap(
            lambda ref: _tagged(ref.table, read_spill(ref))
        )
        matched = (
            (
                expected | "TagInline" >> beam.Map(lambda r: ("inline", r)),
                actual | "TagSpilled" >> beam.Map(lambda r: ("spilled", r)),
            )
            | "Both" >> beam.Flatten()
            | "ToList" >> beam.combiners.ToList()
        )
        assert_that(matched, _same_rows_both_sides, label="SpilledRowsMatchInline")
        # The results that go on to the join carry no RLE, and one SpillRef per
        # batch and table that has mask rows (both batches have some).
        refs = spill_refs | "RefTables" >> beam.Map(lambda ref: (ref.table, ref.num_rows > 0))
        assert_that(
            refs,
            equal_to([(table, True) for table in MASK_TABLES for _ in range(2)]),
            label="OneRefPerBatchAndTable",
        )
        rles = (
            spilled_all
            | "SpilledResults" >> beam.FlatMap(lambda batch: batch.results)
            | "Rles" >> beam.FlatMap(_rles)
        )
        assert_that(rles, equal_to([]), label="NoRleReachesTheJoin")

    for table in schemas.TABLES:
        inline_rows = _table_rows(tmp_path / "inline", table)
        assert _table_rows(tmp_path / "spilled", table) == inline_rows, table
    assert len(pq.read_table(tmp_path / "spilled" / "semantic_masks")) > 0
    assert len(pq.read_table(tmp_path / "spilled" / "instances")) > 0
    for table in MASK_TABLES:
        assert pq.read_schema(next((tmp_path / "spilled" / table).glob("*.parquet"))).equals(
            schemas.TABLES[table]
        )


def _inline_mask_rows(result) -> list[tuple[str, dict]]:
    if result.error is not None:
        return []
    if isinstance(result, InstanceResult):
        rows = instance_rows(result.image_id, result.height, result.width, result.instances, _name)
        return [("instances", row) for row in rows]
    rows = semantic_mask_rows(result.image_id, result.height, result.width, result.classes, _name)
    return [("semantic_masks", row) for row in rows]


def _tagged(table: str, arrow) -> list[tuple[str, dict]]:
    return [(table, row) for row in arrow.to_pylist()]


def _same_rows_both_sides(lists: list[list[tuple[str, tuple[str, dict]]]]) -> None:
    (pairs,) = lists
    sides = {"inline": [], "spilled": []}
    for side, row in pairs:
        sides[side].append(row)
    assert sides["inline"], "the test images produced no mask rows"
    key = repr
    assert sorted(sides["spilled"], key=key) == sorted(sides["inline"], key=key)


def _rles(item) -> list[str]:
    if isinstance(item, InstanceResult):
        return [i.rle for i in item.instances if i.rle is not None]
    return [m.rle for m in item.classes if m.rle is not None]


def test_image_failing_after_its_masks_were_spilled_is_only_an_error(
    semantic_spec: ModelSpec, tmp_path: Path
) -> None:
    spill_dir = str(tmp_path / "staging" / "_spill")
    batches = _batches()
    # The instance model fails on "b" after the semantic stage spilled its masks.
    instance = [
        BatchResults(
            "a",
            (
                InstanceResult("a", 37, 53, ()),
                InstanceResult(
                    "b", 64, 64, (), StageError(STAGE_INFER, "ResourceExhausted", "oom")
                ),
            ),
        ),
        BatchResults("c", (InstanceResult("c", 30, 12, ()),)),
    ]
    with TestPipeline() as p:
        inputs = {
            "decoded": p | "Batches" >> beam.Create(batches),
            "summaries": p | "Summaries" >> beam.Create([ShardSummary("/data/a.png", 1, 0, 1)]),
            "instance": p | "Instance" >> beam.Create(instance),
        }
        inputs["semantic"] = inputs["decoded"] | SemanticSegmentation(
            semantic_spec, 4, spill_dir=spill_dir, class_names=NAMES
        )
        # The join spills too, so the writer learns the shard's images from spill files.
        rows = inputs | AssembleTableRows(NAMES, True, True, spill_dir=spill_dir)
        _ = rows | WriteTables(str(tmp_path / "out"), 3)

    # "b"'s masks are in the spill file: the writer must drop them, not the spill stage.
    spill = read_spill(
        SpillRef("semantic_masks", spill_path(spill_dir, "semantic_masks", "a"), 4, "")
    )
    assert "b" in spill.column("image_id").to_pylist()
    out = tmp_path / "out"
    errors = pq.read_table(out / "errors").to_pylist()
    assert [
        (r["image_id"], r["stage"], r["error_type"]) for r in errors if r["image_id"] == "b"
    ] == [("b", "infer", "ResourceExhausted")]
    assert sorted(pq.read_table(out / "images").column("image_id").to_pylist()) == ["a", "c"]
    assert set(pq.read_table(out / "semantic_masks").column("image_id").to_pylist()) == {"a", "c"}
    # Every record read is in exactly one of images and errors.
    assert sorted(["a", "c"] + [r["image_id"] for r in errors]) == ["a", "b", "broken", "c"]


def test_rerunning_a_batch_overwrites_its_spill_file(
    semantic_spec: ModelSpec, tmp_path: Path
) -> None:
    spill_dir = str(tmp_path / "_spill")
    batch = _batches()[0]
    fn = _SemanticDoFn(semantic_spec, 2, TfThreads(), spill_dir, NAMES)
    fn.setup()
    first = [item.spill for item in fn.process(batch)]
    second = [item.spill for item in fn.process(batch)]
    assert len(first) == 1
    assert second == first
    ref = first[0]
    assert ref.partition_key == batch_partition_key(batch)
    # One file, no leftover temporary files, holding the batch's rows once.
    files = sorted(p.name for p in (tmp_path / "_spill" / "semantic_masks").iterdir())
    assert files == [f"{batch[0].ref.image_id}.arrow"]
    rows = read_spill(ref)
    assert rows.num_rows == ref.num_rows == 4  # Two classes in each of "a" and "b".
    assert sorted(rows.column("image_id").to_pylist()) == ["a", "a", "b", "b"]


def test_writer_keeps_a_duplicated_reference_once(tmp_path: Path) -> None:
    batch = (
        decoded("x", np.zeros((2, 2, 3), np.uint8)),
        decoded("y", np.zeros((2, 2, 3), np.uint8)),
    )
    rows = [
        {
            "image_id": image_id,
            "class_id": 1,
            "class_name": "one",
            "height": 2,
            "width": 2,
            "pixel_count": 4,
            "rle": "04",
        }
        for image_id in ("y", "x")
    ]
    ref = write_spill(
        str(tmp_path / "_spill"),
        "semantic_masks",
        schemas.SEMANTIC_MASKS,
        batch_id(batch),
        batch_partition_key(batch),
        rows,
    )
    image_row = {
        "image_id": "x",
        "source": "/data/x.png",
        "record_index": 0,
        "width": 2,
        "height": 2,
        "num_instances": 0,
        "filename": "x.png",
        "source_id": "",
        "content_sha256": "",
    }
    bundles = [
        TableRows(ref.partition_key, {"images": [image_row]}),
        TableRows(ref.partition_key, {}, (ref,)),
        TableRows(ref.partition_key, {}, (ref,)),  # A runner delivering a reference twice.
    ]
    with TestPipeline() as p:
        _ = p | beam.Create(bundles) | WriteTables(str(tmp_path / "out"), 1)
    masks = pq.read_table(tmp_path / "out" / "semantic_masks").to_pylist()
    assert masks == [rows[1]]  # "x" once; "y" has no images row in the shard.


def test_join_inputs_round_trip_and_a_file_of_another_batch_is_refused(tmp_path: Path) -> None:
    spill_dir = str(tmp_path / "_spill")
    results = BatchResults("b1", (InstanceResult("b1", 3, 4, ()),), None)
    ref = write_join_input(spill_dir, "instance", results)
    assert ref == JoinInputRef("instance", "b1", f"{spill_dir}/_join_inputs/instance/b1.json")
    assert read_join_input(ref) == results
    # Another run overwriting the file with its own batch must not be read as this one.
    other = write_join_input(spill_dir, "instance", results._replace(batch_id="b2"))
    with pytest.raises(RuntimeError, match="holds batch b2, its reference says b1"):
        read_join_input(ref._replace(path=other.path))
    with pytest.raises(RuntimeError, match="Cannot read spill file"):
        read_join_input(ref._replace(path=f"{spill_dir}/missing.json"))

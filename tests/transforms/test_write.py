"""WriteTables: every table in every shard, atomic, idempotent, readable by pyarrow and DuckDB."""

import json
import os
import subprocess
import sys

import apache_beam as beam
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from pipeline import schemas
from transforms import write
from transforms.rows import TableRows
from transforms.write import WriteTables, shard_index


def _image_rows(image_id):
    return TableRows(
        image_id,
        {
            "images": [
                {
                    "image_id": image_id,
                    "source": "/s.tfrecord",
                    "record_index": 0,
                    "width": 3,
                    "height": 2,
                    "num_instances": 0,
                    "filename": "é x.jpg",
                    "source_id": "",
                    "content_sha256": "00",
                }
            ],
            "class_counts": [
                {
                    "image_id": image_id,
                    "class_id": 1,
                    "class_name": "building",
                    "pixel_count": 6,
                    "pixel_fraction": 1.0,
                    "instance_count": 0,
                }
            ],
        },
    )


def _write(rows, out, num_shards):
    with TestPipeline() as p:
        written = p | beam.Create(rows) | WriteTables(str(out), num_shards)
        assert_that(
            written,
            lambda files: (
                len(files) == num_shards * len(schemas.TABLES)
                or pytest.fail(f"{len(files)} files written")
            ),
        )


def _parquet_files(out):
    return sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)


def test_writes_every_table_per_shard_and_reads_back(tmp_path):
    ids = [f"img{i}" for i in range(20)]
    # With 20 keys and 2 shards both shards are non-empty (checked, not assumed).
    assert {shard_index(i, 2) for i in ids} == {0, 1}
    _write([_image_rows(i) for i in ids], tmp_path, 2)

    files = _parquet_files(tmp_path)
    assert files == sorted(
        f"{t}/part-0000{s}-of-00002.parquet" for t in schemas.TABLES for s in range(2)
    )
    images = pq.read_table(tmp_path / "images")
    assert images.schema.equals(schemas.IMAGES)
    assert sorted(images.column("image_id").to_pylist()) == sorted(ids)
    assert (
        pq.ParquetFile(tmp_path / "images" / files[-1].split("/")[-1])
        .metadata.row_group(0)
        .column(0)
        .compression
        == "ZSTD"
    )
    total = duckdb.sql(
        f"select count(*), sum(pixel_count) from read_parquet('{tmp_path}/class_counts/*.parquet')"
    ).fetchall()[0]
    assert total == (20, 120)
    assert pq.read_table(tmp_path / "errors").num_rows == 0


def test_rewrite_replaces_files_instead_of_adding(tmp_path):
    rows = [_image_rows(f"img{i}") for i in range(5)]
    _write(rows, tmp_path, 1)
    _write(rows, tmp_path, 1)
    assert len(_parquet_files(tmp_path)) == len(schemas.TABLES)
    assert pq.read_table(tmp_path / "images").num_rows == 5


def test_shard_index_is_stable_across_processes():
    # Workers are separate processes with their own string-hash salt: the same key must
    # land in the same file in all of them (a salted hash() would not).
    keys = [f"img{i}" for i in range(50)]
    script = (
        f"from transforms.write import shard_index; print([shard_index(k, 7) for k in {keys!r}])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{[shard_index(k, 7) for k in keys]}\n"}
    assert len(set(json.loads(outputs.pop()))) > 1  # The keys spread over several files.


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="num_shards >= 1"):
        WriteTables("/tmp/x", 0)
    with pytest.raises(ValueError, match="Unknown tables"):
        WriteTables("/tmp/x", 1, {"nope": schemas.IMAGES})


def test_row_groups_are_cut_at_the_target_size(tmp_path, monkeypatch):
    # Rows arrive a few at a time (light rows as dicts, spilled rows as Arrow tables);
    # each row group is written once the buffered rows reach the target, not per arrival.
    monkeypatch.setattr(write, "ROWS_PER_ROW_GROUP", 10)
    monkeypatch.setattr(write, "_ROWS_PER_CONVERSION", 3)
    rows = _image_rows("x").tables["class_counts"]
    path = tmp_path / "t.parquet"
    with open(path, "wb") as handle:
        buffer = write._TableBuffer(schemas.CLASS_COUNTS, handle)
        for _ in range(13):
            buffer.add(rows * 2)
        buffer.add_table(pa.Table.from_pylist(rows * 4, schema=schemas.CLASS_COUNTS))
        buffer.close()
    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sum(sizes) == buffer.num_rows == 30
    assert all(size >= 10 for size in sizes[:-1])
    assert len(sizes) < 13  # Not one group per arrival.

"""RunDirectory: staging, then commit; no stale files and no _SUCCESS before the end."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import schemas
from pipeline.output_dir import RunDirectory


def _stage(run_dir, names):
    for table, schema in schemas.TABLES.items():
        directory = run_dir.staging_dir + f"/{table}"
        os.makedirs(directory, exist_ok=True)
        for name in names:
            pq.write_table(pa.Table.from_pylist([], schema=schema), f"{directory}/{name}")


def test_commit_moves_tables_writes_manifest_then_success(tmp_path):
    run_dir = RunDirectory(str(tmp_path), "r1")
    run_dir.prepare()
    _stage(run_dir, ["part-00000-of-00001.parquet"])
    run_dir.commit({"status": "succeeded"})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*schemas.TABLES, "manifest.json", "_SUCCESS"]
    )
    assert json.loads((tmp_path / "manifest.json").read_text()) == {"status": "succeeded"}
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["part-00000-of-00001.parquet"]


def test_rerun_withdraws_success_and_leaves_no_stale_files(tmp_path):
    first = RunDirectory(str(tmp_path), "r1")
    first.prepare()
    _stage(first, ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"])
    first.commit({"run": 1})

    second = RunDirectory(str(tmp_path), "r2")
    second.prepare()
    assert not (tmp_path / "_SUCCESS").exists()
    _stage(second, ["part-00000-of-00001.parquet"])
    second.commit({"run": 2})
    assert [p.name for p in (tmp_path / "errors").iterdir()] == ["part-00000-of-00001.parquet"]
    assert not (tmp_path / "_staging").exists()


def test_prepare_clears_abandoned_staging(tmp_path):
    killed = RunDirectory(str(tmp_path), "killed")
    _stage(killed, ["part-00000-of-00001.parquet"])
    RunDirectory(str(tmp_path), "next").prepare()
    assert not (tmp_path / "_staging").exists()


def test_commit_refuses_a_missing_table(tmp_path):
    run_dir = RunDirectory(str(tmp_path), "r1")
    with pytest.raises(RuntimeError, match="has no files"):
        run_dir.commit({})
    assert not (tmp_path / "_SUCCESS").exists()

"""check_ledger: the tables must account for every record read, from the files themselves."""

import pytest

from pipeline.ledger import LedgerError, check_ledger, table_stats
from tests.pipeline.table_rows import image_row, write_part


def _write(tables_dir, table, rows):
    write_part(tables_dir, table, rows, name="part-0.parquet")


def _image(image_id, source):
    return image_row(image_id, source)


def _error(image_id, source, stage="decode", error_type="TruncatedImage"):
    return {
        "source": source,
        "record_index": 0,
        "image_id": image_id,
        "stage": stage,
        "error_type": error_type,
        "message": "m",
    }


def _shard(source, n, read_errors=0):
    return {"source": source, "num_records": n, "num_read_errors": read_errors, "num_bytes": 1}


@pytest.fixture
def tables(tmp_path):
    """A consistent run: a.tfrecord 3 records (2 images, 1 error), b.jpg 1 error."""
    _write(tmp_path, "shards", [_shard("a.tfrecord", 3), _shard("b.jpg", 1, 1)])
    _write(tmp_path, "images", [_image("1", "a.tfrecord"), _image("2", "a.tfrecord")])
    _write(
        tmp_path,
        "errors",
        [_error("3", "a.tfrecord"), _error("4", "b.jpg", "read", "UnreadableFile")],
    )
    for table in ("semantic_masks", "class_counts", "instances"):
        _write(tmp_path, table, [])
    return tmp_path


def test_consistent_tables_pass_with_counts(tables):
    ledger = check_ledger(str(tables), ["a.tfrecord", "b.jpg"])
    assert (ledger.input_files, ledger.records_read, ledger.images, ledger.errors) == (2, 4, 2, 2)
    assert ledger.errors_by_stage == {"decode": 1, "read": 1}


def test_table_stats_come_from_the_files(tables):
    stats = table_stats(str(tables), ["images", "instances"])
    assert (stats["images"].files, stats["images"].rows) == (1, 2)
    assert stats["images"].bytes == (tables / "images" / "part-0.parquet").stat().st_size
    assert (stats["instances"].files, stats["instances"].rows) == (1, 0)


def test_lost_image_row_fails(tables):
    _write(tables, "images", [_image("1", "a.tfrecord")])
    with pytest.raises(LedgerError, match=r"a.tfrecord: read 3, tables 2"):
        check_ledger(str(tables), ["a.tfrecord", "b.jpg"])


def test_row_in_both_tables_fails(tables):
    _write(tables, "shards", [_shard("a.tfrecord", 4), _shard("b.jpg", 1, 1)])
    _write(
        tables,
        "errors",
        [_error("3", "a.tfrecord"), _error("2", "a.tfrecord"), _error("4", "b.jpg")],
    )
    with pytest.raises(LedgerError, match="image ids appear twice"):
        check_ledger(str(tables), ["a.tfrecord", "b.jpg"])


def test_input_file_without_summary_fails(tables):
    with pytest.raises(LedgerError, match=r"1 input files have no read summary.*c\.png"):
        check_ledger(str(tables), ["a.tfrecord", "b.jpg", "c.png"])

"""The ledger: every record read is in exactly one of `images` or `errors`.

(With --skip_existing, a record whose image an earlier run processed is in
`skipped` instead: exactly one of the three.)

Checked by the driver after the pipeline finishes, from the Parquet files the
run actually wrote (not from runner metrics, which some runners don't report):
the `shards` table says how many records each input file yielded, and
`images` + `errors` must hold exactly that many rows for it, with no image id
twice. A runner that silently drops data fails this check.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline import schemas
from transforms.atomic_files import join, list_files


class LedgerError(RuntimeError):
    """The tables don't account for every record read."""


@dataclasses.dataclass(frozen=True)
class Ledger:
    """Record counts of one run, as found in its tables."""

    input_files: int
    records_read: int
    images: int
    errors: int
    skipped: int  # Records an earlier run already processed (--skip_existing).
    errors_by_stage: dict[str, int]
    errors_by_type: dict[str, int]

    def to_json_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def read_table(tables_dir: str, table: str, columns: Iterable[str] | None = None) -> pa.Table:
    """Reads every part file of `table` under `tables_dir` (any FileSystems URL)."""
    schema = schemas.ALL_TABLES[table]
    wanted = list(columns) if columns is not None else schema.names
    parts = []
    for path in _parquet_files(tables_dir, table):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            parts.append(pq.read_table(handle, columns=wanted))
    if not parts:
        return pa.Table.from_batches([], schema=pa.schema([schema.field(c) for c in wanted]))
    return pa.concat_tables(parts)


def _parquet_files(tables_dir: str, table: str) -> list[str]:
    return [p for p in list_files(join(tables_dir, table)) if p.endswith(".parquet")]


def check_ledger(tables_dir: str, planned_sources: Iterable[str]) -> Ledger:
    """Verifies the run's tables against each other and against the planned inputs.

    Args:
      tables_dir: Directory holding one sub-directory per table.
      planned_sources: Every input file the driver planned to read.

    Returns:
      The run's counts.

    Raises:
      LedgerError: naming the first inconsistencies found.
    """
    shards = read_table(tables_dir, "shards").to_pylist()
    images = read_table(tables_dir, "images", ["image_id", "source"])
    errors = read_table(tables_dir, "errors", ["image_id", "source", "stage", "error_type"])
    skipped = read_table(tables_dir, "skipped", ["image_id", "source"])
    problems = []

    planned = set(planned_sources)
    summarized = collections.Counter(row["source"] for row in shards)
    missing = sorted(planned - set(summarized))
    if missing:
        problems.append(f"{len(missing)} input files have no read summary, e.g. {missing[:3]}")
    repeated = sorted(s for s, n in summarized.items() if n > 1)
    if repeated:
        problems.append(f"{len(repeated)} input files were summarized twice, e.g. {repeated[:3]}")

    expected = collections.Counter()
    for row in shards:
        expected[row["source"]] += row["num_records"]
    found = collections.Counter(images.column("source").to_pylist())
    found.update(errors.column("source").to_pylist())
    found.update(skipped.column("source").to_pylist())
    mismatched = sorted(s for s in set(expected) | set(found) if expected[s] != found[s])
    if mismatched:
        examples = ", ".join(f"{s}: read {expected[s]}, tables {found[s]}" for s in mismatched[:3])
        problems.append(f"{len(mismatched)} input files' rows don't match their reads ({examples})")

    ids = images.column("image_id").to_pylist()
    ids += [i for i in errors.column("image_id").to_pylist() if i is not None]
    ids += skipped.column("image_id").to_pylist()
    duplicated = [i for i, n in collections.Counter(ids).items() if n > 1]
    if duplicated:
        problems.append(f"{len(duplicated)} image ids appear twice, e.g. {duplicated[:3]}")

    if problems:
        raise LedgerError(
            "The run's tables don't account for every record read: "
            + "; ".join(problems)
            + ". No _SUCCESS was written. Rerun into the same --output; if this repeats on "
            "this runner, the runner is losing or duplicating data."
        )
    return Ledger(
        input_files=len(planned),
        records_read=sum(expected.values()),
        images=images.num_rows,
        errors=errors.num_rows,
        skipped=skipped.num_rows,
        errors_by_stage=dict(collections.Counter(errors.column("stage").to_pylist())),
        errors_by_type=dict(collections.Counter(errors.column("error_type").to_pylist())),
    )


class TableStats(NamedTuple):
    """One table's files, rows and bytes, from the Parquet footers."""

    files: int
    rows: int
    bytes: int


def table_stats(tables_dir: str, tables: Iterable[str]) -> dict[str, TableStats]:
    """Files, rows and bytes of each table under `tables_dir`."""
    stats = {}
    for table in tables:
        paths = _parquet_files(tables_dir, table)
        rows = 0
        for path in paths:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                rows += pq.ParquetFile(handle).metadata.num_rows
        size = sum(m.size_in_bytes for r in FileSystems.match(paths) for m in r.metadata_list)
        stats[table] = TableStats(files=len(paths), rows=rows, bytes=size if paths else 0)
    return stats

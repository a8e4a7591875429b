"""Writes table rows to zstd Parquet: one file per table per output shard.

Built from GroupByKey and ParDo only (Beam 2.77's DaskRunner loses the output
of `WriteToParquet` and `fileio.WriteToFiles`). Rows are keyed by a stable hash
of their partition key into `num_shards` groups; each group is written by one
`process()` call, as `<table>/part-SSSSS-of-NNNNN.parquet`, through a temporary
file and a rename. File names depend only on the shard index, so a retried or
repeated bundle rewrites the same file with the same rows instead of adding one.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from pipeline import schemas
from transforms.atomic_files import atomic_writer, join
from transforms.rows import Row, TableRows

# Rows buffered per table before they go to the file as one row group; large
# enough for analytics scans, small enough to keep a worker's memory flat.
ROWS_PER_ROW_GROUP = 50_000


class WrittenFile(NamedTuple):
    """One Parquet file a writer committed."""

    table: str
    path: str
    num_rows: int


def shard_index(partition_key: str, num_shards: int) -> int:
    """Stable across processes and runners (unlike `hash()`, which is salted)."""
    digest = hashlib.sha256(partition_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def part_file_name(shard: int, num_shards: int) -> str:
    return f"part-{shard:05d}-of-{num_shards:05d}.parquet"


class _TableBuffer:
    """Buffers one table's rows and streams them out as row groups."""

    def __init__(self, schema: pa.Schema, handle: BinaryIO) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(handle, schema, compression="zstd")
        self._rows: list[Row] = []
        self.num_rows = 0

    def add(self, rows: list[Row]) -> None:
        self._rows.extend(rows)
        if len(self._rows) >= ROWS_PER_ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self.num_rows += len(self._rows)
            self._rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


class _WriteShardFiles(beam.DoFn):
    """(shard index, [TableRows]) -> one Parquet file per table, written atomically."""

    def __init__(self, output_dir: str, num_shards: int, tables: Mapping[str, pa.Schema]) -> None:
        self._output_dir = output_dir
        self._num_shards = num_shards
        self._tables = dict(tables)
        self._rows_written = Metrics.counter("segbeam", "rows_written")

    def process(self, element: tuple[int, Iterable[TableRows]]) -> Iterator[WrittenFile]:
        shard, bundles = element
        name = part_file_name(shard, self._num_shards)
        paths = {table: join(self._output_dir, table, name) for table in self._tables}
        # Every table is written in every shard, empty or not, so each table's
        # directory exists and readers never see a missing table. The group is
        # iterated once, with all tables' files open, so it is never held in memory.
        with contextlib.ExitStack() as stack:
            buffers = {
                table: _TableBuffer(schema, stack.enter_context(atomic_writer(paths[table])))
                for table, schema in self._tables.items()
            }
            for bundle in bundles:
                for table, rows in bundle.tables.items():
                    buffers[table].add(rows)
            for buffer in buffers.values():
                buffer.close()
        for table, buffer in buffers.items():
            self._rows_written.inc(buffer.num_rows)
            yield WrittenFile(table, paths[table], buffer.num_rows)


class WriteTables(beam.PTransform):
    """Writes PCollection[TableRows] as Parquet tables under `output_dir`.

    Returns PCollection[WrittenFile], one per file committed.
    """

    def __init__(
        self,
        output_dir: str,
        num_shards: int,
        tables: Mapping[str, pa.Schema] = schemas.TABLES,
    ) -> None:
        super().__init__()
        if num_shards < 1:
            raise ValueError(f"WriteTables needs num_shards >= 1, got {num_shards}.")
        known = schemas.ALL_TABLES
        unknown = set(tables) - set(known)
        if unknown:
            raise ValueError(f"Unknown tables {sorted(unknown)}; known: {sorted(known)}.")
        self._output_dir = output_dir
        self._num_shards = num_shards
        self._tables = dict(tables)

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        num_shards = self._num_shards
        return (
            rows
            | "KeyByShard" >> beam.Map(lambda r: (shard_index(r.partition_key, num_shards), r))
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShardFiles"
            >> beam.ParDo(_WriteShardFiles(self._output_dir, num_shards, self._tables))
        )

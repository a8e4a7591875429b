"""Writes table rows to zstd Parquet: one file per table per output shard.

Built from GroupByKey and ParDo only (Beam 2.77's DaskRunner loses the output
of `WriteToParquet` and `fileio.WriteToFiles`). Rows are keyed by a stable hash
of their partition key into `num_shards` groups; each group is written by one
`process()` call, as `<table>/part-SSSSS-of-NNNNN.parquet`, through a temporary
file and a rename. File names depend only on the shard index, so a retried or
repeated bundle rewrites the same file with the same rows instead of adding one.

Rows mostly arrive as spill files (`TableRows.spills`, see transforms/spill.py),
not through the GroupByKey: once the group is read, each referenced file is
read as Arrow, sorted, and appended; the mask tables' files (spilled by the
models, before the join) are first filtered to the image ids that got an
`images` row in this shard (an image that failed after its masks were spilled
is only in `errors`). Tables are written one at a time, so memory per writer
is the references plus one table's row group, not the shard's rows.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from pipeline import schemas
from transforms.atomic_files import atomic_writer, join
from transforms.elements import SpillRef
from transforms.rows import Row, TableRows
from transforms.spill import read_spill

# A row group is written once a table's buffered rows reach either bound: row
# groups of ~100k rows suit analytics scans (DuckDB, Spark and pyarrow read per
# row group); the byte bound keeps a table of long RLE strings from buffering
# tens of MB per writer (each writer holds a row group in Arrow while the Parquet
# encoder copies it: 32 MiB groups cost two concurrent writers ~130 MB of RSS).
# 8 MiB of uncompressed RLE strings is ~8,000 semantic_masks rows (~3.7 MB zstd).
ROWS_PER_ROW_GROUP = 128_000
BYTES_PER_ROW_GROUP = 8 * 1024 * 1024
# Python dict rows are converted to Arrow this many at a time: dicts take
# several times the memory of the same rows in Arrow.
_ROWS_PER_CONVERSION = 4096

# How spilled rows are sorted within their file, so that reruns write identical files.
_SPILL_SORT_KEYS = {
    "semantic_masks": ("image_id", "class_id"),
    "instances": ("image_id", "instance_id"),
    "class_counts": ("image_id", "class_id"),
    "errors": ("source", "record_index"),
}
# Tables the models spill before the join: their rows are kept only for images
# that got an `images` row (a record can still fail after its masks were spilled).
_FILTERED_TABLES = frozenset({"semantic_masks", "instances"})


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
    """Buffers one table's rows (as Arrow) and streams them out as row groups."""

    def __init__(self, schema: pa.Schema, handle: BinaryIO) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(handle, schema, compression="zstd")
        self._rows: list[Row] = []  # Not yet converted to Arrow.
        self._tables: list[pa.Table] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._closed = False
        self.num_rows = 0

    def add(self, rows: list[Row]) -> None:
        """Adds rows given as dicts."""
        self._rows.extend(rows)
        if len(self._rows) >= _ROWS_PER_CONVERSION:
            self._convert()

    def add_table(self, table: pa.Table) -> None:
        """Adds rows given as an Arrow table in this table's schema."""
        self._convert()
        self._tables.append(table)
        self._buffered_rows += table.num_rows
        self._buffered_bytes += table.nbytes
        if self._buffered_rows >= ROWS_PER_ROW_GROUP or self._buffered_bytes >= BYTES_PER_ROW_GROUP:
            self.flush()

    def _convert(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            self.add_table(pa.Table.from_pylist(rows, schema=self._schema))

    def flush(self) -> None:
        """Writes everything buffered as one row group."""
        self._convert()
        if self._tables:
            # No combine_chunks(): the Parquet writer writes a chunked table as one row
            # group (row_group_size = all its rows) without first copying it whole.
            table = pa.concat_tables(self._tables)
            self._tables, self._buffered_rows, self._buffered_bytes = [], 0, 0
            self._writer.write_table(table, row_group_size=table.num_rows)
            self.num_rows += table.num_rows
            del table
            # Arrow's allocator (mimalloc) keeps freed pages per thread: without this,
            # each concurrent writer's RSS stays at its largest row group plus what the
            # Parquet encoder used (measured: 50 MB less for two 5,000-image shards).
            pa.default_memory_pool().release_unused()

    def close(self) -> None:
        """Writes what is buffered and closes the Parquet writer; again: no-op."""
        if self._closed:
            return
        self.flush()
        self._writer.close()
        self._closed = True


def _spilled_rows(ref: SpillRef, schema: pa.Schema, image_ids: pa.Array | None) -> pa.Table:
    """A spill file's rows (of the images in `image_ids`, unless None), sorted, in `schema`."""
    table = read_spill(ref)
    if image_ids is not None:
        table = table.filter(pc.is_in(table.column("image_id"), value_set=image_ids))
    keys = _SPILL_SORT_KEYS.get(ref.table, ("image_id",))
    return table.sort_by([(key, "ascending") for key in keys]).select(schema.names).cast(schema)


class _WriteShardFiles(beam.DoFn):
    """(shard index, [TableRows]) -> one Parquet file per table, written atomically."""

    def __init__(self, output_dir: str, num_shards: int, tables: Mapping[str, pa.Schema]) -> None:
        self._output_dir = output_dir
        self._num_shards = num_shards
        self._tables = dict(tables)
        self._rows_written = Metrics.counter("segbeam", "rows_written")
        # Spilled rows of images that ended up in `errors` (a later stage failed).
        self._spilled_dropped = Metrics.counter("segbeam", "spilled_rows_dropped")

    def process(self, element: tuple[int, Iterable[TableRows]]) -> Iterator[WrittenFile]:
        shard, bundles = element
        name = part_file_name(shard, self._num_shards)
        paths = {table: join(self._output_dir, table, name) for table in self._tables}
        # Every table is written in every shard, empty or not, so each table's
        # directory exists and readers never see a missing table. The group is
        # iterated once, with all tables' files open, so it is never held in memory;
        # only the spill references and the shard's image ids are kept for the end.
        spills: dict[str, SpillRef] = {}
        image_ids: list[str] = []
        with contextlib.ExitStack() as stack:
            buffers = {
                table: _TableBuffer(schema, stack.enter_context(atomic_writer(paths[table])))
                for table, schema in self._tables.items()
            }
            for bundle in bundles:
                for table, rows in bundle.tables.items():
                    buffers[table].add(rows)
                image_ids.extend(row["image_id"] for row in bundle.tables.get("images", ()))
                # By path: a runner that delivers a reference twice must not duplicate rows.
                spills.update((ref.path, ref) for ref in bundle.spills)
            self._copy_spills(sorted(spills.values()), image_ids, buffers)
            for buffer in buffers.values():
                buffer.close()
        for table, buffer in buffers.items():
            self._rows_written.inc(buffer.num_rows)
            yield WrittenFile(table, paths[table], buffer.num_rows)

    def _copy_spills(
        self, refs: list[SpillRef], image_ids: list[str], buffers: Mapping[str, _TableBuffer]
    ) -> None:
        """Appends the spilled rows of this shard's images, table by table, file by file.

        Each table is closed (its last row group written) as soon as its files
        are read, so a writer buffers one table's rows at a time. `images`
        comes first (its rows extend `image_ids`), the models' mask tables last,
        filtered to `image_ids`.
        """
        by_table: dict[str, list[SpillRef]] = {}
        for ref in refs:
            if ref.table not in buffers:
                raise ValueError(
                    f"Spill file {ref.path} is for table {ref.table!r}, which this run does "
                    f"not write (tables: {sorted(buffers)})."
                )
            by_table.setdefault(ref.table, []).append(ref)
        order = sorted(by_table, key=lambda t: (t in _FILTERED_TABLES, t != "images", t))
        for table in order:
            kept = pa.array(image_ids, pa.string()) if table in _FILTERED_TABLES else None
            for ref in by_table[table]:
                rows = _spilled_rows(ref, self._tables[table], kept)
                if table == "images":
                    image_ids.extend(rows.column("image_id").to_pylist())
                if kept is not None:
                    self._spilled_dropped.inc(ref.num_rows - rows.num_rows)
                buffers[table].add_table(rows)
            buffers[table].close()


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

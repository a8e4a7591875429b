"""Spill files: a batch's rows, written where they are made, read by the writer.

Beam's in-process runners hold a GroupByKey's whole input in memory, so any
per-image data that crosses the per-batch join or the per-file write makes a
run's peak memory grow with its image count. Rows are therefore spilled per
batch, and only a `SpillRef` (path, row count, partition key) travels on:

- the fused decode/infer/encode stage writes each batch's `semantic_masks`
  and `instances` rows (the RLE strings, most of a run's bytes) here;
- the per-batch join (transforms/rows.py) writes each batch's `images`,
  `class_counts` and `errors` rows here, and its own inputs (the batch's
  `BatchImages` and each model's `BatchResults`, as JSON, under
  `_join_inputs/`), so that its shuffle carries only `JoinInputRef`s.

The writer of the output shard copies the files' rows into the table's part
file.

    <spill_dir>/<table>/<batch_id: the batch's first image_id>.arrow

Files are Arrow IPC streams (lz4: cheap to write and read, and they live only
until the run commits), in the table's own schema. A file's name depends
only on its batch, so a retried bundle overwrites it instead of adding one,
and it is written through `atomic_writer`, so a reader never sees half of it.
The spill directory lives inside the run's staging directory, which the
commit (pipeline/output_dir.py) removes; no spill file is ever a table file.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.atomic_files import atomic_writer, join, write_bytes_atomically
from transforms.element_json import decode_element, encode_element
from transforms.elements import BatchImages, BatchResults, JoinInputRef, SpillRef

# Name of the spill directory inside a run's staging (tables) directory.
SPILL_DIR_NAME = "_spill"
# Its subdirectory for the join's inputs (never a table name: tables are lowercase words).
JOIN_INPUTS_DIR_NAME = "_join_inputs"

_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def spill_path(spill_dir: str, table: str, batch_id: str) -> str:
    """Where the rows of `table` from the batch `batch_id` are spilled.

    The same path on every retry and rerun: `batch_id` (elements.batch_id) is
    the batch's first image id, unique in a run.
    """
    return join(spill_dir, table, f"{batch_id}.arrow")


def write_spill(
    spill_dir: str,
    table: str,
    schema: pa.Schema,
    batch_id: str,
    partition_key: str,
    rows: list[dict[str, Any]],
) -> SpillRef:
    """Writes `rows` (of `table`, in `schema`) of one batch; returns the reference to send on.

    Args:
      spill_dir: The run's spill directory.
      table: The table the rows belong to.
      schema: That table's schema (pipeline/schemas.py).
      batch_id: elements.batch_id of the batch: names the file.
      partition_key: elements.batch_partition_key of the batch: the rows' output shard.
      rows: The rows, as dicts in `schema`'s columns.
    """
    path = spill_path(spill_dir, table, batch_id)
    arrow = pa.Table.from_pylist(rows, schema=schema)
    with (
        atomic_writer(path) as handle,
        pa.ipc.new_stream(handle, schema, options=_IPC_OPTIONS) as w,
    ):
        w.write_table(arrow)
    return SpillRef(table, path, arrow.num_rows, partition_key)


def _read_file(path: str) -> bytes:
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read()
    except Exception as e:
        raise RuntimeError(
            f"Cannot read spill file {path} ({type(e).__name__}: {e}); it belongs to the "
            "run's staging directory, which must not be cleared or shared while the run is "
            "under way. Rerun."
        ) from e


def read_spill(ref: SpillRef) -> pa.Table:
    """The rows of one spill file, as an Arrow table in its table's schema.

    Raises:
      RuntimeError: the file is missing or holds another number of rows than
        its reference says (e.g. a spill directory cleared while the run was
        still under way).
    """
    arrow = pa.ipc.open_stream(pa.py_buffer(_read_file(ref.path))).read_all()
    if arrow.num_rows != ref.num_rows:
        raise RuntimeError(
            f"Spill file {ref.path} has {arrow.num_rows} rows, its reference says "
            f"{ref.num_rows}: another attempt or run overwrote it (is a second run writing "
            "into the same output directory?). Rerun, one run per output directory."
        )
    return arrow


def write_join_input(spill_dir: str, tag: str, value: BatchImages | BatchResults) -> JoinInputRef:
    """Spills one input of the per-batch join (tag: "images", "semantic" or "instance").

    The file is `value` as JSON (transforms/element_json.py: nothing is
    unpickled); only the returned reference crosses the join's shuffle.
    """
    path = join(spill_dir, JOIN_INPUTS_DIR_NAME, tag, f"{value.batch_id}.json")
    write_bytes_atomically(path, encode_element(value))
    return JoinInputRef(tag, value.batch_id, path)


def read_join_input(ref: JoinInputRef) -> BatchImages | BatchResults:
    """The join input a `write_join_input` reference points to.

    Raises:
      RuntimeError: the file is missing or holds another batch's input.
    """
    try:
        value = decode_element(_read_file(ref.path))
    except (ValueError, TypeError) as e:
        raise RuntimeError(
            f"Spill file {ref.path} is not a join input ({type(e).__name__}: {e}): is a second "
            "run writing into the same output directory? Rerun, one run per output directory."
        ) from e
    if not isinstance(value, (BatchImages, BatchResults)) or value.batch_id != ref.batch_id:
        held = getattr(value, "batch_id", type(value).__name__)
        raise RuntimeError(
            f"Spill file {ref.path} holds batch {held}, its reference says "
            f"{ref.batch_id}: is a second run writing into the same output directory? Rerun, "
            "one run per output directory."
        )
    return value

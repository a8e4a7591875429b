"""Spill files: a batch's mask rows, written by the inference stage, read by the writer.

The RLE strings of `semantic_masks` and `instances` rows are most of a run's
data (~8 KB per image). Beam's in-process runners hold a GroupByKey's whole
input in memory, so carrying them through the per-image join and the
per-file write made a run's peak memory grow with its image count. Instead
the fused decode/infer/encode stage writes each batch's rows of each mask
table to one file here, and only a `SpillRef` (path, row count, partition
key) travels through the shuffles; the writer of the output shard copies the
files' rows into the table's part file.

    <spill_dir>/<table>/<first image_id of the batch>.arrow

Files are Arrow IPC streams (lz4: cheap to write and read, and they live only
until the run commits), in the table's own schema. A file's name depends
only on its batch, so a retried bundle overwrites it instead of adding one,
and it is written through `atomic_writer`, so a reader never sees half of it.
The spill directory lives inside the run's staging directory, which the
commit (pipeline/output_dir.py) removes; no spill file is ever a table file.
"""

from __future__ import annotations

import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.atomic_files import atomic_writer, join
from transforms.elements import DecodedBatch, SpillRef, batch_partition_key
from transforms.rows import Row

# Name of the spill directory inside a run's staging (tables) directory.
SPILL_DIR_NAME = "_spill"

_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def spill_path(spill_dir: str, table: str, batch: DecodedBatch) -> str:
    """Where `batch`'s rows of `table` are spilled: the same path on every retry and rerun.

    Image ids are unique in a run and each record is in exactly one batch, so
    the batch's first image id names the batch.
    """
    return join(spill_dir, table, f"{batch[0].ref.image_id}.arrow")


def write_spill(
    spill_dir: str, table: str, schema: pa.Schema, batch: DecodedBatch, rows: list[Row]
) -> SpillRef:
    """Writes `rows` (of `table`, in `schema`) for `batch`; returns the reference to send on."""
    path = spill_path(spill_dir, table, batch)
    arrow = pa.Table.from_pylist(rows, schema=schema)
    with (
        atomic_writer(path) as handle,
        pa.ipc.new_stream(handle, schema, options=_IPC_OPTIONS) as w,
    ):
        w.write_table(arrow)
    return SpillRef(table, path, arrow.num_rows, batch_partition_key(batch))


def read_spill(ref: SpillRef) -> pa.Table:
    """The rows of one spill file, as an Arrow table in its table's schema.

    Raises:
      RuntimeError: the file is missing or holds another number of rows than
        its reference says (e.g. a spill directory cleared while the run was
        still under way).
    """
    try:
        with FileSystems.open(ref.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
    except Exception as e:
        raise RuntimeError(
            f"Cannot read spill file {ref.path} ({type(e).__name__}: {e}); it belongs to the "
            "run's staging directory, which must not be cleared or shared while the run is "
            "under way. Rerun."
        ) from e
    arrow = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    if arrow.num_rows != ref.num_rows:
        raise RuntimeError(
            f"Spill file {ref.path} has {arrow.num_rows} rows, its reference says "
            f"{ref.num_rows}: another attempt or run overwrote it (is a second run writing "
            "into the same output directory?). Rerun, one run per output directory."
        )
    return arrow

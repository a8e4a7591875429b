"""ReadShards: work units in, batches of encoded records and per-file summaries out.

Every record, good or failed, becomes exactly one `EncodedImage`, and every
input file gets one `ShardSummary` that counts them, so the run's ledger can
prove that no record was silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms.elements import (
    STAGE_READ,
    UNIT_IMAGE_FILES,
    UNIT_TFDS,
    UNIT_TFRECORD,
    EncodedBatch,
    EncodedImage,
    ImageRef,
    ShardSummary,
    StageError,
    WorkUnit,
    make_image_id,
)
from transforms.example_parsing import parse_example
from transforms.read_tfds import read_tfds_shard
from transforms.tfrecord_reader import TFRecordFrame, TFRecordFrameReader

_METRICS_NAMESPACE = "segbeam"
# error_type values, as they appear in the `errors` table.
UNREADABLE_FILE = "UnreadableFile"
READ_FAILED = "ReadFailed"

_ReadItem = EncodedImage | ShardSummary


class ReadShards(beam.PTransform):
    """Reads TFRecord shards, image files and TFDS shards into batches of encoded records.

    Input: `PCollection[WorkUnit]`, from `pipeline.inputs.plan_work_units`.

    Output: a dict of
      "batches": `PCollection[EncodedBatch]`, tuples of at most `batch_size`
        `EncodedImage`s, each batch from one work unit;
      "summaries": `PCollection[ShardSummary]`, one per input file.
    """

    def __init__(self, batch_size: int) -> None:
        """`batch_size` (>= 1) caps the number of records per output batch."""
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._batch_size = batch_size

    def expand(self, units: beam.PCollection[WorkUnit]) -> dict[str, beam.PCollection]:
        """Wires the read step and the two filters that split its union output."""
        mixed = units | "ReadWorkUnits" >> beam.ParDo(_ReadWorkUnitFn(self._batch_size))
        batches = mixed | "KeepBatches" >> beam.Filter(_is_batch).with_output_types(EncodedBatch)
        summaries = mixed | "KeepSummaries" >> beam.Filter(_is_summary).with_output_types(
            ShardSummary
        )
        return {"batches": batches, "summaries": summaries}


def _is_summary(item: EncodedBatch | ShardSummary) -> bool:
    return isinstance(item, ShardSummary)


def _is_batch(item: EncodedBatch | ShardSummary) -> bool:
    return not isinstance(item, ShardSummary)


class _ReadWorkUnitFn(beam.DoFn):
    """Reads one work unit; yields EncodedBatch tuples and ShardSummary elements.

    One output carrying a union (split downstream by two filters) instead of
    tagged outputs, because the DaskRunner merges tagged outputs into one bag.
    """

    def __init__(self, batch_size: int) -> None:
        self._batch_size = batch_size
        # Every record emitted, good or failed (as ShardSummary.num_records).
        self._records_read = Metrics.counter(_METRICS_NAMESPACE, "records_read")
        self._read_errors = Metrics.counter(_METRICS_NAMESPACE, "read_errors")

    def process(self, unit: WorkUnit) -> Iterator[EncodedBatch | ShardSummary]:
        pending: list[EncodedImage] = []
        for item in _read_unit(unit):
            if isinstance(item, ShardSummary):
                yield item
                continue
            self._records_read.inc()
            if item.error is not None:
                self._read_errors.inc()
            pending.append(item)
            if len(pending) == self._batch_size:
                yield tuple(pending)
                pending = []
        if pending:
            yield tuple(pending)


def _read_unit(unit: WorkUnit) -> Iterator[_ReadItem]:
    if unit.kind == UNIT_TFDS and unit.tfds is not None:
        yield from read_tfds_shard(unit.paths[0], unit.tfds)
        return
    if unit.kind == UNIT_TFRECORD:
        read_file = _read_tfrecord_file
    elif unit.kind == UNIT_IMAGE_FILES:
        read_file = _read_image_file
    else:
        raise ValueError(
            f"unknown work unit kind {unit.kind!r} (or a {UNIT_TFDS!r} unit without its "
            f"TfdsShard) for {unit.paths}; expected {UNIT_TFRECORD!r}, {UNIT_IMAGE_FILES!r} "
            f"or {UNIT_TFDS!r} (make units with plan_work_units)"
        )
    for path in unit.paths:
        yield from read_file(path)


def _read_tfrecord_file(source: str) -> Iterator[_ReadItem]:
    """Yields one EncodedImage per record of a TFRecord shard, then its ShardSummary."""
    try:
        stream = FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # noqa: BLE001
        # Whatever the filesystem raises (OSError locally, client errors on object
        # stores), an unopenable shard is one error row, not a failed run.
        yield _failed(source, 0, "", UNREADABLE_FILE, f"could not open {source}: {_describe(e)}")
        yield ShardSummary(source, num_records=1, num_read_errors=1, num_bytes=0)
        return
    with stream:
        reader = TFRecordFrameReader(stream, source)
        index = errors = 0
        try:
            for frame in reader:
                record = _record_from_frame(source, index, frame)
                errors += record.error is not None
                index += 1
                yield record
        except Exception as e:  # noqa: BLE001
            # An I/O failure mid-file (network, disk) must cost this shard's
            # remainder, not the run: it becomes one error row for the position
            # reached, which the summary counts.
            message = (
                f"reading {source} failed at record {index} (byte {reader.bytes_consumed}): "
                f"{_describe(e)}; the rest of the shard could not be read"
            )
            yield _failed(source, index, "", READ_FAILED, message)
            errors += 1
            index += 1
    yield ShardSummary(source, index, errors, reader.bytes_consumed)


def _record_from_frame(source: str, index: int, frame: TFRecordFrame) -> EncodedImage:
    if frame.data is None:
        return _failed(source, index, "", frame.error_type or READ_FAILED, frame.message)
    parsed = parse_example(frame.data)
    if isinstance(parsed, StageError):
        return _failed(source, index, "", parsed.error_type, f"{source}: {parsed.message}")
    return EncodedImage(
        ref=_ref(source, index),
        encoded=parsed.encoded,
        filename=parsed.filename,
        source_id=parsed.source_id,
        ground_truth=parsed.ground_truth,
    )


def _read_image_file(source: str) -> Iterator[_ReadItem]:
    """Yields the EncodedImage of one image file, then its ShardSummary."""
    filename = FileSystems.split(source)[1]
    try:
        with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
    except Exception as e:  # noqa: BLE001
        # Whatever the filesystem raises (permission, vanished file, object-store
        # client errors), an unreadable file is one error row, not a failed run.
        message = f"could not read {source}: {_describe(e)}"
        yield _failed(source, 0, filename, UNREADABLE_FILE, message)
        yield ShardSummary(source, num_records=1, num_read_errors=1, num_bytes=0)
        return
    yield EncodedImage(_ref(source, 0), data, filename, source_id="", ground_truth=None)
    yield ShardSummary(source, num_records=1, num_read_errors=0, num_bytes=len(data))


def _ref(source: str, index: int) -> ImageRef:
    return ImageRef(make_image_id(source, index), source, index)


def _failed(source: str, index: int, filename: str, error_type: str, message: str) -> EncodedImage:
    error = StageError(STAGE_READ, error_type, message)
    return EncodedImage(_ref(source, index), None, filename, "", None, error)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"

"""Tests for transforms/read.py: ReadShards on TFRecord shards and image files."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import read
from transforms.elements import (
    STAGE_READ,
    UNIT_IMAGE_FILES,
    UNIT_TFRECORD,
    EncodedImage,
    GroundTruth,
    ImageRef,
    ShardSummary,
    WorkUnit,
)
from transforms.read import ReadShards


def _id(source: str, index: int) -> str:
    # Computed here, not with make_image_id, so a change to the id scheme shows up.
    return hashlib.sha256(f"{source}#{index}".encode()).hexdigest()[:20]


def _ref(source: str, index: int) -> ImageRef:
    return ImageRef(_id(source, index), source, index)


def _feature(value: bytes | list[bytes] | list[int]) -> tf.train.Feature:
    if isinstance(value, bytes):
        value = [value]
    if value and isinstance(value[0], int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=value))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=value))


def _example(**features: bytes | list[bytes] | list[int]) -> bytes:
    """A serialized tf.train.Example; keyword names use "__" for "/"."""
    feature_map = {key.replace("__", "/"): _feature(v) for key, v in features.items()}
    return tf.train.Example(features=tf.train.Features(feature=feature_map)).SerializeToString()


def _write_shard(path: Path, records: list[bytes]) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _run(units: list[WorkUnit], batch_size: int, expected_batches, expected_summaries) -> None:
    with TestPipeline() as p:
        out = p | beam.Create(units) | ReadShards(batch_size)
        assert_that(out["batches"], expected_batches, label="CheckBatches")
        assert_that(out["summaries"], expected_summaries, label="CheckSummaries")


def _projected(project, expected):
    """A matcher comparing `project(batch)` of every batch with `expected`."""

    def check(batches):
        equal_to(expected)([project(batch) for batch in batches])

    return check


def _errors(batch):
    return tuple((r.ref.record_index, r.error.error_type if r.error else None) for r in batch)


def test_reads_records_with_ground_truth_in_order(tmp_path):
    gt_full = {
        "image__segmentation__class__encoded": b"semantic-png",
        "image__object__mask": [b"mask-a", b"mask-b"],
        "image__object__class__label": [5, 6],
    }
    records = [
        _example(
            image__encoded=b"img0", image__filename=b"a.jpg", image__source_id=b"7", **gt_full
        ),
        _example(image__encoded=b"img1", image__filename="ü x.jpg".encode()),
        _example(image__encoded=b"img2", image__object__class__label=[1, 2, 3]),
    ]
    source = _write_shard(tmp_path / "train.tfrecord", records)
    expected = [
        (
            EncodedImage(
                _ref(source, 0),
                b"img0",
                "a.jpg",
                "7",
                GroundTruth(b"semantic-png", (b"mask-a", b"mask-b"), (5, 6)),
            ),
            EncodedImage(_ref(source, 1), b"img1", "ü x.jpg", "", None),
        ),
        (EncodedImage(_ref(source, 2), b"img2", "", "", GroundTruth(None, (), (1, 2, 3))),),
    ]
    summary = ShardSummary(source, 3, 0, os.path.getsize(source))

    _run([WorkUnit(UNIT_TFRECORD, (source,))], 2, equal_to(expected), equal_to([summary]))


def test_corrupt_record_is_one_error_and_reading_continues(tmp_path):
    records = [_example(image__encoded=f"image number {i}".encode()) for i in range(5)]
    source = _write_shard(tmp_path / "s.tfrecord", records)
    data = bytearray(Path(source).read_bytes())
    frame = 16 + len(records[0])  # 12 bytes of header, the data, a 4-byte crc.
    data[2 * frame + 12 + 10] ^= 0xFF  # A byte inside record 2's data.
    Path(source).write_bytes(bytes(data))
    expected = [((0, None), (1, None), (2, "CorruptRecord"), (3, None), (4, None))]

    _run(
        [WorkUnit(UNIT_TFRECORD, (source,))],
        8,
        _projected(_errors, expected),
        equal_to([ShardSummary(source, 5, 1, len(data))]),
    )


def test_truncated_shard_ends_with_one_counted_error(tmp_path):
    records = [_example(image__encoded=b"x" * 50) for _ in range(5)]
    source = _write_shard(tmp_path / "s.tfrecord", records)
    frame = 16 + len(records[0])
    cut = 3 * frame + 30  # Inside record 3's data.
    Path(source).write_bytes(Path(source).read_bytes()[:cut])
    expected = [((0, None), (1, None), (2, None), (3, "TruncatedShard"))]

    _run(
        [WorkUnit(UNIT_TFRECORD, (source,))],
        8,
        _projected(_errors, expected),
        equal_to([ShardSummary(source, 4, 1, cut)]),
    )


def test_malformed_examples_become_named_errors(tmp_path):
    records = [
        b"\xff\xff\xff not a protobuf",
        _example(image__filename=b"no-image.jpg"),
        _example(image__encoded=[1, 2]),
        _example(
            image__encoded=b"i", image__object__mask=[b"m", b"n"], image__object__class__label=[3]
        ),
        _example(image__encoded=b"fine"),
    ]
    source = _write_shard(tmp_path / "s.tfrecord", records)
    error_types = ("InvalidExample", "MissingFeature", "WrongFeatureType", "InvalidFeature", None)

    def check(batches):
        (batch,) = batches
        assert tuple(r.error.error_type if r.error else None for r in batch) == error_types
        assert all(r.error.stage == STAGE_READ for r in batch[:4])
        assert "'image/encoded'" in batch[1].error.message
        assert "int64_list" in batch[2].error.message
        assert "bytes_list" in batch[2].error.message
        assert [r.encoded for r in batch] == [None, None, None, None, b"fine"]

    _run(
        [WorkUnit(UNIT_TFRECORD, (source,))],
        8,
        check,
        equal_to([ShardSummary(source, 5, 4, os.path.getsize(source))]),
    )


def test_batches_never_span_work_units_and_empty_shards_are_summarised(tmp_path):
    first = _write_shard(tmp_path / "a.tfrecord", [_example(image__encoded=b"a")] * 3)
    second = _write_shard(tmp_path / "b.tfrecord", [_example(image__encoded=b"b")] * 2)
    empty = _write_shard(tmp_path / "c.tfrecord", [])
    units = [WorkUnit(UNIT_TFRECORD, (path,)) for path in (first, second, empty)]

    def sources_and_sizes(batch):
        return (batch[0].ref.source, len(batch), len({r.ref.source for r in batch}))

    _run(
        units,
        4,
        _projected(sources_and_sizes, [(first, 3, 1), (second, 2, 1)]),
        equal_to(
            [
                ShardSummary(first, 3, 0, os.path.getsize(first)),
                ShardSummary(second, 2, 0, os.path.getsize(second)),
                ShardSummary(empty, 0, 0, 0),
            ]
        ),
    )


def test_image_files_are_read_whole_with_their_base_names(tmp_path):
    spaced = tmp_path / "Straße im Schnee 01.jpg"
    spaced.write_bytes(b"jpeg bytes")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    vanished = str(tmp_path / "vanished.png")
    paths = (str(spaced), str(empty), vanished)

    def check(batches):
        records = sorted((r for batch in batches for r in batch), key=lambda r: r.ref.source)
        assert sorted(len(batch) for batch in batches) == [1, 2]
        by_source = {r.ref.source: r for r in records}
        assert by_source[str(spaced)] == EncodedImage(
            _ref(str(spaced), 0), b"jpeg bytes", "Straße im Schnee 01.jpg", "", None
        )
        assert by_source[str(empty)] == EncodedImage(
            _ref(str(empty), 0), b"", "empty.png", "", None
        )
        failed = by_source[vanished]
        assert (failed.encoded, failed.filename) == (None, "vanished.png")
        assert (failed.error.stage, failed.error.error_type) == (STAGE_READ, "UnreadableFile")
        assert vanished in failed.error.message

    _run(
        [WorkUnit(UNIT_IMAGE_FILES, paths)],
        2,
        check,
        equal_to(
            [
                ShardSummary(str(spaced), 1, 0, len(b"jpeg bytes")),
                ShardSummary(str(empty), 1, 0, 0),
                ShardSummary(vanished, 1, 1, 0),
            ]
        ),
    )


class _FailingStream(io.BytesIO):
    """Serves the first `limit` bytes, then fails like a dropped network connection."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self._limit = limit

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self._limit:
            raise ConnectionResetError("connection reset by peer")
        size = self._limit - self.tell() if size is None or size < 0 else size
        return super().read(min(size, self._limit - self.tell()))


def test_io_error_mid_shard_becomes_a_counted_error(tmp_path, monkeypatch):
    records = [_example(image__encoded=b"y" * 40) for _ in range(4)]
    source = _write_shard(tmp_path / "s.tfrecord", records)
    data = Path(source).read_bytes()
    frame = len(data) // 4
    monkeypatch.setattr(
        FileSystems, "open", lambda path, **kwargs: _FailingStream(data, 2 * frame + 5)
    )

    outputs = list(read._ReadWorkUnitFn(batch_size=10).process(WorkUnit(UNIT_TFRECORD, (source,))))

    summaries = [o for o in outputs if isinstance(o, ShardSummary)]
    (batch,) = [o for o in outputs if not isinstance(o, ShardSummary)]
    assert _errors(batch) == ((0, None), (1, None), (2, "ReadFailed"))
    assert "ConnectionResetError" in batch[2].error.message
    assert "the rest of the shard could not be read" in batch[2].error.message
    assert summaries == [ShardSummary(source, 3, 1, 2 * frame + 5)]


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ReadShards(0)

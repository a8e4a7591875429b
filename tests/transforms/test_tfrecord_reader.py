"""Tests for transforms/tfrecord_reader.py against files written by TensorFlow itself."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import tensorflow as tf

from transforms.tfrecord_reader import (
    CORRUPT_LENGTH,
    CORRUPT_RECORD,
    TRUNCATED_SHARD,
    TFRecordFrameReader,
    masked_crc32c,
)

# Frame overhead: uint64 length + uint32 length crc before the data, uint32 crc after.
_HEAD = 12
_TAIL = 4
_RECORDS = [b"alpha", b"", b"a longer third record " * 10, b"\x00\xff" * 7, b"fifth"]


def _write_shard(path: Path, records: list[bytes]) -> bytes:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path.read_bytes()


def _offsets(records: list[bytes]) -> list[int]:
    offsets, position = [], 0
    for record in records:
        offsets.append(position)
        position += _HEAD + len(record) + _TAIL
    return offsets


def _frames(data: bytes, stream: io.RawIOBase | None = None) -> tuple[list, int]:
    reader = TFRecordFrameReader(stream or io.BytesIO(data), "shard.tfrecord")
    return list(reader), reader.bytes_consumed


class _OneByteStream(io.RawIOBase):
    """Returns at most one byte per read, like a slow network stream."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1) if size >= 0 else 1)


def test_masked_crc_matches_what_tensorflow_wrote(tmp_path):
    data = _write_shard(tmp_path / "s.tfrecord", [b"hello"])

    assert struct.unpack("<I", data[8:12])[0] == masked_crc32c(data[:8])
    assert struct.unpack("<I", data[17:21])[0] == masked_crc32c(b"hello")


def test_reads_every_record_of_a_tensorflow_shard(tmp_path):
    data = _write_shard(tmp_path / "s.tfrecord", _RECORDS)

    frames, consumed = _frames(data)

    assert [f.data for f in frames] == _RECORDS
    assert [f.offset for f in frames] == _offsets(_RECORDS)
    assert all(f.error_type is None for f in frames)
    assert consumed == len(data)


def test_short_reads_are_reassembled(tmp_path):
    data = _write_shard(tmp_path / "s.tfrecord", _RECORDS)

    frames, _ = _frames(data, _OneByteStream(data))

    assert [f.data for f in frames] == _RECORDS


def test_empty_file_has_no_frames():
    assert _frames(b"") == ([], 0)


def test_corrupt_data_skips_one_record_and_reads_on(tmp_path):
    data = bytearray(_write_shard(tmp_path / "s.tfrecord", _RECORDS))
    data[_offsets(_RECORDS)[2] + _HEAD + 3] ^= 0x01  # One bit inside record 2's data.

    frames, consumed = _frames(bytes(data))

    assert [f.error_type for f in frames] == [None, None, CORRUPT_RECORD, None, None]
    assert [f.data for f in frames] == [*_RECORDS[:2], None, *_RECORDS[3:]]
    assert f"byte {_offsets(_RECORDS)[2]}" in frames[2].message
    assert consumed == len(data)


def test_corrupt_length_ends_the_shard(tmp_path):
    data = bytearray(_write_shard(tmp_path / "s.tfrecord", _RECORDS))
    data[_offsets(_RECORDS)[3]] ^= 0x04  # The low byte of record 3's length.

    frames, _ = _frames(bytes(data))

    assert [f.error_type for f in frames] == [None, None, None, CORRUPT_LENGTH]
    assert "the rest of the shard could not be read" in frames[-1].message


def test_truncation_mid_record_ends_the_shard(tmp_path):
    data = _write_shard(tmp_path / "s.tfrecord", _RECORDS)
    cut = _offsets(_RECORDS)[2] + _HEAD + 20

    frames, consumed = _frames(data[:cut])

    assert [f.error_type for f in frames] == [None, None, TRUNCATED_SHARD]
    assert frames[-1].offset == _offsets(_RECORDS)[2]
    assert "the rest of the shard could not be read" in frames[-1].message
    assert consumed == cut


def test_truncation_inside_a_header_ends_the_shard(tmp_path):
    data = _write_shard(tmp_path / "s.tfrecord", _RECORDS)

    frames, _ = _frames(data[: _offsets(_RECORDS)[1] + 5])

    assert [f.error_type for f in frames] == [None, TRUNCATED_SHARD]


def test_huge_declared_length_reads_to_the_end_without_allocating_it():
    header = struct.pack("<Q", 2**62)
    data = header + struct.pack("<I", masked_crc32c(header)) + b"only a few bytes"

    frames, consumed = _frames(data)

    assert [f.error_type for f in frames] == [TRUNCATED_SHARD]
    assert consumed == len(data)

"""TFRecord framing, read record by record from a stream.

The format (as written by `tf.io.TFRecordWriter`) is a sequence of frames:

    uint64 length (little-endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

Reading it here, rather than with `tf.data.TFRecordDataset`, lets a damaged
shard degrade record by record: a frame whose data checksum is wrong is reported
and skipped (its length was verified, so the next frame is found), while a bad
length checksum or an early end of file stops the shard with one report, since
nothing after that point can be located.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import google_crc32c

# error_type values of the frames below, as they appear in the `errors` table.
CORRUPT_RECORD = "CorruptRecord"
CORRUPT_LENGTH = "CorruptLength"
TRUNCATED_SHARD = "TruncatedShard"

_HEADER = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
_UINT32 = 0xFFFFFFFF
# Reads are capped so that a huge declared length costs no huge allocation up front.
_MAX_READ = 16 * 1024 * 1024


class TFRecordFrame(NamedTuple):
    """One frame of a shard: its record's bytes, or why they could not be read."""

    offset: int  # Byte offset of the frame's length header in the file.
    data: bytes | None  # The record's payload; None when `error_type` is set.
    error_type: str | None  # CORRUPT_RECORD, CORRUPT_LENGTH or TRUNCATED_SHARD.
    message: str  # For a person; "" when the frame is good.


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of `data` (the checksum stored in TFRecord frames)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _UINT32


class TFRecordFrameReader:
    """Streams the frames of one TFRecord file without loading the file.

    Iterating yields one `TFRecordFrame` per frame. A CORRUPT_RECORD frame is
    followed by the next frame; a CORRUPT_LENGTH or TRUNCATED_SHARD frame is the
    last one. `bytes_consumed` tells how far into the file reading got, also
    after an exception raised by the underlying stream.
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        """Wraps an open binary stream; `name` only appears in error messages."""
        self._stream = stream
        self._name = name
        self._bytes_consumed = 0

    @property
    def bytes_consumed(self) -> int:
        """How many bytes have been read from the stream so far."""
        return self._bytes_consumed

    def __iter__(self) -> Iterator[TFRecordFrame]:
        """Yields the frames in file order; see the class docstring for errors."""
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            yield frame
            if frame.error_type in (CORRUPT_LENGTH, TRUNCATED_SHARD):
                return

    def _next_frame(self) -> TFRecordFrame | None:
        offset = self._bytes_consumed
        header = self._read_exactly(_HEADER.size)
        if not header:
            return None  # A clean end of file: between frames.
        length_crc = self._read_exactly(_CRC.size)
        if len(header) < _HEADER.size or len(length_crc) < _CRC.size:
            return self._truncated(offset, "inside a record's length header")
        if _CRC.unpack(length_crc)[0] != masked_crc32c(header):
            return self._fatal(
                offset,
                CORRUPT_LENGTH,
                "the record's length header fails its checksum, so the next record "
                "cannot be located",
            )
        (length,) = _HEADER.unpack(header)
        data = self._read_exactly(length)
        data_crc = self._read_exactly(_CRC.size)
        if len(data) < length or len(data_crc) < _CRC.size:
            return self._truncated(offset, f"inside a record of {length} bytes")
        if _CRC.unpack(data_crc)[0] != masked_crc32c(data):
            message = (
                f"record at byte {offset} of {self._name} fails its data checksum "
                "(the bytes were altered after writing); skipped it and read on"
            )
            return TFRecordFrame(offset, None, CORRUPT_RECORD, message)
        return TFRecordFrame(offset, data, None, "")

    def _truncated(self, offset: int, where: str) -> TFRecordFrame:
        return self._fatal(
            offset,
            TRUNCATED_SHARD,
            f"the file ends {where} (it was cut short, e.g. by an interrupted copy)",
        )

    def _fatal(self, offset: int, error_type: str, reason: str) -> TFRecordFrame:
        message = (
            f"{self._name} at byte {offset}: {reason}; the rest of the shard could not be "
            f"read. Re-copy or regenerate the shard."
        )
        return TFRecordFrame(offset, None, error_type, message)

    def _read_exactly(self, size: int) -> bytes:
        # A stream may return short reads before the end (e.g. object-store
        # downloaders), so keep reading until `size` bytes or end of file.
        chunks: list[bytes] = []
        remaining = size
        while remaining > 0:
            chunk = self._stream.read(min(remaining, _MAX_READ))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
            self._bytes_consumed += len(chunk)
        return b"".join(chunks)

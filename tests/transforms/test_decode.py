"""Tests for transforms/decode.py and transforms/image_header.py.

The corpus is made at test time with Pillow's encoders; every expected pixel
value is written down by hand from how the fixture was built.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image, features

from transforms.decode import DecodeImages, decode_image, decode_record
from transforms.elements import (
    STAGE_DECODE,
    STAGE_READ,
    UNIT_TFRECORD,
    EncodedImage,
    GroundTruth,
    ImageRef,
    StageError,
    WorkUnit,
)
from transforms.image_header import allow_pillow_up_to
from transforms.read import ReadShards

_LIMIT = 10_000_000
_RED = (255, 0, 0)
_BLUE = (0, 0, 255)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height RGB, followed by no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _rgb(height: int, width: int, color: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.uint8), (height, width, 3))


def _decoded(encoded: bytes, limit: int = _LIMIT) -> np.ndarray:
    pixels = decode_image(encoded, limit)
    assert isinstance(pixels, np.ndarray), pixels
    assert pixels.dtype == np.uint8
    assert pixels.ndim == 3
    assert pixels.shape[2] == 3
    return pixels


def _error(encoded: bytes, limit: int = _LIMIT) -> StageError:
    error = decode_image(encoded, limit)
    assert isinstance(error, StageError), f"decoded to pixels of shape {error.shape}"
    assert error.stage == STAGE_DECODE
    return error


def test_grayscale_is_replicated_to_three_channels():
    gray = np.array([[0, 1, 2], [100, 200, 255]], np.uint8)

    pixels = _decoded(_encode(Image.fromarray(gray, "L"), "PNG"))

    np.testing.assert_array_equal(pixels, np.stack([gray] * 3, axis=2))


def test_gray_with_alpha_drops_the_alpha():
    la = np.dstack([np.full((2, 2), 77, np.uint8), np.full((2, 2), 9, np.uint8)])

    np.testing.assert_array_equal(_decoded(_encode(Image.fromarray(la, "LA"), "PNG")), 77)


def test_rgba_drops_alpha_without_compositing():
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 128], [70, 80, 90, 255]]], np.uint8)

    pixels = _decoded(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))

    np.testing.assert_array_equal(pixels, rgba[:, :, :3])


def test_palette_indices_are_expanded_through_the_palette():
    palette = [[12, 34, 56], [200, 100, 0], [1, 2, 3]]
    indices = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([channel for color in palette for channel in color])

    pixels = _decoded(_encode(image, "PNG"))

    np.testing.assert_array_equal(pixels, np.array(palette, np.uint8)[indices])


def test_cmyk_jpeg_converts_to_rgb():
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, :16] = (255, 0, 0, 0)  # Full cyan ink: no red.
    cmyk[:, 16:] = (0, 0, 0, 128)  # Half black ink: mid gray.

    pixels = _decoded(_encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95))

    assert pixels.shape == (16, 32, 3)
    np.testing.assert_allclose(pixels[8, 8], (0, 255, 255), atol=3)
    np.testing.assert_allclose(pixels[8, 24], (127, 127, 127), atol=3)


def test_16_bit_png_is_scaled_not_clipped():
    samples = np.array([[0, 255, 256, 0x1234, 0x8000, 65535]], np.uint16)

    pixels = _decoded(_encode(Image.fromarray(samples), "PNG"))

    expected = np.array([[0, 0, 1, 0x12, 0x80, 255]], np.uint8)
    np.testing.assert_array_equal(pixels, np.stack([expected] * 3, axis=2))


def test_one_by_one_image():
    pixels = _decoded(_encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"))

    np.testing.assert_array_equal(pixels, [[[9, 8, 7]]])


def test_exif_orientation_6_is_applied():
    # Stored 32 wide x 16 high, red 8x8 block at the stored top-left corner.
    stored = np.array(_rgb(16, 32, _BLUE))
    stored[:8, :8] = _RED
    exif = Image.Exif()
    exif[0x0112] = 6  # "Rotate 90 CW to display": the stored top-left shows top-right.

    pixels = _decoded(_encode(Image.fromarray(stored), "JPEG", exif=exif, quality=95))

    assert pixels.shape == (32, 16, 3)
    np.testing.assert_allclose(pixels[3, 12], _RED, atol=8)
    np.testing.assert_allclose(pixels[3, 3], _BLUE, atol=8)
    np.testing.assert_allclose(pixels[28, 12], _BLUE, atol=8)


def test_animated_gif_decodes_its_first_frame():
    first = Image.new("RGB", (8, 6), _RED)
    second = Image.new("RGB", (8, 6), _BLUE)
    gif = _encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)

    np.testing.assert_array_equal(_decoded(gif), _rgb(6, 8, _RED))


@pytest.mark.skipif(not features.check("webp"), reason="this Pillow build has no WebP codec")
def test_lossless_webp():
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)

    pixels = _decoded(_encode(Image.fromarray(rgb), "WEBP", lossless=True))

    np.testing.assert_array_equal(pixels, rgb)


def test_bilevel_bmp():
    bits = np.array([[True, False], [False, True]])

    pixels = _decoded(_encode(Image.fromarray(bits), "BMP"))

    np.testing.assert_array_equal(pixels[:, :, 0], [[255, 0], [0, 255]])


def test_empty_bytes():
    assert _error(b"").error_type == "EmptyImage"


def test_random_bytes_are_described():
    data = bytes(range(200, 256)) * 4

    error = _error(data)

    assert error.error_type == "UnsupportedFormat"
    assert repr(data[:16]) in error.message


def test_html_saved_as_jpg(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")

    error = _error(path.read_bytes())

    assert error.error_type == "UnsupportedFormat"
    assert "<!DOCTYPE html>" in error.message
    assert "text" in error.message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_an_error_not_a_partial_image(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    encoded = _encode(Image.fromarray(noise), fmt)

    error = _error(encoded[: len(encoded) // 2])

    assert error.error_type == "TruncatedImage"
    assert fmt in error.message


def test_bomb_header_is_refused_by_the_default_limit():
    error = decode_image(_png_header_only(30000, 30000), 89_478_485)

    assert isinstance(error, StageError)
    assert error.error_type == "ImageTooLarge"


def test_size_limit_is_checked_on_the_header_before_any_decoding():
    # The file has no pixel data, so decoding it would fail as damaged, not too large.
    header_only = _png_header_only(100, 100)

    assert _error(header_only, limit=100 * 100 - 1).error_type == "ImageTooLarge"
    assert _error(header_only, limit=100 * 100).error_type != "ImageTooLarge"


def _record(index: int, encoded: bytes | None, error: StageError | None = None) -> EncodedImage:
    ref = ImageRef(f"id{index}", "/data/files", index)
    return EncodedImage(ref, encoded, f"file {index}.png", f"s{index}", None, error)


def test_read_errors_pass_through_and_hash_is_of_the_encoded_bytes():
    read_error = StageError(STAGE_READ, "CorruptRecord", "bad crc")
    png = _encode(Image.new("RGB", (3, 2), _RED), "PNG")

    failed = decode_record(_record(0, None, read_error), _LIMIT)
    good = decode_record(_record(1, png), _LIMIT)

    assert (failed.error, failed.pixels, failed.content_sha256) == (read_error, None, "")
    assert good.error is None
    assert (good.width, good.height) == (3, 2)
    assert good.content_sha256 == hashlib.sha256(png).hexdigest()
    assert (good.filename, good.source_id) == ("file 1.png", "s1")


def _summary(batch) -> tuple:
    return tuple(
        (
            image.ref.image_id,
            image.error.error_type if image.error else None,
            None if image.pixels is None else image.pixels.shape,
            (image.width, image.height),
            image.content_sha256,
        )
        for image in batch
    )


def test_decode_images_keeps_batches_whole_and_in_order():
    png = _encode(Image.new("RGB", (4, 3), _BLUE), "PNG")
    read_error = StageError(STAGE_READ, "UnreadableFile", "gone")
    batches = [
        (_record(0, png), _record(1, b""), _record(2, None, read_error)),
        (_record(3, b"not an image at all"),),
    ]
    sha = hashlib.sha256
    expected = [
        (
            ("id0", None, (3, 4, 3), (4, 3), sha(png).hexdigest()),
            ("id1", "EmptyImage", None, (0, 0), sha(b"").hexdigest()),
            ("id2", "UnreadableFile", None, (0, 0), ""),
        ),
        (("id3", "UnsupportedFormat", None, (0, 0), sha(b"not an image at all").hexdigest()),),
    ]

    with TestPipeline() as p:
        decoded = p | beam.Create(batches) | DecodeImages()
        assert_that(decoded | beam.Map(_summary), equal_to(expected))


def test_shard_with_corrupt_images_reads_all_and_decodes_the_rest(tmp_path):
    garbage = {3, 11, 17}
    shard = str(tmp_path / "mixed.tfrecord")
    with tf.io.TFRecordWriter(shard) as writer:
        for i in range(20):
            image = (
                b"\x00garbage" * i if i in garbage else _encode(Image.new("L", (i + 1, 2)), "PNG")
            )
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())

    def outcomes(batch):
        return [
            (i.ref.record_index, i.error.error_type if i.error else None, i.width) for i in batch
        ]

    expected = [
        (i, "UnsupportedFormat", 0) if i in garbage else (i, None, i + 1) for i in range(20)
    ]

    with TestPipeline() as p:
        read = p | beam.Create([WorkUnit(UNIT_TFRECORD, (shard,))]) | ReadShards(batch_size=6)
        decoded = read["batches"] | DecodeImages()
        assert_that(
            read["batches"] | "ReadBatchSizes" >> beam.Map(len),
            equal_to([6, 6, 6, 2]),
            label="TwentyRecordsRead",
        )
        assert_that(
            decoded | "Outcomes" >> beam.FlatMap(outcomes),
            equal_to(expected),
            label="SeventeenDecoded",
        )


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_image_pixels must be >= 1"):
        DecodeImages(0)


def test_ground_truth_is_carried_through():
    gt = GroundTruth(b"sem", (b"m",), (4,))
    record = _record(0, _encode(Image.new("RGB", (2, 2)), "PNG"))._replace(ground_truth=gt)

    assert decode_record(record, _LIMIT).ground_truth == gt


def test_pillow_limit_is_only_ever_raised(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)

    allow_pillow_up_to(500)
    assert Image.MAX_IMAGE_PIXELS == 1000
    allow_pillow_up_to(5000)
    assert Image.MAX_IMAGE_PIXELS == 5000

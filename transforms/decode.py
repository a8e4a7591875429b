"""DecodeImages: batches of encoded records in, batches of RGB uint8 pixel arrays out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from PIL import Image, ImageOps

from transforms.elements import (
    STAGE_DECODE,
    DecodedBatch,
    DecodedImage,
    EncodedBatch,
    EncodedImage,
    StageError,
)
from transforms.image_header import allow_pillow_up_to, describe_failure, open_image

# Pillow's own default (its `Image.MAX_IMAGE_PIXELS`): about a 9459 x 9459 image.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
UNSUPPORTED_MODE = "UnsupportedMode"

_METRICS_NAMESPACE = "segbeam"
# Integer modes deeper than 8 bits, which Pillow's convert("RGB") would clip.
_WIDE_INTEGER_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


class DecodeImages(beam.PTransform):
    """Decodes every record of every batch with Pillow.

    Input: `PCollection[EncodedBatch]`.

    Output: `PCollection[DecodedBatch]`, one batch per input batch, same length
    and order. A decoded image's `pixels` is uint8 [height, width, 3] RGB in
    display orientation (EXIF orientation applied); a record that failed here or
    earlier carries its `StageError` and `pixels=None`.
    """

    def __init__(self, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        """`max_image_pixels`: images with more pixels (per their header) are refused."""
        super().__init__()
        if max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be >= 1, got {max_image_pixels}")
        self._max_image_pixels = max_image_pixels

    def expand(self, batches: beam.PCollection[EncodedBatch]) -> beam.PCollection[DecodedBatch]:
        """Wires the one decode step."""
        return batches | "DecodeBatches" >> beam.ParDo(_DecodeBatchFn(self._max_image_pixels))


class _DecodeBatchFn(beam.DoFn):
    """Decodes one EncodedBatch into one DecodedBatch."""

    def __init__(self, max_image_pixels: int) -> None:
        self._max_image_pixels = max_image_pixels
        self._decoded = Metrics.counter(_METRICS_NAMESPACE, "images_decoded")
        self._errors = Metrics.counter(_METRICS_NAMESPACE, "decode_errors")

    def setup(self) -> None:
        allow_pillow_up_to(self._max_image_pixels)

    def process(self, batch: EncodedBatch) -> Iterator[DecodedBatch]:
        decoded = tuple(decode_record(record, self._max_image_pixels) for record in batch)
        for image in decoded:
            if image.error is None:
                self._decoded.inc()
            elif image.error.stage == STAGE_DECODE:
                # Records that failed earlier are counted by the stage that failed them.
                self._errors.inc()
        yield decoded


def decode_record(record: EncodedImage, max_image_pixels: int) -> DecodedImage:
    """Decodes one record; a record that arrives with an error passes through with it."""
    sha256 = hashlib.sha256(record.encoded).hexdigest() if record.encoded is not None else ""
    if record.error is not None or record.encoded is None:
        error = record.error or StageError(
            STAGE_DECODE, "MissingImageBytes", "the record carries neither bytes nor an error"
        )
        return _failed(record, sha256, error)
    pixels = decode_image(record.encoded, max_image_pixels)
    if isinstance(pixels, StageError):
        return _failed(record, sha256, pixels)
    height, width, _ = pixels.shape
    return DecodedImage(
        ref=record.ref,
        pixels=pixels,
        width=width,
        height=height,
        filename=record.filename,
        source_id=record.source_id,
        content_sha256=sha256,
        ground_truth=record.ground_truth,
    )


def decode_image(encoded: bytes, max_image_pixels: int) -> np.ndarray | StageError:
    """Decodes an encoded image file to display-oriented RGB.

    Args:
      encoded: The file's bytes (JPEG, PNG, GIF, WebP, BMP, TIFF, ...).
      max_image_pixels: Largest width * height decoded; checked on the header.

    Returns:
      uint8 [height, width, 3] RGB (animations: the first frame), or a
      decode-stage StageError saying why not.
    """
    image = open_image(encoded, max_image_pixels)
    if isinstance(image, StageError):
        return image
    with image:
        try:
            image.load()
            oriented = ImageOps.exif_transpose(image)
            return to_rgb(oriented)
        except _UnsupportedModeError as e:
            return StageError(STAGE_DECODE, UNSUPPORTED_MODE, str(e))
        except Exception as e:  # noqa: BLE001
            # Pillow's decoders raise many exception types on damaged data
            # (OSError, SyntaxError, ValueError, struct.error, ...); each must
            # become an error row for this record, not a failed bundle.
            return describe_failure(e, encoded)


class _UnsupportedModeError(ValueError):
    """Pillow decoded the image into a mode with no RGB conversion."""


def to_rgb(image: Image.Image) -> np.ndarray:
    """Converts a decoded image of any Pillow mode to uint8 [height, width, 3] RGB.

    Alpha is dropped (not composited); palettes are expanded; CMYK goes through
    Pillow's conversion; 16-bit samples are scaled to 8 bits (value >> 8), not
    clipped, so a 16-bit image keeps its contrast.
    """
    if image.mode in _WIDE_INTEGER_MODES:
        samples = np.asarray(image).astype(np.int64)
        gray = np.clip(samples >> 8, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    try:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    except ValueError as e:
        raise _UnsupportedModeError(
            f"Pillow cannot convert this image's mode {image.mode!r} to RGB ({e}); "
            "re-export it as 8-bit RGB or grayscale"
        ) from e
    return np.array(rgb, dtype=np.uint8)


def _failed(record: EncodedImage, sha256: str, error: StageError) -> DecodedImage:
    return DecodedImage(
        ref=record.ref,
        pixels=None,
        width=0,
        height=0,
        filename=record.filename,
        source_id=record.source_id,
        content_sha256=sha256,
        ground_truth=record.ground_truth,
        error=error,
    )

"""Opening encoded images header-first, and naming what went wrong when that fails.

`Image.open` only parses the header, so an image's size is known, and a
decompression bomb refused, before a single pixel is decoded.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from transforms.elements import STAGE_DECODE, StageError

# error_type values, as they appear in the `errors` table.
EMPTY_IMAGE = "EmptyImage"
UNSUPPORTED_FORMAT = "UnsupportedFormat"
TRUNCATED_IMAGE = "TruncatedImage"
CORRUPT_IMAGE = "CorruptImage"
IMAGE_TOO_LARGE = "ImageTooLarge"

# Leading bytes of the formats people most often feed in, to tell "not an image"
# apart from "an image that is damaged".
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_DESCRIBED_BYTES = 16


def allow_pillow_up_to(max_image_pixels: int) -> None:
    """Makes sure Pillow's own bomb guard does not refuse what `max_image_pixels` allows.

    Pillow keeps its limit in a process-wide global (`Image.MAX_IMAGE_PIXELS`,
    raising `DecompressionBombError` above twice that). It is only ever raised
    here, never lowered, so other code in the process keeps at least its guard;
    our own, exact limit is applied by `open_image`.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and max_image_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_image_pixels


def open_image(encoded: bytes, max_image_pixels: int) -> Image.Image | StageError:
    """Parses an encoded image's header without decoding its pixels.

    Args:
      encoded: The image file's bytes.
      max_image_pixels: Largest width * height accepted.

    Returns:
      The lazily opened image (caller closes it), or a decode-stage StageError:
      EmptyImage, UnsupportedFormat, ImageTooLarge, TruncatedImage or CorruptImage.
    """
    if not encoded:
        return StageError(STAGE_DECODE, EMPTY_IMAGE, "the record holds 0 bytes of image data")
    try:
        with warnings.catch_warnings():
            # Pillow warns of large images on open; the exact check below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(encoded))
    except Exception as e:  # noqa: BLE001
        # Pillow's format plugins raise many exception types (OSError,
        # SyntaxError, struct.error, ValueError, ...) on hostile bytes; each must
        # become an error row for this record, not a failed bundle.
        return describe_failure(e, encoded)
    width, height = image.size
    if width * height > max_image_pixels:
        image.close()
        message = (
            f"the header declares {width}x{height} = {width * height} pixels, over the "
            f"limit of {max_image_pixels}; refused before decoding as a possible "
            "decompression bomb. Raise --max_image_pixels if such images are expected."
        )
        return StageError(STAGE_DECODE, IMAGE_TOO_LARGE, message)
    return image


def describe_failure(error: Exception, encoded: bytes) -> StageError:
    """Turns an exception raised by Pillow on `encoded` into a decode-stage StageError."""
    detail = f"{type(error).__name__}: {error}"
    if isinstance(error, Image.DecompressionBombError):
        message = (
            f"Pillow refused it as a possible decompression bomb ({detail}); raise "
            "--max_image_pixels if such images are expected"
        )
        return StageError(STAGE_DECODE, IMAGE_TOO_LARGE, message)
    signature = sniff_format(encoded)
    if isinstance(error, UnidentifiedImageError) and signature is None:
        message = (
            f"not an image in a format Pillow reads; {describe_leading_bytes(encoded)}. "
            "Check that the record holds an encoded image file (JPEG, PNG, ...)."
        )
        return StageError(STAGE_DECODE, UNSUPPORTED_FORMAT, message)
    kind = f"{signature} image" if signature else "image"
    if isinstance(error, UnidentifiedImageError):
        # Pillow's message only names the in-memory buffer, so it is left out.
        message = (
            f"the data starts like a {signature} file ({len(encoded)} bytes) but Pillow "
            "could not parse its header: the file is damaged or cut short"
        )
        return StageError(STAGE_DECODE, CORRUPT_IMAGE, message)
    if isinstance(error, EOFError) or "truncat" in str(error).lower():
        message = (
            f"the {kind} ({len(encoded)} bytes) is truncated ({detail}); the file was cut "
            "short: re-copy or re-export it"
        )
        return StageError(STAGE_DECODE, TRUNCATED_IMAGE, message)
    message = f"the {kind} ({len(encoded)} bytes) is damaged and could not be decoded ({detail})"
    return StageError(STAGE_DECODE, CORRUPT_IMAGE, message)


def sniff_format(encoded: bytes) -> str | None:
    """The format named by the leading magic bytes, e.g. "PNG", or None."""
    if encoded[:4] == b"RIFF" and encoded[8:12] == b"WEBP":
        return "WebP"
    for signature, name in _SIGNATURES:
        if encoded.startswith(signature):
            return name
    return None


def describe_leading_bytes(encoded: bytes) -> str:
    """A short description of the first bytes, e.g. for HTML saved under a .jpg name."""
    head = encoded[:_DESCRIBED_BYTES]
    looks_like_text = all(32 <= b < 127 or b in b"\t\r\n" for b in head)
    kind = " (looks like text, e.g. HTML or an error page)" if looks_like_text else ""
    return f"{len(encoded)} bytes starting with {head!r}{kind}"

"""The original pixels of the report's gallery images, read back from the run's inputs.

The tables keep no pixels, only where each image came from (`source`,
`record_index`), so the overlays re-read the inputs: for a TFRecord shard the
record at `record_index` (its `image/encoded`), for an image file the file
itself, decoded exactly as the pipeline decodes them. An input that has moved,
changed or become unreadable since the run costs only its overlay's
background, never the report.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.inputs import is_tfrecord_path
from pipeline.report_data import GalleryImage
from transforms.decode import decode_image
from transforms.elements import StageError
from transforms.example_parsing import parse_example
from transforms.image_header import allow_pillow_up_to
from transforms.tfrecord_reader import TFRecordFrameReader

# Either uint8 [height, width, 3] RGB pixels, or why they are unavailable.
Original = np.ndarray | str


def load_originals(images: Sequence[GalleryImage]) -> dict[str, Original]:
    """The display-oriented RGB pixels of each image, by image_id.

    Args:
      images: Rows of the images table; each TFRecord shard is read once, up
        to the last record wanted from it.

    Returns:
      image_id -> uint8 [height, width, 3] RGB, or a sentence saying why the
      original could not be shown (missing input, changed content, ...).
    """
    by_source: dict[str, list[GalleryImage]] = collections.defaultdict(list)
    for image in images:
        by_source[image.source].append(image)
    originals: dict[str, Original] = {}
    for source, wanted in by_source.items():
        try:
            encoded = dict(_encoded_records(source, wanted))
        except Exception as e:  # noqa: BLE001
            # Whatever the filesystem raises (OSError, object-store client
            # errors, a truncated shard), the report still renders, with the
            # reason in place of these images' backgrounds.
            reason = f"could not read {source}: {type(e).__name__}: {e}"
            originals.update({image.image_id: reason for image in wanted})
            continue
        for image in wanted:
            originals[image.image_id] = _decode(image, encoded.get(image.image_id))
    return originals


def _encoded_records(
    source: str, wanted: Sequence[GalleryImage]
) -> Iterator[tuple[str, bytes | str]]:
    """Yields (image_id, encoded image bytes or the reason they are missing)."""
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        if not is_tfrecord_path(source):
            data = stream.read()
            yield from ((image.image_id, data) for image in wanted)
            return
        by_index = {image.record_index: image.image_id for image in wanted}
        last = max(by_index)
        for index, frame in enumerate(TFRecordFrameReader(stream, source)):
            if index in by_index:
                yield by_index[index], _record_image(source, index, frame.data, frame.message)
            if index >= last:
                return


def _record_image(source: str, index: int, data: bytes | None, problem: str) -> bytes | str:
    if data is None:
        return f"record {index} of {source} is unreadable now: {problem}"
    parsed = parse_example(data)
    if isinstance(parsed, StageError):
        return f"record {index} of {source} no longer parses: {parsed.message}"
    return parsed.encoded


def _decode(image: GalleryImage, encoded: bytes | str | None) -> Original:
    if encoded is None:
        return (
            f"{image.source} has no record {image.record_index} any more "
            "(the shard was replaced or truncated since the run)"
        )
    if isinstance(encoded, str):
        return encoded
    # The run decoded this image, so its own size is the bomb-guard limit that fits.
    limit = max(1, image.width * image.height)
    allow_pillow_up_to(limit)
    pixels = decode_image(encoded, limit)
    if isinstance(pixels, StageError):
        return f"the input no longer decodes: {pixels.message}"
    height, width, _ = pixels.shape
    if (width, height) != (image.width, image.height):
        return (
            f"the input is now {width}x{height} pixels but the run saw "
            f"{image.width}x{image.height}: it changed since the run"
        )
    return pixels

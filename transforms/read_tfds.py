"""Reading one shard file of a prepared TFDS split with TFDS's own reader.

Called by `transforms.read.ReadShards` for `UNIT_TFDS` work units (planned by
`pipeline.tfds_inputs`). Images and masks are read still encoded
(`tfds.decode.SkipDecoding`), so the pipeline's own decoder, with its
decompression-bomb guard and error rows, decodes them like any other input;
features segbeam does not use are not decoded at all (`PartialDecoding`).

Like every reader, it emits one `EncodedImage` per record, good or failed, then
one `ShardSummary` for the shard's `source`, so the ledger can account for it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from transforms.elements import (
    STAGE_READ,
    EncodedImage,
    GroundTruth,
    ImageRef,
    ShardSummary,
    StageError,
    TfdsFeatureKeys,
    TfdsShard,
    make_image_id,
)

# error_type values, as they appear in the `errors` table.
UNREADABLE_DATASET = "UnreadableDataset"
READ_FAILED = "ReadFailed"  # The same kind transforms.read uses for a shard failing midway.
MISSING_FEATURE = "MissingFeature"  # The same kind example parsing uses for an empty image.

# Builders (each holds the dataset's parsed info) reused across a worker's work units.
_BUILDER_CACHE_SIZE = 8

_Example = Mapping[str, Any]  # One example as `as_numpy_iterator` yields it.


def read_tfds_shard(source: str, shard: TfdsShard) -> Iterator[EncodedImage | ShardSummary]:
    """Yields one EncodedImage per example of the shard, then the shard's ShardSummary.

    Args:
      source: The shard's `tfds://` URI: every record's `source`; with the
        example's 0-based index within the shard, it makes the image id.
      shard: Where the shard is and how its features map to segbeam's.
    """
    try:
        examples, num_bytes = _open_shard(shard)
    except Exception as e:  # noqa: BLE001
        # Whatever the dataset directory's filesystem or TFDS raises (a moved or
        # re-prepared dataset, object-store errors), it costs this shard one error
        # row, not the run.
        message = f"could not open TFDS shard {shard.file} for {source}: {_describe(e)}"
        yield _failed(source, 0, UNREADABLE_DATASET, message)
        yield ShardSummary(source, num_records=1, num_read_errors=1, num_bytes=0)
        return
    index = errors = 0
    try:
        for example in examples:
            record = record_from_example(source, index, example, shard.features)
            errors += record.error is not None
            index += 1
            yield record
    except Exception as e:  # noqa: BLE001
        # A corrupt record (tf.errors.DataLossError) or an I/O failure midway
        # costs the shard's remainder: one error row at the position reached.
        message = (
            f"reading TFDS shard {shard.file} failed at example {index}: {_describe(e)}; "
            "the rest of the shard could not be read"
        )
        yield _failed(source, index, READ_FAILED, message)
        errors += 1
        index += 1
    yield ShardSummary(source, index, errors, num_bytes)


def record_from_example(
    source: str, index: int, example: _Example, keys: TfdsFeatureKeys
) -> EncodedImage:
    """Maps one TFDS example (numpy values, images still encoded) to an EncodedImage.

    Args:
      source, index: The record's shard URI and 0-based index within the shard.
      example: Feature name -> value: bytes for encoded images and text, numpy
        scalars for numbers; a Sequence of dicts is a dict of arrays, e.g.
        {"mask": object array [N] of PNG bytes, "label": int64 [N]}.
      keys: Which features to read (`pipeline.tfds_inputs.feature_keys`).

    Returns:
      The record; an error record if the image bytes are empty.
    """
    encoded = bytes(example[keys.image])
    if not encoded:
        message = f"{source} example {index}: image feature {keys.image!r} is empty"
        return _failed(source, index, MISSING_FEATURE, message)
    return EncodedImage(
        ref=_ref(source, index),
        encoded=encoded,
        filename=_text(example[keys.filename]) if keys.filename else "",
        source_id=_text(example[keys.source_id]) if keys.source_id else "",
        ground_truth=_ground_truth(example, keys),
    )


def _ground_truth(example: _Example, keys: TfdsFeatureKeys) -> GroundTruth | None:
    if keys.semantic is None and keys.objects is None:
        return None
    masks: tuple[bytes, ...] = ()
    labels: tuple[int, ...] = ()
    if keys.objects is not None:
        objects = example[keys.objects]
        masks = tuple(bytes(mask) for mask in objects[keys.object_mask])
        labels = tuple(int(label) for label in objects[keys.object_label])
    semantic = bytes(example[keys.semantic]) if keys.semantic else None
    return GroundTruth(semantic_png=semantic, instance_mask_pngs=masks, instance_class_ids=labels)


def _open_shard(shard: TfdsShard) -> tuple[Iterator[_Example], int]:
    """The shard's examples (images encoded) and the shard file's size in bytes.

    Raises:
      ValueError: if the split's examples [start, start + num_examples) are no
        longer exactly this shard file (the dataset was prepared again).
    """
    builder = _builder(shard.dataset_dir)
    instruction = tfds.core.ReadInstruction(
        shard.split, from_=shard.start, to=shard.start + shard.num_examples, unit="abs"
    )
    files = [i.filename for i in builder.info.splits[instruction].file_instructions]
    if [epath.Path(f).name for f in files] != [epath.Path(shard.file).name]:
        raise ValueError(
            f"examples {shard.start}..{shard.start + shard.num_examples - 1} of split "
            f"{shard.split!r} are now in {files}, not in {shard.file}: the dataset was "
            "prepared again after this run was planned; rerun to plan it afresh"
        )
    num_bytes = epath.Path(shard.file).stat().length
    dataset = builder.as_dataset(
        split=instruction,
        decoders=_decoders(shard.features),
        # Records in file order, so an example's index within the shard is stable.
        shuffle_files=False,
        read_config=tfds.ReadConfig(try_autocache=False),
    )
    return dataset.as_numpy_iterator(), num_bytes


def _decoders(keys: TfdsFeatureKeys) -> tfds.decode.PartialDecoding:
    """Decodes only the features segbeam reads, and leaves images encoded."""
    wanted: dict[str, Any] = {keys.image: True}
    skip: dict[str, Any] = {keys.image: tfds.decode.SkipDecoding()}
    for key in (keys.filename, keys.source_id):
        if key is not None:
            wanted[key] = True
    if keys.semantic is not None:
        wanted[keys.semantic] = True
        skip[keys.semantic] = tfds.decode.SkipDecoding()
    if keys.objects is not None:
        wanted[keys.objects] = {keys.object_mask: True, keys.object_label: True}
        skip[keys.objects] = {keys.object_mask: tfds.decode.SkipDecoding()}
    return tfds.decode.PartialDecoding(wanted, decoders=skip)


@functools.lru_cache(maxsize=_BUILDER_CACHE_SIZE)
def _builder(dataset_dir: str) -> tfds.core.DatasetBuilder:
    return tfds.builder_from_directory(dataset_dir)


def _text(value: bytes | str | np.generic | int) -> str:
    if isinstance(value, bytes):
        # Names are informational; an undecodable byte must not cost the image.
        return value.decode("utf-8", errors="replace")
    return str(value.item() if isinstance(value, np.generic) else value)


def _ref(source: str, index: int) -> ImageRef:
    return ImageRef(make_image_id(source, index), source, index)


def _failed(source: str, index: int, error_type: str, message: str) -> EncodedImage:
    error = StageError(STAGE_READ, error_type, message)
    return EncodedImage(_ref(source, index), None, "", "", None, error)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"

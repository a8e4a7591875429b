"""Input planning: turn `--input` patterns into the pipeline's work units.

Runs in the driver before the pipeline starts, so a typo in `--input` fails in
seconds with a clear message instead of producing an empty run, and the set of
inputs is fixed (and logged by the caller) before any worker reads a byte.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipeline.tfds_inputs import is_tfds_pattern, plan_tfds_units
from transforms.elements import UNIT_IMAGE_FILES, UNIT_TFRECORD, WorkUnit

# `train.tfrecord`, `val.tfrecords`, `x.tfrec`, `coco.record`, each optionally
# with the sharded-output suffix TF and Beam writers add: `-00003-of-00010`.
_TFRECORD_NAME = re.compile(r"\.(tfrecords?|tfrec|record)(-\d+-of-\d+)?$", re.IGNORECASE)


def split_patterns(text: str) -> tuple[str, ...]:
    """Splits the `--input` flag's comma-separated value into patterns.

    Args:
      text: e.g. "gs://bucket/train-*.tfrecord, /data/images/*.jpg".

    Returns:
      The non-empty patterns, whitespace stripped, in the order given.

    Raises:
      ValueError: if `text` holds no pattern at all.
    """
    patterns = tuple(part.strip() for part in text.split(",") if part.strip())
    if not patterns:
        raise ValueError(
            f"--input={text!r} holds no file pattern; pass one or more comma-separated "
            "paths or globs, e.g. --input=/data/shards/*.tfrecord,/data/images/*.jpg"
        )
    return patterns


def is_tfrecord_path(path: str) -> bool:
    """Whether a file's name marks it as a TFRecord shard rather than an image file."""
    return _TFRECORD_NAME.search(path.rstrip("/")) is not None


def plan_work_units(
    patterns: Sequence[str], batch_size: int, tfds_data_dir: str | None = None
) -> tuple[WorkUnit, ...]:
    """Matches the input patterns and groups the files into work units.

    Every TFRecord shard becomes its own unit; all other files are image files,
    grouped `batch_size` per unit; every shard file of a `tfds:` input's split
    is its own unit (see `pipeline.tfds_inputs`). Units are in a deterministic
    order: TFRecord shards sorted by path, then image-file groups in sorted path
    order, then TFDS shards in pattern and file order.

    Args:
      patterns: Paths or globs, local or any Beam FileSystems URL (gs://, s3://, ...),
        or `tfds:NAME[/CONFIG][:VERSION]:SPLIT` inputs.
      batch_size: How many image files go into one unit; >= 1.
      tfds_data_dir: Where `tfds:` inputs are prepared; None for TFDS's default.

    Returns:
      The work units; every matched file appears in exactly one of them.

    Raises:
      ValueError: if `patterns` is empty, `batch_size` < 1, a pattern cannot be
        listed, or a pattern matches no file.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}; pass --batch_size=8 or so")
    if not patterns:
        raise ValueError("no input patterns given; pass --input=<path or glob>[,<more>]")
    file_patterns = [pattern for pattern in patterns if not is_tfds_pattern(pattern)]
    paths = sorted({path for pattern in file_patterns for path in _match_files(pattern)})
    shards = [WorkUnit(UNIT_TFRECORD, (path,)) for path in paths if is_tfrecord_path(path)]
    images = [path for path in paths if not is_tfrecord_path(path)]
    groups = [
        WorkUnit(UNIT_IMAGE_FILES, tuple(images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    tfds_units = plan_tfds_units([p for p in patterns if is_tfds_pattern(p)], tfds_data_dir)
    return (*shards, *groups, *tfds_units)


def _match_files(pattern: str) -> list[str]:
    """The files (not directories) one pattern matches; raises if there are none."""
    resolved = _absolute_if_local(pattern)
    try:
        (result,) = FileSystems.match([resolved])
    except BeamIOError as e:
        raise ValueError(
            f"could not list input pattern {pattern!r}: {e}; check that the path exists "
            "and that this machine may read it"
        ) from e
    matched = [metadata.path for metadata in result.metadata_list]
    files = list(_without_directories(matched))
    if not files:
        hint = (
            f"it matched only directories; to read the files inside, use {pattern.rstrip('/')}/*"
            if matched
            else "check the path and the glob (e.g. /data/shards/*.tfrecord)"
        )
        raise ValueError(
            f"input pattern {pattern!r} (resolved to {resolved!r}) matched no file: {hint}"
        )
    return files


def _absolute_if_local(pattern: str) -> str:
    # Local paths are made absolute so that `source` URIs, and the image ids
    # derived from them, do not depend on the directory the driver ran in.
    if FileSystems.get_scheme(pattern) is not None:
        return pattern
    return os.path.abspath(os.path.expanduser(pattern))


def _without_directories(paths: Iterable[str]) -> Iterable[str]:
    # Object stores have no directories, but a "folder" placeholder object ends with "/".
    for path in paths:
        if path.endswith("/"):
            continue
        if FileSystems.get_scheme(path) is None and os.path.isdir(path):
            continue
        yield path

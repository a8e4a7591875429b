"""Atomic file writes through Beam's FileSystems (local disk, gs://, s3://, ...).

Every file segbeam writes lands under a temporary name first and is renamed
into place, so a reader never sees a half-written file, and a retried or
repeated bundle simply replaces the file with identical content.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import Callable, Iterator
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def join(*parts: str) -> str:
    """Joins path parts for local paths and URLs alike."""
    return FileSystems.join(*parts)


@contextlib.contextmanager
def atomic_writer(path: str) -> Iterator[BinaryIO]:
    """Yields a file handle whose content appears at `path` only once the block succeeds.

    The temporary file is a dot-file in the same directory, so that globs such
    as `table/*.parquet` never match it; it is removed if the block fails.
    """
    directory, name = FileSystems.split(path)
    temp_path = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with FileSystems.create(
            temp_path, compression_type=CompressionTypes.UNCOMPRESSED
        ) as handle:
            yield handle
    except BaseException:
        # Re-raised below; only the temporary file is cleaned up here.
        if FileSystems.exists(temp_path):
            FileSystems.delete([temp_path])
        raise
    FileSystems.rename([temp_path], [path])


def write_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Writes `path` by calling `write(file)` on a temporary file, then renaming it."""
    with atomic_writer(path) as handle:
        write(handle)


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    write_atomically(path, lambda handle: handle.write(data))


def list_files(directory: str) -> list[str]:
    """Paths of the files directly in `directory` (none if it doesn't exist), sorted."""
    pattern = FileSystems.join(directory, "*")
    matched = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in matched)


def delete_files(paths: list[str]) -> None:
    """Deletes the given files; a no-op for an empty list."""
    if paths:
        FileSystems.delete(paths)


def base_name(path: str) -> str:
    """The last component of a local path or URL."""
    return posixpath.basename(FileSystems.split(path)[1] or path)

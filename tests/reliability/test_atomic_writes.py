"""Every file segbeam writes lands atomically: a temporary name first, then a rename.

The whole-run test sends --output through a FileSystems scheme of its own
("recordfs://", local disk underneath) that logs every create and rename, so
it sees each write the pipeline and the driver make, as an object store would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO, ClassVar

import pytest
from apache_beam.io.filesystem import CompressionTypes, FileMetadata, MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem

from pipeline.run import run
from tests.reliability.runs import committed_files, read_all_tables, relative_files, segbeam_argv
from transforms.atomic_files import atomic_writer, write_bytes_atomically

_PREFIX = "recordfs://"
_TEMP_NAME = re.compile(r"^\..+\.tmp$")


def _local(path: str) -> str:
    return path.removeprefix(_PREFIX)


def _metadata(found: FileMetadata) -> FileMetadata:
    return FileMetadata(_PREFIX + found.path, found.size_in_bytes, found.last_updated_in_seconds)


# Does the actual work on local paths; the recording filesystem only translates and logs.
_DISK = LocalFileSystem(pipeline_options=None)


class _RecordingFileSystem(LocalFileSystem):
    """Local disk under "recordfs://<absolute path>", logging creates and renames."""

    created: ClassVar[list[str]] = []
    renamed: ClassVar[list[tuple[str, str]]] = []

    @classmethod
    def scheme(cls) -> str:
        return "recordfs"

    def join(self, basepath: str, *paths: str) -> str:
        return _PREFIX + _DISK.join(_local(basepath), *paths)

    def split(self, path: str) -> tuple[str, str]:
        head, tail = _DISK.split(_local(path))
        return _PREFIX + head, tail

    def mkdirs(self, path: str) -> None:
        _DISK.mkdirs(_local(path))

    def match(self, patterns: list[str], limits: list[int] | None = None) -> list[MatchResult]:
        results = _DISK.match([_local(p) for p in patterns], limits)
        return [
            MatchResult(_PREFIX + r.pattern, [_metadata(m) for m in r.metadata_list])
            for r in results
        ]

    def create(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> BinaryIO:
        self.created.append(_local(path))
        return _DISK.create(_local(path), mime_type, compression_type)

    def open(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> BinaryIO:
        return _DISK.open(_local(path), mime_type, compression_type)

    def rename(self, sources: list[str], destinations: list[str]) -> None:
        self.renamed.extend(zip(map(_local, sources), map(_local, destinations), strict=True))
        _DISK.rename([_local(s) for s in sources], [_local(d) for d in destinations])

    def copy(self, sources: list[str], destinations: list[str]) -> None:
        raise AssertionError("segbeam copies no files; an unexpected copy is not atomic")

    def exists(self, path: str) -> bool:
        return _DISK.exists(_local(path))

    def size(self, path: str) -> int:
        return _DISK.size(_local(path))

    def last_updated(self, path: str) -> float:
        return _DISK.last_updated(_local(path))

    def checksum(self, path: str) -> str:
        return _DISK.checksum(_local(path))

    def metadata(self, path: str) -> FileMetadata:
        return _metadata(_DISK.metadata(_local(path)))

    def delete(self, paths: list[str]) -> None:
        _DISK.delete([_local(p) for p in paths])


@pytest.fixture
def recorded() -> type[_RecordingFileSystem]:
    _RecordingFileSystem.created.clear()
    _RecordingFileSystem.renamed.clear()
    return _RecordingFileSystem


def test_every_file_of_a_run_is_written_under_a_temporary_name_then_renamed(
    tmp_path, corpus, tiny_models, recorded
):
    output = tmp_path / "out"

    run(segbeam_argv(f"{corpus.directory}/*", f"{_PREFIX}{output}", tiny_models))

    assert recorded.created, "the run wrote nothing through the recording filesystem"
    not_temporary = [p for p in recorded.created if not _TEMP_NAME.match(Path(p).name)]
    assert not not_temporary
    renamed_to = {destination for _, destination in recorded.renamed}
    final = relative_files(output)
    assert final == committed_files(output)
    assert {str(output / name) for name in final} <= renamed_to
    assert read_all_tables(output)["images"]


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    target = tmp_path / "table" / "part.parquet"

    def write_half_then_fail() -> None:
        with atomic_writer(str(target)) as handle:
            handle.write(b"half a file")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_half_then_fail()

    assert not target.exists()
    assert relative_files(tmp_path) == []


def test_readers_see_the_old_content_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")

    with atomic_writer(str(target)) as handle:
        handle.write(b"new, but not yet complete")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new, but not yet complete"

    def write_then_fail() -> None:
        with atomic_writer(str(target)) as handle:
            handle.write(b"never seen")
            raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        write_then_fail()
    assert target.read_bytes() == b"new, but not yet complete"
    assert relative_files(tmp_path) == ["manifest.json"]


def test_rewriting_a_file_replaces_it_without_leftovers(tmp_path):
    target = tmp_path / "_SUCCESS"

    write_bytes_atomically(str(target), b"first")
    write_bytes_atomically(str(target), b"")

    assert target.read_bytes() == b""
    assert relative_files(tmp_path) == ["_SUCCESS"]

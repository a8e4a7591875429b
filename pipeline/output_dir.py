"""The run directory's layout and its commit protocol.

    <output>/<table>/part-*.parquet   the tables of the last successful run
    <output>/manifest.json            what that run did
    <output>/_SUCCESS                 written last; absent while a run is under way or failed
    <output>/_staging/<run_id>/       where a run writes before it commits
    <output>/_staging/<run_id>/_spill/  mask rows spilled by inference (transforms/spill.py)

A run first removes `_SUCCESS`, writes its tables under `_staging/<run_id>/`,
checks the ledger there, then replaces each table directory's files with its
own, writes the manifest and finally `_SUCCESS`. Only `<table>/*.parquet` files
are moved, so spill files never reach a table; they go with the staging area,
which the commit deletes. A run killed at any point
leaves no `_SUCCESS`; the next run into the same directory clears the staging
area and starts over, so no stale file survives a rerun.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

from apache_beam.io.filesystems import FileSystems

from pipeline import schemas
from transforms.atomic_files import (
    base_name,
    delete_files,
    join,
    list_files,
    write_bytes_atomically,
)

SUCCESS_MARKER = "_SUCCESS"
MANIFEST = "manifest.json"
STAGING = "_staging"


@dataclasses.dataclass(frozen=True)
class RunDirectory:
    """Paths and commit steps of one run into `output_dir`."""

    output_dir: str
    run_id: str

    @property
    def staging_dir(self) -> str:
        return join(self.output_dir, STAGING, self.run_id)

    @property
    def success_marker(self) -> str:
        return join(self.output_dir, SUCCESS_MARKER)

    @property
    def manifest_path(self) -> str:
        return join(self.output_dir, MANIFEST)

    def prepare(self) -> None:
        """Withdraws the previous run's success marker and clears abandoned staging files."""
        delete_files([p for p in [self.success_marker] if FileSystems.exists(p)])
        self._delete_staging()

    def _delete_staging(self) -> None:
        # Object stores have no directories: delete what the prefix holds, file by file.
        pattern = join(self.output_dir, STAGING, "**")
        delete_files([m.path for m in FileSystems.match([pattern])[0].metadata_list])
        staging_root = join(self.output_dir, STAGING)
        if FileSystems.exists(staging_root):
            FileSystems.delete([staging_root])  # The now empty local directory tree.

    def commit(
        self,
        manifest: dict[str, object],
        tables: Iterable[str] = tuple(schemas.TABLES),
        mark_success: bool = True,
    ) -> None:
        """Moves the staged tables into place, then writes the manifest, then `_SUCCESS`.

        A table directory of an earlier run that this run doesn't write (e.g.
        `metrics` after a run without --evaluate) is removed, so no stale table survives.
        """
        for stale in set(schemas.ALL_TABLES) - set(tables):
            delete_files(list_files(join(self.output_dir, stale)))
        for table in tables:
            staged = [
                p for p in list_files(join(self.staging_dir, table)) if p.endswith(".parquet")
            ]
            if not staged:
                raise RuntimeError(
                    f"Table {table!r} has no files in {self.staging_dir}: nothing to commit."
                )
            final_dir = join(self.output_dir, table)
            delete_files(list_files(final_dir))
            if not FileSystems.exists(final_dir):
                FileSystems.mkdirs(final_dir)
            FileSystems.rename(staged, [join(final_dir, base_name(p)) for p in staged])
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        write_bytes_atomically(self.manifest_path, manifest_bytes)
        self._delete_staging()
        if mark_success:
            write_bytes_atomically(self.success_marker, b"")

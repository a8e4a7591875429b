"""Earlier runs' image hashes, for --skip_existing."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from apache_beam.io.filesystems import FileSystems

from pipeline.ledger import read_table
from pipeline.output_dir import SUCCESS_MARKER
from transforms.atomic_files import join

_LOGGER = logging.getLogger(__name__)


def _normalized(path: str) -> str:
    # Local paths compare by absolute path; URLs (gs://...) as written.
    return path.rstrip("/") if "://" in path else os.path.abspath(path)


def completed_runs(patterns: Iterable[str]) -> list[str]:
    """Run directories matching `patterns` (globs allowed) that hold a `_SUCCESS` marker.

    A run without `_SUCCESS` (under way, failed or killed) is not trusted and not used.
    """
    runs = []
    for pattern in patterns:
        markers = FileSystems.match([join(pattern, SUCCESS_MARKER)])[0].metadata_list
        found = sorted(m.path[: -len(SUCCESS_MARKER)].rstrip("/") for m in markers)
        if not found:
            _LOGGER.warning("--skip_existing: no completed run matches %s", pattern)
        runs.extend(found)
    return sorted(set(runs))


def known_image_hashes(patterns: Iterable[str], exclude: str | None = None) -> frozenset[str]:
    """`content_sha256` of every image in the completed runs matching `patterns`.

    Args:
      patterns: Run directories or globs of them, e.g. "runs/*".
      exclude: The current run's output directory, which is never its own history.
    """
    hashes: set[str] = set()
    for run in completed_runs(patterns):
        if exclude is not None and _normalized(run) == _normalized(exclude):
            continue
        table = read_table(run, "images", ["content_sha256"])
        hashes.update(table.column("content_sha256").to_pylist())
    return frozenset(hashes)

"""Runs segbeam like run_pipeline.py, but stops for good at a chosen point, to be killed there.

    python tests/reliability/interrupted_run.py {read|write} MARKER [segbeam flags]

"read": stops after the first work unit is read, before any table file exists.
"write": stops after the first output shard's Parquet files are in staging.
Once stopped it creates the file MARKER and sleeps; the test then SIGKILLs it.
Runs on the in-process FnApiRunner (the default), so the patch below applies.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import apache_beam as beam

import run_pipeline
from transforms import read, write

# Far longer than any test waits: the process never resumes on its own.
_STALL_SECONDS = 600

_STAGES: dict[str, type[beam.DoFn]] = {
    "read": read._ReadWorkUnitFn,
    "write": write._WriteShardFiles,
}


def _stall_after_first_element(dofn: type[beam.DoFn], marker: Path) -> None:
    original: Callable[[beam.DoFn, object], Iterator[object]] = dofn.process

    def process(self: beam.DoFn, element: object) -> Iterator[object]:
        yield from original(self, element)
        marker.touch()
        time.sleep(_STALL_SECONDS)

    dofn.process = process


def main(argv: list[str]) -> int:
    stage, marker, *segbeam_argv = argv
    _stall_after_first_element(_STAGES[stage], Path(marker))
    return run_pipeline.main(segbeam_argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

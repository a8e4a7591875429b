"""What Python objects a run holds when its last stage starts: a tracemalloc snapshot.

    python -m benchmarks.memory_probe --input 'DIR/*.tfrecord' --output OUT \\
        --result_json R.json [--top 15] [-- Beam flags, e.g. --direct_num_workers=1]

Runs `pipeline.run.run` in-process with `tracemalloc` on and takes one snapshot
when the writer (`transforms.write._WriteShardFiles.process`) is first called:
by then every record has been read, inferred and joined, and both shuffles'
inputs are held by the runner. Writes the Python-tracked total and the largest
allocation sites (file:line) to --result_json. Running it at two image counts
shows how much of the peak RSS growth per image is Python objects (the rest is
native: TensorFlow, Arrow, allocator fragmentation). tracemalloc slows the run
several times: its timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import add_common_flags, split_beam_flags
from benchmarks.pipeline_run import pipeline_argv
from pipeline.run import run
from transforms import write


def _snapshot_summary(top: int) -> dict[str, Any]:
    stats = tracemalloc.take_snapshot().statistics("lineno")
    return {
        "python_tracked_bytes": sum(s.size for s in stats),
        "top": [
            {
                "site": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
                "bytes": s.size,
                "blocks": s.count,
            }
            for s in stats[:top]
        ],
    }


def probe(argv: Sequence[str], top: int) -> dict[str, Any]:
    """Runs the pipeline with `argv`; returns the snapshot taken as writing starts."""
    original = write._WriteShardFiles.process
    taken: dict[str, Any] = {}

    def process(self: write._WriteShardFiles, element: Any) -> Iterator[write.WrittenFile]:
        if not taken:
            taken.update(_snapshot_summary(top))
        return original(self, element)

    write._WriteShardFiles.process = process
    tracemalloc.start(1)
    try:
        run(list(argv))
    finally:
        tracemalloc.stop()
        write._WriteShardFiles.process = original
    if not taken:
        raise RuntimeError(
            "The writer never ran, so no snapshot was taken; did the run read any record?"
        )
    return taken


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    own, beam_flags = split_beam_flags(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser)
    parser.add_argument("--output", required=True, help="Run directory for the tables.")
    parser.add_argument("--top", type=int, default=15, help="Allocation sites to keep.")
    args = parser.parse_args(own)
    summary = probe(pipeline_argv(args, beam_flags), args.top)
    Path(args.result_json).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Python-tracked at the first write: {summary['python_tracked_bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

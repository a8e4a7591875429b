"""Variant 2, this pipeline end to end: `pipeline.run.run`, tables written and committed.

    python -m benchmarks.pipeline_run --input 'DIR/*.tfrecord' --output OUT \\
        --result_json R.json [--semantic_model SPEC] [--instance_model SPEC] \\
        [--batch_size 8] [-- BEAM FLAGS ...]

Runs exactly what `run_pipeline.py` runs (DirectRunner, i.e. the FnApiRunner,
in-process unless Beam flags after `--` say otherwise): input planning, the
graph, the ledger check and the commit. The timed work is the `run()` call.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from benchmarks.common import (
    VariantResult,
    add_common_flags,
    cpu_clock,
    split_beam_flags,
    table_stats,
)
from pipeline.run import run


def pipeline_argv(args: argparse.Namespace, beam_flags: Sequence[str]) -> list[str]:
    """The `run_pipeline.py` command line for these benchmark flags."""
    return [
        f"--input={args.input}",
        f"--output={args.output}",
        f"--semantic_model={args.semantic_model}",
        f"--instance_model={args.instance_model}",
        f"--batch_size={args.batch_size}",
        *beam_flags,
    ]


def main(argv: Sequence[str]) -> int:
    own, beam_flags = split_beam_flags(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser)
    parser.add_argument("--output", required=True, help="Run directory for the tables.")
    parser.add_argument("--variant", default="pipeline", help="Name for the result.")
    args = parser.parse_args(own)

    start, cpu_start = time.perf_counter(), cpu_clock()
    outcome = run(pipeline_argv(args, beam_flags))
    seconds, cpu = time.perf_counter() - start, cpu_clock() - cpu_start
    ledger = outcome.ledger
    VariantResult(
        variant=args.variant,
        num_images=ledger.images,
        seconds=seconds,
        details={
            "records_read": ledger.records_read,
            "errors": ledger.errors,
            "runner": outcome.runner,
            "beam_flags": list(beam_flags),
            "table_stats": table_stats(outcome.output_dir),
            "output_dir": outcome.output_dir,
        },
        cpu_seconds=cpu,
    ).write(args.result_json)
    print(
        f"{args.variant}: {ledger.images} images in {seconds:.1f} s "
        f"({ledger.images / seconds:.2f} images/s), {ledger.errors} errors"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""segbeam: semantic and instance segmentation of image shards, to Parquet.

    python run_pipeline.py [Beam options] --input PATTERNS --output DIR
        [--semantic_model SPEC|none] [--instance_model SPEC|none]
        [--batch_size N] [--score_threshold F]

With no --input it runs on the bundled sample shards; with no model flags it
uses the bundled models. `--help` lists every option with its default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from pipeline.ledger import LedgerError
from pipeline.options import SegbeamOptions
from pipeline.run import RunOutcome, run


def _print_help() -> None:
    parser = _BeamArgumentParser(
        prog="run_pipeline.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    SegbeamOptions._add_argparse_args(parser.add_argument_group("segbeam"))
    for cls in _beam_option_classes():
        cls._add_argparse_args(parser.add_argument_group(f"Beam: {cls.__name__}"))
    parser.print_help()


def _beam_option_classes() -> list[type[PipelineOptions]]:
    found, pending = [], list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending.extend(cls.__subclasses__())
        if cls is not SegbeamOptions and cls not in found and "_add_argparse_args" in vars(cls):
            found.append(cls)
    return found


def _summarize(outcome: RunOutcome) -> str:
    ledger = outcome.ledger
    lines = [
        f"segbeam: wrote {outcome.output_dir} in {outcome.duration_seconds:.1f} s "
        f"on {outcome.runner}",
        f"  records read {ledger.records_read} from {ledger.input_files} files: "
        f"{ledger.images} images, {ledger.errors} errors",
    ]
    lines += [f"  errors: {n} x {kind}" for kind, n in sorted(ledger.errors_by_type.items())]
    lines.append("  tables:")
    lines += [
        f"    {table:<15} {ledger.table_rows[table]:>8} rows  {outcome.output_dir}/{table}/"
        for table in ledger.table_rows
    ]
    lines.append(f"  manifest: {outcome.manifest_path}")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    if "-h" in argv or "--help" in argv:
        _print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        outcome = run(argv)
    except ValueError as e:
        print(f"segbeam: error: {e}", file=sys.stderr)
        return 2
    except LedgerError as e:
        print(f"segbeam: run failed: {e}", file=sys.stderr)
        return 1
    print(_summarize(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

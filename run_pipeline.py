"""segbeam: semantic and instance segmentation of image shards, to Parquet.

    python run_pipeline.py [Beam options] --input PATTERNS --output DIR
        [--semantic_model SPEC|none] [--instance_model SPEC|none]
        [--batch_size N] [--score_threshold F]

With no --input it runs on the bundled sample shards; with no model flags it
uses the bundled models. `--help` lists every option with its default.

On a finished run directory:

    python run_pipeline.py report --output DIR        # DIR/report.html + overlay PNGs
    python run_pipeline.py export-coco --output DIR   # DIR/coco/annotations.json, results.json
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up notices (oneDNN, CPU features, grappler cost warnings) bury the
# run's own log; set before TensorFlow is first imported. Worker processes inherit it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import logging
import sys
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from pipeline.coco_export import export_coco
from pipeline.ledger import LedgerError
from pipeline.options import DEFAULT_OUTPUT, SegbeamOptions
from pipeline.report import write_report
from pipeline.run import RunOutcome, run

_SUBCOMMANDS = {
    "report": "Write DIR/report.html (charts, error summary, overlay gallery) and "
    "DIR/report/overlays/*.png from a run directory.",
    "export-coco": "Write DIR/coco/annotations.json (COCO instances with RLE masks) and "
    "DIR/coco/results.json (COCO results for COCOeval) from a run directory.",
}


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
        f"{ledger.images} images, {ledger.errors} errors"
        + (f", {ledger.skipped} skipped (done in earlier runs)" if ledger.skipped else ""),
    ]
    lines += [f"  errors: {n} x {kind}" for kind, n in sorted(ledger.errors_by_type.items())]
    lines.append("  tables:")
    lines += [
        f"    {table:<15} {stats.rows:>8} rows  {outcome.output_dir}/{table}/"
        for table, stats in outcome.tables.items()
    ]
    if outcome.evaluation is not None:
        lines += _evaluation_lines(outcome.evaluation)
    lines += _metric_lines(outcome.metrics)
    lines.append(f"  manifest: {outcome.manifest_path}")
    return "\n".join(lines)


def _metric_lines(metrics: dict | None) -> list[str]:
    if metrics is None:
        return ["  Beam metrics: not reported by this runner"]
    lines = ["  Beam metrics:"]
    for name, value in metrics.items():
        if isinstance(value, dict):
            value = f"n={value['count']} mean={value['mean']} min={value['min']} max={value['max']}"
        lines.append(f"    {name} {value}")
    return lines


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "n/a"


def _evaluation_lines(evaluation: dict) -> list[str]:
    semantic, panoptic = evaluation["semantic"], evaluation["panoptic"]
    instance = evaluation["instance"] or {}
    return [
        f"  evaluation: {evaluation['images_evaluated']} images with ground truth, "
        f"{evaluation['images_without_ground_truth']} without (skipped)",
        f"    semantic  mIoU {_fmt(semantic['miou'])}  pixel accuracy "
        f"{_fmt(semantic['pixel_accuracy'])}",
        "    panoptic  "
        + "  ".join(f"PQ_{g} {_fmt(panoptic[g]['pq'])}" for g in ("all", "things", "stuff")),
        "    instance  "
        + "  ".join(f"{k.upper()} {_fmt(instance.get(k))}" for k in ("ap", "ap50", "ap75", "ar")),
    ]


def _run_subcommand(name: str, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"run_pipeline.py {name}", description=_SUBCOMMANDS[name])
    parser.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help="The run directory (a pipeline run's --output). Default: %(default)s",
    )
    args = parser.parse_args(argv)
    try:
        if name == "report":
            written = write_report(args.output)
            print(f"segbeam: wrote {written.html_path} and {len(written.overlay_paths)} overlays")
        else:
            exported = export_coco(args.output)
            print(
                f"segbeam: wrote {exported.annotations_path} ({exported.num_images} images, "
                f"{exported.num_annotations} annotations) and {exported.results_path}"
            )
    except FileNotFoundError as e:
        print(f"segbeam {name}: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] in _SUBCOMMANDS:
        return _run_subcommand(argv[0], argv[1:])
    if "-h" in argv or "--help" in argv:
        _print_help()
        return 0
    # force: importing Beam already put a WARNING-level handler on the root logger.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    try:
        outcome = run(argv)
    except ValueError as e:
        print(f"segbeam: error: {e}", file=sys.stderr)
        return 2
    except (LedgerError, RuntimeError) as e:
        # Runner failures (e.g. a Dask cluster that lost the run) and failed ledger
        # checks end the same way: a message that says what to do, exit status 1.
        print(f"segbeam: run failed: {e}", file=sys.stderr)
        return 1
    print(_summarize(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Command-line options, and the validated run configuration built from them.

`SegbeamOptions` is the one `PipelineOptions` subclass: its flags sit beside
Beam's own (`--runner`, `--direct_num_workers`, ...). `RunConfig.from_options`
validates everything before any work starts and returns a frozen config that
the graph builder and the driver share.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from models.spec import (
    BUNDLED_INSTANCE_SPEC,
    BUNDLED_SEMANTIC_SPEC,
    ModelSpec,
    load_model_spec,
    shared_semantic_spec,
)
from pipeline.inputs import split_patterns

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_INPUT = os.path.join(_PACKAGE_ROOT, "models", "sample", "*.tfrecord")
DEFAULT_OUTPUT = "segbeam-output"
DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold.


class SegbeamOptions(PipelineOptions):
    """segbeam's own flags; `--help` lists them with Beam's."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--input",
            default=None,
            help="Comma-separated file patterns (local paths or FileSystems URLs such as gs://) "
            "of TFRecord shards (*.tfrecord) or image files, and/or prepared TensorFlow Datasets "
            "splits as tfds:NAME[/CONFIG][:VERSION]:SPLIT (see --tfds_data_dir). Default: the "
            f"bundled sample shards ({SAMPLE_INPUT}).",
        )
        parser.add_argument(
            "--tfds_data_dir",
            default=None,
            help="TFDS data directory holding the prepared datasets that tfds: inputs name "
            "(segbeam never downloads; prepare them first, e.g. python -m "
            "models.tfds_street_scenes --data_dir DIR). Default: TFDS's own "
            "($TFDS_DATA_DIR or ~/tensorflow_datasets).",
        )
        parser.add_argument(
            "--output",
            default=DEFAULT_OUTPUT,
            help="Run directory for the Parquet tables, manifest.json and _SUCCESS. "
            "Rerunning into the same directory replaces the earlier run's tables. "
            "Default: %(default)s",
        )
        parser.add_argument(
            "--semantic_model",
            default=BUNDLED_SEMANTIC_SPEC,
            help="Semantic model: a spec file (.json/.yaml), a SavedModel directory, or 'none' "
            "to skip semantic segmentation. Default: the bundled street-scene model (with the "
            "bundled instance model, read from its export: the same maps, one network call).",
        )
        parser.add_argument(
            "--instance_model",
            default=BUNDLED_INSTANCE_SPEC,
            help="Instance model: a spec file (.json/.yaml), a SavedModel directory, or 'none' "
            "to skip instance segmentation. Default: the bundled street-scene model.",
        )
        parser.add_argument(
            "--batch_size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help="Images per model call. Default: %(default)s",
        )
        parser.add_argument(
            "--score_threshold",
            type=float,
            default=None,
            help="Drop instances scoring below this. Default: the instance model spec's "
            "score_threshold (0.5 for the bundled model).",
        )
        parser.add_argument(
            "--num_output_shards",
            type=int,
            default=0,
            help="Parquet files per table; 0 picks one per 256 work units (at least 1). "
            "Default: %(default)s",
        )
        parser.add_argument(
            "--max_image_pixels",
            type=int,
            default=DEFAULT_MAX_IMAGE_PIXELS,
            help="Refuse images whose header declares more pixels than this (decompression-bomb "
            "guard), before decoding. Default: %(default)s",
        )
        parser.add_argument(
            "--skip_existing",
            default=None,
            help="Comma-separated earlier run directories (globs allowed, e.g. 'runs/*'): "
            "records whose encoded image (by SHA-256) is in their images tables are skipped "
            "and listed in a skipped table. Runs without _SUCCESS and --output itself are "
            "ignored. Default: process everything.",
        )
        parser.add_argument(
            "--report",
            action="store_true",
            default=False,
            help="After a successful run, write <output>/report.html (charts, errors, overlay "
            "gallery) as `run_pipeline.py report --output DIR` does. Default: off.",
        )
        parser.add_argument(
            "--evaluate",
            action="store_true",
            default=False,
            help="Compare predictions with the ground truth the shards carry (Object Detection "
            "API keys) and write the metrics and ground_truth tables; images without ground "
            "truth are counted and skipped. Default: off.",
        )
        parser.add_argument(
            "--tf_threads",
            type=int,
            default=0,
            help="TensorFlow intra-op and inter-op threads per worker process, set before "
            "the first op. 0 = automatic: TensorFlow's default (all cores) when the run has "
            "one worker process; with --direct_running_mode=multi_processing, the machine's "
            "cores divided by --direct_num_workers, so the processes do not oversubscribe "
            "the cores. Default: 0.",
        )
        parser.add_argument(
            "--max_error_fraction",
            type=float,
            default=None,
            help="Fail the run when more than this fraction of the records read (0..1) end up "
            "in the errors table; the run's tables stay in <output>/_staging/<run id>/ for "
            "inspection and no _SUCCESS is written. 0 fails on any error. Default: no limit.",
        )


def automatic_tf_threads(options: PipelineOptions) -> int:
    """TensorFlow threads per worker process when --tf_threads is 0 (see its help).

    Only the DirectRunner's multi-processing mode starts several worker processes
    on this machine whose count segbeam knows; every other mode keeps
    TensorFlow's default (0).
    """
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":
        return 0
    return max(1, (os.cpu_count() or 1) // max(1, direct.direct_num_workers))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated. Built once in the driver."""

    input_patterns: tuple[str, ...]
    output_dir: str
    semantic_spec: ModelSpec | None
    instance_spec: ModelSpec | None
    batch_size: int
    score_threshold: float | None
    num_output_shards: int
    max_image_pixels: int
    max_error_fraction: float | None = None  # None: any number of errors is accepted.
    evaluate: bool = False
    report: bool = False
    skip_existing: tuple[str, ...] = ()  # Earlier run directories (globs) for --skip_existing.
    tfds_data_dir: str | None = None  # None: TFDS's default data directory.
    tf_threads: int = 0  # Per worker process, intra- and inter-op; 0: TensorFlow's default.

    def __post_init__(self) -> None:
        if not self.input_patterns:
            raise ValueError("--input is empty: give one or more comma-separated file patterns.")
        if not self.output_dir:
            raise ValueError("--output is empty: give the run directory to write tables into.")
        if self.semantic_spec is None and self.instance_spec is None:
            raise ValueError(
                "--semantic_model=none and --instance_model=none leave nothing to do: "
                "enable at least one model."
            )
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}.")
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"--score_threshold must be in [0, 1], got {self.score_threshold}.")
        if self.num_output_shards < 0:
            raise ValueError(
                f"--num_output_shards must be >= 0 (0 = automatic), got {self.num_output_shards}."
            )
        if self.max_image_pixels < 1:
            raise ValueError(f"--max_image_pixels must be >= 1, got {self.max_image_pixels}.")
        if self.max_error_fraction is not None and not 0.0 <= self.max_error_fraction <= 1.0:
            raise ValueError(
                f"--max_error_fraction must be in [0, 1], got {self.max_error_fraction}."
            )
        if self.tf_threads < 0:
            raise ValueError(f"--tf_threads must be >= 0 (0 = automatic), got {self.tf_threads}.")
        self.class_names()  # Conflicting label maps are a configuration error: fail now.

    @classmethod
    def from_options(cls, options: PipelineOptions) -> RunConfig:
        """Validates segbeam's flags and loads the model specs (not the models)."""
        opts = options.view_as(SegbeamOptions)
        return cls(
            input_patterns=split_patterns(opts.input or SAMPLE_INPUT),
            output_dir=opts.output,
            semantic_spec=load_model_spec(
                shared_semantic_spec(opts.semantic_model, opts.instance_model), "semantic"
            ),
            instance_spec=load_model_spec(opts.instance_model, "instance"),
            batch_size=opts.batch_size,
            score_threshold=opts.score_threshold,
            num_output_shards=opts.num_output_shards,
            max_image_pixels=opts.max_image_pixels,
            max_error_fraction=opts.max_error_fraction,
            evaluate=opts.evaluate,
            report=opts.report,
            skip_existing=split_patterns(opts.skip_existing) if opts.skip_existing else (),
            tfds_data_dir=opts.tfds_data_dir,
            tf_threads=opts.tf_threads or automatic_tf_threads(options),
        )

    def class_names(self) -> Mapping[int, str]:
        """The label map shared by both models' outputs: class id -> name.

        Raises:
          ValueError: if the two models name the same class id differently, which
            would make `class_counts` join unrelated classes.
        """
        names: dict[int, str] = {}
        for spec in (self.semantic_spec, self.instance_spec):
            if spec is None:
                continue
            for class_id, name in spec.class_names.items():
                if names.setdefault(class_id, name) != name:
                    raise ValueError(
                        f"Class id {class_id} is {names[class_id]!r} in one model's labels and "
                        f"{name!r} in the other's: give both models the same label map, or shift "
                        "one with label_offset in its spec."
                    )
        return names

    def to_json_dict(self) -> dict[str, object]:
        """The configuration as recorded in manifest.json."""
        return {
            "input_patterns": list(self.input_patterns),
            "output_dir": self.output_dir,
            "semantic_model": self.semantic_spec.to_json_dict() if self.semantic_spec else None,
            "instance_model": self.instance_spec.to_json_dict() if self.instance_spec else None,
            "batch_size": self.batch_size,
            "score_threshold": self.score_threshold,
            "num_output_shards": self.num_output_shards,
            "max_image_pixels": self.max_image_pixels,
            "max_error_fraction": self.max_error_fraction,
            "evaluate": self.evaluate,
            "report": self.report,
            "skip_existing": list(self.skip_existing),
            "tfds_data_dir": self.tfds_data_dir,
            "tf_threads": self.tf_threads,
        }

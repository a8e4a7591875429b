"""One run, start to finish: validate, plan, run the graph, check the ledger, commit.

Everything that can be wrong with the options or inputs is found before the
pipeline starts; everything that goes wrong with individual records ends up in
the `errors` table; a runner that loses data fails the ledger check, and the
run then leaves no `_SUCCESS`. So does a run with more errors than
`--max_error_fraction` allows: its checked, complete tables (errors included)
and a manifest with status "failed" are published, and `_SUCCESS` is not.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from models.loader import LoadedModel, load_validated_model
from models.spec import ModelSpec
from pipeline import schemas
from pipeline.evaluation import summarize as summarize_evaluation
from pipeline.graph import build_pipeline
from pipeline.inputs import plan_work_units
from pipeline.ledger import Ledger, LedgerError, TableStats, check_ledger, table_stats
from pipeline.manifest import build_manifest, utc_now
from pipeline.options import RunConfig
from pipeline.output_dir import RunDirectory
from pipeline.previous_runs import known_image_hashes
from pipeline.report import write_report
from pipeline.runners import (
    resolve_runner,
    runner_name,
    runs_in_process,
    with_direct_parallelism,
)
from transforms._inference import discard_validated_models, hand_over_validated_model
from transforms.atomic_files import join
from transforms.elements import WorkUnit

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced."""

    output_dir: str
    manifest_path: str
    ledger: Ledger
    tables: dict[str, TableStats]
    duration_seconds: float
    runner: str
    metrics: dict[str, object] | None
    evaluation: dict[str, object] | None = None


class ErrorBudgetError(LedgerError):
    """The tables account for every record, but more failed than --max_error_fraction allows.

    A LedgerError, so that callers reporting failed ledger checks report this one too.
    """


def error_budget_violation(ledger: Ledger, max_error_fraction: float | None) -> str | None:
    """Why the run exceeds `--max_error_fraction` (errors / records read), or None if it doesn't."""
    if max_error_fraction is None or ledger.records_read == 0:
        return None
    fraction = ledger.errors / ledger.records_read
    if fraction <= max_error_fraction:
        return None
    kinds = ", ".join(f"{n} x {kind}" for kind, n in sorted(ledger.errors_by_type.items()))
    return (
        f"{ledger.errors} of {ledger.records_read} records ({fraction:.1%}) failed ({kinds}), "
        f"more than --max_error_fraction={max_error_fraction} allows."
    )


def _beam_metrics(result: PipelineResult) -> dict[str, object] | None:
    """The run's Beam counters and distributions, or None where the runner can't report them.

    Counters map "namespace/name" to a total; distributions to count, mean, min and max.
    Beam 2.77's DaskRunner raises NotImplementedError here.
    """
    try:
        query = result.metrics().query()
    except NotImplementedError:
        return None
    out: dict[str, object] = {}
    for counter in query["counters"]:
        name = f"{counter.key.metric.namespace}/{counter.key.metric.name}"
        out[name] = out.get(name, 0) + counter.committed
    for dist in query["distributions"]:
        name = f"{dist.key.metric.namespace}/{dist.key.metric.name}"
        value = dist.committed
        if value is not None and value.count:
            out[name] = {
                "count": value.count,
                "mean": round(value.sum / value.count, 3),
                "min": value.min,
                "max": value.max,
            }
    return dict(sorted(out.items()))


def _validate_models(config: RunConfig) -> list[tuple[ModelSpec, LoadedModel]]:
    validated = []
    for spec in (config.semantic_spec, config.instance_spec):
        if spec is not None:
            # Loads and test-runs the model once, so a wrong signature or label map fails
            # here, before any work starts, not on the workers.
            model = load_validated_model(spec)
            _LOGGER.info("Model %s OK: %s", spec.source, model.signature.describe())
            validated.append((spec, model))
    return validated


def _execute(
    options: PipelineOptions,
    config: RunConfig,
    units: Sequence[WorkUnit],
    run_dir: RunDirectory,
    known_hashes: frozenset[str],
    validated: Sequence[tuple[ModelSpec, LoadedModel]],
) -> tuple[PipelineResult, str]:
    """Builds and runs the graph; returns the result and the runner's name."""
    runner = resolve_runner(options, len(units))
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_pipeline(pipeline, config, units, run_dir.staging_dir, known_hashes)
    _LOGGER.info("Running %d work units on %s", len(units), runner_name(runner))
    if runs_in_process(options):
        # In-process workers reuse the models the driver just loaded and traced
        # (about a second per model, and a second copy's memory, saved).
        for spec, model in validated:
            hand_over_validated_model(spec, model)
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    finally:
        discard_validated_models()
    if state not in (PipelineState.DONE, None):
        raise RuntimeError(f"The pipeline ended in state {state}; no _SUCCESS was written.")
    return result, runner_name(runner)


def run(argv: Sequence[str]) -> RunOutcome:
    """Runs segbeam with command-line arguments `argv` (segbeam's and Beam's flags).

    Raises:
      ValueError: bad options or inputs, before any work starts.
      pipeline.ledger.LedgerError: the written tables don't account for every record.
      ErrorBudgetError: they do, but more records failed than --max_error_fraction allows;
        the tables and a manifest with status "failed" are published, `_SUCCESS` is not.
      RuntimeError: the runner reported a failed pipeline.
    """
    options = PipelineOptions(with_direct_parallelism(argv))
    config = RunConfig.from_options(options)
    validated = _validate_models(config)
    units = plan_work_units(config.input_patterns, config.batch_size, config.tfds_data_dir)
    known_hashes = (
        known_image_hashes(config.skip_existing, exclude=config.output_dir)
        if config.skip_existing
        else frozenset()
    )
    run_dir = RunDirectory(config.output_dir, uuid.uuid4().hex[:12])
    started = utc_now()
    run_dir.prepare()
    result, runner = _execute(options, config, units, run_dir, known_hashes, validated)
    del validated  # The workers hold what they use; release the rest.

    ledger = check_ledger(run_dir.staging_dir, [p for u in units for p in u.paths])
    evaluation = (
        summarize_evaluation(run_dir.staging_dir, config.class_names(), ledger.images)
        if config.evaluate
        else None
    )
    tables = table_stats(
        run_dir.staging_dir, schemas.tables_for(config.evaluate, bool(config.skip_existing))
    )
    finished = utc_now()
    metrics = _beam_metrics(result)
    manifest = build_manifest(
        run_id=run_dir.run_id,
        config=config,
        options=options,
        units=units,
        ledger=ledger,
        started=started,
        finished=finished,
        metrics=metrics,
        runner=runner,
        evaluation=evaluation,
        tables=tables,
    )
    violation = error_budget_violation(ledger, config.max_error_fraction)
    if violation is not None:
        manifest.update(status="failed", failure=violation)
        run_dir.commit(manifest, tuple(tables), mark_success=False)
        raise ErrorBudgetError(
            f"{violation} No _SUCCESS was written. The run's tables are in {config.output_dir} "
            f"(see {join(config.output_dir, 'errors')} for what failed) and manifest.json has "
            'status "failed"; fix or remove those inputs (or raise --max_error_fraction) '
            "and rerun."
        )
    run_dir.commit(manifest, tuple(tables))
    if config.report:
        write_report(config.output_dir)
    return RunOutcome(
        output_dir=config.output_dir,
        manifest_path=run_dir.manifest_path,
        ledger=ledger,
        tables=tables,
        duration_seconds=(finished - started).total_seconds(),
        runner=runner,
        metrics=metrics,
        evaluation=evaluation,
    )

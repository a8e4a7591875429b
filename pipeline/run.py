"""One run, start to finish: validate, plan, run the graph, check the ledger, commit.

Everything that can be wrong with the options or inputs is found before the
pipeline starts; everything that goes wrong with individual records ends up in
the `errors` table; a runner that loses data fails the ledger check, and the
run then leaves no `_SUCCESS`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from pipeline.graph import build_pipeline
from pipeline.inputs import plan_work_units
from pipeline.ledger import Ledger, check_ledger
from pipeline.manifest import build_manifest, utc_now
from pipeline.options import RunConfig
from pipeline.output_dir import RunDirectory
from pipeline.runners import resolve_runner, runner_name

_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced."""

    output_dir: str
    manifest_path: str
    ledger: Ledger
    duration_seconds: float
    runner: str
    metrics: dict[str, int] | None


def _counters(result: PipelineResult) -> dict[str, int] | None:
    """The run's Beam counters, or None where the runner can't report them (Dask)."""
    try:
        counters = result.metrics().query()["counters"]
    except NotImplementedError:
        return None
    totals: dict[str, int] = {}
    for counter in counters:
        name = f"{counter.key.metric.namespace}/{counter.key.metric.name}"
        totals[name] = totals.get(name, 0) + counter.committed
    return dict(sorted(totals.items()))


def run(argv: Sequence[str]) -> RunOutcome:
    """Runs segbeam with command-line arguments `argv` (segbeam's and Beam's flags).

    Raises:
      ValueError: bad options or inputs, before any work starts.
      pipeline.ledger.LedgerError: the written tables don't account for every record.
      RuntimeError: the runner reported a failed pipeline.
    """
    options = PipelineOptions(list(argv))
    config = RunConfig.from_options(options)
    units = plan_work_units(config.input_patterns, config.batch_size)
    run_dir = RunDirectory(config.output_dir, uuid.uuid4().hex[:12])
    started = utc_now()
    run_dir.prepare()

    runner = resolve_runner(options)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build_pipeline(pipeline, config, units, run_dir.staging_dir)
    _LOGGER.info("Running %d work units on %s", len(units), runner_name(runner))
    result = pipeline.run()
    state = result.wait_until_finish()
    if state not in (PipelineState.DONE, None):
        raise RuntimeError(f"The pipeline ended in state {state}; no _SUCCESS was written.")

    ledger = check_ledger(run_dir.staging_dir, [p for u in units for p in u.paths])
    finished = utc_now()
    metrics = _counters(result)
    manifest = build_manifest(
        run_id=run_dir.run_id,
        config=config,
        options=options,
        units=units,
        ledger=ledger,
        started=started,
        finished=finished,
        metrics=metrics,
        runner=runner_name(runner),
    )
    run_dir.commit(manifest)
    return RunOutcome(
        output_dir=config.output_dir,
        manifest_path=run_dir.manifest_path,
        ledger=ledger,
        duration_seconds=(finished - started).total_seconds(),
        runner=runner_name(runner),
        metrics=metrics,
    )

"""Resolves `--runner` to a runner object, without any network access.

Beam 2.77's DirectRunner first tries the Prism runner, whose binary it
downloads from the internet, and falls back to the FnApiRunner only when that
fails; offline, a download that hangs instead of failing would stall the run.
segbeam therefore runs "DirectRunner" (the default) on the FnApiRunner
directly, which honours --direct_num_workers, --direct_running_mode and
--direct_runner_bundle_repeat like the DirectRunner does.

"DaskRunner" (not one of Beam's short names) is mapped to `SegbeamDaskRunner`,
Beam's `apache_beam.runners.dask.dask_runner.DaskRunner` with three fixes:
  * Beam turns `Create` into a dask.Bag of up to 128 items per partition, so a
    run of fewer work units would be one partition on one worker. Unless
    --dask_npartitions or --dask_partition_size is given, segbeam asks for one
    partition per work unit (at most `MAX_DEFAULT_DASK_PARTITIONS`).
  * Beam never closes the dask.distributed Client it opens; this runner closes
    it when the run ends, so the driver does not linger reconnecting to a
    cluster that has gone away.
  * A run the cluster lost (workers killed too often, scheduler gone) fails
    with a message saying so, and that no `_SUCCESS` was written.
An in-process cluster (`inproc://` address) is refused: Beam 2.77's DaskRunner
gives each ParDo one output buffer that every partition appends to, and only
serialising the task per partition (as tcp:// clusters do, threads or
processes) gives each partition its own copy; in-process, later partitions
re-emit the outputs of earlier ones.
Any other value goes to Beam unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.pipeline import Pipeline
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner, DaskRunnerResult
from apache_beam.runners.runner import PipelineRunner, PipelineState
from distributed import KilledWorker
from distributed.comm import CommClosedError

_DIRECT_NAMES = {None, "DirectRunner", "directrunner", "direct", "FnApiRunner"}
_DASK_NAMES = {"DaskRunner", "daskrunner", "dask"}

# Cap on the partitions chosen by default: every partition is a task in every
# stage of the dask graph, and scheduling costs ~1 ms per task, so beyond a few
# hundred partitions more of them only add overhead. Larger runs put several
# work units into a partition.
MAX_DEFAULT_DASK_PARTITIONS = 128


def resolve_runner(
    options: PipelineOptions, num_work_units: int | None = None
) -> PipelineRunner | str:
    """The runner to pass to `beam.Pipeline(runner=...)` for these options.

    Args:
      options: The run's options. For the DaskRunner, `--dask_npartitions` is
        set in place (see `default_dask_partitions`) so the manifest records it.
      num_work_units: How many elements the pipeline's `Create` holds; used to
        spread them over Dask partitions. None leaves Beam's default.
    """
    name = options.view_as(StandardOptions).runner
    if name in _DIRECT_NAMES:
        return _fn_api_runner(options)
    if name in _DASK_NAMES:
        _refuse_in_process_cluster(options)
        if num_work_units is not None:
            default_dask_partitions(options, num_work_units)
        return SegbeamDaskRunner()
    return name


# Bundle threads by default: measured on 2 cores only. Every thread holds a batch of
# decoded images and model activations, and the Python side of each bundle shares
# one GIL, so the default stays small on large machines (more via the flags).
MAX_DEFAULT_BUNDLE_THREADS = 4


def with_direct_parallelism(argv: Sequence[str], cpu_count: int | None = None) -> list[str]:
    """`argv`, plus one in-process bundle thread per core (at most 4) for a DirectRunner run.

    Beam's DirectRunner defaults to one bundle at a time. With one bundle thread
    per core, one batch's Python work (decoding, mask encoding, rows) runs while
    another's model call (which releases the GIL) uses the cores: faster on 2
    cores for more memory (figures in docs/performance.md), with the same tables.
    Left alone: non-direct runners, and any run that sets --direct_running_mode or
    --direct_num_workers itself.
    """
    argv = list(argv)
    flags = ("--direct_running_mode", "--direct_num_workers")
    if any(arg.startswith(flags) for arg in argv):
        return argv
    runner = PipelineOptions(argv).view_as(StandardOptions).runner
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    if runner not in _DIRECT_NAMES or cores < 2:
        return argv
    threads = min(cores, MAX_DEFAULT_BUNDLE_THREADS)
    return [*argv, "--direct_running_mode=multi_threading", f"--direct_num_workers={threads}"]


def runs_in_process(options: PipelineOptions) -> bool:
    """Whether the workers of this run share the driver's process (DirectRunner without
    --direct_running_mode=multi_processing), so they can use the driver's loaded models."""
    name = options.view_as(StandardOptions).runner
    mode = options.view_as(DirectOptions).direct_running_mode
    return name in _DIRECT_NAMES and mode != "multi_processing"


def default_dask_partitions(options: PipelineOptions, num_work_units: int) -> int | None:
    """Sets `--dask_npartitions` to one per work unit (capped) unless the user sized them.

    Returns:
      The partition count now in `options`, or None when `--dask_partition_size`
      was given instead.
    """
    dask_options = options.view_as(DaskOptions)
    if dask_options.npartitions is None and dask_options.partition_size is None:
        dask_options.npartitions = max(1, min(num_work_units, MAX_DEFAULT_DASK_PARTITIONS))
    return dask_options.npartitions


def _refuse_in_process_cluster(options: PipelineOptions) -> None:
    address = options.view_as(DaskOptions).address
    if address is not None and address.startswith("inproc://"):
        raise ValueError(
            f"--dask_client_address={address} is an in-process Dask cluster, on which Beam "
            "2.77's DaskRunner repeats outputs across partitions. Start the cluster with "
            "worker processes or the tcp protocol (e.g. LocalCluster(processes=True) or "
            "`dask scheduler` + `dask worker`) and pass its tcp:// address."
        )


def _fn_api_runner(options: PipelineOptions) -> PipelineRunner:
    # Built as Beam's DirectRunner builds it, so SDK worker processes receive the options.
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return fn_runner.FnApiRunner(provision_info=provision_info)


class SegbeamDaskRunner(DaskRunner):
    """Beam's DaskRunner, whose result closes its client and names a lost run."""

    def run_pipeline(self, pipeline: Pipeline, options: PipelineOptions) -> DaskRunnerResult:
        result = super().run_pipeline(pipeline, options)
        return _ClosingDaskResult(result.client, result.futures)


@dataclasses.dataclass
class _ClosingDaskResult(DaskRunnerResult):
    """Closes the run's dask.distributed Client once the run has ended, either way."""

    def wait_until_finish(self, duration: int | None = None) -> str:
        try:
            return super().wait_until_finish(duration)
        except (KilledWorker, CommClosedError) as e:
            raise RuntimeError(
                f"The Dask cluster lost this run ({type(e).__name__}: {e}). Workers were "
                "killed while running its tasks (often: over their memory limit) or the "
                "scheduler went away. No _SUCCESS was written; check the workers' logs, then "
                "rerun into the same --output."
            ) from e
        finally:
            if PipelineState.is_terminal(self._state):
                self.client.close()


def runner_name(runner: PipelineRunner | str) -> str:
    """The runner's name as the manifest and the logs give it."""
    if isinstance(runner, DaskRunner):
        return "DaskRunner"
    return runner if isinstance(runner, str) else type(runner).__name__

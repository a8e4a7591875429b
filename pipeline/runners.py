"""Resolves `--runner` to a runner object, without any network access.

Beam 2.77's DirectRunner first tries the Prism runner, whose binary it
downloads from the internet, and falls back to the FnApiRunner only when that
fails; offline, a download that hangs instead of failing would stall the run.
segbeam therefore runs "DirectRunner" (the default) on the FnApiRunner
directly, which honours --direct_num_workers, --direct_running_mode and
--direct_runner_bundle_repeat like the DirectRunner does. "DaskRunner" is
mapped to Beam's `apache_beam.runners.dask.dask_runner.DaskRunner`, which is
not one of Beam's short names. Any other value goes to Beam unchanged.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

_DIRECT_NAMES = {None, "DirectRunner", "directrunner", "direct", "FnApiRunner"}
_DASK_NAMES = {"DaskRunner", "daskrunner", "dask"}


def resolve_runner(options: PipelineOptions) -> PipelineRunner | str:
    """The runner to pass to `beam.Pipeline(runner=...)` for these options."""
    name = options.view_as(StandardOptions).runner
    if name in _DIRECT_NAMES:
        return _fn_api_runner(options)
    if name in _DASK_NAMES:
        from apache_beam.runners.dask.dask_runner import DaskRunner

        return DaskRunner()
    return name


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


def runner_name(runner: PipelineRunner | str) -> str:
    return runner if isinstance(runner, str) else type(runner).__name__

"""Where the pipeline's time goes: one instrumented in-process run, stage by stage.

    python -m benchmarks.stage_profile --input 'DIR/*.tfrecord' --output OUT \\
        --result_json R.json [--semantic_model SPEC] [--instance_model SPEC] [--batch_size 8]

Runs `pipeline.run.run` (DirectRunner, in-process FnApiRunner, one worker)
with `benchmarks.stage_timers` around each stage's functions, and records:
  * exclusive seconds per stage; what no timer covers is reported as
    "Beam runner and driver" (graph translation and fusion, coders at stage
    boundaries, the two in-memory shuffles, DoFn dispatch, planning, commit);
  * the fused stages the FnApiRunner executed, with the transforms in each;
  * how often the loader's tf.functions were traced.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from apache_beam.runners.portability.fn_api_runner import fn_runner

from benchmarks.common import VariantResult, add_common_flags, cpu_clock, split_beam_flags
from benchmarks.pipeline_run import pipeline_argv
from benchmarks.stage_timers import StageTimers
from benchmarks.tracing import TraceCounter
from pipeline.run import run

OTHER_STAGE = "Beam runner and driver (untimed rest)"


@contextlib.contextmanager
def record_fused_stages() -> Iterator[list[dict[str, Any]]]:
    """Captures the stages FnApiRunner.create_stages returns while the block runs."""
    recorded: list[dict[str, Any]] = []
    original = fn_runner.FnApiRunner.create_stages

    def create_stages(self: fn_runner.FnApiRunner, pipeline_proto: Any) -> Any:
        context, stages = original(self, pipeline_proto)
        for stage in stages:
            names = [
                t.unique_name for t in stage.transforms if not t.unique_name.startswith("ref_")
            ]
            recorded.append({"transforms": names})
        return context, stages

    fn_runner.FnApiRunner.create_stages = create_stages
    try:
        yield recorded
    finally:
        fn_runner.FnApiRunner.create_stages = original


def main(argv: Sequence[str]) -> int:
    own, beam_flags = split_beam_flags(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_flags(parser)
    parser.add_argument("--output", required=True, help="Run directory for the tables.")
    args = parser.parse_args(own)

    timers, traces = StageTimers(track_gc=True), TraceCounter()
    with timers.install(), traces.install(), record_fused_stages() as fused:
        start, cpu_start = time.perf_counter(), cpu_clock()
        outcome = run(pipeline_argv(args, beam_flags))
        total, cpu = time.perf_counter() - start, cpu_clock() - cpu_start
    stages = dict(timers.seconds)
    stages[OTHER_STAGE] = total - sum(timers.seconds.values())
    VariantResult(
        variant="stage_profile",
        num_images=outcome.ledger.images,
        seconds=total,
        details={
            "stage_seconds": stages,
            "stage_calls": timers.calls,
            "threads_seen": len(timers.threads_seen),
            "fused_stages": fused,
            "traces": traces.counts(),
            "counters": outcome.metrics or {},
        },
        cpu_seconds=cpu,
    ).write(args.result_json)
    for stage, seconds in stages.items():
        print(f"{stage:<40} {seconds:8.2f} s {seconds / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

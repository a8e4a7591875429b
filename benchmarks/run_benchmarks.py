"""The performance harness: every variant, same machine, same shards, same models, one command.

    python -m benchmarks.run_benchmarks [--num_images 200] [--scale 10] [--repeats 1]
        [--semantic_model SPEC] [--instance_model SPEC] [--batch_size 8]
        [--variants bare_loader,bare_raw,pipeline,runinference_peer,...]
        [--work_dir DIR] [--report FILE.md]

Generates 512x512 JPEG shards (cached under --work_dir), then runs each
variant in its own process, measuring the process's wall time and peak RSS
(see benchmarks.measure) next to the timing the variant reports itself:
  bare_loader / bare_raw   the bare limit (benchmarks.bare_loop)
  pipeline                 this pipeline end to end (benchmarks.pipeline_run)
  runinference_peer        the same job with Beam's RunInference (benchmarks.runinference_peer)
at --num_images and at --scale times as many; then, at the larger size only,
  pipeline_mp2             --direct_num_workers=2 --direct_running_mode=multi_processing
  pipeline_1bundle         --direct_num_workers=1 (Beam's one bundle at a time, in-process)
  stage_profile            where the pipeline's time goes (benchmarks.stage_profile)
and a retrace check on images of varied sizes. Prints the markdown report and
writes it, with every raw figure in results.json beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import plan
from benchmarks.common import (
    DEFAULT_BATCH_SIZE,
    IMAGE_SIZE,
    REPO_ROOT,
    VariantResult,
    ensure_dataset,
    environment_summary,
    shard_pattern,
)
from benchmarks.compare_outputs import TableAgreement, compare
from benchmarks.measure import Measurement, run_measured
from benchmarks.report import RunRecord, build_report
from models.spec import BUNDLED_INSTANCE_SPEC, BUNDLED_SEMANTIC_SPEC

DEFAULT_NUM_IMAGES = 200
DEFAULT_SCALE = 10
DEFAULT_WORK_DIR = "/tmp/segbeam-benchmarks"
_QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # Log noise only; no effect on speed.


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every run shares."""

    work_dir: Path
    semantic_model: str
    instance_model: str
    batch_size: int
    datasets: dict[tuple[str, int], Path]  # (dataset kind, images) -> shard directory.


def _command(run: plan.Run, settings: Settings, run_dir: Path) -> list[str]:
    dataset = settings.datasets[(run.dataset, run.num_images)]
    command = [
        sys.executable,
        "-m",
        run.module,
        f"--input={shard_pattern(dataset)}",
        f"--semantic_model={settings.semantic_model}",
        f"--instance_model={settings.instance_model}",
        f"--batch_size={settings.batch_size}",
        f"--result_json={run_dir / 'result.json'}",
    ]
    if run.writes_tables:
        command.append(f"--output={run_dir / 'out'}")
    return command + list(run.extra_args)  # Last: may end in "-- <Beam flags>".


def execute(run: plan.Run, settings: Settings) -> RunRecord:
    """Runs one variant process from a clean run directory and reads back its result."""
    run_dir = settings.work_dir / "runs" / run.name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    measurement = run_measured(
        _command(run, settings, run_dir),
        run_dir / "log.txt",
        env={**_QUIET_TF, **dict(run.env)},
        cwd=REPO_ROOT,
    )
    result_file = run_dir / "result.json"
    result = None
    if measurement.returncode == 0 and result_file.is_file():
        result = dataclasses.asdict(VariantResult.read(result_file))
    return RunRecord(run, measurement, result)


def _progress(index: int, total: int, record: RunRecord) -> str:
    m = record.measurement
    head = f"[{index}/{total}] {record.run.name}:"
    if record.result is None:
        return f"{head} FAILED (exit {m.returncode}); log: {m.log_path}"
    images, seconds = record.result["num_images"], record.result["seconds"]
    return (
        f"{head} {images} images in {seconds:.1f} s = {images / seconds:.2f} images/s; "
        f"wall {m.wall_seconds:.1f} s; peak RSS {m.peak_rss_bytes / 1e9:.2f} GB "
        f"(tree {m.peak_tree_rss_bytes / 1e9:.2f} GB)"
    )


def _agreements(records: Sequence[RunRecord], settings: Settings) -> list[TableAgreement]:
    """Pipeline vs peer tables at the largest size both ran, from their last repeats."""
    done = {(r.run.variant, r.run.num_images): r for r in records if r.result is not None}
    sizes = [n for (v, n) in done if v == plan.PEER and (plan.PIPELINE, n) in done]
    if not sizes:
        return []
    size = max(sizes)
    out = [
        settings.work_dir / "runs" / done[(v, size)].run.name / "out"
        for v in (plan.PIPELINE, plan.PEER)
    ]
    return compare(out[0], out[1])


def _record_from_json(raw: dict) -> RunRecord:
    run = raw["run"]
    return RunRecord(
        run=plan.Run(
            **{**run, "extra_args": tuple(run["extra_args"]), "env": tuple(map(tuple, run["env"]))}
        ),
        measurement=Measurement(
            **{**raw["measurement"], "command": tuple(raw["measurement"]["command"])}
        ),
        result=raw["result"],
    )


def _rebuild_report(results_path: Path) -> str:
    """The report of an earlier harness run, from the results.json it wrote."""
    saved = json.loads(results_path.read_text())
    records = [_record_from_json(r) for r in saved["records"]]
    agreements = [TableAgreement(**a) for a in saved["agreements"]]
    return build_report(saved["command"], saved["environment"], records, agreements)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num_images", type=int, default=DEFAULT_NUM_IMAGES)
    parser.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="1 = one size only.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs per variant and size.")
    parser.add_argument("--semantic_model", default=BUNDLED_SEMANTIC_SPEC)
    parser.add_argument("--instance_model", default=BUNDLED_INSTANCE_SPEC)
    parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--variants", default=",".join(plan.ALL_VARIANTS))
    parser.add_argument("--retrace_images", type=int, default=12)
    parser.add_argument("--work_dir", default=DEFAULT_WORK_DIR, help="Shards, runs, logs.")
    parser.add_argument("--report", default=None, help="Default: <work_dir>/report.md.")
    parser.add_argument("--no_warmup", action="store_true", help="Skip the unreported first run.")
    parser.add_argument(
        "--report_only", default=None, help="Rebuild the report from a results.json; run nothing."
    )
    return parser


def _prepare(args: argparse.Namespace, sizes: Sequence[int], variants: Sequence[str]) -> Settings:
    work_dir = Path(args.work_dir).resolve()
    datasets = {("fixed", n): ensure_dataset(work_dir, n, IMAGE_SIZE) for n in sizes}
    if plan.RETRACE in variants:
        datasets[("varied", args.retrace_images)] = ensure_dataset(
            work_dir, args.retrace_images, None
        )
    return Settings(work_dir, args.semantic_model, args.instance_model, args.batch_size, datasets)


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if args.num_images < 1 or args.scale < 1 or args.repeats < 1:
        raise ValueError("--num_images, --scale and --repeats must all be >= 1.")
    command = " ".join(["python -m benchmarks.run_benchmarks", shlex.join(argv)]).strip()
    if args.report_only:
        print(_rebuild_report(Path(args.report_only)))
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    sizes = sorted({args.num_images, args.num_images * args.scale})
    runs = plan.plan_runs(sizes, variants, args.repeats, args.retrace_images)
    settings = _prepare(args, sizes, variants)
    if not args.no_warmup:
        print(_progress(0, len(runs), execute(plan.warmup_run(sizes[0]), settings)) + " (warm-up)")
    records = []
    for index, run in enumerate(runs, start=1):
        records.append(execute(run, settings))
        print(_progress(index, len(runs), records[-1]), flush=True)
    agreements = _agreements(records, settings)
    environment = dict(environment_summary())
    report = build_report(command, environment, records, agreements)
    report_path = Path(args.report) if args.report else settings.work_dir / "report.md"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(report + "\n")
    results = {
        "command": command,
        "environment": environment,
        "records": [dataclasses.asdict(r) for r in records],
        "agreements": [dataclasses.asdict(a) for a in agreements],
    }
    (report_path.parent / "results.json").write_text(json.dumps(results, indent=1))
    print(report)
    print(f"\nReport: {report_path}; raw figures: {report_path.parent / 'results.json'}")
    return 0 if all(r.result is not None for r in records) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

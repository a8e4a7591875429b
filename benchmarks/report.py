"""Turns the measured runs into the markdown report: throughput, ratios, growth, stages, targets.

Pure functions over `RunRecord`s, so the report can be rebuilt from a saved
results file (`python -m benchmarks.run_benchmarks --report_only results.json`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks import plan
from benchmarks.compare_outputs import TableAgreement
from benchmarks.measure import Measurement

GB = 1e9
# Issue 6's targets (and issue 3's speed target).
MIN_BARE_RATIO = 0.90
MIN_PEER_RATIO = 1.0
MAX_TIME_GROWTH_PER_SCALE = 1.05  # 10x the images: time grows <= 10.5x.
MAX_RSS_GROWTH = 1.10
MAX_RSS_BYTES_10K = 2.5 * GB
MAX_ENCODE_FRACTION = 0.02
MIN_IMAGES_PER_SECOND = 8.0
ENCODE_STAGES = ("encode (semantic mask RLE)", "encode (instance mask RLE)")


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run, what its process cost, and what it reported (None if it failed)."""

    run: plan.Run
    measurement: Measurement
    result: dict[str, Any] | None  # A VariantResult as a dict.


@dataclasses.dataclass(frozen=True)
class Summary:
    """The repeats of one (variant, size), reduced: median times, largest memory."""

    variant: str
    num_images: int
    repeats: int
    seconds: float  # Median of the variants' own timings.
    wall_seconds: float  # Median process wall time.
    peak_rss_bytes: int
    peak_tree_rss_bytes: int
    cpu_seconds: float  # Median CPU time of the timed work (see VariantResult).
    max_load: float  # Highest 1-minute load average seen at a run's start or end.

    @property
    def images_per_second(self) -> float:
        return self.num_images / self.seconds

    @property
    def cpu_per_image(self) -> float:
        return self.cpu_seconds / self.num_images


def summarize(records: Sequence[RunRecord]) -> dict[tuple[str, int], Summary]:
    """Successful runs grouped by (variant, images requested)."""
    groups: dict[tuple[str, int], list[RunRecord]] = {}
    for record in records:
        if record.result is not None:
            groups.setdefault((record.run.variant, record.run.num_images), []).append(record)
    return {
        key: Summary(
            variant=key[0],
            num_images=group[0].result["num_images"],
            repeats=len(group),
            seconds=statistics.median(r.result["seconds"] for r in group),
            wall_seconds=statistics.median(r.measurement.wall_seconds for r in group),
            peak_rss_bytes=max(r.measurement.peak_rss_bytes for r in group),
            peak_tree_rss_bytes=max(r.measurement.peak_tree_rss_bytes for r in group),
            cpu_seconds=statistics.median(r.result.get("cpu_seconds", 0.0) for r in group),
            max_load=max(max(r.measurement.load_before, r.measurement.load_after) for r in group),
        )
        for key, group in groups.items()
    }


def _verdict(met: bool, detail: str) -> str:
    return f"**{'met' if met else 'MISSED'}**: {detail}"


def _throughput_table(summaries: Mapping[tuple[str, int], Summary]) -> list[str]:
    lines = [
        "| variant | images | timed s | images/s | CPU s / image | process wall s "
        "| peak RSS (largest process) | peak RSS (process tree) | max load avg | repeats |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (variant, _), s in sorted(summaries.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if variant == plan.RETRACE:
            continue
        lines.append(
            f"| {variant} | {s.num_images} | {s.seconds:.1f} | {s.images_per_second:.2f} "
            f"| {s.cpu_per_image:.3f} | {s.wall_seconds:.1f} | {s.peak_rss_bytes / GB:.2f} GB "
            f"| {s.peak_tree_rss_bytes / GB:.2f} GB | {s.max_load:.1f} | {s.repeats} |"
        )
    return lines


def _ratio(summaries: Mapping[tuple[str, int], Summary], a: str, b: str, size: int) -> float | None:
    if (a, size) not in summaries or (b, size) not in summaries:
        return None
    return summaries[(a, size)].images_per_second / summaries[(b, size)].images_per_second


def _cpu_ratio(
    summaries: Mapping[tuple[str, int], Summary], a: str, b: str, size: int
) -> float | None:
    """b's CPU seconds per image over a's: like the images/s ratio, but load-independent."""
    if (a, size) not in summaries or (b, size) not in summaries:
        return None
    own = summaries[(a, size)].cpu_per_image
    return summaries[(b, size)].cpu_per_image / own if own > 0 else None


def _marginal_rate(summaries: Mapping[tuple[str, int], Summary], variant: str) -> float | None:
    """Images/s between the smallest and largest size: the rate without fixed costs."""
    sizes = sorted(n for v, n in summaries if v == variant)
    if len(sizes) < 2:
        return None
    small, large = summaries[(variant, sizes[0])], summaries[(variant, sizes[-1])]
    extra = large.seconds - small.seconds
    return (large.num_images - small.num_images) / extra if extra > 0 else None


def _ratio_lines(summaries: Mapping[tuple[str, int], Summary], sizes: Sequence[int]) -> list[str]:
    lines = ["| ratio (images/s) | " + " | ".join(f"{n} images" for n in sizes) + " | marginal |"]
    lines.append("|---|" + "---:|" * (len(sizes) + 1))
    for label, a, b in (
        ("2/1 pipeline / bare loop (loader)", plan.PIPELINE, plan.BARE_LOADER),
        ("pipeline / bare loop (raw signatures)", plan.PIPELINE, plan.BARE_RAW),
        ("bare loader / bare raw (loader overhead)", plan.BARE_LOADER, plan.BARE_RAW),
        ("2/3 pipeline / RunInference peer", plan.PIPELINE, plan.PEER),
    ):
        cells = [_fmt(_ratio(summaries, a, b, n)) for n in sizes]
        ma, mb = _marginal_rate(summaries, a), _marginal_rate(summaries, b)
        marginal = _fmt(ma / mb if ma and mb else None)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {marginal} |")
        cpu_cells = [_fmt(_cpu_ratio(summaries, a, b, n)) for n in sizes]
        lines.append("| same, on CPU s / image | " + " | ".join(cpu_cells) + " | |")
    rates = {v: _marginal_rate(summaries, v) for v in plan.PER_SIZE_VARIANTS}
    lines.append("")
    lines.append(
        "Marginal images/s (extra images / extra seconds between the two sizes, i.e. the "
        "rate once fixed costs such as imports and model loading are paid): "
        + ", ".join(f"{v} {_fmt(r)}" for v, r in rates.items())
        + "."
    )
    return lines


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _stage_lines(profile: Mapping[str, Any]) -> list[str]:
    seconds: Mapping[str, float] = profile["details"]["stage_seconds"]
    total = profile["seconds"]
    calls = profile["details"]["stage_calls"]
    lines = [
        f"Stage profile of one in-process run on {profile['num_images']} images "
        f"({total:.1f} s timed, {profile['num_images'] / total:.2f} images/s with the timers on):",
        "",
        "| stage | seconds | share | calls |",
        "|---|---:|---:|---:|",
    ]
    for stage, value in seconds.items():
        lines.append(f"| {stage} | {value:.2f} | {value / total:.1%} | {calls.get(stage, '')} |")
    return lines


def _fused_stage_lines(profile: Mapping[str, Any]) -> list[str]:
    lines = ["Fused stages the FnApiRunner executed (transforms in each):", ""]
    for index, stage in enumerate(profile["details"]["fused_stages"]):
        lines.append(f"{index + 1}. " + ", ".join(stage["transforms"]))
    return lines


def _trace_lines(records: Sequence[RunRecord]) -> list[str]:
    lines = []
    for record in records:
        traces = (record.result or {}).get("details", {}).get("traces")
        if record.run.variant in (plan.RETRACE, plan.PROFILE) and traces:
            counts = "; ".join(f"{name}: {counts}" for name, counts in sorted(traces.items()))
            lines.append(
                f"- {record.run.variant} ({record.result['num_images']} images, "
                f"{record.run.dataset} sizes): traces per tf.function: {counts}"
            )
    return lines


def _parquet_lines(label: str, result: Mapping[str, Any]) -> list[str]:
    stats = result["details"]["table_stats"]
    images = result["num_images"]
    lines = [
        f"{label} ({images} images):",
        "",
        "| table | bytes / 1,000 images | rows | files | row groups | max rows / group | codec |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for table, entry in stats.items():
        lines.append(
            f"| {table} | {entry['bytes'] / images * 1000:,.0f} | {entry['rows']} "
            f"| {entry['files']} | {entry['row_groups']} | {entry['max_rows_per_group']} "
            f"| {', '.join(entry['codecs'])} |"
        )
    return lines


def _agreement_lines(agreements: Sequence[TableAgreement]) -> list[str]:
    lines = [
        "| table | pipeline rows | peer rows | identical | agreement |",
        "|---|---:|---:|---:|---:|",
    ]
    for a in agreements:
        lines.append(
            f"| {a.table} | {a.pipeline_rows} | {a.peer_rows} | {a.identical_rows} "
            f"| {a.fraction:.1%} |"
        )
    return lines


def _growth_targets(
    summaries: Mapping[tuple[str, int], Summary], sizes: Sequence[int]
) -> list[str]:
    small, large = (
        summaries.get((plan.PIPELINE, sizes[0])),
        summaries.get((plan.PIPELINE, sizes[-1])),
    )
    if small is None or large is None or len(sizes) < 2:
        return ["- Growth with the image count: not measured (run with --scale > 1)."]
    scale = large.num_images / small.num_images
    growth = large.seconds / small.seconds
    rss_growth = large.peak_tree_rss_bytes / small.peak_tree_rss_bytes
    lines = [
        f"- {scale:.0f}x the images, time grows <= {MAX_TIME_GROWTH_PER_SCALE * scale:.1f}x: "
        + _verdict(
            growth <= MAX_TIME_GROWTH_PER_SCALE * scale,
            f"{small.seconds:.1f} s -> {large.seconds:.1f} s = {growth:.2f}x.",
        ),
        f"- {scale:.0f}x the images, peak RSS within {MAX_RSS_GROWTH - 1:.0%}: "
        + _verdict(
            rss_growth <= MAX_RSS_GROWTH,
            f"process tree {small.peak_tree_rss_bytes / GB:.2f} GB -> "
            f"{large.peak_tree_rss_bytes / GB:.2f} GB = {rss_growth:.2f}x.",
        ),
    ]
    if large.num_images >= 10_000:
        detail = f"measured {large.peak_tree_rss_bytes / GB:.2f} GB at {large.num_images} images."
        rss_10k = large.peak_tree_rss_bytes
    else:
        slope = (large.peak_tree_rss_bytes - small.peak_tree_rss_bytes) / (
            large.num_images - small.num_images
        )
        rss_10k = large.peak_tree_rss_bytes + max(0.0, slope) * (10_000 - large.num_images)
        detail = (
            f"EXTRAPOLATED (not measured): {rss_10k / GB:.2f} GB at 10,000 images, linearly "
            f"from {small.num_images} and {large.num_images} images."
        )
    lines.append(
        "- Peak RSS < 2.5 GB for 10,000 images: " + _verdict(rss_10k < MAX_RSS_BYTES_10K, detail)
    )
    return lines


def _target_lines(
    summaries: Mapping[tuple[str, int], Summary],
    sizes: Sequence[int],
    profile: Mapping[str, Any] | None,
    pipeline_tables: Mapping[str, Any] | None,
) -> list[str]:
    n = sizes[-1]
    lines = []
    for label, other, minimum in (
        ("End-to-end >= 0.90 of the bare limit (loader)", plan.BARE_LOADER, MIN_BARE_RATIO),
        (">= 1.0 of the RunInference peer", plan.PEER, MIN_PEER_RATIO),
    ):
        ratio = _ratio(summaries, plan.PIPELINE, other, n)
        if ratio is None:
            lines.append(f"- {label}: not measured.")
            continue
        ma, mb = _marginal_rate(summaries, plan.PIPELINE), _marginal_rate(summaries, other)
        marginal = f"; marginal rate ratio {ma / mb:.2f}" if ma and mb else ""
        marginal += f"; on CPU s / image {_fmt(_cpu_ratio(summaries, plan.PIPELINE, other, n))}"
        lines.append(
            f"- {label}: "
            + _verdict(ratio >= minimum, f"{ratio:.2f} at {n} images ({marginal[2:]}).")
        )
    lines += _growth_targets(summaries, sizes)
    if profile is not None:
        stage_seconds = profile["details"]["stage_seconds"]
        fraction = sum(stage_seconds.get(s, 0.0) for s in ENCODE_STAGES) / profile["seconds"]
        lines.append(
            "- Mask encoding < 2% of the run: "
            + _verdict(fraction < MAX_ENCODE_FRACTION, f"{fraction:.2%} (stage profile).")
        )
    if pipeline_tables is not None:
        codecs = {c for entry in pipeline_tables.values() for c in entry["codecs"]}
        lines.append(
            "- Parquet compressed with zstd: "
            + _verdict(codecs <= {"ZSTD"}, f"codecs found: {sorted(codecs) or ['none (no rows)']}.")
        )
    pipeline = summaries.get((plan.PIPELINE, n))
    if pipeline is not None:
        lines.append(
            f"- Issue 3: >= {MIN_IMAGES_PER_SECOND:.0f} images/s end to end: "
            + _verdict(
                pipeline.images_per_second >= MIN_IMAGES_PER_SECOND,
                f"{pipeline.images_per_second:.2f} images/s at {n} images.",
            )
        )
    return lines


def _latest(
    records: Sequence[RunRecord], variant: str, size: int | None = None
) -> dict[str, Any] | None:
    for record in reversed(records):
        matches = size is None or record.run.num_images == size
        if record.run.variant == variant and record.result is not None and matches:
            return record.result
    return None


def build_report(
    command: str,
    environment: Mapping[str, Any],
    records: Sequence[RunRecord],
    agreements: Sequence[TableAgreement],
) -> str:
    """The whole markdown report."""
    summaries = summarize(records)
    sizes = sorted({r.run.num_images for r in records if r.run.variant in plan.PER_SIZE_VARIANTS})
    profile = _latest(records, plan.PROFILE)
    pipeline_result = _latest(records, plan.PIPELINE, sizes[-1]) if sizes else None
    pipeline_tables = (pipeline_result or {}).get("details", {}).get("table_stats")
    failed = [r for r in records if r.result is None]
    machine = ", ".join(f"{k} {v}" for k, v in environment.items())
    out = [f"Command: `{command}`", "", f"Machine: {machine}.", ""]
    if failed:
        out += [f"FAILED runs (see their logs): {', '.join(r.run.name for r in failed)}", ""]
    out += [
        "### Targets",
        "",
        *(_target_lines(summaries, sizes, profile, pipeline_tables) if sizes else []),
        "",
    ]
    out += ["### Throughput and memory", "", *_throughput_table(summaries), ""]
    if sizes:
        out += ["### Ratios", "", *_ratio_lines(summaries, sizes), ""]
    if profile is not None:
        out += ["### Where the time goes", "", *_stage_lines(profile), ""]
        out += [*_fused_stage_lines(profile), ""]
    traces = _trace_lines(records)
    if traces:
        out += ["### tf.function traces", "", *traces, ""]
    if pipeline_tables:
        out += ["### Parquet output", "", *_parquet_lines("This pipeline", pipeline_result), ""]
    peer_result = _latest(records, plan.PEER, sizes[-1]) if sizes else None
    if peer_result is not None and peer_result["details"].get("table_stats"):
        out += [*_parquet_lines("The RunInference peer (WriteToParquet, zstd)", peer_result), ""]
    if agreements:
        out += ["### Same output: pipeline vs peer", "", *_agreement_lines(agreements), ""]
    return "\n".join(out)

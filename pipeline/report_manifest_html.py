"""The report's sections drawn from manifest.json: run summary, ledger, evaluation, versions.

The manifest is read defensively: a key missing from an older or partial
manifest shows as a dash, never as a failed report. Every value is escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

from pipeline.report_data import ReportData

DASH = "&ndash;"


def escape(value: object) -> str:
    """`value` as HTML text; None as a dash."""
    return DASH if value is None else html.escape(str(value))


def lookup(document: object, *keys: str) -> object:
    """document[k1][k2]..., or None where any level is missing."""
    value = document
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def run_section(data: ReportData) -> str:
    """Headline numbers, run facts, and the whole manifest behind a disclosure."""
    manifest = data.manifest
    cards = [
        _card("images", data.num_images),
        _card("instances", data.num_instances),
        _card("errors", data.num_errors),
        _card("duration (s)", lookup(manifest, "duration_seconds")),
        _card("images / s", lookup(manifest, "images_per_second")),
    ]
    if manifest is None:
        return f'<h2>Run</h2><div class="cards">{"".join(cards)}</div>'
    facts = [
        ("Run id", lookup(manifest, "run_id")),
        ("Runner", lookup(manifest, "runner")),
        ("Started", lookup(manifest, "started_at")),
        ("Finished", lookup(manifest, "finished_at")),
        ("Input patterns", _join(lookup(manifest, "config", "input_patterns"))),
        ("Semantic model", _model_text(lookup(manifest, "models", "semantic"))),
        ("Instance model", _model_text(lookup(manifest, "models", "instance"))),
        ("Batch size", lookup(manifest, "config", "batch_size")),
        ("Score threshold", lookup(manifest, "config", "score_threshold")),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    full = html.escape(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return (
        f'<h2>Run</h2><div class="cards">{"".join(cards)}</div>'
        f'<table style="margin-top:12px">{rows}</table>'
        f"<details><summary>manifest.json</summary><pre>{full}</pre></details>"
    )


def _card(label: str, value: object) -> str:
    return (
        f'<div class="card"><div class="stat">{escape(value)}</div>'
        f'<div class="label">{escape(label)}</div></div>'
    )


def _join(values: object) -> str | None:
    return ", ".join(str(v) for v in values) if isinstance(values, list) else None


def _model_text(entry: object) -> str:
    if entry is None:
        return "none (switched off)"
    spec = lookup(entry, "spec")
    where = lookup(spec, "source") or lookup(spec, "path")
    parts = [str(p) for p in (lookup(spec, "format"), where) if p]
    fingerprint = lookup(entry, "fingerprint")
    if fingerprint:
        parts.append(f"fingerprint {str(fingerprint)[:12]}")
    return ", ".join(parts) or "unknown"


def ledger_section(manifest: Mapping[str, object] | None) -> str:
    """The record ledger (read = images + errors) and each table's rows, files and bytes."""
    ledger = lookup(manifest, "ledger")
    if not isinstance(ledger, Mapping):
        return "<h2>Ledger</h2><p>No ledger in the manifest.</p>"
    read, images, errors = (ledger.get(k) for k in ("records_read", "images", "errors"))
    balanced = read is not None and read == (images or 0) + (errors or 0)
    verdict = '<span class="ok">balanced</span>' if balanced else '<span class="bad">off</span>'
    summary = (
        f"<p>{escape(ledger.get('input_files'))} input files, {escape(read)} records read = "
        f"{escape(images)} images + {escape(errors)} errors: {verdict}.</p>"
    )
    body = "".join(
        f'<tr><td>{escape(name)}</td><td class="num">{escape(lookup(stats, "rows"))}</td>'
        f'<td class="num">{escape(lookup(stats, "files"))}</td>'
        f'<td class="num">{escape(lookup(stats, "bytes"))}</td></tr>'
        for name, stats in _table_stats(manifest).items()
    )
    table = (
        '<table><tr><th>table</th><th class="num">rows</th><th class="num">files</th>'
        f'<th class="num">bytes</th></tr>{body}</table>'
    )
    return f"<h2>Ledger</h2>{summary}{table}"


def _table_stats(manifest: Mapping[str, object] | None) -> Mapping[str, object]:
    tables = lookup(manifest, "tables")
    return tables if isinstance(tables, Mapping) else {}


def evaluation_section(manifest: Mapping[str, object] | None) -> str:
    """Run-level metrics of an --evaluate run; nothing for runs without ground truth."""
    evaluation = lookup(manifest, "evaluation")
    if not isinstance(evaluation, Mapping):
        return ""
    rows = [
        ("images evaluated", lookup(evaluation, "images_evaluated")),
        ("semantic mIoU", _number(lookup(evaluation, "semantic", "miou"))),
        ("pixel accuracy", _number(lookup(evaluation, "semantic", "pixel_accuracy"))),
        ("PQ (all classes)", _number(lookup(evaluation, "panoptic", "all", "pq"))),
        ("mask AP", _number(lookup(evaluation, "instance", "ap"))),
        ("mask AP50", _number(lookup(evaluation, "instance", "ap50"))),
    ]
    ious = lookup(evaluation, "semantic", "iou")
    if isinstance(ious, Mapping):
        rows += [(f"IoU {name}", _number(value)) for name, value in ious.items()]
    body = "".join(
        f'<tr><th>{escape(k)}</th><td class="num">{escape(v)}</td></tr>' for k, v in rows
    )
    return f"<h2>Evaluation against ground truth</h2><table>{body}</table>"


def _number(value: object) -> str | None:
    return f"{value:.3f}" if isinstance(value, int | float) else None


def versions_section(manifest: Mapping[str, object] | None) -> str:
    """The library versions the run used, from the manifest."""
    versions = lookup(manifest, "library_versions")
    if not isinstance(versions, Mapping):
        return ""
    text = ", ".join(f"{escape(k)} {escape(v)}" for k, v in sorted(versions.items()))
    return f'<h2>Versions</h2><p class="sub">{text}</p>'

"""The run manifest: what a run read, which models and versions it used, what it wrote."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
from collections.abc import Mapping, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from models.spec import ModelSpec
from pipeline.ledger import Ledger, TableStats
from pipeline.options import RunConfig
from transforms.elements import WorkUnit

_LIBRARIES = (
    "apache-beam",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "numpy",
    "pyarrow",
    "pycocotools",
    "pillow",
    "dask",
    "distributed",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a run's output."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # e.g. tensorflow (GPU build) vs tensorflow-cpu: record what is there.
    return versions


def _model_entry(spec: ModelSpec | None) -> dict[str, object] | None:
    if spec is None:
        return None
    return {"spec": spec.to_json_dict(), "fingerprint": spec.fingerprint()}


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def build_manifest(
    *,
    run_id: str,
    config: RunConfig,
    options: PipelineOptions,
    units: Sequence[WorkUnit],
    ledger: Ledger,
    started: datetime.datetime,
    finished: datetime.datetime,
    metrics: dict[str, object] | None,
    runner: str,
    evaluation: dict[str, object] | None = None,
    tables: Mapping[str, TableStats] | None = None,
) -> dict[str, object]:
    """The manifest.json document of one successful run."""
    seconds = (finished - started).total_seconds()
    return {
        "status": "succeeded",
        "run_id": run_id,
        "runner": runner,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_seconds": round(seconds, 3),
        "images_per_second": round(ledger.records_read / seconds, 3) if seconds > 0 else None,
        "config": config.to_json_dict(),
        "beam_options": options.get_all_options(drop_default=True, retain_unknown_options=True),
        "models": {
            "semantic": _model_entry(config.semantic_spec),
            "instance": _model_entry(config.instance_spec),
        },
        "inputs": {
            "work_units": len(units),
            "files": sum(len(u.paths) for u in units),
        },
        "ledger": ledger.to_json_dict(),
        "tables": {name: stats._asdict() for name, stats in (tables or {}).items()},
        "metrics": metrics,
        "evaluation": evaluation,
        "library_versions": library_versions(),
    }

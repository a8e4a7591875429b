"""Helpers for whole-pipeline tests: tiny model specs, running segbeam, reading its tables.

Tables are read here with pyarrow directly (not with segbeam's own ledger
reader), so the tests check the files a user would query.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from pipeline import schemas
from tests.models import tiny_models

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = REPO_ROOT / "models" / "bundled" / "labels.txt"
# Class id the red-foreground model gives pixels whose red channel is >= 128.
FOREGROUND_CLASS = 1

Rows = list[dict[str, object]]


@dataclasses.dataclass(frozen=True)
class TinyModels:
    """Spec files of two tiny test models (see tests/models/tiny_models.py).

    Semantic: class 1 where red >= 128, else class 0, at each image's own size.
    Instance: the OD-API model's fixed detections (two above the 0.5 threshold).
    """

    semantic_spec: Path
    instance_spec: Path

    def flags(self) -> list[str]:
        return [f"--semantic_model={self.semantic_spec}", f"--instance_model={self.instance_spec}"]


def build_tiny_models(directory: Path) -> TinyModels:
    """Saves both tiny models under `directory` and writes their spec files."""
    directory.mkdir(parents=True, exist_ok=True)
    semantic = tiny_models.save_red_foreground_model(directory / "red_foreground")
    instance = tiny_models.save_od_api_model(directory / "od_api")
    return TinyModels(
        semantic_spec=tiny_models.write_spec(
            directory / "semantic.json",
            path=str(semantic),
            input_range="unit",
            output_format="foreground_probability",
            output_key="foreground",
            labels=str(LABELS),
        ),
        instance_spec=tiny_models.write_spec(
            directory / "instance.json",
            path=str(instance),
            output_format="od_api",
            labels=str(LABELS),
        ),
    )


def segbeam_argv(inputs: str, output: Path | str, models: TinyModels, *flags: str) -> list[str]:
    return [f"--input={inputs}", f"--output={output}", *models.flags(), *flags]


def start_segbeam(argv: list[str], script: Path | None = None) -> subprocess.Popen[bytes]:
    """Starts run_pipeline.py (or `script`, given the same flags) in its own process group."""
    command = [sys.executable, str(script or REPO_ROOT / "run_pipeline.py"), *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def read_rows(output: Path, table: str) -> Rows:
    """All rows of `table` under a run directory, in a canonical order."""
    rows: Rows = []
    for path in sorted((output / table).glob("*.parquet")):
        rows += pq.read_table(path, schema=schemas.TABLES[table]).to_pylist()
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def read_all_tables(output: Path) -> dict[str, Rows]:
    return {table: read_rows(output, table) for table in schemas.TABLES}


def relative_files(directory: Path) -> list[str]:
    """Every file under `directory`, hidden ones included, as sorted relative paths."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def snapshot(directory: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `directory`, except those under `skip`."""
    found = {}
    for path in directory.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file():
            stat = path.stat()
            found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def committed_files(output: Path) -> list[str]:
    """The files a complete run directory must hold: one part per table, manifest, marker."""
    parts = [f"{table}/part-00000-of-00001.parquet" for table in schemas.TABLES]
    return sorted([*parts, "_SUCCESS", "manifest.json"])

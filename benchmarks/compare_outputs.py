"""Checks that the pipeline and the RunInference peer wrote the same masks.

The two jobs name images differently (the peer cannot know record indexes),
so rows are matched through the `images` tables' `filename`. A row agrees when
every compared column is equal: the RLE strings byte for byte.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb

# Table -> (columns that identify a row within an image, columns that must agree).
_COMPARED = {
    "semantic_masks": (("class_id",), ("pixel_count", "rle")),
    "instances": (("instance_id_rank",), ("class_id", "area", "rle")),
    "class_counts": (("class_id",), ("pixel_count", "instance_count")),
}


@dataclasses.dataclass(frozen=True)
class TableAgreement:
    """How many of one table's rows the two outputs share exactly."""

    table: str
    pipeline_rows: int
    peer_rows: int
    identical_rows: int

    @property
    def fraction(self) -> float:
        """Identical rows over the larger side's row count (1.0 when both are empty)."""
        larger = max(self.pipeline_rows, self.peer_rows)
        return self.identical_rows / larger if larger else 1.0


def _view(connection: duckdb.DuckDBPyConnection, name: str, tables_dir: Path, table: str) -> None:
    files = str(tables_dir / table / "*.parquet")
    rank = ", split_part(t.instance_id, '-', 2) AS instance_id_rank" if table == "instances" else ""
    connection.execute(
        f"CREATE VIEW {name} AS SELECT i.filename, t.*{rank} "
        f"FROM read_parquet('{files}') t "
        f"JOIN read_parquet('{tables_dir / 'images' / '*.parquet'}') i USING (image_id)"
    )


def compare(pipeline_dir: Path, peer_dir: Path) -> list[TableAgreement]:
    """Row agreement per compared table between two runs' output directories."""
    results = []
    for table, (keys, values) in _COMPARED.items():
        connection = duckdb.connect()
        _view(connection, "a", pipeline_dir, table)
        _view(connection, "b", peer_dir, table)
        on = " AND ".join(f"a.{c} = b.{c}" for c in ("filename", *keys, *values))
        (pipeline_rows,) = connection.execute("SELECT count(*) FROM a").fetchone()
        (peer_rows,) = connection.execute("SELECT count(*) FROM b").fetchone()
        (identical,) = connection.execute(f"SELECT count(*) FROM a JOIN b ON {on}").fetchone()
        results.append(TableAgreement(table, pipeline_rows, peer_rows, identical))
        connection.close()
    return results

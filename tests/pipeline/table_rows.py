"""Row builders and a part-file writer for tests that lay out run directories by hand."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import schemas


def image_row(image_id, source="s", width=1, height=1, num_instances=0, content_sha256=""):
    """One `images` row; only the columns a test cares about need saying."""
    return {
        "image_id": image_id,
        "source": source,
        "record_index": 0,
        "width": width,
        "height": height,
        "num_instances": num_instances,
        "filename": "",
        "source_id": "",
        "content_sha256": content_sha256,
    }


def write_part(tables_dir: Path, table: str, rows, name="part-00000-of-00001.parquet") -> Path:
    """Writes `rows` as one Parquet part of `table`, with the table's schema."""
    directory = tables_dir / table
    directory.mkdir(parents=True, exist_ok=True)
    data = pa.Table.from_pylist(rows, schema=schemas.ALL_TABLES[table])
    pq.write_table(data, directory / name)
    return directory / name

"""The output tables' schemas: defined once here, imported by writers and tests.

Every table is a directory of zstd-compressed Parquet files under the run's
output directory: `<output>/<table>/part-NNNNN-of-MMMMM.parquet`.
"""

from __future__ import annotations

import pyarrow as pa


def _required(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


IMAGES = pa.schema(
    [
        _required("image_id", pa.string()),
        _required("source", pa.string()),
        _required("record_index", pa.int64()),
        _required("width", pa.int32()),
        _required("height", pa.int32()),
        _required("num_instances", pa.int32()),
        _required("filename", pa.string()),
        _required("source_id", pa.string()),
        _required("content_sha256", pa.string()),
    ]
)

SEMANTIC_MASKS = pa.schema(
    [
        _required("image_id", pa.string()),
        _required("class_id", pa.int32()),
        _required("class_name", pa.string()),
        _required("height", pa.int32()),
        _required("width", pa.int32()),
        _required("pixel_count", pa.int64()),
        _required("rle", pa.string()),
    ]
)

CLASS_COUNTS = pa.schema(
    [
        _required("image_id", pa.string()),
        _required("class_id", pa.int32()),
        _required("class_name", pa.string()),
        _required("pixel_count", pa.int64()),
        _required("pixel_fraction", pa.float64()),
        _required("instance_count", pa.int32()),
    ]
)

INSTANCES = pa.schema(
    [
        _required("image_id", pa.string()),
        _required("instance_id", pa.string()),
        _required("class_id", pa.int32()),
        _required("class_name", pa.string()),
        _required("score", pa.float32()),
        _required("bbox_x", pa.float32()),
        _required("bbox_y", pa.float32()),
        _required("bbox_w", pa.float32()),
        _required("bbox_h", pa.float32()),
        _required("area", pa.int64()),
        _required("height", pa.int32()),
        _required("width", pa.int32()),
        _required("rle", pa.string()),
    ]
)

ERRORS = pa.schema(
    [
        _required("source", pa.string()),
        _required("record_index", pa.int64()),
        pa.field("image_id", pa.string(), nullable=True),
        _required("stage", pa.string()),
        _required("error_type", pa.string()),
        _required("message", pa.string()),
    ]
)

# The read side of the ledger: one row per input file (TFRecord shard or image file).
SHARDS = pa.schema(
    [
        _required("source", pa.string()),
        _required("num_records", pa.int64()),
        _required("num_read_errors", pa.int64()),
        _required("num_bytes", pa.int64()),
    ]
)

# --evaluate: per-image and whole-run metrics in long format (one value per row),
# so new metrics never change the schema. scope "image": one image's values
# (image_id set); scope "run": the whole run's (image_id null). class_id is
# null for metrics over all classes.
METRICS = pa.schema(
    [
        _required("scope", pa.string()),
        pa.field("image_id", pa.string(), nullable=True),
        pa.field("class_id", pa.int32(), nullable=True),
        pa.field("class_name", pa.string(), nullable=True),
        _required("metric", pa.string()),
        _required("value", pa.float64()),
    ]
)

# --evaluate: the ground-truth instances the metrics were computed against.
GROUND_TRUTH = pa.schema(
    [
        _required("image_id", pa.string()),
        _required("instance_index", pa.int32()),
        _required("class_id", pa.int32()),
        _required("class_name", pa.string()),
        _required("area", pa.int64()),
        _required("height", pa.int32()),
        _required("width", pa.int32()),
        _required("rle", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "images": IMAGES,
    "semantic_masks": SEMANTIC_MASKS,
    "class_counts": CLASS_COUNTS,
    "instances": INSTANCES,
    "errors": ERRORS,
    "shards": SHARDS,
}

EVALUATION_TABLES: dict[str, pa.Schema] = {"metrics": METRICS, "ground_truth": GROUND_TRUTH}

# --skip_existing: records whose encoded image an earlier run already processed.
SKIPPED = pa.schema(
    [
        _required("source", pa.string()),
        _required("record_index", pa.int64()),
        _required("image_id", pa.string()),
        _required("content_sha256", pa.string()),
    ]
)
INCREMENTAL_TABLES: dict[str, pa.Schema] = {"skipped": SKIPPED}
ALL_TABLES: dict[str, pa.Schema] = {**TABLES, **EVALUATION_TABLES, **INCREMENTAL_TABLES}


def tables_for(evaluate: bool, skip_existing: bool = False) -> dict[str, pa.Schema]:
    """The tables a run writes: the core ones, plus those of --evaluate and --skip_existing."""
    tables = dict(TABLES)
    if evaluate:
        tables.update(EVALUATION_TABLES)
    if skip_existing:
        tables.update(INCREMENTAL_TABLES)
    return tables

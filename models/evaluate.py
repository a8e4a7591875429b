"""Scores a pipeline run's output tables against the ground truth in its input shards.

    python -m models.evaluate --shards 'GLOB' --run_dir DIR [--json OUT]

Ground truth comes from the TFRecords (`image/segmentation/class/encoded`,
`image/object/mask`, `image/object/class/label`); predictions from
`DIR/semantic_masks/*.parquet` and `DIR/instances/*.parquet`, joined by
`image_id = make_image_id(absolute shard path, record index)`. An image the run
has no semantic rows for counts as entirely unpredicted (every pixel a miss),
so dropped records lower the score instead of vanishing from it.

The metric functions live in `models.evaluate_metrics` (numpy in, numbers out).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from PIL import Image
from pycocotools import mask as mask_utils

from models.evaluate_metrics import (
    Detection,
    GroundTruthImage,
    confusion_matrix,
    encode_mask,
    instance_scores,
    mask_fit,
    misses,
    semantic_scores,
)
from models.synthetic import LABELS_PATH
from pipeline import schemas
from transforms.elements import make_image_id

THING_CLASS_IDS = (5, 6)
# Image shape groups by width / height, upper bounds exclusive: models that
# stretch images to a fixed input squeeze wide images horizontally, and thin
# upright objects (pedestrians) suffer first, so AP is also reported per group.
SHAPE_GROUPS = (("portrait", 0.9), ("up to 1.6:1", 1.6), ("wider than 1.6:1", float("inf")))


def shape_group(height: int, width: int) -> str:
    """The SHAPE_GROUPS name of an image of height x width."""
    return next(name for name, bound in SHAPE_GROUPS if width / height < bound)


def _scores_by_shape(
    ground_truth: list[GroundTruthImage], detections: list[Detection], class_names: list[str]
) -> dict[str, dict]:
    """Per SHAPE_GROUPS group: image and instance counts and AP50 per thing class."""
    out = {}
    for name, _ in SHAPE_GROUPS:
        members = [i for i, g in enumerate(ground_truth) if shape_group(g.height, g.width) == name]
        if not members:
            continue
        position = {image: k for k, image in enumerate(members)}
        subset = [ground_truth[i] for i in members]
        dets = [
            d._replace(image_index=position[d.image_index])
            for d in detections
            if d.image_index in position
        ]
        out[name] = {"num_images": len(members)}
        for c in THING_CLASS_IDS:
            out[name][class_names[c]] = {
                "num_instances": sum(k == c for g in subset for k in g.class_ids),
                "AP50": instance_scores(subset, dets, (c,)).ap50,
            }
    return out


def _misses_by_area(
    ground_truth: list[GroundTruthImage], detections: list[Detection], class_id: int
) -> dict[str, dict[str, int]]:
    """`misses` as plain dicts for the JSON report: area range -> verdict -> count."""
    return {
        area: counts._asdict()
        for area, counts in misses(ground_truth, detections, class_id).items()
    }


class ShardRecord(NamedTuple):
    """Ground truth of one shard record, decoded."""

    image_id: str
    class_map: np.ndarray  # uint8 [H, W].
    instances: GroundTruthImage


def read_ground_truth(shard_paths: list[str]) -> Iterator[ShardRecord]:
    """Yields every record's ground truth, keyed like the pipeline keys images."""
    for path in shard_paths:
        source = os.path.abspath(path)
        for index, raw in enumerate(tf.data.TFRecordDataset(source).as_numpy_iterator()):
            yield _parse_record(make_image_id(source, index), raw, source, index)


def _parse_record(image_id: str, raw: bytes, source: str, index: int) -> ShardRecord:
    feature = tf.train.Example.FromString(raw).features.feature
    if "image/segmentation/class/encoded" not in feature:
        raise ValueError(
            f"Record {index} of {source} has no image/segmentation/class/encoded ground truth; "
            "evaluate only shards written by models.synthetic or with the same keys."
        )
    class_map = np.asarray(
        Image.open(io.BytesIO(feature["image/segmentation/class/encoded"].bytes_list.value[0]))
    )
    height, width = class_map.shape
    masks = [
        np.asarray(Image.open(io.BytesIO(png))) > 0
        for png in feature["image/object/mask"].bytes_list.value
    ]
    labels = tuple(int(v) for v in feature["image/object/class/label"].int64_list.value)
    return ShardRecord(
        image_id,
        class_map,
        GroundTruthImage(height, width, tuple(encode_mask(m) for m in masks), labels),
    )


def read_table(run_dir: str | Path, table: str) -> pa.Table:
    """All Parquet parts of one output table, or an empty table of its schema."""
    schema = schemas.TABLES[table]
    parts = sorted(glob.glob(os.path.join(str(run_dir), table, "*.parquet")))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([pq.read_table(p, schema=schema) for p in parts])


def _rows_by_image(table: pa.Table) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        rows[row["image_id"]].append(row)
    return rows


def _predicted_class_map(rows: list[dict], height: int, width: int, num_classes: int) -> np.ndarray:
    """Paints semantic_masks rows into a class map; unpainted pixels get `num_classes` (void)."""
    pred = np.full((height, width), num_classes, dtype=np.int64)
    for row in rows:
        mask = mask_utils.decode(
            {"size": [row["height"], row["width"]], "counts": row["rle"].encode()}
        )
        if mask.shape != (height, width):
            raise ValueError(
                f"semantic_masks row for image {row['image_id']} is "
                f"{mask.shape[0]}x{mask.shape[1]} "
                f"but its ground truth is {height}x{width}; was the run made from these shards?"
            )
        pred[mask.astype(bool)] = row["class_id"]
    return pred


def evaluate_run(shard_paths: list[str], run_dir: str | Path, class_names: list[str]) -> dict:
    """Computes the semantic and instance metrics of one run; returns the JSON summary."""
    num_classes = len(class_names)
    semantic_rows = _rows_by_image(read_table(run_dir, "semantic_masks"))
    instance_rows = _rows_by_image(read_table(run_dir, "instances"))
    confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    ground_truth: list[GroundTruthImage] = []
    detections: list[Detection] = []
    missing = 0
    for record in read_ground_truth(shard_paths):
        height, width = record.class_map.shape
        missing += record.image_id not in semantic_rows
        pred = _predicted_class_map(
            semantic_rows.get(record.image_id, []), height, width, num_classes
        )
        confusion += confusion_matrix(record.class_map, pred, num_classes)
        for row in instance_rows.get(record.image_id, []):
            rle = {"size": [row["height"], row["width"]], "counts": row["rle"]}
            detections.append(
                Detection(len(ground_truth), row["class_id"], float(row["score"]), rle)
            )
        ground_truth.append(record.instances)
    sem = semantic_scores(confusion)
    ins = instance_scores(ground_truth, detections, THING_CLASS_IDS)
    # COCO's AP is the mean over classes, so one weak class halves it: report each.
    per_class = {
        class_names[c]: instance_scores(ground_truth, detections, (c,)) for c in THING_CLASS_IDS
    }
    return {
        "num_images": len(ground_truth),
        "num_images_without_semantic_rows": int(missing),
        "num_detections": len(detections),
        "semantic": {
            "miou": sem.miou,
            "pixel_accuracy": sem.pixel_accuracy,
            "per_class_iou": dict(zip(class_names, sem.per_class_iou, strict=True)),
        },
        "instance": {"AP": ins.ap, "AP50": ins.ap50, "AP75": ins.ap75, "AR": ins.ar},
        "instance_per_class": {
            name: {"AP": v.ap, "AP50": v.ap50, "AP75": v.ap75, "AR": v.ar}
            for name, v in per_class.items()
        },
        "instance_by_image_shape": _scores_by_shape(ground_truth, detections, class_names),
        "instance_mask_fit": {
            class_names[c]: mask_fit(ground_truth, detections, c)._asdict() for c in THING_CLASS_IDS
        },
        "instance_misses": {
            class_names[c]: _misses_by_area(ground_truth, detections, c) for c in THING_CLASS_IDS
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", required=True, help="Glob of the TFRecord shards the run read.")
    parser.add_argument("--run_dir", required=True, help="The pipeline run's output directory.")
    parser.add_argument("--json", default=None, help="Also write the summary to this file.")
    parser.add_argument("--labels", default=str(LABELS_PATH), help="Label map, one name per line.")
    args = parser.parse_args(argv)
    shard_paths = sorted(glob.glob(args.shards))
    if not shard_paths:
        raise SystemExit(
            f"--shards {args.shards!r} matched no files; quote the glob and check the path."
        )
    class_names = [
        line.strip() for line in Path(args.labels).read_text().splitlines() if line.strip()
    ]
    summary = evaluate_run(shard_paths, args.run_dir, class_names)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()

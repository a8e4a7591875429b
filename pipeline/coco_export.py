"""`python run_pipeline.py export-coco --output DIR`: a run's instances as COCO JSON.

Writes, into the run directory:

    DIR/coco/annotations.json   a COCO instances dataset: images, categories, annotations
    DIR/coco/results.json       the same instances as a COCO results list (for COCOeval)

Ids, because COCO tools want positive integers:
  * image `id` is 1..N in ascending order of segbeam's `image_id` (kept as
    `segbeam_image_id`, with `source` and `record_index`);
  * category `id` is `class_id + 1` (class 0 would be an invalid COCO id for
    some tools); the original id is kept as the category's `class_id`;
  * annotation `id` is 1..M, ordered by image, then descending score.

Segmentations are the tables' own compressed RLE, `{"size": [h, w], "counts": rle}`,
with `iscrowd` 0; pycocotools, COCOeval and Datumaro (CVAT's COCO importer)
read that form directly.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from pipeline.ledger import read_table
from pipeline.report_data import has_table, read_class_names
from transforms.atomic_files import join, write_bytes_atomically

CATEGORY_ID_OFFSET = 1
COCO_DIR = "coco"
ANNOTATIONS_FILE = "annotations.json"
RESULTS_FILE = "results.json"
SUPERCATEGORY = "segbeam"
_DECIMALS = 6  # float32 table values printed without float32 noise (0.9, not 0.8999999761).

_IMAGE_COLUMNS = ["image_id", "source", "record_index", "width", "height", "filename"]


@dataclasses.dataclass(frozen=True)
class CocoExport:
    """What `export_coco` wrote."""

    annotations_path: str
    results_path: str
    num_images: int
    num_categories: int
    num_annotations: int


def export_coco(output_dir: str) -> CocoExport:
    """Writes `output_dir`/coco/annotations.json and results.json from the run's tables.

    Args:
      output_dir: A run directory, local or any FileSystems URL.

    Raises:
      FileNotFoundError: if `output_dir` has no images table.
    """
    if not has_table(output_dir, "images"):
        raise FileNotFoundError(
            f"{output_dir} holds no segbeam run (no images table); pass the --output "
            "directory of a finished run: python run_pipeline.py --output DIR"
        )
    images = read_table(output_dir, "images", _IMAGE_COLUMNS).to_pylist()
    instances = read_table(output_dir, "instances").to_pylist()
    dataset = build_coco_dataset(images, instances, read_class_names(output_dir), output_dir)
    results = build_coco_results(dataset["annotations"])
    annotations_path = join(output_dir, COCO_DIR, ANNOTATIONS_FILE)
    results_path = join(output_dir, COCO_DIR, RESULTS_FILE)
    write_bytes_atomically(annotations_path, _json_bytes(dataset))
    write_bytes_atomically(results_path, _json_bytes(results))
    return CocoExport(
        annotations_path=annotations_path,
        results_path=results_path,
        num_images=len(dataset["images"]),
        num_categories=len(dataset["categories"]),
        num_annotations=len(dataset["annotations"]),
    )


def build_coco_dataset(
    images: Sequence[Mapping[str, object]],
    instances: Sequence[Mapping[str, object]],
    class_names: Mapping[int, str],
    description: str,
) -> dict[str, list[dict[str, object]] | dict[str, str]]:
    """A COCO instances dataset from `images` and `instances` table rows.

    Args:
      images: images rows (image_id, source, record_index, width, height, filename).
      instances: instances rows (all columns).
      class_names: class_id -> name; every class becomes a category.
      description: Written into the dataset's `info`.
    """
    coco_images = [
        _coco_image(index, row)
        for index, row in enumerate(sorted(images, key=lambda r: r["image_id"]), start=1)
    ]
    coco_ids = {image["segbeam_image_id"]: image["id"] for image in coco_images}
    ordered = sorted(
        (row for row in instances if row["image_id"] in coco_ids),
        key=lambda r: (coco_ids[r["image_id"]], -r["score"], r["instance_id"]),
    )
    return {
        "info": {"description": f"segbeam predictions: {description}", "version": "1.0"},
        "licenses": [],
        "images": coco_images,
        "categories": [_category(c, n) for c, n in sorted(class_names.items())],
        "annotations": [
            _annotation(index, row, coco_ids[row["image_id"]])
            for index, row in enumerate(ordered, start=1)
        ],
    }


def build_coco_results(annotations: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """The COCO results list (COCO.loadRes, COCOeval) of `annotations`, in the same order."""
    keys = ("image_id", "category_id", "segmentation", "score", "bbox")
    return [{key: annotation[key] for key in keys} for annotation in annotations]


def _coco_image(coco_id: int, row: Mapping[str, object]) -> dict[str, object]:
    return {
        "id": coco_id,
        # The name annotation tools match against the uploaded image files.
        "file_name": row["filename"] or f"{row['image_id']}.png",
        "width": row["width"],
        "height": row["height"],
        "segbeam_image_id": row["image_id"],
        "source": row["source"],
        "record_index": row["record_index"],
    }


def _category(class_id: int, name: str) -> dict[str, object]:
    return {
        "id": class_id + CATEGORY_ID_OFFSET,
        "name": name,
        "supercategory": SUPERCATEGORY,
        "class_id": class_id,
    }


def _annotation(coco_id: int, row: Mapping[str, object], image_id: int) -> dict[str, object]:
    bbox = [round(float(row[k]), _DECIMALS) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
    return {
        "id": coco_id,
        "image_id": image_id,
        "category_id": int(row["class_id"]) + CATEGORY_ID_OFFSET,
        "segmentation": {"size": [row["height"], row["width"]], "counts": row["rle"]},
        "area": row["area"],
        "bbox": bbox,
        "iscrowd": 0,
        "score": round(float(row["score"]), _DECIMALS),
        "segbeam_instance_id": row["instance_id"],
    }


def _json_bytes(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")

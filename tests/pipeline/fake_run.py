"""A small, hand-drawn run directory for the report, COCO export and cookbook tests.

Every mask is a rectangle, so every expected number in the tests can be worked
out by hand from the table below. RLE strings come from pycocotools itself.

    image  source                size   semantic (class: pixels)          instances (score, px)
    A      inputs/a.tfrecord #0  40x30  sky 400, road 710, pedestrian 90  pedestrian .93 50, .82 40
    (err)  inputs/a.tfrecord #1  -      read/CorruptRecord (its bytes are damaged in the shard)
    C      inputs/a.tfrecord #2  10x10  vegetation 100                    -
    B      inputs/b.png          20x20  building 340, vehicle 60          vehicle .97 60,
                                                                          pedestrian .64 18
    (err)  inputs/d.jpg          -      decode/TruncatedImage

Image colours are chosen so that a 50/50 blend with each class colour is a whole number.
B's pedestrian has no pedestrian pixels in B's semantic mask: the two models disagree there.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from PIL import Image
from pycocotools import mask as mask_utils

from pipeline import schemas
from transforms.elements import make_image_id

NAMES = {
    0: "sky",
    1: "building",
    2: "road",
    3: "sidewalk",
    4: "vegetation",
    5: "vehicle",
    6: "pedestrian",
}
SKY, BUILDING, ROAD, VEGETATION, VEHICLE, PEDESTRIAN = 0, 1, 2, 4, 5, 6


@dataclasses.dataclass(frozen=True)
class FakeInstance:
    class_id: int
    score: float
    box: tuple[int, int, int, int]  # x, y, w, h: the mask is exactly this rectangle.


@dataclasses.dataclass(frozen=True)
class FakeImage:
    key: str  # "A", "B" or "C".
    source: str
    record_index: int
    pixels: np.ndarray  # uint8 [h, w, 3]
    semantic: np.ndarray  # int [h, w] class ids
    instances: tuple[FakeInstance, ...]

    @property
    def image_id(self) -> str:
        return make_image_id(self.source, self.record_index)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def filename(self) -> str:
        return Path(self.source).name if self.key == "B" else f"{self.key.lower()}.png"


@dataclasses.dataclass(frozen=True)
class FakeInputs:
    images: dict[str, FakeImage]  # By key.
    errors: tuple[dict[str, object], ...]  # errors table rows.
    shards: tuple[dict[str, object], ...]  # shards table rows.


def rect_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask


def rle(mask: np.ndarray) -> str:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return encoded["counts"].decode("ascii")


def _image_a(source: str) -> FakeImage:
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[:10] = (200, 220, 250)
    pixels[10:] = (90, 90, 90)
    semantic = np.full((30, 40), ROAD)
    semantic[:10] = SKY
    instances = (
        FakeInstance(PEDESTRIAN, 0.93, (5, 12, 5, 10)),
        FakeInstance(PEDESTRIAN, 0.82, (20, 15, 4, 10)),
    )
    for instance in instances:
        box = rect_mask(30, 40, instance.box)
        pixels[box] = (250, 200, 150)
        semantic[box] = PEDESTRIAN
    return FakeImage("A", source, 0, pixels, semantic, instances)


def _image_b(source: str) -> FakeImage:
    pixels = np.full((20, 20, 3), (150, 120, 100), dtype=np.uint8)
    semantic = np.full((20, 20), BUILDING)
    vehicle = FakeInstance(VEHICLE, 0.97, (2, 10, 10, 6))
    pixels[rect_mask(20, 20, vehicle.box)] = (20, 20, 200)
    semantic[rect_mask(20, 20, vehicle.box)] = VEHICLE
    ghost = FakeInstance(PEDESTRIAN, 0.64, (15, 2, 3, 6))  # Semantic says building there.
    return FakeImage("B", source, 0, pixels, semantic, (vehicle, ghost))


def _image_c(source: str) -> FakeImage:
    pixels = np.full((10, 10, 3), (41, 160, 41), dtype=np.uint8)
    return FakeImage("C", source, 2, pixels, np.full((10, 10), VEGETATION), ())


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _example(image: FakeImage) -> bytes:
    def _bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    features = {
        "image/encoded": _bytes(_png(image.pixels)),
        "image/format": _bytes(b"png"),
        "image/filename": _bytes(image.filename.encode()),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def write_inputs(root: Path) -> FakeInputs:
    """Writes inputs/a.tfrecord (record 1 damaged) and inputs/b.png; returns what they hold."""
    inputs = root / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    shard = str(inputs / "a.tfrecord")
    a, c = _image_a(shard), _image_c(shard)
    b = _image_b(str(inputs / "b.png"))
    middle = _example(dataclasses.replace(a, key="X"))
    records = [_example(a), middle, _example(c)]
    with tf.io.TFRecordWriter(shard) as writer:
        for record in records:
            writer.write(record)
    # Flip one byte inside record 1's payload: its data checksum then fails.
    data = bytearray(Path(shard).read_bytes())
    data[(8 + 4 + len(records[0]) + 4) + 12 + 5] ^= 0xFF
    Path(shard).write_bytes(bytes(data))
    Image.fromarray(b.pixels).save(b.source)
    missing = str(inputs / "d.jpg")
    errors = (
        _error(shard, 1, "read", "CorruptRecord", "record at byte 1234 fails its data checksum"),
        _error(missing, 0, "decode", "TruncatedImage", "the JPEG data ends early"),
    )
    shards = (
        {"source": shard, "num_records": 3, "num_read_errors": 1, "num_bytes": len(data)},
        {"source": b.source, "num_records": 1, "num_read_errors": 0, "num_bytes": 1},
        {"source": missing, "num_records": 1, "num_read_errors": 0, "num_bytes": 1},
    )
    return FakeInputs({"A": a, "B": b, "C": c}, errors, shards)


def _error(source: str, index: int, stage: str, error_type: str, message: str) -> dict:
    return {
        "source": source,
        "record_index": index,
        "image_id": make_image_id(source, index),
        "stage": stage,
        "error_type": error_type,
        "message": message,
    }


def table_rows(images: list[FakeImage]) -> dict[str, list[dict]]:
    """The images, semantic_masks, class_counts and instances rows of `images`."""
    rows: dict[str, list[dict]] = {t: [] for t in ("images", "semantic_masks", "instances")}
    rows["class_counts"] = []
    for image in images:
        _add_image_rows(rows, image)
    return rows


def _add_image_rows(rows: dict[str, list[dict]], image: FakeImage) -> None:
    h, w = image.height, image.width
    rows["images"].append(
        {
            "image_id": image.image_id,
            "source": image.source,
            "record_index": image.record_index,
            "width": w,
            "height": h,
            "num_instances": len(image.instances),
            "filename": image.filename,
            "source_id": "",
            "content_sha256": "0" * 64,
        }
    )
    pixel_counts = {int(c): int((image.semantic == c).sum()) for c in np.unique(image.semantic)}
    for class_id, count in sorted(pixel_counts.items()):
        rows["semantic_masks"].append(
            {
                "image_id": image.image_id,
                "class_id": class_id,
                "class_name": NAMES[class_id],
                "height": h,
                "width": w,
                "pixel_count": count,
                "rle": rle(image.semantic == class_id),
            }
        )
    instance_counts: dict[int, int] = {}
    for index, instance in enumerate(image.instances):
        instance_counts[instance.class_id] = instance_counts.get(instance.class_id, 0) + 1
        mask = rect_mask(h, w, instance.box)
        x, y, bw, bh = instance.box
        rows["instances"].append(
            {
                "image_id": image.image_id,
                "instance_id": f"{image.image_id}-{index}",
                "class_id": instance.class_id,
                "class_name": NAMES[instance.class_id],
                "score": instance.score,
                "bbox_x": x,
                "bbox_y": y,
                "bbox_w": bw,
                "bbox_h": bh,
                "area": int(mask.sum()),
                "height": h,
                "width": w,
                "rle": rle(mask),
            }
        )
    for class_id in sorted(set(pixel_counts) | set(instance_counts)):
        rows["class_counts"].append(
            {
                "image_id": image.image_id,
                "class_id": class_id,
                "class_name": NAMES[class_id],
                "pixel_count": pixel_counts.get(class_id, 0),
                "pixel_fraction": pixel_counts.get(class_id, 0) / (h * w),
                "instance_count": instance_counts.get(class_id, 0),
            }
        )


def write_table(run_dir: Path, table: str, rows: list[dict]) -> None:
    directory = run_dir / table
    directory.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pylist(rows, schema=schemas.TABLES[table])
    pq.write_table(arrow, directory / "part-00000-of-00001.parquet", compression="zstd")


def manifest(num_images: int, num_errors: int) -> dict[str, object]:
    return {
        "status": "succeeded",
        "run_id": "0123456789ab",
        "runner": "FnApiRunner",
        "started_at": "2025-06-01T02:00:00+00:00",
        "finished_at": "2025-06-01T02:00:10+00:00",
        "duration_seconds": 10.0,
        "images_per_second": 0.5,
        "config": {"input_patterns": ["inputs/*"], "batch_size": 8, "score_threshold": None},
        "models": {
            "semantic": {"spec": {"format": "saved_model", "source": "semantic.json"}},
            "instance": None,
        },
        "ledger": {
            "input_files": 3,
            "records_read": num_images + num_errors,
            "images": num_images,
            "errors": num_errors,
            "errors_by_stage": {"read": 1, "decode": 1} if num_errors else {},
        },
        "tables": {
            "images": {"files": 1, "rows": num_images, "bytes": 2345},
            "errors": {"files": 1, "rows": num_errors, "bytes": 1234},
        },
        "library_versions": {"python": "3.11"},
    }


def write_run(
    run_dir: Path,
    inputs: FakeInputs,
    keys: tuple[str, ...] = ("A", "B", "C"),
    *,
    with_errors: bool = True,
    success: bool = True,
) -> Path:
    """Writes a run directory holding the given images (and the errors) of `inputs`."""
    rows = table_rows([inputs.images[k] for k in keys])
    rows["errors"] = list(inputs.errors) if with_errors else []
    rows["shards"] = list(inputs.shards)
    for table in schemas.TABLES:
        write_table(run_dir, table, rows[table])
    document = manifest(len(keys), len(rows["errors"]))
    (run_dir / "manifest.json").write_text(json.dumps(document, indent=2))
    if success:
        (run_dir / "_SUCCESS").write_bytes(b"")
    return run_dir

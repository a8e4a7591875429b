"""What the report shows, computed from one run directory's manifest and tables.

Everything here is plain data (frozen dataclasses of numbers and strings), so
the chart, overlay and HTML code never touch Parquet, and tests can check the
aggregates without rendering anything.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.ledger import read_table
from pipeline.output_dir import MANIFEST, SUCCESS_MARKER
from transforms.atomic_files import join, list_files
from transforms.elements import ClassMask, Instance

DEFAULT_GALLERY_SIZE = 12
SCORE_BINS = 10  # Of width 0.1 over [0, 1].
# Images with more instances than this share the histogram's last bin.
MAX_INSTANCE_BIN = 30
# Scores are float32 in the tables: 0.9 is stored as 0.89999998. Rounding
# before binning puts such values in the bin a person expects.
_SCORE_DECIMALS = 6
_IMAGE_COLUMNS = [
    "image_id",
    "source",
    "record_index",
    "width",
    "height",
    "filename",
    "num_instances",
]


@dataclasses.dataclass(frozen=True)
class ClassStats:
    """One class across the run."""

    class_id: int
    class_name: str
    pixel_count: int  # Semantic pixels of this class, summed over every image.
    pixel_share: float  # pixel_count / all images' pixels; 0.0 when there are no images.
    instance_count: int  # Rows of the instances table with this class.


@dataclasses.dataclass(frozen=True)
class HistogramBin:
    """One bar of a histogram: its label on the x axis and its count."""

    label: str
    count: int


@dataclasses.dataclass(frozen=True)
class ErrorKind:
    """The errors of one (stage, error_type), with one example."""

    stage: str
    error_type: str
    count: int
    example_source: str
    example_record_index: int
    example_message: str


@dataclasses.dataclass(frozen=True)
class GalleryImage:
    """One images row chosen for the overlay gallery."""

    image_id: str
    source: str
    record_index: int
    width: int
    height: int
    filename: str
    num_instances: int


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything the report shows except the overlays' pixels."""

    output_dir: str
    manifest: Mapping[str, object] | None  # manifest.json, or None if absent/unreadable.
    succeeded: bool  # Whether `_SUCCESS` is present.
    notes: tuple[str, ...]  # Problems with the run directory, for a banner.
    num_images: int
    num_instances: int
    num_errors: int
    total_pixels: int  # Sum of width * height over the images table.
    classes: tuple[ClassStats, ...]  # Ascending class_id.
    instances_per_image: tuple[HistogramBin, ...]
    score_histogram: tuple[HistogramBin, ...]
    errors: tuple[ErrorKind, ...]  # Most frequent first.
    gallery: tuple[GalleryImage, ...]


def load_report_data(output_dir: str, gallery_size: int = DEFAULT_GALLERY_SIZE) -> ReportData:
    """Reads a run directory and computes the report's aggregates.

    Args:
      output_dir: A run directory (`--output` of a run), local or any FileSystems URL.
      gallery_size: How many images to pick for the overlay gallery (>= 0).

    Raises:
      FileNotFoundError: if `output_dir` holds neither tables nor a manifest.
    """
    manifest, notes = _read_manifest(output_dir)
    if manifest is None and not has_table(output_dir, "images"):
        raise FileNotFoundError(
            f"{output_dir} holds no segbeam run (no manifest.json, no images/ table); "
            "pass the --output directory of a run: python run_pipeline.py --output DIR"
        )
    succeeded = FileSystems.exists(join(output_dir, SUCCESS_MARKER))
    if not succeeded:
        notes.append(
            "No _SUCCESS marker: this run is unfinished or failed, so its tables may be "
            "incomplete or left over from an earlier run."
        )
    images = read_table(output_dir, "images", _IMAGE_COLUMNS)
    instances = read_table(output_dir, "instances", ["class_id", "score"])
    errors = read_table(output_dir, "errors")
    total_pixels = _total_pixels(images)
    return ReportData(
        output_dir=output_dir,
        manifest=manifest,
        succeeded=succeeded,
        notes=tuple(notes),
        num_images=images.num_rows,
        num_instances=instances.num_rows,
        num_errors=errors.num_rows,
        total_pixels=total_pixels,
        classes=_class_stats(output_dir, instances, total_pixels),
        instances_per_image=instances_per_image_histogram(
            images.column("num_instances").to_pylist()
        ),
        score_histogram=score_histogram(instances.column("score").to_pylist()),
        errors=error_kinds(errors.to_pylist()),
        gallery=choose_gallery(images, gallery_size),
    )


def has_table(output_dir: str, table: str) -> bool:
    """Whether `output_dir` holds Parquet files of `table`.

    Matched by glob rather than by checking the folder, because object stores
    (gs://, s3://) have no folders, only files under a prefix.
    """
    return any(path.endswith(".parquet") for path in list_files(join(output_dir, table)))


def _read_manifest(output_dir: str) -> tuple[Mapping[str, object] | None, list[str]]:
    path = join(output_dir, MANIFEST)
    if not FileSystems.exists(path):
        return None, ["No manifest.json: the run summary and ledger are unavailable."]
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        text = handle.read()
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        return None, [f"manifest.json is not valid JSON ({e}); the run summary is unavailable."]
    if not isinstance(manifest, dict):
        return None, ["manifest.json is not a JSON object; the run summary is unavailable."]
    return manifest, []


def _total_pixels(images: pa.Table) -> int:
    if images.num_rows == 0:
        return 0
    areas = pc.multiply(pc.cast(images["width"], pa.int64()), pc.cast(images["height"], pa.int64()))
    return int(pc.sum(areas).as_py())


def _class_stats(output_dir: str, instances: pa.Table, total_pixels: int) -> tuple[ClassStats, ...]:
    counts = read_table(output_dir, "class_counts", ["class_id", "pixel_count"])
    names = read_class_names(output_dir)
    pixels = _sum_by_class(counts, "pixel_count")
    instance_counts = collections.Counter(instances.column("class_id").to_pylist())
    return tuple(
        ClassStats(
            class_id=class_id,
            class_name=names[class_id],
            pixel_count=pixels.get(class_id, 0),
            pixel_share=pixels.get(class_id, 0) / total_pixels if total_pixels else 0.0,
            instance_count=instance_counts.get(class_id, 0),
        )
        for class_id in sorted(names)
    )


def read_class_names(output_dir: str) -> dict[int, str]:
    """class_id -> class_name of every class in the run's class_counts, semantic_masks or instances.

    Where tables disagree on a name (they can't in one run), the first table's wins.
    """
    names: dict[int, str] = {}
    for table in ("class_counts", "semantic_masks", "instances"):
        pairs = read_table(output_dir, table, ["class_id", "class_name"])
        for row in pairs.group_by(["class_id", "class_name"]).aggregate([]).to_pylist():
            names.setdefault(row["class_id"], row["class_name"])
    return names


def _sum_by_class(table: pa.Table, column: str) -> dict[int, int]:
    sums = table.group_by("class_id").aggregate([(column, "sum")])
    return dict(zip(sums["class_id"].to_pylist(), sums[f"{column}_sum"].to_pylist(), strict=True))


def instances_per_image_histogram(num_instances: Sequence[int]) -> tuple[HistogramBin, ...]:
    """Images per instance count: bin k counts the images with k instances.

    Bins run from 0 to the largest count seen; counts above MAX_INSTANCE_BIN
    share one last bin labelled e.g. "30+". No images gives no bins.
    """
    if not num_instances:
        return ()
    capped = [min(n, MAX_INSTANCE_BIN) for n in num_instances]
    tally = collections.Counter(capped)
    top = max(capped)
    return tuple(
        HistogramBin(f"{k}+" if k == MAX_INSTANCE_BIN else str(k), tally.get(k, 0))
        for k in range(top + 1)
    )


def score_histogram(scores: Sequence[float]) -> tuple[HistogramBin, ...]:
    """Instances per score bin: SCORE_BINS bins of width 0.1 over [0, 1], labelled by lower edge.

    A score of exactly 1.0 goes in the last bin. No scores gives all-zero bins.
    """
    tally = [0] * SCORE_BINS
    for score in scores:
        index = math.floor(round(score, _SCORE_DECIMALS) * SCORE_BINS)
        tally[min(max(index, 0), SCORE_BINS - 1)] += 1
    return tuple(HistogramBin(f"{i / SCORE_BINS:.1f}", n) for i, n in enumerate(tally))


def error_kinds(errors: Sequence[Mapping[str, object]]) -> tuple[ErrorKind, ...]:
    """Groups `errors` table rows by (stage, error_type), most frequent first.

    Each kind's example is its row with the smallest (source, record_index).
    """
    groups: dict[tuple[str, str], list[Mapping[str, object]]] = collections.defaultdict(list)
    for row in errors:
        groups[(row["stage"], row["error_type"])].append(row)
    kinds = []
    for (stage, error_type), rows in groups.items():
        example = min(rows, key=lambda r: (r["source"], r["record_index"]))
        kinds.append(
            ErrorKind(
                stage=stage,
                error_type=error_type,
                count=len(rows),
                example_source=example["source"],
                example_record_index=example["record_index"],
                example_message=example["message"],
            )
        )
    return tuple(sorted(kinds, key=lambda k: (-k.count, k.stage, k.error_type)))


def choose_gallery(images: pa.Table, size: int) -> tuple[GalleryImage, ...]:
    """The first `size` images by image_id.

    Image ids are hashes, so this is a deterministic sample spread over the
    inputs: the same run gives the same gallery on every report.
    """
    if size < 0:
        raise ValueError(f"gallery size must be >= 0, got {size}")
    chosen = images.select(_IMAGE_COLUMNS).sort_by("image_id").slice(0, size)
    return tuple(GalleryImage(**row) for row in chosen.to_pylist())


class ImagePredictions(NamedTuple):
    """Both models' output for one image, as stored in the tables."""

    semantic: tuple[ClassMask, ...]  # Ascending class_id.
    instances: tuple[Instance, ...]  # Descending score.


_INSTANCE_FIELDS = list(Instance._fields)


def load_predictions(output_dir: str, image_ids: Sequence[str]) -> dict[str, ImagePredictions]:
    """The semantic_masks and instances rows of `image_ids`, by image_id.

    Every id in `image_ids` gets an entry, empty if a model found nothing in it.
    """
    wanted = list(image_ids)
    if not wanted:
        return {}
    semantic = _rows_of(output_dir, "semantic_masks", ["image_id", *ClassMask._fields], wanted)
    instances = _rows_of(output_dir, "instances", ["image_id", *_INSTANCE_FIELDS], wanted)
    masks_by_image: dict[str, list[ClassMask]] = collections.defaultdict(list)
    for row in semantic:
        masks_by_image[row.pop("image_id")].append(ClassMask(**row))
    instances_by_image: dict[str, list[Instance]] = collections.defaultdict(list)
    for row in instances:
        instances_by_image[row.pop("image_id")].append(Instance(**row))
    return {
        image_id: ImagePredictions(
            semantic=tuple(sorted(masks_by_image[image_id], key=lambda m: m.class_id)),
            instances=tuple(sorted(instances_by_image[image_id], key=lambda i: -i.score)),
        )
        for image_id in image_ids
    }


def _rows_of(
    output_dir: str, table: str, columns: Sequence[str], image_ids: Sequence[str]
) -> list[dict[str, object]]:
    """The rows of `table` whose image_id is in `image_ids`.

    Filtered while reading, part file by part file, so that only the wanted
    images' RLE strings are ever held in memory, not the whole table's.
    """
    rows: list[dict[str, object]] = []
    for path in list_files(join(output_dir, table)):
        if not path.endswith(".parquet"):
            continue
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            part = pq.read_table(
                handle, columns=list(columns), filters=[("image_id", "in", image_ids)]
            )
        rows.extend(part.to_pylist())
    return rows

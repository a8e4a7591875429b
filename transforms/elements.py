"""Typed element contracts: what flows between the pipeline's transforms.

Every PCollection in the graph carries one of these NamedTuples, so a stage's
input and output types are explicit and picklable on every runner. Decoded
pixel arrays (`DecodedImage.pixels`) never cross a shuffle: decode, inference
and mask encoding run fused in one stage, and only encoded results travel to
the GroupByKey that joins them. With a spill directory (every run without
--evaluate) not even the COCO RLE strings do: the fused stage writes each
batch's mask rows to a spill file and sends a `SpillRef` on instead, and the
results that reach the join carry `rle=None`.

Bad input is data, not an exception: an element whose `error` is set carries a
`StageError` forward, and the join turns it into exactly one `errors` row.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

# Stage names, as they appear in the `errors` table's `stage` column.
STAGE_READ = "read"
STAGE_DECODE = "decode"
STAGE_INFER = "infer"
STAGE_ENCODE = "encode"
STAGE_WRITE = "write"
STAGES = (STAGE_READ, STAGE_DECODE, STAGE_INFER, STAGE_ENCODE, STAGE_WRITE)

# Kinds of work unit.
UNIT_TFRECORD = "tfrecord"
UNIT_IMAGE_FILES = "image_files"
UNIT_TFDS = "tfds"


def make_image_id(source: str, record_index: int) -> str:
    """Deterministic id of one input record: the same on every rerun and runner.

    Args:
      source: The URI of the file the record came from.
      record_index: The record's 0-based position in that file (0 for image files).

    Returns:
      20 lowercase hex characters of SHA-256 over "source#record_index".
    """
    return hashlib.sha256(f"{source}#{record_index}".encode()).hexdigest()[:20]


class StageError(NamedTuple):
    """Why one record could not be processed."""

    stage: str  # One of STAGES.
    error_type: str  # A short machine-readable kind, e.g. "CorruptRecord", "UnsupportedFormat".
    message: str  # What was wrong, for a person.


class TfdsFeatureKeys(NamedTuple):
    """Which features of a TFDS dataset become segbeam's record fields (None: absent)."""

    image: str  # Top-level Image feature, read still encoded: EncodedImage.encoded.
    filename: str | None  # Top-level Text feature: EncodedImage.filename.
    source_id: str | None  # Top-level Text or integer feature: EncodedImage.source_id.
    semantic: str | None  # Top-level 1-channel Image (PNG): GroundTruth.semantic_png.
    objects: str | None  # Sequence feature holding one entry per instance.
    object_mask: str | None  # Its 1-channel Image (PNG): GroundTruth.instance_mask_pngs.
    object_label: str | None  # Its ClassLabel or integer: GroundTruth.instance_class_ids.


class TfdsShard(NamedTuple):
    """One file of a prepared TFDS split, read with TFDS's own reader."""

    dataset_dir: str  # The prepared dataset, DATA_DIR/NAME[/CONFIG]/VERSION.
    file: str  # The shard file's path, inside `dataset_dir`.
    split: str  # e.g. "test".
    start: int  # The shard's first example, as a 0-based index into the whole split.
    num_examples: int  # Examples in the shard.
    features: TfdsFeatureKeys


class WorkUnit(NamedTuple):
    """One unit of reading work, made by the driver before the pipeline starts.

    A TFRecord shard is one unit (`paths` has one element); image files matched
    by a glob are grouped `batch_size` at a time (`paths` holds them all). A
    TFDS shard file is one unit: `paths` holds its `tfds://` source URI and
    `tfds` says how to read it.
    """

    kind: str  # UNIT_TFRECORD, UNIT_IMAGE_FILES or UNIT_TFDS.
    paths: tuple[str, ...]
    tfds: TfdsShard | None = None  # Set exactly for UNIT_TFDS.


class GroundTruth(NamedTuple):
    """Ground truth carried by a TFRecord, still encoded (PNG bytes)."""

    semantic_png: bytes | None  # image/segmentation/class/encoded: PNG of class ids.
    instance_mask_pngs: tuple[bytes, ...]  # image/object/mask: one full-image PNG per instance.
    instance_class_ids: tuple[int, ...]  # image/object/class/label.


class ImageRef(NamedTuple):
    """Where one record came from; identifies it in every table."""

    image_id: str
    source: str  # File URI (absolute local path or FileSystems URL).
    record_index: int  # 0-based record position in `source`; 0 for image files.


class EncodedImage(NamedTuple):
    """One record as read: encoded image bytes, or the read error."""

    ref: ImageRef
    encoded: bytes | None  # None when `error` is set.
    filename: str  # image/filename, or the file's base name.
    source_id: str  # image/source_id, or "".
    ground_truth: GroundTruth | None
    error: StageError | None = None


class ShardSummary(NamedTuple):
    """The read side of the ledger: what one work unit yielded.

    `num_records` counts every EncodedImage the reader emitted for this source,
    good or failed; the driver checks that `images` + `errors` hold exactly that
    many rows for the source.
    """

    source: str
    num_records: int
    num_read_errors: int
    num_bytes: int


class DecodedImage(NamedTuple):
    """One decoded image (or the reason it could not be decoded).

    `pixels` is uint8 [height, width, 3] RGB in display orientation (EXIF
    orientation applied). It stays inside the fused decode/infer/encode stage.
    """

    ref: ImageRef
    pixels: np.ndarray | None
    width: int
    height: int
    filename: str
    source_id: str
    content_sha256: str  # Of the encoded bytes; "" if the record had none.
    ground_truth: GroundTruth | None
    error: StageError | None = None


# A batch of records as they reach a model: up to --batch_size, from one work unit.
EncodedBatch = tuple[EncodedImage, ...]
DecodedBatch = tuple[DecodedImage, ...]


def batch_id(batch: DecodedBatch) -> str:
    """Names a batch in the per-batch join and its spill files: its first record's image id.

    Image ids are unique in a run and each record is in exactly one batch.
    """
    return batch[0].ref.image_id


def batch_partition_key(batch: DecodedBatch) -> str:
    """The output-shard key of every row that comes from `batch`: its work unit's source.

    A batch holds records of one work unit, so this is the same for all of
    them (a TFRecord shard's URI; the first file of an image-file unit). The
    rows the join builds for a batch and the mask rows the models spilled for
    it both carry it, so they land in the same output file, where the writer
    keeps only the mask rows of images that got an `images` row.
    """
    return batch[0].ref.source


class ClassMask(NamedTuple):
    """One class's pixels in one image's semantic prediction."""

    class_id: int
    pixel_count: int
    # COCO compressed RLE `counts` of the full-image binary mask; None when the
    # mask's row was spilled (it is in the batch's spill file, see SpillRef).
    rle: str | None


class SemanticResult(NamedTuple):
    """The semantic model's output for one image, encoded."""

    image_id: str
    height: int
    width: int
    classes: tuple[ClassMask, ...]  # One per class present, ascending class_id.
    error: StageError | None = None


class Instance(NamedTuple):
    """One detected instance, in the original image's pixel coordinates."""

    class_id: int
    score: float
    bbox_x: float  # COCO xywh, pixels.
    bbox_y: float
    bbox_w: float
    bbox_h: float
    area: int  # Mask pixel count.
    # COCO compressed RLE `counts` of the full-image binary mask; None when the
    # instance's row was spilled (it is in the batch's spill file, see SpillRef).
    rle: str | None


class InstanceResult(NamedTuple):
    """The instance model's output for one image, encoded."""

    image_id: str
    height: int
    width: int
    instances: tuple[Instance, ...]  # Descending score.
    error: StageError | None = None


class ImageInfo(NamedTuple):
    """What the decode stage learned about one record (its batch's `BatchImages` holds it).

    Exactly one ImageInfo exists per record read, so the join emits exactly one
    `images` or `errors` row per record.
    """

    ref: ImageRef
    width: int
    height: int
    filename: str
    source_id: str
    content_sha256: str
    error: StageError | None = None
    ground_truth: GroundTruth | None = None  # Still PNG-encoded: cheap to move to the join.


class BatchImages(NamedTuple):
    """The decode stage's `ImageInfo`s of one batch: the anchor of the per-batch join."""

    batch_id: str  # batch_id() of the batch.
    partition_key: str  # batch_partition_key() of the batch: its rows' output shard.
    images: tuple[ImageInfo, ...]  # One per record of the batch, in batch order.


class SpillRef(NamedTuple):
    """One spill file: a batch's rows of one mask table, written by the inference stage.

    The file (Arrow IPC, lz4) holds `num_rows` rows in the table's schema
    (pipeline/schemas.py), for the batch's images whose inference succeeded.
    Only this reference crosses the shuffles; the writer of the output shard
    `partition_key` maps to reads the file and keeps the rows of images that
    got an `images` row there. The file name is a function of the batch, so a
    retried bundle overwrites the file instead of adding one.
    """

    table: str  # "semantic_masks" or "instances".
    path: str  # Local path or FileSystems URL, under the run's staging directory.
    num_rows: int
    partition_key: str  # batch_partition_key of the batch.


class BatchResults(NamedTuple):
    """One model's results for one DecodedBatch: what a segmentation transform emits.

    One element per batch rather than per image, so the join groups (and an
    in-process runner holds) a few elements per batch instead of several per image.
    """

    batch_id: str  # batch_id() of the batch.
    # One SemanticResult or InstanceResult per image that had pixels, in batch order.
    results: tuple[SemanticResult, ...] | tuple[InstanceResult, ...]
    # The batch's spilled mask rows (None: nothing spilled, or results keep their RLE).
    spill: SpillRef | None = None


class JoinInputRef(NamedTuple):
    """A join input (BatchImages or BatchResults) spilled to a file (transforms/spill.py).

    With a spill directory, this is all that crosses the join's shuffle: the
    DirectRunner's multi-threaded mode moves shuffle data over in-process gRPC
    and holds many times its size in memory, so even the light per-image
    results made peak memory grow with the run.
    """

    tag: str  # Which input: "images", "semantic" or "instance".
    batch_id: str
    path: str

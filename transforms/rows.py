"""Joins each batch's decode info and model results into table rows.

`AssembleTableRows` is where the ledger's "exactly one of images or errors"
is enforced: the decode stage's `BatchImages` and each model's `BatchResults`
are grouped by batch, and each record of the batch yields either one `images`
row (with its masks, counts and instances) or one `errors` row, never both
and never neither.

The join is per batch, not per image, and with a spill directory nothing per
image crosses a shuffle: Beam's in-process runners hold each shuffle's whole
input in memory (the DirectRunner's multi-threaded mode, over in-process gRPC,
many times its encoded size), so per-image data in the join's shuffle or rows
in the writer's make peak memory grow with the run's size. With a spill
directory each join input (a batch's `BatchImages`, each model's
`BatchResults`) is written to a file and only a `JoinInputRef` is grouped,
and the batch's rows are spilled per table, leaving only `SpillRef`s for the
writer's shuffle.

Mask rows (`semantic_masks`, `instances`: everything with an RLE) are built
here only for results that still carry their RLE (runs with --evaluate, and
tests). Otherwise the inference stage has already written them to spill files
(transforms/spill.py), and their `SpillRef`s pass on to the writer in the
batch's TableRows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import schemas
from transforms.elements import (
    STAGE_DECODE,
    STAGE_INFER,
    BatchImages,
    BatchResults,
    ClassMask,
    DecodedBatch,
    ImageInfo,
    ImageRef,
    Instance,
    InstanceResult,
    JoinInputRef,
    SemanticResult,
    ShardSummary,
    SpillRef,
    StageError,
    batch_id,
    batch_partition_key,
)
from transforms.image_metrics import evaluate_image, metric_rows
from transforms.spill import read_join_input, write_join_input, write_spill

Row = dict[str, Any]
_NAMESPACE = "segbeam"
# Tags of the join's inputs: which transform a grouped value came from.
_IMAGES = "images"
_SEMANTIC = "semantic"
_INSTANCE = "instance"


class TableRows(NamedTuple):
    """Rows for several tables that belong to one record (or one input file or batch).

    `partition_key` decides which output file the rows go to, so all of a
    record's rows land in the same part file of each table: a batch's rows
    and its spill files share its `batch_partition_key`.
    """

    partition_key: str
    tables: dict[str, list[Row]]
    spills: tuple[SpillRef, ...] = ()  # Spill files whose rows go to the same part files.


def class_name(class_names: Mapping[int, str], class_id: int) -> str:
    """A class id's label, or "class_<id>" for ids the label map lacks."""
    return class_names.get(class_id, f"class_{class_id}")


def semantic_mask_rows(
    image_id: str,
    height: int,
    width: int,
    classes: Sequence[ClassMask],
    name: Callable[[int], str],
) -> list[Row]:
    """One image's `semantic_masks` rows (the same whether built at the join or spilled)."""
    return [
        {
            "image_id": image_id,
            "class_id": mask.class_id,
            "class_name": name(mask.class_id),
            "height": height,
            "width": width,
            "pixel_count": mask.pixel_count,
            "rle": mask.rle,
        }
        for mask in classes
    ]


def instance_rows(
    image_id: str,
    height: int,
    width: int,
    instances: Sequence[Instance],
    name: Callable[[int], str],
) -> list[Row]:
    """One image's `instances` rows, ranked in the given (descending score) order."""
    return [
        {
            "image_id": image_id,
            "instance_id": f"{image_id}-{rank:04d}",
            "class_id": inst.class_id,
            "class_name": name(inst.class_id),
            "score": inst.score,
            "bbox_x": inst.bbox_x,
            "bbox_y": inst.bbox_y,
            "bbox_w": inst.bbox_w,
            "bbox_h": inst.bbox_h,
            "area": inst.area,
            "height": height,
            "width": width,
            "rle": inst.rle,
        }
        for rank, inst in enumerate(instances)
    ]


def _batch_images(batch: DecodedBatch, keep_ground_truth: bool) -> Iterator[BatchImages]:
    """A batch's ImageInfos: the join's anchor."""
    if not batch:
        return
    partition_key = batch_partition_key(batch)
    infos = tuple(
        ImageInfo(
            ref=image.ref,
            width=image.width,
            height=image.height,
            filename=image.filename,
            source_id=image.source_id,
            content_sha256=image.content_sha256,
            error=image.error,
            # Ground truth travels to the join only when it will be used.
            ground_truth=image.ground_truth if keep_ground_truth else None,
        )
        for image in batch
    )
    yield BatchImages(batch_id(batch), partition_key, infos)


def _keyed_join_input(
    value: BatchImages | BatchResults, tag: str, spill_dir: str | None
) -> tuple[str, tuple[str, BatchImages | BatchResults | JoinInputRef]]:
    """A join input keyed by batch and tagged with its source; spilled if `spill_dir`."""
    if spill_dir is not None:
        return value.batch_id, (tag, write_join_input(spill_dir, tag, value))
    return value.batch_id, (tag, value)


def _error_row(ref: ImageRef, error: StageError) -> Row:
    return {
        "source": ref.source,
        "record_index": ref.record_index,
        "image_id": ref.image_id,
        "stage": error.stage,
        "error_type": error.error_type,
        "message": error.message,
    }


def _shard_rows(summary: ShardSummary) -> TableRows:
    row = {
        "source": summary.source,
        "num_records": summary.num_records,
        "num_read_errors": summary.num_read_errors,
        "num_bytes": summary.num_bytes,
    }
    return TableRows(partition_key=summary.source, tables={"shards": [row]})


class _BuildBatchRows(beam.DoFn):
    """(batch_id, [("images", BatchImages), (model, BatchResults)...]) -> one TableRows.

    Every record of the batch gets exactly one `images` or `errors` row. With
    a spill directory the rows go to spill files (one per table with rows) and
    the TableRows carries only references; without, it carries the rows.
    Either way it also carries the models' spill references.
    """

    def __init__(
        self,
        class_names: Mapping[int, str],
        semantic_enabled: bool,
        instance_enabled: bool,
        evaluate: bool,
        spill_dir: str | None,
    ) -> None:
        self._class_names = dict(class_names)
        self._semantic_enabled = semantic_enabled
        self._instance_enabled = instance_enabled
        self._evaluate = evaluate
        self._spill_dir = spill_dir
        self._images_ok = Metrics.counter(_NAMESPACE, "images_written")
        self._images_failed = Metrics.counter(_NAMESPACE, "images_failed")

    def process(self, element: tuple[str, Iterable[tuple[str, object]]]) -> Iterator[TableRows]:
        key, values = element
        batch, semantic, instance, spills = _split_batch(key, values)
        tables: dict[str, list[Row]] = {}
        for info in batch.images:
            image_id = info.ref.image_id
            image_tables = self._image_rows(
                info, semantic.get(image_id, []), instance.get(image_id, [])
            )
            for table, rows in image_tables.items():
                tables.setdefault(table, []).extend(rows)
        partition_key = batch.partition_key
        if self._spill_dir is None:
            yield TableRows(partition_key, tables, spills)
            return
        # A failure to write is infrastructure, not data: it fails (and retries) the bundle.
        refs = tuple(
            write_spill(
                self._spill_dir,
                table,
                schemas.ALL_TABLES[table],
                batch.batch_id,
                partition_key,
                rows,
            )
            for table, rows in sorted(tables.items())
            if rows
        )
        yield TableRows(partition_key, {}, spills + refs)

    def _image_rows(
        self, info: ImageInfo, semantic: list[SemanticResult], instance: list[InstanceResult]
    ) -> dict[str, list[Row]]:
        """One record's rows: its `images` row and the rest, or one `errors` row."""
        error = self._first_error(info, semantic, instance)
        if error is not None:
            return self._failed(info, error)
        semantic_result = semantic[0] if semantic else None
        instance_result = instance[0] if instance else None
        rows = self._rows(info, semantic_result, instance_result)
        if self._evaluate and info.ground_truth is not None:
            try:
                rows.update(self._evaluation_rows(info, semantic_result, instance_result))
            except (ValueError, OSError) as e:
                # Unreadable or mis-sized ground truth makes the record bad, like a bad image.
                error = StageError(STAGE_DECODE, "InvalidGroundTruth", f"{type(e).__name__}: {e}")
                return self._failed(info, error)
        self._images_ok.inc()
        return rows

    def _failed(self, info: ImageInfo, error: StageError) -> dict[str, list[Row]]:
        self._images_failed.inc()
        Metrics.counter(_NAMESPACE, f"errors_{error.stage}").inc()
        return {"errors": [_error_row(info.ref, error)]}

    def _evaluation_rows(
        self, info: ImageInfo, semantic: SemanticResult | None, instance: InstanceResult | None
    ) -> dict[str, list[Row]]:
        evaluation = evaluate_image(info.ground_truth, info.height, info.width, semantic, instance)
        ground_truth_rows = [
            {
                "image_id": info.ref.image_id,
                "instance_index": index,
                "class_id": class_id,
                "class_name": self._name(class_id),
                "area": area,
                "height": info.height,
                "width": info.width,
                "rle": rle,
            }
            for index, (class_id, rle, area) in enumerate(evaluation.gt_instances)
        ]
        return {
            "metrics": metric_rows(info.ref.image_id, evaluation, self._class_names),
            "ground_truth": ground_truth_rows,
        }

    def _first_error(
        self, info: ImageInfo, semantic: list[SemanticResult], instance: list[InstanceResult]
    ) -> StageError | None:
        if info.error is not None:
            return info.error
        for enabled, results, name in (
            (self._semantic_enabled, semantic, "semantic"),
            (self._instance_enabled, instance, "instance"),
        ):
            if enabled and len(results) != 1:
                return StageError(
                    STAGE_INFER,
                    "MissingResult",
                    f"The {name} model produced {len(results)} results for this image instead "
                    "of 1: the runner lost or duplicated a bundle's output.",
                )
            if results and results[0].error is not None:
                return results[0].error
        return None

    def _name(self, class_id: int) -> str:
        return class_name(self._class_names, class_id)

    def _rows(
        self, info: ImageInfo, semantic: SemanticResult | None, instance: InstanceResult | None
    ) -> dict[str, list[Row]]:
        image_id = info.ref.image_id
        instances = instance.instances if instance else ()
        # Spilled masks and instances (rle None) are in their batch's spill file already.
        semantic_rows = semantic_mask_rows(
            image_id,
            info.height,
            info.width,
            [mask for mask in (semantic.classes if semantic else ()) if mask.rle is not None],
            self._name,
        )
        # An image's instances are spilled all or none, so ranks (instance_id) agree.
        detection_rows = instance_rows(
            image_id,
            info.height,
            info.width,
            [inst for inst in instances if inst.rle is not None],
            self._name,
        )
        image_row = {
            "image_id": image_id,
            "source": info.ref.source,
            "record_index": info.ref.record_index,
            "width": info.width,
            "height": info.height,
            "num_instances": len(instances),
            "filename": info.filename,
            "source_id": info.source_id,
            "content_sha256": info.content_sha256,
        }
        return {
            "images": [image_row],
            "semantic_masks": semantic_rows,
            "class_counts": self._class_count_rows(info, semantic, instances),
            "instances": detection_rows,
        }

    def _class_count_rows(
        self, info: ImageInfo, semantic: SemanticResult | None, instances: Iterable[Any]
    ) -> list[Row]:
        pixels = {
            mask.class_id: mask.pixel_count for mask in (semantic.classes if semantic else ())
        }
        counts = Counter(inst.class_id for inst in instances)
        total = max(1, info.width * info.height)
        return [
            {
                "image_id": info.ref.image_id,
                "class_id": class_id,
                "class_name": self._name(class_id),
                "pixel_count": pixels.get(class_id, 0),
                "pixel_fraction": pixels.get(class_id, 0) / total,
                "instance_count": counts.get(class_id, 0),
            }
            for class_id in sorted(set(pixels) | set(counts))
        ]


def _split_batch(
    key: str, values: Iterable[tuple[str, object]]
) -> tuple[
    BatchImages,
    dict[str, list[SemanticResult]],
    dict[str, list[InstanceResult]],
    tuple[SpillRef, ...],
]:
    """A batch's group: its BatchImages, each model's results by image id, the models' spills.

    Spilled inputs (JoinInputRef) are read back from their files first.

    Raises:
      RuntimeError: the group has no BatchImages or more than one (the runner
        lost or duplicated data: that must fail the run, not skew the tables).
    """
    batches: list[BatchImages] = []
    by_model: dict[str, dict[str, list]] = {_SEMANTIC: {}, _INSTANCE: {}}
    spills: list[SpillRef] = []
    for tag, item in values:
        value = read_join_input(item) if isinstance(item, JoinInputRef) else item
        if tag == _IMAGES:
            batches.append(value)
            continue
        if tag not in by_model:
            raise TypeError(f"Unexpected input {tag!r} in the join of batch {key}.")
        for result in value.results:
            by_model[tag].setdefault(result.image_id, []).append(result)
        if value.spill is not None:
            spills.append(value.spill)
    if len(batches) != 1:
        raise RuntimeError(
            f"Batch {key} reached the join with {len(batches)} decode records: the runner "
            "lost or duplicated data. Rerun; if it persists, report the runner and this message."
        )
    # A reference delivered twice is kept once by the writer (transforms/write.py), by path.
    return batches[0], by_model[_SEMANTIC], by_model[_INSTANCE], tuple(spills)


class AssembleTableRows(beam.PTransform):
    """Joins decode info and model results per batch into rows for every table.

    Input: a dict of PCollections: "decoded" (DecodedBatch, required),
    "summaries" (ShardSummary, required), "semantic" and "instance"
    (BatchResults of SemanticResults / InstanceResults), each present only
    when that model is enabled. Results whose masks were spilled (rle None)
    give no mask rows here; their BatchResults' SpillRefs pass on to the writer.
    Output: PCollection[TableRows], one per batch keyed by its
    batch_partition_key, plus one per ShardSummary keyed by its file. With
    `spill_dir`, the join's inputs cross its shuffle as JoinInputRefs to files,
    and a batch's TableRows carries no rows, only SpillRefs (its own rows are
    spilled per table). With `evaluate`, records carrying ground truth
    also get `metrics` and `ground_truth` rows (see transforms/image_metrics.py),
    which needs the RLE strings: evaluate runs don't spill.
    """

    def __init__(
        self,
        class_names: Mapping[int, str],
        semantic_enabled: bool,
        instance_enabled: bool,
        evaluate: bool = False,
        spill_dir: str | None = None,
    ) -> None:
        """`spill_dir`: where to spill the join's inputs and each batch's rows (None: no spill)."""
        super().__init__()
        if not (semantic_enabled or instance_enabled):
            raise ValueError("AssembleTableRows needs at least one enabled model.")
        if evaluate and spill_dir is not None:
            raise ValueError(
                "AssembleTableRows cannot spill with evaluate: evaluation needs the RLE strings "
                "at the join. Pass spill_dir=None."
            )
        self._class_names = dict(class_names)
        self._semantic_enabled = semantic_enabled
        self._instance_enabled = instance_enabled
        self._evaluate = evaluate
        self._spill_dir = spill_dir

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        expected = {"decoded", "summaries"}
        expected |= {"semantic"} if self._semantic_enabled else set()
        expected |= {"instance"} if self._instance_enabled else set()
        if set(inputs) != expected:
            raise ValueError(
                f"AssembleTableRows takes inputs {sorted(expected)}, got {sorted(inputs)}."
            )
        spill_dir = self._spill_dir
        keyed = [
            inputs["decoded"]
            | "BatchImages" >> beam.FlatMap(_batch_images, self._evaluate)
            | "KeyBatchImages" >> beam.Map(_keyed_join_input, _IMAGES, spill_dir)
        ]
        for name, label in ((_SEMANTIC, "Semantic"), (_INSTANCE, "Instance")):
            if name in inputs:
                keyed.append(
                    inputs[name] | f"Key{label}" >> beam.Map(_keyed_join_input, name, spill_dir)
                )
        batch_rows = (
            keyed
            | "FlattenResults" >> beam.Flatten()
            | "GroupByBatch" >> beam.GroupByKey()
            | "BuildBatchRows"
            >> beam.ParDo(
                _BuildBatchRows(
                    self._class_names,
                    self._semantic_enabled,
                    self._instance_enabled,
                    self._evaluate,
                    self._spill_dir,
                )
            )
        )
        shard_rows = inputs["summaries"] | "BuildShardRows" >> beam.Map(_shard_rows)
        return (batch_rows, shard_rows) | "FlattenRows" >> beam.Flatten()

"""Joins each record's decode info and model results into table rows.

`AssembleTableRows` is where the ledger's "exactly one of images or errors"
is enforced: the results of every stage are grouped by `image_id`, and each
group yields either one `images` row (with its masks, counts and instances) or
one `errors` row, never both and never neither.

Mask rows (`semantic_masks`, `instances`: everything with an RLE) are built
here only for results that still carry their RLE (runs with --evaluate, and
tests). Otherwise the inference stage has already written them to spill files
(transforms/spill.py), and their `SpillRef`s pass through to the writer as
TableRows with no rows, keyed like the rows of the batch's images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.elements import (
    STAGE_DECODE,
    STAGE_INFER,
    ClassMask,
    DecodedBatch,
    ImageInfo,
    ImageRef,
    Instance,
    InstanceResult,
    SemanticResult,
    ShardSummary,
    SpillRef,
    StageError,
    batch_partition_key,
)
from transforms.image_metrics import evaluate_image, metric_rows

Row = dict[str, Any]
_NAMESPACE = "segbeam"


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


def _image_infos(batch: DecodedBatch, keep_ground_truth: bool) -> Iterator[tuple[str, ImageInfo]]:
    partition_key = batch_partition_key(batch) if batch else ""
    for image in batch:
        info = ImageInfo(
            ref=image.ref,
            width=image.width,
            height=image.height,
            filename=image.filename,
            source_id=image.source_id,
            content_sha256=image.content_sha256,
            error=image.error,
            # Ground truth travels to the join only when it will be used.
            ground_truth=image.ground_truth if keep_ground_truth else None,
            partition_key=partition_key,
        )
        yield image.ref.image_id, info


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


class _BuildImageRows(beam.DoFn):
    """(image_id, [ImageInfo, SemanticResult?, InstanceResult?]) -> one TableRows."""

    def __init__(
        self,
        class_names: Mapping[int, str],
        semantic_enabled: bool,
        instance_enabled: bool,
        evaluate: bool,
    ) -> None:
        self._class_names = dict(class_names)
        self._semantic_enabled = semantic_enabled
        self._instance_enabled = instance_enabled
        self._evaluate = evaluate
        self._images_ok = Metrics.counter(_NAMESPACE, "images_written")
        self._images_failed = Metrics.counter(_NAMESPACE, "images_failed")

    def process(self, element: tuple[str, Iterable[object]]) -> Iterator[TableRows]:
        image_id, values = element
        infos, semantic, instance = _split_results(image_id, list(values))
        if len(infos) != 1:
            # Exactly one ImageInfo exists per record read; anything else means the
            # runner lost or duplicated data, which must fail the run, not skew the tables.
            raise RuntimeError(
                f"Image {image_id} reached the join with {len(infos)} decode records and "
                f"{len(semantic)} + {len(instance)} model results: the runner lost or duplicated "
                "data. Rerun; if it persists, report the runner and this message."
            )
        info = infos[0]
        key = info.partition_key or image_id
        error = self._first_error(info, semantic, instance)
        if error is not None:
            self._images_failed.inc()
            Metrics.counter(_NAMESPACE, f"errors_{error.stage}").inc()
            yield TableRows(key, {"errors": [_error_row(info.ref, error)]})
            return
        semantic_result = semantic[0] if semantic else None
        instance_result = instance[0] if instance else None
        rows = self._rows(info, semantic_result, instance_result)
        if self._evaluate and info.ground_truth is not None:
            try:
                rows.update(self._evaluation_rows(info, semantic_result, instance_result))
            except (ValueError, OSError) as e:
                # Unreadable or mis-sized ground truth makes the record bad, like a bad image.
                error = StageError(STAGE_DECODE, "InvalidGroundTruth", f"{type(e).__name__}: {e}")
                self._images_failed.inc()
                yield TableRows(key, {"errors": [_error_row(info.ref, error)]})
                return
        self._images_ok.inc()
        yield TableRows(key, rows)

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


def _keyed_result(
    item: SemanticResult | InstanceResult | SpillRef,
) -> Iterator[tuple[str, SemanticResult | InstanceResult]]:
    """A model result keyed by image for the join; spill references skip the join."""
    if not isinstance(item, SpillRef):
        yield item.image_id, item


def _spill_rows(item: SemanticResult | InstanceResult | SpillRef) -> Iterator[TableRows]:
    """A spill reference, as rows-less TableRows keyed like its batch's image rows."""
    if isinstance(item, SpillRef):
        yield TableRows(item.partition_key, {}, (item,))


def _split_results(
    image_id: str, values: list[object]
) -> tuple[list[ImageInfo], list[SemanticResult], list[InstanceResult]]:
    infos = [v for v in values if isinstance(v, ImageInfo)]
    semantic = [v for v in values if isinstance(v, SemanticResult)]
    instance = [v for v in values if isinstance(v, InstanceResult)]
    if len(infos) + len(semantic) + len(instance) != len(values):
        unknown = {type(v).__name__ for v in values} - {
            "ImageInfo",
            "SemanticResult",
            "InstanceResult",
        }
        raise TypeError(f"Unexpected element types in the join for {image_id}: {sorted(unknown)}")
    return infos, semantic, instance


class AssembleTableRows(beam.PTransform):
    """Joins decode info and model results per image into rows for every table.

    Input: a dict of PCollections: "decoded" (DecodedBatch, required),
    "summaries" (ShardSummary, required), "semantic" (SemanticResult) and
    "instance" (InstanceResult), each present only when that model is enabled.
    The model inputs may also hold `SpillRef`s (segmentation transforms given a
    spill directory): each becomes a TableRows with no rows that carries it to
    the writer, and results whose masks were spilled (rle None) give no mask rows here.
    Output: PCollection[TableRows], keyed by the record's batch_partition_key
    (shard rows: by their file). With `evaluate`, records carrying ground truth
    also get `metrics` and `ground_truth` rows (see transforms/image_metrics.py),
    which needs the RLE strings: evaluate runs don't spill.
    """

    def __init__(
        self,
        class_names: Mapping[int, str],
        semantic_enabled: bool,
        instance_enabled: bool,
        evaluate: bool = False,
    ) -> None:
        super().__init__()
        if not (semantic_enabled or instance_enabled):
            raise ValueError("AssembleTableRows needs at least one enabled model.")
        self._class_names = dict(class_names)
        self._semantic_enabled = semantic_enabled
        self._instance_enabled = instance_enabled
        self._evaluate = evaluate

    def expand(self, inputs: Mapping[str, beam.PCollection]) -> beam.PCollection:
        expected = {"decoded", "summaries"}
        expected |= {"semantic"} if self._semantic_enabled else set()
        expected |= {"instance"} if self._instance_enabled else set()
        if set(inputs) != expected:
            raise ValueError(
                f"AssembleTableRows takes inputs {sorted(expected)}, got {sorted(inputs)}."
            )
        keyed = [inputs["decoded"] | "KeyImageInfos" >> beam.FlatMap(_image_infos, self._evaluate)]
        spill_rows = []
        for name, label in (("semantic", "Semantic"), ("instance", "Instance")):
            if name in inputs:
                keyed.append(inputs[name] | f"Key{label}" >> beam.FlatMap(_keyed_result))
                spill_rows.append(inputs[name] | f"{label}Spills" >> beam.FlatMap(_spill_rows))
        image_rows = (
            keyed
            | "FlattenResults" >> beam.Flatten()
            | "GroupByImage" >> beam.GroupByKey()
            | "BuildImageRows"
            >> beam.ParDo(
                _BuildImageRows(
                    self._class_names,
                    self._semantic_enabled,
                    self._instance_enabled,
                    self._evaluate,
                )
            )
        )
        shard_rows = inputs["summaries"] | "BuildShardRows" >> beam.Map(_shard_rows)
        return (image_rows, shard_rows, *spill_rows) | "FlattenRows" >> beam.Flatten()

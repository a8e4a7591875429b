"""Joins each record's decode info and model results into table rows.

`AssembleTableRows` is where the ledger's "exactly one of images or errors"
is enforced: the results of every stage are grouped by `image_id`, and each
group yields either one `images` row (with its masks, counts and instances) or
one `errors` row, never both and never neither.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.elements import (
    STAGE_DECODE,
    STAGE_INFER,
    DecodedBatch,
    ImageInfo,
    ImageRef,
    InstanceResult,
    SemanticResult,
    ShardSummary,
    StageError,
)
from transforms.image_metrics import evaluate_image, metric_rows

Row = dict[str, Any]
_NAMESPACE = "segbeam"


class TableRows(NamedTuple):
    """Rows for several tables that belong to one record (or one input file).

    `partition_key` decides which output file the rows go to, so all of a
    record's rows land in the same part file of each table.
    """

    partition_key: str
    tables: dict[str, list[Row]]


def _image_infos(batch: DecodedBatch, keep_ground_truth: bool) -> Iterator[tuple[str, ImageInfo]]:
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
        error = self._first_error(info, semantic, instance)
        if error is not None:
            self._images_failed.inc()
            Metrics.counter(_NAMESPACE, f"errors_{error.stage}").inc()
            yield TableRows(image_id, {"errors": [_error_row(info.ref, error)]})
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
                yield TableRows(image_id, {"errors": [_error_row(info.ref, error)]})
                return
        self._images_ok.inc()
        yield TableRows(image_id, rows)

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
        return self._class_names.get(class_id, f"class_{class_id}")

    def _rows(
        self, info: ImageInfo, semantic: SemanticResult | None, instance: InstanceResult | None
    ) -> dict[str, list[Row]]:
        image_id = info.ref.image_id
        instances = instance.instances if instance else ()
        semantic_rows = [
            {
                "image_id": image_id,
                "class_id": mask.class_id,
                "class_name": self._name(mask.class_id),
                "height": info.height,
                "width": info.width,
                "pixel_count": mask.pixel_count,
                "rle": mask.rle,
            }
            for mask in (semantic.classes if semantic else ())
        ]
        instance_rows = [
            {
                "image_id": image_id,
                "instance_id": f"{image_id}-{rank:04d}",
                "class_id": inst.class_id,
                "class_name": self._name(inst.class_id),
                "score": inst.score,
                "bbox_x": inst.bbox_x,
                "bbox_y": inst.bbox_y,
                "bbox_w": inst.bbox_w,
                "bbox_h": inst.bbox_h,
                "area": inst.area,
                "height": info.height,
                "width": info.width,
                "rle": inst.rle,
            }
            for rank, inst in enumerate(instances)
        ]
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
            "instances": instance_rows,
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
    Output: PCollection[TableRows]. With `evaluate`, records carrying ground
    truth also get `metrics` and `ground_truth` rows (see transforms/image_metrics.py).
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
        if self._semantic_enabled:
            keyed.append(inputs["semantic"] | "KeySemantic" >> beam.Map(lambda r: (r.image_id, r)))
        if self._instance_enabled:
            keyed.append(inputs["instance"] | "KeyInstance" >> beam.Map(lambda r: (r.image_id, r)))
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
        return (image_rows, shard_rows) | "FlattenRows" >> beam.Flatten()

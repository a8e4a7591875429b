"""InstanceSegmentation: decoded image batches -> each image's instances, COCO RLE encoded."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import apache_beam as beam

from models.loader import InstancePrediction
from models.spec import TASK_INSTANCE, ModelSpec
from pipeline import schemas
from transforms._inference import InferenceDoFn, SegmentationTransform, TfThreads, check_task
from transforms.elements import DecodedImage, Instance, InstanceResult
from transforms.rle import encode_crops
from transforms.rows import Row, instance_rows

METRICS_NAMESPACE = "segbeam.instance"


def encode_instances(prediction: InstancePrediction, height: int, width: int) -> list[Instance]:
    """Encodes every detection of one image's prediction, dropping empty masks.

    The bbox is the thresholded mask's extent (COCO xywh, as
    pycocotools.mask.toBbox gives for the RLE), not the model's predicted box:
    the mask is what the instances table stores, so its bbox, area and RLE
    describe the same pixels, and a box regressed separately by the detector
    (which may overhang the mask or the image) would contradict them. All of
    the image's masks are encoded together from their box crops
    (`transforms.rle.encode_crops`), never as full-image masks.
    """
    encoded = encode_crops(prediction.mask_crops, prediction.mask_offsets, height, width)
    return [
        Instance(
            class_id=int(prediction.class_ids[mask.index]),
            score=float(prediction.scores[mask.index]),
            bbox_x=float(mask.left),
            bbox_y=float(mask.top),
            bbox_w=float(mask.width),
            bbox_h=float(mask.height),
            area=mask.area,
            rle=mask.rle,
        )
        for mask in encoded
    ]


class _InstanceDoFn(InferenceDoFn[InstancePrediction, tuple[Instance, ...], InstanceResult]):
    """Runs the instance model; encodes each non-empty instance mask as RLE."""

    metrics_namespace = METRICS_NAMESPACE
    result_type = InstanceResult
    spill_table = "instances"
    spill_schema = schemas.INSTANCES

    def __init__(
        self,
        spec: ModelSpec,
        batch_size: int,
        threads: TfThreads,
        spill_dir: str | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__(spec, batch_size, threads, spill_dir, class_names)
        self._instances_detected = beam.metrics.Metrics.counter(
            METRICS_NAMESPACE, "instances_detected"
        )
        self._empty_masks = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "empty_masks_dropped")

    def _encode(self, image: DecodedImage, prediction: InstancePrediction) -> tuple[Instance, ...]:
        instances = tuple(encode_instances(prediction, image.height, image.width))
        self._note_unlabeled(instance.class_id for instance in instances)
        self._empty_masks.inc(len(prediction.scores) - len(instances))
        self._instances_detected.inc(len(instances))
        return instances

    def _mask_rows(self, result: InstanceResult) -> list[Row]:
        return instance_rows(
            result.image_id, result.height, result.width, result.instances, self._name
        )

    def _without_rle(self, result: InstanceResult) -> InstanceResult:
        return result._replace(instances=tuple(i._replace(rle=None) for i in result.instances))


class InstanceSegmentation(SegmentationTransform):
    """PCollection[DecodedBatch] -> PCollection[BatchResults] of InstanceResults.

    One BatchResults per batch, holding an InstanceResult per image that has
    pixels (images already carrying an error are skipped: the join reports
    them). Instances are in descending score order, with label-map class
    ids, a bbox from the mask's extent, the mask's pixel count as area and
    its full-image COCO RLE. Detections whose mask is empty after thresholding
    are dropped (counted in empty_masks_dropped). A failed inference or
    encoding yields a result with `error` set (stage "infer" or "encode") and
    no instances.

    With `spill_dir`, each batch's `instances` rows are written to a spill file
    (transforms/spill.py) whose `SpillRef` the BatchResults carries, and the
    results' Instances carry `rle=None`.

    Metrics (namespace "segbeam.instance"): counters images_inferred,
    instances_detected, empty_masks_dropped, infer_errors, encode_errors,
    unlabeled_predictions (instances whose class id the label map lacks: kept,
    named "class_<id>"), rows_spilled; distribution inference_latency_ms per model call.
    """

    def __init__(
        self,
        spec: ModelSpec,
        batch_size: int,
        score_threshold: float | None = None,
        *,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        spill_dir: str | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        """Args:
        spec: An instance ModelSpec.
        batch_size: Most images per model call (spec.batch_size may lower it).
        score_threshold: Keep detections scoring at least this; None = the spec's.
        intra_op_threads: TensorFlow intra-op threads per worker process (0 = TF default).
        inter_op_threads: TensorFlow inter-op threads per worker process (0 = TF default).
        spill_dir: Where to spill instance rows (inside the run's staging directory);
          None keeps the RLE strings in the results.
        class_names: The run's label map for spilled rows' class_name (None: the spec's).
        """
        check_task(spec, TASK_INSTANCE, "InstanceSegmentation")
        if score_threshold is not None:
            spec = dataclasses.replace(spec, score_threshold=score_threshold)
        threads = TfThreads(intra_op_threads, inter_op_threads)
        super().__init__(_InstanceDoFn(spec, batch_size, threads, spill_dir, class_names))

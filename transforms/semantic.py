"""SemanticSegmentation: decoded image batches -> each image's class masks, COCO RLE encoded."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.spec import TASK_SEMANTIC, ModelSpec
from pipeline import schemas
from transforms._inference import InferenceDoFn, SegmentationTransform, TfThreads, check_task
from transforms.elements import ClassMask, DecodedImage, SemanticResult
from transforms.rle import encode_class_map
from transforms.rows import Row, semantic_mask_rows

METRICS_NAMESPACE = "segbeam.semantic"


class _SemanticDoFn(InferenceDoFn[np.ndarray, tuple[ClassMask, ...], SemanticResult]):
    """Runs the semantic model; encodes each [H, W] class map (uint8 or int32) as per-class RLE."""

    metrics_namespace = METRICS_NAMESPACE
    result_type = SemanticResult
    spill_table = "semantic_masks"
    spill_schema = schemas.SEMANTIC_MASKS

    def _encode(self, image: DecodedImage, prediction: np.ndarray) -> tuple[ClassMask, ...]:
        if prediction.shape != (image.height, image.width):
            raise ValueError(
                f"class map is {prediction.shape} but the image is {image.height}x{image.width}"
            )
        classes = tuple(encode_class_map(prediction))
        self._note_unlabeled(mask.class_id for mask in classes)
        return classes

    def _mask_rows(self, result: SemanticResult) -> list[Row]:
        return semantic_mask_rows(
            result.image_id, result.height, result.width, result.classes, self._name
        )

    def _without_rle(self, result: SemanticResult) -> SemanticResult:
        return result._replace(classes=tuple(mask._replace(rle=None) for mask in result.classes))


class SemanticSegmentation(SegmentationTransform):
    """PCollection[DecodedBatch] -> PCollection[BatchResults] of SemanticResults.

    One BatchResults per batch, holding a SemanticResult per image that has
    pixels (images already carrying an error are skipped: the join reports
    them). Class ids are label-map ids.
    A failed inference or encoding yields a result with `error` set (stage
    "infer" or "encode") and no classes.

    With `spill_dir`, each batch's `semantic_masks` rows are written to a spill
    file (transforms/spill.py) whose `SpillRef` the BatchResults carries, and
    the results' ClassMasks carry `rle=None`.

    Metrics (namespace "segbeam.semantic"): counters images_inferred,
    infer_errors, encode_errors, unlabeled_predictions (class masks whose id the
    label map lacks), rows_spilled; distribution inference_latency_ms per model call.
    """

    def __init__(
        self,
        spec: ModelSpec,
        batch_size: int,
        *,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        spill_dir: str | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        """Args:
        spec: A semantic ModelSpec.
        batch_size: Most images per model call (spec.batch_size may lower it).
        intra_op_threads: TensorFlow intra-op threads per worker process (0 = TF default).
        inter_op_threads: TensorFlow inter-op threads per worker process (0 = TF default).
        spill_dir: Where to spill mask rows (inside the run's staging directory);
          None keeps the RLE strings in the results.
        class_names: The run's label map for spilled rows' class_name (None: the spec's).
        """
        check_task(spec, TASK_SEMANTIC, "SemanticSegmentation")
        threads = TfThreads(intra_op_threads, inter_op_threads)
        super().__init__(_SemanticDoFn(spec, batch_size, threads, spill_dir, class_names))

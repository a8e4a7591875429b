"""Shared machinery of the segmentation transforms: model sharing, batching, error isolation.

`InferenceDoFn` loads its model once per worker process (shared across DoFn
instances and threads via `apache_beam.utils.shared.Shared`, keyed by the
model's fingerprint and spec), runs each batch, retries a failed batch image by
image so one bad image only fails itself, and records metrics; a subclass says
only how to encode one prediction. `SegmentationTransform` wraps one such DoFn
as the labelled step of SemanticSegmentation / InstanceSegmentation.

Each DecodedBatch gives one `BatchResults` (one element per batch, not per
image: see elements.BatchResults). Spilling: given a spill directory, the
DoFn writes the batch's mask rows (with their RLE strings) to one spill file
(transforms/spill.py) and emits the results without their RLE strings, with
the file's `SpillRef`: the join needs only class ids, counts and boxes. It is
done in `process()`, not `finish_bundle()`, because Beam 2.77's DaskRunner
drops what `finish_bundle` emits.

Class ids without a label: whether a model can predict one is known before
the run only for semantic logits/probabilities/foreground models (checked by
models.loader.validate_model). Detection classes and class_map values are only
known when they appear; such predictions are kept, named "class_<id>" in the
tables, counted in the `unlabeled_predictions` counter and logged once per id
and worker, because dropping or failing them would lose the model's output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar, Generic, NamedTuple, TypeVar

import apache_beam as beam
import pyarrow as pa
from apache_beam.utils.shared import Shared

from models.loader import InstanceModel, SemanticModel, load_model
from models.spec import ModelSpec
from models.tf_runtime import configure_threads
from transforms.elements import (
    STAGE_ENCODE,
    STAGE_INFER,
    BatchResults,
    DecodedBatch,
    DecodedImage,
    StageError,
    batch_id,
    batch_partition_key,
)
from transforms.rows import Row, class_name
from transforms.spill import write_spill

_LOG = logging.getLogger(__name__)

PredictionT = TypeVar("PredictionT")
PayloadT = TypeVar("PayloadT")
ResultT = TypeVar("ResultT")

# TF error messages can embed whole graphs; the errors table needs the gist.
_MAX_MESSAGE_CHARS = 2000


class TfThreads(NamedTuple):
    """TensorFlow's thread pools in a worker process (0: TensorFlow's default)."""

    intra_op: int = 0  # Threads inside one op (e.g. a convolution).
    inter_op: int = 0  # Ops run in parallel.


# Models the driver already loaded and test-ran (pipeline.run), by model tag: a
# worker in the same process takes its model from here instead of loading and
# tracing a second copy. Empty in other processes, which load their own.
_VALIDATED_MODELS: dict[str, SemanticModel | InstanceModel] = {}


def hand_over_validated_model(spec: ModelSpec, model: SemanticModel | InstanceModel) -> None:
    """Offers the driver's validated model to in-process workers (see `_VALIDATED_MODELS`)."""
    _VALIDATED_MODELS[model_tag(spec)] = model


def discard_validated_models() -> None:
    """Drops models no worker took, so they don't outlive the run."""
    _VALIDATED_MODELS.clear()


class _ModelHandle:
    """Holds the loaded model; a plain class so `Shared` can weak-reference it."""

    def __init__(self, model: SemanticModel | InstanceModel) -> None:
        self.model = model


def model_tag(spec: ModelSpec) -> str:
    """Key of a loaded model in `Shared`: the model files' hash plus the spec itself."""
    spec_json = json.dumps(spec.to_json_dict(), sort_keys=True)
    return f"{spec.fingerprint()}:{hashlib.sha256(spec_json.encode()).hexdigest()}"


def stage_error(stage: str, error: Exception) -> StageError:
    """A StageError from an exception: its type name and (truncated) message."""
    message = str(error) or repr(error)
    return StageError(stage, type(error).__name__, message[:_MAX_MESSAGE_CHARS])


def chunks(items: Sequence[DecodedImage], size: int) -> Iterator[Sequence[DecodedImage]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_task(spec: ModelSpec, task: str, transform: str) -> None:
    """Refuses a spec for the other task: its outputs would be read with the wrong meaning."""
    if spec.task != task:
        article = "an" if task[0] in "aeiou" else "a"
        raise ValueError(f"{transform} needs {article} {task} model spec, got {spec.task!r}")


class InferenceDoFn(beam.DoFn, Generic[PredictionT, PayloadT, ResultT]):
    """DecodedBatch -> one BatchResults: a ResultT per image with pixels (errored images skipped).

    With a spill directory, the BatchResults also carries the SpillRef of the
    batch's mask rows (if it has any), and the results carry no RLE strings
    (see the module docstring).

    Subclasses set `metrics_namespace`, `result_type`, `spill_table` and
    `spill_schema`, and implement `_encode`, `_mask_rows` and `_without_rle`.
    """

    metrics_namespace: ClassVar[str]
    # Set on the subclass: SemanticResult or InstanceResult, which share the field
    # order (image_id, height, width, payload, error) that `_result` relies on.
    result_type: Callable[..., ResultT]
    # Set on the subclass: the table its spilled rows belong to, and that table's schema.
    spill_table: ClassVar[str]
    spill_schema: ClassVar[pa.Schema]

    def __init__(
        self,
        spec: ModelSpec,
        batch_size: int,
        threads: TfThreads,
        spill_dir: str | None = None,
        class_names: Mapping[int, str] | None = None,
    ) -> None:
        """`spill_dir`: where to spill mask rows (None: results keep their RLE strings).

        `class_names`: labels of the spilled rows' class_name column (None: the spec's);
        pass the run's merged label map so they match the rows built at the join.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._spec = spec
        self._spill_dir = spill_dir
        self._class_names = dict(spec.class_names if class_names is None else class_names)
        self._batch_size = batch_size
        self._threads = threads
        self._tag = model_tag(spec)  # Hashed once, on the driver, not per worker.
        self._shared = Shared()
        self._handle: _ModelHandle | None = None  # Set in setup(); keeps the shared model alive.
        self._label_ids = frozenset(spec.class_names)
        self._warned_ids: set[int] = set()  # Per worker: one warning per unlabelled id.
        namespace = self.metrics_namespace
        self._images_inferred = beam.metrics.Metrics.counter(namespace, "images_inferred")
        self._infer_errors = beam.metrics.Metrics.counter(namespace, "infer_errors")
        self._encode_errors = beam.metrics.Metrics.counter(namespace, "encode_errors")
        self._latency_ms = beam.metrics.Metrics.distribution(namespace, "inference_latency_ms")
        self._unlabeled = beam.metrics.Metrics.counter(namespace, "unlabeled_predictions")
        self._rows_spilled = beam.metrics.Metrics.counter(namespace, "rows_spilled")

    def setup(self) -> None:
        configure_threads(self._threads.intra_op, self._threads.inter_op)
        spec, tag = self._spec, self._tag

        def load() -> _ModelHandle:
            validated = _VALIDATED_MODELS.pop(tag, None)
            return _ModelHandle(validated if validated is not None else load_model(spec))

        self._handle = self._shared.acquire(load, tag=tag)

    def _encode(self, image: DecodedImage, prediction: PredictionT) -> PayloadT:
        """One image's encoded prediction (may raise: that becomes an "encode" error)."""
        raise NotImplementedError

    def _mask_rows(self, result: ResultT) -> list[Row]:
        """A successful result's rows of `spill_table`, RLE strings included."""
        raise NotImplementedError

    def _without_rle(self, result: ResultT) -> ResultT:
        """The result as the join needs it once its rows are spilled: every rle None."""
        raise NotImplementedError

    def _name(self, class_id: int) -> str:
        return class_name(self._class_names, class_id)

    def _note_unlabeled(self, class_ids: Iterable[int]) -> None:
        """Counts predictions whose class id the spec's label map lacks; warns once per id.

        Without any label map every class is "class_<id>" by choice: nothing to note.
        """
        if not self._label_ids:
            return
        unlabeled = [class_id for class_id in class_ids if class_id not in self._label_ids]
        self._unlabeled.inc(len(unlabeled))
        for class_id in sorted(set(unlabeled) - self._warned_ids):
            self._warned_ids.add(class_id)
            _LOG.warning(
                "model %s predicted class id %d, which its label map (%s) lacks; its rows are "
                "named class_%d. Add the id to the label map or fix label_offset.",
                self._spec.source or self._spec.path,
                class_id,
                self._spec.labels_source,
                class_id,
            )

    def process(self, batch: DecodedBatch) -> Iterator[BatchResults]:
        if not batch:
            return
        images = [d for d in batch if d.error is None and d.pixels is not None]
        results = [
            self._result(image, outcome)
            for chunk in chunks(images, self._batch_size)
            for image, outcome in zip(chunk, self._infer(chunk), strict=True)
        ]
        if self._spill_dir is None:
            yield BatchResults(batch_id(batch), tuple(results))
            return
        rows = [
            row for result in results if result.error is None for row in self._mask_rows(result)
        ]
        spill = None
        if rows:
            # A failure to write is infrastructure, not data: it fails (and retries) the bundle.
            spill = write_spill(
                self._spill_dir,
                self.spill_table,
                self.spill_schema,
                batch_id(batch),
                batch_partition_key(batch),
                rows,
            )
            self._rows_spilled.inc(len(rows))
        yield BatchResults(batch_id(batch), tuple(map(self._without_rle, results)), spill)

    def _result(self, image: DecodedImage, outcome: PredictionT | StageError) -> ResultT:
        if isinstance(outcome, StageError):
            return self._failed(image, outcome)
        try:
            payload = self._encode(image, outcome)
        except Exception as e:  # noqa: BLE001  # Any encoding bug must become an error row, not a crash.
            self._encode_errors.inc()
            return self._failed(image, stage_error(STAGE_ENCODE, e))
        return self.result_type(image.ref.image_id, image.height, image.width, payload)

    def _failed(self, image: DecodedImage, error: StageError) -> ResultT:
        return self.result_type(image.ref.image_id, image.height, image.width, (), error)

    def _predict(self, images: Sequence[DecodedImage]) -> list[PredictionT]:
        start = time.perf_counter()
        predictions = self._handle.model.predict([image.pixels for image in images])
        self._latency_ms.update(round((time.perf_counter() - start) * 1000))
        return predictions

    def _infer(self, chunk: Sequence[DecodedImage]) -> list[PredictionT | StageError]:
        """Predictions for a chunk; on failure, per image, isolating the bad ones."""
        try:
            predictions = self._predict(chunk)
        except Exception as e:  # noqa: BLE001  # TF raises many error types; retry alone to find the culprit.
            if len(chunk) == 1:
                self._infer_errors.inc()
                return [stage_error(STAGE_INFER, e)]
            return [self._infer_one(image) for image in chunk]
        self._images_inferred.inc(len(chunk))
        return list(predictions)

    def _infer_one(self, image: DecodedImage) -> PredictionT | StageError:
        try:
            prediction = self._predict([image])[0]
        except Exception as e:  # noqa: BLE001  # Bad input (any TF/numpy error) becomes an error row.
            self._infer_errors.inc()
            return stage_error(STAGE_INFER, e)
        self._images_inferred.inc()
        return prediction


class SegmentationTransform(beam.PTransform):
    """PCollection[DecodedBatch] -> PCollection[BatchResults], in one labelled step."""

    def __init__(self, do_fn: InferenceDoFn) -> None:
        super().__init__()
        self._do_fn = do_fn

    def expand(self, batches: beam.PCollection[DecodedBatch]) -> beam.PCollection:
        return batches | "InferAndEncode" >> beam.ParDo(self._do_fn)

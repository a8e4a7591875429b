"""Loads a model described by a ModelSpec and runs it on images of any size.

`load_model(spec)` checks the model's signature against the spec
(models.signature_checks), then returns a `SemanticModel` or an
`InstanceModel`. Both take a list of uint8 RGB images ([H_i, W_i, 3], sizes may
differ) and return one result per image at that image's original resolution.
Pre- and post-processing are TensorFlow ops (models.postprocess) compiled once
per model; images are resized one by one, then batched into as few model calls
as `spec.batch_size` (and, without resizing, equal sizes) allow.

`validate_model(spec)` is the driver's check before a run: load, check, and run
once on a blank image, so a bad model fails before any input is read.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from models import postprocess
from models.adapters import Backend, SignatureInfo, open_backend
from models.adapters.shared_calls import open_shared_backend
from models.signature_checks import check_signature
from models.spec import TASK_SEMANTIC, ModelSpec
from models.spec_keys import UPSAMPLING_JOINT_BILATERAL

# What the post-processing gets instead of the image when its upsampling never
# reads it: converting a real image to a tensor would copy it for nothing.
_UNREAD_IMAGE = np.zeros((0, 0, 3), np.uint8)

# Read only for Model Garden outputs; OD-API models have no image_info.
_NO_IMAGE_INFO = np.zeros([4, 2], np.float32)
# Size of validate_model's test image for models fed at each image's own size.
_TEST_IMAGE_SIZE = (64, 64)


class InstancePrediction(NamedTuple):
    """One image's detections above the score threshold, descending score.

    Masks are kept as box windows: instance i's mask is `mask_crops[i]`
    (bool [h_i, w_i]) placed with its top-left pixel at `mask_offsets[i]`;
    every pixel outside the window is background.
    """

    class_ids: np.ndarray  # int32 [N], label-map ids (label_offset applied).
    scores: np.ndarray  # float32 [N].
    boxes: np.ndarray  # float32 [N, 4], predicted boxes, COCO (x, y, w, h) in original pixels.
    mask_crops: tuple[np.ndarray, ...]  # N x bool [h_i, w_i].
    mask_offsets: np.ndarray  # int32 [N, 2], (top, left) of each crop in the image.


class _Prepared(NamedTuple):
    """One image ready for the model."""

    image: np.ndarray  # [in_h, in_w, 3] of the model input dtype.
    content_box: np.ndarray  # float32 [4].
    size: np.ndarray  # int32 [2], the original (H, W).


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(
            f"expected a non-empty uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}"
        )


class _BatchRunner:
    """Preprocesses images one by one and runs them through the backend in batches."""

    def __init__(self, spec: ModelSpec, backend: Backend) -> None:
        interface = check_signature(spec, backend.info)
        self.output_names = interface.output_names
        self._backend = backend
        self._input_key = interface.input_key
        self._batch_size = interface.batch_size
        self.preprocess = postprocess.make_preprocess_fn(
            spec.input_size, spec.resize, spec.input_range, interface.input_dtype
        )

    def _prepare(self, image: np.ndarray) -> _Prepared:
        _check_image(image)
        prepared = self.preprocess(tf.convert_to_tensor(image))
        return _Prepared(
            image=prepared["image"].numpy(),
            content_box=prepared["content_box"].numpy(),
            size=np.array(image.shape[:2], np.int32),
        )

    def _groups(self, prepared: list[_Prepared]) -> list[list[int]]:
        """Indices of images fed together: same input shape, at most batch_size each."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(prepared):
            by_shape.setdefault(item.image.shape, []).append(index)
        limit = self._batch_size or len(prepared)
        return [
            indices[start : start + limit]
            for indices in by_shape.values()
            for start in range(0, len(indices), limit)
        ]

    def _unbatch(self, outputs: dict[str, np.ndarray], count: int) -> list[dict[str, np.ndarray]]:
        """One model call's outputs -> `count` per-image dicts (batch dimension removed)."""
        for name in self.output_names:
            if outputs[name].shape[:1] != (count,):
                raise ValueError(
                    f"output {name} has shape {outputs[name].shape} for a batch of {count}; "
                    "expected a leading batch dimension"
                )
        # num_detections is optional (OD-API has it, not every export): read when present.
        names = [*self.output_names, *(["num_detections"] if "num_detections" in outputs else [])]
        return [{name: outputs[name][position] for name in names} for position in range(count)]

    def run(self, images: Sequence[np.ndarray]) -> list[tuple[_Prepared, dict[str, np.ndarray]]]:
        """Runs every image; returns (prepared image, its outputs without batch dim) per image."""
        prepared = [self._prepare(image) for image in images]
        per_image: list[dict[str, np.ndarray]] = [{} for _ in images]
        for indices in self._groups(prepared):
            batch = np.stack([prepared[i].image for i in indices])
            outputs = self._backend.run(self._input_key, batch)
            for index, image_outputs in zip(
                indices, self._unbatch(outputs, len(indices)), strict=True
            ):
                per_image[index] = image_outputs
        return list(zip(prepared, per_image, strict=True))


class LoadedModel:
    """A loaded model and its compiled pre/post-processing (weak-referenceable)."""

    def __init__(self, spec: ModelSpec, backend: Backend) -> None:
        self.spec = spec
        self.signature: SignatureInfo = backend.info
        self._runner = _BatchRunner(spec, backend)  # Checks the signature once.
        self._postprocess = self._make_postprocess()
        # Joint bilateral post-processing reads the original image; the others never do.
        self._reads_image = spec.upsampling == UPSAMPLING_JOINT_BILATERAL

    def _make_postprocess(self) -> tf.types.experimental.PolymorphicFunction:
        """The model's compiled post-processing (subclasses; may read `self._runner`)."""
        raise NotImplementedError

    def tracing_counts(self) -> dict[str, int]:
        """How often the pre- and post-processing `tf.function`s were traced.

        Each traces once, on first use, whatever the image sizes: a count that
        grows during a run means retracing (seconds of work per new shape).
        """
        return {
            "preprocess": self._runner.preprocess.experimental_get_tracing_count(),
            "postprocess": self._postprocess.experimental_get_tracing_count(),
        }


def class_id_dtype(spec: ModelSpec, info: SignatureInfo, output_name: str) -> tf.DType:
    """uint8 if every label id the semantic model can produce is in [0, 255], else int32.

    Known from the signature for per-class outputs (logits, probabilities: ids
    label_offset .. label_offset + C - 1) and for a foreground probability
    (two ids); a model that emits class ids itself ("class_map") can emit any.
    """
    output = info.output(output_name)
    shape = None if output is None else output.shape
    if spec.output_format == "foreground_probability":
        num_ids = 2
    elif spec.output_format in ("logits", "probabilities") and shape and shape[-1] is not None:
        num_ids = shape[-1] if len(shape) == 4 else 1
    else:
        return tf.int32
    fits = spec.label_offset >= 0 and spec.label_offset + num_ids - 1 <= np.iinfo(np.uint8).max
    return tf.uint8 if fits else tf.int32


class SemanticModel(LoadedModel):
    """Semantic segmentation: each image -> [H, W] label-map ids (uint8 or int32)."""

    def __init__(self, spec: ModelSpec, backend: Backend) -> None:
        super().__init__(spec, backend)
        self._output_name = self._runner.output_names[0]

    def _make_postprocess(self) -> tf.types.experimental.PolymorphicFunction:
        spec = self.spec
        return postprocess.make_semantic_postprocess_fn(
            spec.output_format,
            spec.mask_threshold,
            spec.label_offset,
            class_id_dtype(spec, self.signature, self._runner.output_names[0]),
            spec.upsampling,
        )

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Segments images.

        Args:
          images: uint8 [H_i, W_i, 3] RGB arrays, any sizes.

        Returns:
          One [H_i, W_i] class map per image, in label-map id space, uint8 when
          every id the model can produce fits in a byte and int32 otherwise
          (`class_id_dtype`), column-major (Fortran-contiguous: the order COCO
          RLE reads pixels in).
        """
        class_maps = []
        for image, (prepared, outputs) in zip(images, self._runner.run(images), strict=True):
            raw = self._channels_last(outputs[self._output_name])
            guide = image if self._reads_image else _UNREAD_IMAGE
            out = self._postprocess(raw, prepared.content_box, prepared.size, guide)
            class_maps.append(out["class_map_transposed"].numpy().T)
        return class_maps

    def _channels_last(self, output: np.ndarray) -> np.ndarray:
        """One image's output as float32 [h, w, C]; a [h, w] map gets C = 1."""
        raw = np.asarray(output, np.float32)
        if raw.ndim == 2:
            raw = raw[:, :, np.newaxis]
        if raw.ndim != 3:
            raise ValueError(
                f"output {self._output_name} has per-image shape {raw.shape}; expected "
                "[h, w, C] or [h, w] (channels-last)"
            )
        return raw


class InstanceModel(LoadedModel):
    """Instance segmentation: each image -> InstancePrediction."""

    def _make_postprocess(self) -> tf.types.experimental.PolymorphicFunction:
        spec = self.spec
        return postprocess.make_instance_postprocess_fn(
            spec.output_format,
            spec.score_threshold,
            spec.mask_threshold,
            spec.label_offset,
            spec.upsampling,
        )

    def _detections(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(outputs["detection_scores"])
        if "num_detections" in outputs:
            count = min(count, int(np.asarray(outputs["num_detections"]).reshape(-1)[0]))
        masks = np.asarray(outputs["detection_masks"], np.float32)[:count]
        if masks.ndim != 3:
            raise ValueError(
                f"detection_masks has per-image shape {masks.shape}; expected box-relative "
                "masks [N, M_h, M_w]"
            )
        return {
            "boxes": np.asarray(outputs["detection_boxes"], np.float32)[:count],
            "scores": np.asarray(outputs["detection_scores"], np.float32)[:count],
            "classes": np.asarray(outputs["detection_classes"], np.float32)[:count],
            "masks": masks,
            "image_info": np.asarray(outputs.get("image_info", _NO_IMAGE_INFO), np.float32),
        }

    def predict(self, images: Sequence[np.ndarray]) -> list[InstancePrediction]:
        """Detects and segments instances.

        Args:
          images: uint8 [H_i, W_i, 3] RGB arrays, any sizes.

        Returns:
          One InstancePrediction per image.
        """
        predictions = []
        for image, (prepared, outputs) in zip(images, self._runner.run(images), strict=True):
            out = self._postprocess(
                **self._detections(outputs),
                content_box=prepared.content_box,
                size=prepared.size,
                image=image if self._reads_image else _UNREAD_IMAGE,
            )
            predictions.append(
                InstancePrediction(
                    class_ids=out["class_ids"].numpy(),
                    scores=out["scores"].numpy(),
                    boxes=out["boxes"].numpy(),
                    mask_crops=_split_windows(out["masks"].numpy(), out["mask_sizes"].numpy()),
                    mask_offsets=out["mask_offsets"].numpy(),
                )
            )
        return predictions


def _split_windows(flat: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenated row-major windows (bool [sum(h_i * w_i)]) -> N x bool [h_i, w_i]."""
    if not len(sizes):
        return ()
    ends = np.cumsum(sizes.prod(axis=1))[:-1]
    return tuple(
        part.reshape(shape) for part, shape in zip(np.split(flat, ends), sizes, strict=True)
    )


def load_model(spec: ModelSpec) -> SemanticModel | InstanceModel:
    """Loads the model and checks its signature against the spec.

    Raises:
      ValueError: If the model cannot be loaded or its inputs/outputs do not
        match the spec; the message lists what the signature does have.
    """
    # Specs naming the same model share one load and one call per batch (a panoptic
    # export serving both tasks: models.adapters.shared_calls).
    backend = open_shared_backend(spec.format, spec.local_path, spec.signature, open_backend)
    try:
        model = (SemanticModel if spec.task == TASK_SEMANTIC else InstanceModel)(spec, backend)
    except BaseException:
        backend.detach()
        raise
    weakref.finalize(model, backend.detach)
    return model


def validate_model(spec: ModelSpec) -> SignatureInfo:
    """`load_validated_model`, releasing the model: returns its inputs and outputs."""
    return load_validated_model(spec).signature


def load_validated_model(spec: ModelSpec) -> SemanticModel | InstanceModel:
    """Loads the model, checks it against the spec, and runs it on one blank image.

    Call it in the driver before the pipeline starts, so a bad model fails the
    run before any image is read (a few seconds, once). The test image (black,
    `spec.input_size` or 64x64) catches what the signature cannot show, e.g.
    outputs whose batch dimension or rank is wrong at run time.

    Returns:
      The loaded, test-run model (workers in the driver's process can use it).

    Raises:
      ValueError: Naming what is wrong and how to fix the spec.
    """
    model = load_model(spec)
    height, width = spec.input_size or _TEST_IMAGE_SIZE
    try:
        model.predict([np.zeros([height, width, 3], np.uint8)])
    except (ValueError, TypeError, RuntimeError, tf.errors.OpError) as e:
        # What TF, Keras (TypeError) and TFLite (RuntimeError) raise for a model that can't run.
        raise ValueError(
            f"model {spec.local_path} loads but fails on a blank {height}x{width} test image, so "
            f"it would fail on every image: {e}. Check the spec ({spec.source or spec.path}) "
            f"against the model ({model.signature.describe()})."
        ) from e
    return model

"""In-training validation: the exported SavedModels on held-out renders, scored
the way the pipeline will be (native resolution, OD-API mask pasting).

Scenes come from a validation seed disjoint from both the training seeds and
the evaluation seed, so iterating on these numbers does not tune on the test set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from models.evaluate_metrics import (
    Detection,
    GroundTruthImage,
    InstanceScores,
    SemanticScores,
    confusion_matrix,
    encode_mask,
    instance_scores,
    semantic_scores,
)
from models.net_geometry import INPUT_SHAPE
from models.networks import NUM_CLASSES, THING_CLASS_IDS
from models.synthetic_render import Scene, scene_for_index

VALIDATION_SEED = 5_000


class ValidationReport(NamedTuple):
    """Scores of both models on the validation renders."""

    semantic: SemanticScores
    instance: InstanceScores
    num_images: int


def paste_masks(box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """OD-API `reframe_box_masks_to_image_masks`: box-relative masks to image masks.

    Args:
      box_masks: float32 [N, M, M]; boxes: float32 [N, 4] normalised (ymin, xmin, ymax, xmax).

    Returns:
      float32 [N, height, width] mask probabilities.
    """
    if len(boxes) == 0:
        return np.zeros((0, height, width), np.float32)
    boxes = tf.constant(boxes, tf.float32)
    denom = tf.maximum(boxes[:, 2:] - boxes[:, :2], 1e-4)
    lo = -boxes[:, :2] / denom
    hi = (1.0 - boxes[:, :2]) / denom
    crops = tf.image.crop_and_resize(
        tf.constant(box_masks, tf.float32)[..., None],
        tf.concat([lo, hi], axis=1),
        tf.range(len(box_masks)),
        [height, width],
        extrapolation_value=0.0,
    )
    return crops[..., 0].numpy()


def model_input(image: np.ndarray, shape: tuple[int, int] = INPUT_SHAPE) -> tf.Tensor:
    """uint8 [H, W, 3] -> uint8 [1, *shape, 3] (default INPUT_SHAPE, 320x640), stretched
    as the pipeline's loader does."""
    resized = tf.image.resize(image[None], shape, method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def signature_input_shape(fn: Callable) -> tuple[int, int]:
    """(height, width) of a serving signature's `images` input, uint8 [None, H, W, 3]."""
    _, height, width, _ = fn.structured_input_signature[1]["images"].shape
    return int(height), int(width)


def _semantic_prediction(fn: Callable, image: tf.Tensor, height: int, width: int) -> np.ndarray:
    logits = fn(images=image)["logits"]
    return tf.argmax(
        tf.image.resize(logits, [height, width], method="bilinear")[0], axis=-1
    ).numpy()


def detections_from_outputs(
    outputs: dict[str, tf.Tensor], index: int, height: int, width: int, score_threshold: float
) -> list[Detection]:
    """One image's OD-API outputs (batch of 1) -> Detections at native resolution.

    Keeps detections scoring >= score_threshold, pastes their box masks into the
    height x width image (OD-API convention) and thresholds them at 0.5.
    """
    out = {k: v[0].numpy() for k, v in outputs.items() if k != "num_detections"}
    # Padding slots score exactly 0; they are never detections, whatever the threshold.
    keep = (out["detection_scores"] >= score_threshold) & (out["detection_scores"] > 0)
    masks = (
        paste_masks(out["detection_masks"][keep], out["detection_boxes"][keep], height, width)
        >= 0.5
    )
    return [
        Detection(index, int(c) - 1, float(s), encode_mask(m))
        for c, s, m in zip(
            out["detection_classes"][keep], out["detection_scores"][keep], masks, strict=True
        )
    ]


def scene_ground_truth(scene: Scene) -> GroundTruthImage:
    """A rendered scene's instances as COCO RLE ground truth."""
    height, width = scene.class_map.shape
    return GroundTruthImage(
        height,
        width,
        tuple(encode_mask(m) for m in scene.instance_masks),
        tuple(int(c) for c in scene.instance_class_ids),
    )


def collect(
    instance_fn: Callable, seed: int, indices: Iterable[int], score_threshold: float
) -> tuple[list[GroundTruthImage], list[Detection]]:
    """Instance ground truth and detections (score >= threshold) on renders (seed, i)."""
    ground_truth: list[GroundTruthImage] = []
    detections: list[Detection] = []
    shape = signature_input_shape(instance_fn)
    for position, index in enumerate(indices):
        scene = scene_for_index(seed, index)
        height, width = scene.class_map.shape
        image = model_input(scene.image, shape)
        ground_truth.append(scene_ground_truth(scene))
        detections += detections_from_outputs(
            instance_fn(images=image), position, height, width, score_threshold
        )
    return ground_truth, detections


def validate(
    semantic_fn: Callable,
    instance_fn: Callable,
    num_images: int = 100,
    seed: int = VALIDATION_SEED,
    score_threshold: float = 0.5,
) -> ValidationReport:
    """Scores two serving signatures on `num_images` renders at native resolution."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    shape = signature_input_shape(semantic_fn)
    for index in range(num_images):
        scene = scene_for_index(seed, index)
        height, width = scene.class_map.shape
        image = model_input(scene.image, shape)
        pred = _semantic_prediction(semantic_fn, image, height, width)
        confusion += confusion_matrix(scene.class_map, pred, NUM_CLASSES)
    ground_truth, detections = collect(instance_fn, seed, range(num_images), score_threshold)
    return ValidationReport(
        semantic_scores(confusion),
        instance_scores(ground_truth, detections, THING_CLASS_IDS),
        num_images,
    )

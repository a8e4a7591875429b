"""Instance post-processing: one image's detections -> kept, sorted, pasted, in its pixels.

Boxes go back through the content box (see models.preprocess) to the original
image; masks are pasted as box windows (models.mask_paste). The compiled
function's input signature has None dimensions, so every image size and
detection count shares one trace.
"""

from __future__ import annotations

import tensorflow as tf

from models.joint_bilateral import DEFAULT_PARAMS
from models.mask_paste import paste_masks
from models.spec_keys import UPSAMPLING_BILINEAR, UPSAMPLING_JOINT_BILATERAL


def model_garden_boxes_to_input(boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Model Garden pixel boxes -> boxes normalised to the image the model was fed.

    Args:
      boxes: float32 [N, 4] (ymin, xmin, ymax, xmax) in the model's resized image.
      image_info: float32 [4, 2]: fed image (h, w), desired size, scale (y, x),
        offset (y, x); resized = fed * scale - offset.

    Returns:
      float32 [N, 4] normalised to the fed image.
    """
    offset = tf.tile(image_info[3], [2])
    scale = tf.tile(image_info[2], [2])
    fed_size = tf.tile(image_info[0], [2])
    return (boxes + offset) / scale / fed_size


def boxes_to_original(boxes: tf.Tensor, content_box: tf.Tensor) -> tf.Tensor:
    """Boxes normalised to the model input -> normalised to the original image.

    Args:
      boxes: float32 [N, 4] (ymin, xmin, ymax, xmax) relative to the model input.
      content_box: float32 [4].

    Returns:
      float32 [N, 4] relative to the original image (undoes letterbox padding).
    """
    origin = tf.tile(content_box[:2], [2])
    extent = tf.tile(content_box[2:] - content_box[:2], [2])
    return (boxes - origin) / extent


def _coco_boxes(boxes: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Normalised (ymin, xmin, ymax, xmax) -> COCO (x, y, w, h) pixels, clipped to the image."""
    clipped = tf.clip_by_value(boxes, 0.0, 1.0)
    scale = tf.tile(tf.cast(size, tf.float32), [2])
    ymin, xmin, ymax, xmax = tf.unstack(clipped * scale, axis=1)
    return tf.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=1)


def _kept_by_descending_score(scores: tf.Tensor, score_threshold: float) -> tf.Tensor:
    """int32 [K] indices of the scores >= score_threshold, descending; ties keep input order."""
    kept = tf.boolean_mask(tf.range(tf.shape(scores)[0]), scores >= score_threshold)
    return tf.gather(kept, tf.argsort(tf.gather(scores, kept), direction="DESCENDING", stable=True))


def make_instance_postprocess_fn(
    output_format: str,
    score_threshold: float,
    mask_threshold: float,
    label_offset: int,
    upsampling: str = UPSAMPLING_BILINEAR,
) -> tf.types.experimental.PolymorphicFunction:
    """Builds the per-image instance post-processing function of one model.

    Inputs (one image's detections): boxes float32 [N, 4] (normalised to the
    model input for "od_api", pixels of the resized image for "model_garden"),
    scores float32 [N], classes float32 [N] (raw model class indices),
    masks float32 [N, M_h, M_w] box-relative, image_info float32 [4, 2] (only
    read for "model_garden"), content_box float32 [4], size int32 [2], image
    uint8 [H, W, 3] (the original image; read only when `upsampling` is
    "joint_bilateral", which pastes the masks with models.mask_refinement).

    Returns:
      "class_ids" int32 [K], "scores" float32 [K], "boxes" float32 [K, 4] COCO
      xywh pixels of the predicted boxes, plus `paste_masks`' outputs; the K
      detections scoring >= score_threshold, descending score.
    """

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([4, 2], tf.float32),
            tf.TensorSpec([4], tf.float32),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([None, None, 3], tf.uint8),
        ]
    )
    def postprocess(
        boxes: tf.Tensor,
        scores: tf.Tensor,
        classes: tf.Tensor,
        masks: tf.Tensor,
        image_info: tf.Tensor,
        content_box: tf.Tensor,
        size: tf.Tensor,
        image: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        order = _kept_by_descending_score(scores, score_threshold)
        boxes = tf.gather(boxes, order)
        if output_format == "model_garden":
            boxes = model_garden_boxes_to_input(boxes, image_info)
        boxes = boxes_to_original(boxes, content_box)
        guided = upsampling == UPSAMPLING_JOINT_BILATERAL
        pasted = paste_masks(
            tf.gather(masks, order),
            boxes,
            size,
            mask_threshold,
            image if guided else None,
            DEFAULT_PARAMS if guided else None,
        )
        return {
            "class_ids": tf.cast(tf.round(tf.gather(classes, order)), tf.int32) + label_offset,
            "scores": tf.gather(scores, order),
            "boxes": _coco_boxes(boxes, size),
            **pasted,
        }

    return postprocess

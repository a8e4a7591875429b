"""Pastes box-relative instance masks into the image, one box window at a time.

The result equals OD-API's `reframe_box_masks_to_image_masks` followed by a
threshold (or, asked for, the image-guided paste of models.mask_refinement), but
only the pixel window around each box is computed, so N full-image masks are
never materialised.
"""

from __future__ import annotations

import tensorflow as tf

from models.joint_bilateral import JointBilateralParams
from models.mask_refinement import MIN_BOX_SIZE, refine_window


def _reverse_boxes(boxes: tf.Tensor) -> tf.Tensor:
    """OD-API's trick: the image's corners expressed relative to each box.

    Cropping a box mask with these coordinates to the image size pastes the
    mask into the image (float32 [N, 4] in, float32 [N, 4] out).
    """
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=1)
    height = tf.maximum(ymax - ymin, MIN_BOX_SIZE)
    width = tf.maximum(xmax - xmin, MIN_BOX_SIZE)
    return tf.stack([-ymin / height, -xmin / width, (1.0 - ymin) / height, (1.0 - xmin) / width], 1)


def _crop_windows(boxes: tf.Tensor, size: tf.Tensor) -> dict[str, tf.Tensor]:
    """The pixel window of each box's pasted mask, with one pixel of margin.

    OD-API samples image pixel i at normalised position i / (H - 1); pixels
    outside [ymin, ymax] x [xmin, xmax] get the extrapolation value 0, so the
    window bounds every pixel that can be set.

    Returns:
      "offset": int32 [N, 2] (top, left); "size": int32 [N, 2] (h, w), >= 1.
    """
    safe = tf.where(tf.math.is_finite(boxes), boxes, tf.zeros_like(boxes))
    last = tf.cast(size - 1, tf.float32)
    low = tf.floor(safe[:, :2] * last) - 1.0
    high = tf.math.ceil(safe[:, 2:] * last) + 1.0
    low = tf.cast(tf.clip_by_value(low, 0.0, last), tf.int32)
    high = tf.cast(tf.clip_by_value(high, 0.0, last), tf.int32)
    return {"offset": low, "size": tf.maximum(high - low + 1, 1)}


def _window_sampling_boxes(
    reverse: tf.Tensor, windows: dict[str, tf.Tensor], size: tf.Tensor
) -> tf.Tensor:
    """crop_and_resize boxes that sample a window exactly where the full paste would.

    For an image dimension of n > 1 pixels the full paste samples pixel i at
    y1 + i * (y2 - y1) / (n - 1); the window [lo, lo + k) keeps that step by
    cropping from y1 + lo * step to y1 + (lo + k - 1) * step. A 1-pixel image
    dimension is sampled at the box centre, so it keeps the full box.
    """
    start, stop = reverse[:, :2], reverse[:, 2:]
    steps = tf.cast(tf.maximum(size - 1, 1), tf.float32)
    step = (stop - start) / steps
    low = tf.cast(windows["offset"], tf.float32)
    high = low + tf.cast(windows["size"] - 1, tf.float32)
    single = size == 1
    first = tf.where(single, start, start + low * step)
    last = tf.where(single, stop, start + high * step)
    return tf.concat([first, last], axis=1)


def paste_masks(
    box_masks: tf.Tensor,
    boxes: tf.Tensor,
    size: tf.Tensor,
    mask_threshold: float,
    image: tf.Tensor | None = None,
    refinement: JointBilateralParams | None = None,
) -> dict[str, tf.Tensor]:
    """Pastes box-relative masks into the image like OD-API, one box window at a time.

    Equivalent to OD-API's `reframe_box_masks_to_image_masks` (bilinear
    crop_and_resize with the image corners relative to each box, extrapolation
    0) followed by `> mask_threshold`; with `refinement`, pixels whose nearest
    box-mask cells disagree are decided by joint bilateral upsampling guided by
    `image` instead (models.mask_refinement; images 1 pixel high or wide keep
    the bilinear paste).

    Args:
      box_masks: float32 [N, M_h, M_w] mask probabilities inside each box.
      boxes: float32 [N, 4] (ymin, xmin, ymax, xmax) normalised to the image.
      size: int32 [2] image (H, W).
      mask_threshold: Pixels with probability > this are in the mask.
      image: uint8 [H, W, 3], the original image; read only with `refinement`.
      refinement: Joint bilateral parameters, or None for the bilinear paste.

    Returns:
      "masks": bool [sum(h_i * w_i)], the row-major windows concatenated;
      "mask_sizes": int32 [N, 2] (h_i, w_i); "mask_offsets": int32 [N, 2] (top, left).
    """
    if refinement is not None and image is None:
        raise ValueError("joint bilateral mask pasting needs the original image")
    windows = _crop_windows(boxes, size)
    sampling = _window_sampling_boxes(_reverse_boxes(boxes), windows, size)
    count = tf.shape(box_masks)[0]
    # The guided paste samples between pixels on both axes, so it needs H, W > 1.
    guide_fits = tf.reduce_all(size > 1)
    crops = tf.TensorArray(tf.bool, size=count, infer_shape=False, element_shape=[None])
    for i in tf.range(count):
        # One detection at a time: a graph loop otherwise runs up to 10 iterations at once,
        # and ten guided windows' temporaries at once raised the benchmark's peak RSS by
        # ~0.2 GB (docs/performance.md, "Session 14").
        tf.autograph.experimental.set_loop_options(parallel_iterations=1)

        def bilinear(i: tf.Tensor = i) -> tf.Tensor:
            crop = tf.image.crop_and_resize(
                box_masks[i][tf.newaxis, :, :, tf.newaxis],
                sampling[i][tf.newaxis],
                tf.zeros([1], tf.int32),
                windows["size"][i],
                extrapolation_value=0.0,
            )
            return tf.reshape(crop > mask_threshold, [-1])

        def guided(i: tf.Tensor = i) -> tf.Tensor:
            window = refine_window(
                box_masks[i],
                boxes[i],
                windows["offset"][i],
                windows["size"][i],
                image,
                mask_threshold,
                refinement,
            )
            return tf.reshape(window, [-1])

        if refinement is None:
            crops = crops.write(i, bilinear())
        else:
            crops = crops.write(i, tf.cond(guide_fits, guided, bilinear))
    flat = tf.cond(count > 0, crops.concat, lambda: tf.zeros([0], tf.bool))
    return {"masks": flat, "mask_sizes": windows["size"], "mask_offsets": windows["offset"]}

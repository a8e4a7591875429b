"""Box masks pasted with joint bilateral upsampling, guided by the original image.

`models.mask_paste` pastes a box-relative mask [M, M] into its box window as
OD-API does: bilinear sampling, then a threshold. The box mask is coarse
(the bundled model's comes from its 320x640 input grid; Mask R-CNN's from a
28x28 ROI), so the pasted mask's outline is a smooth curve that ignores the
image: the gap between a pedestrian's legs fills in. Here every window pixel
sits at exactly the box-mask coordinate the bilinear paste samples, but pixels
whose four nearest box-mask cells disagree about the threshold take the joint
bilateral vote of their 2r x 2r nearest cells instead (`models.joint_bilateral`),
so the outline follows the image's edges. Elsewhere, and outside the box, the
result is the bilinear paste's.
"""

from __future__ import annotations

import tensorflow as tf

from models.joint_bilateral import JointBilateralParams, joint_bilateral_class_map

# OD-API's guard against zero-size boxes in `reframe_box_masks_to_image_masks`.
MIN_BOX_SIZE = 1e-4


def _window_map_box(
    box: tf.Tensor, offset: tf.Tensor, window: tf.Tensor, size: tf.Tensor, mask_size: tf.Tensor
) -> tf.Tensor:
    """The content box that puts a window's pixels where the bilinear paste samples them.

    The paste samples image row y (of H > 1) at box-mask row
    r(y) = (y / (H - 1) - ymin) / (ymax - ymin) * (M - 1), an affine map of y.
    `joint_bilateral_class_map` maps window pixel i through a content box
    [start, end] to (start + (i + 0.5) / k * (end - start)) * M - 0.5; this
    solves for the start and end that make the two agree on every pixel.

    Args:
      box: float32 [4] (ymin, xmin, ymax, xmax), normalised to the image.
      offset: int32 [2], the window's (top, left) pixel.
      window: int32 [2], the window's (h, w), each >= 1.
      size: int32 [2], the image's (H, W), each > 1.
      mask_size: int32 [2], the box mask's (M_h, M_w).

    Returns:
      float32 [4] (start_y, start_x, end_y, end_x) in box-mask units (0..1 spans
      the mask's M cells).
    """
    cells = tf.cast(mask_size, tf.float32)
    extent = tf.maximum(box[2:] - box[:2], MIN_BOX_SIZE)
    slope = (cells - 1.0) / (tf.cast(size - 1, tf.float32) * extent)
    first = (tf.cast(offset, tf.float32) / tf.cast(size - 1, tf.float32) - box[:2]) / extent
    first = first * (cells - 1.0)  # r of the window's first pixel.
    start = (first + 0.5 - 0.5 * slope) / cells
    end = start + slope * tf.cast(window, tf.float32) / cells
    return tf.concat([start, end], 0)


def _inside_box(box: tf.Tensor, offset: tf.Tensor, window: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """bool [h, w]: window pixels the paste samples inside the box (it reads 0 outside)."""
    last = tf.cast(size - 1, tf.float32)

    def along(axis: int) -> tf.Tensor:
        u = tf.cast(offset[axis] + tf.range(window[axis]), tf.float32) / last[axis]
        extent = tf.maximum(box[axis + 2] - box[axis], MIN_BOX_SIZE)  # As the paste scales it.
        return (u >= box[axis]) & (u <= box[axis] + extent)

    return along(0)[:, tf.newaxis] & along(1)[tf.newaxis, :]


def refine_window(
    box_mask: tf.Tensor,
    box: tf.Tensor,
    offset: tf.Tensor,
    window: tf.Tensor,
    image: tf.Tensor,
    mask_threshold: float,
    params: JointBilateralParams,
) -> tf.Tensor:
    """One detection's mask window, pasted with joint bilateral upsampling.

    Args:
      box_mask: float32 [M_h, M_w], mask probabilities inside the box.
      box: float32 [4] normalised (ymin, xmin, ymax, xmax) in the image.
      offset, window: int32 [2] each, the window's (top, left) and (h, w), as
        `models.mask_paste` computes them.
      image: uint8 [H, W, 3], H and W > 1.
      mask_threshold: Pixels whose vote for the mask exceeds this are in it.
      params: The joint bilateral neighbourhood and weights.

    Returns:
      bool [h, w]: the mask inside the window.
    """
    size = tf.shape(image)[:2]
    crop = image[offset[0] : offset[0] + window[0], offset[1] : offset[1] + window[1]]
    # Two "classes" whose argmax is box_mask > mask_threshold, for the weighted sums
    # too: sum(w * m) > sum(w * (2t - m)) exactly when the weighted mean of m is > t.
    votes = tf.stack([2.0 * mask_threshold - box_mask, box_mask], -1)
    content = _window_map_box(box, offset, window, size, tf.shape(box_mask))
    inside = joint_bilateral_class_map(votes, crop, content, params) > 0
    return inside & _inside_box(box, offset, window, size)

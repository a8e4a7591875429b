"""Panoptic-DeepLab-style grouping in pure TF ops, ending in OD-API outputs.

Everything here runs inside the exported instance model's tf.function. Inputs
are the raw heads on the G x G output grid (cell (i, j) covers input pixels
[2i, 2i+2) x [2j, 2j+2); G = 128 for the bundled 256x256 input). G is read from
the heads' static shape, so the same code groups any input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from models.net_geometry import OUTPUT_STRIDE
from models.networks import THING_CLASS_IDS

Centres = tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]


@dataclass(frozen=True)
class PostprocessConfig:
    """Grouping parameters.

    max_detections: K, the fixed number of output slots.
    nms_kernel: Side of the max-pool window that suppresses non-peak cells.
    center_threshold: Minimum centre heatmap value for a peak to seed an instance.
    mask_size: M, side of the box-relative output masks.
    score_power: Scores are (peak * mean foreground prob) ** score_power. The
      power is monotone (AP is unchanged) and moves the typical operating point
      near 0.5, where the pipeline's default score threshold sits.
    """

    max_detections: int = 50
    nms_kernel: int = 5
    center_threshold: float = 0.1
    mask_size: int = 48
    score_power: float = 0.5


def _grid_size(heads: tf.Tensor) -> int:
    """G of square heads [B, G, G, C]; static, as the export traces a fixed input size."""
    height, width = heads.shape[1], heads.shape[2]
    if height is None or height != width:
        raise ValueError(
            f"Grouping needs square heads with a static size, got {heads.shape}; "
            "export the network with a fixed input size (networks.with_input_size)."
        )
    return int(height)


def find_centres(center_logits: tf.Tensor, config: PostprocessConfig) -> Centres:
    """Top-K heatmap peaks over both thing classes.

    Args:
      center_logits: float32 [B, G, G, 2].

    Returns:
      (peak float32 [B, K], y float32 [B, K], x float32 [B, K], thing int32 [B, K]):
      heatmap value (0 for unused slots), centre in input pixels, thing channel (0/1).
    """
    heat = tf.sigmoid(center_logits)
    pooled = tf.nn.max_pool2d(heat, config.nms_kernel, strides=1, padding="SAME")
    peaks = tf.where((heat >= pooled) & (heat > config.center_threshold), heat, 0.0)
    b, grid = tf.shape(peaks)[0], _grid_size(peaks)
    flat = tf.reshape(peaks, [b, -1])  # Index = (i * G + j) * 2 + thing channel.
    values, index = tf.math.top_k(flat, k=config.max_detections, sorted=True)
    cell, thing = index // 2, index % 2
    y = tf.cast(cell // grid, tf.float32) * OUTPUT_STRIDE + OUTPUT_STRIDE / 2
    x = tf.cast(cell % grid, tf.float32) * OUTPUT_STRIDE + OUTPUT_STRIDE / 2
    return values, y, x, thing


def assign_pixels(
    thing_logits: tf.Tensor, offsets: tf.Tensor, centres: Centres
) -> tuple[tf.Tensor, tf.Tensor]:
    """Assigns each foreground cell to the nearest same-class centre.

    Args:
      thing_logits: float32 [B, G, G, 3] (background, vehicle, pedestrian).
      offsets: float32 [B, G, G, 2], (dy, dx) to the centre in input pixels.
      centres: `find_centres` output.

    Returns:
      (masks float32 [B, K, G, G], soft float32 [B, K, G, G]): hard 0/1 masks and
      the same masks weighted by each cell's foreground probability.
    """
    peak, cy, cx, thing = centres
    probs = tf.nn.softmax(thing_logits, axis=-1)
    label = tf.argmax(thing_logits, axis=-1, output_type=tf.int32) - 1  # -1 = background.
    grid = tf.range(_grid_size(offsets), dtype=tf.float32) * OUTPUT_STRIDE + OUTPUT_STRIDE / 2
    vote_y = grid[None, :, None] + offsets[..., 0]  # [B, G, G]: where each cell votes.
    vote_x = grid[None, None, :] + offsets[..., 1]
    d2 = tf.square(vote_y[..., None] - cy[:, None, None, :]) + tf.square(
        vote_x[..., None] - cx[:, None, None, :]
    )
    valid = (peak[:, None, None, :] > 0) & tf.equal(label[..., None], thing[:, None, None, :])
    nearest = tf.argmin(tf.where(valid, d2, tf.float32.max), axis=-1, output_type=tf.int32)
    assigned = tf.cast(tf.reduce_any(valid, axis=-1), tf.float32)  # [B, G, G]
    onehot = tf.one_hot(nearest, tf.shape(peak)[1], dtype=tf.float32) * assigned[..., None]
    masks = tf.transpose(onehot, [0, 3, 1, 2])  # [B, K, G, G]
    foreground = 1.0 - probs[..., 0]
    return masks, masks * foreground[:, None, :, :]


def boxes_from_masks(masks: tf.Tensor) -> tf.Tensor:
    """Tight boxes of 0/1 masks [B, K, G, G].

    Returns:
      float32 [B, K, 4] normalised (ymin, xmin, ymax, xmax) in continuous
      coordinates (cell i spans [i, i+1) / G); all zeros for empty masks.
    """
    size = float(masks.shape[-1])
    rows = tf.reduce_max(masks, axis=3)  # [B, K, G]
    cols = tf.reduce_max(masks, axis=2)
    idx = tf.range(size, dtype=tf.float32)

    def extent(hit: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        lo = tf.reduce_min(tf.where(hit > 0, idx, 2.0 * size), axis=-1)
        hi = tf.reduce_max(tf.where(hit > 0, idx, -1.0), axis=-1) + 1.0
        return lo, hi

    y0, y1 = extent(rows)
    x0, x1 = extent(cols)
    present = tf.reduce_max(rows, axis=-1) > 0
    return tf.where(present[..., None], tf.stack([y0, x0, y1, x1], axis=-1) / size, 0.0)


def pad_boxes(boxes: tf.Tensor, grid: int, cells: float = 0.5) -> tf.Tensor:
    """Grows non-empty normalised boxes [..., 4] by `cells` cells of a `grid`-cell side,
    clipped to [0, 1].

    Without the margin the box edge samples sit exactly on the mask boundary
    (bilinear value 0.5), so a 0.5 threshold would be a coin toss there.
    """
    margin = cells / grid
    grown = tf.clip_by_value(boxes + tf.constant([-1.0, -1.0, 1.0, 1.0]) * margin, 0.0, 1.0)
    present = tf.reduce_any(boxes > 0, axis=-1, keepdims=True)
    return tf.where(present, grown, 0.0)


def box_masks(soft: tf.Tensor, boxes: tf.Tensor, mask_size: int) -> tf.Tensor:
    """Resamples full-grid masks into their boxes, as OD-API Mask R-CNN emits them.

    OD-API's `reframe_box_masks_to_image_masks` (crop_and_resize's inverse)
    puts box-mask row r at image position ymin + r / (M - 1) * (ymax - ymin);
    sampling the grid at exactly those positions makes the round trip lossless
    up to interpolation.

    Args:
      soft: float32 [B, K, G, G] mask probabilities.
      boxes: float32 [B, K, 4] normalised (ymin, xmin, ymax, xmax).

    Returns:
      float32 [B, K, M, M] in [0, 1].
    """
    b, k, grid = tf.shape(soft)[0], tf.shape(soft)[1], soft.shape[-1]
    images = tf.reshape(soft, [-1, grid, grid, 1])
    size = float(grid)
    # Continuous position u in [0, 1] is cell-centre index u * G - 0.5, which
    # crop_and_resize addresses as (u * G - 0.5) / (G - 1).
    crop_boxes = (tf.reshape(boxes, [-1, 4]) * size - 0.5) / (size - 1.0)
    crops = tf.image.crop_and_resize(
        images, crop_boxes, tf.range(b * k), [mask_size, mask_size], method="bilinear"
    )
    return tf.clip_by_value(tf.reshape(crops, [b, k, mask_size, mask_size]), 0.0, 1.0)


def to_detections(raw: dict[str, tf.Tensor], config: PostprocessConfig) -> dict[str, tf.Tensor]:
    """Instance heads -> OD-API detection dict (contract in models.export)."""
    centres = find_centres(raw["center_logits"], config)
    masks, soft = assign_pixels(raw["thing_logits"], raw["offsets"], centres)
    area = tf.reduce_sum(masks, axis=[2, 3])  # [B, K]
    mean_fg = tf.math.divide_no_nan(tf.reduce_sum(soft, axis=[2, 3]), area)
    score = tf.where(area > 0, tf.pow(centres[0] * mean_fg, config.score_power), 0.0)
    order = tf.argsort(score, axis=-1, direction="DESCENDING", stable=True)
    score = tf.gather(score, order, batch_dims=1)
    masks = tf.gather(masks, order, batch_dims=1)
    soft = tf.gather(soft, order, batch_dims=1)
    thing = tf.gather(centres[3], order, batch_dims=1)
    boxes = pad_boxes(boxes_from_masks(masks), masks.shape[-1])
    present = score > 0
    class_ids = tf.gather(tf.constant(THING_CLASS_IDS, tf.float32), thing)
    return {
        "detection_boxes": boxes,
        "detection_scores": score,
        "detection_classes": tf.where(present, class_ids + 1.0, 0.0),
        "num_detections": tf.reduce_sum(tf.cast(present, tf.float32), axis=-1),
        "detection_masks": box_masks(soft, boxes, config.mask_size),
    }

"""Panoptic-DeepLab-style grouping in pure TF ops, ending in OD-API outputs.

Everything here runs inside the exported instance model's tf.function. Inputs
are the raw heads: the centre heatmaps on the Gh x Gw grid of OUTPUT_STRIDE (cell
(i, j) covers input pixels [2i, 2i+2) x [2j, 2j+2)), the thing segmentation and
offsets on a Dh x Dw dense grid (one cell per input pixel for the bundled
model). Both grids are read from the heads' static shapes, so the same code
groups any input size, square or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from models.net_geometry import OUTPUT_STRIDE
from models.networks import THING_CLASS_IDS


class Centres(NamedTuple):
    """Top-K heatmap peaks, float32 [B, K] each except `thing`.

    peak: heatmap value (0 for unused slots); y, x: centre in input pixels;
    thing: int32 [B, K] thing channel (0 vehicle, 1 pedestrian).
    """

    peak: tf.Tensor
    y: tf.Tensor
    x: tf.Tensor
    thing: tf.Tensor


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
    valley_ratio: None for plain max-pool suppression. Otherwise a cell that is
      the maximum of its 3x3 neighbours, but that a higher cell further away
      inside the nms_kernel window would suppress, is kept when the heat midway
      between the two is below valley_ratio times its own: two pedestrians side
      by side make two peaks with a dip between them, one object's broad top
      does not. (The four-stage models recalibrated with 0.9: training
      validation mask AP50 0.671 -> 0.682; held-out 0.615 -> 0.632, the
      model card's "What was tried".)
    """

    max_detections: int = 50
    nms_kernel: int = 5
    center_threshold: float = 0.1
    mask_size: int = 48
    score_power: float = 0.5
    valley_ratio: float | None = 0.9

    def __post_init__(self) -> None:
        if self.nms_kernel < 1 or self.nms_kernel % 2 == 0:
            raise ValueError(
                f"nms_kernel must be a positive odd number of cells, got {self.nms_kernel}."
            )
        if self.valley_ratio is not None and not 0.0 < self.valley_ratio <= 1.0:
            raise ValueError(
                f"valley_ratio must be in (0, 1], or None for plain max-pool suppression; "
                f"got {self.valley_ratio}."
            )


def _grid_shape(heads: tf.Tensor) -> tuple[int, int]:
    """(Gh, Gw) of maps [B, Gh, Gw, ...]; static, as the export traces a fixed input size."""
    height, width = heads.shape[1], heads.shape[2]
    if height is None or width is None:
        raise ValueError(
            f"Grouping needs heads with a static size, got {heads.shape}; "
            "export the network with a fixed input size (networks.with_input_shape)."
        )
    return int(height), int(width)


def _halfway(offset: int) -> list[int]:
    """The one or two cell offsets midway along an offset (2 -> [1], 3 -> [1, 2], -1 -> [-1, 0])."""
    return sorted({offset // 2, -(-offset // 2)})


def _peak_cells(heat: tf.Tensor, config: PostprocessConfig) -> tf.Tensor:
    """bool [B, Gh, Gw, C]: the cells that survive peak suppression (see PostprocessConfig)."""
    if config.valley_ratio is None:
        return heat >= tf.nn.max_pool2d(heat, config.nms_kernel, strides=1, padding="SAME")
    radius = config.nms_kernel // 2
    height, width = _grid_shape(heat)
    # Zero-padded once: heat at (row + dy, column + dx) is then one slice, |dy|, |dx| <= radius.
    padded = tf.pad(heat, [[0, 0], [radius, radius], [radius, radius], [0, 0]])

    def shifted(dy: int, dx: int) -> tf.Tensor:
        return padded[:, radius + dy : radius + dy + height, radius + dx : radius + dx + width, :]

    keep = heat >= tf.nn.max_pool2d(heat, 3, strides=1, padding="SAME")
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if max(abs(dy), abs(dx)) < 2:
                continue  # The 3x3 maximum above already decides the nearest cells.
            between = [shifted(y, x) for y in _halfway(dy) for x in _halfway(dx)]
            no_valley = tf.add_n(between) / len(between) >= config.valley_ratio * heat
            keep &= ~((shifted(dy, dx) > heat) & no_valley)
    return keep


def find_centres(center_logits: tf.Tensor, config: PostprocessConfig) -> Centres:
    """Top-K heatmap peaks over both thing classes.

    Args:
      center_logits: float32 [B, Gh, Gw, 2].

    Returns:
      The `Centres`.
    """
    heat = tf.sigmoid(center_logits)
    peaks = tf.where(_peak_cells(heat, config) & (heat > config.center_threshold), heat, 0.0)
    b, (_, grid_width) = tf.shape(peaks)[0], _grid_shape(peaks)
    flat = tf.reshape(peaks, [b, -1])  # Index = (i * Gw + j) * 2 + thing channel.
    values, index = tf.math.top_k(flat, k=config.max_detections, sorted=True)
    cell, thing = index // 2, index % 2
    y = tf.cast(cell // grid_width, tf.float32) * OUTPUT_STRIDE + OUTPUT_STRIDE / 2
    x = tf.cast(cell % grid_width, tf.float32) * OUTPUT_STRIDE + OUTPUT_STRIDE / 2
    return Centres(values, y, x, thing)


class Assignment(NamedTuple):
    """Which centre slot each cell of the Dh x Dw grid belongs to.

    slot: int32 [B, Dh, Dw], slot k + 1 for slot k, 0 for none (background, or no
      centre of the cell's class).
    foreground: float32 [B, Dh, Dw], each cell's foreground probability.
    cells: int64 [N, 3], (image, row, column) of every thing cell; owner: int32
      [N], their `slot` values (the sparse form, for per-slot sums).
    """

    slot: tf.Tensor
    foreground: tf.Tensor
    cells: tf.Tensor
    owner: tf.Tensor


def assign_pixels(
    thing_logits: tf.Tensor, offsets: tf.Tensor, centres: Centres, stride: float
) -> Assignment:
    """Assigns each foreground cell to the nearest same-class centre.

    Only thing cells (argmax not background, typically 5-20% of an image) are
    compared with the K centres, as an [N, K] distance matrix: a dense
    [B, Dh, Dw, K] one would be 13 MB per image at 256 x 256 cells, K = 50.

    Args:
      thing_logits: float32 [B, Dh, Dw, 3] (background, vehicle, pedestrian).
      offsets: float32 [B, Dh, Dw, 2], (dy, dx) to the centre in input pixels.
      centres: `find_centres` output (K slots).
      stride: input pixels per cell of the Dh x Dw grid.

    Returns:
      The `Assignment`; ties go to the lower slot.
    """
    peak, cy, cx, thing = centres
    label = tf.argmax(thing_logits, axis=-1, output_type=tf.int32) - 1  # -1 = background.
    cells = tf.where(label >= 0)  # int64 [N, 3]: (image, row, column).
    image = cells[:, 0]
    position = (tf.cast(cells[:, 1:], tf.float32) + 0.5) * stride
    vote = position + tf.gather_nd(offsets, cells)  # [N, 2]: where each cell votes.
    d2 = tf.square(vote[:, :1] - tf.gather(cy, image)) + tf.square(
        vote[:, 1:] - tf.gather(cx, image)
    )  # [N, K]
    valid = (tf.gather(peak, image) > 0) & tf.equal(
        tf.gather(thing, image), tf.gather_nd(label, cells)[:, None]
    )
    nearest = tf.argmin(tf.where(valid, d2, tf.float32.max), axis=-1, output_type=tf.int32)
    owner = tf.where(tf.reduce_any(valid, axis=-1), nearest + 1, 0)
    slot = tf.scatter_nd(cells, owner, tf.shape(label, out_type=tf.int64))
    foreground = 1.0 - tf.nn.softmax(thing_logits, axis=-1)[..., 0]
    return Assignment(slot, foreground, cells, owner)


class SlotStats(NamedTuple):
    """Per-slot sums over the cells `assign_pixels` gave each slot.

    area: float32 [B, K] cell count; foreground: float32 [B, K] summed foreground
    probability; boxes: float32 [B, K, 4] tight normalised (ymin, xmin, ymax, xmax)
    in continuous coordinates (row i spans [i, i+1) / Dh), all zeros for empty slots.
    """

    area: tf.Tensor
    foreground: tf.Tensor
    boxes: tf.Tensor


def slot_stats(assignment: Assignment, num_slots: int) -> SlotStats:
    """Areas, foreground sums and boxes of every slot, by segment reductions over
    the thing cells only.

    Args:
      assignment: `assign_pixels` output.
      num_slots: K.
    """
    cells, owner = assignment.cells, assignment.owner
    b, (height, width) = tf.shape(assignment.slot)[0], _grid_shape(assignment.slot)
    # Segment image * (K + 1) + owner; segment 0 of each image collects unowned cells.
    segments = tf.cast(cells[:, 0], tf.int32) * (num_slots + 1) + owner
    count = b * (num_slots + 1)

    def per_slot(values: tf.Tensor, reduce: object) -> tf.Tensor:
        return tf.reshape(reduce(values, segments, count), [b, num_slots + 1])[:, 1:]

    rows, cols = tf.cast(cells[:, 1], tf.float32), tf.cast(cells[:, 2], tf.float32)
    area = per_slot(tf.ones_like(rows), tf.math.unsorted_segment_sum)
    y0 = per_slot(rows, tf.math.unsorted_segment_min)
    x0 = per_slot(cols, tf.math.unsorted_segment_min)
    y1 = per_slot(rows, tf.math.unsorted_segment_max) + 1.0
    x1 = per_slot(cols, tf.math.unsorted_segment_max) + 1.0
    boxes = tf.stack([y0, x0, y1, x1], axis=-1) / tf.constant(
        [height, width, height, width], tf.float32
    )
    foreground = tf.gather_nd(assignment.foreground, cells)
    return SlotStats(
        area=area,
        foreground=per_slot(foreground, tf.math.unsorted_segment_sum),
        boxes=tf.where((area > 0)[..., None], boxes, 0.0),
    )


def pad_boxes(boxes: tf.Tensor, grid: tuple[int, int], cells: float = 0.5) -> tf.Tensor:
    """Grows non-empty normalised boxes [..., 4] by `cells` cells of a (rows, columns)
    `grid`, clipped to [0, 1].

    Without the margin the box edge samples sit exactly on the mask boundary
    (bilinear value 0.5), so a 0.5 threshold would be a coin toss there.
    """
    rows, columns = grid
    margin = tf.constant([-cells / rows, -cells / columns, cells / rows, cells / columns])
    grown = tf.clip_by_value(boxes + margin, 0.0, 1.0)
    present = tf.reduce_any(boxes > 0, axis=-1, keepdims=True)
    return tf.where(present, grown, 0.0)


def box_masks(assignment: Assignment, boxes: tf.Tensor, mask_size: int) -> tf.Tensor:
    """Resamples each slot's mask into its box, as OD-API Mask R-CNN emits them.

    OD-API's `reframe_box_masks_to_image_masks` (crop_and_resize's inverse)
    puts box-mask row r at image position ymin + r / (M - 1) * (ymax - ymin);
    sampling the grid at exactly those positions makes the round trip lossless
    up to interpolation. Each sample is the bilinear interpolation of slot k's
    soft mask (foreground probability on its cells, 0 elsewhere and outside the
    grid), gathered from the four cells around it: the slot map is read, never a
    [B, K, D, D] stack of masks.

    Args:
      assignment: `assign_pixels` output.
      boxes: float32 [B, K, 4] normalised (ymin, xmin, ymax, xmax), box k of slot k.

    Returns:
      float32 [B, K, M, M] in [0, 1].
    """
    slot = assignment.slot
    b, k, (height, width) = tf.shape(boxes)[0], boxes.shape[1], _grid_shape(slot)
    steps = tf.range(mask_size, dtype=tf.float32) / (mask_size - 1)

    def positions(lo: tf.Tensor, hi: tf.Tensor, cells: int) -> tf.Tensor:
        # Continuous u in [0, 1] -> cell-centre index u * cells - 0.5; [B, K, M].
        return (lo[..., None] + steps * (hi - lo)[..., None]) * cells - 0.5

    y = positions(boxes[..., 0], boxes[..., 2], height)
    x = positions(boxes[..., 1], boxes[..., 3], width)
    y0, x0 = tf.floor(y), tf.floor(x)
    # (slot, foreground) pairs, so one gather per neighbour fetches both.
    pairs = tf.reshape(tf.stack([tf.cast(slot, tf.float32), assignment.foreground], -1), [b, -1, 2])
    own_slot = tf.range(1, k + 1, dtype=tf.float32)[None, :, None, None]
    total = tf.zeros([b, k, mask_size, mask_size])
    for row, wy in ((y0, 1.0 - (y - y0)), (y0 + 1.0, y - y0)):
        for col, wx in ((x0, 1.0 - (x - x0)), (x0 + 1.0, x - x0)):
            inside_y = (row >= 0) & (row < height)
            inside_x = (col >= 0) & (col < width)
            r = tf.clip_by_value(tf.cast(row, tf.int32), 0, height - 1)
            c = tf.clip_by_value(tf.cast(col, tf.int32), 0, width - 1)
            index = tf.reshape(r[..., :, None] * width + c[..., None, :], [b, -1])
            both = tf.gather(pairs, index, batch_dims=1)
            both = tf.reshape(both, [b, k, mask_size, mask_size, 2])
            cells, fg = both[..., 0], both[..., 1]
            weight = (wy * tf.cast(inside_y, tf.float32))[..., :, None] * (
                wx * tf.cast(inside_x, tf.float32)
            )[..., None, :]
            total += tf.where(tf.equal(cells, own_slot), weight * fg, 0.0)
    return tf.clip_by_value(total, 0.0, 1.0)


def to_detections(raw: dict[str, tf.Tensor], config: PostprocessConfig) -> dict[str, tf.Tensor]:
    """Instance heads -> OD-API detection dict (contract in models.export)."""
    centres = find_centres(raw["center_logits"], config)
    # Dense heads may be finer than the centre grid (sub-pixel heads): D = G * 2 -> stride 1.
    dense, grid = _grid_shape(raw["offsets"]), _grid_shape(raw["center_logits"])
    if dense[0] * grid[1] != dense[1] * grid[0]:
        raise ValueError(
            f"The dense heads ({dense[0]}x{dense[1]}) and the centre heatmaps "
            f"({grid[0]}x{grid[1]}) must cover the input at one stride on both axes; "
            "check the network's output strides."
        )
    stride = OUTPUT_STRIDE * grid[0] / dense[0]
    assignment = assign_pixels(raw["thing_logits"], raw["offsets"], centres, stride)
    stats = slot_stats(assignment, config.max_detections)
    mean_fg = tf.math.divide_no_nan(stats.foreground, stats.area)
    score = tf.where(stats.area > 0, tf.pow(centres.peak * mean_fg, config.score_power), 0.0)
    boxes = pad_boxes(stats.boxes, dense)
    masks = box_masks(assignment, boxes, config.mask_size)
    order = tf.argsort(score, axis=-1, direction="DESCENDING", stable=True)
    score = tf.gather(score, order, batch_dims=1)
    present = score > 0
    class_ids = tf.gather(tf.constant(THING_CLASS_IDS, tf.float32), centres.thing)
    return {
        "detection_boxes": tf.gather(boxes, order, batch_dims=1),
        "detection_scores": score,
        "detection_classes": tf.where(
            present, tf.gather(class_ids, order, batch_dims=1) + 1.0, 0.0
        ),
        "num_detections": tf.reduce_sum(tf.cast(present, tf.float32), axis=-1),
        "detection_masks": tf.gather(masks, order, batch_dims=1),
    }

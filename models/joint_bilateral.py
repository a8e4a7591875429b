"""Joint bilateral upsampling of class probabilities, guided by the original image.

A semantic model predicts at its own resolution (the bundled one at 256x512);
the image it came from is usually larger. Bilinear interpolation of the logits
blurs every class boundary by the resampling factor and loses structures a few
original pixels wide (a pedestrian's legs). Joint bilateral upsampling (Kopf et
al., "Joint Bilateral Upsampling", SIGGRAPH 2007) weights each nearby map
cell's class probabilities by its distance *and* by how close the cell's
colour is to the original pixel's, so boundaries snap to the image's edges.

Only pixels whose four nearest map cells (the ones bilinear interpolation reads)
predict more than one class are resampled; elsewhere a pixel takes their common
class, which bilinear interpolation of logits or probabilities gives too (a
convex combination of vectors whose maximum is at c has its maximum at c).
Resampling every pixel whose whole 2r x 2r neighbourhood is mixed took about
twice the time for a small further gain on the bundled model's validation renders.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class JointBilateralParams(NamedTuple):
    """radius: the neighbourhood is 2*radius x 2*radius map cells around each pixel.
    sigma_spatial: Gaussian width of the distance weight, in map cells.
    sigma_range: Gaussian width of the colour weight, in 0..255 RGB units
      (Euclidean distance over the three channels).
    """

    radius: int
    sigma_spatial: float
    sigma_range: float


# Mixed pixels voted on at once (see joint_bilateral_class_map).
_PIXELS_PER_CHUNK = 8192

# Chosen by hand on validation renders (seed 5,000, never the held-out seed) of the
# bundled semantic model: its 256x512 maps upsampled to images of 256-1024 px a side.
DEFAULT_PARAMS = JointBilateralParams(radius=3, sigma_spatial=2.0, sigma_range=20.0)


class _Axis(NamedTuple):
    """One axis of the mapping from original pixels to map cells.

    positions: float32 [count], each pixel centre's continuous map coordinate
      (cell centres at integers); bases: int32 [count], floor of it.
    first, last: int32, the map cells the content box touches; neighbours
      beyond them (the letterbox padding, or past the map's edge) are read as
      the nearest cell inside, so padding predictions never leak in.
    """

    positions: tf.Tensor
    bases: tf.Tensor
    first: tf.Tensor
    last: tf.Tensor

    def clip(self, cells: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(cells, self.first, self.last)


def _axis(count: tf.Tensor, start: tf.Tensor, end: tf.Tensor, cells: tf.Tensor) -> _Axis:
    """The _Axis of `count` original pixels through the content box [start, end]
    of a `cells`-long map."""
    cells_f = tf.cast(cells, tf.float32)
    centres = (tf.range(tf.cast(count, tf.float32)) + 0.5) / tf.cast(count, tf.float32)
    positions = (start + centres * (end - start)) * cells_f - 0.5
    first = tf.clip_by_value(tf.cast(tf.floor(start * cells_f), tf.int32), 0, cells - 1)
    last = tf.clip_by_value(tf.cast(tf.math.ceil(end * cells_f), tf.int32) - 1, first, cells - 1)
    return _Axis(positions, tf.cast(tf.floor(positions), tf.int32), first, last)


def _guide(image: tf.Tensor, content_box: tf.Tensor, map_size: tf.Tensor) -> tf.Tensor:
    """The original image resampled onto the map's grid through the content box,
    area-averaged (antialiased), as float32 [h, w, 3]: the colour each map cell saw."""
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    map_size_f = tf.cast(map_size, tf.float32)
    scale = (content_box[2:] - content_box[:2]) * map_size_f / size
    resized = tf.raw_ops.ScaleAndTranslate(
        images=tf.cast(image, tf.float32)[tf.newaxis],
        size=map_size,
        scale=scale,
        translation=content_box[:2] * map_size_f,
        kernel_type="triangle",
        antialias=True,
    )
    return resized[0]


def _mixed_quads(class_ids: tf.Tensor) -> tf.Tensor:
    """bool [h, w]: True where cells (i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1),
    the last row and column replicated, hold more than one class id."""
    below = tf.concat([class_ids[1:], class_ids[-1:]], 0)
    rows_differ = tf.not_equal(class_ids, below)
    right = tf.concat([class_ids[:, 1:], class_ids[:, -1:]], 1)
    below_right = tf.concat([below[:, 1:], below[:, -1:]], 1)
    return rows_differ | tf.not_equal(class_ids, right) | tf.not_equal(class_ids, below_right)


def joint_bilateral_class_map(
    probabilities: tf.Tensor,
    image: tf.Tensor,
    content_box: tf.Tensor,
    params: JointBilateralParams,
) -> tf.Tensor:
    """Class ids at the original image's size from a smaller probability map.

    Args:
      probabilities: float32 [h, w, C], per-cell class probabilities.
      image: uint8 [H, W, 3], the original image the model saw (stretched or
        letterboxed into the content box).
      content_box: float32 [4], see models.preprocess.
      params: neighbourhood and weights.

    Returns:
      int32 [H, W]: where a pixel's four nearest cells predict one class, that
      class; elsewhere the argmax of the weighted mean of the probabilities of
      its 2r x 2r nearest cells (weight: Gaussian in map-cell distance times
      Gaussian in colour distance to the cell's area-averaged colour).
    """
    if params.radius < 1:
        raise ValueError(f"joint bilateral radius must be >= 1, got {params.radius}")
    content_box = tf.convert_to_tensor(content_box, tf.float32)
    map_size = tf.shape(probabilities)[:2]
    h, w, num_classes = map_size[0], map_size[1], tf.shape(probabilities)[2]
    size = tf.shape(image)[:2]
    y_axis = _axis(size[0], content_box[0], content_box[2], h)
    x_axis = _axis(size[1], content_box[1], content_box[3], w)
    rows, cols = y_axis.clip(y_axis.bases), x_axis.clip(x_axis.bases)

    # The content box's cells only, so quads replicate the box's edge as the weights do.
    cell_ids = tf.argmax(probabilities, -1, tf.int32)[
        y_axis.first : y_axis.last + 1, x_axis.first : x_axis.last + 1
    ]
    rows, cols = rows - y_axis.first, cols - x_axis.first
    labels = tf.gather(tf.gather(cell_ids, rows, axis=0), cols, axis=1)
    # A pixel before the first cell centre reads that cell only: clipped to it, its quad
    # is a superset of the cells it reads.
    mixed = tf.gather(tf.gather(_mixed_quads(cell_ids), rows, axis=0), cols, axis=1)
    pixels = tf.where(mixed)  # int64 [P, 2], the pixels resampled.
    # One row per map cell: its probabilities, then its colour.
    table = tf.reshape(
        tf.concat([probabilities, _guide(image, content_box, map_size)], -1),
        [h * w, num_classes + 3],
    )
    offsets = tf.range(-params.radius + 1, params.radius + 1)  # [2r]

    def axis_terms(axis: _Axis, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Along one axis, per pixel and neighbour offset: the Gaussian distance
        weight and the cell read, [p, 2r] each."""
        cell = tf.gather(axis.bases, index)[:, tf.newaxis] + offsets
        distance = tf.gather(axis.positions, index)[:, tf.newaxis] - tf.cast(cell, tf.float32)
        weight = tf.exp(-tf.square(distance) / (2.0 * params.sigma_spatial**2))
        return weight, axis.clip(cell)

    def vote(chunk: tf.Tensor) -> tf.Tensor:
        """int32 [p]: the class each of the pixels chunk (int64 [p, 2]) takes."""
        row_weight, row = axis_terms(y_axis, chunk[:, 0])
        col_weight, col = axis_terms(x_axis, chunk[:, 1])
        # [p, 2r, 2r] neighbours of each pixel, flattened to [p, K].
        count = tf.shape(chunk)[0]
        cells = tf.reshape(row[:, :, tf.newaxis] * w + col[:, tf.newaxis, :], [count, -1])
        spatial = tf.reshape(
            row_weight[:, :, tf.newaxis] * col_weight[:, tf.newaxis, :], [count, -1]
        )
        neighbours = tf.gather(table, cells)  # [p, K, C + 3]
        colour = tf.cast(tf.gather_nd(image, chunk), tf.float32)
        distance = tf.reduce_sum(
            tf.square(colour[:, tf.newaxis] - neighbours[:, :, num_classes:]), -1
        )
        # The small spatial-only share keeps the weights from all vanishing when no
        # neighbour has the pixel's colour (noise, a thin structure the model missed).
        weight = spatial * (tf.exp(-distance / (2.0 * params.sigma_range**2)) + 1e-4)
        # A product and a sum, not einsum: with einsum (a batched matmul of a new shape
        # for every chunk length) the benchmark's peak RSS was 0.07 GB higher (session 14).
        total = tf.reduce_sum(weight[:, :, tf.newaxis] * neighbours[:, :, :num_classes], 1)
        return tf.argmax(total, -1, tf.int32)

    # Fixed-size chunks bound the [p, K, C + 3] temporaries: a large photograph can have
    # millions of mixed pixels, and the neighbour gather alone holds 36 x 10 floats
    # (1.4 KB) per pixel for 7 classes at radius 3. One chunk at a time: a graph loop
    # otherwise runs up to 10 iterations at once, and the bound with them.
    num_pixels = tf.shape(pixels)[0]
    starts = tf.range(0, num_pixels, _PIXELS_PER_CHUNK)
    votes = tf.TensorArray(tf.int32, size=tf.size(starts), infer_shape=False, element_shape=[None])
    for i in tf.range(tf.size(starts)):
        tf.autograph.experimental.set_loop_options(parallel_iterations=1)
        votes = votes.write(i, vote(pixels[starts[i] : starts[i] + _PIXELS_PER_CHUNK]))
    classes = tf.cond(num_pixels > 0, votes.concat, lambda: tf.zeros([0], tf.int32))
    return tf.tensor_scatter_nd_update(labels, pixels, classes)

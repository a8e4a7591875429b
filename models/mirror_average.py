"""Test-time mirror averaging: a network's dense outputs averaged over the image and its mirror.

Street scenes are left-right symmetric in distribution, so a network's
prediction on the mirrored image, mirrored back, is a second opinion as good
as the first; averaging the two removes part of each one's error (Panoptic-DeepLab
and DeepLab evaluate this way). Both views go through the network as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import tensorflow as tf

# Outputs whose last channel axis holds (dy, dx) vectors: mirroring the image
# negates their horizontal component.
VECTOR_OUTPUTS = frozenset({"offsets"})


def mirror_averaged(
    outputs_fn: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
    images: tf.Tensor,
    vector_outputs: frozenset[str] = VECTOR_OUTPUTS,
) -> dict[str, tf.Tensor]:
    """Runs `outputs_fn` on `images` and their left-right mirrors, and averages.

    Args:
      outputs_fn: images [2B, H, W, C] -> dict of [2B, h, w, c] maps, each
        covering the whole image on its own grid (any h x w: every grid is
        mirrored about its own centre, exact when each cell covers the same
        number of input columns).
      images: [B, H, W, C], any dtype.
      vector_outputs: keys whose maps hold (dy, dx) in their last axis; their
        dx is negated on the mirrored view.

    Returns:
      The dict `outputs_fn` gives for `images`, each map the mean of the two views,
      with the same shapes and dtypes.
    """
    count = tf.shape(images)[0]
    outputs = outputs_fn(tf.concat([images, tf.reverse(images, axis=[2])], axis=0))
    averaged = {}
    for key, both in outputs.items():
        direct, mirrored = both[:count], tf.reverse(both[count:], axis=[2])
        if key in vector_outputs:
            mirrored = mirrored * tf.constant([1.0, -1.0], dtype=mirrored.dtype)
        averaged[key] = (direct + mirrored) / 2.0
    return averaged

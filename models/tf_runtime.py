"""TensorFlow process-wide runtime setup."""

from __future__ import annotations

import logging

import tensorflow as tf

_LOG = logging.getLogger(__name__)


def configure_threads(intra_op: int, inter_op: int) -> bool:
    """Sets TensorFlow's thread pools, if TensorFlow has not started yet.

    Thread pools are fixed when TensorFlow's runtime initialises (at the first
    op), so this must run before any model is loaded; later calls in the same
    process (another DoFn instance, a second model) are harmless no-ops.

    Args:
      intra_op: Threads used inside one op (e.g. a convolution); 0 lets TF pick.
      inter_op: Ops run in parallel; 0 lets TF pick.

    Returns:
      True if the settings were applied, False if TensorFlow was already running.
    """
    if intra_op < 0 or inter_op < 0:
        raise ValueError(
            f"thread counts must be >= 0 (0 = TensorFlow's default), got intra_op={intra_op}, "
            f"inter_op={inter_op}"
        )
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        # Raised once the eager context exists: the pools already have their sizes.
        _LOG.debug("TensorFlow already initialised; keeping its thread settings")
        return False
    return True

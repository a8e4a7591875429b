"""Training losses against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from models.train_losses import (
    class_offset_weight,
    lovasz_softmax,
    offset_loss,
    weighted_cross_entropy,
)

# Four pixels, two classes: logits [0, 0] give cross-entropy ln 2 whatever the label,
# [ln 3, 0] give -ln(3/4) for label 0 and -ln(1/4) = 2 ln 2 for label 1.
_LOGITS = tf.constant(
    [[[[0.0, 0.0], [math.log(3.0), 0.0], [math.log(3.0), 0.0], [0.0, 0.0]]]], tf.float32
)
_LABELS = tf.constant([[[0, 0, 1, 1]]], tf.int32)
_WEIGHTS = (1.0, 2.0)


def test_plain_weighted_mean() -> None:
    # Weighted losses ln 2, ln(4/3), 2 * 2 ln 2, 2 * ln 2 over weights 1 + 1 + 2 + 2.
    expected = (7 * math.log(2.0) + math.log(4.0 / 3.0)) / 6.0
    got = weighted_cross_entropy(_LOGITS, _LABELS, _WEIGHTS, hard_fraction=1.0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_hard_fraction_averages_the_hardest_pixels() -> None:
    # Half of four pixels: the two largest weighted losses, 4 ln 2 and 2 ln 2.
    got = weighted_cross_entropy(_LOGITS, _LABELS, _WEIGHTS, hard_fraction=0.5)
    np.testing.assert_allclose(float(got), 3 * math.log(2.0), rtol=1e-6)


def test_hard_fraction_keeps_at_least_one_pixel() -> None:
    got = weighted_cross_entropy(_LOGITS, _LABELS, _WEIGHTS, hard_fraction=0.01)
    np.testing.assert_allclose(float(got), 4 * math.log(2.0), rtol=1e-6)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_hard_fraction_out_of_range_is_rejected(fraction: float) -> None:
    with pytest.raises(ValueError, match="hard_fraction"):
        weighted_cross_entropy(_LOGITS, _LABELS, _WEIGHTS, hard_fraction=fraction)


def _one_hot_logits(classes: list[list[int]], num_classes: int) -> tf.Tensor:
    """Confident logits [1, H, W, C] predicting `classes` (softmax 1 - 1e-21 or so)."""
    return tf.constant(np.eye(num_classes)[np.array(classes)][None] * 50.0, tf.float32)


def test_lovasz_of_hard_predictions_is_one_minus_mean_iou() -> None:
    # Labels 0 0 1 1, prediction 0 1 1 1: IoU 1/2 for class 0, 2/3 for class 1.
    got = lovasz_softmax(_one_hot_logits([[0, 1, 1, 1]], 2), _LABELS, subsample=1)
    np.testing.assert_allclose(float(got), 1.0 - (1.0 / 2.0 + 2.0 / 3.0) / 2.0, rtol=1e-6)


def test_lovasz_of_soft_predictions_worked_by_hand() -> None:
    # Labels 1 0; class-1 probabilities 0.8 and 0.3. Class 1: errors 0.2 (pixel A, in
    # class 1), 0.3 (B, not). Sorted B, A: losing B alone leaves IoU 1/2, losing
    # both IoU 0, so 0.3 * (1/2) + 0.2 * (1 - 1/2) = 0.25. Class 0: errors 0.2 (A,
    # not in class 0), 0.3 (B, in it); losing B alone already gives IoU 0, so
    # 0.3 * 1 + 0.2 * 0 = 0.3. Mean 0.275.
    probability = np.array([0.8, 0.3])
    logits = tf.constant(np.log(np.stack([1 - probability, probability], -1))[None, None])
    got = lovasz_softmax(tf.cast(logits, tf.float32), tf.constant([[[1, 0]]]), subsample=1)
    np.testing.assert_allclose(float(got), 0.275, rtol=1e-5)


def test_lovasz_averages_only_the_classes_present() -> None:
    # Three classes, labels all 0, prediction 0 2 2 2: class 0 IoU 1/4; classes 1 and
    # 2 are absent from the labels and do not count (class 2's IoU would be 0).
    labels = tf.constant([[[0, 0, 0, 0]]])
    got = lovasz_softmax(_one_hot_logits([[0, 2, 2, 2]], 3), labels, subsample=1)
    np.testing.assert_allclose(float(got), 0.75, rtol=1e-6)


def test_lovasz_subsample_reads_every_kth_row_and_column() -> None:
    # 3 x 3 labels all 0; only the centre pixel is predicted 1. With subsample 2 the
    # pixels read are the corners (0, 0), (0, 2), (2, 0), (2, 2): all right.
    labels = tf.zeros([1, 3, 3], tf.int32)
    logits = _one_hot_logits([[0, 0, 0], [0, 1, 0], [0, 0, 0]], 2)
    np.testing.assert_allclose(float(lovasz_softmax(logits, labels, subsample=2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        float(lovasz_softmax(logits, labels, subsample=1)), 1.0 - 8.0 / 9.0, rtol=1e-6
    )


def test_pedestrian_cells_count_more_in_the_offset_loss() -> None:
    # One row of four cells: background, vehicle, pedestrian, pedestrian; L1 errors
    # (|dy| + |dx|) of 9 (ignored: background), 1, 2 and 4 input pixels.
    thing = tf.constant([[[0, 1, 2, 2]]], tf.int32)
    weight = tf.constant([[[0.0, 1.0, 1.0, 1.0]]], tf.float32)
    pred = tf.constant([[[[9.0, 0.0], [1.0, 0.0], [0.0, 2.0], [2.0, 2.0]]]], tf.float32)
    target = tf.zeros_like(pred)
    plain = offset_loss(pred, target, class_offset_weight(weight, thing, 1.0))
    np.testing.assert_allclose(float(plain), (1 + 2 + 4) / 3, rtol=1e-6)
    # Pedestrian cells weigh 3 each: (1 + 3 * 2 + 3 * 4) / (1 + 3 + 3).
    weighted = offset_loss(pred, target, class_offset_weight(weight, thing, 3.0))
    np.testing.assert_allclose(float(weighted), 19 / 7, rtol=1e-6)

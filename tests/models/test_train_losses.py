"""Training losses against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from models.train_losses import weighted_cross_entropy

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

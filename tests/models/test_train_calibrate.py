"""Tests for the instance score calibration (models.train_calibrate), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluate_metrics import Detection, GroundTruthImage, encode_mask
from models.train_calibrate import f1_best_threshold, match_detections, power_for_threshold


def _square(y0: int, x0: int, size: int = 10) -> np.ndarray:
    m = np.zeros((40, 40), dtype=bool)
    m[y0 : y0 + size, x0 : x0 + size] = True
    return m


def test_match_detections_greedy_by_score():
    a, b = _square(0, 0), _square(20, 20)
    gt = [GroundTruthImage(40, 40, (encode_mask(a), encode_mask(b)), (5, 5))]
    dets = [
        Detection(0, 5, 0.9, encode_mask(a)),  # TP.
        Detection(0, 5, 0.8, encode_mask(a)),  # Duplicate of a: FP.
        Detection(0, 6, 0.7, encode_mask(b)),  # Wrong class: FP.
        Detection(0, 5, 0.6, encode_mask(_square(20, 22))),  # IoU 80/120 with b: TP.
    ]
    scores, hits, total = match_detections(gt, dets)
    assert total == 2
    np.testing.assert_array_equal(scores, [0.9, 0.8, 0.7, 0.6])
    np.testing.assert_array_equal(hits, [True, False, False, True])


def test_f1_best_threshold_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    hits = np.array([True, True, False, True, False])
    # Keeping >= 0.9: F1 = 2/(2+0+3); >= 0.8: 4/(4+0+2) = 0.667; >= 0.7: 4/(4+1+2);
    # >= 0.6: 6/(6+1+1) = 0.75; >= 0.3: 6/(6+2+1). With 4 GT instances.
    threshold, f1 = f1_best_threshold(scores, hits, 4)
    assert threshold == 0.6
    assert f1 == pytest.approx(0.75)


def test_power_maps_threshold_to_one_half():
    p = power_for_threshold(0.25)
    assert p == pytest.approx(0.5)
    assert 0.25**p == pytest.approx(0.5)
    assert power_for_threshold(0.0) == 1.0
    assert power_for_threshold(1e-9) == pytest.approx(0.2)  # Clipped.
    assert power_for_threshold(0.7) == pytest.approx(math.log(0.5) / math.log(0.7))
    assert power_for_threshold(0.9) == pytest.approx(3.0)  # Clipped.

"""Score calibration for the instance model's exported threshold.

The pipeline keeps detections scoring >= 0.5 (instance.json). The raw score
(centre peak x mean foreground probability) has no natural 0.5 point, so after
training we find the raw threshold t that maximises F1 at mask IoU 0.5 on
calibration renders, and export scores as raw ** p with t ** p = 0.5. The map
is monotone, so rankings (and COCO AP over all detections) are unchanged; only
which detections pass the pipeline's 0.5 cut moves to the F1-best point.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from pycocotools import mask as mask_utils

from models.evaluate_metrics import Detection, GroundTruthImage
from models.train_validate import VALIDATION_SEED, collect

# Calibration renders: same seed as validation, disjoint indices.
CALIBRATION_START = 1_000
MIN_POWER, MAX_POWER = 0.2, 3.0


def match_detections(
    ground_truth: list[GroundTruthImage], detections: list[Detection], iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy per-image, per-class matching by descending score (as COCO does).

    Returns:
      (scores float64 [D], is_true_positive bool [D], number of GT instances).
    """
    scores, hits = [], []
    for index, gt in enumerate(ground_truth):
        dets = sorted((d for d in detections if d.image_index == index), key=lambda d: -d.score)
        taken = np.zeros(len(gt.rles), dtype=bool)
        for det in dets:
            same = [k for k, c in enumerate(gt.class_ids) if c == det.class_id and not taken[k]]
            hit = False
            if same:
                ious = mask_utils.iou([det.rle], [gt.rles[k] for k in same], [0] * len(same))[0]
                best = int(np.argmax(ious))
                if ious[best] >= iou_threshold:
                    taken[same[best]] = True
                    hit = True
            scores.append(det.score)
            hits.append(hit)
    total = sum(len(g.rles) for g in ground_truth)
    return np.asarray(scores, dtype=np.float64), np.asarray(hits, dtype=bool), total


def f1_best_threshold(scores: np.ndarray, hits: np.ndarray, num_gt: int) -> tuple[float, float]:
    """The score threshold maximising F1, and that F1. Keeps detections >= threshold."""
    if len(scores) == 0 or num_gt == 0:
        return 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    f1 = 2 * tp / (2 * tp + fp + (num_gt - tp))
    best = int(np.argmax(f1))
    return float(scores[order][best]), float(f1[best])


def power_for_threshold(raw_threshold: float) -> float:
    """p such that raw_threshold ** p == 0.5, clipped to a sane range."""
    if not 0.0 < raw_threshold < 1.0:
        return 1.0
    return float(np.clip(math.log(0.5) / math.log(raw_threshold), MIN_POWER, MAX_POWER))


def calibrate(instance_fn: Callable, num_images: int) -> dict:
    """Runs an instance signature exported with score_power=1 on calibration renders.

    Returns:
      {"raw_threshold", "f1", "score_power"}.
    """
    ground_truth, detections = collect(
        instance_fn, VALIDATION_SEED, range(CALIBRATION_START, CALIBRATION_START + num_images), 0.0
    )
    scores, hits, total = match_detections(ground_truth, detections)
    threshold, f1 = f1_best_threshold(scores, hits, total)
    return {"raw_threshold": threshold, "f1": f1, "score_power": power_for_threshold(threshold)}

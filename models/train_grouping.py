"""Chooses the instance model's grouping parameters after training.

Peak finding (`nms_kernel`, the max-pool window that keeps only local heatmap
maxima) and `center_threshold` decide how close two instances may stand and
still be told apart, and how faint a centre may be. Their best values depend
on how sharp the trained heatmaps came out, so each candidate is scored with
COCO mask AP50 (then AP) on the calibration renders (validation seed, indices
disjoint from validation; never the held-out seed), and the best is exported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from models.evaluate_metrics import instance_scores
from models.export_postprocess import PostprocessConfig
from models.networks import THING_CLASS_IDS
from models.train_validate import VALIDATION_SEED, collect

# Calibration renders: the validation seed at indices 1,000 and up (see train_calibrate).
TUNING_START = 1_000
CANDIDATES: tuple[tuple[int, float], ...] = tuple(
    (kernel, threshold) for kernel in (3, 5, 7, 9) for threshold in (0.05, 0.1)
)


def best_grouping(results: Sequence[dict]) -> dict:
    """The candidate with the highest AP50, ties broken by AP, then by the earlier candidate."""
    if not results:
        raise ValueError("No grouping candidates were scored.")
    return max(enumerate(results), key=lambda r: (r[1]["ap50"], r[1]["ap"], -r[0]))[1]


def choose_grouping(
    make_instance_fn: Callable[[PostprocessConfig], Callable],
    base: PostprocessConfig,
    num_images: int,
) -> tuple[PostprocessConfig, list[dict]]:
    """Scores every candidate; returns the best config and all scores.

    Args:
      make_instance_fn: Builds a callable `fn(images=uint8 [1, 256, 256, 3])` ->
        OD-API dict for a grouping config (the in-memory export signature).
      base: The other post-processing settings, kept as they are.
      num_images: Calibration renders per candidate.
    """
    indices = range(TUNING_START, TUNING_START + num_images)
    results = []
    for kernel, threshold in CANDIDATES:
        config = dataclasses.replace(base, nms_kernel=kernel, center_threshold=threshold)
        ground_truth, detections = collect(make_instance_fn(config), VALIDATION_SEED, indices, 0.0)
        scores = instance_scores(ground_truth, detections, THING_CLASS_IDS)
        result = {"nms_kernel": kernel, "center_threshold": threshold}
        results.append({**result, "ap50": scores.ap50, "ap": scores.ap})
        print(f"Grouping {results[-1]}", flush=True)
    best = best_grouping(results)
    chosen = dataclasses.replace(
        base, nms_kernel=best["nms_kernel"], center_threshold=best["center_threshold"]
    )
    return chosen, results

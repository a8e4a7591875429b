"""Per-image evaluation against ground truth carried by the record (`--evaluate`).

For one image this computes, per class present in the ground truth or the
prediction, the raw counts that whole-run metrics are built from, so the
driver can aggregate them exactly (sums, not averages of averages):

- semantic: ground-truth pixels, predicted pixels, intersection (-> IoU,
  pixel accuracy, and panoptic quality for "stuff" classes, whose one segment
  per image is the class's pixels);
- instances: ground-truth and predicted instance counts, matches at IoU > 0.5
  (same class, one-to-one, greedy by IoU: the panoptic-quality rule) and the
  sum of matched IoUs (-> PQ, SQ, RQ for "thing" classes).

Metric names are the `metric` column of the `metrics` table (long format).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from transforms.elements import GroundTruth, InstanceResult, SemanticResult

MATCH_IOU = 0.5  # Panoptic-quality matching threshold (strictly greater than).

# Per-class metric names, in the order they're written.
CLASS_METRICS = (
    "gt_pixels",
    "pred_pixels",
    "intersection_pixels",
    "iou",
    "gt_instances",
    "pred_instances",
    "matched_instances",
    "missed_instances",
    "false_instances",
    "matched_iou_sum",
)


class ImageEvaluation(NamedTuple):
    """One image's evaluation: metric values and the ground-truth instances used."""

    pixel_accuracy: float | None  # None without semantic ground truth or prediction.
    per_class: dict[int, dict[str, float]]  # class id -> CLASS_METRICS subset.
    gt_instances: tuple[tuple[int, str, int], ...]  # (class id, RLE counts, area).


def _png(data: bytes, height: int, width: int, what: str) -> np.ndarray:
    """Decodes a single-channel ground-truth PNG that must be [height, width].

    The size is checked on the header, before any pixel is decoded, so a
    ground-truth "decompression bomb" costs nothing (the image's own size was
    already checked against --max_image_pixels by the decoder).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (width, height):
                raise ValueError(
                    f"{what} is {image.size[1]}x{image.size[0]}, the image {height}x{width}."
                )
            array = np.asarray(image)
    except Image.DecompressionBombError as e:
        raise ValueError(f"{what} declares too many pixels: {e}") from e
    return array if array.ndim == 2 else array[..., 0]


def _decode(rle: str, height: int, width: int) -> np.ndarray:
    return coco_mask.decode({"size": [height, width], "counts": rle}).astype(bool)


def _encode(mask: np.ndarray) -> str:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def _semantic_counts(
    gt_map: np.ndarray, semantic: SemanticResult, per_class: dict[int, dict[str, float]]
) -> float:
    height, width = gt_map.shape
    correct = 0
    gt_ids, gt_sizes = np.unique(gt_map, return_counts=True)
    for class_id, size in zip(gt_ids.tolist(), gt_sizes.tolist(), strict=True):
        entry = per_class.setdefault(class_id, {})
        entry["gt_pixels"] = size
        entry.setdefault("pred_pixels", 0)
        entry["intersection_pixels"] = 0
    for mask in semantic.classes:
        predicted = _decode(mask.rle, height, width)
        intersection = int(np.count_nonzero(predicted & (gt_map == mask.class_id)))
        entry = per_class.setdefault(mask.class_id, {"gt_pixels": 0})
        entry["pred_pixels"] = mask.pixel_count
        entry["intersection_pixels"] = intersection
        correct += intersection
    for entry in per_class.values():
        union = entry["gt_pixels"] + entry["pred_pixels"] - entry["intersection_pixels"]
        entry["iou"] = entry["intersection_pixels"] / union
    return correct / gt_map.size


def _match(ious: np.ndarray) -> list[tuple[int, int, float]]:
    """One-to-one matches (gt index, prediction index, IoU) with IoU > MATCH_IOU."""
    pairs = sorted(
        ((float(ious[g, p]), g, p) for g, p in zip(*np.nonzero(ious > MATCH_IOU), strict=True)),
        reverse=True,
    )
    used_gt: set[int] = set()
    used_pred: set[int] = set()
    matches = []
    for iou, g, p in pairs:
        if g not in used_gt and p not in used_pred:
            used_gt.add(g)
            used_pred.add(p)
            matches.append((g, p, iou))
    return matches


def _iou_matrix(gt_masks: list[np.ndarray], pred_masks: list[np.ndarray]) -> np.ndarray:
    if not gt_masks or not pred_masks:
        return np.zeros((len(gt_masks), len(pred_masks)))
    gt = np.stack(gt_masks).reshape(len(gt_masks), -1).astype(np.float32)
    pred = np.stack(pred_masks).reshape(len(pred_masks), -1).astype(np.float32)
    intersection = gt @ pred.T
    union = gt.sum(1)[:, None] + pred.sum(1)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


def _instance_counts(
    gt_masks: list[np.ndarray],
    gt_classes: list[int],
    instance: InstanceResult,
    per_class: dict[int, dict[str, float]],
) -> None:
    pred_masks = [_decode(i.rle, instance.height, instance.width) for i in instance.instances]
    pred_classes = [i.class_id for i in instance.instances]
    for class_id in sorted(set(gt_classes) | set(pred_classes)):
        g_index = [k for k, c in enumerate(gt_classes) if c == class_id]
        p_index = [k for k, c in enumerate(pred_classes) if c == class_id]
        matches = _match(
            _iou_matrix([gt_masks[k] for k in g_index], [pred_masks[k] for k in p_index])
        )
        entry = per_class.setdefault(class_id, {})
        entry.update(
            gt_instances=len(g_index),
            pred_instances=len(p_index),
            matched_instances=len(matches),
            missed_instances=len(g_index) - len(matches),
            false_instances=len(p_index) - len(matches),
            matched_iou_sum=sum(iou for _, _, iou in matches),
        )


def evaluate_image(
    ground_truth: GroundTruth,
    height: int,
    width: int,
    semantic: SemanticResult | None,
    instance: InstanceResult | None,
) -> ImageEvaluation:
    """Compares one image's predictions with its ground truth.

    Args:
      ground_truth: PNG-encoded class map ([height, width] uint8 class ids) and
        per-instance full-image PNG masks (0/1) with their class ids.
      height, width: The image's size; ground truth must match it.
      semantic, instance: The models' encoded results, None for a disabled model.

    Raises:
      ValueError: ground truth whose size differs from the image's.
    """
    per_class: dict[int, dict[str, float]] = {}
    pixel_accuracy = None
    if semantic is not None and ground_truth.semantic_png:
        gt_map = _png(ground_truth.semantic_png, height, width, "Ground-truth class map")
        pixel_accuracy = _semantic_counts(gt_map.astype(np.int64), semantic, per_class)
    gt_masks = [
        _png(png, height, width, "A ground-truth instance mask").astype(bool)
        for png in ground_truth.instance_mask_pngs
    ]
    gt_classes = list(ground_truth.instance_class_ids)
    if instance is not None:
        _instance_counts(gt_masks, gt_classes, instance, per_class)
    gt_instances = tuple(
        (class_id, _encode(mask), int(mask.sum()))
        for class_id, mask in zip(gt_classes, gt_masks, strict=True)
    )
    return ImageEvaluation(pixel_accuracy, per_class, gt_instances)


def metric_rows(
    image_id: str, evaluation: ImageEvaluation, class_names: Mapping[int, str]
) -> list[dict[str, Any]]:
    """The evaluation as `metrics` table rows (scope "image")."""
    # "evaluated" marks every image that had ground truth, even one with nothing to compare.
    rows = [_row(image_id, None, None, "evaluated", 1.0)]
    if evaluation.pixel_accuracy is not None:
        rows.append(_row(image_id, None, None, "pixel_accuracy", evaluation.pixel_accuracy))
    for class_id in sorted(evaluation.per_class):
        name = class_names.get(class_id, f"class_{class_id}")
        values = evaluation.per_class[class_id]
        rows.extend(
            _row(image_id, class_id, name, metric, values[metric])
            for metric in CLASS_METRICS
            if metric in values
        )
    return rows


def _row(
    image_id: str | None, class_id: int | None, class_name: str | None, metric: str, value: float
) -> dict[str, Any]:
    return {
        "scope": "image" if image_id is not None else "run",
        "image_id": image_id,
        "class_id": class_id,
        "class_name": class_name,
        "metric": metric,
        "value": float(value),
    }


def run_rows(metrics: Iterable[tuple[int | None, str | None, str, float]]) -> list[dict[str, Any]]:
    """Whole-run metric rows (scope "run") from (class id, class name, metric, value)."""
    return [_row(None, c, n, m, v) for c, n, m, v in metrics]

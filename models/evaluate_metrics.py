"""Pure segmentation metrics: numpy arrays in, numbers out.

Semantic: a confusion matrix accumulated over a dataset, then per-class IoU
and mIoU (classes absent from both ground truth and prediction are excluded
from the mean). Instance: COCO mask AP/AR via pycocotools' COCOeval, and how the
found instances' masks sit on their ground truth (`mask_fit`: do they spill over,
or miss parts?), and why the others are not found (`misses`: nothing there, one mask
over several instances, or a mask too far off).
"""

from __future__ import annotations

import contextlib
import io
from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (ground-truth class, predicted class) pixel pairs.

    Args:
      gt: int [H, W] ground-truth class ids in [0, num_classes).
      pred: int [H, W] predicted class ids, same shape; the value `num_classes`
        means "no prediction" (a miss for the true class, a false positive for none).

    Returns:
      int64 [num_classes, num_classes + 1]; entry [g, p] counts pixels of class g
      predicted as p, the last column counting unpredicted pixels.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"Ground truth {gt.shape} and prediction {pred.shape} differ in shape.")
    gt, pred = gt.astype(np.int64).ravel(), pred.astype(np.int64).ravel()
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        raise ValueError(
            f"Ground-truth class ids must lie in [0, {num_classes}), got {gt.min()}..{gt.max()}."
        )
    if pred.size and (pred.min() < 0 or pred.max() > num_classes):
        raise ValueError(
            f"Predicted class ids must lie in [0, {num_classes}], got {pred.min()}..{pred.max()}."
        )
    index = gt * (num_classes + 1) + pred
    counts = np.bincount(index, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


class SemanticScores(NamedTuple):
    """Per-class IoU (NaN for a class in neither GT nor prediction), mean IoU, pixel accuracy."""

    per_class_iou: tuple[float, ...]
    miou: float
    pixel_accuracy: float


def semantic_scores(confusion: np.ndarray) -> SemanticScores:
    """IoU per class = TP / (TP + FP + FN) from an accumulated `confusion_matrix`."""
    num_classes = confusion.shape[0]
    tp = np.diag(confusion[:, :num_classes]).astype(np.float64)
    union = confusion[:, :num_classes].sum(axis=0) + confusion.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = confusion.sum()
    return SemanticScores(
        per_class_iou=tuple(float(v) for v in iou),
        miou=float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
    )


class GroundTruthImage(NamedTuple):
    """One image's instance ground truth: COCO RLE dicts and class ids."""

    height: int
    width: int
    rles: tuple[dict, ...]
    class_ids: tuple[int, ...]


class Detection(NamedTuple):
    """One predicted instance: COCO RLE dict (size + counts), class id, score."""

    image_index: int  # Position of its image in the ground-truth list.
    class_id: int
    score: float
    rle: dict


def encode_mask(mask: np.ndarray) -> dict:
    """bool/uint8 [H, W] -> COCO RLE dict with `counts` as str."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


class InstanceScores(NamedTuple):
    """COCO segm metrics over all area ranges, max 100 detections per image."""

    ap: float  # AP averaged over IoU 0.50:0.95.
    ap50: float
    ap75: float
    ar: float  # AR@100.


def instance_scores(
    ground_truth: list[GroundTruthImage], detections: list[Detection], class_ids: tuple[int, ...]
) -> InstanceScores:
    """Runs COCOeval (iouType "segm") on in-memory ground truth and detections.

    Returns -1 for every metric when the ground truth holds no instance
    (COCOeval's own convention for "undefined").
    """
    coco_gt = COCO()
    annotations = []
    for index, image in enumerate(ground_truth):
        for rle, class_id in zip(image.rles, image.class_ids, strict=True):
            annotations.append(_annotation(len(annotations) + 1, index, class_id, rle, iscrowd=0))
    coco_gt.dataset = {
        "images": [
            {"id": i, "height": g.height, "width": g.width} for i, g in enumerate(ground_truth)
        ],
        "annotations": annotations,
        "categories": [{"id": c, "name": str(c)} for c in class_ids],
    }
    if not annotations:
        return InstanceScores(-1.0, -1.0, -1.0, -1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        results = [
            {
                "image_id": d.image_index,
                "category_id": d.class_id,
                "score": d.score,
                "segmentation": d.rle,
            }
            for d in detections
        ]
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        if not results:
            return InstanceScores(0.0, 0.0, 0.0, 0.0)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return InstanceScores(float(stats[0]), float(stats[1]), float(stats[2]), float(stats[8]))


def _masks_per_image(
    ground_truth: list[GroundTruthImage], detections: list[Detection], class_id: int
) -> Iterator[tuple[list[dict], list[dict]]]:
    """(truth RLEs, detection RLEs) of `class_id` for each image, in order; either may be empty."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for d in detections:
        if d.class_id == class_id:
            by_image[d.image_index].append(d.rle)
    for index, image in enumerate(ground_truth):
        truths = [r for r, c in zip(image.rles, image.class_ids, strict=True) if c == class_id]
        yield truths, by_image.get(index, [])


class _Overlaps(NamedTuple):
    iou: np.ndarray  # [P, T]
    intersection: np.ndarray  # [P, T] pixels
    pred_area: np.ndarray  # [P] pixels
    truth_area: np.ndarray  # [T] pixels


def _overlaps(preds: list[dict], truths: list[dict]) -> _Overlaps:
    """Mask IoU and intersection of every detection with every truth, from RLEs without decoding."""
    iou = np.asarray(mask_utils.iou(preds, truths, [0] * len(truths)), dtype=np.float64)
    pred_area = mask_utils.area(preds).astype(np.float64)
    truth_area = mask_utils.area(truths).astype(np.float64)
    # |A & B| from IoU = I / (|A| + |B| - I).
    intersection = iou * (pred_area[:, None] + truth_area[None, :]) / (1.0 + iou)
    return _Overlaps(iou, intersection, pred_area, truth_area)


class MaskFit(NamedTuple):
    """How the masks of one class's found instances sit on their ground truth.

    An instance counts as found when its best detection of the same class (highest
    mask IoU; a detection may be best for several) reaches IoU 0.5; the last three
    fields are medians over the found instances, None when none is found.
    """

    num_found: int
    num_instances: int
    iou: float | None
    precision: float | None  # |detection & truth| / |detection|: under 1 when masks spill over.
    recall: float | None  # |detection & truth| / |truth|: under 1 when masks miss parts.


def mask_fit(
    ground_truth: list[GroundTruthImage],
    detections: list[Detection],
    class_id: int,
    min_iou: float = 0.5,
) -> MaskFit:
    """MaskFit of `class_id`'s instances (see MaskFit), from COCO RLEs without decoding."""
    found, num_instances = [], 0
    for truths, preds in _masks_per_image(ground_truth, detections, class_id):
        num_instances += len(truths)
        if not truths or not preds:
            continue
        o = _overlaps(preds, truths)
        for t in range(len(truths)):
            p = int(np.argmax(o.iou[:, t]))
            if o.iou[p, t] < min_iou:
                continue
            both = o.intersection[p, t]
            found.append((o.iou[p, t], both / o.pred_area[p], both / o.truth_area[t]))
    if not found:
        return MaskFit(0, num_instances, None, None, None)
    return MaskFit(len(found), num_instances, *(float(m) for m in np.median(found, axis=0)))


# COCO's area ranges (pixels of the instance's mask): small < 32^2 <= medium < 96^2 <= large.
AREA_RANGES = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, np.inf))
COVER_FRACTION = 0.3  # A detection "covers" an instance holding this much of its pixels.


class Misses(NamedTuple):
    """Why one class's instances are or are not found, as counts that sum to `instances`.

    found: a same-class detection reaches mask IoU 0.5 (as in `mask_fit`). Of the
    rest, judged by the same-class detection holding the largest share of the
    instance's pixels: missed, no detection covers COVER_FRACTION of it; merged,
    that detection also covers COVER_FRACTION of another instance of the class
    (one mask over several); off, it covers this instance alone but at IoU < 0.5
    (much too large, too small, or split between detections).
    """

    instances: int
    found: int
    merged: int
    off: int
    missed: int


def _verdict(ious: np.ndarray, cover: np.ndarray, t: int, min_iou: float) -> str:
    """Misses field name for truth t, given [P, T] IoU and coverage (P may be 0)."""
    if ious.shape[0] and ious[:, t].max() >= min_iou:
        return "found"
    if not ious.shape[0] or cover[:, t].max() < COVER_FRACTION:
        return "missed"
    best = int(np.argmax(cover[:, t]))
    others = np.delete(cover[best], t)
    return "merged" if others.size and others.max() >= COVER_FRACTION else "off"


def misses(
    ground_truth: list[GroundTruthImage],
    detections: list[Detection],
    class_id: int,
    min_iou: float = 0.5,
) -> dict[str, Misses]:
    """`Misses` of `class_id`'s instances, overall ("all") and per COCO area range."""
    counts = {name: dict.fromkeys(Misses._fields, 0) for name, _, _ in AREA_RANGES}
    for truths, preds in _masks_per_image(ground_truth, detections, class_id):
        if not truths:
            continue
        ious, cover = np.zeros((0, len(truths))), np.zeros((0, len(truths)))
        if preds:
            o = _overlaps(preds, truths)
            ious, cover = o.iou, o.intersection / np.maximum(o.truth_area, 1.0)
        for t, area in enumerate(mask_utils.area(truths)):
            name = next(n for n, low, high in AREA_RANGES if low <= area < high)
            counts[name]["instances"] += 1
            counts[name][_verdict(ious, cover, t, min_iou)] += 1
    result = {name: Misses(**c) for name, c in counts.items()}
    result["all"] = Misses(*(sum(column) for column in zip(*result.values(), strict=True)))
    return result


def _annotation(ann_id: int, image_id: int, class_id: int, rle: dict, iscrowd: int) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": class_id,
        "segmentation": rle,
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": iscrowd,
    }

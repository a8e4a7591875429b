"""Whole-run evaluation (`--evaluate`), aggregated by the driver from the run's tables.

The pipeline writes per-image counts (`metrics` rows with scope "image", see
transforms/image_metrics.py) and the ground-truth instances; this module sums
them into run-level figures, exactly (from counts, not from per-image ratios):

- semantic: per-class IoU, mIoU (mean over classes present in ground truth or
  prediction), pixel accuracy;
- panoptic quality PQ = SQ x RQ per class, averaged over classes, for things,
  stuff and all. Things are the classes that have instances (in ground truth
  or prediction) anywhere in the run; each is matched instance to instance.
  Every other class is stuff, one segment per image: its semantic pixels.
- COCO mask AP, AP50, AP75 and AR@100 by pycocotools' COCOeval over the
  evaluated images.

The run-level rows are appended to the `metrics` table (scope "run").
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from models.evaluate_metrics import Detection, GroundTruthImage, instance_scores
from pipeline import schemas
from pipeline.ledger import read_table
from transforms.atomic_files import atomic_writer, join
from transforms.image_metrics import MATCH_IOU, run_rows

RUN_METRICS_FILE = "part-run.parquet"


@dataclasses.dataclass
class _Panoptic:
    true_positives: float = 0.0
    false_positives: float = 0.0
    false_negatives: float = 0.0
    iou_sum: float = 0.0

    def scores(self) -> tuple[float, float, float] | None:
        """(PQ, SQ, RQ), or None for a class with no segment at all."""
        denominator = self.true_positives + 0.5 * self.false_positives + 0.5 * self.false_negatives
        if denominator == 0:
            return None
        sq = self.iou_sum / self.true_positives if self.true_positives else 0.0
        rq = self.true_positives / denominator
        return sq * rq, sq, rq


def _per_image_class_values(rows: list[dict]) -> dict[tuple[str, int], dict[str, float]]:
    values: dict[tuple[str, int], dict[str, float]] = collections.defaultdict(dict)
    for row in rows:
        if row["class_id"] is not None:
            values[(row["image_id"], row["class_id"])][row["metric"]] = row["value"]
    return values


def _semantic(values: Mapping[tuple[str, int], Mapping[str, float]]) -> dict[int, list[float]]:
    """class id -> [gt pixels, predicted pixels, intersection] summed over the run."""
    sums: dict[int, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    for (_, class_id), v in values.items():
        if "gt_pixels" in v:
            total = sums[class_id]
            total[0] += v["gt_pixels"]
            total[1] += v["pred_pixels"]
            total[2] += v["intersection_pixels"]
    return dict(sums)


def _panoptic(
    values: Mapping[tuple[str, int], Mapping[str, float]], things: set[int]
) -> dict[int, _Panoptic]:
    per_class: dict[int, _Panoptic] = collections.defaultdict(_Panoptic)
    for (_, class_id), v in values.items():
        entry = per_class[class_id]
        if class_id in things and "gt_instances" in v:
            entry.true_positives += v["matched_instances"]
            entry.false_positives += v["false_instances"]
            entry.false_negatives += v["missed_instances"]
            entry.iou_sum += v["matched_iou_sum"]
        elif class_id not in things and "gt_pixels" in v:
            gt, pred, inter = v["gt_pixels"], v["pred_pixels"], v["intersection_pixels"]
            iou = inter / (gt + pred - inter) if gt + pred > inter else 0.0
            if gt > 0 and pred > 0 and iou > MATCH_IOU:
                entry.true_positives += 1
                entry.iou_sum += iou
            else:
                entry.false_negatives += gt > 0
                entry.false_positives += pred > 0
    return dict(per_class)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _coco(tables_dir: str, evaluated: list[str]) -> dict[str, float]:
    index = {image_id: i for i, image_id in enumerate(evaluated)}
    sizes = read_table(tables_dir, "images", ["image_id", "height", "width"]).to_pylist()
    images = {r["image_id"]: r for r in sizes}
    truth = collections.defaultdict(list)
    for row in read_table(tables_dir, "ground_truth").to_pylist():
        truth[row["image_id"]].append(row)
    ground_truth = [
        GroundTruthImage(
            height=images[image_id]["height"],
            width=images[image_id]["width"],
            rles=tuple(
                {"size": [r["height"], r["width"]], "counts": r["rle"]} for r in truth[image_id]
            ),
            class_ids=tuple(r["class_id"] for r in truth[image_id]),
        )
        for image_id in evaluated
    ]
    detections = [
        Detection(
            image_index=index[r["image_id"]],
            class_id=r["class_id"],
            score=r["score"],
            rle={"size": [r["height"], r["width"]], "counts": r["rle"]},
        )
        for r in read_table(
            tables_dir, "instances", ["image_id", "class_id", "score", "height", "width", "rle"]
        ).to_pylist()
        if r["image_id"] in index
    ]
    class_ids = tuple(
        sorted({c for g in ground_truth for c in g.class_ids} | {d.class_id for d in detections})
    )
    scores = instance_scores(ground_truth, detections, class_ids)
    return {"ap": scores.ap, "ap50": scores.ap50, "ap75": scores.ap75, "ar": scores.ar}


def summarize(
    tables_dir: str, class_names: Mapping[int, str], num_images: int
) -> dict[str, object]:
    """Aggregates the run's per-image metrics, appends run rows to `metrics`, returns them.

    Args:
      tables_dir: The run's (staging) tables directory.
      class_names: class id -> name, for the rows and the summary.
      num_images: rows in the `images` table (evaluated or not).
    """
    rows = read_table(tables_dir, "metrics").to_pylist()
    evaluated = sorted({r["image_id"] for r in rows if r["metric"] == "evaluated"})
    values = _per_image_class_values(rows)
    things = {
        class_id
        for (_, class_id), v in values.items()
        if v.get("gt_instances", 0) > 0 or v.get("pred_instances", 0) > 0
    }

    def name(class_id: int) -> str:
        return class_names.get(class_id, f"class_{class_id}")

    out: list[tuple[int | None, str | None, str, float]] = []
    semantic = _semantic(values)
    ious = {c: s[2] / (s[0] + s[1] - s[2]) for c, s in semantic.items() if s[0] + s[1] > s[2]}
    out += [(c, name(c), "iou", v) for c, v in sorted(ious.items())]
    gt_pixels = sum(s[0] for s in semantic.values())
    summary: dict[str, object] = {
        "images_evaluated": len(evaluated),
        "images_without_ground_truth": num_images - len(evaluated),
        "semantic": {
            "miou": _mean(list(ious.values())),
            "pixel_accuracy": sum(s[2] for s in semantic.values()) / gt_pixels
            if gt_pixels
            else None,
            "iou": {name(c): v for c, v in sorted(ious.items())},
        },
    }
    panoptic = {c: p.scores() for c, p in _panoptic(values, things).items()}
    panoptic = {c: s for c, s in panoptic.items() if s is not None}
    for c, (pq_, sq, rq) in sorted(panoptic.items()):
        out += [(c, name(c), "pq", pq_), (c, name(c), "sq", sq), (c, name(c), "rq", rq)]
    groups = {
        "all": set(panoptic),
        "things": set(panoptic) & things,
        "stuff": set(panoptic) - things,
    }
    summary["panoptic"] = {
        group: {
            metric: _mean([panoptic[c][k] for c in members])
            for k, metric in enumerate(("pq", "sq", "rq"))
        }
        for group, members in groups.items()
    }
    summary["panoptic"]["thing_classes"] = sorted(name(c) for c in things)
    summary["instance"] = _coco(tables_dir, evaluated) if evaluated else None
    for key, value in (
        ("miou", summary["semantic"]["miou"]),
        ("pixel_accuracy", summary["semantic"]["pixel_accuracy"]),
        *((f"{m}_{g}", summary["panoptic"][g][m]) for g in groups for m in ("pq", "sq", "rq")),
        *((summary["instance"] or {}).items()),
        ("images_evaluated", len(evaluated)),
    ):
        if value is not None:
            out.append((None, None, key, value))
    _write_run_rows(tables_dir, run_rows(out))
    return summary


def _write_run_rows(tables_dir: str, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=schemas.METRICS)
    with atomic_writer(join(tables_dir, "metrics", RUN_METRICS_FILE)) as handle:
        pq.write_table(table, handle, compression="zstd")

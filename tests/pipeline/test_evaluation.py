"""Run-level evaluation: sums of per-image counts, checked against figures worked by hand.

Three 4x4 images: A predicted perfectly, B with every mask shifted one column
right-to-left (IoU 1/3: no match), C without ground truth. See
tests/transforms/test_image_metrics.py for the per-image cases.
"""

import json

import numpy as np
import pytest

from pipeline.evaluation import summarize
from pipeline.ledger import read_table
from tests.pipeline.table_rows import image_row, write_part
from tests.transforms.test_image_metrics import (
    GT_MAP,
    SKY,
    VEHICLE,
    H,
    W,
    _columns,
    _instances,
    _rle,
    _semantic,
    _truth,
)
from transforms.image_metrics import evaluate_image, metric_rows

NAMES = {SKY: "sky", VEHICLE: "vehicle"}


def _image(image_id):
    return image_row(image_id, width=W, height=H, num_instances=1)


def _instance_row(image_id, mask, score):
    return {
        "image_id": image_id,
        "instance_id": f"{image_id}-0000",
        "class_id": VEHICLE,
        "class_name": "vehicle",
        "score": score,
        "bbox_x": 0.0,
        "bbox_y": 0.0,
        "bbox_w": 1.0,
        "bbox_h": 1.0,
        "area": int(mask.sum()),
        "height": H,
        "width": W,
        "rle": _rle(mask),
    }


@pytest.fixture
def run_tables(tmp_path):
    shifted_map = np.where(_columns(1, 2), VEHICLE, SKY)
    cases = {
        "A": (_semantic(GT_MAP), _columns(2, 3), 0.9),
        "B": (_semantic(shifted_map), _columns(1, 2), 0.8),
    }
    metrics, truth, instances = [], [], []
    for image_id, (semantic, mask, score) in cases.items():
        evaluation = evaluate_image(_truth(), H, W, semantic, _instances(mask))
        metrics += metric_rows(image_id, evaluation, NAMES)
        truth += [
            {
                "image_id": image_id,
                "instance_index": 0,
                "class_id": VEHICLE,
                "class_name": "vehicle",
                "area": 8,
                "height": H,
                "width": W,
                "rle": _rle(_columns(2, 3)),
            }
        ]
        instances.append(_instance_row(image_id, mask, score))
    write_part(tmp_path, "images", [_image("A"), _image("B"), _image("C")])
    write_part(tmp_path, "metrics", metrics)
    write_part(tmp_path, "ground_truth", truth)
    write_part(tmp_path, "instances", [*instances, _instance_row("C", _columns(0), 0.99)])
    return tmp_path


def test_run_metrics_match_hand_computation(run_tables):
    summary = summarize(str(run_tables), NAMES, num_images=3)
    assert (summary["images_evaluated"], summary["images_without_ground_truth"]) == (2, 1)
    # Sky and vehicle: gt 16, predicted 16, intersection 8 + 4 = 12 pixels: IoU 12 / 20.
    assert summary["semantic"]["iou"] == {"sky": pytest.approx(0.6), "vehicle": pytest.approx(0.6)}
    assert summary["semantic"]["miou"] == pytest.approx(0.6)
    assert summary["semantic"]["pixel_accuracy"] == pytest.approx(24 / 32)
    # Each class: one true positive (IoU 1), one false positive, one false negative.
    # RQ = 1 / (1 + 0.5 + 0.5) = 0.5, SQ = 1, PQ = 0.5; vehicle is a thing, sky stuff.
    for group in ("all", "things", "stuff"):
        assert summary["panoptic"][group] == pytest.approx({"pq": 0.5, "sq": 1.0, "rq": 0.5})
    assert summary["panoptic"]["thing_classes"] == ["vehicle"]
    # COCO: the 0.9 detection matches at every IoU threshold, the 0.8 one never:
    # precision 1 up to recall 0.5, nothing after: 51 of 101 recall points.
    # Image C has no ground truth, so its detection is left out, not a false positive.
    assert summary["instance"]["ap"] == pytest.approx(51 / 101)
    assert summary["instance"]["ap50"] == pytest.approx(51 / 101)
    assert summary["instance"]["ap75"] == pytest.approx(51 / 101)
    assert summary["instance"]["ar"] == pytest.approx(0.5)
    json.dumps(summary)  # The manifest must be able to hold it.


def test_run_rows_are_appended_to_the_metrics_table(run_tables):
    summarize(str(run_tables), NAMES, num_images=3)
    rows = read_table(str(run_tables), "metrics").to_pylist()
    run = {(r["class_name"], r["metric"]): r["value"] for r in rows if r["scope"] == "run"}
    assert run[(None, "miou")] == pytest.approx(0.6)
    assert run[("vehicle", "pq")] == pytest.approx(0.5)
    assert run[(None, "ap50")] == pytest.approx(51 / 101)
    assert all(r["image_id"] is None for r in rows if r["scope"] == "run")

"""Per-image evaluation against hand-computed cases on a 4x4 image.

Ground truth: columns 0-1 are sky (class 0), columns 2-3 vehicle (class 5);
the vehicle pixels are one instance unless a test says otherwise.
"""

import io

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from transforms.elements import ClassMask, GroundTruth, Instance, InstanceResult, SemanticResult
from transforms.image_metrics import evaluate_image, metric_rows

H = W = 4
SKY, VEHICLE = 0, 5


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rle(mask):
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def _columns(*cols, rows=range(H)):
    mask = np.zeros((H, W), bool)
    for r in rows:
        mask[r, list(cols)] = True
    return mask


GT_MAP = np.where(_columns(2, 3), VEHICLE, SKY)


def _truth(instance_masks=None):
    if instance_masks is None:
        instance_masks = (_columns(2, 3),)
    return GroundTruth(
        semantic_png=_png(GT_MAP),
        instance_mask_pngs=tuple(_png(m) for m in instance_masks),
        instance_class_ids=tuple(VEHICLE for _ in instance_masks),
    )


def _semantic(class_map):
    classes = tuple(
        ClassMask(int(c), int((class_map == c).sum()), _rle(class_map == c))
        for c in np.unique(class_map)
    )
    return SemanticResult("img", H, W, classes)


def _instances(*masks):
    return InstanceResult(
        "img", H, W, tuple(Instance(VEHICLE, 0.9, 0, 0, 1, 1, int(m.sum()), _rle(m)) for m in masks)
    )


def _outcome(counts):
    """(matched, missed, false) instances."""
    return counts["matched_instances"], counts["missed_instances"], counts["false_instances"]


def test_perfect_prediction():
    result = evaluate_image(_truth(), H, W, _semantic(GT_MAP), _instances(_columns(2, 3)))
    assert result.pixel_accuracy == 1.0
    assert result.per_class[SKY] == {
        "gt_pixels": 8,
        "pred_pixels": 8,
        "intersection_pixels": 8,
        "iou": 1.0,
    }
    vehicle = result.per_class[VEHICLE]
    assert (vehicle["iou"], vehicle["matched_instances"], vehicle["matched_iou_sum"]) == (
        1.0,
        1,
        1.0,
    )
    assert (vehicle["missed_instances"], vehicle["false_instances"]) == (0, 0)
    assert result.gt_instances == ((VEHICLE, _rle(_columns(2, 3)), 8),)


def test_empty_prediction():
    empty = SemanticResult("img", H, W, ())
    result = evaluate_image(_truth(), H, W, empty, _instances())
    assert result.pixel_accuracy == 0.0
    assert result.per_class[SKY]["iou"] == 0.0
    vehicle = result.per_class[VEHICLE]
    assert (vehicle["gt_instances"], vehicle["pred_instances"]) == (1, 0)
    assert (vehicle["missed_instances"], vehicle["false_instances"]) == (1, 0)


def test_mask_shifted_by_one_column_is_not_a_match():
    # Prediction columns 1-2 vs truth 2-3: intersection 4, union 12, IoU 1/3 <= 0.5.
    shifted_map = np.where(_columns(1, 2), VEHICLE, SKY)
    result = evaluate_image(_truth(), H, W, _semantic(shifted_map), _instances(_columns(1, 2)))
    # Sky: truth cols 0-1, prediction cols 0 and 3: intersection 4, union 12.
    assert result.per_class[SKY]["iou"] == pytest.approx(4 / 12)
    assert result.per_class[VEHICLE]["iou"] == pytest.approx(4 / 12)
    assert result.pixel_accuracy == pytest.approx(8 / 16)
    vehicle = result.per_class[VEHICLE]
    assert (
        vehicle["matched_instances"],
        vehicle["missed_instances"],
        vehicle["false_instances"],
    ) == (
        0,
        1,
        1,
    )


def test_mask_shifted_by_one_row_still_matches_with_its_iou():
    # Prediction rows 1-3 of columns 2-3: 6 pixels inside the 8-pixel truth: IoU 6/8.
    result = evaluate_image(_truth(), H, W, None, _instances(_columns(2, 3, rows=range(1, 4))))
    vehicle = result.per_class[VEHICLE]
    assert (vehicle["matched_instances"], vehicle["matched_iou_sum"]) == (1, 0.75)
    assert result.pixel_accuracy is None  # No semantic model, no pixel accuracy.


def test_two_touching_instances_merged_into_one():
    # Truth: column 2 and column 3 are two vehicles; the prediction merges them.
    # Each truth instance has IoU 4/8 = 0.5 with the merged mask: not > 0.5, no match.
    truth = _truth(instance_masks=(_columns(2), _columns(3)))
    result = evaluate_image(truth, H, W, None, _instances(_columns(2, 3)))
    vehicle = result.per_class[VEHICLE]
    assert (vehicle["gt_instances"], vehicle["pred_instances"]) == (2, 1)
    assert (
        vehicle["matched_instances"],
        vehicle["missed_instances"],
        vehicle["false_instances"],
    ) == (
        0,
        2,
        1,
    )


def test_ground_truth_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="Ground-truth class map"):
        evaluate_image(_truth(), H + 1, W, _semantic(GT_MAP), None)


def test_metric_rows_are_long_format_with_names():
    result = evaluate_image(_truth(), H, W, _semantic(GT_MAP), _instances(_columns(2, 3)))
    rows = metric_rows("img", result, {SKY: "sky", VEHICLE: "vehicle"})
    assert rows[0] == {
        "scope": "image",
        "image_id": "img",
        "class_id": None,
        "class_name": None,
        "metric": "evaluated",
        "value": 1.0,
    }
    by_key = {(r["class_name"], r["metric"]): r["value"] for r in rows}
    assert by_key[(None, "pixel_accuracy")] == 1.0
    assert by_key[("vehicle", "matched_instances")] == 1.0
    assert ("sky", "gt_instances") not in by_key  # Sky has no instances either way.

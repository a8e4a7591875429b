"""Tests for models.evaluate_metrics and models.evaluate, on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models import evaluate
from models.evaluate_metrics import (
    Detection,
    GroundTruthImage,
    confusion_matrix,
    encode_mask,
    instance_scores,
    mask_fit,
    misses,
    semantic_scores,
)
from models.synthetic import scene_for_index, write_shards
from pipeline import schemas
from transforms.elements import make_image_id

VEHICLE, PEDESTRIAN = 5, 6
CLASSES = (VEHICLE, PEDESTRIAN)


def _square(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _gt(masks: list[np.ndarray], classes: list[int]) -> GroundTruthImage:
    h, w = masks[0].shape
    return GroundTruthImage(h, w, tuple(encode_mask(m) for m in masks), tuple(classes))


# ------------------------------------------------------------------ semantic


def test_confusion_matrix_counts_pairs_and_void_column():
    gt = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [3, 2, 0]])  # 3 = no prediction for 3 classes.
    cm = confusion_matrix(gt, pred, 3)
    expected = np.array(
        [
            [1, 1, 0, 0],
            [0, 1, 0, 1],
            [1, 0, 1, 0],
        ]
    )
    np.testing.assert_array_equal(cm, expected)


def test_semantic_scores_by_hand():
    gt = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [3, 2, 0]])
    scores = semantic_scores(confusion_matrix(gt, pred, 3))
    # Class 0: TP 1, predicted 2 (cells (0,0),(1,2)), true 2 -> union 3.
    # Class 1: TP 1, predicted 2, true 2 -> union 3 (the void pixel is a miss only).
    # Class 2: TP 1, predicted 1, true 2 -> union 2.
    assert scores.per_class_iou == pytest.approx((1 / 3, 1 / 3, 1 / 2))
    assert scores.miou == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    assert scores.pixel_accuracy == pytest.approx(3 / 6)


def test_semantic_perfect_and_absent_class():
    gt = np.array([[0, 1], [1, 0]])
    scores = semantic_scores(confusion_matrix(gt, gt, 4))
    assert scores.per_class_iou[:2] == (1.0, 1.0)
    assert all(math.isnan(v) for v in scores.per_class_iou[2:])  # Absent: excluded from the mean.
    assert scores.miou == 1.0


def test_semantic_shifted_square_iou_by_hand():
    gt = _square(20, 20, 5, 5, 15, 15).astype(np.int64)  # Class 1 = a 10x10 square.
    pred = _square(20, 20, 5, 7, 15, 17).astype(np.int64)  # Shifted right by 2.
    scores = semantic_scores(confusion_matrix(gt, pred, 2))
    # Class 1: intersection 10x8 = 80, union 100 + 100 - 80 = 120.
    assert scores.per_class_iou[1] == pytest.approx(80 / 120)
    # Class 0: 300 true, 300 predicted, 280 shared -> 280 / 320.
    assert scores.per_class_iou[0] == pytest.approx(280 / 320)


def test_confusion_matrix_rejects_bad_ids():
    with pytest.raises(ValueError, match="Ground-truth class ids"):
        confusion_matrix(np.array([[7]]), np.array([[0]]), 7)
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 7)


# ------------------------------------------------------------------ instances


def test_perfect_instances_score_one():
    a, b = _square(40, 40, 2, 2, 12, 12), _square(40, 40, 20, 20, 35, 30)
    dets = [
        Detection(0, VEHICLE, 0.9, encode_mask(a)),
        Detection(0, PEDESTRIAN, 0.8, encode_mask(b)),
    ]
    scores = instance_scores([_gt([a, b], [VEHICLE, PEDESTRIAN])], dets, CLASSES)
    assert scores.ap == pytest.approx(1.0)
    assert scores.ap50 == pytest.approx(1.0)
    assert scores.ap75 == pytest.approx(1.0)
    assert scores.ar == pytest.approx(1.0)


def test_empty_prediction_scores_zero():
    a = _square(40, 40, 2, 2, 12, 12)
    scores = instance_scores([_gt([a], [VEHICLE])], [], CLASSES)
    assert scores == (0.0, 0.0, 0.0, 0.0)


def test_shifted_instance_passes_iou_50_but_not_75():
    gt = _square(30, 30, 5, 5, 15, 15)
    pred = _square(30, 30, 5, 7, 15, 17)  # IoU 80 / 120 = 0.667.
    scores = instance_scores(
        [_gt([gt], [VEHICLE])], [Detection(0, VEHICLE, 0.9, encode_mask(pred))], CLASSES
    )
    assert scores.ap50 == pytest.approx(1.0)
    assert scores.ap75 == pytest.approx(0.0)
    # Matches at IoU thresholds 0.50, 0.55, 0.60, 0.65: 4 of the 10.
    assert scores.ap == pytest.approx(0.4)


def test_merged_instances_lose_half_the_recall():
    # Two touching vehicles, 10x10 and 10x6, predicted as one 10x16 blob.
    big, small = _square(30, 30, 5, 5, 15, 15), _square(30, 30, 5, 15, 15, 21)
    merged = big | small
    det = Detection(0, VEHICLE, 0.9, encode_mask(merged))
    scores = instance_scores([_gt([big, small], [VEHICLE, VEHICLE])], [det], CLASSES)
    # IoU(merged, big) = 100/160 = 0.625 matches at 0.5; small (IoU 0.375) is missed.
    # Precision is 1 up to recall 0.5, then 0: COCO's 101-point interpolation gives 51/101.
    assert scores.ap50 == pytest.approx(51 / 101)
    assert scores.ar == pytest.approx(0.5 * 3 / 10)  # big matched at 0.50, 0.55, 0.60 only.


def test_per_class_scores_average_to_the_overall_score():
    # A vehicle found exactly and a pedestrian missed: vehicle AP 1, pedestrian AP 0,
    # and COCO's overall AP is their mean.
    car, person = _square(40, 40, 5, 5, 15, 25), _square(40, 40, 20, 30, 38, 36)
    gt = [_gt([car, person], [VEHICLE, PEDESTRIAN])]
    dets = [Detection(0, VEHICLE, 0.9, encode_mask(car))]
    assert instance_scores(gt, dets, (VEHICLE,)).ap == pytest.approx(1.0)
    assert instance_scores(gt, dets, (PEDESTRIAN,)).ap == pytest.approx(0.0)
    assert instance_scores(gt, dets, CLASSES).ap == pytest.approx(0.5)


def test_wrong_class_does_not_match():
    a = _square(30, 30, 5, 5, 15, 15)
    scores = instance_scores(
        [_gt([a], [VEHICLE])], [Detection(0, PEDESTRIAN, 0.9, encode_mask(a))], CLASSES
    )
    assert scores.ap50 == pytest.approx(0.0)


def test_mask_fit_of_a_mask_spilling_over_and_a_missed_instance():
    # Truth 10x10; the detection adds 2 columns: IoU 100/120, precision 100/120,
    # recall 1. The second vehicle has no detection: counted, not found.
    truth, missed = _square(40, 40, 5, 5, 15, 15), _square(40, 40, 25, 25, 35, 35)
    spilled = _square(40, 40, 5, 5, 15, 17)
    fit = mask_fit(
        [_gt([truth, missed], [VEHICLE, VEHICLE])],
        [Detection(0, VEHICLE, 0.9, encode_mask(spilled))],
        VEHICLE,
    )
    assert (fit.num_found, fit.num_instances) == (1, 2)
    assert fit.iou == pytest.approx(100 / 120)
    assert fit.precision == pytest.approx(100 / 120)
    assert fit.recall == pytest.approx(1.0)


def test_mask_fit_takes_medians_and_the_best_detection_per_truth():
    # Three pedestrians, each 10 rows x 4 columns (40 px). A: detected with its top
    # two rows missing (IoU 32/40 = 0.8, precision 1, recall 0.8) and, worse, by a
    # 10x6 blob (IoU 40/60); B: exact; C: a 10x6 blob only (IoU 40/60, precision
    # 40/60, recall 1). Medians: IoU 0.8, precision 1, recall 1.
    a, b, c = (_square(40, 40, 5, x, 15, x + 4) for x in (2, 12, 22))
    dets = [
        Detection(0, PEDESTRIAN, 0.9, encode_mask(_square(40, 40, 7, 2, 15, 6))),
        Detection(0, PEDESTRIAN, 0.8, encode_mask(_square(40, 40, 5, 1, 15, 7))),
        Detection(0, PEDESTRIAN, 0.7, encode_mask(b)),
        Detection(0, PEDESTRIAN, 0.6, encode_mask(_square(40, 40, 5, 21, 15, 27))),
    ]
    fit = mask_fit([_gt([a, b, c], [PEDESTRIAN] * 3)], dets, PEDESTRIAN)
    assert (fit.num_found, fit.num_instances) == (3, 3)
    assert fit.iou == pytest.approx(0.8)
    assert fit.precision == pytest.approx(1.0)
    assert fit.recall == pytest.approx(1.0)


def test_misses_sorts_every_instance_into_one_verdict():
    # Pedestrians, each 10 rows x 4 columns (40 px, "small"), in a 40x60 image:
    # A exact (found); B and C side by side under one 10x10 blob (each 40/100 IoU,
    # each fully covered: merged); D under a 10x12 blob of its own (IoU 40/120, all
    # of it covered: off); E with a 2x4 sliver over it (8/40 = 20% covered: missed);
    # F with nothing. And a vehicle detection exactly on F, which must not count.
    a, b, c, d, e, f = (_square(40, 60, 5, x, 15, x + 4) for x in (1, 10, 16, 25, 41, 50))
    merged = _square(40, 60, 5, 10, 15, 20)
    dets = [
        Detection(0, PEDESTRIAN, 0.9, encode_mask(a)),
        Detection(0, PEDESTRIAN, 0.8, encode_mask(merged)),
        Detection(0, PEDESTRIAN, 0.7, encode_mask(_square(40, 60, 5, 21, 15, 33))),
        Detection(0, PEDESTRIAN, 0.6, encode_mask(_square(40, 60, 5, 41, 7, 45))),
        Detection(0, VEHICLE, 0.5, encode_mask(f)),
    ]
    result = misses([_gt([a, b, c, d, e, f], [PEDESTRIAN] * 6)], dets, PEDESTRIAN)
    expected = {"instances": 6, "found": 1, "merged": 2, "off": 1, "missed": 2}
    assert result["all"]._asdict() == expected
    assert result["small"]._asdict() == expected
    assert sum(result["medium"]) == sum(result["large"]) == 0


def test_misses_split_by_coco_area_range():
    # A 40x40 vehicle (1,600 px: medium) found, a 100x100 one (large) missed, and an
    # image without vehicles (only a pedestrian) that adds nothing.
    medium, large = _square(200, 200, 0, 0, 40, 40), _square(200, 200, 90, 90, 190, 190)
    truths = [
        _gt([medium, large], [VEHICLE, VEHICLE]),
        _gt([_square(200, 200, 0, 0, 10, 4)], [PEDESTRIAN]),
    ]
    result = misses(truths, [Detection(0, VEHICLE, 0.9, encode_mask(medium))], VEHICLE)
    assert tuple(result["medium"]) == (1, 1, 0, 0, 0)
    assert tuple(result["large"]) == (1, 0, 0, 0, 1)
    assert tuple(result["small"]) == (0, 0, 0, 0, 0)
    assert tuple(result["all"]) == (2, 1, 0, 0, 1)


def test_mask_fit_ignores_other_classes_and_weak_overlaps():
    # A pedestrian detection exactly on a vehicle, and a vehicle detection at IoU 0.25
    # (10x10 shifted 6 columns: 40 / 160): no vehicle is found.
    truth = _square(30, 30, 5, 5, 15, 15)
    dets = [
        Detection(0, PEDESTRIAN, 0.9, encode_mask(truth)),
        Detection(0, VEHICLE, 0.9, encode_mask(_square(30, 30, 5, 11, 15, 21))),
    ]
    assert mask_fit([_gt([truth], [VEHICLE])], dets, VEHICLE) == (0, 1, None, None, None)


# ------------------------------------------------------------------ run directory


def _write_table(path, schema: pa.Schema, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path / "part-00000-of-00001.parquet")


def _perfect_run(tmp_path, shard_paths, seed: int, n: int, skip: int | None = None):
    """Writes semantic_masks and instances tables that reproduce the ground truth."""
    sem_rows, ins_rows = [], []
    names = ["sky", "building", "road", "sidewalk", "vegetation", "vehicle", "pedestrian"]
    for i in range(n):
        if i == skip:
            continue
        scene = scene_for_index(seed, i, (120, 160))
        image_id = make_image_id(str(shard_paths[0]), i)
        h, w = scene.class_map.shape
        for c in np.unique(scene.class_map):
            m = scene.class_map == c
            sem_rows.append(
                {
                    "image_id": image_id,
                    "class_id": int(c),
                    "class_name": names[c],
                    "height": h,
                    "width": w,
                    "pixel_count": int(m.sum()),
                    "rle": encode_mask(m)["counts"],
                }
            )
        for k, (m, c) in enumerate(
            zip(scene.instance_masks, scene.instance_class_ids, strict=True)
        ):
            ys, xs = np.nonzero(m)
            ins_rows.append(
                {
                    "image_id": image_id,
                    "instance_id": f"{image_id}-{k}",
                    "class_id": int(c),
                    "class_name": names[c],
                    "score": 0.9,
                    "bbox_x": float(xs.min()),
                    "bbox_y": float(ys.min()),
                    "bbox_w": float(xs.max() - xs.min() + 1),
                    "bbox_h": float(ys.max() - ys.min() + 1),
                    "area": int(m.sum()),
                    "height": h,
                    "width": w,
                    "rle": encode_mask(m)["counts"],
                }
            )
    run = tmp_path / "run"
    _write_table(run / "semantic_masks", schemas.SEMANTIC_MASKS, sem_rows)
    _write_table(run / "instances", schemas.INSTANCES, ins_rows)
    return run


def test_evaluate_run_perfect_tables(tmp_path):
    shards = write_shards(tmp_path / "shards", 3, seed=11, images_per_shard=3, size=(120, 160))
    run = _perfect_run(tmp_path, shards, seed=11, n=3)
    names = ["sky", "building", "road", "sidewalk", "vegetation", "vehicle", "pedestrian"]
    summary = evaluate.evaluate_run([str(p) for p in shards], run, names)
    assert summary["num_images"] == 3
    assert summary["num_images_without_semantic_rows"] == 0
    assert summary["semantic"]["miou"] == pytest.approx(1.0)
    assert summary["semantic"]["pixel_accuracy"] == pytest.approx(1.0)
    assert summary["instance"]["AP"] == pytest.approx(1.0)
    # These three scenes hold both vehicles and pedestrians.
    assert {name: s["AP"] for name, s in summary["instance_per_class"].items()} == {
        "vehicle": pytest.approx(1.0),
        "pedestrian": pytest.approx(1.0),
    }
    # 160x120 images are 4:3, all in one shape group.
    by_shape = summary["instance_by_image_shape"]
    assert list(by_shape) == ["up to 1.6:1"]
    assert by_shape["up to 1.6:1"]["num_images"] == 3
    assert by_shape["up to 1.6:1"]["pedestrian"]["AP50"] == pytest.approx(1.0)
    for name in ("vehicle", "pedestrian"):
        counts = summary["instance_misses"][name]["all"]
        assert counts["instances"] > 0
        assert counts["found"] == counts["instances"]


def test_shape_groups_by_width_over_height():
    assert evaluate.shape_group(height=400, width=300) == "portrait"
    assert evaluate.shape_group(height=300, width=300) == "up to 1.6:1"
    assert evaluate.shape_group(height=300, width=479) == "up to 1.6:1"
    assert evaluate.shape_group(height=300, width=480) == "wider than 1.6:1"
    assert evaluate.shape_group(height=256, width=1024) == "wider than 1.6:1"


def test_scores_by_shape_keep_each_group_to_its_own_images():
    square = np.zeros((40, 40), bool)
    square[5:15, 5:15] = True
    wide = np.zeros((40, 80), bool)
    wide[5:15, 5:25] = True
    gt = [
        GroundTruthImage(40, 40, (encode_mask(square),), (6,)),
        GroundTruthImage(40, 80, (encode_mask(wide),), (6,)),
    ]
    # The wide image's pedestrian is found, the square image's is not.
    dets = [Detection(1, 6, 0.9, encode_mask(wide))]
    names = ["sky", "building", "road", "sidewalk", "vegetation", "vehicle", "pedestrian"]
    by_shape = evaluate._scores_by_shape(gt, dets, names)
    assert by_shape["up to 1.6:1"]["pedestrian"] == {"num_instances": 1, "AP50": 0.0}
    assert by_shape["wider than 1.6:1"]["pedestrian"] == {
        "num_instances": 1,
        "AP50": pytest.approx(1.0),
    }
    assert by_shape["wider than 1.6:1"]["vehicle"]["AP50"] == -1.0  # No vehicles: undefined.
    assert "portrait" not in by_shape


def test_evaluate_run_counts_missing_image_as_miss(tmp_path):
    shards = write_shards(tmp_path / "shards", 2, seed=11, images_per_shard=2, size=(120, 160))
    run = _perfect_run(tmp_path, shards, seed=11, n=2, skip=1)
    names = ["sky", "building", "road", "sidewalk", "vegetation", "vehicle", "pedestrian"]
    summary = evaluate.evaluate_run([str(p) for p in shards], run, names)
    assert summary["num_images_without_semantic_rows"] == 1
    # Half the pixels (both images are 120x160) are unpredicted misses.
    assert summary["semantic"]["pixel_accuracy"] == pytest.approx(0.5)


def test_cli_writes_json(tmp_path, capsys):
    shards = write_shards(tmp_path / "shards", 2, seed=11, images_per_shard=2, size=(120, 160))
    run = _perfect_run(tmp_path, shards, seed=11, n=2)
    out = tmp_path / "summary.json"
    evaluate.main(
        [
            "--shards",
            str(tmp_path / "shards" / "*.tfrecord"),
            "--run_dir",
            str(run),
            "--json",
            str(out),
        ]
    )
    summary = json.loads(out.read_text())
    assert summary["semantic"]["miou"] == pytest.approx(1.0)
    assert json.loads(capsys.readouterr().out) == summary


def test_cli_rejects_empty_glob(tmp_path):
    with pytest.raises(SystemExit, match="matched no files"):
        evaluate.main(
            ["--shards", str(tmp_path / "nothing-*.tfrecord"), "--run_dir", str(tmp_path)]
        )

"""COCO export, checked with pycocotools itself: COCO loads it, masks decode, COCOeval scores it.

Expected masks, boxes and ids come from the hand-drawn run in tests/pipeline/fake_run.py.
"""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import run_pipeline
from pipeline.coco_export import export_coco
from tests.pipeline import fake_run


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return fake_run.write_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def exported(tmp_path, inputs):
    run_dir = fake_run.write_run(tmp_path / "run", inputs)
    return export_coco(str(run_dir)), run_dir


def _quiet(call, *args):
    # pycocotools prints progress to stdout; keep the test output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return call(*args)


def _drawn_instances(inputs):
    """instance_id -> (image, FakeInstance), as fake_run names them."""
    drawn = {}
    for image in inputs.images.values():
        for index, instance in enumerate(image.instances):
            drawn[f"{image.image_id}-{index}"] = (image, instance)
    return drawn


def test_coco_loads_images_and_categories(exported, inputs):
    result, _ = exported
    coco = _quiet(COCO, result.annotations_path)
    by_segbeam_id = {img["segbeam_image_id"]: img for img in coco.dataset["images"]}
    ordered = sorted(inputs.images.values(), key=lambda image: image.image_id)
    # COCO ids 1..N in ascending segbeam image_id order.
    assert [by_segbeam_id[image.image_id]["id"] for image in ordered] == [1, 2, 3]
    for image in ordered:
        entry = by_segbeam_id[image.image_id]
        assert (entry["width"], entry["height"]) == (image.width, image.height)
        assert entry["file_name"] == image.filename
        assert (entry["source"], entry["record_index"]) == (image.source, image.record_index)
    categories = {c["id"]: (c["name"], c["class_id"]) for c in coco.dataset["categories"]}
    assert categories == {
        1: ("sky", 0),
        2: ("building", 1),
        3: ("road", 2),
        5: ("vegetation", 4),
        6: ("vehicle", 5),
        7: ("pedestrian", 6),
    }
    assert (result.num_images, result.num_categories, result.num_annotations) == (3, 6, 4)


def test_annotations_decode_to_the_drawn_masks(exported, inputs):
    result, _ = exported
    coco = _quiet(COCO, result.annotations_path)
    drawn = _drawn_instances(inputs)
    annotations = coco.loadAnns(coco.getAnnIds())
    assert sorted(a["segbeam_instance_id"] for a in annotations) == sorted(drawn)
    assert sorted(a["id"] for a in annotations) == [1, 2, 3, 4]
    for annotation in annotations:
        image, instance = drawn[annotation["segbeam_instance_id"]]
        expected = fake_run.rect_mask(image.height, image.width, instance.box)
        np.testing.assert_array_equal(coco.annToMask(annotation), expected.astype(np.uint8))
        assert annotation["bbox"] == list(instance.box)
        assert annotation["area"] == instance.box[2] * instance.box[3]
        assert annotation["category_id"] == instance.class_id + 1
        assert annotation["score"] == pytest.approx(instance.score, abs=1e-6)
        assert annotation["iscrowd"] == 0
        assert coco.imgs[annotation["image_id"]]["segbeam_image_id"] == image.image_id


def test_annotation_ids_follow_image_then_score(exported, inputs):
    result, _ = exported
    document = json.loads(Path(result.annotations_path).read_text())
    keys = [(a["image_id"], -a["score"]) for a in document["annotations"]]
    assert keys == sorted(keys)
    assert [a["id"] for a in document["annotations"]] == [1, 2, 3, 4]


def test_results_load_and_score_ap_one_against_identical_annotations(exported):
    result, _ = exported
    ground_truth = _quiet(COCO, result.annotations_path)
    detections = _quiet(ground_truth.loadRes, result.results_path)
    assert len(detections.getAnnIds()) == 4
    for kind in ("segm", "bbox"):
        evaluation = COCOeval(ground_truth, detections, kind)
        _quiet(evaluation.evaluate)
        _quiet(evaluation.accumulate)
        _quiet(evaluation.summarize)
        assert evaluation.stats[0] == pytest.approx(1.0), kind  # AP @ IoU 0.50:0.95
        assert evaluation.stats[1] == pytest.approx(1.0), kind  # AP @ IoU 0.50


def test_shifted_results_score_below_one(exported):
    # The AP check above can fail: moving every mask two pixels right lowers AP.
    result, run_dir = exported
    results = json.loads(Path(result.results_path).read_text())
    ground_truth = _quiet(COCO, result.annotations_path)
    for entry in results:
        mask = ground_truth.annToMask(
            {"segmentation": entry["segmentation"], "image_id": entry["image_id"]}
        )
        shifted = np.roll(mask, 2, axis=1)
        entry["segmentation"]["counts"] = fake_run.rle(shifted.astype(bool))
    path = run_dir / "shifted.json"
    path.write_text(json.dumps(results))
    evaluation = COCOeval(ground_truth, _quiet(ground_truth.loadRes, str(path)), "segm")
    _quiet(evaluation.evaluate)
    _quiet(evaluation.accumulate)
    _quiet(evaluation.summarize)
    assert evaluation.stats[0] < 0.9


def test_run_without_instances_exports_empty_lists(tmp_path, inputs):
    run_dir = fake_run.write_run(tmp_path / "run", inputs, keys=("C",))
    result = export_coco(str(run_dir))
    coco = _quiet(COCO, result.annotations_path)
    assert len(coco.getImgIds()) == 1
    assert coco.getAnnIds() == []
    assert json.loads(Path(result.results_path).read_text()) == []


def test_missing_run_directory_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no segbeam run"):
        export_coco(str(tmp_path / "missing"))


def test_cli_export_coco_subcommand(tmp_path, inputs, capsys):
    run_dir = fake_run.write_run(tmp_path / "run", inputs)
    assert run_pipeline.main(["export-coco", "--output", str(run_dir)]) == 0
    assert (run_dir / "coco" / "annotations.json").exists()
    assert (run_dir / "coco" / "results.json").exists()
    assert "4 annotations" in capsys.readouterr().out

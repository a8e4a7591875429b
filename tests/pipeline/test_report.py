"""The HTML report: aggregates, overlays, the self-contained page, and the CLI subcommand.

Expected numbers come from the hand-drawn run in tests/pipeline/fake_run.py.
"""

import base64
import json
import re

import numpy as np
import pytest
from PIL import Image

import run_pipeline
from pipeline.report import write_report
from pipeline.report_data import (
    HistogramBin,
    instances_per_image_histogram,
    load_report_data,
    score_histogram,
)
from pipeline.report_overlays import inner_boundary
from tests.pipeline import fake_run

SKY, ROAD, PEDESTRIAN = (70, 130, 180), (128, 64, 128), (220, 20, 60)
WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return fake_run.write_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def run_dir(tmp_path, inputs):
    return fake_run.write_run(tmp_path / "run", inputs)


def _by_name(data):
    return {c.class_name: c for c in data.classes}


def test_class_stats_match_hand_counts(run_dir):
    data = load_report_data(str(run_dir))
    classes = _by_name(data)
    # A: 40x30 = 1200, B: 20x20 = 400, C: 10x10 = 100.
    assert data.total_pixels == 1700
    expected_pixels = {
        "sky": 400,
        "building": 340,
        "road": 710,
        "vegetation": 100,
        "vehicle": 60,
        "pedestrian": 90,
    }
    assert {name: c.pixel_count for name, c in classes.items()} == expected_pixels
    assert classes["road"].pixel_share == pytest.approx(710 / 1700)
    assert {name: c.instance_count for name, c in classes.items() if c.instance_count} == {
        "vehicle": 1,
        "pedestrian": 3,
    }
    assert [c.class_id for c in data.classes] == [0, 1, 2, 4, 5, 6]


def test_histograms_errors_and_gallery(run_dir, inputs):
    data = load_report_data(str(run_dir))
    # num_instances: A 2, B 2, C 0.
    assert data.instances_per_image == (
        HistogramBin("0", 1),
        HistogramBin("1", 0),
        HistogramBin("2", 2),
    )
    # Scores 0.93, 0.82, 0.97, 0.64.
    assert [b.count for b in data.score_histogram] == [0, 0, 0, 0, 0, 0, 1, 0, 1, 2]
    assert [(e.stage, e.error_type, e.count) for e in data.errors] == [
        ("decode", "TruncatedImage", 1),
        ("read", "CorruptRecord", 1),
    ]
    expected_ids = sorted(image.image_id for image in inputs.images.values())
    assert [g.image_id for g in data.gallery] == expected_ids
    assert (data.num_images, data.num_instances, data.num_errors) == (3, 4, 2)
    assert data.succeeded
    assert data.notes == ()


def test_gallery_is_the_first_images_by_id(run_dir, inputs):
    data = load_report_data(str(run_dir), gallery_size=2)
    assert [g.image_id for g in data.gallery] == sorted(i.image_id for i in inputs.images.values())[
        :2
    ]


def test_score_histogram_bins_float32_scores_as_written():
    # 0.9 stored as float32 is 0.8999999761581421; it belongs in the 0.9 bin.
    scores = [float(np.float32(0.9)), 1.0, 0.0, 0.05, float(np.float32(0.3))]
    counts = [b.count for b in score_histogram(scores)]
    assert counts == [2, 0, 0, 1, 0, 0, 0, 0, 0, 2]


def test_instances_histogram_caps_the_long_tail():
    bins = instances_per_image_histogram([0, 31, 45, 30])
    assert len(bins) == 31
    assert bins[-1] == HistogramBin("30+", 3)
    assert bins[0] == HistogramBin("0", 1)
    assert instances_per_image_histogram([]) == ()


def test_inner_boundary_of_a_rectangle():
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:5, 1:6] = True  # 4 x 5 rectangle: 12 border pixels, interior 2 x 3.
    ring = inner_boundary(mask, 1)
    assert ring.sum() == 4 * 5 - 2 * 3
    assert not ring[2:4, 2:5].any()
    assert inner_boundary(mask, 2).sum() == 4 * 5  # Nothing is 3 pixels from outside.


def _overlay(run_dir, image):
    return np.asarray(Image.open(run_dir / "report" / "overlays" / f"{image.image_id}.png"))


def test_overlays_blend_classes_and_outline_instances(run_dir, inputs):
    written = write_report(str(run_dir))
    assert written.missing_originals == 0
    a = _overlay(run_dir, inputs.images["A"])
    # 40x30 enlarged by the largest whole factor keeping 640 px: 16.
    assert a.shape == (480, 640, 3)
    # A pixel at source (x, y) covers display [16x, 16x + 16); sample the centres.
    assert tuple(a[3 * 16 + 8, 20 * 16 + 8]) == (
        (200 + 70) // 2,
        (220 + 130) // 2,
        (250 + 180) // 2,
    )
    assert tuple(a[28 * 16 + 8, 35 * 16 + 8]) == ((90 + 128) // 2, (90 + 64) // 2, (90 + 128) // 2)
    # Pedestrian P1 covers source x 5..9, y 12..21 = display x 80..159, y 192..351.
    assert tuple(a[270, 80]) == WHITE  # Its 1 px white edge...
    assert tuple(a[270, 81]) == PEDESTRIAN  # ...then its class-colour band,
    assert tuple(a[270, 82]) == PEDESTRIAN
    assert tuple(a[270, 79]) != PEDESTRIAN  # and nothing outside the mask.
    assert tuple(a[300, 120]) == ((250 + 220) // 2, (200 + 20) // 2, (150 + 60) // 2)
    # C is record 2 of the shard, read past the damaged record 1: 10x10 -> x64.
    c = _overlay(run_dir, inputs.images["C"])
    assert c.shape == (640, 640, 3)
    assert tuple(c[320, 320]) == ((41 + 107) // 2, (160 + 142) // 2, (41 + 35) // 2)


def test_overlay_labels_name_class_and_score(run_dir, inputs):
    write_report(str(run_dir))
    a = _overlay(run_dir, inputs.images["A"])
    # The label chip sits on P1's box, just above its top edge (display y 192).
    chip = a[170:192, 80:160]
    assert (np.all(chip == PEDESTRIAN, axis=-1)).mean() > 0.4
    assert (np.all(chip == WHITE, axis=-1)).any()  # White text on the red chip.


def test_report_html_is_self_contained(run_dir, inputs):
    written = write_report(str(run_dir))
    page = (run_dir / "report.html").read_text()
    assert written.html_path == str(run_dir / "report.html")
    for forbidden in ("<script", "<link", "@import", 'src="http', "url(http"):
        assert forbidden not in page
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 3
    on_disk = {p.read_bytes() for p in (run_dir / "report" / "overlays").glob("*.png")}
    assert {base64.b64decode(u) for u in uris} == on_disk
    assert page.count("<svg") == 4
    for text in ("TruncatedImage", "CorruptRecord", "41.8 %", "0123456789ab", "balanced", "2345"):
        assert text in page
    assert {p.name for p in (run_dir / "report" / "overlays").iterdir()} == {
        f"{image.image_id}.png" for image in inputs.images.values()
    }


def test_values_from_the_run_are_escaped(tmp_path, inputs):
    run_dir = fake_run.write_run(tmp_path / "run", inputs)
    document = json.loads((run_dir / "manifest.json").read_text())
    document["run_id"] = "<b>x</b>"
    (run_dir / "manifest.json").write_text(json.dumps(document))
    write_report(str(run_dir))
    page = (run_dir / "report.html").read_text()
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_evaluation_summary_is_shown_when_the_run_has_one(tmp_path, inputs):
    run_dir = fake_run.write_run(tmp_path / "run", inputs)
    document = json.loads((run_dir / "manifest.json").read_text())
    document["evaluation"] = {
        "images_evaluated": 3,
        "semantic": {"miou": 0.81234, "pixel_accuracy": 0.9, "iou": {"road": 0.955}},
        "instance": {"ap": 0.5, "ap50": 0.75},
    }
    (run_dir / "manifest.json").write_text(json.dumps(document))
    write_report(str(run_dir))
    page = (run_dir / "report.html").read_text()
    assert "Evaluation against ground truth" in page
    for text in ("0.812", "0.955", "0.750", "IoU road"):
        assert text in page


def test_stale_overlays_are_removed(run_dir):
    stale = run_dir / "report" / "overlays" / "gone.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    write_report(str(run_dir), gallery_size=1)
    assert len(list(stale.parent.iterdir())) == 1
    assert not stale.exists()


def test_missing_original_is_drawn_on_grey_with_a_note(tmp_path, inputs):
    run_dir = fake_run.write_run(tmp_path / "run", inputs)
    moved = dict(inputs.images)
    b = moved["B"]
    moved["B"] = fake_run.FakeImage(
        "B", str(tmp_path / "nowhere.png"), 0, b.pixels, b.semantic, b.instances
    )
    fake_run.write_table(run_dir, "images", fake_run.table_rows(list(moved.values()))["images"])
    for table in ("semantic_masks", "instances"):
        fake_run.write_table(run_dir, table, fake_run.table_rows(list(moved.values()))[table])
    written = write_report(str(run_dir))
    assert written.missing_originals == 1
    overlay = _overlay(run_dir, moved["B"])
    # Building over grey 128: (128 + 70) / 2 = 99.
    assert tuple(overlay[32 * 2 + 16, 32 * 2 + 16]) == (99, 99, 99)
    page = (run_dir / "report.html").read_text()
    assert "Original image unavailable" in page
    assert "nowhere.png" in page


def test_empty_run_without_manifest_still_reports(tmp_path):
    run_dir = tmp_path / "run"
    for table in ("images", "semantic_masks", "class_counts", "instances", "errors", "shards"):
        fake_run.write_table(run_dir, table, [])
    written = write_report(str(run_dir))
    page = (run_dir / "report.html").read_text()
    assert written.overlay_paths == ()
    for text in (
        "No instances in this run.",
        "No semantic pixels in this run.",
        "No images in this run.",
        "No errors",
        "No images to show.",
        "No manifest.json",
        "not finished (no _SUCCESS)",
    ):
        assert text in page


def test_not_a_run_directory_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no segbeam run"):
        write_report(str(tmp_path / "missing"))


def test_cli_report_subcommand(run_dir, capsys):
    assert run_pipeline.main(["report", "--output", str(run_dir)]) == 0
    assert (run_dir / "report.html").exists()
    assert "report.html" in capsys.readouterr().out


def test_cli_report_on_missing_directory_exits_2(tmp_path, capsys):
    assert run_pipeline.main(["report", "--output", str(tmp_path / "missing")]) == 2
    assert "no segbeam run" in capsys.readouterr().err

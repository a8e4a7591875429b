"""Tests for benchmarks/: a tiny end-to-end harness run, so it can't rot, plus its parts.

No test asserts a timing. Expected values are worked out by hand (image and
call counts, tiny models' masks encoded with pycocotools, memory an allocating
child process is known to hold, verdicts of made-up figures).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from pycocotools import mask as coco_mask

from benchmarks import plan, run_benchmarks
from benchmarks.measure import Measurement, run_measured
from benchmarks.report import RunRecord, build_report
from benchmarks.runinference_peer import PeerTables
from benchmarks.stage_timers import GC_STAGE, STAGE_FUNCTIONS, StageTimers
from models.spec import load_model_spec
from models.synthetic import write_shards
from tests.models import tiny_models as tm

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = REPO_ROOT / "models" / "bundled" / "labels.txt"
MB = 1 << 20


# ---------------------------------------------------------------- tiny models


def _save_batched_od_model(path: Path) -> Path:
    """OD-API outputs for uint8 [B, 32, 32, 3]: tiny_models' three detections, per image.

    Detection 0 (score 0.9, class 1, BOX_A, left-half box mask) is the only one
    kept at score threshold 0.5 with a non-empty mask: detection 1 scores 0.3,
    detection 2's mask is all zero.
    """
    masks = np.zeros([3, 4, 4], np.float32)
    masks[0, :, :2] = 1.0
    masks[1] = 1.0
    outputs = {
        "detection_boxes": tf.constant([tm.BOX_A, tm.BOX_B, tm.BOX_B], tf.float32),
        "detection_scores": tf.constant(tm.OD_SCORES, tf.float32),
        "detection_classes": tf.constant(tm.OD_CLASSES, tf.float32),
        "detection_masks": tf.constant(masks),
    }

    class Detector(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8, name="images")])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            batch = tf.shape(images)[0]
            tiled = {
                name: tf.tile(value[tf.newaxis], [batch] + [1] * len(value.shape))
                for name, value in outputs.items()
            }
            return {**tiled, "num_detections": tf.fill([batch], 3.0)}

    module = Detector()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(semantic spec, instance spec) of tiny 32x32 models fed stretched images."""
    directory = tmp_path_factory.mktemp("tiny_models")
    common = {"input_key": "images", "input_size": [32, 32], "resize": "stretch"}
    semantic = tm.write_spec(
        directory / "semantic.json",
        path=str(tm.save_split_semantic_model(directory / "split")),
        output_format="logits",
        output_key="logits",
        labels=str(LABELS),
        **common,
    )
    instance = tm.write_spec(
        directory / "instance.json",
        path=str(_save_batched_od_model(directory / "od")),
        output_format="od_api",
        labels=str(LABELS),
        score_threshold=0.5,
        **common,
    )
    return semantic, instance


# ---------------------------------------------------------------- measure


_ALLOCATE_IN_GRANDCHILD = """
import subprocess, sys
code = "import time; block = b'x' * (300 * 1024 * 1024); time.sleep(1.5)"
subprocess.run([sys.executable, "-c", code], check=True)
"""


def test_run_measured_sees_memory_of_a_grandchild(tmp_path):
    measurement = run_measured([sys.executable, "-c", _ALLOCATE_IN_GRANDCHILD], tmp_path / "log")

    assert measurement.returncode == 0
    # The grandchild wrote 300 MiB and held them for 1.5 s.
    assert measurement.peak_rss_bytes >= 300 * MB
    assert measurement.peak_tree_rss_bytes >= 300 * MB


def test_run_measured_reports_a_failure_without_raising(tmp_path):
    measurement = run_measured([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log")

    assert measurement.returncode == 3


# ---------------------------------------------------------------- stage timers

_CLOCK = [0.0]


def _inner() -> None:
    _CLOCK[0] += 2.0


def _outer() -> None:
    _CLOCK[0] += 1.0
    _inner()
    _CLOCK[0] += 4.0


def _generator():
    _CLOCK[0] += 3.0
    yield 1
    _CLOCK[0] += 5.0
    yield 2


def test_stage_timers_charge_exclusive_time_and_time_generators_per_item():
    module = __name__
    timers = StageTimers(
        {
            "outer": (f"{module}:_outer",),
            "inner": (f"{module}:_inner",),
            "generator": (f"{module}:_generator",),
        },
        clock=lambda: _CLOCK[0],
    )
    with timers.install():
        _outer()
        for _ in _generator():
            _CLOCK[0] += 100.0  # Downstream work between items: not the generator's.

    assert timers.seconds == {"outer": 5.0, "inner": 2.0, "generator": 8.0}
    assert timers.calls == {"outer": 1, "inner": 1, "generator": 3}  # 2 items + the end.
    assert not hasattr(_outer, "__wrapped__")  # Restored after the block.


def test_stage_timers_charge_calls_nested_in_an_opaque_stage_to_it():
    module = __name__
    timers = StageTimers(
        {"outer": (f"{module}:_outer",), "inner": (f"{module}:_inner",)},
        clock=lambda: _CLOCK[0],
        opaque_stages={"outer"},
    )
    with timers.install():
        _outer()

    assert timers.seconds == {"outer": 7.0, "inner": 0.0}
    assert timers.calls == {"outer": 1, "inner": 0}


def _collect_inside() -> None:
    _CLOCK[0] += 1.0
    gc.collect()


def test_stage_timers_move_garbage_collection_out_of_the_interrupted_stage():
    def gc_takes_ten_seconds(phase: str, info: dict) -> None:
        if phase == "start":
            _CLOCK[0] += 10.0

    timers = StageTimers(
        {"work": (f"{__name__}:_collect_inside",)}, clock=lambda: _CLOCK[0], track_gc=True
    )
    with timers.install():
        gc.callbacks.append(gc_takes_ten_seconds)  # After the timers' own callback.
        try:
            _collect_inside()
        finally:
            gc.callbacks.remove(gc_takes_ten_seconds)

    assert timers.seconds["work"] == 1.0
    assert timers.calls[GC_STAGE] >= 1  # The explicit pass, maybe automatic ones too.
    assert timers.seconds[GC_STAGE] == 10.0 * timers.calls[GC_STAGE]


def test_stage_timers_point_at_functions_that_exist():
    with StageTimers().install() as timers:
        assert set(timers.seconds) == set(STAGE_FUNCTIONS)


# ---------------------------------------------------------------- the peer


def _expected_rle(mask: np.ndarray) -> str:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def test_peer_tables_writes_the_masks_of_the_tiny_models(tmp_path, specs):
    paths = write_shards(tmp_path, num_images=3, seed=5, images_per_shard=2, size=(64, 64))
    semantic = load_model_spec(str(specs[0]), "semantic")
    instance = load_model_spec(str(specs[1]), "instance")
    # Split model: logit columns 0-3 say class 2, 4-7 class 4; the boundary falls at
    # 4.06 logit columns = 32.4 px of 64, so pixel columns 0-31 are class 2.
    left = np.zeros([64, 64], bool)
    left[:, :32] = True
    box_a = tm.expected_box_a_mask(64, 64)
    rows, cols = np.nonzero(box_a)

    with TestPipeline() as pipeline:
        tables = (
            pipeline
            | beam.Create([str(p) for p in paths])
            | PeerTables(semantic, instance, batch_size=2)
        )
        images = tables["images"] | "Images" >> beam.Map(
            lambda r: (r["filename"], r["width"], r["height"], r["num_instances"])
        )
        masks = tables["semantic_masks"] | "Masks" >> beam.Map(
            lambda r: (r["class_id"], r["pixel_count"], r["rle"])
        )
        found = tables["instances"] | "Instances" >> beam.Map(
            lambda r: (r["class_id"], r["area"], r["rle"], r["bbox_x"], r["bbox_y"])
        )
        assert_that(
            images,
            equal_to([(f"scene_5_{i:06d}.jpg", 64, 64, 1) for i in range(3)]),
            label="CheckImages",
        )
        assert_that(
            masks,
            equal_to([(2, 2048, _expected_rle(left)), (4, 2048, _expected_rle(~left))] * 3),
            label="CheckMasks",
        )
        assert_that(
            found,
            equal_to(
                [(1, int(box_a.sum()), _expected_rle(box_a), float(cols.min()), float(rows.min()))]
                * 3
            ),
            label="CheckInstances",
        )


def test_peer_tables_refuses_models_with_different_input_sizes(specs):
    semantic = load_model_spec(str(specs[0]), "semantic")
    instance = load_model_spec(str(specs[1]), "instance")
    other = dataclasses.replace(instance, input_size=(64, 64))

    with pytest.raises(ValueError, match="same input_size"):
        PeerTables(semantic, other, batch_size=2)


# ---------------------------------------------------------------- the report


def _record(variant: str, images: int, seconds: float, tree_rss_gb: float) -> RunRecord:
    run = plan.Run(variant, images, 0, "fixed")
    measurement = Measurement(
        ("x",), 0, seconds + 5, int(tree_rss_gb * 1e9), int(tree_rss_gb * 1e9), ""
    )
    result = {"variant": variant, "num_images": images, "seconds": seconds, "details": {}}
    return RunRecord(run, measurement, result)


def test_report_verdicts_follow_the_issue_targets():
    records = [
        # 100 images: bare 10/s, pipeline 9.5/s, peer 10/s.
        _record(plan.BARE_LOADER, 100, 10.0, 1.0),
        _record(plan.PIPELINE, 100, 100 / 9.5, 1.0),
        _record(plan.PEER, 100, 10.0, 1.0),
        # 1,000 images: pipeline time x10.4 (<= 10.5: met), so 9.13/s = 0.91 of bare
        # and of the peer (10/s); memory x1.2 (> 1.1: missed).
        _record(plan.BARE_LOADER, 1000, 100.0, 1.0),
        _record(plan.PIPELINE, 1000, 10.4 * 100 / 9.5, 1.2),
        _record(plan.PEER, 1000, 100.0, 1.0),
    ]

    report = build_report("cmd", {"cpus": 2}, records, [])

    assert "0.90 of the bare limit (loader): **met**: 0.91 at 1000 images" in report
    assert ">= 1.0 of the RunInference peer: **MISSED**: 0.91 at 1000 images" in report
    assert "time grows <= 10.5x: **met**: 10.5 s -> 109.5 s = 10.40x" in report
    assert "peak RSS within 10%: **MISSED**" in report
    # RSS grows 0.2 GB per 900 images: 1.2 + 0.2 / 900 * 9000 = 3.2 GB at 10,000 images.
    assert "**MISSED**: EXTRAPOLATED (not measured): 3.20 GB at 10,000 images" in report
    assert ">= 8 images/s end to end: **met**: 9.13 images/s" in report


# ---------------------------------------------------------------- the whole harness


def test_harness_runs_every_variant_and_reports(tmp_path, specs):
    variants = [
        plan.BARE_LOADER,
        plan.BARE_RAW,
        plan.PIPELINE,
        plan.PEER,
        plan.PROFILE,
        plan.RETRACE,
    ]
    argv = [
        "--num_images=4",
        "--scale=1",
        f"--work_dir={tmp_path}",
        f"--semantic_model={specs[0]}",
        f"--instance_model={specs[1]}",
        f"--variants={','.join(variants)}",
        "--retrace_images=3",
        "--no_warmup",
    ]

    exit_code = run_benchmarks.main(argv)

    report = (tmp_path / "report.md").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    failed = [r["measurement"]["log_path"] for r in results["records"] if r["result"] is None]
    assert not failed, "\n".join(f"{p}:\n{Path(p).read_text()[-3000:]}" for p in failed)
    assert exit_code == 0
    by_variant = {r["run"]["variant"]: r for r in results["records"]}
    assert set(by_variant) == set(variants)
    for variant in variants:
        expected = 3 if variant == plan.RETRACE else 4
        assert by_variant[variant]["result"]["num_images"] == expected, variant
        assert by_variant[variant]["measurement"]["peak_rss_bytes"] > 100 * MB
    # One shard of 4 images, batch size 8: one batch, so one call per model; every
    # image decodes once and is resized for each of the 2 models; mask encoding is one
    # call per image for each model (4 class maps; 4 images' 2 detections each, scores
    # 0.9 and 0.7, encoded together per image).
    profile = by_variant[plan.PROFILE]["result"]["details"]
    calls = profile["stage_calls"]
    assert (calls["decode"], calls["preprocess (resize)"]) == (4, 8)
    assert calls["infer (model call)"] == 2
    assert (calls["encode (semantic mask RLE)"], calls["encode (instance mask RLE)"]) == (4, 4)
    # Fixed input signatures: one trace per function, even for images of varied sizes.
    traces = by_variant[plan.RETRACE]["result"]["details"]["traces"]
    assert traces == {
        "make_preprocess_fn": [1, 1],
        "make_semantic_postprocess_fn": [1],
        "make_instance_postprocess_fn": [1],
    }
    pipeline_tables = by_variant[plan.PIPELINE]["result"]["details"]["table_stats"]
    assert pipeline_tables["images"]["rows"] == 4
    assert pipeline_tables["instances"]["rows"] == 4  # Detection 2's mask is empty.
    assert results["agreements"] == [
        {"table": "semantic_masks", "pipeline_rows": 8, "peer_rows": 8, "identical_rows": 8},
        {"table": "instances", "pipeline_rows": 4, "peer_rows": 4, "identical_rows": 4},
        # Classes 2 and 4 from the semantic map, class 1 from the instance.
        {"table": "class_counts", "pipeline_rows": 12, "peer_rows": 12, "identical_rows": 12},
    ]
    for heading in ("### Targets", "### Throughput and memory", "### Where the time goes"):
        assert heading in report


def test_memory_probe_snapshots_when_writing_starts(tmp_path):
    from benchmarks import memory_probe

    shards = write_shards(tmp_path / "shards", 4, seed=3, images_per_shard=2, size=(64, 96))
    result = tmp_path / "probe.json"
    memory_probe.main(
        [
            f"--input={shards[0].parent}/*.tfrecord",
            f"--output={tmp_path / 'run'}",
            f"--result_json={result}",
            "--top=5",
            "--",
            "--direct_num_workers=1",
        ]
    )
    summary = json.loads(result.read_text())
    assert summary["python_tracked_bytes"] > 0
    assert len(summary["top"]) == 5
    # The probe put the writer back as it found it.
    from transforms import write

    assert write._WriteShardFiles.process.__qualname__ == "_WriteShardFiles.process"


def test_model_call_times_both_variants_of_the_bundled_instance_export(tmp_path):
    from benchmarks import model_call

    result_json = tmp_path / "model_call.json"
    result = model_call.main(
        [
            "--num_images",
            "3",
            "--batch_size",
            "2",
            "--repeats",
            "1",
            "--result_json",
            str(result_json),
        ]
    )
    assert json.loads(result_json.read_text()) == result
    assert sorted(result["timings"]) == ["frozen", "signature"]
    for timing in result["timings"].values():
        assert timing["wall_ms_per_image"] > 0
        assert timing["cpu_ms_per_image"] > 0
    # Freezing the weights changes float rounding only: same detections, same classes.
    differences = result["differences"]
    assert differences["max_abs_diff_num_detections"] == 0.0
    assert differences["max_abs_diff_detection_classes"] == 0.0
    assert differences["max_abs_diff_detection_boxes"] < 1e-3
    assert differences["max_abs_diff_logits"] < 1e-3

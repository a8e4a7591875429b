"""AssembleTableRows: one images row or one errors row per record, never both."""

import io

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from PIL import Image
from pycocotools import mask as coco_mask

from transforms.elements import (
    BatchImages,
    BatchResults,
    ClassMask,
    DecodedImage,
    GroundTruth,
    ImageInfo,
    ImageRef,
    Instance,
    InstanceResult,
    SemanticResult,
    ShardSummary,
    SpillRef,
    StageError,
    batch_id,
)
from transforms.rows import AssembleTableRows, _split_batch
from transforms.spill import read_spill

NAMES = {0: "sky", 5: "vehicle", 6: "pedestrian"}


def _decoded(image_id, error=None, width=4, height=2, ground_truth=None):
    ref = ImageRef(image_id, f"/data/{image_id}.tfrecord", 3)
    pixels = None if error else np.zeros((height, width, 3), np.uint8)
    return DecodedImage(ref, pixels, width, height, "f.jpg", "sid", "abc", ground_truth, error)


def _instance(class_id, score):
    return Instance(class_id, score, 1.0, 0.0, 2.0, 1.0, 2, "rle")


def _collect(rows):
    tables = {}
    for bundle in rows:
        for table, table_rows in bundle.tables.items():
            tables.setdefault(table, []).extend(table_rows)
        if bundle.spills:
            tables.setdefault("_spills", []).extend((bundle.partition_key, bundle.spills))
    return tables


def _batch_results(decoded_batches, items):
    """Per-image results (and SpillRefs) as a segmentation transform emits them: per batch."""
    out = []
    for batch in decoded_batches:
        ids = {image.ref.image_id for image in batch}
        results = tuple(r for r in items if not isinstance(r, SpillRef) and r.image_id in ids)
        spills = [
            r for r in items if isinstance(r, SpillRef) and r.partition_key == batch[0].ref.source
        ]
        out.append(BatchResults(batch_id(batch), results, spills[0] if spills else None))
    return out


def _run(decoded_batches, semantic, instance, check, evaluate=False, spill_dir=None):
    with TestPipeline() as p:
        inputs = {
            "decoded": p | "D" >> beam.Create(decoded_batches),
            "summaries": p | "S" >> beam.Create([ShardSummary("/data/x.tfrecord", 2, 0, 10)]),
        }
        if semantic is not None:
            inputs["semantic"] = p | "Sem" >> beam.Create(_batch_results(decoded_batches, semantic))
        if instance is not None:
            inputs["instance"] = p | "Inst" >> beam.Create(
                _batch_results(decoded_batches, instance)
            )
        rows = inputs | AssembleTableRows(
            NAMES,
            semantic_enabled=semantic is not None,
            instance_enabled=instance is not None,
            evaluate=evaluate,
            spill_dir=spill_dir,
        )
        assert_that(rows, lambda actual: check(_collect(actual)))


def test_good_image_gives_rows_in_every_table():
    semantic = [SemanticResult("a", 2, 4, (ClassMask(0, 6, "r0"), ClassMask(5, 2, "r5")))]
    instance = [InstanceResult("a", 2, 4, (_instance(5, 0.9), _instance(6, 0.7)))]

    def check(tables):
        assert [r["image_id"] for r in tables["images"]] == ["a"]
        assert tables["images"][0]["num_instances"] == 2
        assert "errors" not in tables
        assert {
            (r["class_id"], r["class_name"], r["pixel_count"]) for r in tables["semantic_masks"]
        } == {
            (0, "sky", 6),
            (5, "vehicle", 2),
        }
        counts = {r["class_id"]: r for r in tables["class_counts"]}
        # Pixel counts come from the semantic model, instance counts from the instance model;
        # pedestrian was only seen by the instance model.
        assert (counts[0]["pixel_count"], counts[0]["instance_count"]) == (6, 0)
        assert (counts[5]["pixel_count"], counts[5]["instance_count"]) == (2, 1)
        assert (counts[6]["pixel_count"], counts[6]["instance_count"]) == (0, 1)
        assert counts[0]["pixel_fraction"] == pytest.approx(6 / 8)
        assert [r["instance_id"] for r in tables["instances"]] == ["a-0000", "a-0001"]
        assert tables["shards"][0]["num_records"] == 2

    _run([(_decoded("a"),)], semantic, instance, check)


def test_decode_error_gives_one_error_row_and_nothing_else():
    error = StageError("decode", "TruncatedImage", "image file is truncated")

    def check(tables):
        assert "images" not in tables
        assert len(tables["errors"]) == 1
        row = tables["errors"][0]
        assert (row["image_id"], row["stage"], row["error_type"], row["record_index"]) == (
            "b",
            "decode",
            "TruncatedImage",
            3,
        )

    _run([(_decoded("b", error),)], [], [], check)


def test_inference_error_wins_over_partial_results():
    semantic = [SemanticResult("c", 2, 4, (), StageError("infer", "ResourceExhausted", "oom"))]
    instance = [InstanceResult("c", 2, 4, (_instance(5, 0.9),))]

    def check(tables):
        assert "images" not in tables
        assert "instances" not in tables
        assert [r["error_type"] for r in tables["errors"]] == ["ResourceExhausted"]

    _run([(_decoded("c"),)], semantic, instance, check)


def test_missing_model_result_becomes_an_error_row():
    def check(tables):
        assert [(r["image_id"], r["error_type"]) for r in tables["errors"]] == [
            ("d", "MissingResult")
        ]

    _run([(_decoded("d"),)], [], None, check)


def test_disabled_instance_model_gives_zero_instances():
    semantic = [SemanticResult("e", 2, 4, (ClassMask(0, 8, "r"),))]

    def check(tables):
        assert tables["images"][0]["num_instances"] == 0
        assert tables["instances"] == []
        assert [r["instance_count"] for r in tables["class_counts"]] == [0]

    _run([(_decoded("e"),)], semantic, None, check)


def test_inputs_must_match_enabled_models():
    with pytest.raises(ValueError, match="needs at least one enabled model"):
        AssembleTableRows(NAMES, semantic_enabled=False, instance_enabled=False)


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_evaluate_adds_metrics_and_ground_truth_rows():
    # 2x4 image, all sky; one ground-truth vehicle... of zero predicted instances.
    vehicle = np.zeros((2, 4), np.uint8)
    vehicle[:, 3] = 1
    truth = GroundTruth(_png(np.zeros((2, 4))), (_png(vehicle),), (5,))
    sky_rle = coco_mask.encode(np.asfortranarray(np.ones((2, 4), np.uint8)))["counts"].decode()
    semantic = [SemanticResult("g", 2, 4, (ClassMask(0, 8, sky_rle),))]
    bad = GroundTruth(b"not a png", (), ())

    def check(tables):
        assert [r["image_id"] for r in tables["images"]] == ["g"]
        metrics = {(r["class_id"], r["metric"]): r["value"] for r in tables["metrics"]}
        assert metrics[(None, "pixel_accuracy")] == 1.0
        assert metrics[(5, "missed_instances")] == 1.0
        assert [(r["class_name"], r["area"]) for r in tables["ground_truth"]] == [("vehicle", 2)]
        assert [(r["image_id"], r["error_type"]) for r in tables["errors"]] == [
            ("h", "InvalidGroundTruth")
        ]

    semantic.append(SemanticResult("h", 2, 4, (ClassMask(0, 8, sky_rle),)))
    instance = [InstanceResult("g", 2, 4, ()), InstanceResult("h", 2, 4, ())]
    batch = (_decoded("g", ground_truth=truth), _decoded("h", ground_truth=bad))
    _run([batch], semantic, instance, check, evaluate=True)


def test_ground_truth_is_ignored_without_evaluate():
    bad = GroundTruth(b"not a png", (), ())

    def check(tables):
        assert [r["image_id"] for r in tables["images"]] == ["i"]
        assert "metrics" not in tables
        assert "errors" not in tables

    _run([(_decoded("i", ground_truth=bad),)], [SemanticResult("i", 2, 4, ())], None, check)


def test_spilled_results_give_counts_but_no_mask_rows_and_pass_their_references_on():
    # As the segmentation transforms emit them with a spill directory: rle None, plus a SpillRef.
    semantic = [
        SemanticResult("s", 2, 4, (ClassMask(0, 6, None), ClassMask(5, 2, None))),
        SpillRef("semantic_masks", "/spill/semantic_masks/s.arrow", 2, "/data/s.tfrecord"),
    ]
    instance = [
        InstanceResult("s", 2, 4, (_instance(5, 0.9)._replace(rle=None),)),
        SpillRef("instances", "/spill/instances/s.arrow", 1, "/data/s.tfrecord"),
    ]

    def check(tables):
        assert tables["images"][0]["num_instances"] == 1
        assert tables["semantic_masks"] == []
        assert tables["instances"] == []
        counts = {
            r["class_id"]: (r["pixel_count"], r["instance_count"]) for r in tables["class_counts"]
        }
        assert counts == {0: (6, 0), 5: (2, 1)}
        # The references travel with their batch's image rows, keyed like them.
        keys, refs = tables["_spills"][0::2], tables["_spills"][1::2]
        assert keys == ["/data/s.tfrecord"]
        assert sorted(ref.table for ref in refs[0]) == ["instances", "semantic_masks"]

    _run([(_decoded("s"),)], semantic, instance, check)


def test_rows_are_keyed_by_their_batch_source():
    # Two records of one TFRecord shard: all of their rows go to the same output file,
    # in one TableRows for the batch.
    batch = (_decoded("k1"), _decoded("k2", StageError("decode", "Truncated", "cut")))
    batch = (batch[0], batch[1]._replace(ref=ImageRef("k2", batch[0].ref.source, 4)))
    semantic = [BatchResults("k1", (SemanticResult("k1", 2, 4, ()),))]
    with TestPipeline() as p:
        inputs = {
            "decoded": p | "D" >> beam.Create([batch]),
            "summaries": p | "S" >> beam.Create([]),
            "semantic": p | "Sem" >> beam.Create(semantic),
        }
        rows = inputs | AssembleTableRows(NAMES, semantic_enabled=True, instance_enabled=False)
        keys = rows | beam.Map(
            lambda r: (
                r.partition_key,
                {t: [row["image_id"] for row in v] for t, v in r.tables.items()},
            )
        )
        assert_that(
            keys,
            lambda actual: (
                actual
                == [
                    (
                        "/data/k1.tfrecord",
                        {
                            "images": ["k1"],
                            "semantic_masks": [],
                            "class_counts": [],
                            "instances": [],
                            "errors": ["k2"],
                        },
                    )
                ]
                or pytest.fail(f"keys {actual}")
            ),
        )


def test_spill_dir_spills_the_batch_rows_and_passes_only_references_on(tmp_path):
    spill_dir = str(tmp_path / "_spill")
    batch = (_decoded("s1"), _decoded("s2"), _decoded("s3", StageError("decode", "Bad", "x")))
    batch = tuple(d._replace(ref=d.ref._replace(source="/data/s.tfrecord")) for d in batch)
    semantic = [
        SemanticResult("s1", 2, 4, (ClassMask(0, 6, None), ClassMask(5, 2, None))),
        SemanticResult("s2", 2, 4, (ClassMask(0, 8, None),)),
        SpillRef("semantic_masks", "/spill/semantic_masks/s1.arrow", 3, "/data/s.tfrecord"),
    ]
    instance = [
        InstanceResult("s1", 2, 4, (_instance(5, 0.9)._replace(rle=None),)),
        InstanceResult("s2", 2, 4, (), StageError("infer", "ResourceExhausted", "oom")),
    ]

    def check(tables):
        # No rows travel: only references, the models' and the join's own.
        assert set(tables) == {"_spills", "shards"}  # Shard rows are never spilled.
        key, refs = tables["_spills"]
        assert key == "/data/s.tfrecord"
        by_table = {ref.table: ref for ref in refs}
        assert sorted(by_table) == ["class_counts", "errors", "images", "semantic_masks"]
        assert by_table["semantic_masks"].path == "/spill/semantic_masks/s1.arrow"
        assert {ref.partition_key for ref in refs} == {"/data/s.tfrecord"}
        images = read_spill(by_table["images"]).to_pylist()
        assert [(r["image_id"], r["num_instances"]) for r in images] == [("s1", 1)]
        errors = read_spill(by_table["errors"]).to_pylist()
        assert [(r["image_id"], r["stage"]) for r in errors] == [("s2", "infer"), ("s3", "decode")]
        counts = read_spill(by_table["class_counts"]).to_pylist()
        assert [(r["class_id"], r["pixel_count"], r["instance_count"]) for r in counts] == [
            (0, 6, 0),
            (5, 2, 1),
        ]
        assert by_table["images"].path == f"{spill_dir}/images/s1.arrow"
        # The join's own inputs crossed its shuffle as files too.
        join_inputs = tmp_path / "_spill" / "_join_inputs"
        assert sorted(p.relative_to(join_inputs).as_posix() for p in join_inputs.rglob("*.*")) == [
            "images/s1.json",
            "instance/s1.json",
            "semantic/s1.json",
        ]

    _run([batch], semantic, instance, check, spill_dir=spill_dir)


def test_evaluate_cannot_spill():
    with pytest.raises(ValueError, match="cannot spill with evaluate"):
        AssembleTableRows(NAMES, True, True, evaluate=True, spill_dir="/tmp/spill")


def test_a_batch_reaching_the_join_twice_fails_the_run():
    images = BatchImages("b1", "/data/b.tfrecord", (_info("b1"),))
    with pytest.raises(RuntimeError, match="lost or duplicated data"):
        _split_batch("b1", [("images", images), ("images", images)])
    with pytest.raises(RuntimeError, match="with 0 decode records"):
        _split_batch("b1", [("semantic", BatchResults("b1", ()))])


def test_a_result_delivered_twice_becomes_an_error_row_not_two_images():
    semantic = [SemanticResult("t", 2, 4, (ClassMask(0, 8, "r"),))] * 2

    def check(tables):
        assert "images" not in tables
        assert [(r["image_id"], r["error_type"]) for r in tables["errors"]] == [
            ("t", "MissingResult")
        ]

    _run([(_decoded("t"),)], semantic, None, check)


def _info(image_id):
    return ImageInfo(ImageRef(image_id, "/data/b.tfrecord", 0), 4, 2, "f.jpg", "", "")

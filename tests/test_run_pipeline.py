"""End to end: the command line on generated shards, tables read back by real readers.

One module-scoped run of `run_pipeline.py` (a subprocess, as a user runs it)
with the bundled models serves most checks; the checks themselves use
independent readers: pyarrow, DuckDB and pycocotools.
"""

import io
import json
import os
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from PIL import Image
from pycocotools import mask as coco_mask

from models.loader import load_model
from models.spec import BUNDLED_INSTANCE_SPEC, BUNDLED_SEMANTIC_SPEC, load_model_spec
from models.synthetic import write_shards
from pipeline import schemas
from transforms.elements import make_image_id

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_GOOD = 8


def _run_cli(*args, check=True):
    completed = subprocess.run(
        [sys.executable, os.path.join(REPO, "run_pipeline.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    if check and completed.returncode != 0:
        pytest.fail(f"run_pipeline.py {args} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed


def _corrupt_shard(path, num_records, corrupt_indices):
    """A shard of small real JPEGs, some replaced by garbage image bytes."""
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(num_records):
            if i in corrupt_indices:
                encoded = b"\xff\xd8\xff\xe0 not really a jpeg " + bytes(rng.integers(0, 255, 40))
            else:
                buffer = io.BytesIO()
                pixels = rng.integers(0, 255, (48 + i, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(buffer, format="JPEG")
                encoded = buffer.getvalue()
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
                "image/filename": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[f"img{i}.jpg".encode()])
                ),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    paths = write_shards(directory, num_images=NUM_GOOD, seed=99, images_per_shard=4)
    return directory, [str(p) for p in paths]


@pytest.fixture(scope="module")
def run_dir(shards, tmp_path_factory):
    directory, _ = shards
    output = tmp_path_factory.mktemp("run") / "out"
    completed = _run_cli("--input", f"{directory}/*.tfrecord", "--output", str(output))
    assert "8 images, 0 errors" in completed.stdout, completed.stdout
    return output


def _table(run_dir, name):
    return pq.read_table(run_dir / name)


def test_run_writes_all_tables_manifest_and_success(run_dir, shards):
    assert (run_dir / "_SUCCESS").exists()
    for table, schema in schemas.TABLES.items():
        files = sorted((run_dir / table).glob("*.parquet"))
        assert files, f"no files for {table}"
        assert pq.read_schema(files[0]).equals(schema), table
    manifest = json.loads((run_dir / "manifest.json").read_text())
    ledger = manifest["ledger"]
    assert (ledger["records_read"], ledger["images"], ledger["errors"]) == (NUM_GOOD, NUM_GOOD, 0)
    assert manifest["status"] == "succeeded"
    assert manifest["models"]["semantic"]["fingerprint"]
    assert manifest["library_versions"]["apache-beam"] == "2.77.0"
    assert not (run_dir / "_staging").exists()


def test_image_ids_are_the_documented_hash(run_dir, shards):
    _, paths = shards
    expected = {make_image_id(p, i) for p in paths for i in range(4)}
    assert set(_table(run_dir, "images").column("image_id").to_pylist()) == expected


def test_duckdb_reads_every_table(run_dir):
    for table in schemas.TABLES:
        count = duckdb.sql(
            f"select count(*) from read_parquet('{run_dir}/{table}/*.parquet')"
        ).fetchall()[0][0]
        assert count == _table(run_dir, table).num_rows
    per_image = duckdb.sql(
        f"""
        select i.image_id, i.width * i.height as pixels, sum(c.pixel_count) as counted
        from read_parquet('{run_dir}/images/*.parquet') i
        join read_parquet('{run_dir}/class_counts/*.parquet') c using (image_id)
        group by all
        """
    ).fetchall()
    assert len(per_image) == NUM_GOOD
    # The semantic model classes every pixel exactly once.
    assert all(pixels == counted for _, pixels, counted in per_image)
    instance_counts = duckdb.sql(
        f"""
        select i.num_instances, count(n.instance_id)
        from read_parquet('{run_dir}/images/*.parquet') i
        left join read_parquet('{run_dir}/instances/*.parquet') n using (image_id)
        group by i.image_id, i.num_instances
        """
    ).fetchall()
    assert all(a == b for a, b in instance_counts)


def _decoded_images(shard_paths):
    """image_id -> RGB array, decoded by TensorFlow (independent of the pipeline's Pillow path)."""
    images = {}
    for path in shard_paths:
        for index, record in enumerate(tf.data.TFRecordDataset(path)):
            parsed = tf.io.parse_single_example(
                record, {"image/encoded": tf.io.FixedLenFeature([], tf.string)}
            )
            images[make_image_id(path, index)] = tf.io.decode_jpeg(
                parsed["image/encoded"], dct_method="INTEGER_ACCURATE"
            ).numpy()
    return images


def test_rles_decode_to_exactly_the_models_predictions(run_dir, shards):
    _, paths = shards
    images = _decoded_images(paths)
    semantic = load_model(load_model_spec(BUNDLED_SEMANTIC_SPEC, "semantic"))
    instance = load_model(load_model_spec(BUNDLED_INSTANCE_SPEC, "instance"))
    ids = sorted(images)
    class_maps = dict(zip(ids, semantic.predict([images[i] for i in ids]), strict=True))
    predictions = dict(zip(ids, instance.predict([images[i] for i in ids]), strict=True))

    masks = _table(run_dir, "semantic_masks").to_pylist()
    assert {r["image_id"] for r in masks} == set(ids)
    for row in masks:
        decoded = coco_mask.decode({"size": [row["height"], row["width"]], "counts": row["rle"]})
        expected = class_maps[row["image_id"]] == row["class_id"]
        np.testing.assert_array_equal(decoded.astype(bool), expected)
        assert row["pixel_count"] == int(expected.sum())

    rows = sorted(_table(run_dir, "instances").to_pylist(), key=lambda r: r["instance_id"])
    assert rows, "the bundled instance model found no instances in 8 street scenes"
    by_image = {}
    for row in rows:
        by_image.setdefault(row["image_id"], []).append(row)
    for image_id, prediction in predictions.items():
        found = by_image.get(image_id, [])
        assert len(found) == len(prediction.class_ids)
        height, width = images[image_id].shape[:2]
        for row, crop, (top, left), class_id in zip(
            found, prediction.mask_crops, prediction.mask_offsets, prediction.class_ids, strict=True
        ):
            expected = np.zeros((height, width), bool)
            expected[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
            decoded = coco_mask.decode({"size": [height, width], "counts": row["rle"]})
            np.testing.assert_array_equal(decoded.astype(bool), expected)
            assert row["class_id"] == class_id
            assert row["area"] == int(expected.sum())
            ys, xs = np.nonzero(expected)
            assert (row["bbox_x"], row["bbox_y"]) == (xs.min(), ys.min())
            assert (row["bbox_w"], row["bbox_h"]) == (
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            )


def test_rerun_into_same_output_gives_same_rows_and_no_stale_files(run_dir, shards):
    directory, _ = shards
    before = {t: sorted(map(str, _table(run_dir, t).to_pylist())) for t in schemas.TABLES}
    files_before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*.parquet"))
    _run_cli("--input", f"{directory}/*.tfrecord", "--output", str(run_dir))
    after = {t: sorted(map(str, _table(run_dir, t).to_pylist())) for t in schemas.TABLES}
    assert before == after
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*.parquet")) == files_before


def test_three_corrupt_images_among_twenty(tmp_path):
    _corrupt_shard(tmp_path / "mixed.tfrecord", 20, {3, 9, 15})
    output = tmp_path / "out"
    completed = _run_cli(
        "--input", str(tmp_path / "mixed.tfrecord"), "--output", str(output), "--batch_size", "4"
    )
    assert "20 from 1 files: 17 images, 3 errors" in completed.stdout, completed.stdout
    errors = _table(output, "errors").to_pylist()
    assert sorted(r["record_index"] for r in errors) == [3, 9, 15]
    assert {r["stage"] for r in errors} == {"decode"}
    assert _table(output, "images").num_rows == 17
    assert (output / "_SUCCESS").exists()


def test_multiprocessing_direct_runner_gives_the_same_rows(run_dir, shards, tmp_path):
    directory, _ = shards
    output = tmp_path / "mp"
    _run_cli(
        "--input",
        f"{directory}/*.tfrecord",
        "--output",
        str(output),
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    )
    for table in schemas.TABLES:
        assert sorted(map(str, _table(output, table).to_pylist())) == sorted(
            map(str, _table(run_dir, table).to_pylist())
        ), table


def test_one_bundle_at_a_time_gives_the_same_rows_as_the_threaded_default(
    run_dir, shards, tmp_path
):
    # run_dir ran with segbeam's default, one bundle thread per core (2 or more here
    # whenever the machine has 2 cores); Beam's own default runs one bundle at a time.
    directory, _ = shards
    output = tmp_path / "one_bundle"
    _run_cli(
        "--input", f"{directory}/*.tfrecord", "--output", str(output), "--direct_num_workers=1"
    )
    cores = os.cpu_count() or 1
    if cores >= 2:
        beam_options = json.loads((run_dir / "manifest.json").read_text())["beam_options"]
        assert beam_options["direct_running_mode"] == "multi_threading"
        assert beam_options["direct_num_workers"] == min(cores, 4)
    for table in schemas.TABLES:
        assert sorted(map(str, _table(output, table).to_pylist())) == sorted(
            map(str, _table(run_dir, table).to_pylist())
        ), table


def test_bad_options_fail_before_any_work(tmp_path):
    completed = _run_cli(
        "--input",
        str(tmp_path / "nothing-*.tfrecord"),
        "--output",
        str(tmp_path / "o"),
        check=False,
    )
    assert completed.returncode == 2
    assert "matches no file" in completed.stderr or "matched no file" in completed.stderr
    assert not (tmp_path / "o").exists()

    completed = _run_cli("--batch_size", "0", "--output", str(tmp_path / "o"), check=False)
    assert completed.returncode == 2
    assert "--batch_size must be >= 1" in completed.stderr


def test_help_lists_options_with_defaults():
    completed = _run_cli("--help")
    for flag in ("--input", "--output", "--semantic_model", "--instance_model", "--batch_size"):
        assert flag in completed.stdout
    assert "--direct_num_workers" in completed.stdout
    assert "Default: 8" in completed.stdout


def test_incremental_rerun_skips_everything_already_done(run_dir, shards, tmp_path):
    directory, _ = shards
    output = tmp_path / "next-night"
    completed = _run_cli(
        "--input",
        f"{directory}/*.tfrecord",
        "--output",
        str(output),
        "--skip_existing",
        f"{run_dir.parent}/*",
    )
    assert "0 images, 0 errors, 8 skipped" in completed.stdout, completed.stdout
    skipped = _table(output, "skipped")
    assert sorted(skipped.column("image_id").to_pylist()) == sorted(
        _table(run_dir, "images").column("image_id").to_pylist()
    )
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["ledger"]["skipped"] == NUM_GOOD

"""Tests for transforms/read_tfds.py: TFDS shards read through ReadShards.

Expected records are computed independently: scenes rendered directly with
`scene_for_index`, encoded with Pillow, masks decoded with Pillow, image ids
hashed here with hashlib.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow_datasets as tfds
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from etils import epath
from PIL import Image
from pycocotools import mask as coco_mask

from models.synthetic_render import scene_for_index
from models.tfds_street_scenes import TEST_SEED, prepare
from pipeline.tfds_inputs import plan_tfds_units
from tests.reliability.runs import REPO_ROOT, build_tiny_models
from transforms.elements import (
    STAGE_READ,
    EncodedImage,
    GroundTruth,
    ImageRef,
    ShardSummary,
    StageError,
    TfdsFeatureKeys,
)
from transforms.read import ReadShards
from transforms.read_tfds import read_tfds_shard, record_from_example

TINY_SIZE = (96, 128)
STREET_SOURCE = (
    "tfds://segbeam_street_scenes/tiny:1.0.0/test/"
    "segbeam_street_scenes-test.tfrecord-{:05d}-of-00002"
)


def _id(source: str, index: int) -> str:
    # Computed here, not with make_image_id, so a change to the id scheme shows up.
    return hashlib.sha256(f"{source}#{index}".encode()).hexdigest()[:20]


def _encode(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": 90} if image_format == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _decoded(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image).astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tfds")
    prepare(str(directory), "tiny", num_shards=2)
    return directory


def _record_view(record: EncodedImage) -> tuple:
    """What a test compares: the record's identity, image bytes and decoded ground truth."""
    truth = record.ground_truth
    return (
        record.ref,
        record.filename,
        record.source_id,
        hashlib.sha256(record.encoded).hexdigest(),
        _decoded(truth.semantic_png),
        tuple(_decoded(mask) for mask in truth.instance_mask_pngs),
        truth.instance_class_ids,
        record.error,
    )


def _expected_street_view(shard: int, index: int) -> tuple:
    scene_index = 2 * shard + index
    scene = scene_for_index(TEST_SEED, scene_index, TINY_SIZE)
    source = STREET_SOURCE.format(shard)
    return (
        ImageRef(_id(source, index), source, index),
        f"scene_{TEST_SEED}_{scene_index:06d}.jpg",
        "",
        hashlib.sha256(_encode(scene.image, "JPEG")).hexdigest(),
        scene.class_map.tobytes(),
        tuple(mask.astype(np.uint8).tobytes() for mask in scene.instance_masks),
        tuple(int(c) for c in scene.instance_class_ids),
        None,
    )


def test_read_shards_reads_the_bundled_tfds_dataset_with_ground_truth(data_dir):
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(data_dir))
    version_dir = data_dir / "segbeam_street_scenes/tiny/1.0.0"
    sizes = [
        os.path.getsize(version_dir / f"segbeam_street_scenes-test.tfrecord-{s:05d}-of-00002")
        for s in (0, 1)
    ]
    expected_batches = [tuple(_expected_street_view(s, i) for i in (0, 1)) for s in (0, 1)]
    expected_summaries = [ShardSummary(STREET_SOURCE.format(s), 2, 0, sizes[s]) for s in (0, 1)]

    def check_batches(batches: list[tuple[EncodedImage, ...]]) -> None:
        equal_to(expected_batches)([tuple(_record_view(r) for r in batch) for batch in batches])

    with TestPipeline() as p:
        out = p | beam.Create(list(units)) | ReadShards(batch_size=8)
        assert_that(out["batches"], check_batches, label="CheckBatches")
        assert_that(out["summaries"], equal_to(expected_summaries), label="CheckSummaries")


def test_batches_never_exceed_batch_size(data_dir):
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(data_dir))
    with TestPipeline() as p:
        out = p | beam.Create(list(units)) | ReadShards(batch_size=1)
        sizes = out["batches"] | beam.Map(len)
        assert_that(sizes, equal_to([1, 1, 1, 1]))


class SegbeamTestCityscapesStyle(tfds.core.GeneratorBasedBuilder):
    """Cityscapes-like features: image_left, segmentation_label, image_id, plus image_right."""

    VERSION = tfds.core.Version("1.0.0")

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # See models/tfds_street_scenes/builder.py: TFDS's own lookup needs a
        # package that is not installed.
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image_left": tfds.features.Image(shape=(None, None, 3)),
                    "image_right": tfds.features.Image(shape=(None, None, 3)),
                    "segmentation_label": tfds.features.Image(shape=(None, None, 1)),
                    "image_id": tfds.features.Text(),
                }
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator]:
        return {"validation": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for index in range(3):
            yield index, _city_example(index)


def _city_example(index: int) -> dict[str, Any]:
    pixels = np.full((6, 8, 3), 40 * index, np.uint8)
    labels = np.zeros((6, 8), np.uint8)
    labels[:, index:] = 7 + index
    return {
        "image_left": _encode(pixels, "PNG"),
        "image_right": _encode(pixels[::-1], "PNG"),
        "segmentation_label": _encode(labels, "PNG"),
        "image_id": f"aachen_{index:06d}",
    }


def test_read_shards_maps_a_cityscapes_style_dataset(tmp_path):
    builder = SegbeamTestCityscapesStyle(data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    units = plan_tfds_units(["tfds:segbeam_test_cityscapes_style:validation"], str(tmp_path))
    source = (
        "tfds://segbeam_test_cityscapes_style:1.0.0/validation/"
        "segbeam_test_cityscapes_style-validation.tfrecord-00000-of-00001"
    )
    assert [unit.paths for unit in units] == [(source,)]
    expected = []
    for index in range(3):
        example = _city_example(index)
        truth = GroundTruth(example["segmentation_label"], (), ())
        ref = ImageRef(_id(source, index), source, index)
        expected.append(EncodedImage(ref, example["image_left"], "", example["image_id"], truth))

    with TestPipeline() as p:
        out = p | beam.Create(list(units)) | ReadShards(batch_size=8)
        records = out["batches"] | beam.FlatMap(lambda batch: batch)
        assert_that(records, equal_to(expected), label="CheckRecords")
        assert_that(
            out["summaries"] | beam.Map(lambda s: (s.source, s.num_records, s.num_read_errors)),
            equal_to([(source, 3, 0)]),
            label="CheckSummaries",
        )


LVIS_KEYS = TfdsFeatureKeys("image", None, "image/id", None, "objects", "segmentation", "label")
COCO_KEYS = TfdsFeatureKeys("image", "image/filename", "image/id", None, None, None, None)


def test_maps_an_lvis_style_example_with_0_255_masks_and_an_integer_id():
    masks = np.array([b"png-a", b"png-b"], dtype=object)
    example = {
        "image": b"jpeg-bytes",
        "image/id": np.int64(139),
        "objects": {"segmentation": masks, "label": np.array([3, 1187])},
    }
    record = record_from_example("tfds://lvis:1.3.0/minival/f", 4, example, LVIS_KEYS)
    ref = ImageRef(_id("tfds://lvis:1.3.0/minival/f", 4), "tfds://lvis:1.3.0/minival/f", 4)
    truth = GroundTruth(None, (b"png-a", b"png-b"), (3, 1187))
    assert record == EncodedImage(ref, b"jpeg-bytes", "", "139", truth)


def test_maps_an_lvis_style_example_without_objects():
    example = {
        "image": b"jpeg-bytes",
        "image/id": np.int64(1),
        "objects": {"segmentation": np.array([], dtype=object), "label": np.array([], np.int64)},
    }
    record = record_from_example("s", 0, example, LVIS_KEYS)
    assert record.ground_truth == GroundTruth(None, (), ())


def test_maps_a_coco_style_example_without_ground_truth():
    example = {
        "image": b"jpeg",
        "image/filename": b"000000397133.jpg",
        "image/id": np.int64(397133),
        "objects": {"bbox": np.zeros((1, 4)), "label": np.array([0])},
    }
    record = record_from_example("s", 0, example, COCO_KEYS)
    assert (record.filename, record.source_id, record.ground_truth) == (
        "000000397133.jpg",
        "397133",
        None,
    )


def test_an_undecodable_filename_byte_is_replaced_not_fatal():
    example = {"image": b"jpeg", "image/filename": b"caf\xe9.jpg", "image/id": np.int64(1)}
    assert record_from_example("s", 0, example, COCO_KEYS).filename == "caf\ufffd.jpg"


def test_an_empty_image_is_an_error_record():
    record = record_from_example("s", 2, {"image": b"", "image/id": 1}, COCO_KEYS)
    assert record.encoded is None
    assert record.ref == ImageRef(_id("s", 2), "s", 2)
    assert record.error.stage == STAGE_READ
    assert record.error.error_type == "MissingFeature"
    assert "image feature 'image' is empty" in record.error.message


def _copy(data_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    return copy


def test_a_dataset_removed_after_planning_is_one_error_row_per_shard(data_dir, tmp_path):
    copy = _copy(data_dir, tmp_path)
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(copy))
    shutil.rmtree(copy)
    items = list(read_tfds_shard(units[0].paths[0], units[0].tfds))
    assert len(items) == 2
    failed, summary = items
    assert failed.ref == ImageRef(_id(STREET_SOURCE.format(0), 0), STREET_SOURCE.format(0), 0)
    assert failed.error.error_type == "UnreadableDataset"
    assert str(copy) in failed.error.message
    assert summary == ShardSummary(STREET_SOURCE.format(0), 1, 1, 0)


def test_a_dataset_prepared_again_with_other_shards_is_refused(data_dir, tmp_path):
    copy = _copy(data_dir, tmp_path)
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(copy))
    shutil.rmtree(copy / "segbeam_street_scenes")
    prepare(str(copy), "tiny", num_shards=1)
    failed, summary = list(read_tfds_shard(units[1].paths[0], units[1].tfds))
    assert failed.error.error_type == "UnreadableDataset"
    assert "prepared again after this run was planned" in failed.error.message
    assert summary == ShardSummary(STREET_SOURCE.format(1), 1, 1, 0)


def test_a_corrupt_record_costs_the_rest_of_its_shard(data_dir, tmp_path):
    copy = _copy(data_dir, tmp_path)
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(copy))
    shard_file = Path(units[0].tfds.file)
    data = bytearray(shard_file.read_bytes())
    data[-20] ^= 0xFF  # Inside the last record's payload: its CRC no longer matches.
    shard_file.write_bytes(bytes(data))
    items = list(read_tfds_shard(units[0].paths[0], units[0].tfds))
    good, failed, summary = items
    assert good.error is None
    assert good.ref.record_index == 0
    assert failed.ref.record_index == 1
    assert failed.error == StageError(STAGE_READ, "ReadFailed", failed.error.message)
    assert "failed at example 1" in failed.error.message
    assert summary == ShardSummary(STREET_SOURCE.format(0), 2, 1, len(data))


@pytest.fixture(scope="module")
def cli_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `run_pipeline.py` run (a subprocess, as a user runs it) on the tiny test split."""
    models = build_tiny_models(tmp_path_factory.mktemp("tiny_models"))
    output = tmp_path_factory.mktemp("run") / "out"
    argv = [
        "--input=tfds:segbeam_street_scenes:test",
        f"--tfds_data_dir={data_dir}",
        f"--output={output}",
        "--evaluate",
        *models.flags(),
    ]
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_pipeline.py"), *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "4 images, 0 errors" in completed.stdout, completed.stdout
    return output


def _rows(output: Path, table: str) -> list[dict]:
    return pq.read_table(output / table).to_pylist()


def test_cli_reads_the_tfds_split_into_the_images_table(cli_run):
    assert (cli_run / "_SUCCESS").exists()
    expected = []
    for scene_index in range(4):
        shard, index = divmod(scene_index, 2)
        source = STREET_SOURCE.format(shard)
        jpeg = _encode(scene_for_index(TEST_SEED, scene_index, TINY_SIZE).image, "JPEG")
        expected.append(
            {
                "image_id": _id(source, index),
                "source": source,
                "record_index": index,
                "filename": f"scene_{TEST_SEED}_{scene_index:06d}.jpg",
                "width": TINY_SIZE[1],
                "height": TINY_SIZE[0],
                "content_sha256": hashlib.sha256(jpeg).hexdigest(),
            }
        )
    rows = [{key: row[key] for key in expected[0]} for row in _rows(cli_run, "images")]
    assert sorted(rows, key=lambda r: r["image_id"]) == sorted(
        expected, key=lambda r: r["image_id"]
    )
    shards = {
        (r["source"], r["num_records"], r["num_read_errors"]) for r in _rows(cli_run, "shards")
    }
    assert shards == {(STREET_SOURCE.format(s), 2, 0) for s in (0, 1)}


def test_cli_evaluates_against_the_tfds_ground_truth(cli_run):
    truth = _rows(cli_run, "ground_truth")
    by_image: dict[str, list[dict]] = {}
    for row in truth:
        by_image.setdefault(row["image_id"], []).append(row)
    assert len(by_image) == 4
    for scene_index in range(4):
        shard, index = divmod(scene_index, 2)
        scene = scene_for_index(TEST_SEED, scene_index, TINY_SIZE)
        rows = sorted(
            by_image[_id(STREET_SOURCE.format(shard), index)], key=lambda r: r["instance_index"]
        )
        assert [r["class_id"] for r in rows] == scene.instance_class_ids.tolist()
        for row, mask in zip(rows, scene.instance_masks, strict=True):
            rle = {"size": [row["height"], row["width"]], "counts": row["rle"].encode()}
            np.testing.assert_array_equal(coco_mask.decode(rle).astype(bool), mask)
            assert row["area"] == int(mask.sum())
    accuracy = [r for r in _rows(cli_run, "metrics") if r["metric"] == "pixel_accuracy"]
    assert len([r for r in accuracy if r["scope"] == "image"]) == 4

"""Tests for pipeline/tfds_inputs.py: planning `tfds:` inputs and mapping TFDS features.

Planning runs on a tiny `segbeam_street_scenes` prepared into tmp_path. The
feature mapping is checked against the real feature specs TFDS's own builders
declare for COCO, VOC, Cityscapes, LVIS and Oxford-IIIT Pet (their data cannot
be downloaded here; their specs need no data).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from models.tfds_street_scenes import prepare
from pipeline.inputs import plan_work_units
from pipeline.tfds_inputs import (
    TfdsInput,
    feature_keys,
    is_tfds_pattern,
    parse_tfds_input,
    plan_tfds_units,
    tfds_source,
)
from transforms.elements import UNIT_TFDS, UNIT_TFRECORD, TfdsFeatureKeys, TfdsShard, WorkUnit

SHARD = "segbeam_street_scenes-test.tfrecord-{:05d}-of-00002"
SOURCE = "tfds://segbeam_street_scenes/tiny:1.0.0/test/" + SHARD


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tfds")
    prepare(str(directory), "tiny", num_shards=2)
    return directory


def _expected_test_units(data_dir: Path) -> list[WorkUnit]:
    version_dir = data_dir.resolve() / "segbeam_street_scenes" / "tiny" / "1.0.0"
    keys = TfdsFeatureKeys(
        "image", "filename", None, "segmentation_mask", "objects", "mask", "label"
    )
    return [
        WorkUnit(
            UNIT_TFDS,
            (SOURCE.format(shard),),
            TfdsShard(
                str(version_dir), str(version_dir / SHARD.format(shard)), "test", start, 2, keys
            ),
        )
        for shard, start in ((0, 0), (1, 2))
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("tfds:segbeam_street_scenes:test", TfdsInput("segbeam_street_scenes", None, None, "test")),
        ("tfds:coco/2017:1.1.0:validation", TfdsInput("coco", "2017", "1.1.0", "validation")),
        ("tfds:voc/2012:train", TfdsInput("voc", "2012", None, "train")),
        ("tfds:lvis:1.3.0:minival", TfdsInput("lvis", None, "1.3.0", "minival")),
        (
            "tfds:cityscapes/semantic_segmentation:validation",
            TfdsInput("cityscapes", "semantic_segmentation", None, "validation"),
        ),
    ],
)
def test_parses_tfds_inputs(pattern, expected):
    assert is_tfds_pattern(pattern)
    assert parse_tfds_input(pattern) == expected
    assert str(expected) == pattern


@pytest.mark.parametrize(
    "pattern",
    [
        "tfds:",
        "tfds:coco",  # No split.
        "tfds:coco/2017",  # No split: "2017" is the config.
        "tfds:coco:1.1:train",  # Incomplete version.
        "tfds:coco:train[:10%]",  # Split slices are not supported.
        "tfds:Coco:train",  # TFDS names are snake_case.
        "/data/tfds:coco:train",
    ],
)
def test_refuses_malformed_tfds_inputs(pattern):
    with pytest.raises(ValueError, match=r"tfds:NAME\[/CONFIG\]\[:VERSION\]:SPLIT"):
        parse_tfds_input(pattern)


def test_file_patterns_are_not_tfds_inputs():
    assert not is_tfds_pattern("/data/shards/*.tfrecord")
    assert not is_tfds_pattern("gs://bucket/tfds/coco")


def test_source_uri_names_dataset_config_version_split_and_file():
    assert tfds_source("coco", "2017", "1.1.0", "validation", "f-00001") == (
        "tfds://coco/2017:1.1.0/validation/f-00001"
    )
    assert tfds_source("lvis", None, "1.3.0", "minival", "f") == "tfds://lvis:1.3.0/minival/f"


def test_plans_one_unit_per_shard_file_with_default_config_and_version(data_dir):
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(data_dir))
    assert list(units) == _expected_test_units(data_dir)
    assert all(os.path.isfile(unit.tfds.file) for unit in units)


def test_explicit_config_and_version_plan_the_same_units(data_dir):
    units = plan_tfds_units(["tfds:segbeam_street_scenes/tiny:1.0.0:test"], str(data_dir))
    assert list(units) == _expected_test_units(data_dir)


def test_train_split_starts_count_examples_before_each_shard(data_dir):
    units = plan_tfds_units(["tfds:segbeam_street_scenes:train"], str(data_dir))
    assert [(u.tfds.start, u.tfds.num_examples) for u in units] == [(0, 4), (4, 4)]


def test_a_split_named_twice_is_planned_once(data_dir):
    twice = ["tfds:segbeam_street_scenes:test", "tfds:segbeam_street_scenes/tiny:test"]
    assert list(plan_tfds_units(twice, str(data_dir))) == _expected_test_units(data_dir)


def test_a_relative_data_dir_is_made_absolute(data_dir, monkeypatch):
    monkeypatch.chdir(data_dir.parent)
    units = plan_tfds_units(["tfds:segbeam_street_scenes:test"], data_dir.name)
    assert list(units) == _expected_test_units(data_dir)


def test_plan_work_units_puts_tfds_shards_after_files(data_dir, tmp_path):
    shard = tmp_path / "a.tfrecord"
    shard.write_bytes(b"")  # Planning only lists files; it reads none.
    patterns = ["tfds:segbeam_street_scenes:test", str(tmp_path / "*.tfrecord")]
    units = plan_work_units(patterns, batch_size=4, tfds_data_dir=str(data_dir))
    assert list(units) == [WorkUnit(UNIT_TFRECORD, (str(shard),)), *_expected_test_units(data_dir)]


def test_plan_work_units_with_only_tfds_inputs_matches_no_files(data_dir):
    units = plan_work_units(["tfds:segbeam_street_scenes:test"], 4, tfds_data_dir=str(data_dir))
    assert list(units) == _expected_test_units(data_dir)


def test_an_unprepared_dataset_says_where_it_looked_and_how_to_prepare_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not prepared") as raised:
        plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(empty))
    message = str(raised.value)
    assert f"not prepared in the TFDS data directory {empty}," in message
    assert f"python -m models.tfds_street_scenes --data_dir {empty}" in message
    assert "never downloads" in message


def test_an_unprepared_foreign_dataset_points_to_tfds_build(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"tfds build voc/2012 --data_dir {tmp_path}")):
        plan_tfds_units(["tfds:voc/2012:validation"], str(tmp_path))


@pytest.mark.parametrize(
    "pattern",
    ["tfds:segbeam_street_scenes/small:test", "tfds:segbeam_street_scenes:9.9.9:test"],
)
def test_an_unprepared_config_or_version_is_refused(data_dir, pattern):
    with pytest.raises(ValueError, match="not prepared"):
        plan_tfds_units([pattern], str(data_dir))


def test_an_unknown_split_lists_the_splits(data_dir):
    with pytest.raises(
        ValueError, match=r"no split 'validation'; its splits are \['test', 'train'\]"
    ):
        plan_tfds_units(["tfds:segbeam_street_scenes:validation"], str(data_dir))


def test_a_missing_shard_file_is_refused_before_any_work(data_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    (copy / "segbeam_street_scenes/tiny/1.0.0" / SHARD.format(1)).unlink()
    with pytest.raises(ValueError, match=r"is missing: the prepared copy .* is incomplete"):
        plan_tfds_units(["tfds:segbeam_street_scenes:test"], str(copy))


def _features(name: str, tmp_path: Path) -> tfds.features.FeaturesDict:
    # The builder's declared features; nothing is downloaded or prepared.
    return tfds.builder(name, data_dir=str(tmp_path)).info.features


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        # Boxes only: the image and its ids, no ground truth.
        ("coco/2017", TfdsFeatureKeys("image", "image/filename", "image/id", *[None] * 4)),
        ("coco/2017_panoptic", TfdsFeatureKeys("image", "image/filename", "image/id", *[None] * 4)),
        ("voc/2012", TfdsFeatureKeys("image", "image/filename", *[None] * 5)),
        (
            "cityscapes/semantic_segmentation",
            TfdsFeatureKeys("image_left", None, "image_id", "segmentation_label", None, None, None),
        ),
        (
            "oxford_iiit_pet",
            TfdsFeatureKeys("image", "file_name", None, "segmentation_mask", None, None, None),
        ),
        (
            "lvis",
            TfdsFeatureKeys("image", None, "image/id", None, "objects", "segmentation", "label"),
        ),
    ],
)
def test_maps_well_known_datasets_features(dataset, expected, tmp_path):
    assert feature_keys(_features(dataset, tmp_path), dataset) == expected


def test_a_single_rgb_image_under_another_name_is_the_image():
    features = tfds.features.FeaturesDict(
        {
            "photo": tfds.features.Image(shape=(None, None, 3)),
            "depth": tfds.features.Image(shape=(None, None, 1)),
        }
    )
    assert feature_keys(features, "x").image == "photo"


def test_a_dataset_without_an_rgb_image_is_refused():
    features = tfds.features.FeaturesDict(
        {
            "depth": tfds.features.Image(shape=(None, None, 1)),
            "label": tfds.features.ClassLabel(num_classes=3),
        }
    )
    with pytest.raises(ValueError, match=r"no feature segbeam can read .* are \['depth'\]"):
        feature_keys(features, "depth_only")


def test_two_rgb_images_without_a_known_name_are_ambiguous():
    rgb = tfds.features.Image(shape=(None, None, 3))
    features = tfds.features.FeaturesDict({"left": rgb, "right": rgb})
    with pytest.raises(ValueError, match=r"\['left', 'right'\]"):
        feature_keys(features, "stereo")


def test_instance_masks_without_labels_give_no_instance_ground_truth():
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "objects": tfds.features.Sequence({"mask": tfds.features.Image(shape=(None, None, 1))}),
        }
    )
    keys = feature_keys(features, "x")
    assert (keys.objects, keys.object_mask, keys.object_label) == (None, None, None)


def test_a_float_or_multichannel_mask_is_not_ground_truth():
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "segmentation_mask": tfds.features.Image(shape=(None, None, 3)),
            "segmentation": tfds.features.Image(shape=(None, None, 1), dtype=np.float32),
        }
    )
    assert feature_keys(features, "x").semantic is None

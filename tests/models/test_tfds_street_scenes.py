"""Tests for models/tfds_street_scenes: the street-scene generator as a TFDS builder.

The prepared dataset is read back with TFDS's own decoding (`as_dataset` with
no decoders), independently of segbeam's reader, and compared with scenes
rendered directly by `scene_for_index`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from models.synthetic import LABELS_PATH
from models.synthetic_render import scene_for_index
from models.tfds_street_scenes import (
    TEST_SEED,
    TINY,
    TRAIN_SEED,
    SegbeamStreetScenes,
    StreetScenesConfig,
    prepare,
)
from models.tfds_street_scenes.prepare import main
from pipeline.tfds_inputs import plan_tfds_units
from tests.models.project_labels import PROJECT_CLASS_NAMES

TINY_SIZE = (96, 128)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tfds")
    prepare(str(directory), "tiny", num_shards=2)
    return directory


def _examples(data_dir: Path, split: str) -> list[dict]:
    builder = tfds.builder_from_directory(str(data_dir / "segbeam_street_scenes/tiny/1.0.0"))
    return _examples_of(builder, split)


def _examples_of(builder: tfds.core.DatasetBuilder, split: str) -> list[dict]:
    """The split's examples, masks decoded by TFDS, the image kept as its JPEG bytes."""
    decoders = {"image": tfds.decode.SkipDecoding()}
    dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
    return list(dataset.as_numpy_iterator())


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_splits_hold_the_configured_counts_in_the_requested_shards(data_dir):
    builder = tfds.builder_from_directory(str(data_dir / "segbeam_street_scenes/tiny/1.0.0"))
    assert builder.info.full_name == "segbeam_street_scenes/tiny/1.0.0"
    assert builder.info.splits["train"].shard_lengths == [4, 4]
    assert builder.info.splits["test"].shard_lengths == [2, 2]


def test_labels_are_the_project_label_map(data_dir):
    builder = tfds.builder_from_directory(str(data_dir / "segbeam_street_scenes/tiny/1.0.0"))
    expected = LABELS_PATH.read_text().split()
    assert expected == list(PROJECT_CLASS_NAMES.values())
    assert builder.info.features["objects"]["label"].names == expected


@pytest.mark.parametrize(
    ("split", "seed", "count"), [("test", TEST_SEED, 4), ("train", TRAIN_SEED, 8)]
)
def test_examples_are_the_generator_scenes_in_index_order(data_dir, split, seed, count):
    examples = _examples(data_dir, split)
    assert len(examples) == count
    for index, example in enumerate(examples):
        scene = scene_for_index(seed, index, TINY_SIZE)
        assert example["filename"] == f"scene_{seed}_{index:06d}.jpg".encode()
        # PNG is lossless: the class map and instance masks come back exactly.
        np.testing.assert_array_equal(example["segmentation_mask"][:, :, 0], scene.class_map)
        np.testing.assert_array_equal(
            example["objects"]["mask"][:, :, :, 0], scene.instance_masks.astype(np.uint8)
        )
        np.testing.assert_array_equal(example["objects"]["label"], scene.instance_class_ids)
        # The image is stored as Pillow's quality-90 JPEG of the rendered pixels.
        assert example["image"] == _jpeg(scene.image)
        with Image.open(io.BytesIO(example["image"])) as image:
            assert (image.format, image.size) == ("JPEG", TINY_SIZE[::-1])


def test_scenes_have_instances_of_both_thing_classes(data_dir):
    # Guards the comparison above against vacuous success on empty scenes.
    labels = np.concatenate([e["objects"]["label"] for e in _examples(data_dir, "train")])
    assert set(labels.tolist()) == {5, 6}


def _digests(directory: Path) -> dict[str, str]:
    version_dir = directory / "segbeam_street_scenes/tiny/1.0.0"
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(version_dir.glob("*.tfrecord-*"))
    }


def test_preparing_again_elsewhere_gives_identical_shard_files(data_dir, tmp_path, capsys):
    main(["--data_dir", str(tmp_path), "--config", "tiny", "--num_shards", "2"])
    assert "Prepared segbeam_street_scenes/tiny/1.0.0" in capsys.readouterr().out
    digests = _digests(tmp_path)
    assert len(digests) == 4
    assert digests == _digests(data_dir)


def test_tiny_is_the_default_config():
    assert SegbeamStreetScenes.default_builder_config is TINY
    assert (TINY.num_train, TINY.num_test, TINY.size()) == (8, 4, TINY_SIZE)


def test_a_config_without_a_size_draws_one_per_scene():
    assert StreetScenesConfig(name="varied", num_train=1, num_test=1).size() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_train": 0}, "num_train and num_test must be >= 1"),
        ({"num_test": -1}, "num_train and num_test must be >= 1"),
        ({"height": 64}, "give both height and width"),
        ({"height": -5, "width": -5}, "give both height and width"),
    ],
)
def test_invalid_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StreetScenesConfig(name="bad", **kwargs)


def test_a_custom_config_is_prepared_under_its_own_name_and_planned(tmp_path):
    mini = StreetScenesConfig(name="mini", num_train=2, num_test=1, height=64, width=80)
    builder = prepare(str(tmp_path), mini)
    assert builder.data_dir == str(tmp_path / "segbeam_street_scenes" / "mini" / "1.0.0")
    (example,) = _examples_of(builder, "test")
    scene = scene_for_index(TEST_SEED, 0, (64, 80))
    np.testing.assert_array_equal(example["segmentation_mask"][:, :, 0], scene.class_map)
    units = plan_tfds_units(["tfds:segbeam_street_scenes/mini:test"], str(tmp_path))
    assert [u.paths for u in units] == [
        (
            "tfds://segbeam_street_scenes/mini:1.0.0/test/segbeam_street_scenes-test.tfrecord-00000-of-00001",
        )
    ]

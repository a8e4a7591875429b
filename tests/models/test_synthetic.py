"""Tests for the synthetic scene generator (models.synthetic and helpers)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models import synthetic
from models.synthetic import (
    encode_example,
    render_scene,
    sample_size,
    scene_for_index,
    write_shards,
)
from tests.models.project_labels import PROJECT_CLASS_NAMES

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string),
    "image/filename": tf.io.FixedLenFeature([], tf.string),
    "image/source_id": tf.io.FixedLenFeature([], tf.string),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/segmentation/class/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/object/mask": tf.io.VarLenFeature(tf.string),
    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
}


def _parse(path) -> list[dict]:
    out = []
    for raw in tf.data.TFRecordDataset(str(path)):
        parsed = tf.io.parse_single_example(raw, FEATURES)
        out.append(
            {
                k: tf.sparse.to_dense(v).numpy() if isinstance(v, tf.SparseTensor) else v.numpy()
                for k, v in parsed.items()
            }
        )
    return out


def _decode(png_or_jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png_or_jpeg)))


@pytest.fixture(scope="module")
def scenes():
    return [scene_for_index(3, i) for i in range(12)]


def test_same_seed_same_bytes(tmp_path):
    a = write_shards(tmp_path / "a", 3, seed=5, images_per_shard=2, size=(96, 128))
    b = write_shards(tmp_path / "b", 3, seed=5, images_per_shard=2, size=(96, 128))
    c = write_shards(tmp_path / "c", 3, seed=6, images_per_shard=2, size=(96, 128))
    assert [p.name for p in a] == [
        "scenes-00000-of-00002.tfrecord",
        "scenes-00001-of-00002.tfrecord",
    ]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_scene_does_not_depend_on_others():
    # Scene i is rendered from its own generator, so shard layout cannot change it.
    assert np.array_equal(scene_for_index(9, 4).image, scene_for_index(9, 4).image)
    assert not np.array_equal(
        scene_for_index(9, 4, (64, 64)).image, scene_for_index(9, 5, (64, 64)).image
    )


def test_sizes_vary_within_bounds():
    rng = np.random.default_rng(0)
    sizes = [sample_size(rng) for _ in range(300)]
    assert all(256 <= s <= 1024 for hw in sizes for s in hw)
    ratios = {round(w / h, 2) for h, w in sizes}
    assert {1.0, 1.33, 1.5, 1.78, 2.0, 0.75, 0.56} <= ratios


def test_ground_truth_consistent(scenes):
    for scene in scenes:
        h, w = scene.class_map.shape
        assert scene.image.shape == (h, w, 3)
        assert scene.image.dtype == np.uint8
        assert scene.class_map.max() <= 6
        masks = scene.instance_masks
        assert masks.shape == (len(scene.instance_class_ids), h, w)
        assert (masks.sum(axis=0) <= 1).all()  # Disjoint.
        for mask, class_id in zip(masks, scene.instance_class_ids, strict=True):
            assert class_id in (5, 6)
            assert mask.sum() >= 12
            assert (scene.class_map[mask] == class_id).all()  # Inside its class's pixels.
        # Conversely every vehicle/pedestrian pixel belongs to an instance.
        things = np.isin(scene.class_map, (5, 6))
        assert np.array_equal(things, masks.any(axis=0))


def test_scenes_have_hard_cases(scenes):
    touching_same_class = 0
    classes_seen = np.zeros(7, dtype=bool)
    small = 0
    for scene in scenes:
        classes_seen[np.unique(scene.class_map)] = True
        inst = scene.instance_map.astype(np.int64)
        cls = np.concatenate([[0], scene.instance_class_ids])
        # Horizontally or vertically adjacent pixels of two different same-class instances.
        for a, b in ((inst[:, :-1], inst[:, 1:]), (inst[:-1, :], inst[1:, :])):
            pair = (a > 0) & (b > 0) & (a != b) & (cls[a] == cls[b])
            touching_same_class += int(pair.any())
        h, w = scene.class_map.shape
        small += int((scene.instance_masks.sum(axis=(1, 2)) < 0.002 * h * w).sum())
    assert classes_seen.all()
    assert touching_same_class >= 3
    assert small >= 5


def test_tfrecords_parse_with_od_api_keys(tmp_path):
    paths = write_shards(
        tmp_path, 2, seed=1, images_per_shard=5, size=(200, 300), image_format="png"
    )
    assert (tmp_path / "labels.txt").read_text().split() == list(PROJECT_CLASS_NAMES.values())
    records = _parse(paths[0])
    assert len(records) == 2
    for i, rec in enumerate(records):
        scene = scene_for_index(1, i, (200, 300))
        assert (rec["image/height"], rec["image/width"]) == (200, 300)
        assert rec["image/format"] == b"png"
        assert rec["image/source_id"] == f"1/{i}".encode()
        assert np.array_equal(_decode(rec["image/encoded"]), scene.image)  # PNG is lossless.
        assert np.array_equal(_decode(rec["image/segmentation/class/encoded"]), scene.class_map)
        masks = (
            np.stack([_decode(m) for m in rec["image/object/mask"]])
            if len(rec["image/object/mask"])
            else np.zeros((0, 200, 300))
        )
        assert np.array_equal(masks.astype(bool), scene.instance_masks)
        assert set(np.unique(masks)) <= {0, 1}
        assert list(rec["image/object/class/label"]) == list(scene.instance_class_ids)
        for k, mask in enumerate(masks):
            ys, xs = np.nonzero(mask)
            assert rec["image/object/bbox/ymin"][k] == pytest.approx(ys.min() / 200)
            assert rec["image/object/bbox/xmax"][k] == pytest.approx((xs.max() + 1) / 300)


def test_jpeg_default_and_cli(tmp_path):
    synthetic.main(
        [
            "--output",
            str(tmp_path),
            "--num_images",
            "3",
            "--seed",
            "2",
            "--images_per_shard",
            "2",
            "--size",
            "64x96",
        ]
    )
    records = _parse(tmp_path / "scenes-00001-of-00002.tfrecord")
    assert len(records) == 1
    assert records[0]["image/format"] == b"jpeg"
    image = Image.open(io.BytesIO(records[0]["image/encoded"]))
    assert image.format == "JPEG"
    assert image.size == (96, 64)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="image_format"):
        write_shards(tmp_path, 1, seed=0, image_format="gif")
    with pytest.raises(SystemExit):
        synthetic.main(
            ["--output", str(tmp_path), "--num_images", "1", "--seed", "0", "--size", "big"]
        )


def test_encode_example_is_deterministic():
    scene = render_scene(np.random.default_rng(0), 80, 120)
    assert encode_example(scene, "a.jpg", "x") == encode_example(scene, "a.jpg", "x")


def test_workers_do_not_change_bytes(tmp_path):
    one = write_shards(tmp_path / "one", 4, seed=8, images_per_shard=3, size=(64, 80))
    two = write_shards(tmp_path / "two", 4, seed=8, images_per_shard=3, size=(64, 80), workers=2)
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]

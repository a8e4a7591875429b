"""Tests for the training targets and augmentation (models.train_data), by hand."""

from __future__ import annotations

import numpy as np

from models.train_data import TrainingSet, augment, instance_targets


def _one_vehicle() -> tuple[np.ndarray, np.ndarray]:
    class_map = np.zeros((1, 256, 256), np.uint8)
    instance_map = np.zeros((1, 256, 256), np.uint8)
    class_map[0, 100:140, 40:100] = 5  # A 40x60 vehicle.
    instance_map[0, 100:140, 40:100] = 1
    return class_map, instance_map


def test_targets_of_one_vehicle_by_hand():
    t = instance_targets(*_one_vehicle())
    # Thing map: 1 (vehicle) on the square, 0 elsewhere.
    assert t.thing[0, 100:140, 40:100].min() == 1
    assert t.thing.sum() == 40 * 60
    # Pixel centres are at +0.5, so the centroid is (120.0, 70.0): grid cell (60, 35).
    assert t.heatmap[0, 60, 35, 0] == 1.0
    assert t.heatmap[0, :, :, 0].max() == 1.0
    assert t.heatmap[0, :, :, 1].max() == 0.0  # No pedestrian.
    # Offsets are per input pixel: pixel (100, 40) has its centre at (100.5, 40.5).
    assert t.offsets.shape == (1, 256, 256, 2)
    np.testing.assert_allclose(t.offsets[0, 100, 40], [120 - 100.5, 70 - 40.5])
    np.testing.assert_allclose(t.offsets[0, 139, 99], [120 - 139.5, 70 - 99.5])
    assert t.offset_weight[0, 100, 40] == 1.0
    assert t.offset_weight[0, 0, 0] == 0.0
    np.testing.assert_array_equal(t.offsets[0, 0, 0], [0.0, 0.0])
    assert t.offset_weight.sum() == 40 * 60


def test_augment_crops_and_flips_consistently():
    class_map, instance_map = _one_vehicle()
    images = np.zeros((1, 256, 256, 3), np.uint8)
    images[0, 100:140, 40:100] = 200
    batch = TrainingSet(images, class_map, instance_map)
    for seed in range(6):
        out = augment(batch, np.random.default_rng(seed), crop=192)
        assert out.images.shape == (1, 192, 192, 3)
        assert out.class_maps.shape == (1, 192, 192)
        # Whatever the flip and crop, pixels and labels moved together.
        np.testing.assert_array_equal(out.images[0, :, :, 0] == 200, out.class_maps[0] == 5)
        np.testing.assert_array_equal(out.class_maps[0] == 5, out.instance_maps[0] == 1)

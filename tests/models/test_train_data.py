"""Tests for the training targets and augmentation (models.train_data), by hand."""

from __future__ import annotations

import numpy as np

from models.synthetic_render import Scene, scene_for_index
from models.train_data import (
    TrainingSet,
    augment,
    instance_targets,
    render_training_set,
    stretched_maps,
)


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


def test_targets_on_a_wide_input_keep_rows_and_columns_apart():
    class_map = np.zeros((1, 256, 384), np.uint8)
    instance_map = np.zeros((1, 256, 384), np.uint8)
    class_map[0, 20:60, 300:310] = 6  # A 40x10 pedestrian right of the 256th column.
    instance_map[0, 20:60, 300:310] = 1
    t = instance_targets(class_map, instance_map)
    assert t.heatmap.shape == (1, 128, 192, 2)
    assert t.offsets.shape == (1, 256, 384, 2)
    # Centroid (40.0, 305.0): centre grid cell (20, 152), pedestrian channel.
    assert t.heatmap[0, 20, 152, 1] == 1.0
    assert t.heatmap[0, :, :, 0].max() == 0.0
    np.testing.assert_allclose(t.offsets[0, 20, 300], [40 - 20.5, 305 - 300.5])
    np.testing.assert_allclose(t.offsets[0, 59, 309], [40 - 59.5, 305 - 309.5])


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


def test_augment_crops_anywhere_in_a_wide_input():
    columns = np.broadcast_to((np.arange(384) // 2).astype(np.uint8), (1, 256, 384))
    batch = TrainingSet(np.repeat(columns[..., None], 3, axis=-1), columns.copy(), columns.copy())
    starts = set()
    for seed in range(40):
        out = augment(batch, np.random.default_rng(seed), crop=192)
        assert out.images.shape == (1, 192, 192, 3)
        first, last = int(out.class_maps[0, 0, 0]), int(out.class_maps[0, 0, -1])
        starts.add(min(first, last))
    # Crops start at even columns 0..192 (values 0..96): some beyond the first 64
    # columns, which a square 256 crop window would never reach.
    assert max(starts) > 32
    assert max(starts) <= 96


def _scene_with_maps(class_map: np.ndarray, instance_map: np.ndarray) -> Scene:
    return Scene(
        image=np.zeros((*class_map.shape, 3), np.uint8),
        class_map=class_map,
        instance_map=instance_map,
        instance_class_ids=np.zeros((0,), np.int64),
    )


def test_stretched_maps_repeat_or_pick_pixels_by_hand():
    classes = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    instances = classes + 10
    # Rows 2 -> 4: each row twice. Columns 3 -> 2: nearest to source x = (i + 0.5) * 3 / 2,
    # i.e. columns 0 and 2 (at 0.75 and 2.25).
    want = np.array([[1, 3], [1, 3], [4, 6], [4, 6]], np.uint8)

    got_classes, got_instances = stretched_maps(_scene_with_maps(classes, instances), (4, 2))

    np.testing.assert_array_equal(got_classes, want)
    np.testing.assert_array_equal(got_instances, want + 10)


def test_scenes_are_stretched_to_the_requested_input_shape():
    data = render_training_set(seed=3, count=2, shape=(64, 96), workers=1)
    assert data.images.shape == (2, 64, 96, 3)
    assert data.class_maps.shape == data.instance_maps.shape == (2, 64, 96)
    # Stretched, not re-rendered: every class and instance id comes from the native scene.
    for i in range(2):
        native = scene_for_index(3, i)
        assert set(np.unique(data.class_maps[i])) <= set(np.unique(native.class_map))
        assert set(np.unique(data.instance_maps[i])) <= set(np.unique(native.instance_map))
        assert native.class_map.shape != (64, 96)

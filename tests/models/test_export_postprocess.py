"""Tests for the instance model's in-graph grouping (models.export_postprocess).

Heads are built from ground truth (perfect thing masks, centre peaks and
offsets), so grouping + OD-API mask pasting must reproduce the instances.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.diagnose_heads import perfect_heads
from models.evaluate_metrics import Detection, GroundTruthImage, encode_mask, instance_scores
from models.export_postprocess import (
    Assignment,
    PostprocessConfig,
    find_centres,
    slot_stats,
    to_detections,
)
from models.train_validate import paste_masks

CONFIG = PostprocessConfig()


def _two_touching_cars(height: int = 256, width: int = 256) -> tuple[np.ndarray, np.ndarray]:
    class_map = np.zeros((height, width), np.uint8)
    instance_map = np.zeros((height, width), np.uint8)
    # Two vehicles bumper to bumper (touching), and a pedestrian; laid out for a
    # 256x256 input and scaled with the sides.
    for k, (y0, y1, x0, x1, c) in enumerate(
        [(100, 140, 40, 100, 5), (100, 140, 100, 170, 5), (60, 120, 200, 216, 6)], start=1
    ):
        y0, y1 = (v * height // 256 for v in (y0, y1))
        x0, x1 = (v * width // 256 for v in (x0, x1))
        class_map[y0:y1, x0:x1] = c
        instance_map[y0:y1, x0:x1] = k
    return class_map, instance_map


# The grids come from the heads' shapes: centres on 128 x 192 cells and dense
# heads on 256 x 384 for the bundled 256x384 input, square grids for a square
# input, with no constant to change.
@pytest.mark.parametrize(("height", "width"), [(256, 256), (256, 384), (384, 256)])
def test_perfect_heads_give_separate_instances(height, width):
    class_map, instance_map = _two_touching_cars(height, width)
    out = {
        k: v[0].numpy()
        for k, v in to_detections(perfect_heads(class_map, instance_map), CONFIG).items()
    }
    n = int(out["num_detections"])
    assert n == 3
    assert sorted(out["detection_classes"][:n].tolist()) == [6.0, 6.0, 7.0]
    assert np.all(out["detection_scores"][n:] == 0)
    masks = paste_masks(out["detection_masks"][:n], out["detection_boxes"][:n], height, width)
    masks = masks >= 0.5
    for k in (1, 2, 3):
        gt = instance_map == k
        ious = [(m & gt).sum() / (m | gt).sum() for m in masks]
        assert max(ious) > 0.95


def test_dense_heads_on_the_centre_grid_group_too():
    # A user's network may predict every head at stride 2: the dense stride is
    # read from the ratio of the grids (here 1:1, so stride 2).
    class_map, instance_map = _two_touching_cars()
    heads = perfect_heads(class_map, instance_map)
    coarse = dict(heads)
    coarse["thing_logits"] = heads["thing_logits"][:, ::2, ::2]
    # Offsets of cell (i, j) of the stride-2 grid point from its centre (2i + 1, 2j + 1);
    # the stride-1 targets at pixel (2i, 2j) point from (2i + 0.5, 2j + 0.5).
    coarse["offsets"] = heads["offsets"][:, ::2, ::2] - 0.5 * tf.cast(
        tf.reduce_any(heads["thing_logits"][:, ::2, ::2, 1:] > 0, axis=-1, keepdims=True),
        tf.float32,
    )
    out = {k: v[0].numpy() for k, v in to_detections(coarse, CONFIG).items()}
    n = int(out["num_detections"])
    assert n == 3
    masks = paste_masks(out["detection_masks"][:n], out["detection_boxes"][:n], 256, 256) >= 0.5
    for k in (1, 2, 3):
        gt = instance_map == k
        assert max((m & gt).sum() / (m | gt).sum() for m in masks) > 0.95


def test_round_trip_to_a_larger_image_keeps_masks():
    # The pipeline pastes into the original size; 256 -> 512 must stay aligned.
    class_map, instance_map = _two_touching_cars()
    out = {
        k: v[0].numpy()
        for k, v in to_detections(perfect_heads(class_map, instance_map), CONFIG).items()
    }
    n = int(out["num_detections"])
    masks = paste_masks(out["detection_masks"][:n], out["detection_boxes"][:n], 512, 512) >= 0.5
    big = np.kron(instance_map, np.ones((2, 2), np.uint8))
    gt = GroundTruthImage(512, 512, tuple(encode_mask(big == k) for k in (1, 2, 3)), (5, 5, 6))
    dets = [
        Detection(0, int(c) - 1, float(s), encode_mask(m))
        for c, s, m in zip(
            out["detection_classes"][:n], out["detection_scores"][:n], masks, strict=True
        )
    ]
    scores = instance_scores([gt], dets, (5, 6))
    assert scores.ap75 == pytest.approx(1.0)


def test_slot_stats_by_hand():
    slot = np.zeros((1, 128, 128), np.int32)
    slot[0, 10:20, 30:34] = 1  # Slot 0: 10 x 4 cells.
    slot[0, 0, 127] = 3  # Slot 2: one corner cell.
    foreground = np.full((1, 128, 128), 0.5, np.float32)
    cells = np.argwhere(slot > 0)
    assignment = Assignment(
        tf.constant(slot), tf.constant(foreground), tf.constant(cells), tf.constant(slot[slot > 0])
    )
    stats = slot_stats(assignment, num_slots=4)
    np.testing.assert_allclose(stats.area.numpy()[0], [40, 0, 1, 0])
    np.testing.assert_allclose(stats.foreground.numpy()[0], [20, 0, 0.5, 0])
    boxes = stats.boxes.numpy()[0]
    np.testing.assert_allclose(boxes[0], [10 / 128, 30 / 128, 20 / 128, 34 / 128])
    np.testing.assert_allclose(boxes[2], [0, 127 / 128, 1 / 128, 1])
    np.testing.assert_array_equal(boxes[[1, 3]], 0.0)


def test_no_centres_means_no_detections():
    heads = {
        "thing_logits": tf.zeros([2, 128, 128, 3]),
        "center_logits": tf.fill([2, 128, 128, 2], -10.0),
        "offsets": tf.zeros([2, 128, 128, 2]),
    }
    out = to_detections(heads, CONFIG)
    assert out["num_detections"].numpy().tolist() == [0.0, 0.0]
    assert float(tf.reduce_max(out["detection_scores"])) == 0.0


def _centre_logits(cells: dict[tuple[int, int], float]) -> tf.Tensor:
    """Pedestrian-channel heatmap logits [1, 24, 24, 2]: heat 0.01, except at `cells`."""
    heat = np.full([1, 24, 24, 2], 0.01, np.float32)
    for (row, column), value in cells.items():
        heat[0, row, column, 1] = value
    return tf.constant(np.log(heat / (1.0 - heat)))


def _found(logits: tf.Tensor, valley_ratio: float | None) -> list[tuple[float, float]]:
    config = PostprocessConfig(max_detections=4, valley_ratio=valley_ratio)
    centres = find_centres(logits, config)
    present = centres.peak[0].numpy() > 0
    return sorted(zip(centres.y[0].numpy()[present], centres.x[0].numpy()[present], strict=True))


@pytest.mark.parametrize("second_cell", [(10, 12), (12, 11), (8, 8)])
def test_two_peaks_with_a_dip_between_are_two_centres(second_cell):
    # Two cells apart (straight, knight's move, diagonal): inside a 5x5 window, so
    # plain suppression keeps only the higher; the heat between them dips to 0.5
    # (< 0.9 x 0.8), so the valley rule keeps both. Centres sit mid-cell: 2 * cell + 1.
    logits = _centre_logits({(10, 10): 0.9, second_cell: 0.8})
    row, column = second_cell
    assert _found(logits, None) == [(21.0, 21.0)]
    assert _found(logits, 0.9) == sorted([(21.0, 21.0), (2.0 * row + 1, 2.0 * column + 1)])


def test_a_broad_top_without_a_dip_stays_one_centre():
    # (10, 12) is a maximum of its own 3x3 neighbours, but the cell between it and
    # the higher (10, 10) holds 0.78 >= 0.9 x 0.8: one object's flat top, not two.
    logits = _centre_logits({(10, 10): 0.9, (10, 11): 0.78, (10, 12): 0.8})
    assert _found(logits, 0.9) == [(21.0, 21.0)]
    # At ratio 1.0 any dip counts: 0.78 < 1.0 x 0.8 keeps both.
    assert _found(logits, 1.0) == [(21.0, 21.0), (21.0, 25.0)]


def test_peaks_further_apart_than_the_window_are_found_either_way():
    logits = _centre_logits({(10, 10): 0.9, (10, 13): 0.8, (10, 11): 0.85, (10, 12): 0.85})
    # Three cells apart, with no dip: beyond the 5x5 window's reach, but (10, 13) is
    # below its 3x3 neighbour (10, 12), so neither rule keeps it.
    assert _found(logits, None) == _found(logits, 0.9) == [(21.0, 21.0)]
    logits = _centre_logits({(10, 10): 0.9, (10, 13): 0.8})
    assert _found(logits, None) == _found(logits, 0.9) == [(21.0, 21.0), (21.0, 27.0)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nms_kernel": 4}, "nms_kernel must be a positive odd"),
        ({"nms_kernel": 0}, "nms_kernel must be a positive odd"),
        ({"valley_ratio": 0.0}, "valley_ratio must be in"),
        ({"valley_ratio": 1.5}, "valley_ratio must be in"),
    ],
)
def test_config_rejects_settings_that_cannot_suppress(changes, message):
    with pytest.raises(ValueError, match=message):
        PostprocessConfig(**changes)


def test_grouping_rejects_heads_it_cannot_size():
    # The grids come from the heads' static shapes; a graph traced for any input
    # size has none.
    def any_size(channels: int) -> tf.TensorSpec:
        return tf.TensorSpec([1, None, None, channels], tf.float32)

    @tf.function(input_signature=[any_size(3), any_size(2), any_size(2)])
    def group(thing, centres, offsets):
        heads = {"thing_logits": thing, "center_logits": centres, "offsets": offsets}
        return to_detections(heads, CONFIG)

    with pytest.raises(ValueError, match="heads with a static size"):
        group.get_concrete_function()


def test_grouping_rejects_grids_of_different_strides_per_axis():
    with pytest.raises(ValueError, match="one stride on both axes"):
        to_detections(
            {
                "thing_logits": tf.zeros([1, 64, 96, 3]),
                "center_logits": tf.zeros([1, 32, 32, 2]),
                "offsets": tf.zeros([1, 64, 96, 2]),
            },
            CONFIG,
        )

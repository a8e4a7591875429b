"""Tests for models/mask_paste.py against OD-API's full-image reframe, rebuilt from TF ops."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.joint_bilateral import DEFAULT_PARAMS
from models.mask_paste import paste_masks
from tests.masks import paste_windows


def _od_api_reframe(
    box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int
) -> np.ndarray:
    """OD-API's reframe_box_masks_to_image_masks (full-image masks), for reference."""
    ymin, xmin, ymax, xmax = boxes.T
    box_h = np.maximum(ymax - ymin, 1e-4)
    box_w = np.maximum(xmax - xmin, 1e-4)
    corners = np.stack([-ymin / box_h, -xmin / box_w, (1 - ymin) / box_h, (1 - xmin) / box_w], 1)
    pasted = tf.image.crop_and_resize(
        box_masks[..., None],
        corners.astype(np.float32),
        tf.range(len(boxes)),
        [height, width],
        extrapolation_value=0.0,
    )
    return pasted.numpy()[..., 0]


@pytest.mark.parametrize(("height", "width"), [(37, 53), (64, 64), (300, 120), (1, 17), (13, 1)])
def test_paste_masks_matches_od_api_full_image_reframe(height: int, width: int) -> None:
    rng = np.random.default_rng(height * 1000 + width)
    count = 12
    corners = rng.uniform(-0.2, 1.2, size=(count, 2, 2)).astype(np.float32)
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    boxes[0] = [0.3, 0.3, 0.3 + 1e-5, 0.3 + 1e-5]  # Degenerate box: OD-API's 1e-4 floor.
    boxes[1] = [0.0, 0.0, 1.0, 1.0]
    box_masks = rng.random((count, 7, 5)).astype(np.float32)
    out = paste_masks(box_masks, boxes, tf.constant([height, width]), 0.5)
    ours = paste_windows(
        out["masks"].numpy(),
        out["mask_sizes"].numpy(),
        out["mask_offsets"].numpy(),
        height,
        width,
    )
    reference = _od_api_reframe(box_masks, boxes, height, width)
    # Float rounding may flip only pixels whose interpolated value is at the threshold.
    disagree = ours != (reference > 0.5)
    assert not np.any(disagree & (np.abs(reference - 0.5) > 1e-4))
    assert ours.any()


def test_paste_masks_without_detections() -> None:
    out = paste_masks(
        np.zeros([0, 4, 4], np.float32), np.zeros([0, 4], np.float32), tf.constant([5, 6]), 0.5
    )
    assert out["masks"].shape == (0,)
    assert out["mask_sizes"].shape == (0, 2)


def test_guided_paste_loops_run_one_iteration_at_a_time() -> None:
    # Graph loops run up to 10 iterations at once by default; for the guided paste that
    # held ten windows' temporaries at once (+0.2 GB peak RSS, docs/performance.md,
    # "Session 14"). Both loops are checked: the paste's over detections and, nested in
    # it, the joint bilateral votes' over chunks.
    paste = tf.function(
        lambda masks, boxes, image: paste_masks(
            masks, boxes, tf.shape(image)[:2], 0.5, image, DEFAULT_PARAMS
        )
    )
    graph = paste.get_concrete_function(
        tf.TensorSpec([None, 8, 8], tf.float32),
        tf.TensorSpec([None, 4], tf.float32),
        tf.TensorSpec([None, None, 3], tf.uint8),
    ).graph.as_graph_def()
    nodes = [*graph.node, *(node for f in graph.library.function for node in f.node_def)]
    loops = [node for node in nodes if node.op in ("While", "StatelessWhile")]
    assert len(loops) >= 2
    assert {loop.attr["parallel_iterations"].i for loop in loops} == {1}

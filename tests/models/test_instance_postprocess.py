"""Tests for models/instance_postprocess.py: expected values by hand."""

from __future__ import annotations

import numpy as np

from models import instance_postprocess as instance
from tests.masks import paste_windows

FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
NO_IMAGE = np.zeros([0, 0, 3], np.uint8)  # What the loader passes when the image is unread.


def test_boxes_to_original_undoes_letterbox() -> None:
    box = np.array([[0.25, 0.1, 0.5, 0.4]], np.float32)
    content = np.array([0.25, 0.0, 0.75, 1.0], np.float32)
    out = instance.boxes_to_original(box, content).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.1, 0.5, 0.4]], atol=1e-7)


def test_model_garden_boxes_to_input() -> None:
    # Fed 100x200, scaled by 0.5 to 50x100: a box at (10, 20, 30, 40) in the scaled
    # image is (20, 40, 60, 80) in the fed image, i.e. (0.2, 0.2, 0.6, 0.4) normalised.
    info = np.array([[100, 200], [50, 100], [0.5, 0.5], [0, 0]], np.float32)
    out = instance.model_garden_boxes_to_input(np.array([[10, 20, 30, 40]], np.float32), info)
    np.testing.assert_allclose(out.numpy(), [[0.2, 0.2, 0.6, 0.4]], rtol=1e-6)


def test_instance_postprocess_filters_sorts_and_offsets_classes() -> None:
    fn = instance.make_instance_postprocess_fn("od_api", 0.5, 0.5, -1)
    boxes = np.tile(np.array([[0.1, 0.2, 0.5, 0.6]], np.float32), [4, 1])
    boxes[3] = [0.0, 0.0, 1.0, 1.0]
    out = fn(
        boxes=boxes,
        scores=np.array([0.4, 0.9, 0.6, 0.9], np.float32),
        classes=np.array([1, 2, 3, 4], np.float32),
        masks=np.ones([4, 3, 3], np.float32),
        image_info=np.zeros([4, 2], np.float32),
        content_box=FULL_BOX,
        size=np.array([10, 20], np.int32),
        image=NO_IMAGE,
    )
    # Kept: indices 1, 3 (score 0.9, in input order) then 2 (0.6); 0 is below 0.5.
    np.testing.assert_array_equal(out["class_ids"].numpy(), [1, 3, 2])
    np.testing.assert_allclose(out["scores"].numpy(), [0.9, 0.9, 0.6])
    # (ymin, xmin, ymax, xmax) = (0.1, 0.2, 0.5, 0.6) on 10x20 -> x 4, y 1, w 8, h 4.
    np.testing.assert_allclose(
        out["boxes"].numpy(), [[4, 1, 8, 4], [0, 0, 20, 10], [4, 1, 8, 4]], rtol=1e-6
    )
    full = paste_windows(
        out["masks"].numpy(), out["mask_sizes"].numpy(), out["mask_offsets"].numpy(), 10, 20
    )
    assert full[1].all()  # The whole-image box with an all-ones mask covers the image.


def test_joint_bilateral_paste_reads_the_image() -> None:
    # One detection over the whole 8x16 image, its 4x4 box mask "in" on the left two
    # columns. Bilinear pasting crosses 0.5 at pixel column 7.5; the image turns from
    # black to white at column 5, and joint bilateral pasting moves the outline there
    # (the case is worked through in tests/models/test_mask_refinement.py).
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, 5:] = 255
    inputs = {
        "boxes": FULL_BOX[np.newaxis],
        "scores": np.array([0.9], np.float32),
        "classes": np.array([1], np.float32),
        "masks": np.array([[[1.0, 1.0, 0.0, 0.0]] * 4], np.float32),
        "image_info": np.zeros([4, 2], np.float32),
        "content_box": FULL_BOX,
        "size": np.array([8, 16], np.int32),
    }
    columns = {}
    for upsampling in ("bilinear", "joint_bilateral"):
        fn = instance.make_instance_postprocess_fn("od_api", 0.5, 0.5, 0, upsampling)
        out = fn(**inputs, image=image)
        full = paste_windows(
            out["masks"].numpy(), out["mask_sizes"].numpy(), out["mask_offsets"].numpy(), 8, 16
        )
        columns[upsampling] = np.flatnonzero(full[0].all(axis=0)).tolist()
    assert columns == {"bilinear": list(range(8)), "joint_bilateral": list(range(5))}

"""Tests for transforms/rle.py: every expected string comes from pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.masks import coco_counts, paste_crop
from transforms.elements import ClassMask
from transforms.rle import (
    counts_to_string,
    encode_class_map,
    encode_crop,
    encode_crops,
)


def _check_crop(crop: np.ndarray, top: int, left: int, height: int, width: int) -> None:
    full = paste_crop(crop, top, left, height, width)
    rle = encode_crop(crop, top, left, height, width)
    assert rle == coco_counts(full)
    decoded = mask_utils.decode({"size": [height, width], "counts": rle.encode()})
    np.testing.assert_array_equal(decoded.astype(bool), full)


@pytest.mark.parametrize(
    ("height", "width", "top", "left", "crop"),
    [
        pytest.param(5, 7, 0, 0, np.zeros((5, 7), bool), id="empty-full-size-crop"),
        pytest.param(5, 7, 2, 3, np.zeros((1, 1), bool), id="empty-pixel-crop"),
        pytest.param(5, 7, 0, 0, np.ones((5, 7), bool), id="full"),
        pytest.param(5, 7, 0, 0, np.ones((1, 1), bool), id="first-pixel"),
        pytest.param(5, 7, 4, 6, np.ones((1, 1), bool), id="last-pixel"),
        pytest.param(5, 7, 2, 3, np.ones((1, 1), bool), id="middle-pixel"),
        pytest.param(1, 9, 0, 2, np.array([[1, 0, 1, 1]], bool), id="one-row-image"),
        pytest.param(9, 1, 3, 0, np.array([[1], [1], [0], [1]], bool), id="one-column-image"),
        pytest.param(6, 6, 0, 2, np.ones((6, 3), bool), id="full-height-columns-merge"),
        pytest.param(6, 6, 1, 0, np.ones((5, 6), bool), id="touches-bottom-left-right"),
        pytest.param(6, 6, 0, 0, np.ones((5, 6), bool), id="touches-top-left-right"),
    ],
)
def test_encode_crop_edge_cases(
    height: int, width: int, top: int, left: int, crop: np.ndarray
) -> None:
    _check_crop(crop, top, left, height, width)


def test_encode_crop_random_masks_match_pycocotools() -> None:
    rng = np.random.default_rng(7)
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(1, 24, size=2))
        crop_h, crop_w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        crop = rng.random((crop_h, crop_w)) < rng.random()
        _check_crop(crop, top, left, height, width)


def test_encode_crop_touching_every_border() -> None:
    rng = np.random.default_rng(3)
    crop = rng.random((12, 17)) < 0.5
    crop[0, :] = crop[-1, :] = True  # Set pixels on the image's top and bottom rows.
    crop[:, 0] = crop[:, -1] = True
    _check_crop(crop, 0, 0, 12, 17)


def test_encode_crop_large_image_small_crop() -> None:
    rng = np.random.default_rng(11)
    crop = rng.random((40, 30)) < 0.6
    _check_crop(crop, 1500, 1900, 2000, 3000)


def test_encode_crop_large_full_image() -> None:
    rng = np.random.default_rng(5)
    crop = rng.random((600, 500)) < 0.5
    _check_crop(crop, 0, 0, 600, 500)


@pytest.mark.parametrize(
    ("shape", "top", "left", "height", "width"),
    [
        ((3, 3), 0, 0, 2, 5),
        ((3, 3), 0, 3, 5, 5),
        ((3, 3), -1, 0, 5, 5),
        ((3, 3), 0, -1, 5, 5),
    ],
)
def test_encode_crop_rejects_crops_outside_the_image(
    shape: tuple[int, int], top: int, left: int, height: int, width: int
) -> None:
    with pytest.raises(ValueError, match="does not fit inside"):
        encode_crop(np.ones(shape, bool), top, left, height, width)


def test_encode_crop_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        encode_crop(np.ones((2, 2, 1), bool), 0, 0, 4, 4)


def test_counts_to_string_large_and_negative_deltas() -> None:
    # Counts whose deltas against counts[i-2] are large positive and large negative;
    # decoding the string must give back the mask the counts describe.
    counts = np.array([0, 5_000_000, 1, 3, 4_000_000, 2, 999_999, 1])
    mask = np.repeat(np.arange(counts.size) % 2, counts).astype(np.uint8)
    rle = {"counts": counts_to_string(counts), "size": [mask.size, 1]}
    np.testing.assert_array_equal(mask_utils.decode(rle)[:, 0], mask)


def test_counts_to_string_by_hand() -> None:
    # 5-bit groups offset by 48 ("0"); from the fourth count on, the delta to the count
    # two places back: [3, 40, 2, 44] -> "3", 40 = 8 + 32 * 1 as "8" | 0x20 then "1",
    # "2", 44 - 40 = 4 -> "4".
    assert counts_to_string(np.array([3, 40, 2, 44])) == "3" + chr(48 + 8 + 32) + "124"


def test_counts_to_string_rejects_masks_too_large_for_pycocotools() -> None:
    with pytest.raises(ValueError, match="uint32"):
        counts_to_string(np.array([2**32, 1]))


def test_counts_to_string_matches_pycocotools_encode() -> None:
    # Masks of 1 to ~40 runs, an empty and a full one: the string made from each mask's
    # counts (found by a plain loop) is what pycocotools' encoder gives for its pixels.
    rng = np.random.default_rng(29)
    masks = [np.zeros((7, 9), bool), np.ones((7, 9), bool)]
    masks += [rng.random((7, 9)) < rng.uniform(0.1, 0.9) for _ in range(20)]
    assert [counts_to_string(_coco_runs(m)) for m in masks] == [coco_counts(m) for m in masks]


def _coco_runs(mask: np.ndarray) -> np.ndarray:
    """Alternating run lengths of the column-major mask, starting with zeros (plain loop)."""
    runs, value, length = [], False, 0
    for pixel in mask.ravel(order="F"):
        if bool(pixel) == value:
            length += 1
        else:
            runs.append(length)
            value, length = bool(pixel), 1
    runs.append(length)
    return np.array(runs)


def _expected_class_masks(class_map: np.ndarray) -> list[ClassMask]:
    return [
        ClassMask(int(c), int((class_map == c).sum()), coco_counts(class_map == c))
        for c in np.unique(class_map)
    ]


def test_encode_class_map_random_maps_match_pycocotools() -> None:
    rng = np.random.default_rng(13)
    for _ in range(150):
        height, width = (int(v) for v in rng.integers(1, 20, size=2))
        class_map = rng.integers(0, int(rng.integers(1, 6)), size=(height, width)).astype(np.int32)
        assert encode_class_map(class_map) == _expected_class_masks(class_map)


def test_encode_class_map_blocks_and_round_trip() -> None:
    class_map = np.zeros((37, 53), np.int32)
    class_map[:, 20:] = 4
    class_map[10:30, 5:15] = 2
    class_map[36, 52] = 6  # A single pixel in the last position.
    result = encode_class_map(class_map)
    assert [m.class_id for m in result] == [0, 2, 4, 6]
    assert result == _expected_class_masks(class_map)
    for m in result:
        decoded = mask_utils.decode({"size": [37, 53], "counts": m.rle.encode()})
        np.testing.assert_array_equal(decoded.astype(bool), class_map == m.class_id)


def test_encode_class_map_single_class_and_single_row() -> None:
    assert encode_class_map(np.full((4, 6), 3, np.int32)) == [
        ClassMask(3, 24, coco_counts(np.ones((4, 6))))
    ]
    row = np.array([[1, 1, 0, 2, 2, 1]], np.int32)
    assert encode_class_map(row) == _expected_class_masks(row)
    assert encode_class_map(row.T.copy()) == _expected_class_masks(row.T)


def test_encode_class_map_large() -> None:
    rng = np.random.default_rng(17)
    blocks = rng.integers(0, 7, size=(30, 40)).astype(np.int32)
    class_map = np.kron(blocks, np.ones((20, 20), np.int32))  # 600 x 800, 20-pixel blocks.
    assert encode_class_map(class_map) == _expected_class_masks(class_map)


def _expected_crops(crops, offsets, height, width):
    """(index, top, left, height, width, area, counts) of each non-empty mask, by pycocotools."""
    expected = []
    for index, (crop, (top, left)) in enumerate(zip(crops, offsets, strict=True)):
        full = paste_crop(crop, top, left, height, width)
        if not full.any():
            continue
        rle = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
        x, y, w, h = mask_utils.toBbox(rle)
        counts = rle["counts"].decode()
        expected.append((index, int(y), int(x), int(h), int(w), int(full.sum()), counts))
    return expected


def test_encode_crops_random_masks_match_pycocotools() -> None:
    # Many images, each with 0-5 crops of random sizes, places and densities: empty crops,
    # full crops, crops touching the top and bottom (runs joining across columns), and
    # zero-sized crops. Every string, tight bbox and area comes from pycocotools.
    rng = np.random.default_rng(41)
    for _ in range(600):
        height, width = (int(v) for v in rng.integers(1, 12, size=2))
        crops, offsets = [], []
        for _ in range(int(rng.integers(0, 6))):
            h, w = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            crops.append(rng.random((h, w)) < rng.choice([0.0, 0.3, 0.7, 1.0]))
            offsets.append((top, left))
        got = encode_crops(crops, np.array(offsets).reshape(-1, 2), height, width)
        assert [tuple(g) for g in got] == _expected_crops(crops, offsets, height, width)


def test_encode_crops_on_a_large_image() -> None:
    rng = np.random.default_rng(43)
    crops = [rng.random((40, 30)) < 0.5, np.ones((600, 3), bool), rng.random((5, 700)) < 0.2]
    offsets = [(100, 200), (0, 10), (595, 0)]
    got = encode_crops(crops, np.array(offsets), 600, 800)
    assert [tuple(g) for g in got] == _expected_crops(crops, offsets, 600, 800)


def test_encode_crops_rejects_crops_outside_the_image() -> None:
    with pytest.raises(ValueError, match="does not fit inside a 4x4 image"):
        encode_crops([np.ones((2, 2), bool)], np.array([[3, 0]]), 4, 4)


def test_encode_class_map_large_and_negative_ids() -> None:
    # Ids beyond uint16 (and negative ones) take the general sort; 65535 is the largest
    # radix-sorted id and sorts first nowhere: every class must still come out.
    class_map = np.array([[65535, 70000, -3], [65535, 0, 70000]], np.int64)
    assert encode_class_map(class_map) == _expected_class_masks(class_map)
    only_max = np.full((3, 2), 65535, np.int64)
    assert encode_class_map(only_max) == _expected_class_masks(only_max)

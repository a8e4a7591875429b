"""COCO run-length encoding of binary masks, without materialising full-image masks.

The output is byte-for-byte what `pycocotools.mask.encode(...)["counts"]` gives
for the equivalent full-image mask: runs are counted over the column-major
(Fortran order) flattened mask, starting with a run of zeros (possibly empty),
and the run counts are compressed by pycocotools' own `rleToString` (in C).

Two entry points, both O(input) rather than O(image) per mask:
  * `encode_crops` encodes all of an image's instances from their box crops
    and offsets (`encode_crop`: one of them).
  * `encode_class_map` encodes every class of a semantic class map from a
    single run-length pass over the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from pycocotools import mask as coco_mask

from transforms.elements import ClassMask


def counts_to_string(counts: np.ndarray) -> str:
    """Compresses RLE run counts into the `counts` string pycocotools' `rleToString` gives.

    Args:
      counts: int [m] run lengths, alternating zeros/ones, starting with zeros.

    Returns:
      The ASCII `counts` string.
    """
    counts = np.asarray(counts, dtype=np.int64)
    return _strings_from_concatenated(counts, np.array([counts.size]), int(counts.sum()))[0]


def _strings_from_concatenated(
    counts: np.ndarray, lengths: np.ndarray, num_pixels: int
) -> list[str]:
    """COCO `counts` strings of masks of `num_pixels` pixels each, whose run counts are
    concatenated in `counts`: mask i has lengths[i] of them.

    The string compression (delta coding against the count two places back, then
    5-bit groups with a continuation bit, offset into printable ASCII) is
    pycocotools' own C `rleToString`, reached through `frPyObjects` on
    uncompressed RLEs (with a numpy port of it the semantic encoder took 0.41 ms
    a 512x512 map instead of 0.16: docs/performance.md, "Mask encoding").
    """
    if not len(lengths):
        return []
    if num_pixels > np.iinfo(np.uint32).max:  # No count can exceed the pixel count.
        raise ValueError(f"{num_pixels} pixels: pycocotools holds RLE counts as uint32")
    pieces = np.split(counts.astype(np.uint32), np.cumsum(lengths)[:-1])
    # The size is carried along; the compression reads only the counts.
    uncompressed = [{"size": [num_pixels, 1], "counts": piece} for piece in pieces]
    return [rle["counts"].decode("ascii") for rle in coco_mask.frPyObjects(uncompressed, 0, 0)]


class EncodedCrop(NamedTuple):
    """One non-empty mask encoded by `encode_crops`, with its tight extent in the image."""

    index: int  # Position of the crop in the input sequence.
    top: int  # First row holding a mask pixel.
    left: int  # First column holding a mask pixel.
    height: int  # Rows from the first to the last holding a mask pixel.
    width: int  # Columns from the first to the last holding a mask pixel.
    area: int  # Mask pixels.
    rle: str  # COCO compressed RLE `counts` of the full-image mask.


def encode_crops(
    crops: Sequence[np.ndarray], offsets: np.ndarray, height: int, width: int
) -> list[EncodedCrop]:
    """Encodes many masks, each zero outside its crop, with one set of numpy calls.

    The crops are laid out column by column, each column framed by a zero
    above and below, in one int8 buffer; a single comparison of neighbours
    finds every run start and end of every mask at once. Per crop there is
    only one slice assignment, so an image's instances cost about as much as
    one of them.

    Args:
      crops: bool [h_i, w_i] masks inside their boxes.
      offsets: int [N, 2] (top, left) of each crop in the image.
      height: Image height (rows).
      width: Image width (columns).

    Returns:
      One EncodedCrop per crop with at least one pixel set, in input order.

    Raises:
      ValueError: If a crop is not 2-D or does not fit inside the image.
    """
    if not len(crops):
        return []
    shapes = np.array([c.shape for c in crops], dtype=np.int64).reshape(len(crops), -1)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(len(crops), 2)
    _check_crops(shapes, offsets, height, width)
    column = shapes[:, 0] + 2  # Padded column length of each crop.
    sizes = column * shapes[:, 1]
    starts = np.cumsum(sizes) - sizes
    buffer = np.zeros(int(sizes.sum()) + 1, dtype=np.int8)
    layout = zip(crops, starts.tolist(), sizes.tolist(), column.tolist(), strict=True)
    for crop, start, size, rows in layout:
        buffer[start : start + size].reshape(-1, rows)[:, 1:-1] = crop.T
    # Padded positions where a run starts or ends. Compared, not np.diff'ed: numpy's
    # nonzero is ~10x faster on a bool array than on the int8 a diff gives.
    edges = np.flatnonzero(buffer[1:] != buffer[:-1]) + 1
    if edges.size == 0:
        return []
    owner = np.searchsorted(starts, edges, side="right") - 1
    col, padded_row = np.divmod(edges - starts[owner], column[owner])
    row = padded_row - 1  # Run starts: first row; run ends: one past the last row.
    top, left = offsets[owner, 0] + row, offsets[owner, 1] + col
    position = left * height + top  # In the column-major full image.
    # Extents and areas from the (start, end) pairs, before any merging.
    pair_owner = owner[0::2]
    present, first_pair = np.unique(pair_owner, return_index=True)
    run_rows = np.minimum.reduceat(top[0::2], first_pair)
    run_ends = np.maximum.reduceat(top[1::2], first_pair)
    run_left = np.minimum.reduceat(left[0::2], first_pair)
    run_right = np.maximum.reduceat(left[0::2], first_pair)
    areas = np.add.reduceat(position[1::2] - position[0::2], first_pair)
    # A run that ends at the image's last row and one starting at the next column's
    # first row are one run in column-major order: drop the end/start pair between.
    joined = (position[1:] == position[:-1]) & (owner[1:] == owner[:-1])
    if joined.any():
        keep = np.ones(position.size, dtype=bool)
        keep[:-1] &= ~joined
        keep[1:] &= ~joined
        position, owner = position[keep], owner[keep]
    counts, lengths = _counts_from_positions(position, owner, present, height * width)
    rles = _strings_from_concatenated(counts, lengths, height * width)
    return [
        EncodedCrop(int(i), int(t), int(lft), int(b - t), int(r + 1 - lft), int(a), rle)
        for i, t, lft, b, r, a, rle in zip(
            present, run_rows, run_left, run_ends, run_right, areas, rles, strict=True
        )
    ]


def _check_crops(shapes: np.ndarray, offsets: np.ndarray, height: int, width: int) -> None:
    if shapes.shape[1] != 2:
        raise ValueError(f"crops must be 2-D [h, w] masks, got shapes {shapes.tolist()}")
    outside = (
        (offsets < 0).any(axis=1)
        | (offsets[:, 0] + shapes[:, 0] > height)
        | (offsets[:, 1] + shapes[:, 1] > width)
    )
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"crop {i} of shape {tuple(shapes[i])} at (top={offsets[i, 0]}, left={offsets[i, 1]}) "
            f"does not fit inside a {height}x{width} image; clip the crop to the image first"
        )


def _counts_from_positions(
    position: np.ndarray, owner: np.ndarray, present: np.ndarray, num_pixels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated run counts of several masks from their sorted transition positions.

    Mask k's counts are its first position, the gaps between its positions, and
    the zeros after its last one (left out when the mask reaches the last pixel).
    """
    first = np.searchsorted(owner, present, side="left")
    last = np.searchsorted(owner, present, side="right") - 1
    gaps = np.diff(position, prepend=0)
    gaps[first] = position[first]
    tails = num_pixels - position[last]
    nonzero = tails > 0
    counts = np.insert(gaps, last[nonzero] + 1, tails[nonzero])
    lengths = (last - first + 1) + nonzero
    return counts, lengths


def encode_crop(crop: np.ndarray, top: int, left: int, height: int, width: int) -> str:
    """The `counts` string pycocotools gives for one crop's full-image mask (empty included).

    Raises:
      ValueError: If the crop is not 2-D or does not fit inside the image.
    """
    encoded = encode_crops([crop], np.array([[top, left]]), height, width)
    return encoded[0].rle if encoded else counts_to_string(np.array([height * width]))


def encode_class_map(class_map: np.ndarray) -> list[ClassMask]:
    """Encodes every class of a semantic class map from one pass over it.

    The map is run-length encoded once in column-major order; each class's
    binary-mask RLE is then assembled from that class's runs only (two runs of
    the same class are never adjacent, so they are always separated by a
    background gap).

    Args:
      class_map: int [H, W] class ids.

    Returns:
      One ClassMask per class present, ascending class id.
    """
    if class_map.ndim != 2:
        raise ValueError(f"class_map must be a 2-D [H, W] array, got shape {class_map.shape}")
    flat = class_map.ravel(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], changes))
    ends = np.concatenate((changes, [flat.size]))
    values = flat[starts]
    if values.min() >= 0 and values.max() <= np.iinfo(np.uint16).max:
        values = values.astype(np.uint16)  # numpy sorts small unsigned ints by radix sort.
    order = np.argsort(values, kind="stable")  # Stable: keeps each class's runs in image order.
    sorted_values = values[order]
    # Where each class's runs start in the sorted order.
    first = np.concatenate(([0], np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1))
    class_ids = sorted_values[first]
    run_starts, run_ends = starts[order], ends[order]
    pixel_counts = np.add.reduceat(run_ends - run_starts, first)
    # Each class's transitions are its runs' starts and ends, interleaved; runs of
    # one class are never adjacent, so none of them merge.
    position = np.empty(2 * order.size, dtype=np.int64)
    position[0::2], position[1::2] = run_starts, run_ends
    owner = np.repeat(sorted_values, 2)
    counts, lengths = _counts_from_positions(position, owner, class_ids, flat.size)
    rles = _strings_from_concatenated(counts, lengths, flat.size)
    return [
        ClassMask(class_id=int(class_id), pixel_count=int(pixels), rle=rle)
        for class_id, pixels, rle in zip(class_ids, pixel_counts, rles, strict=True)
    ]

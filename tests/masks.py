"""Reference mask helpers for tests: pasting crops by hand, COCO RLE from pycocotools.

Used to build expected values independently of segbeam's own encoders and
pasting (transforms.rle, models.mask_paste, models.loader).
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def coco_counts(mask: np.ndarray) -> str:
    """pycocotools' compressed RLE `counts` string of a [H, W] binary mask."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def paste_crop(crop: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """bool [height, width], `crop` ([h, w]) at (top, left) and False elsewhere."""
    full = np.zeros((height, width), bool)
    full[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return full


def paste_windows(
    flat: np.ndarray, sizes: np.ndarray, offsets: np.ndarray, height: int, width: int
) -> np.ndarray:
    """bool [N, height, width] from concatenated row-major windows, checking each fits.

    Args:
      flat: bool [sum(h_i * w_i)], the windows one after another.
      sizes: int [N, 2] (h_i, w_i).
      offsets: int [N, 2] (top_i, left_i).
      height: Image height.
      width: Image width.
    """
    masks = np.zeros([len(sizes), height, width], bool)
    start = 0
    for i, ((h, w), (top, left)) in enumerate(zip(sizes, offsets, strict=True)):
        assert top >= 0, f"window {i} starts above the image"
        assert left >= 0, f"window {i} starts left of the image"
        assert top + h <= height, f"window {i} ends below the image"
        assert left + w <= width, f"window {i} ends right of the image"
        masks[i] = paste_crop(flat[start : start + h * w].reshape(h, w), top, left, height, width)
        start += h * w
    assert start == flat.size, "the windows do not use every value"
    return masks

"""Overlay images: semantic classes as translucent colour, instances as outlines with labels.

An overlay is drawn at display size: small images are enlarged by a whole
factor (nearest neighbour, so pixels stay crisp and masks stay exact) and
large ones shrunk, so that the long side is about DISPLAY_LONG_SIDE pixels.
Masks arrive as the tables' COCO RLE strings and are decoded with pycocotools.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as mask_utils

from pipeline.report_palette import RGB, class_colour, text_colour_on
from transforms.elements import ClassMask, Instance

DISPLAY_LONG_SIDE = 640
SEMANTIC_ALPHA = 0.5  # Weight of the class colour over the image.
# Each instance's outline, drawn inside its mask: a white edge (so touching
# instances of one class stay apart) and then a band of the class colour.
EDGE_WIDTH = 1
OUTLINE_WIDTH = 3  # Display pixels, edge included.
EDGE_COLOUR: RGB = (255, 255, 255)
NO_IMAGE_GREY = 128  # Background when the original image is unavailable.
_LABEL_FONT_SIZE = 13
_LABEL_PADDING = 2


def display_size(width: int, height: int) -> tuple[int, int]:
    """The overlay's (width, height) for an image of `width` x `height` pixels.

    Images whose long side is under DISPLAY_LONG_SIDE are enlarged by the
    largest whole factor that keeps it at most DISPLAY_LONG_SIDE; larger ones
    are shrunk to a long side of DISPLAY_LONG_SIDE (aspect ratio kept).
    """
    long_side = max(width, height)
    if long_side <= DISPLAY_LONG_SIDE:
        factor = DISPLAY_LONG_SIDE // long_side
        return width * factor, height * factor
    scale = DISPLAY_LONG_SIDE / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def decode_rle(rle: str, height: int, width: int) -> np.ndarray:
    """A table's `rle` column value as a bool [height, width] mask."""
    return mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")}).astype(bool)


def render_overlay(
    original: np.ndarray | None,
    width: int,
    height: int,
    semantic: Sequence[ClassMask],
    instances: Sequence[Instance],
    class_names: Mapping[int, str],
) -> np.ndarray:
    """Draws one image's predictions over the image.

    Args:
      original: uint8 [height, width, 3] RGB, or None to draw on plain grey.
      width, height: The image's size, as in the tables.
      semantic: The image's semantic_masks rows (one per class present).
      instances: The image's instances rows; labelled "<class name> <score>".
      class_names: class_id -> name, for the labels.

    Returns:
      uint8 [H, W, 3] RGB with (W, H) = display_size(width, height).
    """
    out_w, out_h = display_size(width, height)
    rows, cols = _nearest_indices(height, out_h), _nearest_indices(width, out_w)
    canvas = _background(original, width, height, out_w, out_h)
    class_map = _class_map(semantic, height, width)[rows[:, None], cols[None, :]]
    canvas = _blend_classes(canvas, class_map)
    # Lowest score first, so the most confident instance's outline ends on top.
    ordered = sorted(instances, key=lambda inst: inst.score)
    for instance in ordered:
        mask = decode_rle(instance.rle, height, width)[rows[:, None], cols[None, :]]
        canvas[inner_boundary(mask, OUTLINE_WIDTH)] = class_colour(instance.class_id)
        canvas[inner_boundary(mask, EDGE_WIDTH)] = EDGE_COLOUR
    image = Image.fromarray(canvas)
    scale = out_w / width
    for instance in ordered:
        _draw_label(image, instance, class_names, scale)
    return np.asarray(image)


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 [H, W, 3] RGB as PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def inner_boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of bool [H, W] `mask` within `width` pixels (4-connected) of its outside.

    The image border counts as outside, so a mask touching it is outlined there too.
    """
    eroded = mask.copy()
    for _ in range(width):
        padded = np.pad(eroded, 1, constant_values=False)
        eroded = (
            padded[1:-1, 1:-1]
            & padded[:-2, 1:-1]
            & padded[2:, 1:-1]
            & padded[1:-1, :-2]
            & padded[1:-1, 2:]
        )
    return mask & ~eroded


def _nearest_indices(source_length: int, target_length: int) -> np.ndarray:
    """int [target_length] source index of each target pixel's centre (nearest neighbour)."""
    centres = (np.arange(target_length) + 0.5) * source_length / target_length
    return np.minimum(np.floor(centres).astype(np.int64), source_length - 1)


def _background(
    original: np.ndarray | None, width: int, height: int, out_w: int, out_h: int
) -> np.ndarray:
    if original is None:
        return np.full((out_h, out_w, 3), NO_IMAGE_GREY, dtype=np.uint8)
    if out_w >= width:
        rows, cols = _nearest_indices(height, out_h), _nearest_indices(width, out_w)
        return original[rows[:, None], cols[None, :]].copy()
    shrunk = Image.fromarray(original).resize((out_w, out_h), Image.Resampling.LANCZOS)
    return np.array(shrunk, dtype=np.uint8)


def _class_map(semantic: Sequence[ClassMask], height: int, width: int) -> np.ndarray:
    """int32 [height, width]: the class id of each pixel, -1 where no class is present."""
    class_map = np.full((height, width), -1, dtype=np.int32)
    for class_mask in semantic:
        class_map[decode_rle(class_mask.rle, height, width)] = class_mask.class_id
    return class_map


def _blend_classes(canvas: np.ndarray, class_map: np.ndarray) -> np.ndarray:
    blended = canvas.astype(np.float32)
    for class_id in np.unique(class_map):
        if class_id < 0:
            continue
        where = class_map == class_id
        colour = np.asarray(class_colour(int(class_id)), dtype=np.float32)
        blended[where] = (1.0 - SEMANTIC_ALPHA) * blended[where] + SEMANTIC_ALPHA * colour
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


@functools.cache
def _label_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=_LABEL_FONT_SIZE)


def _draw_label(
    image: Image.Image, instance: Instance, class_names: Mapping[int, str], scale: float
) -> None:
    """Writes "<class> <score>" on a chip of the class colour at the box's top-left corner."""
    name = class_names.get(instance.class_id, f"class {instance.class_id}")
    text = f"{name} {instance.score:.2f}"
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=_label_font())
    chip_w = right - left + 2 * _LABEL_PADDING
    chip_h = bottom - top + 2 * _LABEL_PADDING
    x = min(max(0, math.floor(instance.bbox_x * scale)), max(0, image.width - chip_w))
    y = math.floor(instance.bbox_y * scale) - chip_h
    if y < 0:  # No room above the box: put the chip just inside its top edge.
        y = max(0, math.floor(instance.bbox_y * scale))
    colour: RGB = class_colour(instance.class_id)
    draw.rectangle((x, y, x + chip_w - 1, y + chip_h - 1), fill=colour)
    draw.text(
        (x + _LABEL_PADDING - left, y + _LABEL_PADDING - top),
        text,
        font=_label_font(),
        fill=text_colour_on(colour),
    )

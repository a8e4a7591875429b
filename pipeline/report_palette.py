"""The report's fixed colour per class id, shared by its charts, legend and overlays.

Ids 0-6 (the bundled label map) get the classic Cityscapes colours of the
classes they name, so the overlays read like the familiar street-scene
figures; any other id gets a colour derived from the id alone, so a class
keeps its colour across runs and reports.
"""

from __future__ import annotations

import colorsys

RGB = tuple[int, int, int]

# Cityscapes' colours for sky, building, road, sidewalk, vegetation, car, person.
_FIXED: dict[int, RGB] = {
    0: (70, 130, 180),
    1: (70, 70, 70),
    2: (128, 64, 128),
    3: (244, 35, 232),
    4: (107, 142, 35),
    5: (0, 0, 142),
    6: (220, 20, 60),
}
# Successive hues a golden angle apart stay well separated for any number of ids.
_GOLDEN_ANGLE = 0.381966

# Colours of the two histograms; neither is a class colour, so the two kinds
# of chart can't be confused with each other (nor in a screenshot test).
HISTOGRAM_INSTANCES: RGB = (76, 114, 176)
HISTOGRAM_SCORES: RGB = (221, 132, 82)


def class_colour(class_id: int) -> RGB:
    """The colour of `class_id`: fixed for ids 0-6, derived from the id otherwise."""
    if class_id in _FIXED:
        return _FIXED[class_id]
    hue = (class_id * _GOLDEN_ANGLE) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.65, 0.85)
    return (round(red * 255), round(green * 255), round(blue * 255))


def hex_colour(rgb: RGB) -> str:
    """`rgb` as a CSS/SVG colour, e.g. (70, 130, 180) -> "#4682b4"."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def text_colour_on(rgb: RGB) -> RGB:
    """Black or white, whichever reads better on a background of colour `rgb`."""
    red, green, blue = rgb
    # ITU-R BT.601 luma: a cheap, good-enough brightness estimate for a label.
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luma > 150 else (255, 255, 255)

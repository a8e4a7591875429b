"""Input and output grids of the bundled networks, shared by training and export.

Kept free of TensorFlow imports so that render workers (spawned processes) start fast.
Images are stretched to INPUT_SHAPE = (height, width). The input is twice as
wide as tall because most images are landscape (aspect ratios 9:16 to 2:1, mean
about 1.3:1) and pedestrians, side by side in groups, are told apart
horizontally: at 256x256 a 2:1 image is squeezed horizontally twice as much as
vertically, and far pedestrians to 1-2 pixels; each step to 256x384, 256x512
and 320x640 raised pedestrian AP (the model card measures them). INPUT_SHAPE is
the shipped export's input and `models.train`'s default; `--input_shape`
trains (and exports) at another, as the bundled models' first five stages were
trained at 256x512. The decoder's features and the centre heatmaps are at
OUTPUT_STRIDE; the dense heads (semantic logits, thing segmentation, offsets)
are at DENSE_STRIDE: each feature cell predicts its (OUTPUT_STRIDE /
DENSE_STRIDE)^2 sub-cells (a sub-pixel convolution), because thin objects (far
pedestrians are 2-5 input pixels wide) are lost on the coarser grid.
"""

from __future__ import annotations

import argparse

ENCODER_STRIDE = 16  # The deepest encoder level's; input sides must be multiples of it.
INPUT_SHAPE = (320, 640)  # (height, width); both multiples of ENCODER_STRIDE.
OUTPUT_STRIDE = 2
DENSE_STRIDE = 1


def check_input_shape(shape: tuple[int, int]) -> None:
    """Raises ValueError unless both sides of (height, width) are positive multiples
    of ENCODER_STRIDE (the networks are fully convolutional down to that stride)."""
    height, width = shape
    if min(height, width) <= 0 or height % ENCODER_STRIDE or width % ENCODER_STRIDE:
        raise ValueError(
            f"input shape {height}x{width}: both sides must be positive multiples of "
            f"{ENCODER_STRIDE} (the encoder's deepest stride), e.g. 320x640"
        )


def parse_input_shape(text: str) -> tuple[int, int]:
    """'320x640' -> (320, 640), checked by `check_input_shape`; for argparse `type=`."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: give HEIGHTxWIDTH, e.g. 320x640") from e
    try:
        check_input_shape((height, width))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from e
    return height, width

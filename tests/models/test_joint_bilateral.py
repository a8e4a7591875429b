"""Tests for models/joint_bilateral.py: cases worked by hand, and a per-pixel loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import joint_bilateral
from models.joint_bilateral import JointBilateralParams, joint_bilateral_class_map

FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
SHARP = JointBilateralParams(radius=2, sigma_spatial=1.5, sigma_range=10.0)


def _two_class_map(columns: list[int], rows: int = 2) -> np.ndarray:
    """float32 [rows, len(columns), 2]: probability 0.9 for each column's class."""
    probabilities = np.full((rows, len(columns), 2), 0.1, np.float32)
    for j, c in enumerate(columns):
        probabilities[:, j, c] = 0.9
    return probabilities


def test_boundary_follows_the_image_edge_not_the_cell_midpoint() -> None:
    # Cells 0, 1 say class 0 and cells 2, 3 class 1; the 16-pixel-wide image is black up
    # to pixel 5 and white from pixel 6. Each cell covers 4 pixels, so cell 1 averages
    # two black and two white pixels (grey 127.5), cells 2 and 3 are white, cell 0 black.
    # Bilinear would switch class at the cells' midpoint (map column 1.5 = pixel 8).
    # Pixels 6 and 7 are white: their only white neighbours (cells 2, 3) say class 1,
    # the grey and black ones are 127.5 * sqrt(3) and 255 * sqrt(3) away (weight ~0 at
    # sigma_range 10). Pixels 4 and 5 are black: only cell 0 matches them, class 0.
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, 6:] = 255
    out = joint_bilateral_class_map(_two_class_map([0, 0, 1, 1]), image, FULL_BOX, SHARP)
    expected = np.repeat([[0] * 6 + [1] * 10], 8, axis=0)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_uniform_image_keeps_the_bilinear_boundary() -> None:
    # With no colour edge, the weights are spatial only and symmetric about the cells'
    # midpoint, so the boundary stays at pixel 8, as bilinear interpolation puts it.
    image = np.full((8, 16, 3), 90, np.uint8)
    out = joint_bilateral_class_map(_two_class_map([0, 0, 1, 1]), image, FULL_BOX, SHARP)
    np.testing.assert_array_equal(out.numpy(), np.repeat([[0] * 8 + [1] * 8], 8, axis=0))


def test_one_class_everywhere() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (23, 41, 3), dtype=np.uint8)
    probabilities = np.full((5, 7, 3), 0.2, np.float32)
    probabilities[..., 2] = 0.6
    out = joint_bilateral_class_map(probabilities, image, FULL_BOX, SHARP)
    np.testing.assert_array_equal(out.numpy(), np.full((23, 41), 2))


def test_letterboxed_map_reads_only_the_content_box() -> None:
    # The map is 8 columns wide and the image sits in its middle 4 (box columns
    # 0.25..0.75): cells 2-5 hold the first test's layout (class 0, 0, 1, 1) at the same
    # scale, and the padding cells (0, 1, 6, 7) predict class 1. Neighbours beyond the
    # box are read as its edge cells, so the answer is the first test's. Were padding
    # read, pixel 0 (map column 1.625, black like padding cell 1) would take class 1:
    # weights 0.56, 0.92 on cells 0, 1 against 0.97 on cell 2 (sigma 1.5).
    probabilities = _two_class_map([1, 1, 0, 0, 1, 1, 1, 1])
    image = np.zeros((8, 16, 3), np.uint8)
    image[:, 6:] = 255
    box = np.array([0.0, 0.25, 1.0, 0.75], np.float32)
    out = joint_bilateral_class_map(probabilities, image, box, SHARP)
    np.testing.assert_array_equal(out.numpy(), np.repeat([[0] * 6 + [1] * 10], 8, axis=0))


def _reference(
    probabilities: np.ndarray, image: np.ndarray, box: np.ndarray, params: JointBilateralParams
) -> np.ndarray:
    """The module's definition, pixel by pixel: the common class of the four nearest
    cells where they agree, else the argmax of the weighted neighbourhood."""
    h, w, _ = probabilities.shape
    height, width = image.shape[:2]
    guide = tf.raw_ops.ScaleAndTranslate(
        images=image[None].astype(np.float32),
        size=[h, w],
        scale=[(box[2] - box[0]) * h / height, (box[3] - box[1]) * w / width],
        translation=[box[0] * h, box[1] * w],
        kernel_type="triangle",
        antialias=True,
    ).numpy()[0]
    cell_ids = probabilities.argmax(-1)
    # The cells the content box touches; neighbours outside it read the nearest inside.
    top, bottom = int(np.floor(box[0] * h)), int(np.ceil(box[2] * h)) - 1
    left, right = int(np.floor(box[1] * w)), int(np.ceil(box[3] * w)) - 1
    out = np.zeros((height, width), np.int64)
    for i in range(height):
        y = (box[0] + (i + 0.5) / height * (box[2] - box[0])) * h - 0.5
        for j in range(width):
            x = (box[1] + (j + 0.5) / width * (box[3] - box[1])) * w - 0.5
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            quad = {
                cell_ids[min(max(a, top), bottom), min(max(b, left), right)]
                for a in (y0, y0 + 1)
                for b in (x0, x0 + 1)
            }
            if len(quad) == 1:
                out[i, j] = quad.pop()
                continue
            total = np.zeros(probabilities.shape[2])
            for a in range(y0 - params.radius + 1, y0 + params.radius + 1):
                for b in range(x0 - params.radius + 1, x0 + params.radius + 1):
                    ca, cb = min(max(a, top), bottom), min(max(b, left), right)
                    spatial = np.exp(-((y - a) ** 2 + (x - b) ** 2) / (2 * params.sigma_spatial**2))
                    distance = np.sum((image[i, j].astype(np.float64) - guide[ca, cb]) ** 2)
                    similarity = np.exp(-distance / (2 * params.sigma_range**2)) + 1e-4
                    total += spatial * similarity * probabilities[ca, cb]
            out[i, j] = total.argmax()
    return out


@pytest.mark.parametrize(
    ("box", "image_size"),
    [
        (FULL_BOX, (29, 37)),  # Upsampling.
        (FULL_BOX, (7, 5)),  # Downsampling: several cells per pixel.
        (np.array([0.125, 0.0, 0.875, 1.0], np.float32), (21, 40)),  # Letterboxed.
    ],
)
def test_matches_a_per_pixel_reference(box: np.ndarray, image_size: tuple[int, int]) -> None:
    # Smooth random class fields and a blocky random image, so that quads are mixed in
    # places and colours differ across them.
    rng = np.random.default_rng(7)
    logits = tf.image.resize(rng.normal(size=(1, 3, 4, 4)), (8, 10)).numpy()[0] * 3
    probabilities = tf.nn.softmax(logits).numpy().astype(np.float32)
    blocks = rng.integers(0, 256, (1, 4, 5, 3)).astype(np.float32)
    image = tf.image.resize(blocks, image_size, "nearest").numpy()[0].astype(np.uint8)
    params = JointBilateralParams(radius=3, sigma_spatial=2.0, sigma_range=40.0)
    out = joint_bilateral_class_map(probabilities, image, box, params).numpy()
    expected = _reference(probabilities, image, box, params)
    assert len(np.unique(expected)) > 1
    np.testing.assert_array_equal(out, expected)


def test_chunked_votes_equal_one_vote_over_all_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    # A random 3-class map of 12x16 cells over a 150x200 noise image: most pixels are
    # mixed, several chunks' worth, and the last chunk is partial.
    rng = np.random.default_rng(7)
    probabilities = rng.dirichlet(np.ones(3), size=(12, 16)).astype(np.float32)
    image = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    chunked = joint_bilateral_class_map(probabilities, image, FULL_BOX, SHARP).numpy()
    monkeypatch.setattr(joint_bilateral, "_PIXELS_PER_CHUNK", 10**9)
    whole = joint_bilateral_class_map(probabilities, image, FULL_BOX, SHARP).numpy()
    np.testing.assert_array_equal(chunked, whole)
    assert len(np.unique(chunked)) == 3


def test_radius_must_be_positive() -> None:
    with pytest.raises(ValueError, match="radius must be >= 1"):
        joint_bilateral_class_map(
            np.ones((2, 2, 2), np.float32),
            np.zeros((4, 4, 3), np.uint8),
            FULL_BOX,
            JointBilateralParams(0, 1.0, 10.0),
        )

"""Training data: scenes rendered in memory, resized to the model input, and targets.

Scenes are rendered at their natural varied sizes and stretched to the model
input (`models.train`'s --input_shape, by default INPUT_SHAPE), exactly as the
pipeline stretches its inputs, so the models see the same aspect-ratio
distortions in training as in production. This module does not import
TensorFlow, so render workers start fast under the "spawn" method.
"""

from __future__ import annotations

import io
import multiprocessing
from typing import NamedTuple

import numpy as np
from PIL import Image

from models.net_geometry import DENSE_STRIDE
from models.net_geometry import OUTPUT_STRIDE as STRIDE
from models.synthetic_render import Scene, scene_for_index

THING_CLASS_IDS = (5, 6)


class TrainingSet(NamedTuple):
    """Scenes at model input size.

    images: uint8 [N, H, W, 3]; class_maps: uint8 [N, H, W] (class id);
    instance_maps: uint8 [N, H, W] (0 = none, k = instance k).
    """

    images: np.ndarray
    class_maps: np.ndarray
    instance_maps: np.ndarray


class InstanceTargets(NamedTuple):
    """Per-batch instance-model targets.

    thing: int32 [B, H, W] (the input's sides), 0 background, 1 vehicle, 2 pedestrian.
    heatmap: float32 [B, H/2, W/2, 2] (OUTPUT_STRIDE), Gaussian centre heatmaps
      per thing class, exactly 1.0 at the grid cell holding each instance's centroid.
    offsets: float32 [B, H, W, 2] (DENSE_STRIDE), (dy, dx) in input pixels from
      each dense cell's centre to its instance's centroid (0 off instances).
    offset_weight: float32 [B, H, W], 1 on instance cells.
    """

    thing: np.ndarray
    heatmap: np.ndarray
    offsets: np.ndarray
    offset_weight: np.ndarray


def stretched_scene(
    seed: int, index: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renders scene (seed, index) and stretches it to shape (height, width)."""
    scene = scene_for_index(seed, index)
    rng = np.random.default_rng([seed, index, 1])
    image = Image.fromarray(scene.image)
    height, width = shape
    size = (width, height)  # PIL sizes are (width, height).
    if rng.random() < 0.5:
        image = image.resize(size, Image.Resampling.BILINEAR)
    else:
        # Point-sampled bilinear without antialiasing, like tf.image.resize's default.
        w, h = image.size
        image = image.transform(
            size,
            Image.Transform.AFFINE,
            (w / width, 0, 0, 0, h / height, 0),
            Image.Resampling.BILINEAR,
        )
    if rng.random() < 0.5:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
        image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    class_map, instance_map = stretched_maps(scene, shape)
    return np.asarray(image), class_map, instance_map


def stretched_maps(scene: Scene, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The scene's class and instance maps, uint8, stretched to shape (height, width) by
    nearest neighbour (ids must not blend)."""
    size = (shape[1], shape[0])  # PIL sizes are (width, height).
    return tuple(
        np.asarray(Image.fromarray(m).resize(size, Image.Resampling.NEAREST))
        for m in (scene.class_map, scene.instance_map)
    )


def _render_range(args: tuple[int, int, int, tuple[int, int]]) -> TrainingSet:
    seed, start, stop, shape = args
    parts = [stretched_scene(seed, i, shape) for i in range(start, stop)]
    return TrainingSet(*(np.stack([p[k] for p in parts]) for k in range(3)))


def render_training_set(
    seed: int, count: int, shape: tuple[int, int], workers: int = 2
) -> TrainingSet:
    """Renders scenes (seed, 0..count-1) stretched to shape (height, width) with
    `workers` processes."""
    chunk = 50
    jobs = [(seed, s, min(count, s + chunk), shape) for s in range(0, count, chunk)]
    if workers <= 1:
        results = [_render_range(j) for j in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_render_range, jobs)
    return TrainingSet(*(np.concatenate([r[k] for r in results]) for k in range(3)))


def augment(batch: TrainingSet, rng: np.random.Generator, crop: int) -> TrainingSet:
    """Random horizontal flips (street scenes are mirror-symmetric) and one random
    crop of side `crop` for the whole batch, at an even offset so the output grid
    stays aligned. The networks are fully convolutional, so crops train the
    full-size model on less compute."""
    flip = rng.random(len(batch.images)) < 0.5
    flipped = [np.where(flip.reshape((-1,) + (1,) * (a.ndim - 1)), a[:, :, ::-1], a) for a in batch]
    height, width = batch.images.shape[1:3]
    y0, x0 = (
        int(rng.integers(0, (side - crop) // STRIDE + 1)) * STRIDE for side in (height, width)
    )
    return TrainingSet(*(a[:, y0 : y0 + crop, x0 : x0 + crop] for a in flipped))


def instance_targets(class_maps: np.ndarray, instance_maps: np.ndarray) -> InstanceTargets:
    """Builds the instance targets for a batch (see InstanceTargets)."""
    b = len(class_maps)
    thing = np.zeros(class_maps.shape, dtype=np.int32)
    for k, class_id in enumerate(THING_CLASS_IDS, start=1):
        thing[class_maps == class_id] = k
    height, width = class_maps.shape[1:3]
    heatmap = np.zeros((b, height // STRIDE, width // STRIDE, 2), dtype=np.float32)
    offsets = np.zeros((b, height // DENSE_STRIDE, width // DENSE_STRIDE, 2), dtype=np.float32)
    for n in range(b):
        _image_targets(class_maps[n], instance_maps[n], heatmap[n], offsets[n])
    sub = instance_maps[:, ::DENSE_STRIDE, ::DENSE_STRIDE]
    return InstanceTargets(thing, heatmap, offsets, (sub > 0).astype(np.float32))


def _cell_centres(cells: int, stride: int) -> np.ndarray:
    """Cell i of a stride-s grid covers input pixels [s*i, s*i + s); its centre is s*i + s/2."""
    return np.arange(cells, dtype=np.float32) * stride + stride / 2


def _image_targets(
    class_map: np.ndarray,
    instance_map: np.ndarray,
    heatmap: np.ndarray,
    offsets: np.ndarray,
) -> None:
    """Fills one image's heatmap [Gh, Gw, 2] and offsets [Dh, Dw, 2] in place."""
    flat = instance_map.ravel().astype(np.int64)
    n = int(flat.max()) if flat.size else 0
    if n == 0:
        return
    rows, cols = np.divmod(np.arange(flat.size), instance_map.shape[1])
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    # Pixel centres are at +0.5 in continuous coordinates.
    cy = np.bincount(flat, weights=rows + 0.5, minlength=n + 1) / np.maximum(area, 1)
    cx = np.bincount(flat, weights=cols + 0.5, minlength=n + 1) / np.maximum(area, 1)
    cls = np.zeros(n + 1, dtype=np.int64)
    cls[flat] = class_map.ravel()
    sub = instance_map[::DENSE_STRIDE, ::DENSE_STRIDE].astype(np.int64)
    on = sub > 0
    dense_rows = _cell_centres(sub.shape[0], DENSE_STRIDE)
    dense_cols = _cell_centres(sub.shape[1], DENSE_STRIDE)
    offsets[..., 0] = np.where(on, cy[sub] - dense_rows[:, None], 0.0)
    offsets[..., 1] = np.where(on, cx[sub] - dense_cols[None, :], 0.0)
    cell_rows = _cell_centres(heatmap.shape[0], STRIDE)
    cell_cols = _cell_centres(heatmap.shape[1], STRIDE)
    for k in range(1, n + 1):
        if area[k] == 0 or cls[k] not in THING_CLASS_IDS:
            continue
        _splat(
            heatmap[..., THING_CLASS_IDS.index(int(cls[k]))],
            cy[k],
            cx[k],
            area[k],
            (cell_rows, cell_cols),
        )


def _splat(
    channel: np.ndarray,
    cy: float,
    cx: float,
    area: float,
    cell_centres: tuple[np.ndarray, np.ndarray],
) -> None:
    """Max-splats a Gaussian peaking at 1.0 on the grid cell holding (cy, cx).

    cell_centres: (row centres, column centres) of the channel's grid, input pixels.
    """
    sigma = float(np.clip(0.12 * np.sqrt(area), 2.0, 8.0))  # Input pixels.
    rows, cols = cell_centres
    i, j = min(int(cy // STRIDE), len(rows) - 1), min(int(cx // STRIDE), len(cols) - 1)
    radius = int(np.ceil(3 * sigma / STRIDE))
    i0, i1, j0, j1 = (
        max(i - radius, 0),
        min(i + radius + 1, len(rows)),
        max(j - radius, 0),
        min(j + radius + 1, len(cols)),
    )
    dy = rows[i0:i1] - rows[i]
    dx = cols[j0:j1] - cols[j]
    g = np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma**2))
    np.maximum(channel[i0:i1, j0:j1], g, out=channel[i0:i1, j0:j1])

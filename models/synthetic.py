"""Procedural street scenes with ground truth, written as TFRecord shards.

    python -m models.synthetic --output DIR --num_images N --seed S \\
        [--images_per_shard K] [--image_format jpeg|png] [--size HxW]

Writes `DIR/scenes-00000-of-0000K.tfrecord` shards of `tf.train.Example`s with
TF Object Detection API keys, and copies the label map to `DIR/labels.txt`.
Output bytes depend only on the arguments (image i uses its own generator
seeded from (seed, i)).

What is rendered (the distribution the bundled models are trained on):
  * Image size: unless --size is given, the aspect ratio (W:H) is one of 1:1,
    4:3, 3:2, 16:9, 2:1, 3:4, 9:16 (uniform) and the short side is uniform in
    [256, 1024 / ratio], so both sides lie in [256, 1024].
  * Camera: height 2.5-6 m, horizontal FOV 55-95 deg, horizon at 30-50% of the
    image height, vanishing point at 30-70% of the width.
  * Street: road half-width 3.5-7.5 m with dashed lane lines (30%: a zebra
    crossing), sidewalks 2-4.5 m wide, building facades 8-30 m long and
    (camera height + 2 m) to 30 m tall with windows, 50%: a building closing
    the far end of the street. Sky is a clear, overcast or dusk gradient.
  * Vegetation: 60% per side, a row of trees every 7-16 m; 30% per side a hedge.
  * Vehicles (class 5; cars 75%, vans 17%, buses 8%): per kerb with p=0.65 a
    row of 2-6 cars parked bumper to bumper (0.15-1.2 m apart, so they overlap
    in the image), 0-4 cars in the lanes up to 70 m away, and with p=0.35 a
    queue of 2-4 cars crossing side-on, touching or overlapping.
  * Pedestrians (class 6): 0-4 groups of 1-5 people standing 0.25-0.65 m apart
    (overlapping), up to 35 m away; 30%: an extra group crossing the road.
    Heights 1.55-1.95 m (15% children, 1.05-1.45 m).
  * Objects shrink with depth; vehicles shorter than 3.5% and pedestrians
    shorter than 6% of the image height are not placed. Painting is far to
    near, so nearer objects occlude farther ones; an instance's mask is its
    visible pixels only. Things with fewer than max(12 px, 0.02% of the image)
    visible pixels, or less than 20% of their own area visible, are removed.
    Typically 5-25 instances per image (at most 250).
  * Camera effects: 70% Gaussian blur of radius 0.3-1.6 px x (short side /
    512); brightness gain 0.55-1.35 with a per-channel tint (sd 6%); a linear
    lighting ramp of +-25% in a random direction; 40% a cast shadow darkening
    a random quadrilateral to 55-85%; Gaussian luminance noise with sd 0-10
    (of 255); then JPEG q=90 (or PNG).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from models.synthetic_render import Scene, render_scene, sample_size, scene_for_index

__all__ = [
    "Scene",
    "encode_example",
    "render_scene",
    "sample_size",
    "scene_for_index",
    "write_shards",
]

LABELS_PATH = Path(__file__).resolve().parent / "bundled" / "labels.txt"


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _encode_image(image: np.ndarray, image_format: str) -> bytes:
    if image_format == "png":
        return _png(image)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _boxes(masks: np.ndarray) -> np.ndarray:
    """Normalized [ymin, xmin, ymax, xmax] of each bool [N, H, W] mask: float32 [N, 4]."""
    n, h, w = masks.shape
    boxes = np.zeros((n, 4), dtype=np.float32)
    for i in range(n):
        rows, cols = np.flatnonzero(masks[i].any(axis=1)), np.flatnonzero(masks[i].any(axis=0))
        boxes[i] = (rows[0] / h, cols[0] / w, (rows[-1] + 1) / h, (cols[-1] + 1) / w)
    return boxes


def encode_example(
    scene: Scene, filename: str, source_id: str, image_format: str = "jpeg"
) -> bytes:
    """Serializes a scene as a `tf.train.Example` with Object Detection API keys.

    Returns:
      The deterministic serialization (map keys sorted), so reruns are byte-identical.
    """
    height, width = scene.class_map.shape
    masks = scene.instance_masks
    boxes = _boxes(masks)

    def b(values: list[bytes]) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def i(values: list[int]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def f(values: np.ndarray) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))

    feature = {
        "image/encoded": b([_encode_image(scene.image, image_format)]),
        "image/format": b([image_format.encode()]),
        "image/filename": b([filename.encode()]),
        "image/source_id": b([source_id.encode()]),
        "image/height": i([height]),
        "image/width": i([width]),
        "image/segmentation/class/encoded": b([_png(scene.class_map)]),
        "image/segmentation/class/format": b([b"png"]),
        "image/object/mask": b([_png(m.astype(np.uint8)) for m in masks]),
        "image/object/class/label": i([int(c) for c in scene.instance_class_ids]),
        "image/object/bbox/ymin": f(boxes[:, 0]),
        "image/object/bbox/xmin": f(boxes[:, 1]),
        "image/object/bbox/ymax": f(boxes[:, 2]),
        "image/object/bbox/xmax": f(boxes[:, 3]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def _shard_ranges(num_images: int, images_per_shard: int) -> Iterator[tuple[int, int, int]]:
    num_shards = max(1, -(-num_images // images_per_shard))
    for shard in range(num_shards):
        yield shard, shard * images_per_shard, min(num_images, (shard + 1) * images_per_shard)


def _record(job: tuple[int, int, tuple[int, int] | None, str]) -> bytes:
    """Renders and serializes scene (seed, index): the unit of work of a render worker."""
    seed, index, size, image_format = job
    scene = scene_for_index(seed, index, size)
    name = f"scene_{seed}_{index:06d}.{'jpg' if image_format == 'jpeg' else 'png'}"
    return encode_example(scene, name, f"{seed}/{index}", image_format)


def write_shards(
    output: str | Path,
    num_images: int,
    seed: int,
    images_per_shard: int = 100,
    image_format: str = "jpeg",
    size: tuple[int, int] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Renders `num_images` scenes into TFRecord shards plus `labels.txt`.

    Args:
      output: Directory to create (existing shards with the same names are overwritten).
      num_images: Number of scenes.
      seed: Dataset seed; scene i is `scene_for_index(seed, i, size)`.
      images_per_shard: Records per shard (the last shard may hold fewer).
      image_format: "jpeg" (quality 90) or "png".
      size: (height, width) for every image, or None for varied sizes.
      workers: Render processes. Output bytes do not depend on it (each scene
        has its own generator and records are written in index order).

    Returns:
      The shard paths, in order.
    """
    if image_format not in ("jpeg", "png"):
        raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}.")
    if num_images < 1 or images_per_shard < 1:
        raise ValueError(
            "num_images and images_per_shard must be >= 1, "
            f"got {num_images} and {images_per_shard}."
        )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LABELS_PATH, out / "labels.txt")
    jobs = [(seed, index, size, image_format) for index in range(num_images)]
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers))
            records = pool.imap(_record, jobs, chunksize=8)
        else:
            records = map(_record, jobs)
        return _write_records(out, records, num_images, images_per_shard)


def _write_records(
    out: Path, records: Iterator[bytes], num_images: int, images_per_shard: int
) -> list[Path]:
    ranges = list(_shard_ranges(num_images, images_per_shard))
    paths = []
    for shard, start, stop in ranges:
        path = out / f"scenes-{shard:05d}-of-{len(ranges):05d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for _ in range(start, stop):
                writer.write(next(records))
        paths.append(path)
    return paths


def _parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"--size must look like 512x640 (HxW), got {text!r}."
        ) from e
    if height < 32 or width < 32:
        raise argparse.ArgumentTypeError(f"--size sides must be >= 32 pixels, got {text!r}.")
    return height, width


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="Directory to write shards into.")
    parser.add_argument("--num_images", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--images_per_shard", type=int, default=100)
    parser.add_argument("--image_format", choices=("jpeg", "png"), default="jpeg")
    parser.add_argument("--size", type=_parse_size, default=None, help="HxW, e.g. 512x512.")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="Render processes."
    )
    args = parser.parse_args(argv)
    # A spawned worker takes seconds to start (it imports TensorFlow); worth it for many scenes.
    workers = min(args.workers, max(1, args.num_images // 32))
    paths = write_shards(
        args.output,
        args.num_images,
        args.seed,
        args.images_per_shard,
        args.image_format,
        args.size,
        workers,
    )
    print(f"Wrote {args.num_images} scenes in {len(paths)} shard(s) to {args.output}")


if __name__ == "__main__":
    main()

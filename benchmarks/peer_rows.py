"""The RunInference peer's per-element steps, written as a Beam user would write them.

Decoding with Pillow and resizing with `tf.image.resize` (as the pipeline's
loader does, so both feed the models identical inputs), then turning each
model's raw outputs into the same table rows the pipeline writes: the semantic
logits are resized to the image (bilinear, or with the library's joint bilateral
upsampling when the spec asks for it), argmaxed and each class mask is encoded with
`pycocotools.mask.encode`; instance box masks are pasted into full-image masks
(OD-API's `reframe_box_masks_to_image_masks`, or the library's joint bilateral
paste when the spec asks for it), thresholded and encoded with pycocotools on
the whole image.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from PIL import Image
from pycocotools import mask as coco_mask

from models.joint_bilateral import DEFAULT_PARAMS, joint_bilateral_class_map
from models.mask_paste import paste_masks
from models.preprocess import FULL_CONTENT_BOX
from models.spec_keys import UPSAMPLING_JOINT_BILATERAL

Row = dict[str, Any]
_MIN_BOX_SIZE = 1e-4  # OD-API's guard against zero-size boxes.


class ImageKey(NamedTuple):
    """What the peer carries next to each model input, through RunInference's keys."""

    image_id: str
    source: str
    height: int
    width: int
    filename: str
    source_id: str
    content_sha256: str
    # uint8 [height, width, 3], for joint bilateral upsampling and pasting; None once the key
    # leaves the fused model steps, so decoded pixels never cross a shuffle.
    pixels: np.ndarray | None = None


class SemanticOut(NamedTuple):
    """One image's semantic rows and per-class pixel counts."""

    mask_rows: list[Row]
    pixel_counts: dict[int, int]


class InstanceOut(NamedTuple):
    """One image's instance rows."""

    rows: list[Row]


def _feature_bytes(example: tf.train.Example, key: str) -> bytes:
    values = example.features.feature[key].bytes_list.value
    return values[0] if values else b""


def decode_and_resize(
    element: tuple[str, bytes], input_size: tuple[int, int]
) -> tuple[ImageKey, np.ndarray]:
    """(shard path, serialized Example) -> (key, uint8 [in_h, in_w, 3] model input)."""
    source, record = element
    example = tf.train.Example.FromString(record)
    encoded = _feature_bytes(example, "image/encoded")
    with Image.open(io.BytesIO(encoded)) as image:
        pixels = np.asarray(image.convert("RGB"))
    resized = tf.image.resize(pixels, input_size)
    model_input = tf.saturate_cast(tf.round(resized), tf.uint8).numpy()
    sha256 = hashlib.sha256(encoded).hexdigest()
    key = ImageKey(
        image_id=sha256[:20],  # Content-addressed: ReadFromTFRecord gives no record index.
        source=source,
        height=pixels.shape[0],
        width=pixels.shape[1],
        filename=_feature_bytes(example, "image/filename").decode(),
        source_id=_feature_bytes(example, "image/source_id").decode(),
        content_sha256=sha256,
        pixels=pixels,
    )
    return key, model_input


@tf.function(
    input_signature=[
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None, None, 3], tf.uint8),
    ]
)
def _joint_bilateral_classes(logits: tf.Tensor, pixels: tf.Tensor) -> tf.Tensor:
    """int32 [H, W] class map of one image's logits [h, w, C] and pixels [H, W, 3].

    Compiled once, for every image size (as the pipeline's post-processing is): run
    eagerly, its several dozen ops would each pay Python dispatch on every image.
    """
    return joint_bilateral_class_map(
        tf.nn.softmax(logits), pixels, FULL_CONTENT_BOX, DEFAULT_PARAMS
    )


def semantic_rows(
    element: tuple[ImageKey, PredictionResult], class_names: Mapping[int, str], upsampling: str
) -> tuple[str, SemanticOut]:
    """Logits -> full-resolution class map -> one pycocotools RLE row per class present."""
    key, result = element
    logits = result.inference["logits"]
    if upsampling == UPSAMPLING_JOINT_BILATERAL:
        class_map = _joint_bilateral_classes(logits, key.pixels).numpy()
    else:
        resized = tf.image.resize(logits[np.newaxis], (key.height, key.width), "bilinear")
        class_map = tf.argmax(resized[0], axis=-1, output_type=tf.int32).numpy()
    rows, counts = [], {}
    for class_id in np.unique(class_map):
        mask = np.asfortranarray(class_map == class_id, dtype=np.uint8)
        rle = coco_mask.encode(mask)
        counts[int(class_id)] = int(coco_mask.area(rle))
        rows.append(
            {
                "image_id": key.image_id,
                "class_id": int(class_id),
                "class_name": class_names.get(int(class_id), f"class_{class_id}"),
                "height": key.height,
                "width": key.width,
                "pixel_count": counts[int(class_id)],
                "rle": rle["counts"].decode("ascii"),
            }
        )
    return key.image_id, SemanticOut(rows, counts)


def paste_box_masks(
    box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int
) -> np.ndarray:
    """OD-API's reframe_box_masks_to_image_masks: float [N, M, M] in boxes -> float [N, H, W]."""
    boxes = tf.constant(boxes, tf.float32)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=1)
    box_h = tf.maximum(ymax - ymin, _MIN_BOX_SIZE)
    box_w = tf.maximum(xmax - xmin, _MIN_BOX_SIZE)
    image_in_box = tf.stack(
        [-ymin / box_h, -xmin / box_w, (1 - ymin) / box_h, (1 - xmin) / box_w], 1
    )
    pasted = tf.image.crop_and_resize(
        box_masks[:, :, :, np.newaxis],
        image_in_box,
        tf.range(tf.shape(boxes)[0]),
        (height, width),
        extrapolation_value=0.0,
    )
    return pasted[:, :, :, 0].numpy()


@tf.function(
    input_signature=[
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None, 4], tf.float32),
        tf.TensorSpec([None, None, 3], tf.uint8),
        tf.TensorSpec([], tf.float32),
    ]
)
def _joint_bilateral_windows(
    box_masks: tf.Tensor, boxes: tf.Tensor, pixels: tf.Tensor, mask_threshold: tf.Tensor
) -> dict[str, tf.Tensor]:
    """The library's joint bilateral paste of box masks [N, M, M] into pixels [H, W, 3],
    compiled once for every image size, like `_joint_bilateral_classes`."""
    return paste_masks(
        box_masks, boxes, tf.shape(pixels)[:2], mask_threshold, pixels, DEFAULT_PARAMS
    )


def joint_bilateral_box_masks(
    box_masks: np.ndarray, boxes: np.ndarray, pixels: np.ndarray, mask_threshold: float
) -> np.ndarray:
    """bool [N, H, W]: box masks pasted with joint bilateral upsampling, as full-image masks."""
    out = _joint_bilateral_windows(box_masks, boxes, pixels, mask_threshold)
    sizes, offsets = out["mask_sizes"].numpy(), out["mask_offsets"].numpy()
    flat = out["masks"].numpy()
    full = np.zeros((len(sizes), *pixels.shape[:2]), bool)
    start = 0
    for mask, (h, w), (top, left) in zip(full, sizes, offsets, strict=True):
        mask[top : top + h, left : left + w] = flat[start : start + h * w].reshape(h, w)
        start += h * w
    return full


def instance_rows(
    element: tuple[ImageKey, PredictionResult],
    class_names: Mapping[int, str],
    thresholds: tuple[float, float],
    label_offset: int,
    upsampling: str,
) -> tuple[str, InstanceOut]:
    """OD-API detections -> full-image masks -> one pycocotools RLE row per instance."""
    key, result = element
    score_threshold, mask_threshold = thresholds
    out = result.inference
    count = int(out["num_detections"])
    keep = np.flatnonzero(out["detection_scores"][:count] >= score_threshold)
    rows: list[Row] = []
    if keep.size:
        box_masks, boxes = out["detection_masks"][keep], out["detection_boxes"][keep]
        if upsampling == UPSAMPLING_JOINT_BILATERAL:
            masks = joint_bilateral_box_masks(box_masks, boxes, key.pixels, mask_threshold)
        else:
            masks = paste_box_masks(box_masks, boxes, key.height, key.width) > mask_threshold
        binary = np.asfortranarray(masks.transpose(1, 2, 0), dtype=np.uint8)
        rles = coco_mask.encode(binary)
        areas, bboxes = coco_mask.area(rles), coco_mask.toBbox(rles)
        for index, rle, area, bbox in zip(keep, rles, areas, bboxes, strict=True):
            if area == 0:
                continue  # Empty after thresholding: the pipeline drops these too.
            class_id = round(float(out["detection_classes"][index])) + label_offset
            rows.append(
                {
                    "image_id": key.image_id,
                    "instance_id": f"{key.image_id}-{len(rows):04d}",
                    "class_id": class_id,
                    "class_name": class_names.get(class_id, f"class_{class_id}"),
                    "score": float(out["detection_scores"][index]),
                    "bbox_x": float(bbox[0]),
                    "bbox_y": float(bbox[1]),
                    "bbox_w": float(bbox[2]),
                    "bbox_h": float(bbox[3]),
                    "area": int(area),
                    "height": key.height,
                    "width": key.width,
                    "rle": rle["counts"].decode("ascii"),
                }
            )
    return key.image_id, InstanceOut(rows)


def joined_rows(
    element: tuple[str, Mapping[str, Iterable[Any]]], class_names: Mapping[int, str]
) -> Iterator[tuple[str, Row]]:
    """(image_id, {"key", "semantic", "instance"}) -> ("images" | "class_counts", row)."""
    image_id, groups = element
    (key,) = groups["key"]
    (semantic,) = groups["semantic"]
    (instance,) = groups["instance"]
    yield (
        "images",
        {
            "image_id": image_id,
            "source": key.source,
            "record_index": -1,  # Unknown: ReadFromTFRecord does not say.
            "width": key.width,
            "height": key.height,
            "num_instances": len(instance.rows),
            "filename": key.filename,
            "source_id": key.source_id,
            "content_sha256": key.content_sha256,
        },
    )
    instance_counts: dict[int, int] = {}
    for row in instance.rows:
        instance_counts[row["class_id"]] = instance_counts.get(row["class_id"], 0) + 1
    total = max(1, key.width * key.height)
    for class_id in sorted(set(semantic.pixel_counts) | set(instance_counts)):
        pixels = semantic.pixel_counts.get(class_id, 0)
        yield (
            "class_counts",
            {
                "image_id": image_id,
                "class_id": class_id,
                "class_name": class_names.get(class_id, f"class_{class_id}"),
                "pixel_count": pixels,
                "pixel_fraction": pixels / total,
                "instance_count": instance_counts.get(class_id, 0),
            },
        )

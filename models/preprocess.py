"""Per-image preprocessing: resize for the model, normalise, cast to its input dtype.

Geometry is carried by a *content box*: float32 [4] = [top, left, bottom, right],
the part of the model input (normalised to 0..1) that the original image
occupies. Stretch and "none" resizing give FULL_CONTENT_BOX; letterboxing gives
the box inside the padding. It is resolution-independent, so post-processing
(models.semantic_postprocess, models.instance_postprocess) maps logits of any
resolution and normalised detection boxes back to the original image through it.
"""

from __future__ import annotations

import tensorflow as tf

from models.spec_keys import RESIZE_LETTERBOX, RESIZE_STRETCH, MeanStd

# The content box of an image that fills the model input.
FULL_CONTENT_BOX = (0.0, 0.0, 1.0, 1.0)


def letterbox_layout(
    height: tf.Tensor, width: tf.Tensor, input_size: tuple[int, int]
) -> dict[str, tf.Tensor]:
    """Where an image lands when scaled to fit `input_size` keeping its aspect ratio.

    Args:
      height: int32 scalar, image height.
      width: int32 scalar, image width.
      input_size: (in_h, in_w) of the model input.

    Returns:
      "size": int32 [2] scaled (h, w), at least 1 and at most input_size;
      "offset": int32 [2] (top, left) padding before the image, centring it.
    """
    target = tf.constant(input_size, tf.float32)
    source = tf.cast(tf.stack([height, width]), tf.float32)
    scale = tf.reduce_min(target / source)
    size = tf.cast(tf.clip_by_value(tf.round(source * scale), 1.0, target), tf.int32)
    offset = (tf.constant(input_size, tf.int32) - size) // 2
    return {"size": size, "offset": offset}


def _letterbox(pixels: tf.Tensor, input_size: tuple[int, int]) -> dict[str, tf.Tensor]:
    """`resize_image` for "letterbox": float32 [H, W, 3] -> padded input and its content box."""
    shape = tf.shape(pixels)
    layout = letterbox_layout(shape[0], shape[1], input_size)
    scaled = tf.image.resize(pixels, layout["size"])
    padded = tf.image.pad_to_bounding_box(
        scaled, layout["offset"][0], layout["offset"][1], input_size[0], input_size[1]
    )
    corners = tf.cast(
        tf.concat([layout["offset"], layout["offset"] + layout["size"]], 0), tf.float32
    )
    return {"image": padded, "content_box": corners / tf.constant(input_size * 2, tf.float32)}


def resize_image(
    image: tf.Tensor, input_size: tuple[int, int] | None, resize: str
) -> dict[str, tf.Tensor]:
    """Resizes one image for the model (bilinear, half-pixel centres, no antialiasing).

    Args:
      image: uint8 [H, W, 3].
      input_size: (in_h, in_w), or None to keep the image's own size.
      resize: "stretch", "letterbox" or "none".

    Returns:
      "image": float32 [in_h, in_w, 3], pixel values 0..255 (letterbox padding is 0);
      "content_box": float32 [4], see the module docstring.
    """
    pixels = tf.cast(image, tf.float32)
    if input_size is not None and resize == RESIZE_LETTERBOX:
        return _letterbox(pixels, input_size)
    if input_size is not None and resize == RESIZE_STRETCH:
        pixels = tf.image.resize(pixels, input_size)
    return {"image": pixels, "content_box": tf.constant(FULL_CONTENT_BOX)}


def normalize(pixels: tf.Tensor, input_range: str | MeanStd) -> tf.Tensor:
    """Maps float32 pixels in 0..255 to the model's input range.

    "uint8" keeps 0..255, "unit" gives 0..1, "symmetric" gives -1..1, and
    MeanStd gives (pixels - mean) / std per channel.
    """
    if isinstance(input_range, MeanStd):
        return (pixels - tf.constant(input_range.mean)) / tf.constant(input_range.std)
    if input_range == "unit":
        return pixels / 255.0
    if input_range == "symmetric":
        return pixels / 127.5 - 1.0
    return pixels


def make_preprocess_fn(
    input_size: tuple[int, int] | None,
    resize: str,
    input_range: str | MeanStd,
    input_dtype: tf.DType,
) -> tf.types.experimental.PolymorphicFunction:
    """Builds the per-image preprocessing function of one model.

    The returned function takes uint8 [H, W, 3] and returns
    "image": [in_h, in_w, 3] of `input_dtype` (integer dtypes are rounded and
    saturated) and "content_box": float32 [4]. Its input signature has None
    height and width, so images of every size share one trace.
    """

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def preprocess(image: tf.Tensor) -> dict[str, tf.Tensor]:
        resized = resize_image(image, input_size, resize)
        values = normalize(resized["image"], input_range)
        if input_dtype.is_integer:
            values = tf.saturate_cast(tf.round(values), input_dtype)
        else:
            values = tf.cast(values, input_dtype)
        return {"image": values, "content_box": resized["content_box"]}

    return preprocess

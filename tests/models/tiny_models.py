"""Tiny models with known outputs, built at test time (tf.Module / Keras + save).

Each builder writes a model to a directory the test owns and returns its path.
The expected outputs are stated here so tests can compute expected masks by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

NUM_CLASSES = 7

# Semantic "split" model: logits at 8x8 whatever the 32x32 input; the left four
# logit columns say class 2 (logit 1.0), the right four say class 4 (logit 0.8),
# every other logit is 0. Bilinear upsampling puts the 2/4 boundary where
# 1 - t = 0.8 t, i.e. t = 1/1.8 of the way from logit column 3's centre (3.5)
# to column 4's (4.5): at 3.5 + 1/1.8 logit columns.
SPLIT_LOGITS_SIZE = 8
SPLIT_BOUNDARY_IN_LOGIT_COLUMNS = 3.5 + 1 / 1.8


def split_logits() -> np.ndarray:
    logits = np.zeros([SPLIT_LOGITS_SIZE, SPLIT_LOGITS_SIZE, NUM_CLASSES], np.float32)
    logits[:, :4, 2] = 1.0
    logits[:, 4:, 4] = 0.8
    return logits


def save_split_semantic_model(
    path: Path, input_key: str = "images", input_size: tuple[int, int] = (32, 32)
) -> Path:
    """Semantic model: uint8 [B, 32, 32, 3] -> {"logits": [B, 8, 8, 7]} (pattern above).

    `input_key` and `input_size` rename and resize the input (e.g. Model Garden's
    "inputs"); the logits stay 8x8.
    """
    pattern = tf.constant(split_logits())
    input_spec = tf.TensorSpec([None, *input_size, 3], tf.uint8, name=input_key)

    class Split(tf.Module):
        @tf.function(input_signature=[input_spec])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            batch = tf.shape(images)[0]
            return {"logits": tf.tile(pattern[tf.newaxis], [batch, 1, 1, 1])}

    module = Split()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def save_red_foreground_model(path: Path) -> Path:
    """Semantic model fed at each image's own size, in the unit range.

    float32 [B, h, w, 3] (values 0..1) -> {"foreground": [B, h, w, 1]} = the red channel,
    so with mask_threshold 0.5 a pixel is class 1 iff its red value >= 127.5.
    """

    class Red(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def serve(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"foreground": pixels[..., :1], "unused": tf.reduce_mean(pixels, [1, 2])}

    module = Red()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


# OD-API instance model: one image per call, three detections whatever the input.
#   0: score 0.9, class 1.0, box (ymin, xmin, ymax, xmax) = BOX_A, mask: left half 1.
#   1: score 0.3, class 2.0, box BOX_B, mask all 1 (below a 0.5 score threshold).
#   2: score 0.7, class 2.0, box BOX_B, mask all 0 (empty after thresholding).
# The 4x4 box mask with columns [1, 1, 0, 0], bilinearly sampled at mask column
# u = 3 (x / (W - 1) - xmin) / (xmax - xmin), is > 0.5 iff u < 1.5, i.e. iff
# x / (W - 1) < xmin + (xmax - xmin) / 2; rows are in iff y / (H - 1) is in [ymin, ymax].
BOX_A = (0.213, 0.121, 0.771, 0.633)
BOX_B = (0.05, 0.52, 0.47, 0.93)
OD_SCORES = (0.9, 0.3, 0.7)
OD_CLASSES = (1.0, 2.0, 2.0)


def od_masks() -> np.ndarray:
    masks = np.zeros([3, 4, 4], np.float32)
    masks[0, :, :2] = 1.0
    masks[1] = 1.0
    return masks


def expected_box_a_mask(
    height: int, width: int, box: tuple[float, float, float, float] = BOX_A
) -> np.ndarray:
    """Detection 0's full-image mask, from the closed form in the comment above.

    `box` is BOX_A normalised to the original image (it differs from BOX_A when
    the model input was letterboxed).
    """
    ymin, xmin, ymax, xmax = box
    rows = np.arange(height) / (height - 1)
    cols = np.arange(width) / (width - 1)
    in_rows = (rows >= ymin) & (rows <= ymax)
    in_cols = (cols >= xmin) & (cols < xmin + (xmax - xmin) / 2)
    return in_rows[:, None] & in_cols[None, :]


def save_od_api_model(
    path: Path,
    input_key: str = "input_tensor",
    input_shape: tuple[int | None, ...] = (1, None, None, 3),
) -> Path:
    """OD-API-style export: input_tensor uint8 [1, None, None, 3], detections above.

    `input_key` / `input_shape` rename and reshape the input (e.g. the bundled
    model's "images" [None, 256, 256, 3]); every image gets the same detections.
    """
    detections = {
        "detection_boxes": tf.constant([BOX_A, BOX_B, BOX_B], tf.float32),
        "detection_scores": tf.constant(OD_SCORES, tf.float32),
        "detection_classes": tf.constant(OD_CLASSES, tf.float32),
        "detection_masks": tf.constant(od_masks()),
        "num_detections": tf.constant(3.0),
    }
    input_spec = tf.TensorSpec(input_shape, tf.uint8, name=input_key)

    class Detector(tf.Module):
        @tf.function(input_signature=[input_spec])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            batch = tf.shape(images)[0]  # The detections are fixed, one copy per image.
            return {
                name: tf.tile(value[tf.newaxis], [batch] + [1] * value.shape.rank)
                for name, value in detections.items()
            }

    module = Detector()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def save_model_garden_model(path: Path) -> Path:
    """Model-Garden-style export: boxes in pixels of an internally 2x-upscaled image.

    inputs uint8 [1, None, None, 3] of size (h, w) -> image_info [[h, w], [2h, 2w],
    [2, 2], [0, 0]] and one detection (score 0.8, class 3) whose box is BOX_A in
    normalised coordinates, i.e. BOX_A * (2h, 2w, 2h, 2w) in the upscaled pixels,
    with detection 0's left-half mask: the pasted mask equals `expected_box_a_mask`.
    """
    box_mask = tf.constant(od_masks()[:1][np.newaxis])

    class Garden(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)])
        def serve(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            size = tf.cast(tf.shape(inputs)[1:3], tf.float32)
            scaled = 2.0 * size
            box = tf.constant(BOX_A) * tf.tile(scaled, [2])
            info = tf.stack([size, scaled, [2.0, 2.0], [0.0, 0.0]])
            return {
                "detection_boxes": box[tf.newaxis, tf.newaxis],
                "detection_scores": tf.constant([[0.8]]),
                "detection_classes": tf.constant([[3]], tf.int32),
                "detection_masks": box_mask,
                "num_detections": tf.constant([1], tf.int32),
                "image_info": info[tf.newaxis],
            }

    module = Garden()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def save_classifier_model(path: Path) -> Path:
    """A model with the wrong outputs for segmentation: {"scores": [B, 5]}."""

    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8, name="images")])
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": tf.zeros([tf.shape(images)[0], 5])}

    module = Classifier()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def write_spec(spec_file: Path, /, **keys: object) -> Path:
    """Writes a JSON model spec."""
    spec_file.write_text(json.dumps(keys))
    return spec_file


def _keras_pointwise_model(input_name: str, output_name: str, kernel: np.ndarray) -> keras.Model:
    """float32 [B, None, None, 3] -> a 1x1 convolution with `kernel` [3, C] and no bias."""
    inputs = keras.Input(shape=(None, None, 3), name=input_name, dtype="float32")
    conv = keras.layers.Conv2D(kernel.shape[1], 1, use_bias=False, name=output_name)
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([kernel.reshape(1, 1, 3, kernel.shape[1]).astype(np.float32)])
    return model


def save_keras_rgb_logits_model(path: Path) -> Path:
    """`.keras` semantic model at the image's own size: logits = the RGB values.

    So the class of a pixel is the index of its largest channel (0 red, 1 green, 2 blue).
    """
    model = _keras_pointwise_model("images", "logits", np.eye(3))
    model.save(path)
    return path


def keras_red_foreground_model() -> keras.Model:
    """Keras model: float32 pixels 0..255 -> "foreground" [B, h, w, 1] = red / 255."""
    return _keras_pointwise_model("pixels", "foreground", np.array([[1 / 255], [0.0], [0.0]]))


def save_keras_red_foreground_model(path: Path) -> Path:
    """`.keras` file of `keras_red_foreground_model`."""
    keras_red_foreground_model().save(path)
    return path


def save_tflite_red_foreground_model(path: Path) -> Path:
    """`.tflite` conversion of `keras_red_foreground_model` (dynamic batch, height, width)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_red_foreground_model())
    path.write_bytes(converter.convert())
    return path


def save_class_map_model(path: Path) -> Path:
    """DeepLab-v3-style export: ImageTensor uint8 [1, None, None, 3] -> SemanticPredictions.

    SemanticPredictions is int64 [1, h, w] at the input's size: class 15 where
    the red value is >= 128, else 0 (PASCAL VOC's person and background).
    """

    class DeepLab(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="ImageTensor")]
        )
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            person = images[..., 0] >= 128
            return {"SemanticPredictions": tf.cast(person, tf.int64) * 15}

    module = DeepLab()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def save_keras_probabilities_model(path: Path) -> Path:
    """`.keras` model: float32 [B, None, None, 3] -> "probabilities" = softmax of the pixels.

    So the most probable class of a pixel is the index of its largest
    normalised channel (0 red, 1 green, 2 blue).
    """
    inputs = keras.Input(shape=(None, None, 3), name="pixel_values", dtype="float32")
    outputs = keras.layers.Softmax(name="probabilities")(inputs)
    keras.Model(inputs, outputs).save(path)
    return path


def save_wrong_batch_model(path: Path) -> Path:
    """A semantic model whose signature looks right but returns one image too many.

    images uint8 [None, None, None, 3] -> {"logits": [B + 1, 4, 4, 2]}: only running it
    shows the problem.
    """

    class WrongBatch(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
        )
        def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"logits": tf.zeros([tf.shape(images)[0] + 1, 4, 4, 2])}

    module = WrongBatch()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path

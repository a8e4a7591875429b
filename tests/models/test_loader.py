"""Tests for models/loader.py with tiny SavedModels (see tests/models/tiny_models.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.adapters import open_backend
from models.adapters.base import SignatureInfo, TensorInfo
from models.joint_bilateral import DEFAULT_PARAMS, joint_bilateral_class_map
from models.loader import (
    InstanceModel,
    SemanticModel,
    class_id_dtype,
    load_model,
    validate_model,
)
from models.mask_paste import paste_masks
from models.preprocess import FULL_CONTENT_BOX
from models.spec import MeanStd, ModelSpec, load_model_spec
from tests.masks import paste_crop, paste_windows
from tests.models import tiny_models as tm
from tests.models.model_files import ModelFiles
from tests.models.tiny_specs import od_api_spec, split_semantic_spec

SIZES = [(37, 53), (256, 256), (300, 120)]


def _images(sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]


def _split_expected(height: int, width: int, start: float = 0.0, stop: float = 8.0) -> np.ndarray:
    """Class 2 left of the split boundary, 4 right of it (see tiny_models).

    `start`/`stop`: the logit columns the image spans (0..8 unless letterboxed).
    """
    boundary = (tm.SPLIT_BOUNDARY_IN_LOGIT_COLUMNS - start) / (stop - start) * width
    row = np.where(np.arange(width) + 0.5 < boundary, 2, 4)
    return np.repeat(row[None, :], height, axis=0)


def _red_images() -> list[np.ndarray]:
    """Images for the red-foreground models: two 37x53 (one model call if unresized), one 20x20."""
    images = []
    for height, width in [(37, 53), (20, 20), (37, 53)]:
        image = np.zeros((height, width, 3), np.uint8)
        image[: height // 2, 3 : width - 5, 0] = 200
        image[height // 2 :, :, 0] = 127  # 127 / 255 < 0.5: background.
        image[-1, -1, 0] = 128  # 128 / 255 >= 0.5: foreground.
        images.append(image)
    return images


class _SpyBackend:
    """Wraps a backend and records the batch size of every call."""

    def __init__(self, backend: object) -> None:
        self._backend = backend
        self.calls: list[int] = []

    @property
    def info(self) -> SignatureInfo:
        return self._backend.info  # type: ignore[attr-defined]

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(len(batch))
        return self._backend.run(input_key, batch)  # type: ignore[attr-defined]


def test_semantic_stretch_returns_label_ids_at_original_size(model_files: ModelFiles) -> None:
    model = load_model(split_semantic_spec(model_files["split"]))
    assert isinstance(model, SemanticModel)
    results = model.predict(_images(SIZES))
    for (height, width), class_map in zip(SIZES, results, strict=True):
        # 7 classes at offset 0: every id fits in a byte, so the map is uint8.
        assert class_map.dtype == np.uint8
        np.testing.assert_array_equal(class_map, _split_expected(height, width))


def test_model_garden_semantic_model_from_its_path(model_files: ModelFiles) -> None:
    # Model Garden's semantic exports: input "inputs", "logits" at a lower resolution.
    spec = load_model_spec(model_files["garden_semantic"], "semantic")
    assert spec is not None
    assert (spec.input_key, spec.input_size, spec.output_key) == ("inputs", (32, 32), "logits")
    results = load_model(spec).predict(_images(SIZES))
    for (height, width), class_map in zip(SIZES, results, strict=True):
        np.testing.assert_array_equal(class_map, _split_expected(height, width))


# Ten sizes, wide and tall, odd and even: none may add a trace.
TEN_SIZES = [
    (37, 53),
    (53, 37),
    (8, 300),
    (300, 8),
    (64, 64),
    (65, 63),
    (1, 1),
    (2, 97),
    (120, 33),
    (256, 256),
]


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_semantic_sizes_do_not_retrace(model_files: ModelFiles, resize: str) -> None:
    model = load_model(split_semantic_spec(model_files["split"], resize=resize))
    for image in _images(TEN_SIZES):
        model.predict([image])
    assert model.tracing_counts() == {"preprocess": 1, "postprocess": 1}


def test_instance_sizes_do_not_retrace(model_files: ModelFiles) -> None:
    model = load_model(od_api_spec(model_files["od"]))  # Fed at each image's own size.
    for image in _images(TEN_SIZES):
        model.predict([image])
    assert model.tracing_counts() == {"preprocess": 1, "postprocess": 1}


def test_validate_model_returns_the_signature(model_files: ModelFiles) -> None:
    info = validate_model(od_api_spec(model_files["od"]))
    assert info.input("input_tensor") is not None
    assert info.output("detection_masks") is not None


def test_validate_model_runs_the_model_once(model_files: ModelFiles) -> None:
    spec = ModelSpec(
        task="semantic", format="saved_model", path=model_files["wrong_batch"], output_key="logits"
    )
    load_model(spec)  # The signature alone looks right.
    with pytest.raises(ValueError, match="fails on a blank 64x64 test image") as info:
        validate_model(spec)
    assert "has shape (2, 4, 4, 2) for a batch of 1" in str(info.value)
    assert "outputs: logits float32 [None, 4, 4, 2]" in str(info.value)


def test_validate_model_checks_semantic_labels(model_files: ModelFiles) -> None:
    spec = split_semantic_spec(
        model_files["split"], labels=((0, "sky"), (1, "road")), labels_source="inline"
    )
    with pytest.raises(ValueError, match=r"has no label for ids \[2, 3, 4, 5, 6\]"):
        validate_model(spec)


def test_semantic_label_offset(model_files: ModelFiles) -> None:
    model = load_model(split_semantic_spec(model_files["split"], label_offset=10))
    (class_map,) = model.predict(_images([(20, 30)]))
    np.testing.assert_array_equal(class_map, _split_expected(20, 30) + 10)


def test_semantic_letterbox_maps_back_through_the_padding(model_files: ModelFiles) -> None:
    model = load_model(split_semantic_spec(model_files["split"], resize="letterbox"))
    wide, tall = model.predict(_images([(37, 53), (300, 120)]))
    # 37x53 fills the input's width: columns map as with stretching.
    np.testing.assert_array_equal(wide, _split_expected(37, 53))
    # 300x120 -> 32x13 at left offset 9: the image spans logit columns
    # 8 * 9/32 = 2.25 to 8 * 22/32 = 5.5.
    np.testing.assert_array_equal(tall, _split_expected(300, 120, start=2.25, stop=5.5))


def test_semantic_batches_respect_spec_batch_size(model_files: ModelFiles) -> None:
    spec = split_semantic_spec(model_files["split"], batch_size=2)
    spy = _SpyBackend(open_backend("saved_model", spec.path, spec.signature))
    results = SemanticModel(spec, spy).predict(_images([(10, 10)] * 5))  # type: ignore[arg-type]
    assert spy.calls == [2, 2, 1]
    assert len(results) == 5


def test_semantic_own_size_groups_equal_shapes(model_files: ModelFiles) -> None:
    spec = ModelSpec(
        task="semantic",
        format="saved_model",
        path=model_files["red"],
        input_key="pixels",
        input_range="unit",
        output_format="foreground_probability",
        output_key="foreground",
        label_offset=5,
    )
    spy = _SpyBackend(open_backend("saved_model", spec.path, spec.signature))
    images = _red_images()
    results = SemanticModel(spec, spy).predict(images)  # type: ignore[arg-type]
    assert sorted(spy.calls) == [1, 2]  # Both 37x53 images in one call.
    for image, class_map in zip(images, results, strict=True):
        np.testing.assert_array_equal(class_map, np.where(image[..., 0] >= 128, 6, 5))


def test_od_api_instances(model_files: ModelFiles) -> None:
    model = load_model(od_api_spec(model_files["od"]))
    assert isinstance(model, InstanceModel)
    results = model.predict(_images(SIZES))
    for (height, width), prediction in zip(SIZES, results, strict=True):
        # Detection 1 (score 0.3) is below the 0.5 threshold; classes 1.0, 2.0 - 1.
        np.testing.assert_array_equal(prediction.class_ids, [0, 1])
        np.testing.assert_allclose(prediction.scores, [0.9, 0.7])
        ymin, xmin, ymax, xmax = tm.BOX_A
        np.testing.assert_allclose(
            prediction.boxes[0],
            [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height],
            rtol=1e-5,
        )
        mask_a = paste_crop(prediction.mask_crops[0], *prediction.mask_offsets[0], height, width)
        np.testing.assert_array_equal(mask_a, tm.expected_box_a_mask(height, width))
        assert not prediction.mask_crops[1].any()  # Detection 2's all-zero mask.


def test_od_api_letterbox_undoes_padding(model_files: ModelFiles) -> None:
    model = load_model(od_api_spec(model_files["od"], input_size=(32, 32), resize="letterbox"))
    (prediction,) = model.predict(_images([(37, 53)]))
    # 37x53 -> 22x32 at top offset 5: normalised rows y map to (y - 5/32) / (22/32).
    ymin, xmin, ymax, xmax = tm.BOX_A
    box = ((ymin - 5 / 32) / (22 / 32), xmin, (ymax - 5 / 32) / (22 / 32), xmax)
    mask = paste_crop(prediction.mask_crops[0], *prediction.mask_offsets[0], 37, 53)
    np.testing.assert_array_equal(mask, tm.expected_box_a_mask(37, 53, box))
    np.testing.assert_allclose(prediction.boxes[0][1], box[0] * 37, rtol=1e-5)


def test_model_garden_instances(model_files: ModelFiles) -> None:
    spec = od_api_spec(
        model_files["garden"], input_key="inputs", output_format="model_garden", label_offset=0
    )
    results = load_model(spec).predict(_images(SIZES))
    for (height, width), prediction in zip(SIZES, results, strict=True):
        np.testing.assert_array_equal(prediction.class_ids, [3])
        mask = paste_crop(prediction.mask_crops[0], *prediction.mask_offsets[0], height, width)
        np.testing.assert_array_equal(mask, tm.expected_box_a_mask(height, width))


def test_score_threshold_from_spec(model_files: ModelFiles) -> None:
    (prediction,) = load_model(od_api_spec(model_files["od"], score_threshold=0.2)).predict(
        _images([(9, 9)])
    )
    np.testing.assert_allclose(prediction.scores, [0.9, 0.7, 0.3])


@pytest.mark.parametrize(
    ("spec_changes", "expected"),
    [
        ({"output_key": "logits"}, "needs outputs ['logits']"),
        ({"input_key": "pixels"}, "it has no input 'pixels'"),
        ({"input_size": (64, 64)}, "input_size is [64, 64] but the model takes [32, 32]"),
        ({"input_size": None, "resize": "none"}, "takes a fixed 32x32 input"),
        ({"input_range": "unit"}, "integer inputs take 0..255"),
    ],
)
def test_semantic_signature_mismatch_lists_what_the_model_has(
    model_files: ModelFiles, spec_changes: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValueError, match="does not fit its spec") as info:
        load_model(split_semantic_spec(model_files["classifier"], **spec_changes))
    message = str(info.value)
    assert expected in message
    assert "inputs: images uint8 [None, 32, 32, 3]; outputs: scores float32 [None, 5]" in message


def test_instance_signature_mismatch_lists_outputs(model_files: ModelFiles) -> None:
    with pytest.raises(ValueError, match=r"needs outputs \['detection_boxes'.*outputs: scores"):
        load_model(
            od_api_spec(
                model_files["classifier"], input_key="images", input_size=(32, 32), resize="stretch"
            )
        )


def test_fixed_batch_of_one(model_files: ModelFiles) -> None:
    with pytest.raises(ValueError, match="batch_size is 4 but the model takes batches of 1"):
        load_model(od_api_spec(model_files["od"], batch_size=4))


def test_missing_signature(model_files: ModelFiles) -> None:
    with pytest.raises(ValueError, match=r"no signature 'predict'; it has \['serving_default'\]"):
        load_model(split_semantic_spec(model_files["split"], signature="predict"))


def test_not_a_saved_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load a SavedModel"):
        load_model(split_semantic_spec(str(tmp_path)))


def test_rejects_non_rgb_uint8_images(model_files: ModelFiles) -> None:
    model = load_model(split_semantic_spec(model_files["split"]))
    with pytest.raises(ValueError, match="expected a non-empty uint8 RGB image"):
        model.predict([np.zeros((5, 5, 3), np.float32)])
    with pytest.raises(ValueError, match="expected a non-empty uint8 RGB image"):
        model.predict([np.zeros((5, 5), np.uint8)])


def test_keras_logits_model_detected_from_its_path(model_files: ModelFiles) -> None:
    spec = load_model_spec(model_files["keras_logits"], "semantic")
    assert spec is not None
    assert (spec.format, spec.input_key, spec.output_key) == ("keras", "images", "logits")
    assert (spec.output_format, spec.resize) == ("logits", "none")
    image = np.zeros((9, 14, 3), np.uint8)
    image[:, :5, 0] = 200  # Red block: class 0.
    image[:, 5:10, 1] = 90  # Green block: class 1.
    image[:, 10:, 2] = 30  # Blue block: class 2.
    (class_map,) = load_model(spec).predict([image])
    expected = np.repeat(np.array([0] * 5 + [1] * 5 + [2] * 4)[None, :], 9, axis=0)
    np.testing.assert_array_equal(class_map, expected)


def test_keras_foreground_probability(model_files: ModelFiles) -> None:
    spec = ModelSpec(
        task="semantic",
        format="keras",
        path=model_files["keras_red"],
        output_format="foreground_probability",
        label_offset=2,
    )
    images = _red_images()
    for image, class_map in zip(images, load_model(spec).predict(images), strict=True):
        np.testing.assert_array_equal(class_map, np.where(image[..., 0] >= 128, 3, 2))


def test_keras_probabilities_with_mean_std(tmp_path: Path) -> None:
    path = tm.save_keras_probabilities_model(tmp_path / "probs.keras")
    spec = ModelSpec(
        task="semantic",
        format="keras",
        path=str(path),
        input_range=MeanStd(mean=(100.0, 0.0, 50.0), std=(1.0, 2.0, 1.0)),
        output_format="probabilities",
    )
    image = np.zeros((6, 3, 3), np.uint8)
    image[:, 0] = (120, 30, 60)  # Normalised (20, 15, 10): class 0.
    image[:, 1] = (110, 60, 55)  # (10, 30, 5): class 1.
    image[:, 2] = (90, 10, 70)  # (-10, 5, 20): class 2.
    (class_map,) = load_model(spec).predict([image])
    np.testing.assert_array_equal(class_map, np.tile([0, 1, 2], (6, 1)))


def test_keras_model_runs_traced_once(
    model_files: ModelFiles, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="models.adapters.keras_model"):
        model = load_model(load_model_spec(model_files["keras_logits"], "semantic"))
        model.predict(_images([(9, 14), (20, 7)]))
    assert [r for r in caplog.records if r.name == "models.adapters.keras_model"] == []


def test_untraceable_keras_model_runs_eagerly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Bilinear UpSampling2D cannot be traced with dynamic spatial dimensions.
    inputs = keras.Input(shape=(None, None, 3), name="images")
    pooled = keras.layers.AveragePooling2D(2)(inputs)
    logits = keras.layers.UpSampling2D(2, interpolation="bilinear", name="logits")(pooled)
    keras.Model(inputs, logits).save(tmp_path / "up.keras")
    with caplog.at_level(logging.WARNING, logger="models.adapters.keras_model"):
        model = load_model(load_model_spec(str(tmp_path / "up.keras"), "semantic"))
    assert "cannot be traced" in caplog.text
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 1] = 9  # Green is the largest channel everywhere: class 1.
    (class_map,) = model.predict([image])
    np.testing.assert_array_equal(class_map, np.ones((4, 6), np.int32))


def test_tflite_one_channel_foreground_model(model_files: ModelFiles) -> None:
    spec = load_model_spec(model_files["tflite_red"], "semantic")
    assert spec is not None
    assert (spec.format, spec.input_key, spec.output_format) == (
        "tflite",
        "pixels",
        "foreground_probability",
    )
    images = _red_images()
    for image, class_map in zip(images, load_model(spec).predict(images), strict=True):
        np.testing.assert_array_equal(class_map, (image[..., 0] >= 128).astype(np.int32))


def test_broken_keras_and_tflite_files(tmp_path: Path) -> None:
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError, match="cannot load Keras model"):
        open_backend("keras", str(tmp_path / "bad.keras"), "serving_default")
    with pytest.raises(ValueError, match="cannot load TFLite model"):
        open_backend("tflite", str(tmp_path / "bad.tflite"), "serving_default")


def test_tflite_missing_signature(model_files: ModelFiles) -> None:
    with pytest.raises(ValueError, match=r"no signature 'predict'; it has \['serving_default'\]"):
        open_backend("tflite", model_files["tflite_red"], "predict")


def test_tflite_runs_on_litert(model_files: ModelFiles) -> None:
    backend = open_backend("tflite", model_files["tflite_red"], "serving_default")
    assert backend.runtime == "ai_edge_litert"  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_falls_back_to_tensorflow_without_litert(
    model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # Import fails.
    backend = open_backend("tflite", model_files["tflite_red"], "serving_default")
    assert backend.runtime == "tensorflow"  # type: ignore[attr-defined]
    image = np.zeros((1, 2, 3, 3), np.float32)
    image[0, 0, :, 0] = 200.0
    (foreground,) = backend.run("pixels", image).values()
    np.testing.assert_allclose(foreground[0, :, :, 0], [[200 / 255] * 3, [0.0] * 3], rtol=1e-6)


@pytest.mark.parametrize(
    ("output_format", "shape", "label_offset", "expected"),
    [
        ("logits", (None, 8, 8, 7), 0, "uint8"),  # ids 0..6
        ("probabilities", (None, 8, 8, 256), 0, "uint8"),  # ids 0..255
        ("logits", (None, 8, 8, 257), 0, "int32"),  # id 256 does not fit
        ("logits", (None, 8, 8, 7), 249, "uint8"),  # ids 249..255
        ("logits", (None, 8, 8, 7), 250, "int32"),  # id 256
        ("logits", (None, 8, 8, 7), -1, "int32"),  # id -1
        ("logits", (None, 8, 8, None), 0, "int32"),  # channels unknown
        ("logits", None, 0, "int32"),  # rank unknown
        ("logits", (None, 8, 8), 0, "uint8"),  # [h, w]: one channel
        ("foreground_probability", (None, 8, 8, 1), 254, "uint8"),  # ids 254, 255
        ("foreground_probability", (None, 8, 8, 1), 255, "int32"),  # id 256
        ("class_map", (None, 8, 8), 0, "int32"),  # the model emits any id
    ],
)
def test_class_map_dtype_is_uint8_only_when_every_id_fits_in_a_byte(
    output_format: str, shape: tuple | None, label_offset: int, expected: str
) -> None:
    spec = split_semantic_spec("/m", output_format=output_format, label_offset=label_offset)
    info = SignatureInfo(
        inputs=(TensorInfo("images", (None, 32, 32, 3), "uint8"),),
        outputs=(TensorInfo("logits", shape, "float32"),),
    )
    assert class_id_dtype(spec, info, "logits").name == expected


def test_semantic_joint_bilateral_upsampling_reads_the_image(model_files: ModelFiles) -> None:
    # The loader hands the original image to the joint bilateral post-processing: its
    # maps are joint_bilateral_class_map of the model's probabilities and that image, and
    # an image whose colour edge sits left of the bilinear boundary (logit column 4.06,
    # pixel 40.6 of 80) moves it, where the bilinear spec keeps it.
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 37:] = 255
    jbu = load_model(split_semantic_spec(model_files["split"], upsampling="joint_bilateral"))
    (class_map,) = jbu.predict([image])
    probabilities = tf.nn.softmax(tm.split_logits()).numpy()
    expected = joint_bilateral_class_map(probabilities, image, FULL_CONTENT_BOX, DEFAULT_PARAMS)
    np.testing.assert_array_equal(class_map, expected.numpy())
    (bilinear,) = load_model(split_semantic_spec(model_files["split"])).predict([image])
    np.testing.assert_array_equal(bilinear, _split_expected(40, 80))
    assert np.any(class_map != bilinear)


def test_instance_joint_bilateral_paste_reads_the_image(model_files: ModelFiles) -> None:
    # Detection 0's box mask is "in" on its left half; bilinear pasting puts its outline
    # at the box's middle column (tm.expected_box_a_mask). An image that turns white a
    # few columns left of it moves the outline with the joint bilateral spec: the crops
    # are the library's guided paste of the model's box masks into that image.
    height, width = 60, 90
    image = np.zeros((height, width, 3), np.uint8)
    _, xmin, _, xmax = tm.BOX_A
    edge = int((xmin + (xmax - xmin) / 2) * (width - 1)) - 4
    image[:, edge:] = 255
    spec = od_api_spec(model_files["od"], upsampling="joint_bilateral")
    (prediction,) = load_model(spec).predict([image])
    kept = [0, 2]  # Detection 1 scores below the 0.5 threshold.
    out = paste_masks(
        tm.od_masks()[kept],
        np.array([tm.BOX_A, tm.BOX_B], np.float32),
        tf.constant([height, width]),
        0.5,
        image,
        DEFAULT_PARAMS,
    )
    expected = paste_windows(
        out["masks"].numpy(), out["mask_sizes"].numpy(), out["mask_offsets"].numpy(), height, width
    )
    for crop, offset, mask in zip(
        prediction.mask_crops, prediction.mask_offsets, expected, strict=True
    ):
        np.testing.assert_array_equal(paste_crop(crop, *offset, height, width), mask)
    guided = paste_crop(prediction.mask_crops[0], *prediction.mask_offsets[0], height, width)
    bilinear = tm.expected_box_a_mask(height, width)
    assert bilinear[:, edge:].any()
    assert not guided[:, edge:].any()

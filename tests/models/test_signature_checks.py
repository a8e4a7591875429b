"""Tests for models/signature_checks.py, on hand-written signatures (no model is loaded)."""

from __future__ import annotations

import pytest
import tensorflow as tf

from models.adapters import SignatureInfo, TensorInfo
from models.signature_checks import ModelInterface, check_signature, semantic_class_ids
from models.spec import ModelSpec

IMAGES = TensorInfo("images", (None, None, None, 3), "uint8")
OD_OUTPUTS = (
    TensorInfo("detection_boxes", (1, 100, 4), "float32"),
    TensorInfo("detection_classes", (1, 100), "float32"),
    TensorInfo("detection_masks", (1, 100, 33, 33), "float32"),
    TensorInfo("detection_scores", (1, 100), "float32"),
    TensorInfo("num_detections", (1,), "float32"),
)


def _semantic(output: TensorInfo, **keys: object) -> tuple[ModelSpec, SignatureInfo]:
    spec = ModelSpec(task="semantic", format="saved_model", path="/m", **keys)  # type: ignore[arg-type]
    return spec, SignatureInfo(inputs=(IMAGES,), outputs=(output,))


def _labels(*names: str) -> tuple[tuple[int, str], ...]:
    return tuple(enumerate(names))


def test_semantic_interface() -> None:
    spec, info = _semantic(
        TensorInfo("logits", (None, 8, 8, 3), "float32"), labels=_labels("a", "b", "c")
    )
    assert check_signature(spec, info) == ModelInterface(
        input_key="images", input_dtype=tf.uint8, batch_size=None, output_names=("logits",)
    )


def test_instance_interface_reads_the_fixed_batch() -> None:
    spec = ModelSpec(task="instance", format="saved_model", path="/m", output_format="od_api")
    image = TensorInfo("input_tensor", (1, None, None, 3), "uint8")
    interface = check_signature(spec, SignatureInfo(inputs=(image,), outputs=OD_OUTPUTS))
    assert interface.batch_size == 1
    assert interface.output_names == (
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "detection_masks",
    )


@pytest.mark.parametrize(
    ("output_format", "channels", "labels", "offset", "expected"),
    [
        ("logits", 4, ("a", "b", "c", "d"), 0, range(0, 4)),
        ("probabilities", 3, (), 2, range(2, 5)),
        ("foreground_probability", 1, ("bg", "fg"), 0, range(0, 2)),
        ("logits", None, ("a",), 0, None),  # Dynamic channel count: unknown.
        ("class_map", 1, ("a",), 0, None),  # Values, not channels: unknown.
    ],
)
def test_semantic_class_ids(
    output_format: str,
    channels: int | None,
    labels: tuple[str, ...],
    offset: int,
    expected: range | None,
) -> None:
    spec, info = _semantic(
        TensorInfo("logits", (None, 8, 8, channels), "float32"),
        output_format=output_format,
        labels=_labels(*labels),
        label_offset=offset,
    )
    assert semantic_class_ids(spec, info) == expected
    check_signature(spec, info)  # Every case above is consistent.


@pytest.mark.parametrize(
    ("output", "keys", "expected"),
    [
        (
            TensorInfo("logits", (None, 8, 8, 5), "float32"),
            {"labels": _labels("a", "b", "c")},
            "outputs label ids 0..4 (raw class index + label_offset 0), but the label map "
            "(labels.txt) has no label for ids [3, 4]",
        ),
        (
            TensorInfo("logits", (None, 8, 8, 3), "float32"),
            {"labels": _labels("a", "b", "c"), "label_offset": 1},
            "has no label for ids [3]; add them to the label map or fix label_offset",
        ),
        (
            TensorInfo("logits", (None, 8, 8, 3), "float32"),
            {"label_offset": -1},
            "outputs label ids -1..1 (raw class index + label_offset -1), some negative",
        ),
        (
            TensorInfo("mask", (None, 8, 8, 1), "float32"),
            {
                "output_format": "foreground_probability",
                "output_key": "mask",
                "labels": ((1, "person"),),
            },
            "has no label for ids [0]",
        ),
        (
            TensorInfo("logits", (None, 8, 8), "float32"),
            {},
            "reads logits as a rank-4 tensor (batch first), but it is logits float32 [None, 8, 8]",
        ),
        (
            TensorInfo("probs", (None, 8, 8, 2), "float32"),
            {"output_format": "foreground_probability", "output_key": "probs"},
            "reads one channel, but probs has 2",
        ),
        (
            TensorInfo("scores", (None, 5), "float32"),
            {"output_key": "logits"},
            "needs outputs ['logits']",
        ),
    ],
)
def test_semantic_mismatches_name_the_problem_and_the_outputs(
    output: TensorInfo, keys: dict[str, object], expected: str
) -> None:
    spec, info = _semantic(output, labels_source="labels.txt", **keys)
    with pytest.raises(ValueError, match="does not fit its spec") as error:
        check_signature(spec, info)
    assert expected in str(error.value)
    assert f"outputs: {output.describe()}" in str(error.value)


def test_no_label_map_means_no_label_check() -> None:
    spec, info = _semantic(TensorInfo("logits", (None, 8, 8, 150), "float32"))
    check_signature(spec, info)


def test_instance_output_ranks() -> None:
    spec = ModelSpec(task="instance", format="saved_model", path="/m", output_format="od_api")
    flat_masks = TensorInfo("detection_masks", (1, 100, 1089), "float32")
    outputs = tuple(flat_masks if o.name == "detection_masks" else o for o in OD_OUTPUTS)
    with pytest.raises(ValueError, match="reads detection_masks as a rank-4 tensor"):
        check_signature(spec, SignatureInfo(inputs=(IMAGES,), outputs=outputs))

"""Checks a loaded model's signature against its spec, before any image is processed.

`check_signature(spec, info)` finds the image input, the outputs the spec's
`output_format` reads, and checks what the signature shows statically: input
dtype and size, output ranks, and (semantic models) that every class id the
model can output has a label. Every failure is a ValueError naming the problem,
listing what the model does have, and pointing at the spec to fix.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from models.adapters import SignatureInfo, TensorInfo
from models.adapters.conventions import MODEL_GARDEN_OUTPUTS, OD_API_OUTPUTS
from models.spec import TASK_SEMANTIC, ModelSpec

# Expected ranks (batch dimension included) of the outputs each format reads.
_INSTANCE_RANKS = {
    "detection_boxes": (3,),  # [B, N, 4]
    "detection_scores": (2,),  # [B, N]
    "detection_classes": (2,),  # [B, N]
    "detection_masks": (4,),  # [B, N, M_h, M_w]
    "image_info": (3,),  # [B, 4, 2]
}
_SEMANTIC_RANKS = {
    "logits": (4,),  # [B, h, w, C]
    "probabilities": (4,),
    "foreground_probability": (3, 4),  # [B, h, w] or [B, h, w, 1]
    "class_map": (3, 4),
}
# Semantic formats whose [B, h, w, C] output must have C == 1.
_ONE_CHANNEL = ("foreground_probability", "class_map")


class ModelInterface(NamedTuple):
    """How the loader talks to a model whose signature passed the checks."""

    input_key: str  # The input fed with the image batch.
    input_dtype: tf.DType  # Its dtype (preprocessing casts to it).
    batch_size: int | None  # Most images per call (None: no limit).
    output_names: tuple[str, ...]  # The outputs read, in the format's order.


def mismatch(spec: ModelSpec, info: SignatureInfo, problem: str) -> ValueError:
    """A ValueError saying how the model does not fit its spec, and what it has."""
    return ValueError(
        f"model {spec.local_path} (signature {spec.signature!r}) does not fit its spec: "
        f"{problem}. The model has {info.describe()}. Fix the spec ({spec.source or spec.path})."
    )


def _image_input(spec: ModelSpec, info: SignatureInfo) -> TensorInfo:
    if spec.input_key is None:
        if len(info.inputs) != 1:
            raise mismatch(spec, info, "input_key is unset and there is not exactly one input")
        return info.inputs[0]
    image_input = info.input(spec.input_key)
    if image_input is None:
        raise mismatch(spec, info, f"it has no input {spec.input_key!r}")
    return image_input


def _check_input(spec: ModelSpec, info: SignatureInfo, image_input: TensorInfo) -> None:
    dtype = tf.as_dtype(image_input.dtype)
    if dtype.is_integer and spec.input_range != "uint8":
        raise mismatch(
            spec,
            info,
            f"input {image_input.name} is {dtype.name} but input_range is "
            f"{spec.input_range!r}; integer inputs take 0..255 (input_range 'uint8')",
        )
    shape = image_input.shape
    if shape is None:
        return
    if len(shape) != 4 or shape[3] not in (None, 3):
        raise mismatch(spec, info, f"input {image_input.name} is not [batch, h, w, 3]")
    static_hw = shape[1:3]
    if None in static_hw:
        return
    if spec.input_size is None:
        raise mismatch(
            spec,
            info,
            f"the model takes a fixed {static_hw[0]}x{static_hw[1]} input but the spec "
            "feeds images at their own size; set input_size and resize",
        )
    if tuple(static_hw) != tuple(spec.input_size):
        raise mismatch(
            spec,
            info,
            f"input_size is {list(spec.input_size)} but the model takes {list(static_hw)}",
        )


def _batch_size(spec: ModelSpec, info: SignatureInfo, image_input: TensorInfo) -> int | None:
    fixed = None if image_input.shape is None else image_input.shape[0]
    if fixed is None:
        return spec.batch_size
    if spec.batch_size is not None and spec.batch_size > fixed:
        raise mismatch(
            spec, info, f"batch_size is {spec.batch_size} but the model takes batches of {fixed}"
        )
    return fixed


def _output_names(spec: ModelSpec, info: SignatureInfo) -> tuple[str, ...]:
    if spec.task == TASK_SEMANTIC:
        if spec.output_key is not None:
            return (spec.output_key,)
        if info.output("logits") is not None or len(info.outputs) != 1:
            return ("logits",)
        return (info.outputs[0].name,)
    return MODEL_GARDEN_OUTPUTS if spec.output_format == "model_garden" else OD_API_OUTPUTS


def _check_output_shape(spec: ModelSpec, info: SignatureInfo, name: str) -> None:
    """Checks one read output's rank, and its channel count where the format reads one."""
    output = info.output(name)
    if output is None or output.shape is None:
        return  # Missing outputs are reported by the caller; unknown ranks at run time.
    ranks = (
        _SEMANTIC_RANKS[spec.output_format] if spec.task == TASK_SEMANTIC else _INSTANCE_RANKS[name]
    )
    if len(output.shape) not in ranks:
        expected = " or ".join(map(str, ranks))
        raise mismatch(
            spec,
            info,
            f"output_format {spec.output_format!r} reads {name} as a rank-{expected} "
            f"tensor (batch first), but it is {output.describe()}",
        )
    channels = output.shape[3] if len(output.shape) == 4 else None
    if spec.output_format in _ONE_CHANNEL and channels not in (None, 1):
        raise mismatch(
            spec,
            info,
            f"output_format {spec.output_format!r} reads one channel, but {name} has "
            f"{channels}; a per-class output is 'logits' or 'probabilities'",
        )


def semantic_class_ids(spec: ModelSpec, info: SignatureInfo) -> range | None:
    """The label ids a semantic model can output, if its signature shows them.

    logits / probabilities with a static channel count C give raw indices
    0..C-1; foreground_probability gives 0 (background) and 1; a class_map's
    values, and a dynamic C, are unknown until the model runs (None).
    """
    if spec.output_format == "foreground_probability":
        return range(spec.label_offset, spec.label_offset + 2)
    if spec.output_format == "class_map":
        return None
    output = info.output(_output_names(spec, info)[0])
    if output is None or output.shape is None or output.shape[-1] is None:
        return None
    return range(spec.label_offset, spec.label_offset + output.shape[-1])


def _check_labels(spec: ModelSpec, info: SignatureInfo) -> None:
    ids = semantic_class_ids(spec, info)
    if ids is None or len(ids) == 0:
        return
    described = (
        f"the model outputs label ids {ids.start}..{ids.stop - 1} "
        f"(raw class index + label_offset {spec.label_offset})"
    )
    if ids.start < 0:
        raise mismatch(spec, info, f"{described}, some negative; fix label_offset")
    if not spec.labels:
        return  # No label map at all: every class is named "class_<id>", by choice.
    missing = [i for i in ids if i not in spec.class_names]
    if missing:
        raise mismatch(
            spec,
            info,
            f"{described}, but the label map ({spec.labels_source}) has no label for ids "
            f"{missing}; add them to the label map or fix label_offset",
        )


def check_signature(spec: ModelSpec, info: SignatureInfo) -> ModelInterface:
    """Checks the model's signature against the spec.

    Raises:
      ValueError: If an input or output the spec needs is missing or has the
        wrong dtype/rank/size, or a semantic class id has no label; the message
        lists the model's inputs and outputs.
    """
    image_input = _image_input(spec, info)
    _check_input(spec, info, image_input)
    names = _output_names(spec, info)
    missing = [name for name in names if info.output(name) is None]
    if missing:
        raise mismatch(spec, info, f"output_format {spec.output_format!r} needs outputs {missing}")
    for name in names:
        _check_output_shape(spec, info, name)
    if spec.task == TASK_SEMANTIC:
        _check_labels(spec, info)
    return ModelInterface(
        input_key=image_input.name,
        input_dtype=tf.as_dtype(image_input.dtype),
        batch_size=_batch_size(spec, info, image_input),
        output_names=names,
    )

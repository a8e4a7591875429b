"""Guesses a model's conventions from its signature, for spec keys left unset.

Only what the signature really shows is detected: the input name, a static
input size, a batch dimension fixed to 1, the semantic output and its kind,
and OD-API vs Model Garden instance outputs. Anything else keeps its default.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from models.adapters.base import SignatureInfo, TensorInfo
from models.spec_keys import TASK_SEMANTIC

_LOG = logging.getLogger(__name__)

OD_API_OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "detection_masks")
MODEL_GARDEN_OUTPUTS = (*OD_API_OUTPUTS, "image_info")
INTEGER_DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "int64")


def _named_tensor(
    info: SignatureInfo, given: dict[str, Any], kind: Literal["input", "output"]
) -> TensorInfo:
    """The input or output that the spec's `input_key` / `output_key` names."""
    name = given[f"{kind}_key"]
    tensor = info.input(name) if kind == "input" else info.output(name)
    if tensor is None:
        raise ValueError(
            f"the model has no {kind} {name!r} ({info.describe()}); "
            f"fix `{kind}_key` in the model spec"
        )
    return tensor


def _image_input(info: SignatureInfo, given: dict[str, Any]) -> TensorInfo:
    if "input_key" in given:
        return _named_tensor(info, given, "input")
    if len(info.inputs) != 1:
        raise ValueError(
            f"cannot tell which input takes the images ({info.describe()}); "
            "set `input_key` in the model spec"
        )
    return info.inputs[0]


def _input_conventions(image_input: TensorInfo, given: dict[str, Any]) -> dict[str, Any]:
    detected: dict[str, Any] = {"input_key": image_input.name}
    shape = image_input.shape
    if shape is None or len(shape) != 4:
        return detected
    if "input_size" not in given and shape[1] is not None and shape[2] is not None:
        detected["input_size"] = [shape[1], shape[2]]
    if "batch_size" not in given and shape[0] == 1:
        detected["batch_size"] = 1
    if "input_range" not in given and image_input.dtype not in INTEGER_DTYPES:
        _LOG.warning(
            "model input %s is %s: assuming pixel values 0..255 (input_range 'uint8'); "
            "write a spec file with input_range if the model expects another range",
            image_input.name,
            image_input.dtype,
        )
    return detected


def _semantic_output(info: SignatureInfo, given: dict[str, Any]) -> TensorInfo:
    if "output_key" in given:
        return _named_tensor(info, given, "output")
    logits = info.output("logits")
    if logits is not None:
        return logits
    if len(info.outputs) == 1:
        return info.outputs[0]
    raise ValueError(
        f"cannot tell which output is the segmentation ({info.describe()}); "
        "set `output_key` in the model spec"
    )


def _semantic_format(output: TensorInfo) -> str:
    channels = None if output.shape is None else output.shape[-1]
    rank = None if output.shape is None else len(output.shape)
    if output.dtype in INTEGER_DTYPES:
        return "class_map"
    if channels == 1 or rank == 3:
        return "foreground_probability"
    if "prob" in output.name.lower() or "softmax" in output.name.lower():
        return "probabilities"
    return "logits"


def _instance_format(info: SignatureInfo) -> str:
    names = {t.name for t in info.outputs}
    if all(n in names for n in MODEL_GARDEN_OUTPUTS):
        return "model_garden"
    if all(n in names for n in OD_API_OUTPUTS):
        return "od_api"
    raise ValueError(
        f"the model's outputs are neither OD-API ({', '.join(OD_API_OUTPUTS)}) nor Model "
        f"Garden (the same plus image_info) instance segmentation outputs ({info.describe()}); "
        "export the model with masks, or use it as a semantic model"
    )


def detect_conventions(info: SignatureInfo, task: str, given: dict[str, Any]) -> dict[str, Any]:
    """Spec values the signature implies, for keys absent from `given`.

    Args:
      info: The model's signature.
      task: "semantic" or "instance".
      given: The spec keys already set (they win over anything detected).

    Returns:
      Detected values for some of: input_key, input_size, batch_size,
      output_key, output_format.
    """
    detected = _input_conventions(_image_input(info, given), given)
    if task == TASK_SEMANTIC:
        output = _semantic_output(info, given)
        detected["output_key"] = output.name
        if "output_format" not in given:
            detected["output_format"] = _semantic_format(output)
    elif "output_format" not in given:
        detected["output_format"] = _instance_format(info)
    return {k: v for k, v in detected.items() if k not in given}

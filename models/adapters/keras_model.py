"""Runs a Keras 3 `.keras` model (loaded with safe_mode, never compiled for training)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models.adapters.base import SignatureInfo, TensorInfo

_LOG = logging.getLogger(__name__)


def _tensor_info(name: str, tensor: keras.KerasTensor) -> TensorInfo:
    return TensorInfo(name=name, shape=tuple(tensor.shape), dtype=str(tensor.dtype))


def _compiled_call(model: keras.Model, path: str) -> Callable[[tf.Tensor], Any]:
    """The model's inference as one traced graph, or its eager call if it cannot be traced.

    Eager Keras dispatches every layer from Python (about 1.8x the CPU time of
    the traced graph for the bundled architecture). The trace takes the model's
    declared input shape with any batch size, so it happens once, whatever the
    batch and (for dynamic-size models) image sizes. Some layers cannot be
    traced with dynamic spatial dimensions (e.g. UpSampling2D): those models
    run eagerly, as before.
    """
    declared = model.inputs[0]
    signature = tf.TensorSpec([None, *declared.shape[1:]], tf.as_dtype(declared.dtype))
    infer = tf.function(lambda batch: model(batch, training=False), autograph=False)
    try:
        return infer.get_concrete_function(signature)
    except (TypeError, ValueError) as e:
        # Tracing errors say only that this graph can't be built; eager still works.
        first_line = next((line for line in str(e).splitlines() if line.strip()), repr(e))
        _LOG.warning(
            "Keras model %s cannot be traced (%s); running it eagerly (slower)", path, first_line
        )
        return lambda batch: model(batch, training=False)


class KerasBackend:
    """A single-input Keras model; outputs are named by the model's output names."""

    def __init__(self, path: str) -> None:
        try:
            # safe_mode refuses lambda layers' pickled bytecode: a model file must not run code.
            self._model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(
                f"cannot load Keras model {path}: {e}; `path` must be a .keras file saved "
                "with model.save(...), without lambda layers"
            ) from e
        inputs = list(self._model.inputs)
        if len(inputs) != 1:
            raise ValueError(
                f"Keras model {path} has {len(inputs)} inputs; segbeam feeds one image "
                "batch, so export a single-input model"
            )
        self._output_names = list(self._model.output_names)
        self._call = _compiled_call(self._model, path)
        self._info = SignatureInfo(
            inputs=(_tensor_info(inputs[0].name, inputs[0]),),
            outputs=tuple(
                _tensor_info(name, tensor)
                for name, tensor in zip(self._output_names, self._model.outputs, strict=True)
            ),
        )

    @property
    def info(self) -> SignatureInfo:
        return self._info

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        del input_key  # A single-input model: the batch is fed positionally.
        outputs = self._call(tf.convert_to_tensor(batch))
        if isinstance(outputs, Mapping):
            return {name: np.asarray(value) for name, value in outputs.items()}
        if isinstance(outputs, Sequence):
            return {
                name: np.asarray(value)
                for name, value in zip(self._output_names, outputs, strict=True)
            }
        return {self._output_names[0]: np.asarray(outputs)}

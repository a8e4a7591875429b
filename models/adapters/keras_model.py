"""Runs a Keras 3 `.keras` model (loaded with safe_mode, never compiled)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from models.adapters.base import SignatureInfo, TensorInfo


def _tensor_info(name: str, tensor: keras.KerasTensor) -> TensorInfo:
    return TensorInfo(name=name, shape=tuple(tensor.shape), dtype=str(tensor.dtype))


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
        outputs = self._model(batch, training=False)
        if isinstance(outputs, Mapping):
            return {name: np.asarray(value) for name, value in outputs.items()}
        if isinstance(outputs, Sequence):
            return {
                name: np.asarray(value)
                for name, value in zip(self._output_names, outputs, strict=True)
            }
        return {self._output_names[0]: np.asarray(outputs)}

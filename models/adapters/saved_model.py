"""Runs a TensorFlow SavedModel signature directly (no Keras)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.adapters.base import SignatureInfo, TensorInfo


def _tensor_info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorInfo(name=name, shape=shape, dtype=spec.dtype.name)


def _signature_info(fn: tf.types.experimental.ConcreteFunction) -> SignatureInfo:
    _, input_specs = fn.structured_input_signature
    inputs = tuple(_tensor_info(k, v) for k, v in sorted(input_specs.items()))
    outputs = tuple(_tensor_info(k, v) for k, v in sorted(fn.structured_outputs.items()))
    return SignatureInfo(inputs=inputs, outputs=outputs)


class SavedModelBackend:
    """One signature of a SavedModel loaded with `tf.saved_model.load`."""

    def __init__(self, path: str, signature: str) -> None:
        try:
            # Keeping the loaded object referenced keeps the signature's variables alive.
            self._module = tf.saved_model.load(path)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ValueError(
                f"cannot load a SavedModel from {path}: {e}; `path` must be a directory "
                "holding saved_model.pb and variables/"
            ) from e
        signatures = self._module.signatures
        if signature not in signatures:
            raise ValueError(
                f"SavedModel {path} has no signature {signature!r}; it has "
                f"{sorted(signatures) or 'none'}. Set `signature` in the model spec to one of them."
            )
        self._fn = signatures[signature]
        self._info = _signature_info(self._fn)

    @property
    def info(self) -> SignatureInfo:
        return self._info

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._fn(**{input_key: tf.convert_to_tensor(batch)})
        return {name: value.numpy() for name, value in outputs.items()}

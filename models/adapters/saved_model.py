"""Runs a TensorFlow SavedModel signature directly (no Keras), with its weights frozen."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from models.adapters.base import SignatureInfo, TensorInfo

_LOG = logging.getLogger(__name__)


def _tensor_info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorInfo(name=name, shape=shape, dtype=spec.dtype.name)


def _signature_info(fn: tf.types.experimental.ConcreteFunction) -> SignatureInfo:
    _, input_specs = fn.structured_input_signature
    inputs = tuple(_tensor_info(k, v) for k, v in sorted(input_specs.items()))
    outputs = tuple(_tensor_info(k, v) for k, v in sorted(fn.structured_outputs.items()))
    return SignatureInfo(inputs=inputs, outputs=outputs)


def _frozen(
    fn: tf.types.experimental.ConcreteFunction, path: str
) -> Callable[..., dict[str, tf.Tensor]] | None:
    """The signature with its variables turned into constants, or None if it cannot be.

    Constant weights let TensorFlow's graph optimiser fold the batch norms'
    arithmetic into the convolutions, which it cannot do through variable reads.
    The bundled instance export's call took 22% less time (75.5 -> 58.7 ms per
    image, batches of 8 at 320x640 on a 2-core Xeon; `python -m
    benchmarks.model_call`, docs/performance.md, "Session 21"). The outputs are
    the same up to float rounding.
    """
    try:
        frozen = convert_variables_to_constants_v2(fn)
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as e:
        # E.g. a model with lookup tables or other resources that are not plain variables.
        _LOG.warning("SavedModel %s: running its signature unfrozen (%s)", path, e)
        return None
    # The frozen function takes its inputs and returns its outputs flat, in tf.nest
    # order (dicts by sorted key), and may rename its inputs: call it positionally.
    input_names = sorted(fn.structured_input_signature[1])
    if len(frozen.inputs) != len(input_names):
        # Resources other than variables (a lookup table's) stay behind as extra inputs.
        _LOG.warning(
            "SavedModel %s: running its signature unfrozen (it holds resources other than "
            "variables: %d inputs after freezing, %d before)",
            path,
            len(frozen.inputs),
            len(input_names),
        )
        return None
    structure = fn.structured_outputs

    def call(**inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return tf.nest.pack_sequence_as(structure, frozen(*(inputs[n] for n in input_names)))

    return call


class SavedModelBackend:
    """One signature of a SavedModel loaded with `tf.saved_model.load`, its weights frozen."""

    def __init__(self, path: str, signature: str) -> None:
        try:
            module = tf.saved_model.load(path)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ValueError(
                f"cannot load a SavedModel from {path}: {e}; `path` must be a directory "
                "holding saved_model.pb and variables/"
            ) from e
        signatures = module.signatures
        if signature not in signatures:
            raise ValueError(
                f"SavedModel {path} has no signature {signature!r}; it has "
                f"{sorted(signatures) or 'none'}. Set `signature` in the model spec to one of them."
            )
        signature_fn = signatures[signature]
        self._info = _signature_info(signature_fn)
        frozen = _frozen(signature_fn, path)
        # Unfrozen, the loaded object must stay referenced: it keeps the signature's
        # variables alive. Frozen, the constants hold the weights, and dropping it
        # keeps a worker from holding them twice.
        self._module = module if frozen is None else None
        self._fn = frozen or signature_fn

    @property
    def info(self) -> SignatureInfo:
        return self._info

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._fn(**{input_key: tf.convert_to_tensor(batch)})
        return {name: value.numpy() for name, value in outputs.items()}

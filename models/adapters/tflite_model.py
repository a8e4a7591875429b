"""Runs a `.tflite` model with LiteRT (falling back to `tf.lite.Interpreter`)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from models.adapters.base import SignatureInfo, TensorInfo


def _interpreter(path: str) -> Any:  # LiteRT's and tf.lite's interpreters share no base class.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806  # Same class either way.
    try:
        return Interpreter(model_path=path)
    except (OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"cannot load TFLite model {path}: {e}; check `path`") from e


def _tensor_info(name: str, details: dict[str, Any]) -> TensorInfo:
    shape = tuple(None if d < 0 else int(d) for d in details["shape_signature"])
    return TensorInfo(name=name, shape=shape, dtype=np.dtype(details["dtype"]).name)


def _dequantize(value: np.ndarray, details: dict[str, Any]) -> np.ndarray:
    scale, zero_point = details.get("quantization", (0.0, 0))
    if scale and np.issubdtype(value.dtype, np.integer):
        return (value.astype(np.float32) - zero_point) * np.float32(scale)
    return value


class TFLiteBackend:
    """One signature of a TFLite model; the interpreter is not thread-safe, so calls lock."""

    def __init__(self, path: str, signature: str) -> None:
        interpreter = _interpreter(path)
        signatures = interpreter.get_signature_list()
        if signature not in signatures:
            raise ValueError(
                f"TFLite model {path} has no signature {signature!r}; it has "
                f"{sorted(signatures) or 'none'}. Set `signature` in the model spec, or "
                "re-convert the model with tf.lite.TFLiteConverter (which keeps signatures)"
            )
        self._runner = interpreter.get_signature_runner(signature)
        self._input_details = self._runner.get_input_details()
        self._output_details = self._runner.get_output_details()
        self._info = SignatureInfo(
            inputs=tuple(_tensor_info(k, v) for k, v in sorted(self._input_details.items())),
            outputs=tuple(_tensor_info(k, v) for k, v in sorted(self._output_details.items())),
        )
        self._lock = threading.Lock()
        # "ai_edge_litert", or "tensorflow" when LiteRT is not installed.
        self.runtime = type(interpreter).__module__.split(".")[0]

    @property
    def info(self) -> SignatureInfo:
        return self._info

    def run(self, input_key: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            outputs = self._runner(**{input_key: np.ascontiguousarray(batch)})
            # Copy out: the interpreter reuses its buffers on the next call.
            return {
                name: _dequantize(np.array(value), self._output_details[name])
                for name, value in outputs.items()
            }
